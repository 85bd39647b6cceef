package discover

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
)

const fakeHost = "unix:///fake/docker.sock"

// fakeDocker is a Docker API whose answers the test sets. With hang set, a
// call waits for its context to end, as a hung dockerd makes it.
type fakeDocker struct {
	mu               sync.Mutex
	nets             []docker.Network
	ctrs             []docker.Container
	netErr, ctrErr   error
	hang             bool
	netCalls, ctCall int
}

func (f *fakeDocker) Networks(ctx context.Context) ([]docker.Network, error) {
	f.mu.Lock()
	f.netCalls++
	nets, err, hang := f.nets, f.netErr, f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, fmt.Errorf("list docker networks: %w: %w", docker.ErrUnreachable, ctx.Err())
	}
	return nets, err
}

func (f *fakeDocker) Containers(context.Context) ([]docker.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctCall++
	return f.ctrs, f.ctrErr
}

func (f *fakeDocker) Host() string { return fakeHost }

func (f *fakeDocker) set(edit func(*fakeDocker)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	edit(f)
}

// errDown is the error of a Docker API whose socket refuses connections.
var errDown = fmt.Errorf("list docker networks: %w: Cannot connect to the Docker daemon at %s", docker.ErrUnreachable, fakeHost)

func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// The host of the tests: Docker knows app_default on br-app and db on a
// bridge of its own name; br-late and lxcbr0 are bridges Docker does not
// report.
var (
	testBridges = []bridge.Bridge{
		{Name: "br-app", Subnets: pfxs("172.20.0.0/16", "fd00:20::/64")},
		{Name: "br-late", Subnets: pfxs("172.21.0.0/16")},
		{Name: "br-web", Subnets: pfxs("172.22.0.0/16", "fd00:22::/64")},
		{Name: "dbbr", Subnets: pfxs("10.77.0.0/24", "fd00:77::/64")},
		{Name: "lxcbr0", Subnets: pfxs("10.0.3.0/24")},
	}
	testDocker = []docker.Network{
		{ID: "a1", Name: "app_default", Bridge: "br-app", Labels: map[string]string{"com.docker.compose.project": "app"}, Subnets: pfxs("172.20.0.0/16", "fd00:20::/64")},
		// No IPAM subnets: those of its bridge count.
		{ID: "d1", Name: "db", Bridge: "dbbr"},
		// IPv6 not enabled in Docker, though the bridge has an IPv6 subnet.
		{ID: "w1", Name: "web", Bridge: "br-web", Subnets: pfxs("172.22.0.0/16")},
	}
	// The networks of testDocker and of testBridges as discovery gives them.
	appNet     = policy.Network{ID: "a1", Name: "app_default", Bridge: "br-app", Labels: map[string]string{"com.docker.compose.project": "app"}, Subnets: pfxs("172.20.0.0/16", "fd00:20::/64")}
	dbNet      = policy.Network{ID: "d1", Name: "db", Bridge: "dbbr", Subnets: pfxs("10.77.0.0/24", "fd00:77::/64")}
	webNet     = policy.Network{ID: "w1", Name: "web", Bridge: "br-web", Subnets: pfxs("172.22.0.0/16")}
	dockerNets = []policy.Network{appNet, dbNet, webNet}
	bridgeNets = []policy.Network{
		{Name: "br-app", Bridge: "br-app", Subnets: pfxs("172.20.0.0/16", "fd00:20::/64")},
		{Name: "br-late", Bridge: "br-late", Subnets: pfxs("172.21.0.0/16")},
		{Name: "br-web", Bridge: "br-web", Subnets: pfxs("172.22.0.0/16", "fd00:22::/64")},
		{Bridge: "dbbr", Subnets: pfxs("10.77.0.0/24", "fd00:77::/64")},
		{Bridge: "lxcbr0", Subnets: pfxs("10.0.3.0/24")},
	}
)

