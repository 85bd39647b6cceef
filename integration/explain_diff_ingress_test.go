package integration

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/dockerfence/dockerfence/integration/topo"
)

// The ingress half of TestExplainAgreesWithKernel: connections from
// outside (LAN and Inet) into the lab's containers, to published ports
// that Host DNATs as Docker does, or routed to the containers' own
// addresses.

// diffClient is an address outside that opens connections into the
// containers, and the address of Host it reaches published ports on.
type diffClient struct {
	ns   *topo.NS
	addr netip.Addr
	// host is Host's address on the client's link (lan0 or wan0), in the
	// client's family: published ports are reached there.
	host netip.Addr
}

// diffPub is a published port: Host DNATs port/proto to the container's
// cport, in both families where the container has an address of each.
type diffPub struct {
	port  uint16
	proto string
	ctr   *diffCtr
	cport uint16
}

// setUpIngress gives the lab its outside clients and published ports, and
// DNATs these in Host as Docker does (nat prerouting, to the host's own
// addresses only, from outside only).
func (lab *diffLab) setUpIngress() {
	tp := lab.e.tp
	for _, c := range []struct {
		ns    *topo.NS
		addrs []string
	}{
		{tp.LAN, []string{topo.LANProxy4, topo.LANDB4, "192.168.100.200", topo.LANProxy6, topo.LANDB6, "fd00:100::1:2"}},
		{tp.Inet, []string{topo.InetIP4, "203.0.113.20", topo.InetIP6, "2001:db8:ff::20"}},
	} {
		for _, a := range c.addrs {
			addr := netip.MustParseAddr(a)
			host := map[bool]string{true: topo.HostLAN4, false: topo.HostLAN6}[addr.Is4()]
			if c.ns == tp.Inet {
				host = map[bool]string{true: topo.HostWAN4, false: topo.HostWAN6}[addr.Is4()]
			}
			lab.clients = append(lab.clients, diffClient{ns: c.ns, addr: addr, host: netip.MustParseAddr(host)})
		}
	}
	ctr, ctr2, ctr3 := lab.ctrs[0], lab.ctrs[1], lab.ctrs[2]
	lab.pubs = []diffPub{
		{8080, "tcp", ctr, 80},
		{8081, "tcp", ctr, 80}, // a second published port of one container port
		{5353, "udp", ctr, 53},
		{5432, "tcp", ctr2, 5432},
		{15432, "tcp", ctr2, 5432},
		{9999, "udp", ctr2, 9999},
		{8443, "tcp", ctr3, 443}, // ctr3 has IPv4 only
		{1194, "udp", ctr3, 1194},
	}
	var v4, v6 []string
	for _, p := range lab.pubs {
		r := fmt.Sprintf("\t\tiifname { %q, %q } fib daddr type local %s dport %d dnat to %s\n", topo.LANIf, topo.WANIf, p.proto, p.port, netip.AddrPortFrom(p.ctr.addr4, p.cport))
		v4 = append(v4, r)
		if p.ctr.addr6.IsValid() {
			v6 = append(v6, fmt.Sprintf("\t\tiifname { %q, %q } fib daddr type local %s dport %d dnat to %s\n", topo.LANIf, topo.WANIf, p.proto, p.port, netip.AddrPortFrom(p.ctr.addr6, p.cport)))
		}
	}
	table := func(fam string, rules []string) string {
		return "table " + fam + " dfdnat {\n\tchain pre {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n" + strings.Join(rules, "") + "\t}\n}\n"
	}
	tp.Host.Run(lab.t, "nft", "-f", lab.e.write("diff-dnat.nft", table("ip", v4)+table("ip6", v6)))
}

// ingressDest returns the lab's destination that is c's address in the
// family of v6, and false if c has none.
func (lab *diffLab) ingressDest(c *diffCtr, v6 bool) (diffDest, bool) {
	for _, d := range lab.dests {
		if d.ctr == c && d.addr.Is6() == v6 {
			return d, true
		}
	}
	return diffDest{}, false
}

// ingressCalibration returns a probe from every client into every
// published port and, routed, to every container's address, TCP and UDP.
func (lab *diffLab) ingressCalibration() []*diffProbe {
	var out []*diffProbe
	for _, cl := range lab.clients {
		for _, pub := range lab.pubs {
			if d, ok := lab.ingressDest(pub.ctr, cl.addr.Is6()); ok {
				out = append(out, lab.ingressProbe(cl, pub.ctr, d, &pub, pub.proto, pub.cport))
			}
		}
		for _, c := range lab.ctrs {
			for _, proto := range []string{"tcp", "udp"} {
				if d, ok := lab.ingressDest(c, cl.addr.Is6()); ok {
					out = append(out, lab.ingressProbe(cl, c, d, nil, proto, 7))
				}
			}
		}
	}
	return out
}

// ingressProbe makes a probe from client cl into container c's address d:
// through published port pub, or routed (pub nil) to port. Its source port
// is used only once: every probe is a connection of its own.
func (lab *diffLab) ingressProbe(cl diffClient, c *diffCtr, d diffDest, pub *diffPub, proto string, port uint16) *diffProbe {
	p := &diffProbe{ctr: c, dst: d, src: cl.addr, srcKind: "outside", proto: proto, port: port, in: &cl, pub: pub}
	n := lab.nextID.Add(1)
	p.id = uint16(20000 + n%40000)
	return p
}

