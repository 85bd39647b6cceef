package status

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/policy"
)

// Explanation is the JSON object that `dockerfence explain --json` prints.
// Every field is always present (strings may be empty, subnets an empty
// list); fields are only ever added, never renamed or removed.
type Explanation struct {
	// Network is the network the packet comes from, as explain resolved it.
	Network ExplainedNetwork `json:"network"`
	// Note says where the network came from and what that means for the
	// verdict, in words.
	Note string `json:"note"`
	// Packet is the packet judged.
	Packet ExplainedPacket `json:"packet"`
	// Section is the 1-based index of the section that covers the network,
	// 0 if none does: the network is then not fenced and the packet passes.
	// It is 0 for a network that cannot be fenced, even if a section's
	// match fits it (the note names that section).
	Section int `json:"section"`
	// Match is that section's match as written, such as
	// `{subnet: 172.20.0.0/16}`; "" without a section.
	Match string `json:"match"`
	// SectionHook is the direction of that section's rules that decided:
	// the packet's hook, or "ingress" when an egress packet to a
	// container of another network (Out) is denied by that network's
	// section, whose ingress rules judge it too; "" without a section.
	SectionHook string `json:"section_hook"`
	// Rule names the rule that decided, "egress 3" or "host 1"; "" when
	// anti-spoofing or the hook's default decided, or no section applies.
	Rule string `json:"rule"`
	// RuleMatch is what that rule matches, such as "192.168.100.2 udp/53";
	// "" without a rule.
	RuleMatch string `json:"rule_match"`
	// Comment is that rule's comment; "" without a rule or comment.
	Comment string `json:"comment"`
	// DecidedBy is "rule", "default" (egress_default, host_default or
	// ingress_default), "unjudged" (the section has no ingress keys, so it
	// does not judge connections into the network),
	// "anti-spoofing", "tunnel endpoint" (a tunnel's port on the host that
	// only host_default would allow), "unfenced" (no section covers the network) or "not
	// fenceable" (a network of another driver than bridge, which no
	// section can fence: the note says why).
	DecidedBy string `json:"decided_by"`
	// Spoofed is true when the source is outside the network's subnets.
	Spoofed bool `json:"spoofed"`
	// Verdict is the policy's verdict, "allow" or "deny".
	Verdict string `json:"verdict"`
	// DenyAction is settings.deny_action ("reject" or "drop") when the
	// verdict is deny in enforce mode; "" otherwise.
	DenyAction string `json:"deny_action"`
	// Audit is true in audit mode: a deny is then only logged and counted.
	Audit bool `json:"audit"`
	// Passes is true when the packet gets through dockerfence: the verdict
	// is allow, or the mode is audit. Docker's own rules still apply.
	Passes bool `json:"passes"`
	// Action is what the table does with the packet: "allow" (it
	// passes), "reject" or "drop".
	Action string `json:"action"`
	// CatchAll is true when the catch-all judged the packet: the rules of
	// the {name: "*"} section for docker0 and br-* bridges that the table
	// does not know, such as a bridge Docker does not report, or a network
	// that nothing holds, judged as a new bridge would be (the note says
	// so).
	CatchAll bool `json:"catch_all"`
	// Container is the container the packet came from (explain
	// --container); empty strings for a network's packet.
	Container ExplainedContainer `json:"container"`
	// Layers are the container's own layers that judged the packet, in
	// order (its section, its label; "held" for an address no container
	// held, "cut off" for a label that does not parse); [] for a
	// network's packet and for a container without rules of its own.
	// Layers with Into set are those of the container an egress packet
	// goes to on another network.
	Layers []ExplainedLayer `json:"layers"`
	// Out is the bridge an egress packet leaves by when it goes to a
	// container of another network, whose ingress rules (its network's
	// section and its container's) judge it too; "" otherwise.
	Out string `json:"out"`
}

// ExplainedContainer names the container of an Explanation.
type ExplainedContainer struct {
	Name string `json:"name"`
	ID   string `json:"id"`
}

