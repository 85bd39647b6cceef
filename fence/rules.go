package fence

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dockerfence/dockerfence/ipproto"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

var (
	linkLocal4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocal6 = netip.MustParsePrefix("fe80::/10")
)

// allow is the verdict of an allow: the packet goes on to the next layer.
var allow = nft.Verdict{Kind: nft.Return}

type builder struct {
	pol  *policy.Policy
	r    *Result
	sets map[string]*nft.Set
	// sectionFor picks a network's section.
	sectionFor func(policy.Network) *policy.Section
	// containersKnown is set when the compiler was given the containers:
	// the container layer is built.
	containersKnown bool
	// namesOf returns the names lists a rule's addresses use (nil: none
	// do); dnsQueue is the queue DNS answers are held in.
	namesOf  func(*policy.Rule) []NamesRef
	dnsQueue uint16
	// claims collects the identities of containers with checked ports,
	// for the bridge table (see claimsTable).
	claims claims
}

func (b *builder) addSet(s *nft.Set) {
	b.sets[s.Name] = s
	b.r.Table.Sets = append(b.r.Table.Sets, s)
}

func (b *builder) addChain(name string, h nft.Hook) *nft.Chain {
	c := &nft.Chain{Name: name, Hook: h}
	b.r.Table.Chains = append(b.r.Table.Chains, c)
	return c
}

// addrMatches returns the matches that select addresses in prefixes, one per
// family that has any: an inline prefix for one, else a named set called
// name+"_4"/"_6", created on first use.
func (b *builder) addrMatches(name string, prefixes []netip.Prefix, src, neg bool) (v4, v6 *nft.Addr) {
	var r4, r6 []nft.Range
	for _, r := range nft.Ranges(prefixes) {
		if r.From.Is4() {
			r4 = append(r4, r)
		} else {
			r6 = append(r6, r)
		}
	}
	mk := func(rs []nft.Range, v6 bool) *nft.Addr {
		if len(rs) == 0 {
			return nil
		}
		a := &nft.Addr{V6: v6, Src: src, Neg: neg}
		if len(rs) == 1 {
			if pfx, ok := nft.RangePrefix(rs[0]); ok {
				a.Prefix = pfx
				return a
			}
		}
		key, suffix := nft.KeyIPv4, "_4"
		if v6 {
			key, suffix = nft.KeyIPv6, "_6"
		}
		a.Set = name + suffix
		if _, ok := b.sets[a.Set]; !ok {
			b.addSet(&nft.Set{Name: a.Set, Key: key, Ranges: rs})
		}
		return a
	}
	return mk(r4, false), mk(r6, true)
}

// networkChain builds the chain that judges packets from network n (nil for
// bridges not known yet) in direction d with the section's rules, and its
// deny chains.
func (b *builder) networkChain(name string, sec *policy.Section, d Direction, n *policy.Network) {
	h := d.Hook
	c := b.addChain(name, nft.HookNone)
	if d.Inbound {
		b.inboundHead(c, n)
	} else {
		b.outboundHead(c, name, sec, d, n)
	}
	for _, r := range sec.Rules(h) {
		c.Rules = append(c.Rules, b.policyRules(name, Denial{Network: n, Section: sec}, d, r, n, netSetName(name))...)
	}
	if TunnelEndpoints(b.pol, sec, d) {
		b.tunnelEndpointRules(c, name, sec, d, n)
	}
	def := &nft.Rule{Counter: true, Verdict: allow, ID: "default", Comment: h.String() + "_default allow"}
	if d.ToHost {
		// What a tunnel on the host decapsulates from this packet keeps
		// the mark, and the tunnel fence denies it (see tunnelRule). A
		// host rule that allows a packet explicitly lets it through
		// unmarked: the operator chose that service, tunnel or not.
		def.SetMark = b.pol.Settings.TunnelMark
	}
	if sec.Default(h) == policy.Deny {
		def.SetMark = 0
		def.Verdict = nft.Verdict{Kind: nft.Goto, Target: b.denyChain(name, &Denial{Network: n, Section: sec, Hook: h, Reason: ReasonDefault})}
		def.Comment = h.String() + "_default deny"
	}
	c.Rules = append(c.Rules, def)
}

