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

// Probe is a packet for Explain to judge: one packet that a container of
// a network sends (egress, host), or that a network's container receives
// (ingress), in the original direction of its connection.
type Probe struct {
	Hook policy.Hook
	// Src is the packet's source; the zero Addr means a source inside the
	// network. An ingress probe needs one: the remote source.
	Src netip.Addr
	// Dst is the packet's destination; for ingress, the zero Addr means
	// an address inside the network (the container's, with
	// ExplainContainer).
	Dst netip.Addr
	// Proto is the packet's protocol; ProtoAny stands for a packet whose
	// protocol is left open, which only protocol-free rules match.
	Proto policy.Proto
	// Port is the destination port, 0 for none; for ingress, the
	// connection's original destination port: the published port.
	Port uint16
	// Ingress is the bridge port the packet enters by, the container's
	// (ExplainContainer): its identity check judges the packet first.
	Ingress string
	// Out is the bridge a forwarded (egress) packet leaves by when its
	// destination is on another bridge of the host, a container of
	// another network: the forward hook then judges it by that network's
	// ingress rules too, after the sender's egress. "" for a destination
	// outside every bridge.
	Out string
	// Learned holds the addresses learned for names lists, by list name,
	// as the daemon has them (see Result.WithLearned): a destination
	// among them is in the list's sets. Without them the sets are empty,
	// as when no answer was learned. A pointer keeps Probe comparable.
	Learned *Learned
}

// Decision is how the table judges a probe, in the policy's terms.
type Decision struct {
	// Section is the section whose chain judged the packet, nil if none
	// did: the network is then not fenced and the packet passes.
	Section *policy.Section
	// Rule is the rule that decided, nil for anti-spoofing and defaults.
	Rule *policy.Rule
	// NamesList is the names list whose learned addresses the deciding
	// rule matched, "" if the rule matched otherwise.
	NamesList string
	// Spoofed is set when the source is outside the network's subnets.
	Spoofed bool
	// TunnelEndpoint is set when the packet goes to a tunnel endpoint on
	// the host that only host_default would allow (see
	// TunnelEndpointRuleID): the tunnel fence denies it.
	TunnelEndpoint bool
	// Verdict is the policy's verdict.
	Verdict policy.Verdict
	// Audit is set in audit mode: a deny verdict is logged and counted, and the packet passes.
	Audit bool
	// DenyAction is how a denial refuses the packet: the policy's
	// settings.deny_action, but drop for a spoofed source, which no
	// denial answers.
	DenyAction policy.DenyAction
	// Passes reports whether the packet gets through dockerfence: the
	// table accepts it.
	Passes bool
	// Trace is the packet's path through the table; nil for a network the
	// table cannot fence.
	Trace *nft.Trace
	// NotFenceable is set for a network the table cannot fence (of another
	// driver than bridge): no chain judges its packets, which pass, and
	// Section is nil even if a section matches the network.
	NotFenceable *NotFenceable
	// CatchAll is set when the catch-all judged the packet: the chain of
	// the {name: "*"} section for docker0 and br-* bridges that the table
	// does not know.
	CatchAll bool
	// NewBridge is set when no network holds the network given (by name
	// or subnet) and it was judged as a new bridge would be, by the
	// catch-all (see Explain).
	NewBridge bool
	// Unjudged is set when the network's section has no keys of the
	// probe's direction (ingress): it does not judge the packet, which
	// passes; Section is that section.
	Unjudged bool
	// Container is the container the packet came from (ExplainContainer),
	// or for ingress the one it goes to; nil for a network's packet; Layers then says what each of the
	// container's own layers made of it. Verdict and Passes are the
	// whole table's: every layer must allow.
	Container *FencedContainer
	Layers    []LayerDecision
	// Hook is the direction of the section's rules that decided: the
	// probe's, but ingress when an egress packet to another network's
	// container (Probe.Out) is denied by that network's ingress rules
	// (Section is then that network's section).
	Hook policy.Hook
}

// LayerDecision is what one of a container's own layers made of a packet.
type LayerDecision struct {
	// Layer is LayerSection or LayerLabel; "held" for an address no
	// container held (the container layer holds it), "cut off" for a
	// container whose label does not parse.
	Layer string
	// Section is the container section of LayerSection.
	Section *policy.ContainerSection
	// Rule is the rule that decided, nil for the layer's default.
	Rule    *policy.Rule
	Verdict policy.Verdict
	// Into is set for a layer of the container an egress packet goes to
	// on another network (Probe.Out), which judges it by its ingress
	// rules; the packet's Container is the sender.
	Into bool
}

