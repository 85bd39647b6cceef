package docker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/versions"
	"github.com/google/go-cmp/cmp"
)

// comparePrefixes lets go-cmp compare netip.Prefix, whose fields are
// unexported.
var comparePrefixes = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestBridgeName(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name string
		in   network.Summary
		want string
	}{
		{name: "option wins", in: network.Summary{Name: "bridge", Driver: "bridge", ID: id, Options: map[string]string{bridgeNameOption: "mybr0"}}, want: "mybr0"},
		{name: "option on user network", in: network.Summary{Name: "app", Driver: "bridge", ID: id, Options: map[string]string{bridgeNameOption: "br-app"}}, want: "br-app"},
		{name: "empty option ignored", in: network.Summary{Name: "app", Driver: "bridge", ID: id, Options: map[string]string{bridgeNameOption: ""}}, want: "br-0123456789ab"},
		{name: "default network", in: network.Summary{Name: "bridge", Driver: "bridge", ID: id}, want: "docker0"},
		{name: "user network", in: network.Summary{Name: "app_default", Driver: "bridge", ID: id}, want: "br-0123456789ab"},
		{name: "network named bridge with other driver", in: network.Summary{Name: "bridge", Driver: "macvlan", ID: id}, want: "br-0123456789ab"},
		{name: "short ID", in: network.Summary{Name: "x", Driver: "bridge", ID: "abc"}, want: "br-abc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := bridgeName(tc.in); got != tc.want {
				t.Errorf("bridgeName() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseSubnets(t *testing.T) {
	tests := []struct {
		name    string
		in      []network.IPAMConfig
		want    []netip.Prefix
		wantErr string
	}{
		{name: "none", in: nil, want: nil},
		{name: "IPv4", in: []network.IPAMConfig{{Subnet: "172.17.0.0/16", Gateway: "172.17.0.1"}}, want: prefixes("172.17.0.0/16")},
		{name: "IPv6 listed first", in: []network.IPAMConfig{{Subnet: "fd00:1::/64"}, {Subnet: "172.18.0.0/16"}}, want: prefixes("172.18.0.0/16", "fd00:1::/64")},
		{name: "sorted", in: []network.IPAMConfig{{Subnet: "192.168.0.0/24"}, {Subnet: "10.0.0.0/8"}, {Subnet: "fd00:2::/64"}, {Subnet: "fd00:1::/64"}}, want: prefixes("10.0.0.0/8", "192.168.0.0/24", "fd00:1::/64", "fd00:2::/64")},
		{name: "masked and deduplicated", in: []network.IPAMConfig{{Subnet: "172.20.0.1/16"}, {Subnet: "172.20.0.0/16"}}, want: prefixes("172.20.0.0/16")},
		{name: "empty subnet skipped", in: []network.IPAMConfig{{Gateway: "172.20.0.1"}, {Subnet: "172.20.0.0/16"}}, want: prefixes("172.20.0.0/16")},
		{name: "unparsable", in: []network.IPAMConfig{{Subnet: "172.20.0.0/16"}, {Subnet: "not-a-subnet"}}, wantErr: `bad subnet "not-a-subnet"`},
		{name: "address without length", in: []network.IPAMConfig{{Subnet: "172.20.0.0"}}, wantErr: `bad subnet "172.20.0.0"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSubnets(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseSubnets() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSubnets() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, got, comparePrefixes); diff != "" {
				t.Errorf("parseSubnets() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNetworks(t *testing.T) {
	const id = "aaaaaaaaaaaabbbbbbbbbbbbccccccccccccddddddddddddeeeeeeeeeeeeffff"
	tests := []struct {
		name    string
		in      []network.Summary
		want    []Network
		wantErr string
	}{
		{name: "none", in: nil, want: nil},
		{
			name: "every driver, sorted by name; only bridges have a bridge",
			in: []network.Summary{
				{Name: "zeta", ID: id, Driver: "bridge"},
				{Name: "host", ID: "h", Driver: "host"},
				{Name: "none", ID: "n", Driver: "null"},
				{Name: "ov", ID: "o", Driver: "overlay", IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: "10.0.0.0/24"}}}},
				{Name: "lan", ID: "m", Driver: "macvlan", Options: map[string]string{"parent": "eth0", bridgeNameOption: "ignored"}, Labels: map[string]string{"k": "v"},
					IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: "192.168.1.0/24"}}}},
				{Name: "alpha", ID: id, Driver: "bridge", Labels: map[string]string{"k": "v"}, IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: "172.30.0.0/16"}}}},
			},
			want: []Network{
				{ID: id, Name: "alpha", Bridge: "br-aaaaaaaaaaaa", Driver: "bridge", Labels: map[string]string{"k": "v"}, Subnets: prefixes("172.30.0.0/16")},
				{ID: "h", Name: "host", Driver: "host"},
				{ID: "m", Name: "lan", Driver: "macvlan", Labels: map[string]string{"k": "v"}, Subnets: prefixes("192.168.1.0/24")},
				{ID: "n", Name: "none", Driver: "null"},
				{ID: "o", Name: "ov", Driver: "overlay", Subnets: prefixes("10.0.0.0/24")},
				{ID: id, Name: "zeta", Bridge: "br-aaaaaaaaaaaa", Driver: "bridge"},
			},
		},
		{name: "empty labels become nil", in: []network.Summary{{Name: "a", ID: id, Driver: "bridge", Labels: map[string]string{}}}, want: []Network{{ID: id, Name: "a", Bridge: "br-aaaaaaaaaaaa", Driver: "bridge"}}},
		{
			name:    "bad subnet names network",
			in:      []network.Summary{{Name: "broken", ID: id, Driver: "bridge", IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: "300.0.0.0/8"}}}}},
			wantErr: `network "broken": bad subnet "300.0.0.0/8"`,
		},
		{
			name: "bad subnet of other driver left out",
			in:   []network.Summary{{Name: "ov", ID: "o", Driver: "overlay", IPAM: network.IPAM{Config: []network.IPAMConfig{{Subnet: "junk"}, {Subnet: "10.0.0.0/24"}}}}},
			want: []Network{{ID: "o", Name: "ov", Driver: "overlay", Subnets: prefixes("10.0.0.0/24")}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := networks(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("networks() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("networks() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, got, comparePrefixes); diff != "" {
				t.Errorf("networks() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// clearDockerEnv keeps the caller's DOCKER_* variables from changing how
// Dial sets up the client.
func clearDockerEnv(t *testing.T) {
	for _, k := range []string{"DOCKER_HOST", "DOCKER_API_VERSION", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"} {
		t.Setenv(k, "")
	}
}

// fakeAPIVersion is below the client's default so that the test sees
// whether the client negotiated it.
const fakeAPIVersion = "1.47"

const fakeNetworks = `[
  {
    "Name": "host", "Id": "9d1ac0c2b5e4f1d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4",
    "Created": "2025-01-02T10:00:00Z", "Scope": "local", "Driver": "host",
    "EnableIPv4": true, "EnableIPv6": false,
    "IPAM": {"Driver": "default", "Options": null, "Config": null},
    "Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": {"Network": ""},
    "ConfigOnly": false, "Containers": {}, "Options": {}, "Labels": {}
  },
  {
    "Name": "bridge", "Id": "f3b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1",
    "Created": "2025-01-02T10:00:00Z", "Scope": "local", "Driver": "bridge",
    "EnableIPv4": true, "EnableIPv6": false,
    "IPAM": {"Driver": "default", "Options": null, "Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]},
    "Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": {"Network": ""},
    "ConfigOnly": false, "Containers": {},
    "Options": {
      "com.docker.network.bridge.default_bridge": "true",
      "com.docker.network.bridge.enable_icc": "true",
      "com.docker.network.bridge.enable_ip_masquerade": "true",
      "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
      "com.docker.network.driver.mtu": "1500"
    },
    "Labels": {}
  },
  {
    "Name": "app_default", "Id": "4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f",
    "Created": "2025-01-02T10:05:00Z", "Scope": "local", "Driver": "bridge",
    "EnableIPv4": true, "EnableIPv6": true,
    "IPAM": {"Driver": "default", "Options": null, "Config": [
      {"Subnet": "fd00:db8:1::/64", "Gateway": "fd00:db8:1::1"},
      {"Subnet": "172.19.0.0/16", "Gateway": "172.19.0.1"}
    ]},
    "Internal": false, "Attachable": false, "Ingress": false, "ConfigFrom": {"Network": ""},
    "ConfigOnly": false, "Containers": {}, "Options": {},
    "Labels": {"com.docker.compose.network": "default", "com.docker.compose.project": "app", "com.docker.compose.version": "2.29.1"}
  }
]`

const fakeContainers = `[
  {"Id": "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc", "Names": ["/app-web-1"],
   "Image": "nginx:1.27", "State": "running",
   "Labels": {"com.docker.compose.project": "app", "com.docker.compose.service": "web"},
   "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
             {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
             {"PrivatePort": 9000, "Type": "tcp"},
             {"IP": "127.0.0.1", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"}],
   "NetworkSettings": {"Networks": {
     "app_default": {"NetworkID": "4e5f", "IPAddress": "172.19.0.2", "GlobalIPv6Address": "fd00:db8:1::2"}
   }}},
  {"Id": "beef000011112222333344445555666677778888999900001111222233334444", "Names": ["/lonely"],
   "State": "running", "NetworkSettings": {"Networks": {"none": {"IPAddress": ""}}}},
  {"Id": "5eed000011112222333344445555666677778888999900001111222233334444", "Names": ["/app-vpn-1"],
   "State": "running", "HostConfig": {"NetworkMode": "container:c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc"},
   "NetworkSettings": {"Networks": {}}}
]`

const fakeVersion = `{
  "Platform": {"Name": "Docker Engine - Community"},
  "Version": "27.3.1", "ApiVersion": "1.47", "MinAPIVersion": "1.24",
  "GitCommit": "41ca978", "GoVersion": "go1.22.7", "Os": "linux", "Arch": "amd64"
}`

// fakeDaemon serves a canned Docker Engine API on a unix socket and records
// the requests it gets.
type fakeDaemon struct {
	mu    sync.Mutex
	paths []string
}

func (f *fakeDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.Method+" "+r.URL.Path)
	f.mu.Unlock()

	if servePing(w, r) {
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v"+fakeAPIVersion+"/networks":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(fakeNetworks))
	case r.Method == http.MethodGet && r.URL.Path == "/v"+fakeAPIVersion+"/containers/json":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(fakeContainers))
	case r.Method == http.MethodGet && r.URL.Path == "/v"+fakeAPIVersion+"/version":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(fakeVersion))
	default:
		notFound(w)
	}
}

// servePing sets the headers of every Engine API answer and answers
// /_ping; it reports whether it answered.
func servePing(w http.ResponseWriter, r *http.Request) bool {
	w.Header().Set("Api-Version", fakeAPIVersion)
	w.Header().Set("Ostype", "linux")
	if r.URL.Path != "/_ping" || (r.Method != http.MethodHead && r.Method != http.MethodGet) {
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("OK"))
	}
	return true
}

// notFound answers as the Engine API does for an unknown path.
func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"message":"page not found"}`))
}

func (f *fakeDaemon) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.paths)
}

// startFakeDaemon serves h on a unix socket in a temporary directory and
// returns the socket's host URL.
func startFakeDaemon(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("listen on %s: %v", sock, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + sock
}

func dial(t *testing.T, host string) *Client {
	t.Helper()
	c, err := Dial(host)
	if err != nil {
		t.Fatalf("Dial(%q): %v", host, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClientNetworksFakeDaemon(t *testing.T) {
	clearDockerEnv(t)
	fake := &fakeDaemon{}
	host := startFakeDaemon(t, fake)
	c := dial(t, host)
	if got := c.Host(); got != host {
		t.Errorf("Host() = %q, want %q", got, host)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.Networks(ctx)
	if err != nil {
		t.Fatalf("Networks: %v", err)
	}
	want := []Network{
		{
			ID:     "4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f",
			Name:   "app_default",
			Bridge: "br-4e5f6a7b8c9d",
			Driver: "bridge",
			Labels: map[string]string{
				"com.docker.compose.network": "default",
				"com.docker.compose.project": "app",
				"com.docker.compose.version": "2.29.1",
			},
			Subnets: prefixes("172.19.0.0/16", "fd00:db8:1::/64"),
		},
		{
			ID:      "f3b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1",
			Name:    "bridge",
			Bridge:  "docker0",
			Driver:  "bridge",
			Subnets: prefixes("172.17.0.0/16"),
		},
		// Listed so that dockerfence can say that it does not fence it.
		{ID: "9d1ac0c2b5e4f1d8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4", Name: "host", Driver: "host"},
	}
	if diff := cmp.Diff(want, got, comparePrefixes); diff != "" {
		t.Errorf("Networks() mismatch (-want +got):\n%s", diff)
	}

	apiVersion, serverVersion, err := c.Version(ctx)
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	if apiVersion != fakeAPIVersion || serverVersion != "27.3.1" {
		t.Errorf("Version() = %q, %q; want %q, %q", apiVersion, serverVersion, fakeAPIVersion, "27.3.1")
	}

	// The client pings once to negotiate, then uses the negotiated version.
	wantReqs := []string{
		"HEAD /_ping",
		"GET /v" + fakeAPIVersion + "/networks",
		"GET /v" + fakeAPIVersion + "/version",
	}
	if diff := cmp.Diff(wantReqs, fake.requests()); diff != "" {
		t.Errorf("requests mismatch (-want +got):\n%s", diff)
	}
}

func TestClientServerErrorIsNotUnreachable(t *testing.T) {
	clearDockerEnv(t)
	host := startFakeDaemon(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", fakeAPIVersion)
		if r.URL.Path == "/_ping" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"message":"boom"}`))
	}))
	c := dial(t, host)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Networks(ctx)
	if err == nil || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Networks() error = %v, want the daemon's error, not ErrUnreachable", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	clearDockerEnv(t)

	t.Run("no socket", func(t *testing.T) {
		host := "unix://" + filepath.Join(t.TempDir(), "missing.sock")
		c := dial(t, host)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Networks(ctx)
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Networks() error = %v, want ErrUnreachable", err)
		}
		if _, _, err := c.Version(ctx); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Version() error = %v, want ErrUnreachable", err)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		// A socket file nobody listens on any more.
		sock := filepath.Join(t.TempDir(), "stale.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
		c := dial(t, "unix://"+sock)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.Networks(ctx); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("Networks() error = %v, want ErrUnreachable", err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		// A daemon that accepts connections but never answers.
		hang := make(chan struct{})
		host := startFakeDaemon(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}))
		defer close(hang)
		c := dial(t, host)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := c.Networks(ctx)
		if !errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Networks() error = %v, want ErrUnreachable wrapping context.DeadlineExceeded", err)
		}
	})
}

func TestClientContainersFakeDaemon(t *testing.T) {
	clearDockerEnv(t)
	c := dial(t, startFakeDaemon(t, &fakeDaemon{}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := c.Containers(ctx)
	if err != nil {
		t.Fatalf("Containers: %v", err)
	}
	want := []Container{
		{ID: "5eed000011112222333344445555666677778888999900001111222233334444", Name: "app-vpn-1", Addrs: map[netip.Addr]string{},
			SharesNetworkOf: "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc"},
		{ID: "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc", Name: "app-web-1", Addrs: map[netip.Addr]string{
			netip.MustParseAddr("172.19.0.2"):    "app_default",
			netip.MustParseAddr("fd00:db8:1::2"): "app_default",
		},
			Image:     "nginx:1.27",
			Labels:    map[string]string{"com.docker.compose.project": "app", "com.docker.compose.service": "web"},
			Endpoints: []Endpoint{{Network: "app_default", NetworkID: "4e5f", IPv4: netip.MustParseAddr("172.19.0.2"), IPv6: netip.MustParseAddr("fd00:db8:1::2")}},
			Ports: []PublishedPort{
				{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353, ContainerPort: 53, Proto: "udp"},
				{HostIP: netip.MustParseAddr("0.0.0.0"), HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
				{HostIP: netip.MustParseAddr("::"), HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
			},
		},
		{ID: "beef000011112222333344445555666677778888999900001111222233334444", Name: "lonely", Addrs: map[netip.Addr]string{},
			Endpoints: []Endpoint{{Network: "none"}}},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Containers() mismatch (-want +got):\n%s", diff)
	}
}

// TestPublishedPorts converts the ports of container summaries as Docker
// 20.10 and 29 list them: exposed but unpublished ports are left out,
// duplicates too, IPv4-mapped host addresses are unmapped, an engine that
// gives no host address or protocol gets the zero Addr and tcp, and the
// result is sorted by host port, protocol and host address.
func TestPublishedPorts(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name string
		in   []container.Port
		want []PublishedPort
	}{
		{name: "none", in: nil, want: nil},
		{name: "exposed only", in: []container.Port{{PrivatePort: 80, Type: "tcp"}}, want: nil},
		{name: "both families, as -p 8080:80 gives them",
			in:   []container.Port{{IP: "::", PrivatePort: 80, PublicPort: 8080, Type: "tcp"}, {IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8080, Type: "tcp"}},
			want: []PublishedPort{{HostIP: a("0.0.0.0"), HostPort: 8080, ContainerPort: 80, Proto: "tcp"}, {HostIP: a("::"), HostPort: 8080, ContainerPort: 80, Proto: "tcp"}}},
		{name: "sorted by host port, then protocol",
			in: []container.Port{
				{IP: "0.0.0.0", PrivatePort: 443, PublicPort: 8443, Type: "tcp"},
				{IP: "0.0.0.0", PrivatePort: 53, PublicPort: 53, Type: "udp"},
				{IP: "0.0.0.0", PrivatePort: 53, PublicPort: 53, Type: "tcp"},
			},
			want: []PublishedPort{
				{HostIP: a("0.0.0.0"), HostPort: 53, ContainerPort: 53, Proto: "tcp"},
				{HostIP: a("0.0.0.0"), HostPort: 53, ContainerPort: 53, Proto: "udp"},
				{HostIP: a("0.0.0.0"), HostPort: 8443, ContainerPort: 443, Proto: "tcp"},
			}},
		{name: "duplicates, mapped and missing addresses, upper case and missing protocol",
			in: []container.Port{
				{IP: "::ffff:10.0.0.1", PrivatePort: 80, PublicPort: 80, Type: "TCP"},
				{IP: "10.0.0.1", PrivatePort: 80, PublicPort: 80, Type: "tcp"},
				{PrivatePort: 81, PublicPort: 81},
				{IP: "2001:db8::1", PrivatePort: 132, PublicPort: 132, Type: "sctp"},
			},
			want: []PublishedPort{
				{HostIP: a("10.0.0.1"), HostPort: 80, ContainerPort: 80, Proto: "tcp"},
				{HostPort: 81, ContainerPort: 81, Proto: "tcp"},
				{HostIP: a("2001:db8::1"), HostPort: 132, ContainerPort: 132, Proto: "sctp"},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := publishedPorts(tc.in)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("publishedPorts() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	for p, want := range map[PublishedPort]string{
		{HostIP: a("0.0.0.0"), HostPort: 8080, ContainerPort: 80, Proto: "tcp"}: "0.0.0.0:8080->80/tcp",
		{HostIP: a("::"), HostPort: 8080, ContainerPort: 80, Proto: "tcp"}:      "[::]:8080->80/tcp",
		{HostPort: 53, ContainerPort: 5353, Proto: "udp"}:                       ":53->5353/udp",
	} {
		if got := p.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", p, got, want)
		}
	}
}

// versionedDaemon is a fake Docker daemon that speaks the Engine API from
// min to max, as dockerd's version middleware does: it announces max in
// the Api-Version header (unless silent, as daemons before API 1.25 were)
// and refuses requests for a version outside the range with dockerd's own
// messages. It lists the networks from API 1.21 on, in the shape of API
// 1.24 (which newer versions extend).
type versionedDaemon struct {
	min, max string
	silent   bool
	mu       sync.Mutex
	paths    []string
}

const networks124 = `[
  {"Name": "bridge", "Id": "f3b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1",
   "Scope": "local", "Driver": "bridge", "EnableIPv6": false,
   "IPAM": {"Driver": "default", "Options": null, "Config": [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}]},
   "Internal": false, "Containers": {}, "Options": {"com.docker.network.bridge.default_bridge": "true"}, "Labels": {}}
]`

func (f *versionedDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	if !f.silent {
		w.Header().Set("Api-Version", f.max)
	}
	if r.URL.Path == "/_ping" {
		_, _ = w.Write([]byte("OK"))
		return
	}
	refuse := func(code int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"message":"` + msg + `"}`))
	}
	version, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v"), "/")
	switch {
	case versions.LessThan(version, f.min):
		refuse(http.StatusBadRequest, "client version "+version+" is too old. Minimum supported API version is "+f.min+", please upgrade your client to a newer version")
	case versions.GreaterThan(version, f.max) && f.silent:
		// The message of daemons before API 1.25.
		refuse(http.StatusBadRequest, "client is newer than server (client API version: "+version+", server API version: "+f.max+")")
	case versions.GreaterThan(version, f.max):
		refuse(http.StatusBadRequest, "client version "+version+" is too new. Maximum supported API version is "+f.max)
	case rest == "networks" && !versions.LessThan(version, "1.21"):
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(networks124))
	default:
		notFound(w)
	}
}

func (f *versionedDaemon) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.paths)
}

// TestClientNegotiatesAPIVersion lists networks from daemons older and newer
// than the client: the client speaks the daemon's version down to 1.24, and
// its own newest (api.DefaultVersion) to newer daemons. A daemon it cannot
// speak to fails with one line that says whom to upgrade.
func TestClientNegotiatesAPIVersion(t *testing.T) {
	clearDockerEnv(t)
	tests := []struct {
		name     string
		daemon   *versionedDaemon
		wantPath string // the networks request the client sends
		wantErr  string // "" if Networks works
	}{
		{name: "oldest supported, 1.24", daemon: &versionedDaemon{min: "1.12", max: "1.24"},
			wantPath: "GET /v1.24/networks"},
		{name: "newer than the client, 1.99", daemon: &versionedDaemon{min: "1.24", max: "1.99"},
			wantPath: "GET /v" + api.DefaultVersion + "/networks"},
		{name: "newer and no longer accepting the client's, 1.99 from 1.60", daemon: &versionedDaemon{min: "1.60", max: "1.99"},
			wantPath: "GET /v" + api.DefaultVersion + "/networks",
			wantErr:  "needs API 1.60 or newer, and this dockerfence speaks at most " + api.DefaultVersion + ": upgrade dockerfence"},
		{name: "older than supported, 1.12", daemon: &versionedDaemon{min: "1.12", max: "1.12"},
			wantPath: "GET /v1.12/networks",
			wantErr:  "speaks an API older than 1.24, the oldest dockerfence supports: upgrade Docker"},
		{name: "older and silent, 1.23", daemon: &versionedDaemon{min: "1.12", max: "1.23", silent: true},
			wantPath: "GET /v1.24/networks",
			wantErr:  "speaks an API older than 1.24, the oldest dockerfence supports: upgrade Docker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host := startFakeDaemon(t, tc.daemon)
			c := dial(t, host)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := c.Networks(ctx)
			if reqs := tc.daemon.requests(); !slices.Contains(reqs, tc.wantPath) {
				t.Errorf("requests %q, want one of them %q", reqs, tc.wantPath)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Networks: %v", err)
				}
				want := []Network{{ID: "f3b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1", Name: "bridge", Bridge: "docker0", Driver: "bridge", Subnets: prefixes("172.17.0.0/16")}}
				if diff := cmp.Diff(want, got, comparePrefixes); diff != "" {
					t.Errorf("Networks() mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("Networks() = %v, want an error saying %q", got, tc.wantErr)
			}
			msg := err.Error()
			t.Logf("Networks: %s", msg)
			if !strings.Contains(msg, tc.wantErr) || !strings.Contains(msg, host) {
				t.Errorf("Networks() error = %q, want one naming %s and saying %q", msg, host, tc.wantErr)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("Networks() error is not one line: %q", msg)
			}
			if errors.Is(err, ErrUnreachable) {
				t.Errorf("Networks() error %q is ErrUnreachable; the daemon answered", msg)
			}
		})
	}
}