// SameBridgeRuleID is the ID of the rule of an inbound chain that passes
// packets between containers of its network, RelatedICMPRuleID that of
// the rule that passes ICMP errors of connections (see inboundHead).
const (
	SameBridgeRuleID  = "same network"
	RelatedICMPRuleID = "related icmp"
)

// inboundHead adds the first rules of chain c, which judges the packets
// into network n (nil for bridges not known yet) in an inbound direction:
// those between the network's own containers pass, for the sender's
// egress judges them (judged once, not twice). For bridges not known
// yet, that is any packet from a Docker bridge: the sender's egress judges
// those too, and the chain cannot name the bridge.
//
// ICMP errors related to a connection pass first: a router's "packet too
// big" about a container's packets (path MTU discovery) travels in the
// original direction of the connection a client opened into it, from an
// address no ingress rule names.
func (b *builder) inboundHead(c *nft.Chain, n *policy.Network) {
	c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.CtRelated{}, nft.L4Proto{Protos: []uint8{ipproto.ICMP, ipproto.ICMPv6}}}, Counter: true, Verdict: allow, ID: RelatedICMPRuleID, Comment: "ICMP errors of connections (path MTU discovery)"})
	same := func(m nft.IfName, comment string) {
		c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{m}, Counter: true, Verdict: allow, ID: SameBridgeRuleID, Comment: comment})
	}
	if n != nil {
		same(nft.IfName{Name: n.Bridge}, "between containers of the network: their egress judges them")
		return
	}
	same(nft.IfName{Name: "docker0"}, "from containers: their egress judges them")
	same(nft.IfName{Name: "br-", Prefix: true}, "from containers: their egress judges them")
}

// outboundHead adds the first rules of chain c, which judges what the
// containers of network n (nil for bridges not known yet) send in
// direction d: neighbour discovery passes, sources outside the network
// are denied (anti-spoofing).
func (b *builder) outboundHead(c *nft.Chain, name string, sec *policy.Section, d Direction, n *policy.Network) {
	h := d.Hook
	// IPv6 neighbour discovery passes in both hooks: to the host, and, where
	// br_netfilter hands bridged traffic to the forward hook, between the
	// containers of a bridge (it is link-local, so it is never routed).
	// The family is matched first, so that an IPv4 packet of protocol 58
	// cannot pass as ICMPv6, and the hop limit, so that an ICMPv6 packet of
	// an ND type cannot be routed past the deny rules.
	c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.NFProto{V6: true}, nft.ICMPv6Type{Types: d.ND}, nft.HopLimit{Value: 255}}, Counter: true, Verdict: allow, ID: "nd", Comment: "IPv6 neighbour discovery"})
	spoof := b.denyChain(name, &Denial{Network: n, Section: sec, Hook: h, Reason: ReasonSpoof})
	spoofRule := func(m ...nft.Match) {
		c.Rules = append(c.Rules, &nft.Rule{Matches: m, Counter: true, Verdict: nft.Verdict{Kind: nft.Goto, Target: spoof}, ID: "spoof", Comment: "source outside the network (anti-spoofing)"})
	}
	if n == nil {
		if d.ToHost {
			spoofRule(nft.Addr{Src: true, Neg: true, Prefix: linkLocal4}, nft.Fib{Src: true, Missing: true})
			spoofRule(nft.Addr{V6: true, Src: true, Neg: true, Prefix: linkLocal6}, nft.Fib{Src: true, Missing: true})
		} else {
			spoofRule(nft.Fib{Src: true, Missing: true})
		}
	} else {
		v4, v6 := b.addrMatches(netSetName(name), n.Subnets, true, true)
		for _, fam := range []struct {
			a  *nft.Addr
			v6 bool
			ll netip.Prefix
		}{{v4, false, linkLocal4}, {v6, true, linkLocal6}} {
			// Link-local sources are no spoofing towards the host, nor, for
			// IPv6, in the forward hook: the kernel never routes an IPv6
			// link-local source, so there they are bridged traffic between
			// containers (br_netfilter), which needs them.
			exempt := d.ToHost || fam.v6
			switch {
			case fam.a == nil && exempt:
				spoofRule(nft.Addr{V6: fam.v6, Src: true, Neg: true, Prefix: fam.ll})
			case fam.a == nil:
				spoofRule(nft.NFProto{V6: fam.v6})
			case exempt:
				spoofRule(*fam.a, nft.Addr{V6: fam.v6, Src: true, Neg: true, Prefix: fam.ll})
			default:
				spoofRule(*fam.a)
			}
		}
	}
}