var (
	// linkLocalRoute6 is the IPv6 link-local route that every interface
	// with IPv6 has.
	linkLocalRoute6 = netip.MustParsePrefix("fe80::/64")
	// standInSources are the sources of a packet from inside a network
	// that has no subnet of the packet's family: the IPv4 dummy address
	// (RFC 7600) and an address of the IPv6 discard prefix (RFC 6666).
	standInSources = [2]netip.Addr{netip.MustParseAddr("192.0.0.8"), netip.MustParseAddr("100::1")}
)

// standInBridge names the bridge of a network that explain judges though
// nothing on the host has it; it is not docker0 or br-*, so that only its
// own chain judges it.
const standInBridge = "dfexplain"

// outsideIf names the interface an ingress probe enters by: no bridge.
const outsideIf = "dfoutside"

// newBridge names the bridge of a network that explain judges as a new
// bridge: a br-* bridge that the table does not know, which the catch-all
// judges.
const newBridge = "br-dfexplain"

// Explain judges the probe for network n as the kernel does with the table
// that apply compiles from the policy and the networks it finds
// (inventory): it compiles that table, traces the probe through it from
// n's bridge, and says what the chains the packet passed stand for.
//
// Network n is one of three kinds. A network of the inventory (by bridge)
// is judged by its own chain. A bridge that is not in the inventory (one
// that Docker does not report) is judged as the table judges it, by its
// name: by the rules for bridges not known yet (the {name: "*"}
// section's) if it is docker0 or br-*, else not at all. A network without a
// bridge (given by name or subnet alone) is judged as if apply had found
// it, on a bridge of its own that no bridge match fits; but if the first
// section that fits it is the {name: "*"} section, or none fits and the
// policy has that section, it is judged as the table judges a new bridge
// until the next apply: by the catch-all (Decision.NewBridge).
//
// A network of another driver than bridge (macvlan, host, ...) is judged by
// nothing: the table cannot fence it, and the Decision says why
// (NotFenceable).
//
// A probe without a source comes from inside the network: from an address
// of one of its subnets, or, if it has none of the probe's family, from a
// stand-in address that is given to the network for the trace (DefaultSource
// gives a probe the source that the kernel would see instead). Routes that
// the table asks about are n's subnets and the IPv6 link-local route.
func Explain(pol *policy.Policy, inventory []policy.Network, n policy.Network, pr Probe) (Decision, error) {
	return explain(pol, inventory, nil, n, pr)
}

// ExplainContainer is Explain for a packet that container c sends from its
// address on network n (the probe's source, set by the caller): the table
// is compiled with the container layer for containers, as apply compiles
// it, and the decision names each layer that judged the packet.
func ExplainContainer(pol *policy.Policy, inventory []policy.Network, containers []Container, n policy.Network, pr Probe) (Decision, error) {
	if containers == nil {
		containers = []Container{}
	}
	return explain(pol, inventory, containers, n, pr)
}