// lister lists testBridges, or fails with err.
func lister(err error) bridge.Lister {
	return bridge.ListerFunc(func() ([]bridge.Bridge, error) {
		if err != nil {
			return nil, err
		}
		return testBridges, nil
	})
}

func parse(t *testing.T, yaml string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("p.yaml", []byte(yaml), policy.Options{ResolvConf: os.DevNull})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	byName   = "version: 1\nnetworks:\n  - match: {name: app_default}\n    egress:\n      - deny: 192.168.0.0/16\n"
	bySubnet = "version: 1\nnetworks:\n  - match: {subnet: 172.20.0.0/16}\n    egress:\n      - deny: 192.168.0.0/16\n"
)

func discover(t *testing.T, d *Discoverer) *Inventory {
	t.Helper()
	inv, err := d.Discover(context.Background())
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	return inv
}

func TestSourceStrings(t *testing.T) {
	// status --json and the daemon's logs and results print these.
	for s, want := range map[Source]string{
		SourceNone:       "",
		SourceDocker:     status.SourceDocker,
		SourceDockerLast: status.SourceDockerLast,
		SourceNetlink:    status.SourceNetlink,
	} {
		if s.String() != want {
			t.Errorf("Source(%d).String() = %q, want %q", s, s.String(), want)
		}
	}
}

func TestDockerUp(t *testing.T) {
	fd := &fakeDocker{nets: testDocker}
	inv := discover(t, &Discoverer{Docker: fd, Bridges: lister(nil)})
	if inv.Source != SourceDocker || !inv.FromDocker() || inv.DockerErr != nil || inv.Warning != "" {
		t.Errorf("source %v, from Docker %v, Docker error %v, warning %q; want docker, no error, no warning", inv.Source, inv.FromDocker(), inv.DockerErr, inv.Warning)
	}
	if !reflect.DeepEqual(inv.Networks, dockerNets) {
		t.Errorf("networks = %+v, want %+v", inv.Networks, dockerNets)
	}
	if !reflect.DeepEqual(inv.Bridges, testBridges) {
		t.Errorf("bridges = %+v, want all of them", inv.Bridges)
	}
	if inv.Containers != nil || fd.ctCall != 0 {
		t.Errorf("containers %+v listed (%d calls) without ListContainers", inv.Containers, fd.ctCall)
	}
	if err := inv.Check(parse(t, byName)); err != nil {
		t.Errorf("Check(policy by name) = %v", err)
	}
}

func TestWithoutDocker(t *testing.T) {
	inv := discover(t, &Discoverer{Bridges: lister(nil)})
	if inv.Source != SourceNetlink || inv.DockerErr != nil || inv.Warning != "" || !reflect.DeepEqual(inv.Networks, bridgeNets) {
		t.Errorf("inventory without Docker = %+v", inv)
	}
	// Not asked is not failed: the daemon decides what a policy by name
	// does without Docker.
	if err := inv.Check(parse(t, byName)); err != nil {
		t.Errorf("Check(policy by name) = %v", err)
	}
}

