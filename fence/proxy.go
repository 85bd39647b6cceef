package fence

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dockerfence/dockerfence/ipproto"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// PublishedPort is a port that Docker publishes on the host for a
// container (docker run -p): connections to HostIP:HostPort go to the
// container's ContainerPort, by Docker's DNAT (forward hook) or through
// docker-proxy (input hook: the userland proxy accepts them on the host).
type PublishedPort struct {
	// HostIP is the host address the port is bound to: the unspecified
	// address (0.0.0.0, ::) or the zero Addr for all of the host's.
	HostIP netip.Addr
	// HostPort is the port on the host, ContainerPort the container's.
	HostPort, ContainerPort uint16
	// Proto is "tcp", "udp" or "sctp".
	Proto string
}

// ProxiedPort is a published port whose connections through docker-proxy
// the ingress rules judge in the input hook: Chain jumps to the ingress
// chains of the network the container is on and of the container itself.
type ProxiedPort struct {
	Port PublishedPort
	// Container is the container that publishes it, Network the fenced
	// network whose section judges it.
	Container Container
	Network   policy.Network
	// Chain is the port's chain (ingp_PROTO_PORT), which holds the
	// rules of every container that publishes it.
	Chain string
}

// Names of the docker-proxy path: the chain that the input base chain
// jumps to (ProxyChain), which looks the destination port up in a verdict
// map per protocol (ingp_tcp, ingp_udp, ingp_sctp), whose elements go to
// the chain of each published port (ingp_tcp_8080).
const (
	ProxyChain = "ingp"
	// ProxyRuleID is the ID of the input base chain's jump to it.
	ProxyRuleID = "ingress proxy"
)