// IPv6 link-local control traffic: what a container's kernel sends by
// itself when its interface comes up (see linkLocalControl).
var (
	// linkLocalSrc are the sources it comes from: the interface's
	// link-local address, or the unspecified address before duplicate
	// address detection has made that one valid.
	linkLocalSrc = []netip.Prefix{linkLocal6, unspecified6}
	unspecified6 = netip.MustParsePrefix("::/128")
	// linkScopeMcast is the link-local multicast scope, ff02::/16.
	linkScopeMcast = netip.MustParsePrefix("ff02::/16")
	// mldv2Routers is where MLDv2 reports go (RFC 3810), allRouters where
	// router solicitations go (RFC 4861).
	mldv2Routers = netip.MustParsePrefix("ff02::16/128")
	allRouters   = netip.MustParsePrefix("ff02::2/128")
	// solicitedNode is where duplicate address detection's neighbour
	// solicitations go: the solicited-node groups (RFC 4291).
	solicitedNode = netip.MustParsePrefix("ff02::1:ff00:0/104")
)

// ICMPv6 types of the link-local control traffic.
const (
	mldv1Report, mldDone = 131, 132 // RFC 2710: to the group, ff02::2
	mldv2Report          = 143      // RFC 3810: to ff02::16
	routerSolicit        = 133      // RFC 4861: to ff02::2
	neighbourSolicit     = 135      // RFC 4862: DAD, from :: to the solicited-node group
)

// LinkLocalControlRuleID is the ID of the rules of the base chains that
// pass a container's own IPv6 link-local control traffic.
const LinkLocalControlRuleID = "link-local control"

// linkLocalControl returns the rules that accept, at the top of direction
// d's base chain, the IPv6 link-local control traffic that a container's
// kernel sends by itself when its interface comes up: multicast listener
// reports and done messages (MLD: ICMPv6 131 and 132 to a link-scope
// group, 143 to ff02::16, hop limit 1, as RFC 2710 and 3810 require),
// from a link-local source or, before duplicate address detection ends,
// the unspecified one (which the anti-spoofing rules would deny); and, in
// the forward hook, router solicitations (133 to ff02::2, hop limit 255,
// as RFC 4861 requires, from either) and duplicate address detection (a
// neighbour solicitation, 135, from :: to a solicited-node group, hop
// limit 255, RFC 4862). Those two pass the network chains as neighbour
// discovery in the input hook, but in the forward hook the container
// layer would hold them: by their link-local source, and, on a bridge
// dockerfence does not know yet, whatever their source. Each match is
// exact: the family, the type, the hop limit, the source and the
// multicast destination. A packet with a hop limit of 1 is never routed
// (the kernel drops it before the forward hook), nor is one to a
// link-local group: these are bridged between a network's containers
// (br_netfilter) or sent to the host. Anything else, such as an MLD query
// (130), a neighbour solicitation from another source or an echo to
// ff02::1, is judged as before.
//
// There is a rule for each source prefix (no set: the table gains no set
// to keep), the type first, so that other packets fail at the second
// match.
func (b *builder) linkLocalControl(d Direction) []*nft.Rule {
	var rules []*nft.Rule
	add := func(types []uint8, hop uint8, dst netip.Prefix, comment string, srcs ...netip.Prefix) {
		for _, src := range srcs {
			rules = append(rules, &nft.Rule{Matches: []nft.Match{nft.NFProto{V6: true}, nft.ICMPv6Type{Types: types}, nft.HopLimit{Value: hop}, nft.Addr{V6: true, Prefix: dst}, nft.Addr{V6: true, Src: true, Prefix: src}},
				Counter: true, Verdict: nft.Verdict{Kind: nft.Accept}, ID: LinkLocalControlRuleID, Comment: comment})
		}
	}
	add([]uint8{mldv1Report, mldDone}, 1, linkScopeMcast, "IPv6 multicast listener report and done (MLDv1), link-local", linkLocalSrc...)
	add([]uint8{mldv2Report}, 1, mldv2Routers, "IPv6 multicast listener report (MLDv2), link-local", linkLocalSrc...)
	if !d.ToHost {
		add([]uint8{routerSolicit}, 255, allRouters, "IPv6 router solicitation, link-local", linkLocalSrc...)
		add([]uint8{neighbourSolicit}, 255, solicitedNode, "IPv6 duplicate address detection", unspecified6)
	}
	return rules
}

