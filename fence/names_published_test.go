package fence

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/nft"
)

// dnsContainer returns a container on app_default (172.20.0.53) that
// publishes the given ports.
func dnsContainer(name, id string, ports ...PublishedPort) Container {
	return Container{ID: id, Name: name, Image: "pihole/pihole", Ports: ports,
		Endpoints: []Endpoint{{Network: "app_default", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.53")}}}}
}

// holdRules returns the text of chain's DNS hold rules.
func holdRules(res *Result, chain string) []string {
	c := res.Chain(chain)
	if c == nil {
		return nil
	}
	var out []string
	for _, r := range c.Rules {
		if r.ID == DNSHoldRuleID {
			out = append(out, r.Text())
		}
	}
	return out
}

// TestNamesPublishedDNSPort: a container that publishes port 53/udp on
// the host (any address) answers its neighbours' queries to the host's
// port 53 through docker-proxy, from the host's port 53: the output hook
// then holds only TCP, so such an answer over UDP passes unheld and
// teaches nothing, while the forward hook's hold (from @resolvers) is as
// before; apply and status warn, naming the container and the port.
func TestNamesPublishedDNSPort(t *testing.T) {
	withNames(t, map[string][]string{"github": {"github.com", "*.github.com"}})
	pol := loadPolicy(t, "testdata/names.yaml")
	const br = "br-0123456789ab"
	pihole := dnsContainer("pihole", "5353535353535353aaaa",
		PublishedPort{HostIP: netip.IPv4Unspecified(), HostPort: 53, ContainerPort: 53, Proto: "udp"},
		PublishedPort{HostIP: netip.IPv6Unspecified(), HostPort: 53, ContainerPort: 53, Proto: "udp"},
		PublishedPort{HostIP: netip.IPv4Unspecified(), HostPort: 8080, ContainerPort: 80, Proto: "tcp"})
	res := CompileContainers(pol, testNetworks, []Container{pihole})
	checkGolden(t, "names-published53", res.Text())

	before := CompileContainers(pol, testNetworks, nil)
	if got, want := holdRules(res, "forward"), holdRules(before, "forward"); len(got) != 2 || !slices.Equal(got, want) {
		t.Errorf("forward hold rules:\n%s\nwant, as without the container:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	want := `ct direction reply meta l4proto tcp th sport 53 oifname "br-0123456789ab" counter queue num 53 bypass comment "DNS answers held until their names' addresses are learned"`
	if got := holdRules(res, "output"); len(got) != 1 || got[0] != want {
		t.Errorf("output hold rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	if h := res.DNSHold; h == nil || !slices.Equal(h.Chains, []string{"forward", "output"}) {
		t.Errorf("DNSHold = %+v", h)
	}

	a := netip.MustParseAddr
	for _, c := range []struct {
		name string
		p    nft.Packet
		want nft.VerdictKind
	}{
		{"answer from the host's port 53 over UDP (docker-proxy)", nft.Packet{Hook: nft.HookOutput, OIfName: br, Src: a("172.20.0.1"), Dst: a("172.20.0.2"), L4Proto: 17, SPort: 53, DPort: 40000, Reply: true}, nft.Accept},
		{"answer from the host's port 53 over UDP, IPv6", nft.Packet{Hook: nft.HookOutput, OIfName: br, Src: a("fd00:20::1"), Dst: a("fd00:20::2"), L4Proto: 17, SPort: 53, DPort: 40000, Reply: true}, nft.Accept},
		{"answer from the host's port 53 over TCP", nft.Packet{Hook: nft.HookOutput, OIfName: br, Src: a("172.20.0.1"), Dst: a("172.20.0.2"), L4Proto: 6, SPort: 53, DPort: 40000, Reply: true}, nft.Queue},
		{"answer of the host's resolver, forwarded", nft.Packet{Hook: nft.HookForward, IIfName: "eth0", OIfName: br, Src: a("192.168.100.2"), Dst: a("172.20.0.2"), L4Proto: 17, SPort: 53, DPort: 40000, Reply: true, Fib: nft.FibAnswers{SrcViaIIf: true}}, nft.Queue},
	} {
		tr, err := res.Trace(c.p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if tr.Verdict != c.want {
			t.Errorf("%s: verdict %v, want %v:\n%s", c.name, tr.Verdict, c.want, tr)
		}
	}

	var warned []string
	for _, w := range res.Warnings {
		if strings.Contains(w, "port 53") {
			warned = append(warned, w)
		}
	}
	wantW := `container "pihole" (535353535353) publishes port 53/udp on the host: answers from the host's port 53 over UDP may be container "pihole"'s (relayed by docker-proxy), so they are not held and teach nothing, not even a resolver's on the host itself; give containers a resolver in @resolvers`
	if len(warned) != 1 || warned[0] != wantW {
		t.Errorf("warnings about port 53: %q, want one:\n%s", warned, wantW)
	}
	if w := before.Warnings; slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "port 53") }) {
		t.Errorf("warnings without the container: %q", w)
	}
}

// TestNamesPublishedDNSPortBoth: with port 53 published on TCP and UDP
// (here by two containers, one on no fenced network: docker-proxy
// relays for any), no answer through the output hook is held, so the
// table has no output chain; the forward hook still holds answers from
// @resolvers. Each container is named once for each protocol.
func TestNamesPublishedDNSPortBoth(t *testing.T) {
	withNames(t, map[string][]string{"github": {"github.com", "*.github.com"}})
	pol := loadPolicy(t, "testdata/names.yaml")
	udp := dnsContainer("dns-udp", "1111111111111111", PublishedPort{HostPort: 53, ContainerPort: 5353, Proto: "udp"})
	tcp := Container{ID: "2222222222222222", Name: "dns-tcp", Endpoints: []Endpoint{{Network: "other"}},
		Ports: []PublishedPort{{HostIP: netip.MustParseAddr("192.168.1.10"), HostPort: 53, ContainerPort: 53, Proto: "tcp"}}}
	res := CompileContainers(pol, testNetworks, []Container{udp, tcp})
	if c := res.Chain("output"); c != nil {
		t.Errorf("output chain with port 53 published on TCP and UDP:\n%s", res.Text())
	}
	if h := res.DNSHold; h == nil || !slices.Equal(h.Chains, []string{"forward"}) {
		t.Errorf("DNSHold = %+v", h)
	}
	if got := holdRules(res, "forward"); len(got) != 2 {
		t.Errorf("forward hold rules: %q", got)
	}
	var warned []string
	for _, w := range res.Warnings {
		if strings.Contains(w, "port 53") {
			warned = append(warned, w)
		}
	}
	if len(warned) != 2 || !strings.HasPrefix(warned[0], `container "dns-tcp" (222222222222) publishes port 53/tcp`) || !strings.HasPrefix(warned[1], `container "dns-udp" (111111111111) publishes port 53/udp`) {
		t.Errorf("warnings about port 53:\n%s", strings.Join(warned, "\n"))
	}
}

// TestNamesPublishedOtherPorts: only the host port counts (53 of the
// container published on 5353 does not answer on the host's 53), sctp
// does not count, and without containers known (Docker not asked) both
// protocols are held. Without names, port 53 published changes nothing
// and warns of nothing.
func TestNamesPublishedOtherPorts(t *testing.T) {
	withNames(t, map[string][]string{"github": {"github.com", "*.github.com"}})
	pol := loadPolicy(t, "testdata/names.yaml")
	both := `ct direction reply meta l4proto { tcp, udp } th sport 53 oifname "br-0123456789ab" counter queue num 53 bypass comment "DNS answers held until their names' addresses are learned"`
	for _, c := range []struct {
		name string
		res  *Result
	}{
		{"container port 53 on host port 5353", CompileContainers(pol, testNetworks, []Container{dnsContainer("dns", "3333333333333333", PublishedPort{HostPort: 5353, ContainerPort: 53, Proto: "udp"})})},
		{"sctp", CompileContainers(pol, testNetworks, []Container{dnsContainer("dns", "3333333333333333", PublishedPort{HostPort: 53, ContainerPort: 53, Proto: "sctp"})})},
		{"containers not known", Compile(pol, testNetworks)},
	} {
		if got := holdRules(c.res, "output"); len(got) != 1 || got[0] != both {
			t.Errorf("%s: output hold rules %q, want %q", c.name, got, both)
		}
		warned := slices.ContainsFunc(c.res.Warnings, func(s string) bool { return strings.Contains(s, "port 53") })
		// Only not knowing the containers is warned of: a container that
		// publishes port 53 could then teach.
		if unknown := c.name == "containers not known"; warned != unknown {
			t.Errorf("%s: warnings %q", c.name, c.res.Warnings)
		}
	}
}

// TestNoNamesPublishedDNSPort: without names, a container that publishes
// port 53 changes nothing and warns of nothing.
func TestNoNamesPublishedDNSPort(t *testing.T) {
	pol := loadPolicy(t, "testdata/names.yaml")
	res := CompileContainers(pol, testNetworks, []Container{dnsContainer("dns", "3333333333333333", PublishedPort{HostPort: 53, ContainerPort: 53, Proto: "udp"})})
	if res.DNSHold != nil || res.Chain("output") != nil || slices.ContainsFunc(res.Warnings, func(s string) bool { return strings.Contains(s, "port 53") }) {
		t.Errorf("DNSHold %+v, output %v, warnings %q", res.DNSHold, res.Chain("output"), res.Warnings)
	}
}
