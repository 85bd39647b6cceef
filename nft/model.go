// Package nft builds the nftables table that dockerfence wants as plain data,
// renders it as nft syntax and as one google/nftables batch, applies that batch
// in a single netlink transaction, and reads the kernel's table back.
//
// Build is pure: it takes a policy and the networks found and does no I/O.
package nft

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/dockerfence/dockerfence/policy"
)

// Table is the desired state of dockerfence's inet table.
type Table struct {
	Name     string
	Priority int
	Sets     []*Set
	Chains   []*Chain
	// Fenced lists the networks the table fences, in bridge order.
	Fenced []Fenced
	// Unfenced lists the networks no section matches.
	Unfenced []policy.Network
	// CatchAll is the section that fences bridges not known yet (docker0,
	// br-*), nil if the policy has none.
	CatchAll *policy.Section
	// Warnings are findings a person should see, such as skipped networks.
	Warnings []string
	// Denials says, for each deny chain by name, what its packets were
	// denied for, so that a logged packet can be attributed to a network
	// and a rule.
	Denials map[string]*Denial
}

// Denial is what one deny chain stands for.
type Denial struct {
	// Chain is the deny chain's name; its log prefix is LogPrefix (or
	// AuditLogPrefix) followed by Chain and a space.
	Chain string
	// Network is the fenced network, nil for the chains that fence
	// bridges not known yet.
	Network *policy.Network
	Section *policy.Section
	Hook    policy.Hook
	// Rule is the policy rule that denies, nil for anti-spoofing and for
	// the hook's default.
	Rule *policy.Rule
	// Reason is "rule", "spoof" (source outside the network) or "default".
	Reason string
	// Audit is set in audit mode: the packet was let through.
	Audit bool
}

// RuleID names the denial as status does: "egress 4", "egress_default",
// "anti-spoofing".
func (d *Denial) RuleID() string {
	switch d.Reason {
	case "spoof":
		return "anti-spoofing"
	case "default":
		return d.Hook.String() + "_default"
	}
	return d.Rule.ID()
}

// Comment is the denial's human reason: the rule's comment if it has one.
func (d *Denial) Comment() string {
	switch {
	case d.Reason == "spoof":
		return "source outside the network"
	case d.Reason == "default":
		return d.Hook.String() + "_default deny"
	case d.Rule.Comment != "":
		return d.Rule.Comment
	}
	return RuleMatch(d.Rule)
}

// RuleMatch renders what a policy rule matches, as written: "@private",
// "192.168.100.2 udp/53", "10.0.0.0/8 tcp+udp/80,443".
func RuleMatch(r *policy.Rule) string {
	s := r.Addrs.Text
	if r.Proto != policy.ProtoAny {
		s += " " + string(r.Proto)
	}
	if len(r.Ports) > 0 {
		ports := make([]string, len(r.Ports))
		for i, p := range r.Ports {
			ports[i] = p.String()
		}
		if r.Proto == policy.ProtoAny {
			s += " tcp+udp"
		}
		s += "/" + strings.Join(ports, ",")
	}
	return s
}

// Denial returns what the deny chain named by an NFLOG prefix stands for,
// or nil if the prefix is not one of this table's.
func (t *Table) Denial(prefix string) *Denial {
	chain, _, ok := ParseLogPrefix(prefix)
	if !ok {
		return nil
	}
	return t.Denials[chain]
}

// ParseLogPrefix reads the deny chain's name from a dockerfence NFLOG
// prefix, and whether it is an audit-mode one. ok is false for a prefix
// that is not dockerfence's.
func ParseLogPrefix(prefix string) (chain string, audit, ok bool) {
	rest, audit := strings.CutPrefix(prefix, AuditLogPrefix)
	if !audit {
		if rest, ok = strings.CutPrefix(prefix, LogPrefix); !ok {
			return "", false, false
		}
	}
	chain = strings.TrimSuffix(rest, " ")
	return chain, audit, chain != ""
}

// Fenced is a network and the section that fences it.
type Fenced struct {
	Network policy.Network
	Section *policy.Section
	// Forward and Input name the network's chains.
	Forward, Input string
}

// SetKind is the key type of a set.
type SetKind int