func TestDockerDown(t *testing.T) {
	tests := []struct {
		name string
		// fake sets the fake's failure.
		fake func(*fakeDocker)
		// isDown, isHang: the type of DockerErr; unreachable: Unreachable(DockerErr).
		isDown, isHang, unreachable bool
		errText, warning            string
		// needsDocker is Check's error for a policy by name.
		needsDocker string
	}{
		{
			name: "no socket", fake: func(f *fakeDocker) { f.netErr = errDown },
			isDown: true, unreachable: true,
			errText:     "docker is not reachable at " + fakeHost,
			needsDocker: "docker is not reachable at " + fakeHost + "; the policy matches networks by name or label, which needs Docker: start Docker or set --docker-host, or match by subnet or bridge",
		},
		{
			name: "hung", fake: func(f *fakeDocker) { f.hang = true },
			isHang: true, unreachable: true,
			errText:     "Docker at " + fakeHost + " did not answer within 20ms",
			warning:     "Docker at " + fakeHost + " did not answer within 20ms; fencing the bridges found over netlink",
			needsDocker: "Docker at " + fakeHost + " did not answer within 20ms; the policy matches networks by name or label, which needs Docker: restart dockerd or check --docker-host, or match by subnet or bridge",
		},
		{
			name: "answers with an error", fake: func(f *fakeDocker) { f.netErr = errors.New("list docker networks: API too old: upgrade Docker") },
			errText:     "list docker networks: API too old: upgrade Docker",
			warning:     "list docker networks: API too old: upgrade Docker; fencing the bridges found over netlink",
			needsDocker: "list docker networks: API too old: upgrade Docker",
		},
		{
			name: "containers cannot be listed", fake: func(f *fakeDocker) { f.nets, f.ctrErr = testDocker, errors.New("list docker containers: boom") },
			errText:     "list docker containers: boom",
			warning:     "list docker containers: boom; fencing the bridges found over netlink",
			needsDocker: "list docker containers: boom",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := &fakeDocker{}
			fd.set(tt.fake)
			inv := discover(t, &Discoverer{Docker: fd, Bridges: lister(nil), Timeout: 20 * time.Millisecond, ListContainers: true})
			if inv.Source != SourceNetlink || inv.FromDocker() || !reflect.DeepEqual(inv.Networks, bridgeNets) || inv.Containers != nil {
				t.Errorf("inventory = %+v, want the bridges found over netlink", inv)
			}
			derr := inv.DockerErr
			if derr == nil || derr.Error() != tt.errText {
				t.Fatalf("Docker error = %v, want %q", derr, tt.errText)
			}
			if errors.As(derr, new(*DownError)) != tt.isDown || errors.As(derr, new(*HangError)) != tt.isHang || Unreachable(derr) != tt.unreachable {
				t.Errorf("Docker error %T: down %v, hung %v, unreachable %v; want %v, %v, %v", derr, errors.As(derr, new(*DownError)), errors.As(derr, new(*HangError)), Unreachable(derr), tt.isDown, tt.isHang, tt.unreachable)
			}
			if tt.unreachable && !errors.Is(derr, docker.ErrUnreachable) {
				t.Errorf("Docker error %v does not wrap the client's error", derr)
			}
			if inv.Warning != tt.warning {
				t.Errorf("warning = %q, want %q", inv.Warning, tt.warning)
			}
			if err := inv.Check(nil); err != nil {
				t.Errorf("Check(nil) = %v", err)
			}
			if err := inv.Check(parse(t, bySubnet)); err != nil {
				t.Errorf("Check(policy by subnet) = %v", err)
			}
			if err := inv.Check(parse(t, byName)); err == nil || err.Error() != tt.needsDocker {
				t.Errorf("Check(policy by name) = %v, want %q", err, tt.needsDocker)
			}
		})
	}
}