// ingressPorts are ports that ingress rules name: the published ports,
// the containers' ports, and others.
func (lab *diffLab) ingressPorts() []int {
	var out []int
	for _, p := range lab.pubs {
		out = append(out, int(p.port), int(p.cport))
	}
	return append(out, 7, 22, 443, 3000)
}

// ingressPrefix draws a source for an ingress rule: around the outside
// clients, or a fixed one.
func (g *polGen) ingressPrefix() netip.Prefix {
	cl := g.lab.clients[g.r.IntN(len(g.lab.clients))].addr
	switch g.r.IntN(10) {
	case 0, 1, 2, 3:
		return netip.PrefixFrom(cl, cl.BitLen())
	case 4, 5, 6:
		bits := 8 + g.r.IntN(25)
		if cl.Is6() {
			bits = pick(g.r, 16, 32, 48, 64, 96, 120, 126, 127, 128, g.r.IntN(129))
		}
		p, _ := cl.Prefix(bits)
		return p
	}
	return netip.MustParsePrefix(pick(g.r, "192.168.100.0/24", "192.168.100.0/25", "192.168.100.128/25", "203.0.113.0/24",
		"0.0.0.0/0", "::/0", "fd00::/8", "fd00:100::/64", "2001:db8::/32", "2001:db8:ff::/64", "10.0.0.0/8", "198.51.100.0/24"))
}

// ingressKeys writes a section's ingress: 0 to 5 rules and, mostly, an
// ingress_default; section is the number the rules are recorded with.
func (g *polGen) ingressKeys(b *strings.Builder, section int) {
	g.inbound = true
	defer func() { g.inbound = false }()
	if n := g.r.IntN(6); n > 0 || g.chance(30) {
		b.WriteString("    ingress:")
		if n == 0 {
			b.WriteString(" []")
		}
		b.WriteString("\n")
		for range n {
			items, _ := g.ruleItems(false, section)
			blockRule(b, items)
		}
	}
	if g.chance(75) {
		fmt.Fprintf(b, "    ingress_default: %s\n", pick(g.r, "allow", "deny", "deny"))
	}
}

// ingressProbes draws n probes from outside into the containers: mostly
// through a published port, else routed to a container's address; half of
// them aim at an ingress rule (a source it holds, its protocol, a port at
// the edge of its ranges or a published port it names).
func (lab *diffLab) ingressProbes(r *rand.Rand, g *polGen, n int) []*diffProbe {
	var rules []*genRule
	for _, gr := range g.rules {
		if gr.ingress {
			rules = append(rules, gr)
		}
	}
	var out []*diffProbe
	for len(out) < n {
		var rule *genRule
		if len(rules) > 0 && r.IntN(2) == 0 {
			rule = rules[r.IntN(len(rules))]
		}
		cl := lab.clients[r.IntN(len(lab.clients))]
		if rule != nil && r.IntN(5) > 0 {
			var covered []diffClient
			for _, c := range lab.clients {
				if rule.coversSource(c.addr) {
					covered = append(covered, c)
				}
			}
			if len(covered) > 0 {
				cl = covered[r.IntN(len(covered))]
			}
		}
		v6 := cl.addr.Is6()
		var p *diffProbe
		if r.IntN(10) < 6 {
			var pubs []*diffPub
			for i := range lab.pubs {
				pub := &lab.pubs[i]
				if _, ok := lab.ingressDest(pub.ctr, v6); !ok {
					continue
				}
				if rule != nil && r.IntN(4) > 0 && (!rule.fitsProto(pub.proto) || len(rule.ports) > 0 && !slices.Contains(rule.ports, pub.port)) {
					continue
				}
				pubs = append(pubs, pub)
			}
			if len(pubs) == 0 {
				continue
			}
			pub := pubs[r.IntN(len(pubs))]
			d, _ := lab.ingressDest(pub.ctr, v6)
			p = lab.ingressProbe(cl, pub.ctr, d, pub, pub.proto, pub.cport)
		} else {
			c := lab.ctrs[r.IntN(len(lab.ctrs))]
			d, ok := lab.ingressDest(c, v6)
			if !ok {
				continue
			}
			proto := pick(r, "tcp", "udp")
			if rule != nil && (rule.proto == "tcp" || rule.proto == "udp") {
				proto = rule.proto
			}
			port := uint16(pick(r, lab.ingressPorts()...))
			if rule != nil && len(rule.ports) > 0 && r.IntN(5) > 0 {
				port = rule.ports[r.IntN(len(rule.ports))]
			}
			p = lab.ingressProbe(cl, c, d, nil, proto, port)
		}
		if net, ok := g.reported[p.ctr]; ok {
			p.container = p.ctr.cname
			if r.IntN(2) == 0 {
				p.network = net
			}
			if r.IntN(3) == 0 {
				p.toGiven = true
			}
		} else {
			p.network, p.toGiven = lab.networkArg(r, g, p.ctr), true
		}
		out = append(out, p)
	}
	return out
}

// coversSource reports whether an ingress rule's addresses hold source a
// from outside: self never does (no client is inside a network).
func (r *genRule) coversSource(a netip.Addr) bool {
	return r.any || slices.ContainsFunc(r.prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
}

// fitsProto reports whether the rule's protocol lets proto through.
func (r *genRule) fitsProto(proto string) bool {
	return r.proto == "" || r.proto == "any" || r.proto == proto
}

// publishedPort is explain's --to-port: the published port for a DNAT'ed
// connection, the container's for one routed to its address.
func (p *diffProbe) publishedPort() string {
	port := p.port
	if p.pub != nil {
		port = p.pub.port
	}
	return strconv.Itoa(int(port)) + "/" + p.proto
}