// Set kinds.
const (
	SetIPv4 SetKind = iota
	SetIPv6
	SetService
	// SetIfVMap is a verdict map keyed by interface name.
	SetIfVMap
)

// Set is a named set or verdict map.
type Set struct {
	Name string
	Kind SetKind
	// Ranges holds the elements of address sets: sorted, disjoint, one family.
	Ranges []policy.Range
	// Ports holds the elements of service sets: sorted, disjoint.
	Ports []policy.PortRange
	// VMap holds the elements of verdict maps: interface name to chain, sorted by key.
	VMap []VMapElem
}

// VMapElem maps an interface name to a chain that the packet goes to.
type VMapElem struct{ Key, Chain string }

// Chain is a base chain (Hook set) or a regular chain.
type Chain struct {
	Name string
	// Hook is "forward", "input" or "" for a regular chain.
	Hook  string
	Rules []*Rule
}

// Rule is a list of matches, an optional counter, limit and log, and a verdict.
type Rule struct {
	Matches []Match
	Counter bool
	// Limit, when set, makes the rule match at most Limit packets a second (burst the same).
	Limit   int
	Log     *Log
	Verdict Verdict
	// Comment is shown by nft; ID identifies the rule within its chain for status.
	Comment string
	ID      string
}

// Log is an NFLOG statement.
type Log struct {
	Prefix string
	Group  uint16
}

// VerdictKind is the kind of a rule's verdict.
type VerdictKind int

// Verdict kinds.
const (
	// Continue: no verdict, the next rule is evaluated.
	Continue VerdictKind = iota
	Accept
	Drop
	Goto
	// VMap looks the input interface name up in verdict map Target.
	VMap
	RejectTCPReset
	RejectAdminProhibited
)

// Verdict is what a rule does with a packet that matches.
type Verdict struct {
	Kind VerdictKind
	// Target is the chain of Goto or the map of VMap.
	Target string
}

// Match is one condition of a rule. It is one of the types below.
type Match interface{ isMatch() }

// CtReply matches packets in the reply direction of their connection.
type CtReply struct{}

// NFProto matches IPv4 or IPv6 packets.
type NFProto struct{ V6 bool }

// L4Proto matches transport protocols (IANA numbers).
type L4Proto struct{ Protos []uint8 }

// Addr matches the source or destination address against one prefix or a named set.
type Addr struct {
	V6, Src, Neg bool
	Prefix       netip.Prefix // used when Set is empty
	Set          string
}

// DPort matches the transport destination port against a range or a named set.
type DPort struct {
	Range policy.PortRange // used when Set is empty
	Set   string
}

// IIfName matches the input interface name exactly, or by prefix when Prefix is set.
type IIfName struct {
	Name   string
	Prefix bool
}

// Fib matches whether the source (Src) or destination address routes via the
// input interface; Missing inverts it. It stands in for subnets not known yet.
// Local instead matches a destination that is one of the host's addresses
// on the input interface (fib daddr . iif type local; with iif, the kernel
// counts only addresses of that device): a route lookup of a local address
// finds no output interface, so in the input hook that is what "the
// network's subnets" can mean for a bridge not known yet. It also counts the
// bridge's IPv6 link-local address, which the subnets do not hold, until
// the network is known.
type Fib struct{ Src, Missing, Local bool }

// ICMPv6Type matches ICMPv6 packets of the given types.
type ICMPv6Type struct{ Types []uint8 }

// HopLimit matches IPv6 packets whose hop limit is Value. Neighbour
// discovery is sent with 255 and is only valid so (RFC 4861); in the
// forward hook a routed packet has already lost one, so 255 there means a
// packet bridged by br_netfilter.
type HopLimit struct{ Value uint8 }

func (CtReply) isMatch()    {}
func (NFProto) isMatch()    {}
func (L4Proto) isMatch()    {}
func (Addr) isMatch()       {}
func (DPort) isMatch()      {}
func (IIfName) isMatch()    {}
func (Fib) isMatch()        {}
func (ICMPv6Type) isMatch() {}
func (HopLimit) isMatch()   {}

// IANA protocol numbers.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

// ndTypes are the ICMPv6 neighbour discovery types that always pass in input.
var ndTypes = []uint8{133, 134, 135, 136, 137}