// ExplainedLayer is what one of a container's own layers made of the
// packet.
type ExplainedLayer struct {
	// Layer is "container section", "label", "held", "cut off" or
	// "identity" (a source that is not the container's own, dropped at
	// its bridge port).
	Layer string `json:"layer"`
	// Section and Match are the container section's index and match (0
	// and "" for the others).
	Section int    `json:"section"`
	Match   string `json:"match"`
	// Rule, RuleMatch and Comment are the rule that decided ("" for the
	// layer's default).
	Rule      string `json:"rule"`
	RuleMatch string `json:"rule_match"`
	Comment   string `json:"comment"`
	Verdict   string `json:"verdict"`
	// Into is true for a layer of the container an egress packet goes to
	// on another network (see Explanation.Out), judged by its ingress
	// rules.
	Into bool `json:"into"`
}

// ExplainedNetwork is the network part of an Explanation.
type ExplainedNetwork struct {
	// Name is the Docker network's name; for a bridge found over netlink,
	// the bridge's name if it is docker0 or br-*, else "".
	Name   string `json:"name"`
	Bridge string `json:"bridge"`
	// Driver is the Docker network's driver ("bridge", "macvlan", ...);
	// "" for a bridge found over netlink and for a network given as an
	// argument, both judged as bridges.
	Driver string `json:"driver"`
	// Subnets are the network's subnets, IPv4 first; `self` stands for them.
	Subnets []string `json:"subnets"`
	// Source is where the network came from: "docker" (Docker's API),
	// "netlink" (a bridge found over netlink), or "argument" (nothing
	// found: --network as given, a name or a subnet).
	Source string `json:"source"`
}

// ExplainedPacket is the packet part of an Explanation.
type ExplainedPacket struct {
	// Hook is "egress" (to anywhere but the host), "host" (to the host
	// itself: --host, or a destination that is one of the host's own
	// addresses, which the kernel delivers to the host) or "ingress" (a
	// connection from Src into the network's container Dst, --ingress;
	// Port is then the published port).
	Hook string `json:"hook"`
	// Src is the source address; "" stands for an address inside the network.
	Src string `json:"src"`
	Dst string `json:"dst"`
	// Port is the destination port, 0 for none.
	Port int `json:"port"`
	// Proto is tcp, udp, sctp, icmp, icmpv6, or any (no protocol given).
	Proto string `json:"proto"`
}

// Explain is what explain found out: the network (from source, with a
// note for people), the probe, and the table's decision.
type Explain struct {
	Network policy.Network
	Source  string
	Note    string
	Probe   fence.Probe
	fence.Decision
}

// Explanation returns the JSON object of explain --json.
func (x *Explain) Explanation() Explanation {
	d, pr := &x.Decision, x.Probe
	e := Explanation{
		Network:  ExplainedNetwork{Name: x.Network.Name, Bridge: x.Network.Bridge, Driver: x.Network.Driver, Subnets: []string{}, Source: x.Source},
		Note:     x.Note,
		Packet:   ExplainedPacket{Hook: pr.Hook.String(), Dst: pr.Dst.String(), Port: int(pr.Port), Proto: string(pr.Proto)},
		Spoofed:  d.Spoofed,
		Verdict:  d.Verdict.String(),
		Audit:    d.Audit,
		Passes:   d.Passes,
		CatchAll: d.CatchAll,
		Out:      pr.Out,
	}
	for _, s := range x.Network.Subnets {
		e.Network.Subnets = append(e.Network.Subnets, s.String())
	}
	if pr.Src.IsValid() {
		e.Packet.Src = pr.Src.String()
	}
	e.Action = "allow"
	if d.Verdict == policy.Deny && !d.Audit {
		e.DenyAction = string(d.DenyAction)
		e.Action = string(d.DenyAction)
	}
	e.Layers = []ExplainedLayer{}
	if c := d.Container; c != nil {
		e.Container = ExplainedContainer{Name: c.Container.Name, ID: c.Container.ID}
	}
	for _, l := range d.Layers {
		el := ExplainedLayer{Layer: l.Layer, Verdict: l.Verdict.String(), Into: l.Into}
		if l.Section != nil {
			el.Section, el.Match = l.Section.Index, l.Section.Match.String()
		}
		if l.Rule != nil {
			el.Rule, el.RuleMatch, el.Comment = l.Rule.ID(), fence.RuleMatch(l.Rule), l.Rule.Comment
		}
		e.Layers = append(e.Layers, el)
	}
	switch {
	case d.NotFenceable != nil:
		e.DecidedBy = "not fenceable"
		e.Note = strings.TrimPrefix(e.Note+"; "+notFenced(d.NotFenceable), "; ")
		return e
	case d.Section == nil:
		e.DecidedBy = "unfenced"
		return e
	case d.Spoofed:
		e.DecidedBy = "anti-spoofing"
	case d.Unjudged:
		e.DecidedBy = "unjudged"
	case d.TunnelEndpoint:
		e.DecidedBy = "tunnel endpoint"
	case d.Rule != nil:
		e.DecidedBy = "rule"
		e.Rule, e.RuleMatch, e.Comment = d.Rule.ID(), fence.RuleMatch(d.Rule), d.Rule.Comment
	default:
		e.DecidedBy = "default"
	}
	e.Section, e.Match, e.SectionHook = d.Section.Index, d.Section.Match.String(), x.sectionHook().String()
	if n := len(e.Layers); n > 0 && e.Layers[n-1].Verdict == "deny" {
		e.DecidedBy = e.Layers[n-1].Layer
	}
	return e
}