func TestLastKnown(t *testing.T) {
	fd := &fakeDocker{nets: testDocker, ctrs: []docker.Container{{ID: "c1", Name: "app-web-1"}}}
	d := &Discoverer{Docker: fd, Bridges: lister(nil), Timeout: 20 * time.Millisecond, ListContainers: true}
	if inv, err := d.Known(); err != nil || inv.Source != SourceNetlink || d.HasLastKnown() {
		t.Fatalf("Known before Docker answered = %+v, %v; want the bridges", inv, err)
	}
	first := discover(t, d)
	if first.Source != SourceDocker || len(first.Containers) != 1 || !d.HasLastKnown() {
		t.Fatalf("first inventory = %+v", first)
	}

	// Docker goes away: its last answer stands in.
	fd.set(func(f *fakeDocker) { f.netErr, f.nets = errDown, nil })
	inv := discover(t, d)
	if inv.Source != SourceDockerLast || inv.Source.String() != "docker (last known)" || !inv.FromDocker() {
		t.Errorf("source = %v, want docker (last known)", inv.Source)
	}
	if !reflect.DeepEqual(inv.Networks, dockerNets) || !reflect.DeepEqual(inv.Containers, first.Containers) || !reflect.DeepEqual(inv.Bridges, testBridges) {
		t.Errorf("inventory with Docker down = %+v, want the last known networks and containers", inv)
	}
	if !errors.As(inv.DockerErr, new(*DownError)) || inv.Warning != "" {
		t.Errorf("Docker error %v, warning %q; want down, no warning", inv.DockerErr, inv.Warning)
	}
	// Names are known: a policy by name is served.
	if err := inv.Check(parse(t, byName)); err != nil {
		t.Errorf("Check(policy by name) = %v", err)
	}

	fd.set(func(f *fakeDocker) { f.netErr, f.hang = nil, true })
	if inv := discover(t, d); inv.Source != SourceDockerLast || inv.Warning != "Docker at "+fakeHost+" did not answer within 20ms; fencing the networks Docker last reported" {
		t.Errorf("source %v, warning %q with Docker hung", inv.Source, inv.Warning)
	}

	// Known does not ask Docker.
	fd.set(func(f *fakeDocker) { f.netCalls = 0 })
	inv, err := d.Known()
	if err != nil || inv.Source != SourceDockerLast || !reflect.DeepEqual(inv.Networks, dockerNets) || inv.DockerErr != nil || fd.netCalls != 0 {
		t.Errorf("Known = %+v, %v after %d calls; want the last known networks without asking Docker", inv, err, fd.netCalls)
	}

	// Docker is back with other networks.
	fd.set(func(f *fakeDocker) { f.hang, f.nets = false, testDocker[:1] })
	if inv := discover(t, d); inv.Source != SourceDocker || len(inv.Networks) != 1 {
		t.Errorf("inventory with Docker back = %+v", inv)
	}
	fd.set(func(f *fakeDocker) { f.netErr = errDown })
	if inv := discover(t, d); inv.Source != SourceDockerLast || len(inv.Networks) != 1 {
		t.Errorf("inventory = %+v, want the networks Docker reported last", inv)
	}
}

func TestBridgesNotListed(t *testing.T) {
	fd := &fakeDocker{nets: testDocker}
	d := &Discoverer{Docker: fd, Bridges: lister(errors.New("netlink: permission denied"))}
	inv, err := d.Discover(context.Background())
	if err == nil || err.Error() != "list bridges: netlink: permission denied" {
		t.Errorf("Discover error = %v, want the bridges'", err)
	}
	// What there is without the bridges: db has no subnets of its own.
	want := []policy.Network{appNet, {ID: "d1", Name: "db", Bridge: "dbbr"}, webNet}
	if inv == nil || inv.Source != SourceDocker || !reflect.DeepEqual(inv.Networks, want) || inv.Bridges != nil || inv.BridgesErr == nil {
		t.Fatalf("inventory = %+v, want Docker's networks and the bridges' error", inv)
	}
	// That answer lacks the bridges' subnets: it is not remembered.
	if d.HasLastKnown() {
		t.Error("an answer without the bridges was remembered")
	}
	d.Bridges = lister(nil)
	fd.set(func(f *fakeDocker) { f.netErr = errDown })
	if inv := discover(t, d); inv.Source != SourceNetlink {
		t.Errorf("source = %v, want netlink", inv.Source)
	}
	if _, err := d.Known(); err != nil {
		t.Errorf("Known: %v", err)
	}
	d.Bridges = lister(errors.New("netlink: permission denied"))
	if _, err := d.Known(); err == nil {
		t.Error("Known without bridges: no error")
	}
}