// ndNeighbourTypes are neighbour solicitation and advertisement, the ND
// types that pass between containers.
var ndNeighbourTypes = []uint8{135, 136}

var (
	linkLocal4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocal6 = netip.MustParsePrefix("fe80::/10")
)

// Chain and map names.
const (
	ForwardChain = "forward"
	InputChain   = "input"
	forwardMap   = "fwd_if"
	inputMap     = "in_if"
	// unknownSuffix names the chains that fence bridges not known yet.
	unknownSuffix = "unknown"
)

// LogPrefix starts the NFLOG prefix of every dockerfence denial; the deny
// chain's name follows it.
const LogPrefix = "df "

// AuditLogPrefix starts the NFLOG prefix of would-be denials in audit mode.
const AuditLogPrefix = "df-audit "

// Build returns the table that fences networks as the policy says.
func Build(pol *policy.Policy, networks []policy.Network) *Table {
	s := pol.Settings
	b := &builder{pol: pol, t: &Table{Name: s.Table, Priority: s.Priority, Denials: map[string]*Denial{}}, sets: map[string]*Set{}}
	fwd := &Chain{Name: ForwardChain, Hook: "forward"}
	in := &Chain{Name: InputChain, Hook: "input"}
	b.t.Chains = append(b.t.Chains, fwd, in)
	fwdMap := &Set{Name: forwardMap, Kind: SetIfVMap}
	inMap := &Set{Name: inputMap, Kind: SetIfVMap}
	b.addSet(fwdMap)
	b.addSet(inMap)
	for _, c := range []*Chain{fwd, in} {
		c.Rules = append(c.Rules, &Rule{Matches: []Match{CtReply{}}, Counter: true, Verdict: Verdict{Kind: Accept}, ID: "reply", Comment: "replies to connections opened towards containers"})
	}
	fwd.Rules = append(fwd.Rules, &Rule{Counter: true, Verdict: Verdict{Kind: VMap, Target: forwardMap}, ID: "dispatch"})
	in.Rules = append(in.Rules, &Rule{Counter: true, Verdict: Verdict{Kind: VMap, Target: inputMap}, ID: "dispatch"})

	nets := append([]policy.Network(nil), networks...)
	sort.Slice(nets, func(i, j int) bool { return nets[i].Bridge < nets[j].Bridge })
	seen := map[string]bool{}
	usedIDs := map[string]bool{unknownSuffix: true}
	for _, n := range nets {
		if !validIfName(n.Bridge) {
			b.t.Warnings = append(b.t.Warnings, fmt.Sprintf("network %q: bridge name %q is not an interface name; not fenced", n.Name, n.Bridge))
			continue
		}
		if seen[n.Bridge] {
			b.t.Warnings = append(b.t.Warnings, fmt.Sprintf("network %q: bridge %s is already fenced for another network; skipped", n.Name, n.Bridge))
			continue
		}
		seen[n.Bridge] = true
		sec := pol.SectionFor(n)
		if sec == nil {
			b.t.Unfenced = append(b.t.Unfenced, n)
			continue
		}
		id := chainID(n.Bridge, usedIDs)
		f := Fenced{Network: n, Section: sec, Forward: "fwd_" + id, Input: "in_" + id}
		b.networkChain(f.Forward, sec, policy.Egress, &n)
		b.networkChain(f.Input, sec, policy.Host, &n)
		fwdMap.VMap = append(fwdMap.VMap, VMapElem{Key: n.Bridge, Chain: f.Forward})
		inMap.VMap = append(inMap.VMap, VMapElem{Key: n.Bridge, Chain: f.Input})
		b.t.Fenced = append(b.t.Fenced, f)
	}
	if ca := pol.CatchAll(); ca != nil {
		b.t.CatchAll = ca
		fc, ic := "fwd_"+unknownSuffix, "in_"+unknownSuffix
		b.networkChain(fc, ca, policy.Egress, nil)
		b.networkChain(ic, ca, policy.Host, nil)
		for _, pair := range []struct {
			base  *Chain
			chain string
		}{{fwd, fc}, {in, ic}} {
			pair.base.Rules = append(pair.base.Rules,
				&Rule{Matches: []Match{IIfName{Name: "docker0"}}, Counter: true, Verdict: Verdict{Kind: Goto, Target: pair.chain}, ID: "unknown docker0", Comment: "docker0 before dockerfence knows it"},
				&Rule{Matches: []Match{IIfName{Name: "br-", Prefix: true}}, Counter: true, Verdict: Verdict{Kind: Goto, Target: pair.chain}, ID: "unknown br-*", Comment: "bridges dockerfence does not know yet"})
		}
	}
	return b.t
}