func explain(pol *policy.Policy, inventory []policy.Network, containers []Container, n policy.Network, pr Probe) (Decision, error) {
	inbound := DirectionOf(pr.Hook).Inbound
	if inbound {
		if !pr.Src.IsValid() {
			return Decision{}, fmt.Errorf("explain: a connection into the network needs its source")
		}
		pr, _ = DefaultDestination(n, pr)
		// The identity check judges what a container sends, not what it
		// receives.
		pr.Ingress = ""
	}
	if !pr.Dst.IsValid() || pr.Src.IsValid() && pr.Src.Is4() != pr.Dst.Is4() {
		return Decision{}, fmt.Errorf("explain: source %v and destination %v are not addresses of one family", pr.Src, pr.Dst)
	}
	if why := WhyNotFenceable(n); why != "" {
		return Decision{Verdict: policy.Allow, Audit: pol.Settings.Mode == policy.Audit, DenyAction: pol.Settings.DenyAction, Passes: true,
			NotFenceable: &NotFenceable{Network: n, Section: pol.SectionFor(n), Reason: why}}, nil
	}
	src, standIn := pr.Src, netip.Prefix{}
	if !src.IsValid() {
		if src = insideAddr(n.Subnets, pr.Dst); !src.IsValid() {
			src = standInSources[0]
			if pr.Dst.Is6() {
				src = standInSources[1]
			}
			if src == pr.Dst {
				src = src.Next()
			}
			standIn = netip.PrefixFrom(src, src.BitLen())
		}
	}

	nets := slices.Clone(inventory)
	// asSeen holds, by bridge, what the policy sees of networks that the
	// table gets in another form: those with a stand-in bridge or subnet.
	asSeen := map[string]policy.Network{}
	iif, routes, newBr := n.Bridge, n.Subnets, false
	i := slices.IndexFunc(nets, func(m policy.Network) bool { return n.Bridge != "" && m.Bridge == n.Bridge })
	switch {
	case i >= 0 && standIn.IsValid():
		asSeen[nets[i].Bridge] = nets[i]
		nets[i].Subnets = append(slices.Clone(nets[i].Subnets), standIn)
	case i < 0 && n.Bridge == "" && judgedAsNew(pol, n):
		// A br-* bridge the table does not know: not in the inventory,
		// with the subnets for its routes.
		newBr = true
		iif = newBridge
		for k := 0; slices.ContainsFunc(nets, func(m policy.Network) bool { return m.Bridge == iif }); k++ {
			iif = fmt.Sprintf("%s%d", newBridge, k)
		}
		if standIn.IsValid() {
			routes = append(slices.Clone(routes), standIn)
		}
	case i < 0 && n.Bridge == "":
		h := n
		h.Bridge = standInBridge
		for k := 0; slices.ContainsFunc(nets, func(m policy.Network) bool { return m.Bridge == h.Bridge }); k++ {
			h.Bridge = fmt.Sprintf("%s%d", standInBridge, k)
		}
		if standIn.IsValid() {
			h.Subnets = append(slices.Clone(h.Subnets), standIn)
		}
		asSeen[h.Bridge] = n
		nets = append(nets, h)
		iif = h.Bridge
	}
	res := compile(pol, nets, func(m policy.Network) *policy.Section {
		if o, ok := asSeen[m.Bridge]; ok {
			m = o
		}
		return pol.SectionFor(m)
	}, containers)
	if pr.Learned != nil {
		res = res.WithLearned(*pr.Learned)
	}

	p, err := probePacket(pr, iif, src, routes)
	if err != nil {
		return Decision{}, err
	}
	if !inbound && pr.Ingress == "" && pr.Src.IsValid() {
		// A packet from a container's address comes by its bridge port,
		// where it is checked (or, while that port is not known, not).
		pr.Ingress = res.portOf(n, pr.Src)
	}
	id, mark, ok, err := res.identity(pol, pr, p)
	if ok || err != nil {
		return id, err
	}
	p.Mark = mark
	tr, err := res.Trace(p)
	if err != nil {
		return Decision{}, fmt.Errorf("explain: %w", err)
	}
	d := Decision{Verdict: policy.Allow, Audit: pol.Settings.Mode == policy.Audit, DenyAction: pol.Settings.DenyAction, Passes: passes(tr.Verdict), Trace: tr, NewBridge: newBr, Hook: pr.Hook}
	if err := res.judge(&d); err != nil {
		return Decision{}, err
	}
	if inbound && d.Section == nil {
		if sec := res.sectionOf(iif); sec != nil && !DirectionOf(pr.Hook).Judges(sec) {
			d.Section, d.Unjudged = sec, true
		}
	}
	if containers != nil && d.Container == nil {
		// A container whose own chains the packet did not pass (it has
		// no rules of its own, or its network denied first).
		own := src
		if inbound {
			own = pr.Dst
		}
		for i, fc := range res.Containers {
			for _, e := range fc.Container.Endpoints {
				if slices.Contains(e.Addrs, own) {
					d.Container = &res.Containers[i]
				}
			}
		}
	}
	if d.Passes != (d.Verdict == policy.Allow || d.Audit) {
		return Decision{}, fmt.Errorf("explain: the table %s the packet, though it passed the chains of a %s verdict:\n%s", verdictWord(tr.Verdict), d.Verdict, tr)
	}
	// The kernel never routes an IPv6 link-local source, so towards any
	// destination but a link-local one or one in the network's subnets
	// (bridged between containers, which br_netfilter hands to the forward
	// hook) it cannot get out: judged as spoofed.
	if pr.Hook == policy.Egress && d.Section != nil && src.Is6() && linkLocal6.Contains(src) &&
		!linkLocal6.Contains(pr.Dst) && !policy.Contains(n.Subnets, pr.Dst) {
		d.Rule, d.Spoofed, d.Verdict, d.Passes = nil, true, policy.Deny, d.Audit
	}
	if d.Spoofed {
		d.DenyAction = policy.Drop
	}
	return d, nil
}

