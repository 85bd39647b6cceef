package fence

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/ipproto"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// proxyContainers are ingressContainers with published ports: web
// publishes 8080 and 9090 on all the host's addresses, the db 5432 on
// 10.0.0.1 only and 5433 on the loopback, the worker 53/udp.
func proxyContainers() []Container {
	ctrs := slices.Clone(ingressContainers)
	all4, all6 := netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("::")
	for i := range ctrs {
		switch ctrs[i].Name {
		case "web":
			ctrs[i].Ports = []PublishedPort{{HostIP: all4, HostPort: 8080, ContainerPort: 80, Proto: "tcp"}, {HostIP: all6, HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
				{HostIP: all4, HostPort: 9090, ContainerPort: 80, Proto: "tcp"}}
		case "db":
			ctrs[i].Ports = []PublishedPort{{HostIP: netip.MustParseAddr("10.0.0.1"), HostPort: 5432, ContainerPort: 5432, Proto: "tcp"},
				{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5433, ContainerPort: 5432, Proto: "tcp"}}
		case "worker-1":
			ctrs[i].Ports = []PublishedPort{{HostPort: 53, ContainerPort: 53, Proto: "udp"}}
		}
	}
	return ctrs
}

// TestGoldenIngressProxy renders the docker-proxy path of ingress: the
// input chain's jump, the dispatch by protocol and host port, and each
// port's chain.
func TestGoldenIngressProxy(t *testing.T) {
	pol := loadPolicy(t, "testdata/ingress.yaml")
	checkGolden(t, "ingress-proxy", CompileContainers(pol, testNetworks, proxyContainers()).Text())
}

// TestIngressProxyNoCost checks that published ports add nothing where no
// ingress rule judges them, and nothing without the containers known.
func TestIngressProxyNoCost(t *testing.T) {
	for _, file := range []string{"", "testdata/seed.yaml", "testdata/containers.yaml"} {
		r := CompileContainers(loadPolicy(t, file), testNetworks, proxyContainers())
		if txt := r.Text(); strings.Contains(txt, ProxyChain) || len(r.Proxied) > 0 {
			t.Errorf("policy %q: the table has a docker-proxy path without ingress keys:\n%s", file, txt)
		}
	}
	if r := Compile(loadPolicy(t, "testdata/ingress.yaml"), testNetworks); r.Table.Chain(ProxyChain) != nil {
		t.Errorf("without containers, the table has chain %s", ProxyChain)
	}
}

// proxyProbe is a TCP connection from src, from outside (eth0), to port
// on the host's address dst: what docker-proxy accepts (input hook).
func proxyProbe(src, dst string, port uint16) nft.Packet {
	return nft.Packet{Hook: nft.HookInput, IIfName: "eth0", Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), L4Proto: ipproto.TCP, DPort: port, HopLimit: 64}
}

// TestIngressProxyVerdicts traces connections through docker-proxy (to a
// published port on the host's own address, input hook) through the
// compiled table: they are judged as the DNAT'ed path judges them, IPv4
// and IPv6, by the network's and the container's ingress rules; the
// host's own connections (lo), containers' connections to the host,
// replies and ports no container publishes are left to the rest.
func TestIngressProxyVerdicts(t *testing.T) {
	pol := loadPolicy(t, "testdata/ingress.yaml")
	r := CompileContainers(pol, testNetworks, proxyContainers())
	for _, tc := range []struct {
		name  string
		p     nft.Packet
		want  nft.VerdictKind
		chain string
	}{
		{"office to the admin port", proxyProbe("198.51.100.9", "192.0.2.100", 8080), nft.Accept, ""},
		{"office over IPv6", proxyProbe("2001:db8:1::9", "2001:db8:ff::100", 8080), nft.Accept, ""},
		{"stranger to the admin port", proxyProbe("192.0.2.1", "192.0.2.100", 8080), nft.RejectTCPReset, "ing_br-0123456789ab.i2"},
		{"stranger over IPv6", proxyProbe("2001:db8:2::1", "2001:db8:ff::100", 8080), nft.RejectTCPReset, "ing_br-0123456789ab.i2"},
		{"stranger to 9090: ingress_default allow", proxyProbe("2001:db8:2::1", "2001:db8:ff::100", 9090), nft.Accept, ""},
		{"db on its host address from its one source", proxyProbe("198.51.100.20", "10.0.0.1", 5432), nft.Accept, ""},
		{"db on its host address from another: its section denies", proxyProbe("198.51.100.21", "10.0.0.1", 5432), nft.RejectTCPReset, "ci_dbdbdbdbdbdb.s.default"},
		{"5432 on another host address: no container publishes it there", proxyProbe("198.51.100.21", "10.0.0.2", 5432), nft.Accept, ""},
		{"a port no container publishes (ssh)", proxyProbe("192.0.2.1", "192.0.2.100", 22), nft.Accept, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := r.Trace(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Verdict != tc.want {
				t.Fatalf("verdict %v; want %v\n%s", tr.Verdict, tc.want, tr)
			}
			if tc.chain == "" {
				return
			}
			den := r.Denials[lastChain(tr)]
			if den == nil || den.Chain != tc.chain || den.Hook != policy.Ingress {
				t.Errorf("decided by %+v; want the ingress denial of %s\n%s", den, tc.chain, tr)
			}
		})
	}
	for _, tc := range []struct {
		name string
		edit func(*nft.Packet)
	}{
		{"localhost: the host's own connection", func(p *nft.Packet) {
			p.IIfName, p.Src, p.Dst = "lo", netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.1")
		}},
		{"a reply", func(p *nft.Packet) { p.Reply = true }},
		{"from a container of app_default (the host rules judge it)", func(p *nft.Packet) {
			p.IIfName, p.Src, p.Mark = "br-0123456789ab", netip.MustParseAddr("172.20.0.30"), policy.DefaultIdentityMark
		}},
	} {
		p := proxyProbe("192.0.2.1", "192.0.2.100", 8080)
		tc.edit(&p)
		tr, err := r.Trace(p)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Verdict != nft.Accept || slices.ContainsFunc(tr.Steps, func(s nft.Step) bool { return strings.HasPrefix(s.Chain, "ing_") }) {
			t.Errorf("%s: %v, judged by ingress\n%s", tc.name, tr.Verdict, tr)
		}
	}
	// The denial is attributed to the container that publishes the port.
	if pps := r.ProxiedTo(ipproto.TCP, 8080, netip.MustParseAddr("2001:db8:ff::100")); len(pps) != 2 || pps[0].Container.Name != "web" {
		t.Errorf("ProxiedTo tcp/8080 = %+v; want web's two bindings", pps)
	}
	if pps := r.ProxiedTo(ipproto.TCP, 5432, netip.MustParseAddr("10.0.0.2")); len(pps) != 0 {
		t.Errorf("ProxiedTo tcp/5432 on 10.0.0.2 = %+v; want none (bound to 10.0.0.1)", pps)
	}
}