func TestContainers(t *testing.T) {
	v4, v6 := netip.MustParseAddr("172.20.0.2"), netip.MustParseAddr("fd00:20::2")
	fd := &fakeDocker{nets: testDocker, ctrs: []docker.Container{
		{ID: "c1", Name: "app-web-1", Image: "nginx:1.27",
			Labels:    map[string]string{"com.docker.compose.project": "app", "com.docker.compose.service": "web", "role": "front"},
			Addrs:     map[netip.Addr]string{v4: "app_default", v6: "app_default"},
			Endpoints: []docker.Endpoint{{Network: "app_default", NetworkID: "a1", IPv4: v4, IPv6: v6}, {Network: "host", NetworkID: "h1"}},
			Ports:     []docker.PublishedPort{{HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 8080, ContainerPort: 80, Proto: "tcp"}, {HostIP: netip.MustParseAddr("::"), HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}},
		{ID: "c2", Name: "lonely", Image: "sha256:0123"},
	}}
	inv := discover(t, &Discoverer{Docker: fd, Bridges: lister(nil), ListContainers: true})
	want := []Container{
		{ID: "c1", Name: "app-web-1", Image: "nginx:1.27",
			Labels:  map[string]string{"com.docker.compose.project": "app", "com.docker.compose.service": "web", "role": "front"},
			Project: "app", Service: "web",
			Endpoints: []Endpoint{{Network: "app_default", NetworkID: "a1", IPv4: v4, IPv6: v6}, {Network: "host", NetworkID: "h1"}},
			Ports:     []PublishedPort{{HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 8080, ContainerPort: 80, Proto: "tcp"}, {HostIP: netip.MustParseAddr("::"), HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}},
		{ID: "c2", Name: "lonely", Image: "sha256:0123"},
	}
	if !reflect.DeepEqual(inv.Containers, want) {
		t.Errorf("containers = %+v, want %+v", inv.Containers, want)
	}
}

func TestIsDockerBridge(t *testing.T) {
	for name, want := range map[string]bool{"docker0": true, "br-0123456789ab": true, "br-": false, "docker1": false, "lxcbr0": false, "": false} {
		if IsDockerBridge(name) != want {
			t.Errorf("IsDockerBridge(%q) = %v", name, !want)
		}
	}
}

// TestFindPorts gives each endpoint the bridge port whose peer has its
// MAC, and none where two ports claim that MAC (a container took
// another's): neither gets the other's identity check.
func TestFindPorts(t *testing.T) {
	mac := func(s string) net.HardwareAddr {
		m, err := net.ParseMAC(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ep := func(ip, m string) []docker.Endpoint {
		return []docker.Endpoint{{Network: "app_default", NetworkID: "a1", IPv4: netip.MustParseAddr(ip), MAC: m}}
	}
	fd := &fakeDocker{nets: testDocker, ctrs: []docker.Container{
		{ID: "c1", Name: "one", Endpoints: ep("172.20.0.2", "02:42:ac:14:00:02")},
		{ID: "c2", Name: "two", Endpoints: ep("172.20.0.3", "02:42:ac:14:00:03")},
		{ID: "c3", Name: "starting", Endpoints: ep("172.20.0.4", "02:42:ac:14:00:04")},
	}}
	ports := func(br string) ([]bridge.Port, error) {
		if br != "br-app" {
			return nil, fmt.Errorf("no bridge %s", br)
		}
		return []bridge.Port{
			{Name: "veth1", Index: 11, PeerMAC: mac("02:42:ac:14:00:02")},
			{Name: "veth2", Index: 12, PeerMAC: mac("02:42:ac:14:00:03")},
			{Name: "veth9", Index: 19, PeerMAC: mac("02:42:ac:14:00:03")}, // took two's MAC
		}, nil
	}
	inv := discover(t, &Discoverer{Docker: fd, Bridges: lister(nil), Ports: ports, ListContainers: true})
	got := map[string]string{}
	for _, c := range inv.Containers {
		got[c.Name] = c.Endpoints[0].Port
	}
	if want := map[string]string{"one": "veth1", "two": "", "starting": ""}; !reflect.DeepEqual(got, want) {
		t.Errorf("ports = %v, want %v", got, want)
	}
}