// sectionOf returns the section of the fenced network on bridge br, nil
// if none.
func (r *Result) sectionOf(br string) *policy.Section {
	for _, f := range r.Fenced {
		if f.Network.Bridge == br {
			return f.Section
		}
	}
	return nil
}

// portOf returns the bridge port of the container that holds address a
// on network n, "" if none does or its port is not known.
func (r *Result) portOf(n policy.Network, a netip.Addr) string {
	for _, fc := range r.Containers {
		for _, e := range fc.Container.Endpoints {
			if e.Port != "" && e.on(n) && slices.Contains(e.Addrs, a) {
				return e.Port
			}
		}
	}
	return ""
}

// identity traces packet p through the ingress chain of the container's
// bridge port (pr.Ingress), which drops a source that is not the
// container's own; ok is set when it did, d then says so. Else mark is
// the packet's mark as the chain left it (the check's bit, when it let
// the packet through).
func (r *Result) identity(pol *policy.Policy, pr Probe, p nft.Packet) (d Decision, mark uint32, ok bool, err error) {
	if pr.Ingress == "" || r.Table.Chain("id_"+pr.Ingress) == nil {
		return d, p.Mark, false, nil
	}
	p.Hook, p.IIfName, p.HopLimit = nft.HookIngress, pr.Ingress, 64
	tr, err := r.Table.Trace(p)
	if err != nil {
		return d, 0, false, fmt.Errorf("explain: %w", err)
	}
	if tr.Verdict == nft.Accept {
		return d, tr.Mark, false, nil
	}
	d = Decision{Verdict: policy.Deny, DenyAction: policy.Drop, Audit: pol.Settings.Mode == policy.Audit, Passes: pol.Settings.Mode == policy.Audit, Trace: tr,
		Layers: []LayerDecision{{Layer: "identity", Verdict: policy.Deny}}, Hook: pr.Hook}
	if den := r.Denials["id_"+pr.Ingress+".identity"]; den != nil {
		d.Section = den.Section
		for i := range r.Containers {
			if den.Container != nil && r.Containers[i].Container.ID == den.Container.ID {
				d.Container = &r.Containers[i]
			}
		}
	}
	return d, 0, true, nil
}

// judgedAsNew reports whether a network that nothing on the host holds is
// judged as a new bridge, by the catch-all: the policy has a {name: "*"}
// section, and it is the first section that fits the network, or none
// does (a subnet alone fits no name match).
func judgedAsNew(pol *policy.Policy, n policy.Network) bool {
	ca := pol.CatchAll()
	if ca == nil || !n.IsBridge() {
		return false
	}
	sec := pol.SectionFor(n)
	return sec == nil || sec == ca
}

// verdictWord says what a final verdict does to a packet.
func verdictWord(v nft.VerdictKind) string {
	if passes(v) {
		return "accepts"
	}
	return "refuses"
}

// passes reports whether a trace's verdict lets the packet through: an
// accept, or a queue (the DNS answers held for the learner, which
// accepts every answer, and which the queue's bypass passes when no
// learner runs).
func passes(v nft.VerdictKind) bool { return v == nft.Accept || v == nft.Queue }

// insideAddr returns an address of the first of subnets in dst's family,
// the zero Addr if there is none.
func insideAddr(subnets []netip.Prefix, dst netip.Addr) netip.Addr {
	for _, s := range subnets {
		if s.Addr().Is4() == dst.Is4() {
			a := s.Masked().Addr()
			if next := a.Next(); s.Contains(next) {
				a = next
			}
			return a
		}
	}
	return netip.Addr{}
}

