package status

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/google/go-cmp/cmp"
)

const publishedPolicy = `version: 1
networks:
  - match: {name: app_default}
    ingress:
      - allow: [198.51.100.10, "2001:db8:51::10"]
        ports: [8080]
        comment: the allowed client
      - deny: any
        ports: [8080]
      - deny: 203.0.113.0/24
        proto: udp
    ingress_default: allow
  - match: {name: quiet}
    egress_default: allow
containers:
  - match: {label: "tier=db"}
    ingress:
      - allow: 198.51.100.10
        proto: tcp
        ports: [5432]
    ingress_default: deny
  - match: {label: "tier=vault"}
    ingress_default: deny
`

// TestSetPublished lists the published ports of the containers on fenced
// networks with who may reach them: restricted by the network's rules,
// open by its default, narrowed by a container section, closed by one,
// open on a network whose section has no ingress keys; a container on an
// unfenced network is left out. Each family is judged by the rules that
// can match its clients (db's one allowed source is IPv4: IPv6 clients
// find it closed), and a port bound to the loopback only is local. The network layer's deny counters are
// summed per port.
func TestSetPublished(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(publishedPolicy), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	appNet := policy.Network{ID: "a1", Name: "app_default", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}
	quiet := policy.Network{ID: "q1", Name: "quiet", Bridge: "br-quiet", Subnets: []netip.Prefix{netip.MustParsePrefix("172.21.0.0/16")}}
	any4, any6 := netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("::")
	port := func(host, ctr uint16, proto string, ips ...netip.Addr) []docker.PublishedPort {
		var out []docker.PublishedPort
		for _, ip := range ips {
			out = append(out, docker.PublishedPort{HostIP: ip, HostPort: host, ContainerPort: ctr, Proto: proto})
		}
		return out
	}
	type ctr struct {
		ContainerPorts
		Labels map[string]string
		Addr   string
	}
	on := func(n policy.Network) []NetworkRef { return []NetworkRef{{ID: n.ID, Name: n.Name}} }
	ctrs := []ctr{
		{ContainerPorts{ID: "w1", Name: "web", Networks: on(appNet),
			Ports: append(append(port(8080, 80, "tcp", any4, any6), port(8081, 81, "tcp", any4, any6)...), port(53, 53, "udp", any4)...)}, nil, "172.20.0.2"},
		{ContainerPorts{ID: "d1", Name: "db", Networks: on(appNet), Ports: port(5432, 5432, "tcp", any4, any6)}, map[string]string{"tier": "db"}, "172.20.0.3"},
		{ContainerPorts{ID: "v1", Name: "vault", Networks: on(appNet), Ports: port(8200, 8200, "tcp", any4)}, map[string]string{"tier": "vault"}, "172.20.0.4"},
		{ContainerPorts{ID: "q1", Name: "calm", Networks: on(quiet), Ports: port(9000, 9000, "tcp", netip.Addr{})}, nil, "172.21.0.2"},
		{ContainerPorts{ID: "u1", Name: "elsewhere", Networks: []NetworkRef{{ID: "o1", Name: "other"}}, Ports: port(7000, 7000, "tcp", any4)}, nil, ""},
		{ContainerPorts{ID: "n1", Name: "unpublished", Networks: on(appNet)}, nil, "172.20.0.5"},
		{ContainerPorts{ID: "l1", Name: "local", Networks: on(appNet), Ports: port(9999, 80, "tcp", netip.MustParseAddr("127.0.0.1"))}, map[string]string{"tier": "vault"}, "172.20.0.6"},
	}
	var fcs []fence.Container
	var cps []ContainerPorts
	for _, c := range ctrs {
		fc := fence.Container{ID: c.ID, Name: c.Name, Labels: c.Labels}
		for _, n := range c.Networks {
			ep := fence.Endpoint{NetworkID: n.ID, Network: n.Name}
			if c.Addr != "" {
				ep.Addrs = []netip.Addr{netip.MustParseAddr(c.Addr)}
			}
			fc.Endpoints = append(fc.Endpoints, ep)
		}
		fcs = append(fcs, fc)
		cps = append(cps, c.ContainerPorts)
	}
	r := fence.CompileContainers(pol, []policy.Network{appNet, quiet}, fcs)
	st := kernelState(r.Table, map[string]uint64{"ing_br-app/ingress 2": 7, "ing_br-app/ingress 3": 2})
	s := Make(pol, r, st, SourceDocker)
	s.SetPublished(r, cps)

	want := []PublishedStatus{
		{Container: "web", ID: "w1", Network: "app_default", Bridge: "br-app", HostIPs: []string{"0.0.0.0", "::"}, HostPort: 8080, ContainerPort: 80, Proto: "tcp",
			Verdict: ReachRestricted, IPv4: ReachRestricted, IPv6: ReachRestricted, Denied: 7, Rules: []string{
				"network section 1 ingress 1 allow [198.51.100.10, 2001:db8:51::10] tcp+udp/8080",
				"network section 1 ingress 2 deny any tcp+udp/8080",
				"network section 1 ingress_default allow"}},
		{Container: "web", ID: "w1", Network: "app_default", Bridge: "br-app", HostIPs: []string{"0.0.0.0", "::"}, HostPort: 8081, ContainerPort: 81, Proto: "tcp",
			Verdict: ReachOpen, IPv4: ReachOpen, IPv6: ReachOpen, Rules: []string{"network section 1 ingress_default allow"}},
		{Container: "web", ID: "w1", Network: "app_default", Bridge: "br-app", HostIPs: []string{"0.0.0.0"}, HostPort: 53, ContainerPort: 53, Proto: "udp",
			Verdict: ReachRestricted, IPv4: ReachRestricted, Denied: 2, Rules: []string{"network section 1 ingress 3 deny 203.0.113.0/24 udp", "network section 1 ingress_default allow"}},
		{Container: "db", ID: "d1", Network: "app_default", Bridge: "br-app", HostIPs: []string{"0.0.0.0", "::"}, HostPort: 5432, ContainerPort: 5432, Proto: "tcp",
			Verdict: ReachRestricted, IPv4: ReachRestricted, IPv6: ReachClosed, Rules: []string{"network section 1 ingress_default allow", "container section 1 ingress 1 allow 198.51.100.10 tcp/5432", "container section 1 ingress_default deny"}},
		{Container: "vault", ID: "v1", Network: "app_default", Bridge: "br-app", HostIPs: []string{"0.0.0.0"}, HostPort: 8200, ContainerPort: 8200, Proto: "tcp",
			Verdict: ReachClosed, IPv4: ReachClosed, Rules: []string{"network section 1 ingress_default allow", "container section 2 ingress_default deny"}},
		{Container: "calm", ID: "q1", Network: "quiet", Bridge: "br-quiet", HostIPs: []string{}, HostPort: 9000, ContainerPort: 9000, Proto: "tcp",
			Verdict: ReachOpen, IPv4: ReachOpen, IPv6: ReachOpen, Rules: []string{"network section 2: no ingress rules"}},
		{Container: "local", ID: "l1", Network: "app_default", Bridge: "br-app", HostIPs: []string{"127.0.0.1"}, HostPort: 9999, ContainerPort: 80, Proto: "tcp",
			Verdict: ReachLocal, IPv4: ReachLocal, Rules: []string{"network section 1 ingress_default allow", "container section 2 ingress_default deny"}},
	}
	if diff := cmp.Diff(want, s.Published); diff != "" {
		t.Errorf("Published (-want +got):\n%s", diff)
	}

	var b strings.Builder
	WriteText(&b, s)
	for _, w := range []string{
		"published ports (who the ingress rules let reach them; every layer must allow):",
		"  web        app_default  0.0.0.0,:: 8080->80/tcp    restricted                                 7       network section 1 ingress 1 allow",
		"  db         app_default  0.0.0.0,:: 5432->5432/tcp  restricted (IPv4 restricted, IPv6 closed)  0",
		"  vault      app_default  0.0.0.0 8200->8200/tcp     closed",
		"  calm       quiet        - 9000->9000/tcp           open",
		"  local      app_default  127.0.0.1 9999->80/tcp     local",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("the text status lacks %q:\n%s", w, b.String())
		}
	}
}