// TunnelEndpointRuleID is the ID of the rules that deny a container's
// packets to tunnel endpoints on the host (see tunnelEndpointRules).
const TunnelEndpointRuleID = "tunnel endpoint"

// tunnelEndpointRules adds to host chain c, after the section's rules and
// before its default allow, the rules that deny what only that default
// would let through to a tunnel endpoint: the tunnel protocols (IPIP,
// IPv6-in-IP, GRE, MPLS-in-IP) and the UDP ports tunnels listen on by
// default (tunnelPorts: VXLAN, GENEVE, GRE-in-UDP, MPLS-in-UDP, WireGuard).
// The packet mark covers tunnels that keep it through decapsulation on
// any port; these rules cover the ones that clear it (WireGuard), on
// their default ports, and keep every tunnel's outer packet from the host.
// A host rule that allows such traffic comes first and lets it through:
// the operator chose that service (and apply warns). Off with the tunnel
// fence (settings.tunnel_mark: 0).
func (b *builder) tunnelEndpointRules(c *nft.Chain, name string, sec *policy.Section, d Direction, n *policy.Network) {
	deny := nft.Verdict{Kind: nft.Goto, Target: b.denyChain(name, &Denial{Network: n, Section: sec, Hook: d.Hook, Reason: ReasonTunnelEndpoint})}
	c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.L4Proto{Protos: ipproto.Tunnels}}, Counter: true, Verdict: deny, ID: TunnelEndpointRuleID, Comment: "tunnel protocol to this host"})
	if _, ok := b.sets[tunnelPortSet]; !ok {
		var ports []nft.PortRange
		for _, tp := range tunnelPorts {
			ports = append(ports, nft.PortRange{First: tp.port, Last: tp.port})
		}
		b.addSet(&nft.Set{Name: tunnelPortSet, Key: nft.KeyService, Ports: nft.MergePorts(ports)})
	}
	c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.L4Proto{Protos: []uint8{ipproto.UDP}}, nft.DPort{Set: tunnelPortSet}}, Counter: true, Verdict: deny, ID: TunnelEndpointRuleID, Comment: "UDP port of a tunnel to this host"})
}

// TunnelEndpoints reports whether the chains of section sec in direction d
// deny packets to tunnel endpoints on the host (TunnelEndpointRuleID): in
// the host direction, when host_default is allow and the tunnel fence is
// on.
func TunnelEndpoints(pol *policy.Policy, sec *policy.Section, d Direction) bool {
	return d.ToHost && sec.Default(d.Hook) == policy.Allow && pol.Settings.TunnelMark != 0
}

// TunnelEndpointMatch says what the tunnel endpoint rules match, for
// status.
var TunnelEndpointMatch = func() string {
	var names, ports []string
	for _, p := range ipproto.Tunnels {
		r, _ := ipproto.ByNum(p)
		names = append(names, r.Title)
	}
	for _, tp := range tunnelPorts {
		ports = append(ports, fmt.Sprint(tp.port))
	}
	return strings.Join(names, ", ") + "; udp/" + strings.Join(ports, ",") + " (tunnels' ports)"
}()

// tunnelPortSet is the set of the UDP ports of tunnelPorts.
const tunnelPortSet = "tunnel_ports"

// denyChain adds the chain that logs and refuses packets of network chain
// for the reason d gives, records d under the chain's name, and returns the
// name.
func (b *builder) denyChain(network string, d *Denial) string {
	return b.denyChainIn(b.r.Table, network, d)
}