// probePacket is the packet of a probe from src, entering from bridge iif
// whose routes are subnets (and the IPv6 link-local one).
func probePacket(pr Probe, iif string, src netip.Addr, subnets []netip.Prefix) (nft.Packet, error) {
	p := nft.Packet{Hook: DirectionOf(pr.Hook).NFHook, IIfName: iif, Src: src, Dst: pr.Dst, DPort: pr.Port,
		// A container sends with a hop limit of 64; a routed packet has
		// lost one by the forward hook.
		HopLimit: 64}
	if pr.Hook != policy.Host {
		p.HopLimit = 63
	}
	if d := DirectionOf(pr.Hook); d.Inbound {
		// From outside (an interface that is no bridge) into the bridge,
		// to the published port.
		p.IIfName, p.OIfName, p.OrigDPort = outsideIf, iif, pr.Port
	} else if pr.Hook == policy.Egress && pr.Out != "" && pr.Out != iif {
		// Routed into another bridge (without DNAT: the original
		// destination port is the packet's).
		p.OIfName = pr.Out
	}
	switch pr.Proto {
	case policy.ProtoAny, "":
		// A protocol that no rule names: 253 is for experiments (RFC 3692).
		p.L4Proto, p.DPort = 253, 0
	case policy.ProtoICMP, policy.ProtoICMPv6:
		// An echo request.
		p.L4Proto, p.ICMPType, p.DPort = ipproto.ICMP, 8, 0
		if pr.Proto == policy.ProtoICMPv6 {
			p.L4Proto, p.ICMPType = ipproto.ICMPv6, 128
		}
	default:
		r, ok := ipproto.ByName(string(pr.Proto))
		if !ok || !r.Ports {
			return nft.Packet{}, fmt.Errorf("explain: unknown protocol %q", pr.Proto)
		}
		p.L4Proto = r.Num
	}
	onLink := func(a netip.Addr) bool { return policy.Contains(subnets, a) || linkLocalRoute6.Contains(a) }
	p.Fib = nft.FibAnswers{SrcViaIIf: onLink(src), DstViaIIf: onLink(pr.Dst), DstLocal: pr.Hook == policy.Host && onLink(pr.Dst)}
	return p, nil
}

// judgingChain is what a network chain stands for.
type judgingChain struct {
	section *policy.Section
	hook    policy.Hook
}

// judge fills in d's section, rule and verdict from the network chains
// that d's trace passed: each ends on the rule that decides, with a return
// (allow) or a goto to a deny chain. Every layer must allow a packet, so
// the first that denies decides; if none does, the first that allows. d's
// Hook is the probe's on entry.
func (r *Result) judge(d *Decision) error {
	outbound := !DirectionOf(d.Hook).Inbound
	chains := map[string]judgingChain{}
	for _, f := range r.Fenced {
		for h, c := range f.Chains {
			chains[c] = judgingChain{f.Section, h}
		}
	}
	catchAll := map[string]bool{}
	if r.CatchAll != nil {
		for _, dir := range Directions {
			chains[dir.CatchAllChain()] = judgingChain{r.CatchAll, dir.Hook}
			catchAll[dir.CatchAllChain()] = true
		}
	}
	decided := false
	for _, s := range d.Trace.Matched() {
		jc, ok := chains[s.Chain]
		if !ok || s.Rule.Verdict.Kind == nft.Continue {
			continue
		}
		var rule *policy.Rule
		spoofed, tunnel, verdict := false, false, policy.Allow
		v := s.Rule.Verdict
		switch den := r.Denials[v.Target]; {
		case v.Kind == nft.Goto && den != nil:
			rule, spoofed, tunnel, verdict = den.Rule, den.Reason == ReasonSpoof, den.Reason == ReasonTunnelEndpoint, policy.Deny
		case v.Kind == nft.Return && (s.Rule.ID == "default" || s.Rule.ID == SameBridgeRuleID || s.Rule.ID == RelatedICMPRuleID):
		case v.Kind == nft.Return:
			for _, pr := range jc.section.Rules(jc.hook) {
				if pr.ID() == s.Rule.ID {
					rule = pr
				}
			}
			if rule == nil {
				return fmt.Errorf("explain: the packet passed rule %d of chain %s (%q), which stands for no rule of section %d", s.Index, s.Chain, s.Rule.ID, jc.section.Index)
			}
		default:
			return fmt.Errorf("explain: rule %d of chain %s (%q) ends the chain with %s, which stands for no verdict of the policy", s.Index, s.Chain, s.Rule.ID, s.Rule.Text())
		}
		if !decided || verdict == policy.Deny && d.Verdict == policy.Allow {
			d.Section, d.Rule, d.Spoofed, d.TunnelEndpoint, d.Verdict, d.CatchAll, d.Hook = jc.section, rule, spoofed, tunnel, verdict, catchAll[s.Chain], jc.hook
			d.NamesList = r.namesListOf(s.Rule)
		}
		decided = true
		if verdict == policy.Deny {
			break
		}
	}
	return r.judgeContainer(d, outbound)
}