// proxy builds the docker-proxy path of ingress in input base chain in:
// a connection from outside (an interface that is neither a fenced bridge
// nor the loopback) to a port that a container on a fenced network
// publishes is what docker-proxy accepts on the host, to open a
// connection of its own to the container; the forward hook never sees it.
// Its packets in the original direction are judged by the same chains that
// judge the DNAT'ed path: the ingress chain of the container's network
// (its ports are the original destination port, which here is the host
// port), then the container's. A port bound to one host address is
// judged only towards that address; a loopback binding not at all (no
// outside client reaches it). Replies passed before (the base chain's
// reply rule), and so do the host's own connections (iif lo): those are
// not ingress.
func (b *builder) proxy(in *nft.Chain) {
	type portKey struct {
		proto uint8
		port  uint16
	}
	var keys []portKey
	rules := map[portKey][]*nft.Rule{}
	for i := range b.r.Containers {
		fc := b.r.Containers[i]
		for _, p := range fc.Container.Ports {
			num, ok := proxyProto(p.Proto)
			if !ok || p.HostPort == 0 || p.HostIP.IsValid() && p.HostIP.Unmap().IsLoopback() {
				continue
			}
			var dst []nft.Match
			if a := p.HostIP.Unmap(); a.IsValid() && !a.IsUnspecified() {
				dst = []nft.Match{nft.NFProto{V6: a.Is6()}, nft.Addr{V6: a.Is6(), Prefix: netip.PrefixFrom(a, a.BitLen())}}
			}
			k := portKey{num, p.HostPort}
			chain := fmt.Sprintf("%s_%s_%d", ProxyChain, p.Proto, p.HostPort)
			for _, f := range b.r.Fenced {
				if !slices.ContainsFunc(fc.Container.Endpoints, func(e Endpoint) bool { return e.on(f.Network) }) {
					continue
				}
				var rs []*nft.Rule
				if ch, ok := f.Chains[policy.Ingress]; ok {
					rs = append(rs, &nft.Rule{Matches: dst, Counter: true, Verdict: nft.Verdict{Kind: nft.Jump, Target: ch}, ID: "network " + f.Network.Bridge,
						Comment: fmt.Sprintf("%s of %s, network %s", p.Proto, fc.Container.Name, networkName(f.Network))})
				}
				if fc.IngressChain != "" {
					rs = append(rs, &nft.Rule{Matches: dst, Counter: true, Verdict: nft.Verdict{Kind: nft.Jump, Target: fc.IngressChain}, ID: "container " + fc.IngressChain,
						Comment: fmt.Sprintf("%s of %s", p.Proto, fc.Container.Name)})
				}
				if len(rs) == 0 {
					continue
				}
				if _, seen := rules[k]; !seen {
					keys = append(keys, k)
				}
				for _, r := range rs {
					if !slices.ContainsFunc(rules[k], func(o *nft.Rule) bool { return o.ID == r.ID && slices.Equal(matchText(o), matchText(r)) }) {
						rules[k] = append(rules[k], r)
					}
				}
				b.r.Proxied = append(b.r.Proxied, ProxiedPort{Port: p, Container: fc.Container, Network: f.Network, Chain: chain})
			}
		}
	}
	if len(keys) == 0 {
		return
	}
	slices.SortFunc(keys, func(x, y portKey) int {
		if x.proto != y.proto {
			return int(x.proto) - int(y.proto)
		}
		return int(x.port) - int(y.port)
	})
	c := b.addChain(ProxyChain, nft.HookNone)
	pass := func(m nft.IfName, comment string) {
		c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{m}, Verdict: allow, ID: "not ingress", Comment: comment})
	}
	pass(nft.IfName{Name: "lo"}, "the host's own connections (localhost): not ingress")
	pass(nft.IfName{Name: "docker0"}, "from containers: the host rules judge them")
	pass(nft.IfName{Name: "br-", Prefix: true}, "from containers: the host rules judge them")
	for _, f := range b.r.Fenced {
		if br := f.Network.Bridge; !CatchAllBridge(br) {
			pass(nft.IfName{Name: br}, "from containers: the host rules judge them")
		}
	}
	for _, num := range []uint8{ipproto.TCP, ipproto.UDP, ipproto.SCTP} {
		if !slices.ContainsFunc(keys, func(k portKey) bool { return k.proto == num }) {
			continue
		}
		r, _ := ipproto.ByNum(num)
		m := &nft.Set{Name: ProxyChain + "_" + r.Name, Key: nft.KeyService, Map: true}
		for _, k := range keys {
			if k.proto != num {
				continue
			}
			chain := fmt.Sprintf("%s_%d", m.Name, k.port)
			m.VMap = append(m.VMap, nft.VMapElem{Port: k.port, Chain: chain})
			kc := b.addChain(chain, nft.HookNone)
			kc.Rules = rules[k]
		}
		b.addSet(m)
		c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.L4Proto{Protos: []uint8{num}}}, Counter: true, Verdict: nft.Verdict{Kind: nft.VMap, Target: m.Name, Key: nft.SelDPort}, ID: "published " + r.Name, Comment: "to a port published through docker-proxy"})
	}
	in.Rules = append(in.Rules, &nft.Rule{Verdict: nft.Verdict{Kind: nft.Jump, Target: ProxyChain}, ID: ProxyRuleID})
}

// matchText renders a rule's matches, to compare two rules.
func matchText(r *nft.Rule) []string {
	out := make([]string, len(r.Matches))
	for i, m := range r.Matches {
		out[i] = fmt.Sprintf("%#v", m)
	}
	return out
}

// proxyProto returns the IANA number of a published port's protocol.
func proxyProto(proto string) (uint8, bool) {
	switch strings.ToLower(proto) {
	case "tcp":
		return ipproto.TCP, true
	case "udp":
		return ipproto.UDP, true
	case "sctp":
		return ipproto.SCTP, true
	}
	return 0, false
}

// ProxiedTo returns the published ports that a connection through
// docker-proxy to host address dst (the zero Addr for any), port and
// protocol proto (IANA number) is judged by, in the table's order.
func (r *Result) ProxiedTo(proto uint8, port uint16, dst netip.Addr) []ProxiedPort {
	var out []ProxiedPort
	for _, pp := range r.Proxied {
		num, _ := proxyProto(pp.Port.Proto)
		if num != proto || pp.Port.HostPort != port {
			continue
		}
		if a := pp.Port.HostIP.Unmap(); dst.IsValid() && a.IsValid() && !a.IsUnspecified() && a != dst.Unmap() {
			continue
		}
		out = append(out, pp)
	}
	return out
}