// denyChainIn is denyChain of a chain of table tbl: the inet table, or its
// netdev table. Chain names are one namespace across the two, as Denials
// is keyed by them.
func (b *builder) denyChainIn(tbl *nft.Table, network string, d *Denial) string {
	s := b.pol.Settings
	suffix := d.Reason.String()
	if d.Rule != nil {
		suffix = ruleTag(d.Rule)
	}
	c := &nft.Chain{Name: network + "." + suffix}
	d.Chain, d.Audit = c.Name, s.Mode == policy.Audit
	b.r.Denials[c.Name] = d
	if s.LogDenied {
		prefix := LogPrefix
		if s.Mode == policy.Audit {
			prefix = AuditLogPrefix
		}
		log := &nft.Log{Prefix: prefix + c.Name + " ", Group: s.LogGroup}
		if d.Reason.forged() {
			// The source is not the sender's: a limit of its own would let
			// a sender fill the meters with forged sources. The chain's
			// limit is shared by those forging sources on this network.
			c.Rules = append(c.Rules, &nft.Rule{Limit: s.LogRate, Log: log, ID: "log"})
		} else {
			for _, m := range b.logMeters() {
				c.Rules = append(c.Rules, &nft.Rule{Meter: m, Log: log, ID: "log"})
			}
		}
	}
	switch {
	case s.Mode == policy.Audit:
		// The packet would be denied: it goes on to the next layer, which
		// judges (and logs) it as if this one had allowed it.
		c.Rules = append(c.Rules, &nft.Rule{Verdict: allow, ID: "audit", Comment: "audit mode: would deny"})
	case s.DenyAction == policy.Drop || d.Reason.drops():
		// A forged source is an address the container chose: a reset or
		// an ICMP error would go to that address, so such packets are
		// dropped whatever deny_action says.
		c.Rules = append(c.Rules, &nft.Rule{Verdict: nft.Verdict{Kind: nft.Drop}, ID: "drop"})
	default:
		c.Rules = append(c.Rules,
			&nft.Rule{Matches: []nft.Match{nft.L4Proto{Protos: []uint8{ipproto.TCP}}}, Verdict: nft.Verdict{Kind: nft.RejectTCPReset}, ID: "reject tcp"},
			&nft.Rule{Verdict: nft.Verdict{Kind: nft.RejectAdminProhibited}, ID: "reject"})
	}
	tbl.Chains = append(tbl.Chains, c)
	return c.Name
}

// logMeterTimeout is how long a source's log limit is kept after its last
// denial. Its burst is back in full after a second without one, so
// forgetting it later changes nothing but the room in the meter's set.
const logMeterTimeout = 10 * time.Second

// logMeters returns the meters that limit the denial log per source
// address, one per family, and adds their sets on first use. The sets are
// the table's, shared by all deny chains: a source's log_rate covers all
// its denials, and one container's flood cannot use up another's.
func (b *builder) logMeters() []*nft.Meter {
	out := make([]*nft.Meter, 0, 2)
	for _, fam := range []struct {
		set string
		key nft.KeyType
		sel nft.Selector
	}{{"log_4", nft.KeyIPv4, nft.SelSAddr4}, {"log_6", nft.KeyIPv6, nft.SelSAddr6}} {
		if _, ok := b.sets[fam.set]; !ok {
			b.addSet(&nft.Set{Name: fam.set, Key: fam.key, Dynamic: true, Timeout: true, Owner: nft.OwnedByRuntime})
		}
		out = append(out, &nft.Meter{Set: fam.set, Key: fam.sel, Rate: b.pol.Settings.LogRate, Timeout: logMeterTimeout})
	}
	return out
}

// ruleTag is the short form of a rule's identity used in chain and set names: e3, h1.
func ruleTag(r *policy.Rule) string { return fmt.Sprintf("%c%d", r.Hook.String()[0], r.Index) }