// judgeContainer fills in d's container layers from the container layer's
// chains that d's trace passed (see containerChain): held, cut off, the
// container's section and its label. A layer that denies makes the
// verdict deny, whatever the network allowed. For an outbound packet
// (outbound), the layers of ingress chains are those of the container it
// goes to on another network (LayerDecision.Into).
func (r *Result) judgeContainer(d *Decision, outbound bool) error {
	byChain := map[string]*FencedContainer{}
	inbound := map[string]bool{}
	for i := range r.Containers {
		if fc := &r.Containers[i]; fc.Chain != "" {
			byChain[fc.Chain] = fc
		}
		if fc := &r.Containers[i]; fc.IngressChain != "" {
			byChain[fc.IngressChain], inbound[fc.IngressChain] = fc, true
		}
	}
	for _, s := range d.Trace.Matched() {
		v := s.Rule.Verdict
		if v.Kind == nft.Continue || v.Kind == nft.Jump {
			continue
		}
		den := r.Denials[v.Target]
		base, suffix := s.Chain, ""
		if i := strings.LastIndexByte(s.Chain, '.'); i > 0 {
			base, suffix = s.Chain[:i], s.Chain[i:]
		}
		var l LayerDecision
		switch fc := byChain[base]; {
		case (s.Rule.ID == "held" || s.Rule.ID == UncheckedRuleID) && den != nil && den.Reason == ReasonHeld:
			l = LayerDecision{Layer: "held", Verdict: policy.Deny, Into: outbound && DirectionOf(den.Hook).Inbound}
		case byChain[s.Chain] != nil && den != nil && den.Reason == ReasonCutOff:
			d.Container = byChain[s.Chain]
			l = LayerDecision{Layer: "cut off", Verdict: policy.Deny}
		case fc != nil && (suffix == ".s" || suffix == ".l"):
			l.Into = outbound && inbound[base]
			if !l.Into {
				d.Container = fc
			}
			l.Layer, l.Verdict = string(LayerLabel), policy.Allow
			rules := fc.Label
			if suffix == ".s" {
				l.Layer, l.Section, rules = string(LayerSection), fc.Section, fc.Section.Egress.Rules
				if inbound[base] {
					rules = fc.Section.Ingress.Rules
				}
			}
			switch {
			case v.Kind == nft.Goto && den != nil:
				l.Rule, l.Verdict = den.Rule, policy.Deny
			case v.Kind == nft.Return && s.Rule.ID == "default":
			case v.Kind == nft.Return:
				for _, pr := range rules {
					if pr.ID() == s.Rule.ID {
						l.Rule = pr
					}
				}
				if l.Rule == nil {
					return fmt.Errorf("explain: the packet passed rule %d of chain %s (%q), which stands for no rule of the container's %s", s.Index, s.Chain, s.Rule.ID, l.Layer)
				}
			default:
				return fmt.Errorf("explain: rule %d of chain %s (%q) ends the chain with %s, which stands for no verdict of the policy", s.Index, s.Chain, s.Rule.ID, s.Rule.Text())
			}
		default:
			continue
		}
		d.Layers = append(d.Layers, l)
		if l.Verdict == policy.Deny {
			d.Verdict = policy.Deny
			if l.Layer == "held" {
				d.DenyAction = policy.Drop
			}
			break
		}
	}
	return nil
}

