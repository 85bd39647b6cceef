package denylog

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nflog"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

const testPolicy = `version: 1
settings: {mode: MODE}
networks:
  - match: {name: app_default}
    egress:
      - allow: self
      - deny: 192.168.0.0/16
        comment: private network
      - deny: "fd00:100::/64"
    egress_default: allow
  - match: {name: "*"}
    egress:
      - deny: "@metadata"
    egress_default: deny
`

func table(t *testing.T, mode string) *fence.Result {
	t.Helper()
	src := []byte(testPolicy)
	src = append(append(append([]byte{}, src[:len("version: 1\nsettings: {mode: ")]...), mode...), src[len("version: 1\nsettings: {mode: MODE"):]...)
	pol, err := policy.Parse("p.yaml", src, policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	return fence.Compile(pol, []policy.Network{{ID: "4e5f", Name: "app_default", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16"), netip.MustParsePrefix("fd00:20::/64")}}})
}

// tcp4 is an IPv4 TCP SYN header pair.
func tcp4(src, dst string, dport uint16) []byte {
	b := make([]byte, 40)
	b[0], b[9] = 0x45, 6
	binary.BigEndian.PutUint16(b[2:], 40)
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], 40000)
	binary.BigEndian.PutUint16(b[22:], dport)
	b[32] = 5 << 4
	return b
}

// udp6 is an IPv6 UDP header pair.
func udp6(src, dst string, dport uint16) []byte {
	b := make([]byte, 48)
	b[0], b[6], b[7] = 0x60, 17, 64
	binary.BigEndian.PutUint16(b[4:], 8)
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	binary.BigEndian.PutUint16(b[40:], 40000)
	binary.BigEndian.PutUint16(b[42:], dport)
	return b
}

type fakeResolver map[netip.Addr][2]string

func (f fakeResolver) Container(a netip.Addr) (string, string) { return f[a][0], f[a][1] }

var when = time.Date(2026, 11, 21, 12, 4, 5, 0, time.Local)

func TestAttribute(t *testing.T) {
	enforce, audit := table(t, "enforce"), table(t, "audit")
	res := fakeResolver{netip.MustParseAddr("172.20.0.2"): {"app-web-1", "c0ffee"}}
	ifname := func(i uint32) string {
		if i == 7 {
			return "br-new"
		}
		return ""
	}
	for _, tc := range []struct {
		name  string
		t     *fence.Result
		pkt   nflog.Packet
		want  Event
		line  string
		wantN bool
	}{{
		name: "rule with a comment",
		t:    enforce,
		pkt:  nflog.Packet{Time: when, Prefix: "df fwd_br-app.e2 ", Family: unix.NFPROTO_IPV4, Payload: tcp4("172.20.0.2", "192.168.100.50", 5432)},
		want: Event{Time: when, Verdict: "deny", Network: "app_default", NetworkID: "4e5f", Bridge: "br-app", Section: 1, Hook: "egress", Rule: "egress 2", RuleIndex: 2,
			Comment: "private network", Src: "172.20.0.2", Dst: "192.168.100.50", Proto: "tcp", Port: 5432, Container: "app-web-1", ContainerID: "c0ffee"},
		line: `12:04:05 deny       app-web-1 (app_default) 172.20.0.2 -> 192.168.100.50:5432/tcp  rule 2 "private network"`,
	}, {
		name: "IPv6, rule without a comment, unknown container",
		t:    enforce,
		pkt:  nflog.Packet{Time: when, Prefix: "df fwd_br-app.e3 ", Family: unix.NFPROTO_IPV6, Payload: udp6("fd00:20::9", "fd00:100::2", 53)},
		want: Event{Time: when, Verdict: "deny", Network: "app_default", NetworkID: "4e5f", Bridge: "br-app", Section: 1, Hook: "egress", Rule: "egress 3", RuleIndex: 3,
			Comment: "fd00:100::/64", Src: "fd00:20::9", Dst: "fd00:100::2", Proto: "udp", Port: 53},
		line: `12:04:05 deny       - (app_default) fd00:20::9 -> [fd00:100::2]:53/udp  rule 3 "fd00:100::/64"`,
	}, {
		name: "anti-spoofing",
		t:    enforce,
		pkt:  nflog.Packet{Time: when, Prefix: "df fwd_br-app.spoof ", Family: unix.NFPROTO_IPV4, Payload: tcp4("10.9.9.9", "192.168.100.50", 22)},
		want: Event{Time: when, Verdict: "deny", Network: "app_default", NetworkID: "4e5f", Bridge: "br-app", Section: 1, Hook: "egress", Rule: "anti-spoofing",
			Comment: "source outside the network", Src: "10.9.9.9", Dst: "192.168.100.50", Proto: "tcp", Port: 22},
		line: `12:04:05 deny       - (app_default) 10.9.9.9 -> 192.168.100.50:22/tcp  anti-spoofing "source outside the network"`,
	}, {
		name: "default of a bridge not known yet, in audit mode",
		t:    audit,
		pkt:  nflog.Packet{Time: when, Prefix: "df-audit fwd_unknown.default ", Family: unix.NFPROTO_IPV4, InDev: 7, Payload: tcp4("172.30.0.2", "203.0.113.10", 80)},
		want: Event{Time: when, Verdict: "would deny", Bridge: "br-new", Section: 2, Hook: "egress", Rule: "egress_default",
			Comment: "egress_default deny", Src: "172.30.0.2", Dst: "203.0.113.10", Proto: "tcp", Port: 80},
		line: `12:04:05 would deny - (br-new) 172.30.0.2 -> 203.0.113.10:80/tcp  egress_default "egress_default deny"`,
	}, {
		name:  "another table's prefix",
		t:     enforce,
		pkt:   nflog.Packet{Time: when, Prefix: "iptables DROP ", Family: unix.NFPROTO_IPV4, Payload: tcp4("172.20.0.2", "192.168.100.50", 5432)},
		wantN: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Attribute(tc.pkt, tc.t, res, ifname)
			if ok == tc.wantN {
				t.Fatalf("Attribute ok = %v", ok)
			}
			if tc.wantN {
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			if l := got.Line(); l != tc.line {
				t.Errorf("Line:\n got %s\nwant %s", l, tc.line)
			}
		})
	}
	// Without the table (the daemon kept one it did not build), the chain
	// name and the interface stand in for rule and network.
	e, ok := Attribute(nflog.Packet{Time: when, Prefix: "df fwd_br-app.e2 ", Family: unix.NFPROTO_IPV4, InDev: 7, Payload: tcp4("172.20.0.2", "192.168.1.1", 443)}, nil, nil, ifname)
	want := Event{Time: when, Verdict: "deny", Bridge: "br-new", Rule: "fwd_br-app.e2", Comment: "deny chain fwd_br-app.e2 (rule not known: the table was not built by this process)",
		Src: "172.20.0.2", Dst: "192.168.1.1", Proto: "tcp", Port: 443}
	if diff := cmp.Diff(want, e); !ok || diff != "" {
		t.Errorf("Attribute without a table: ok %v (-want +got):\n%s", ok, diff)
	}
}

func TestHub(t *testing.T) {
	h := &Hub{Keep: 3}
	ev := func(i int) Event { return Event{Port: uint16(i)} }
	ports := func(es []Event) []uint16 {
		var out []uint16
		for _, e := range es {
			out = append(out, e.Port)
		}
		return out
	}
	h.Publish(ev(1))
	h.Publish(ev(2))
	recent, ch, cancel := h.Subscribe(1)
	if diff := cmp.Diff([]uint16{1, 2}, ports(recent)); diff != "" {
		t.Errorf("recent at subscribe (-want +got):\n%s", diff)
	}
	h.Publish(ev(3))
	h.Publish(ev(4)) // the subscriber's buffer of 1 is full: lost
	if got := (<-ch).Port; got != 3 {
		t.Errorf("first live event = %d, want 3", got)
	}
	if diff := cmp.Diff([]uint16{2, 3, 4}, ports(h.Recent())); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if lost := cancel(); lost != 1 {
		t.Errorf("lost = %d, want 1", lost)
	}
	h.Publish(ev(5)) // no subscriber: nothing blocks
	if h.Total() != 5 {
		t.Errorf("Total = %d", h.Total())
	}
}

func TestContainers(t *testing.T) {
	web := netip.MustParseAddr("172.20.0.2")
	calls := 0
	var fail bool
	c := &Containers{MinAge: time.Hour, List: func(context.Context) ([]docker.Container, error) {
		calls++
		if fail {
			return nil, errors.New("docker down")
		}
		return []docker.Container{{ID: "c0ffee", Name: "app-web-1", Addrs: map[netip.Addr]string{web: "app_default"}}}, nil
	}}
	if n, id := c.Container(web); n != "app-web-1" || id != "c0ffee" || calls != 1 {
		t.Fatalf("first lookup = %q %q after %d listings", n, id, calls)
	}
	c.Container(web)
	c.Container(netip.MustParseAddr("172.20.0.9")) // unknown, but listed less than MinAge ago
	if calls != 1 {
		t.Errorf("listings = %d, want 1 (known address, and MinAge not over)", calls)
	}
	c.Invalidate()
	fail = true
	if n, _ := c.Container(web); n != "app-web-1" || calls != 2 {
		t.Errorf("after Invalidate with Docker down: %q after %d listings; want the known name kept", n, calls)
	}
}

// fakeSource hands out packets, then blocks until closed.
type fakeSource struct {
	batches [][]nflog.Packet
	errs    []error
	closed  chan struct{}
}

func (f *fakeSource) Receive() ([]nflog.Packet, error) {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	if len(f.batches) > 0 {
		b := f.batches[0]
		f.batches = f.batches[1:]
		return b, nil
	}
	<-f.closed
	return nil, errors.New("closed")
}

func (f *fakeSource) Close() error {
	select {
	case <-f.closed:
	default:
		close(f.closed)
	}
	return nil
}

func TestReaderRun(t *testing.T) {
	tbl := table(t, "enforce")
	src := &fakeSource{
		errs:    []error{nflog.ErrOverrun},
		batches: [][]nflog.Packet{{{Prefix: "df fwd_br-app.e2 ", Family: unix.NFPROTO_IPV4, Payload: tcp4("172.20.0.2", "192.168.1.1", 443)}, {Prefix: "other "}}},
		closed:  make(chan struct{}),
	}
	got := make(chan Event, 4)
	overruns := 0
	r := &Reader{Table: func() *fence.Result { return tbl }, Publish: func(e Event) { got <- e }, Overrun: func() { overruns++ }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx, src) }()
	e := <-got
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
	if e.Dst != "192.168.1.1" || e.Port != 443 || len(got) != 0 || overruns != 1 {
		t.Errorf("event %+v, %d more, %d overruns; want one event and one overrun", e, len(got), overruns)
	}
}

// TestAttributeContainer attributes denials of the container layer to the
// container the compiler gave the rules, with the layer and its section.
func TestAttributeContainer(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(`version: 1
networks:
  - match: {name: "*"}
containers:
  - match: {label: "role=worker"}
    egress:
      - allow: 192.168.100.1
    egress_default: deny
`), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	nets := []policy.Network{{ID: "4e5f", Name: "app_default", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}}
	ctrs := []fence.Container{
		{ID: "0123456789abcdef", Name: "worker-1", Labels: map[string]string{"role": "worker"}, Endpoints: []fence.Endpoint{{NetworkID: "4e5f", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.2")}}}},
		{ID: "fedcba9876543210", Name: "other", Labels: map[string]string{policy.EgressLabel: "[{deny: 203.0.113.0/24, comment: partner}]"}, Endpoints: []fence.Endpoint{{NetworkID: "4e5f", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.3")}}}},
	}
	tbl := fence.CompileContainers(pol, nets, ctrs)
	ifname := func(uint32) string { return "br-app" }
	// A container's denial names no network: the bridge it came from
	// does, with the network's section.
	for _, tc := range []struct {
		prefix, src string
		want        func(*Event)
	}{
		{"df c_0123456789ab.s.default ", "172.20.0.2", func(e *Event) {
			e.Container, e.ContainerID, e.Layer, e.ContainerSection, e.Rule, e.Comment = "worker-1", "0123456789abcdef", "container section", 1, "container section egress_default", "egress_default deny"
		}},
		{"df c_fedcba987654.l.e1 ", "172.20.0.3", func(e *Event) {
			e.Container, e.ContainerID, e.Layer, e.Rule, e.RuleIndex, e.Comment = "other", "fedcba9876543210", "label", "label egress 1", 1, "partner"
		}},
		{"df fwdc_br-app.held ", "172.20.0.9", func(e *Event) {
			e.Rule, e.Comment = "held", "container not classified yet (held)"
		}},
	} {
		got, ok := Attribute(nflog.Packet{Time: when, Prefix: tc.prefix, Family: unix.NFPROTO_IPV4, InDev: 3, Payload: tcp4(tc.src, "203.0.113.10", 80)}, tbl, nil, ifname)
		if !ok {
			t.Fatalf("%s: not attributed", tc.prefix)
		}
		want := Event{Time: when, Verdict: "deny", Network: "app_default", NetworkID: "4e5f", Section: 1, Bridge: "br-app", Hook: "egress", Src: tc.src, Dst: "203.0.113.10", Proto: "tcp", Port: 80}
		tc.want(&want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: event (-want +got):\n%s", tc.prefix, diff)
		}
	}
}

// TestAttributeIngress attributes ingress denials to the container the
// connection goes to: by its section's chain, or, for the network's
// rules, by the destination address.
func TestAttributeIngress(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(`version: 1
networks:
  - match: {name: "*"}
    ingress:
      - deny: any
        ports: [8080]
        comment: admin UI closed
containers:
  - match: {label: "tier=db"}
    ingress_default: deny
`), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	nets := []policy.Network{{ID: "4e5f", Name: "app_default", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}}
	ctrs := []fence.Container{
		{ID: "0123456789abcdef", Name: "db-1", Labels: map[string]string{"tier": "db"}, Endpoints: []fence.Endpoint{{NetworkID: "4e5f", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.2")}}}},
	}
	tbl := fence.CompileContainers(pol, nets, ctrs)
	res := fakeResolver{netip.MustParseAddr("172.20.0.3"): {"web-1", "c0ffee"}}
	for _, tc := range []struct {
		prefix, dst string
		want        func(*Event)
	}{
		{"df ci_0123456789ab.s.default ", "172.20.0.2", func(e *Event) {
			e.Container, e.ContainerID, e.Layer, e.ContainerSection, e.Rule, e.Comment = "db-1", "0123456789abcdef", "container section", 1, "container section ingress_default", "ingress_default deny"
		}},
		{"df ing_br-app.i1 ", "172.20.0.3", func(e *Event) {
			e.Container, e.ContainerID, e.Rule, e.RuleIndex, e.Comment = "web-1", "c0ffee", "ingress 1", 1, "admin UI closed"
		}},
	} {
		ifname := func(i uint32) string { return map[uint32]string{2: "eth0", 3: "br-app"}[i] }
		got, ok := Attribute(nflog.Packet{Time: when, Prefix: tc.prefix, Family: unix.NFPROTO_IPV4, InDev: 2, OutDev: 3, Payload: tcp4("198.51.100.7", tc.dst, 80), OrigDstPort: 8080}, tbl, res, ifname)
		if !ok {
			t.Fatalf("%s: not attributed", tc.prefix)
		}
		// The bridge is the one the connection goes into (the output
		// device), for the container's denial too.
		want := Event{Time: when, Verdict: "deny", Network: "app_default", NetworkID: "4e5f", Section: 1, Bridge: "br-app", Hook: "ingress", Src: "198.51.100.7", Dst: tc.dst, Proto: "tcp", Port: 80, PublishedPort: 8080, PublishedPortFrom: "kernel"}
		tc.want(&want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: event (-want +got):\n%s", tc.prefix, diff)
		}
	}
	e, _ := Attribute(nflog.Packet{Time: when, Prefix: "df ing_br-app.i1 ", Family: unix.NFPROTO_IPV4, InDev: 2, OutDev: 3, Payload: tcp4("198.51.100.7", "172.20.0.3", 80), OrigDstPort: 8080}, tbl, res, nil)
	if line := e.Line(); !strings.Contains(line, "web-1 (app_default) 198.51.100.7 -> 172.20.0.3:80/tcp (published port 8080)  ingress rule 1 \"admin UI closed\"") {
		t.Errorf("line %q", line)
	}
}

// TestLineNamesExpiredLearning: a denial of an address learned from a DNS
// answer that expired says the name, in the line and in JSON.
func TestLineNamesExpiredLearning(t *testing.T) {
	exp := time.Date(2026, 12, 7, 11, 0, 0, 0, time.Local)
	e := Event{Time: exp.Add(time.Minute), Verdict: "deny", Network: "app", Hook: "egress", Rule: "egress_default", Comment: "egress_default",
		Src: "172.20.0.2", Dst: "203.0.113.7", Proto: "tcp", Port: 443, Name: "api.example.com", NameExpired: exp}
	if l := e.Line(); !strings.HasSuffix(l, "  (learned for api.example.com, expired 11:00:00)") {
		t.Errorf("line %q does not name the expired learning", l)
	}
	b, err := json.Marshal(e)
	if err != nil || !strings.Contains(string(b), `"name":"api.example.com","name_expired":"2026-12-07T11:00:00`) {
		t.Errorf("JSON %s, %v", b, err)
	}
	b, _ = json.Marshal(Event{})
	if strings.Contains(string(b), "name") {
		t.Errorf("an event without a learning has %s", b)
	}
}

// portResolver is a fakeResolver that knows published ports too.
type portResolver struct {
	fakeResolver
	ports map[netip.Addr][]docker.PublishedPort
}

func (p portResolver) PublishedPorts(a netip.Addr) []docker.PublishedPort { return p.ports[a] }

// TestAttributeIngressDockerPorts finds the published port of an ingress
// denial from Docker's mapping where the kernel did not send the
// connection (no ctnetlink): the one host port that maps to the
// container's port, all of them where several do, none where the
// container's port is published on itself or not at all; the kernel's
// port wins where it gave one.
func TestAttributeIngressDockerPorts(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(`version: 1
networks:
  - match: {name: "*"}
    ingress:
      - deny: any
`), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	nets := []policy.Network{{ID: "4e5f", Name: "app_default", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16"), netip.MustParsePrefix("fd00:20::/64")}}}
	tbl := fence.Compile(pol, nets)
	web4, web6 := netip.MustParseAddr("172.20.0.3"), netip.MustParseAddr("fd00:20::3")
	any4, any6 := netip.IPv4Unspecified(), netip.IPv6Unspecified()
	ports := []docker.PublishedPort{
		{HostIP: any4, HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		{HostIP: any6, HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
		{HostIP: any4, HostPort: 8443, ContainerPort: 443, Proto: "tcp"},
		{HostIP: any4, HostPort: 9443, ContainerPort: 443, Proto: "tcp"},
		{HostIP: any6, HostPort: 10443, ContainerPort: 443, Proto: "tcp"},
		{HostIP: any4, HostPort: 53, ContainerPort: 53, Proto: "udp"},
		{HostIP: any4, HostPort: 5353, ContainerPort: 53, Proto: "tcp"},
		{HostPort: 2222, ContainerPort: 22, Proto: "tcp"}, // no host address: either family
	}
	res := portResolver{fakeResolver{web4: {"web-1", "c0ffee"}, web6: {"web-1", "c0ffee"}}, map[netip.Addr][]docker.PublishedPort{web4: ports, web6: ports}}
	ifname := func(i uint32) string { return map[uint32]string{2: "eth0", 3: "br-app"}[i] }
	for _, tc := range []struct {
		name     string
		v6, udp  bool
		port     uint16
		orig     uint16
		res      Resolver
		want     uint16
		wantAll  []uint16
		wantFrom string
		line     string
	}{
		{name: "one host port", port: 80, res: res, want: 8080, wantFrom: "docker", line: ":80/tcp (published port 8080)  "},
		{name: "one host port, IPv6", v6: true, port: 80, res: res, want: 8080, wantFrom: "docker", line: ":80/tcp (published port 8080)  "},
		{name: "two host ports of the family", port: 443, res: res, wantAll: []uint16{8443, 9443}, wantFrom: "docker", line: ":443/tcp (published port 8443 or 9443)  "},
		{name: "one host port of the family, IPv6", v6: true, port: 443, res: res, want: 10443, wantFrom: "docker", line: ":443/tcp (published port 10443)  "},
		{name: "published on itself", udp: true, port: 53, res: res, line: ":53/udp  "},
		{name: "the protocol counts", port: 53, res: res, want: 5353, wantFrom: "docker", line: ":53/tcp (published port 5353)  "},
		{name: "no host address: either family", v6: true, port: 22, res: res, want: 2222, wantFrom: "docker", line: ":22/tcp (published port 2222)  "},
		{name: "not published", port: 81, res: res, line: ":81/tcp  "},
		{name: "the kernel's port wins", port: 443, orig: 9443, res: res, want: 9443, wantFrom: "kernel", line: ":443/tcp (published port 9443)  "},
		{name: "the kernel says not DNAT'ed", port: 80, orig: 80, res: res, line: ":80/tcp  "},
		{name: "a resolver without ports", port: 80, res: res.fakeResolver, line: ":80/tcp  "},
		{name: "no resolver", port: 80, line: ":80/tcp  "},
	} {
		fam, src, dst, payload := uint8(unix.NFPROTO_IPV4), "198.51.100.7", web4, tcp4("198.51.100.7", web4.String(), tc.port)
		switch {
		case tc.v6:
			fam, src, dst = unix.NFPROTO_IPV6, "2001:db8::7", web6
			payload = tcp6(src, dst.String(), tc.port)
		case tc.udp:
			payload = tcp4(src, dst.String(), tc.port)
			payload[9] = 17
		}
		e, ok := Attribute(nflog.Packet{Time: when, Prefix: "df ing_br-app.i1 ", Family: fam, InDev: 2, OutDev: 3, Payload: payload, OrigDstPort: tc.orig}, tbl, tc.res, ifname)
		if !ok {
			t.Fatalf("%s: not attributed", tc.name)
		}
		if e.PublishedPort != tc.want || !slices.Equal(e.PublishedPorts, tc.wantAll) || e.PublishedPortFrom != tc.wantFrom {
			t.Errorf("%s: published port %d, ports %v, from %q; want %d, %v, %q", tc.name, e.PublishedPort, e.PublishedPorts, e.PublishedPortFrom, tc.want, tc.wantAll, tc.wantFrom)
		}
		if line := e.Line(); !strings.Contains(line, tc.line) {
			t.Errorf("%s: line %q does not hold %q", tc.name, line, tc.line)
		}
	}
}

// tcp6 is an IPv6 TCP SYN header pair.
func tcp6(src, dst string, dport uint16) []byte {
	b := udp6(src, dst, dport)
	b[6] = 6
	return append(b, make([]byte, 12)...)
}

// TestAttributeIngressProxy attributes ingress denials of connections
// through docker-proxy (input hook: no output device, the host's own
// address) to the container that publishes the port, and names the
// published port.
func TestAttributeIngressProxy(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(`version: 1
networks:
  - match: {name: "*"}
    ingress:
      - deny: any
        ports: [8080]
        comment: admin UI closed
containers:
  - match: {label: "tier=db"}
    ingress_default: deny
`), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	nets := []policy.Network{{ID: "4e5f", Name: "app_default", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}}
	ctrs := []fence.Container{
		{ID: "0123456789abcdef", Name: "db-1", Labels: map[string]string{"tier": "db"}, Endpoints: []fence.Endpoint{{NetworkID: "4e5f", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.2")}}},
			Ports: []fence.PublishedPort{{HostIP: netip.MustParseAddr("::"), HostPort: 5432, ContainerPort: 5432, Proto: "tcp"}}},
		{ID: "c0ffeec0ffee0000", Name: "web-1", Endpoints: []fence.Endpoint{{NetworkID: "4e5f", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.3")}}},
			Ports: []fence.PublishedPort{{HostIP: netip.MustParseAddr("::"), HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}},
	}
	tbl := fence.CompileContainers(pol, nets, ctrs)
	ifname := func(i uint32) string { return map[uint32]string{2: "eth0", 3: "br-app"}[i] }
	for _, tc := range []struct {
		prefix string
		port   uint16
		want   func(*Event)
	}{
		{"df ci_0123456789ab.s.default ", 5432, func(e *Event) {
			e.Container, e.ContainerID, e.Layer, e.ContainerSection, e.Rule, e.Comment = "db-1", "0123456789abcdef", "container section", 1, "container section ingress_default", "ingress_default deny"
			e.Network, e.NetworkID, e.Bridge = "app_default", "4e5f", "br-app"
		}},
		{"df ing_br-app.i1 ", 8080, func(e *Event) {
			e.Network, e.NetworkID, e.Bridge, e.Section, e.Container, e.ContainerID, e.Rule, e.RuleIndex, e.Comment = "app_default", "4e5f", "br-app", 1, "web-1", "c0ffeec0ffee0000", "ingress 1", 1, "admin UI closed"
		}},
	} {
		got, ok := Attribute(nflog.Packet{Time: when, Prefix: tc.prefix, Family: unix.NFPROTO_IPV6, InDev: 2, Payload: tcp6("2001:db8:51::66", "2001:db8:51::fe", tc.port), OrigDstPort: tc.port}, tbl, fakeResolver{}, ifname)
		if !ok {
			t.Fatalf("%s: not attributed", tc.prefix)
		}
		want := Event{Time: when, Verdict: "deny", Hook: "ingress", Src: "2001:db8:51::66", Dst: "2001:db8:51::fe", Proto: "tcp", Port: tc.port, PublishedPort: tc.port, PublishedPortFrom: PortFromKernel}
		tc.want(&want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: event (-want +got):\n%s", tc.prefix, diff)
		}
	}
}