// validIfName reports whether s can be a Linux interface name.
func validIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || r == '/' || r == ':' || r == '"' || r == '\\' || r == '*' {
			return false
		}
	}
	return true
}

type builder struct {
	pol  *policy.Policy
	t    *Table
	sets map[string]*Set
}

func (b *builder) addSet(s *Set) {
	b.sets[s.Name] = s
	b.t.Sets = append(b.t.Sets, s)
}

// addrMatches returns the matches that select addresses in prefixes, one per
// family that has any: an inline prefix for one, else a named set called
// name+"_4"/"_6", created on first use.
func (b *builder) addrMatches(name string, prefixes []netip.Prefix, src, neg bool) (v4, v6 *Addr) {
	ranges := policy.Ranges(prefixes)
	var r4, r6 []policy.Range
	for _, r := range ranges {
		if r.From.Is4() {
			r4 = append(r4, r)
		} else {
			r6 = append(r6, r)
		}
	}
	mk := func(rs []policy.Range, v6 bool) *Addr {
		if len(rs) == 0 {
			return nil
		}
		a := &Addr{V6: v6, Src: src, Neg: neg}
		if len(rs) == 1 {
			if pfx, ok := rangePrefix(rs[0]); ok {
				a.Prefix = pfx
				return a
			}
		}
		kind, suffix := SetIPv4, "_4"
		if v6 {
			kind, suffix = SetIPv6, "_6"
		}
		a.Set = name + suffix
		if _, ok := b.sets[a.Set]; !ok {
			b.addSet(&Set{Name: a.Set, Kind: kind, Ranges: rs})
		}
		return a
	}
	return mk(r4, false), mk(r6, true)
}