// DefaultSource gives a probe without a source the only kind of source a
// container can have in a family its network has no subnet of: a
// link-local one. Egress, that is spoofing, as in the kernel, where every
// packet of such a family is; the host hook lets link-local sources pass.
// The string says so, for people; it is "" when the probe is left as it is.
func DefaultSource(n policy.Network, pr Probe) (Probe, string) {
	if pr.Src.IsValid() || len(n.Subnets) == 0 || !n.IsBridge() {
		return pr, ""
	}
	for _, s := range n.Subnets {
		if s.Addr().Is4() == pr.Dst.Is4() {
			return pr, ""
		}
	}
	fam, src := "IPv6", netip.MustParseAddr("fe80::1")
	if pr.Dst.Is4() {
		fam, src = "IPv4", netip.MustParseAddr("169.254.0.1")
	}
	pr.Src = src
	return pr, fmt.Sprintf("the network has no %s subnet, so its containers can only send %s from outside it (judged with source %s, link-local)", fam, fam, src)
}

// DefaultDestination gives an ingress probe without a destination one
// inside network n, in its source's family: an address of its subnets,
// else a stand-in (the network has no subnet of that family, so no
// container of it has such an address). The string says so, for people;
// it is "" when the probe is left as it is.
func DefaultDestination(n policy.Network, pr Probe) (Probe, string) {
	if !DirectionOf(pr.Hook).Inbound || pr.Dst.IsValid() || !pr.Src.IsValid() {
		return pr, ""
	}
	if pr.Dst = insideAddr(n.Subnets, pr.Src); pr.Dst.IsValid() {
		return pr, ""
	}
	pr.Dst = standInSources[0]
	if pr.Src.Is6() {
		pr.Dst = standInSources[1]
	}
	return pr, fmt.Sprintf("the network has no %s subnet, so no container of it has an %s address (judged with destination %s, a stand-in)", familyOf(pr.Src), familyOf(pr.Src), pr.Dst)
}

// HostAddrs is the set of the host's own addresses, as the kernel
// delivers packets to them; bridge.Local is one.
type HostAddrs interface {
	// Holds reports whether a packet to dst that enters from interface iif
	// is delivered to the host itself.
	Holds(iif string, dst netip.Addr) bool
}

// ToHost judges a probe to one of the host's own addresses in the host
// direction, as the kernel does: a packet from n's bridge to such an
// address is delivered to the host (input hook), not forwarded, so the host
// rules judge it, whatever the caller took it for. addrs are the host's
// addresses; err, when set, says why they are not known, and the probe is
// then left as it is. The string says what was done or left undone, for
// people; it is "" when there is nothing to say, and for a network of
// another driver than bridge, which the table does not judge at all.
func ToHost(n policy.Network, pr Probe, addrs HostAddrs, err error) (Probe, string) {
	if !n.IsBridge() {
		return pr, ""
	}
	switch local := err == nil && addrs.Holds(n.Bridge, pr.Dst); {
	case err != nil && pr.Hook == policy.Egress:
		return pr, fmt.Sprintf("the host's own addresses are not known (%v): %s is judged as egress; if it is one of this host's addresses, --host judges it as the kernel does, by the host rules", err, pr.Dst)
	case local && pr.Hook == policy.Egress:
		pr.Hook = policy.Host
		return pr, fmt.Sprintf("%s is one of this host's own addresses: the kernel delivers the packet to the host (input hook), so the host rules judge it", pr.Dst)
	case err == nil && !local && pr.Hook == policy.Host:
		return pr, fmt.Sprintf("%s is not one of this host's own addresses: judged as traffic to the host all the same, as --host asks", pr.Dst)
	}
	return pr, ""
}

// RoutedOut gives an egress probe the bridge it leaves by (Probe.Out)
// when its destination is on another bridge of the host than n's: a
// container of another network, whose ingress rules the forward hook
// judges the packet by too. bridges are the host's bridges with the
// subnets they route (their addresses' prefixes); the first that holds
// the destination is the one, as the host's routes have it. The string
// says so, for people; it is "" when the probe is left as it is.
func RoutedOut(n policy.Network, pr Probe, bridges []policy.Network) (Probe, string) {
	if pr.Hook != policy.Egress || !pr.Dst.IsValid() || !n.IsBridge() {
		return pr, ""
	}
	for _, b := range bridges {
		if b.Bridge == "" || !policy.Contains(b.Subnets, pr.Dst) {
			continue
		}
		if b.Bridge == n.Bridge {
			return pr, ""
		}
		pr.Out = b.Bridge
		return pr, fmt.Sprintf("%s is on bridge %s, another network's: the packet is forwarded into it, so that network's ingress rules (its section's, and its container's) judge it too", pr.Dst, b.Bridge)
	}
	return pr, ""
}