// TestExplainProxy checks that explain --ingress judges the docker-proxy
// path of a published port as the kernel does, beside the DNAT'ed one,
// and says where the connection goes (the host's address).
func TestExplainProxy(t *testing.T) {
	pol := loadPolicy(t, "testdata/ingress.yaml")
	n := testNetworks[slices.IndexFunc(testNetworks, func(n policy.Network) bool { return n.Name == "app_default" })]
	for _, tc := range []struct {
		name      string
		src, dst  string
		port      uint16
		proxy     bool // the path exists
		verdict   policy.Verdict
		rule      string // the network rule that decides, "" for none
		container string // the container layer that decides, "" for none
	}{
		{"office to web's 8080 over IPv6", "2001:db8:1::9", "fd00:20::30", 8080, true, policy.Allow, "ingress 1", ""},
		{"stranger to web's 8080 over IPv6", "2001:db8:2::1", "fd00:20::30", 8080, true, policy.Deny, "ingress 2", ""},
		{"stranger to web's 9090", "2001:db8:2::1", "fd00:20::30", 9090, true, policy.Allow, "", ""},
		{"db's 5432 over IPv4 from another office address", "198.51.100.21", "172.20.0.20", 5432, true, policy.Deny, "", string(LayerSection)},
		{"db's 5432 over IPv6: bound to an IPv4 host address only", "2001:db8:2::1", "fd00:20::20", 5432, false, 0, "", ""},
		{"a port nobody publishes", "2001:db8:2::1", "fd00:20::30", 7777, false, 0, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := Probe{Hook: policy.Ingress, Src: netip.MustParseAddr(tc.src), Dst: netip.MustParseAddr(tc.dst), Proto: policy.ProtoTCP, Port: tc.port}
			d, err := ExplainContainer(pol, testNetworks, proxyContainers(), n, pr)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.proxy {
				if d.Proxy != nil {
					t.Fatalf("docker-proxy path %+v; want none", d.Proxy)
				}
				return
			}
			px := d.Proxy
			if px == nil {
				t.Fatal("no docker-proxy path")
			}
			if px.Verdict != tc.verdict || px.Passes != (tc.verdict == policy.Allow) || px.Trace.Verdict == nft.Accept != px.Passes {
				t.Errorf("verdict %v, passes %v; want %v\n%s", px.Verdict, px.Passes, tc.verdict, px.Trace)
			}
			if got := ruleID(px.Rule); got != tc.rule {
				t.Errorf("rule %q; want %q", got, tc.rule)
			}
			if tc.container != "" && (len(px.Layers) == 0 || px.Layers[len(px.Layers)-1].Layer != tc.container) {
				t.Errorf("layers %+v; want %s to decide", px.Layers, tc.container)
			}
			if px.Container == nil || !slices.ContainsFunc(px.Container.Container.Endpoints, func(e Endpoint) bool { return slices.Contains(e.Addrs, netip.MustParseAddr(tc.dst)) }) {
				t.Errorf("container %+v; want the one at %s", px.Container, tc.dst)
			}
			if !slices.ContainsFunc(px.Trace.Steps, func(s nft.Step) bool { return s.Chain == ProxyChain }) {
				t.Errorf("the trace does not pass %s:\n%s", ProxyChain, px.Trace)
			}
			// The DNAT'ed path decides the same.
			if d.Verdict != px.Verdict {
				t.Errorf("forward path %v, docker-proxy path %v", d.Verdict, px.Verdict)
			}
		})
	}
}

// ruleID is r's ID, "" for nil.
func ruleID(r *policy.Rule) string {
	if r == nil {
		return ""
	}
	return r.ID()
}