// sectionHook is the direction of the section's rules that decided: the
// probe's, or ingress for an egress packet into another network
// (Probe.Out) that network's section denied.
func (x *Explain) sectionHook() policy.Hook {
	if x.Probe.Out != "" {
		return x.Decision.Hook
	}
	return x.Probe.Hook
}

// Text renders the explanation for people, one aspect a line.
func (x *Explain) Text() string {
	var b strings.Builder
	n, d, pr := x.Network, &x.Decision, x.Probe
	var subs []string
	for _, p := range n.Subnets {
		subs = append(subs, p.String())
	}
	name := n.Name
	if name == "" {
		name = "(by subnet)"
		if n.Bridge != "" {
			name = "(bridge only)"
		}
	}
	fmt.Fprintf(&b, "network  %s", name)
	switch {
	case !n.IsBridge():
		fmt.Fprintf(&b, " (driver %s, subnets %s)", n.Driver, dash(strings.Join(subs, ", ")))
	case n.Bridge != "" || len(subs) > 0:
		fmt.Fprintf(&b, " (bridge %s, subnets %s)", dash(n.Bridge), dash(strings.Join(subs, ", ")))
	}
	b.WriteString("\n")
	if x.Note != "" {
		fmt.Fprintf(&b, "note     %s\n", x.Note)
	}
	dst := pr.Dst.String()
	if pr.Port != 0 {
		dst = netip.AddrPortFrom(pr.Dst, pr.Port).String()
	}
	proto := string(pr.Proto)
	if pr.Proto == policy.ProtoAny {
		proto = "any protocol (only rules without proto and ports can match)"
	}
	from := ""
	if pr.Src.IsValid() {
		from = " from " + pr.Src.String()
	}
	published := ""
	if pr.Hook == policy.Ingress && pr.Port != 0 {
		published = fmt.Sprintf(" (published port %d: the connection's destination port before Docker's DNAT)", pr.Port)
	}
	fmt.Fprintf(&b, "packet   %s%s to %s, %s%s\n", pr.Hook, from, dst, proto, published)
	if u := d.NotFenceable; u != nil {
		sec := "none matches this network"
		if u.Section != nil {
			sec = fmt.Sprintf("none: %d %s (%s) matches this network but cannot fence it", u.Section.Index, u.Section.Match, u.Section.Pos)
		}
		fmt.Fprintf(&b, "section  %s\nverdict  not fenced: %s\n", sec, u.Reason)
		return b.String()
	}
	if d.Section == nil {
		b.WriteString("section  none matches this network\nverdict  allow: the network is not fenced\n")
		return b.String()
	}
	into := ""
	if x.sectionHook() != pr.Hook {
		into = fmt.Sprintf(", the section of the network at %s, by its %s rules", pr.Dst, x.sectionHook())
	}
	fmt.Fprintf(&b, "section  %d %s (%s)%s\n", d.Section.Index, d.Section.Match, d.Section.Pos, into)
	switch {
	case d.Spoofed:
		fmt.Fprintf(&b, "rule     anti-spoofing: source %s is outside the network's subnets\n", pr.Src)
	case d.Unjudged:
		fmt.Fprintf(&b, "rule     none: the section has no %s keys, so it does not judge connections into the network\n", pr.Hook)
	case d.TunnelEndpoint:
		fmt.Fprintf(&b, "rule     tunnel endpoint: %s/%d is a tunnel's port on this host, which only host_default would allow; what a tunnel decapsulates is not fenced, so the tunnel fence denies it (a host rule that allows it explicitly comes first)\n", pr.Proto, pr.Port)
	case d.Rule != nil:
		c := ""
		if d.Rule.Comment != "" {
			c = fmt.Sprintf(" %q", d.Rule.Comment)
		}
		fmt.Fprintf(&b, "rule     %s%s: %s %s (%s)\n", d.Rule.ID(), c, d.Rule.Verdict, d.Rule.Addrs.Text, d.Rule.Pos)
	default:
		fmt.Fprintf(&b, "rule     none matches: %s_default\n", x.sectionHook())
	}
	if c := d.Container; c != nil {
		fmt.Fprintf(&b, "container %s (%s)\n", c.Container.Name, shortID(c.Container.ID))
		switch {
		case len(d.Layers) > 0 || d.Verdict != policy.Allow:
		case pr.Hook == policy.Ingress:
			b.WriteString("layer    none of its own: no container section with ingress keys matches it\n")
		default:
			b.WriteString("layer    none of its own: no container section matches it and it has no label dockerfence.egress\n")
		}
	}
	for _, l := range d.Layers {
		var what string
		switch {
		case l.Layer == "held":
			what = "held: no container is known to hold this address yet, so its packets are dropped until dockerfence classifies it"
		case l.Layer == "cut off":
			what = "cut off: its label dockerfence.egress does not parse, so all its egress is denied"
		case l.Layer == "identity":
			what = fmt.Sprintf("identity: %s is not this container's own address, so its bridge port drops the packet", pr.Src)
		case l.Rule != nil:
			c := ""
			if l.Rule.Comment != "" {
				c = fmt.Sprintf(" %q", l.Rule.Comment)
			}
			what = fmt.Sprintf("%s%s: %s %s", l.Rule.ID(), c, l.Rule.Verdict, l.Rule.Addrs.Text)
		case l.Into:
			what = fmt.Sprintf("none matches: ingress_default %s", l.Verdict)
		default:
			what = fmt.Sprintf("none matches: %s_default %s", pr.Hook, l.Verdict)
		}
		name := l.Layer
		if l.Section != nil {
			name = fmt.Sprintf("container section %d %s (%s)", l.Section.Index, l.Section.Match, l.Section.Pos)
		} else if l.Layer == string(fence.LayerLabel) {
			name = "label dockerfence.egress"
		}
		if l.Into {
			// The receiving container's, on the network the packet goes to.
			fmt.Fprintf(&b, "layer    of the container at %s (ingress): %s: %s\n", pr.Dst, name, what)
			continue
		}
		if l.Layer == "held" || l.Layer == "cut off" || l.Layer == "identity" {
			fmt.Fprintf(&b, "layer    %s\n", what)
			continue
		}
		fmt.Fprintf(&b, "layer    %s: %s\n", name, what)
	}
	var v string
	switch {
	case d.Verdict == policy.Deny && d.Audit:
		v = "allow (audit mode: would deny, logged and counted)"
	case d.Verdict == policy.Deny:
		v = fmt.Sprintf("deny (%s)", d.DenyAction)
	default:
		v = "allow (handed on to the rest of the firewall; Docker's rules still apply)"
	}
	fmt.Fprintf(&b, "verdict  %s\n", v)
	return b.String()
}

// dash is s, or "-" if it is empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// notFenced is explain's answer for a network that cannot be fenced:
// "not fenced: " and why.
func notFenced(u *fence.NotFenceable) string {
	return "not fenced: " + u.Reason + u.SectionNote()
}