// policyRules renders one policy rule as kernel rules: one per address family
// it needs (or one for any), all with the rule's ID. In an inbound
// direction the rule's addresses are the source and its ports the
// connection's original destination port. den says whose rule it
// is (network, section, container) for its deny chain; selfSet names the
// set of network n's subnets, which "self" alone uses.
func (b *builder) policyRules(chain string, den Denial, d Direction, r *policy.Rule, n *policy.Network, selfSet string) []*nft.Rule {
	verdict := allow
	if r.Verdict == policy.Deny {
		den.Hook, den.Rule, den.Reason = r.Hook, r, ReasonRule
		verdict = nft.Verdict{Kind: nft.Goto, Target: b.denyChain(chain, &den)}
	}
	comment := fmt.Sprintf("%s %s", r.ID(), r.Verdict)
	if r.Comment != "" {
		comment += ": " + r.Comment
	}
	var tail []nft.Match
	if protos := r.Protos(); len(protos) > 0 {
		nums := make([]uint8, len(protos))
		for i, p := range protos {
			nums[i] = protoNumber(p)
		}
		tail = append(tail, nft.L4Proto{Protos: nums})
	}
	port := func(rg nft.PortRange, set string) nft.Match {
		if d.Inbound {
			// The published port: the connection's destination before
			// Docker's DNAT rewrote it.
			return nft.CtOrigDPort{Range: rg, Set: set}
		}
		return nft.DPort{Range: rg, Set: set}
	}
	switch len(r.Ports) {
	case 0:
	case 1:
		tail = append(tail, port(nft.PortRange(r.Ports[0]), ""))
	default:
		name := chain + "." + ruleTag(r) + ".ports"
		if _, ok := b.sets[name]; !ok {
			ports := make([]nft.PortRange, len(r.Ports))
			for i, p := range r.Ports {
				ports[i] = nft.PortRange(p)
			}
			b.addSet(&nft.Set{Name: name, Key: nft.KeyService, Ports: nft.MergePorts(ports)})
		}
		tail = append(tail, port(nft.PortRange{}, name))
	}
	mk := func(m ...nft.Match) *nft.Rule {
		return &nft.Rule{Matches: append(m, tail...), Counter: true, Verdict: verdict, ID: r.ID(), Comment: comment}
	}
	if r.Addrs.Any {
		return []*nft.Rule{mk()}
	}
	var out []*nft.Rule
	spec := r.Addrs
	if n == nil && spec.Self {
		// The subnets of a bridge not known yet: whatever routes via it.
		// As a source of inbound packets, they are its own containers,
		// whose packets passed before the rules (inboundHead).
		if !d.Inbound {
			out = append(out, mk(nft.Fib{Local: d.ToHost}))
		}
		spec.Self = false
	}
	var net policy.Network
	if n != nil {
		net = *n
	}
	// An ICMP rule has no IPv6 kernel rule and an ICMPv6 one no IPv4 one:
	// no set of that family either, which no rule would refer to.
	prefixes := slices.DeleteFunc(b.pol.Resolve(spec, net), func(p netip.Prefix) bool {
		return r.Proto == policy.ProtoICMP && p.Addr().Is6() || r.Proto == policy.ProtoICMPv6 && p.Addr().Is4()
	})
	setName := chain + "." + ruleTag(r)
	switch {
	case spec.Self && len(spec.Lists) == 0 && len(spec.Prefixes) == 0:
		setName = selfSet
	case !spec.Self && len(spec.Lists) == 1 && len(spec.Prefixes) == 0:
		setName = "l_" + spec.Lists[0]
	}
	v4, v6 := b.addrMatches(setName, prefixes, d.Inbound, false)
	if v4 != nil && r.Proto != policy.ProtoICMPv6 {
		out = append(out, mk(*v4))
	}
	if v6 != nil && r.Proto != policy.ProtoICMP {
		out = append(out, mk(*v6))
	}
	return append(out, b.nameRules(r, d, chain, n, den.Container, den.Layer, mk)...)
}

// protoNumber returns the IANA number of a policy protocol.
func protoNumber(p policy.Proto) uint8 {
	if r, ok := ipproto.ByName(string(p)); ok {
		return r.Num
	}
	panic("fence: no protocol number for " + string(p))
}

// netSetName names the set of a network's subnets after its chain (fwd_X or in_X).
func netSetName(chain string) string {
	_, id, _ := strings.Cut(chain, "_")
	return "net_" + id
}