// rangePrefix returns the prefix that covers exactly r, if there is one.
func rangePrefix(r policy.Range) (netip.Prefix, bool) {
	for bits := 0; bits <= r.From.BitLen(); bits++ {
		p := netip.PrefixFrom(r.From, bits)
		if p.Masked().Addr() == r.From && policy.LastAddr(p) == r.To {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// networkChain builds the chain that judges packets from network n (nil for
// bridges not known yet) with the section's rules of hook h, and its deny chains.
func (b *builder) networkChain(name string, sec *policy.Section, h policy.Hook, n *policy.Network) {
	c := &Chain{Name: name}
	b.t.Chains = append(b.t.Chains, c)
	// IPv6 neighbour discovery passes in both hooks: to the host, and, where
	// br_netfilter hands bridged traffic to the forward hook, between the
	// containers of a bridge (it is link-local, so it is never routed).
	// The family is matched first, so that an IPv4 packet of protocol 58
	// cannot pass as ICMPv6, and the hop limit, so that an ICMPv6 packet of
	// an ND type cannot be routed past the deny rules.
	// Between containers only solicitations and adverts pass: router
	// adverts and redirects from a container are no business of its peers.
	nd := ndTypes
	if h == policy.Egress {
		nd = ndNeighbourTypes
	}
	c.Rules = append(c.Rules, &Rule{Matches: []Match{NFProto{V6: true}, ICMPv6Type{Types: nd}, HopLimit{Value: 255}}, Counter: true, Verdict: Verdict{Kind: Accept}, ID: "nd", Comment: "IPv6 neighbour discovery"})
	spoof := b.denyChain(name, &Denial{Network: n, Section: sec, Hook: h, Reason: "spoof"})
	spoofRule := func(m ...Match) {
		c.Rules = append(c.Rules, &Rule{Matches: m, Counter: true, Verdict: Verdict{Kind: Goto, Target: spoof}, ID: "spoof", Comment: "source outside the network (anti-spoofing)"})
	}
	if n == nil {
		if h == policy.Host {
			spoofRule(Addr{Src: true, Neg: true, Prefix: linkLocal4}, Fib{Src: true, Missing: true})
			spoofRule(Addr{V6: true, Src: true, Neg: true, Prefix: linkLocal6}, Fib{Src: true, Missing: true})
		} else {
			spoofRule(Fib{Src: true, Missing: true})
		}
	} else {
		v4, v6 := b.addrMatches(netSetName(name), n.Subnets, true, true)
		for _, fam := range []struct {
			a  *Addr
			v6 bool
			ll netip.Prefix
		}{{v4, false, linkLocal4}, {v6, true, linkLocal6}} {
			// Link-local sources are no spoofing towards the host, nor, for
			// IPv6, in the forward hook: the kernel never routes an IPv6
			// link-local source, so there they are bridged traffic between
			// containers (br_netfilter), which needs them.
			exempt := h == policy.Host || fam.v6
			switch {
			case fam.a == nil && exempt:
				spoofRule(Addr{V6: fam.v6, Src: true, Neg: true, Prefix: fam.ll})
			case fam.a == nil:
				spoofRule(NFProto{V6: fam.v6})
			case exempt:
				spoofRule(*fam.a, Addr{V6: fam.v6, Src: true, Neg: true, Prefix: fam.ll})
			default:
				spoofRule(*fam.a)
			}
		}
	}
	for _, r := range sec.Rules(h) {
		c.Rules = append(c.Rules, b.policyRules(name, sec, r, n)...)
	}
	def := &Rule{Counter: true, Verdict: Verdict{Kind: Accept}, ID: "default", Comment: h.String() + "_default allow"}
	if sec.Default(h) == policy.Deny {
		def.Verdict = Verdict{Kind: Goto, Target: b.denyChain(name, &Denial{Network: n, Section: sec, Hook: h, Reason: "default"})}
		def.Comment = h.String() + "_default deny"
	}
	c.Rules = append(c.Rules, def)
}

// denyChain adds the chain that logs and refuses packets of network chain
// for the reason d gives, records d under the chain's name, and returns the
// name.
func (b *builder) denyChain(network string, d *Denial) string {
	s := b.pol.Settings
	suffix := d.Reason
	if d.Rule != nil {
		suffix = ruleTag(d.Rule)
	}
	c := &Chain{Name: network + "." + suffix}
	d.Chain, d.Audit = c.Name, s.Mode == policy.Audit
	b.t.Denials[c.Name] = d
	if s.LogDenied {
		prefix := LogPrefix
		if s.Mode == policy.Audit {
			prefix = AuditLogPrefix
		}
		c.Rules = append(c.Rules, &Rule{Limit: s.LogRate, Log: &Log{Prefix: prefix + c.Name + " ", Group: s.LogGroup}, ID: "log"})
	}
	switch {
	case s.Mode == policy.Audit:
		c.Rules = append(c.Rules, &Rule{Verdict: Verdict{Kind: Accept}, ID: "audit", Comment: "audit mode: would deny"})
	case s.DenyAction == policy.Drop:
		c.Rules = append(c.Rules, &Rule{Verdict: Verdict{Kind: Drop}, ID: "drop"})
	default:
		c.Rules = append(c.Rules,
			&Rule{Matches: []Match{L4Proto{Protos: []uint8{protoTCP}}}, Verdict: Verdict{Kind: RejectTCPReset}, ID: "reject tcp"},
			&Rule{Verdict: Verdict{Kind: RejectAdminProhibited}, ID: "reject"})
	}
	b.t.Chains = append(b.t.Chains, c)
	return c.Name
}

// ruleTag is the short form of a rule's identity used in chain and set names: e3, h1.
func ruleTag(r *policy.Rule) string { return fmt.Sprintf("%c%d", r.Hook.String()[0], r.Index) }

// policyRules renders one policy rule as kernel rules: one per address family
// it needs (or one for any), all with the rule's ID.
func (b *builder) policyRules(chain string, sec *policy.Section, r *policy.Rule, n *policy.Network) []*Rule {
	verdict := Verdict{Kind: Accept}
	if r.Verdict == policy.Deny {
		verdict = Verdict{Kind: Goto, Target: b.denyChain(chain, &Denial{Network: n, Section: sec, Hook: r.Hook, Rule: r, Reason: "rule"})}
	}
	comment := fmt.Sprintf("%s %s", r.ID(), r.Verdict)
	if r.Comment != "" {
		comment += ": " + r.Comment
	}
	var tail []Match
	protos := r.Protos()
	switch len(protos) {
	case 0:
	default:
		nums := make([]uint8, len(protos))
		for i, p := range protos {
			nums[i] = protoNumber(p)
		}
		tail = append(tail, L4Proto{Protos: nums})
	}
	switch len(r.Ports) {
	case 0:
	case 1:
		tail = append(tail, DPort{Range: r.Ports[0]})
	default:
		name := chain + "." + ruleTag(r) + ".ports"
		if _, ok := b.sets[name]; !ok {
			b.addSet(&Set{Name: name, Kind: SetService, Ports: mergePorts(r.Ports)})
		}
		tail = append(tail, DPort{Set: name})
	}
	mk := func(m ...Match) *Rule {
		return &Rule{Matches: append(m, tail...), Counter: true, Verdict: verdict, ID: r.ID(), Comment: comment}
	}
	if r.Addrs.Any {
		return []*Rule{mk()}
	}
	var out []*Rule
	spec := r.Addrs
	if n == nil && spec.Self {
		// The subnets of a bridge not known yet: whatever routes via it.
		out = append(out, mk(Fib{Local: r.Hook == policy.Host}))
		spec.Self = false
	}
	var net policy.Network
	if n != nil {
		net = *n
	}
	prefixes := b.pol.Resolve(spec, net)
	setName := chain + "." + ruleTag(r)
	switch {
	case spec.Self && len(spec.Lists) == 0 && len(spec.Prefixes) == 0:
		setName = netSetName(chain)
	case !spec.Self && len(spec.Lists) == 1 && len(spec.Prefixes) == 0:
		setName = "l_" + spec.Lists[0]
	}
	v4, v6 := b.addrMatches(setName, prefixes, false, false)
	if v4 != nil && r.Proto != policy.ProtoICMPv6 {
		out = append(out, mk(*v4))
	}
	if v6 != nil && r.Proto != policy.ProtoICMP {
		out = append(out, mk(*v6))
	}
	return out
}

func protoNumber(p policy.Proto) uint8 {
	switch p {
	case policy.ProtoTCP:
		return protoTCP
	case policy.ProtoUDP:
		return protoUDP
	case policy.ProtoSCTP:
		return protoSCTP
	case policy.ProtoICMP:
		return protoICMP
	case policy.ProtoICMPv6:
		return protoICMPv6
	}
	panic("nft: no protocol number for " + string(p))
}

// mergePorts sorts port ranges and merges those that overlap or touch.
func mergePorts(in []policy.PortRange) []policy.PortRange {
	rs := append([]policy.PortRange(nil), in...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].First < rs[j].First })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && uint32(r.First) <= uint32(out[n-1].Last)+1 {
			if r.Last > out[n-1].Last {
				out[n-1].Last = r.Last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// Chain returns the chain of that name, or nil.
func (t *Table) Chain(name string) *Chain {
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Set returns the set of that name, or nil.
func (t *Table) Set(name string) *Set {
	for _, s := range t.Sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Elements returns how many elements the table's sets hold.
func (t *Table) Elements() int {
	n := 0
	for _, s := range t.Sets {
		n += len(s.Ranges) + len(s.Ports) + len(s.VMap)
	}
	return n
}

// chainID turns a bridge name into the part of chain and set names that
// stands for it: the name itself where nft syntax allows, else a sanitized
// form made unique.
func chainID(bridge string, used map[string]bool) string {
	id := []byte(bridge)
	for i, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			id[i] = '_'
		}
	}
	out := string(id)
	for i := 2; used[out]; i++ {
		out = fmt.Sprintf("%s_%d", id, i)
	}
	used[out] = true
	return out
}

// netSetName names the set of a network's subnets after its chain (fwd_X or in_X).
func netSetName(chain string) string {
	_, id, _ := strings.Cut(chain, "_")
	return "net_" + id
}
