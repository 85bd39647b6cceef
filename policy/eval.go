package policy

import (
	"net/netip"
)

// Probe is a packet for Evaluate to judge.
type Probe struct {
	Hook Hook
	// Src is the packet's source; the zero Addr means a source inside the network.
	Src netip.Addr
	Dst netip.Addr
	// Proto is the packet's protocol; ProtoAny stands for a packet whose
	// protocol is left open, which only protocol-free rules match.
	Proto Proto
	// Port is the destination port, 0 for none.
	Port uint16
}

// Decision is how the policy judges a probe.
type Decision struct {
	// Section is the section that covers the network, nil if none does: the
	// network is then not fenced and the packet passes.
	Section *Section
	// Rule is the rule that decided, nil for anti-spoofing and defaults.
	Rule *Rule
	// Spoofed is set when the source is outside the network's subnets.
	Spoofed bool
	// Verdict is the policy's verdict.
	Verdict Verdict
	// Audit is set in audit mode: a deny verdict is logged and counted, and the packet passes.
	Audit bool
}

// Passes reports whether the packet gets through dockerfence.
func (d Decision) Passes() bool { return d.Verdict == Allow || d.Audit }

var (
	linkLocal4 = netip.MustParsePrefix("169.254.0.0/16")
	linkLocal6 = netip.MustParsePrefix("fe80::/10")
)

// Evaluate judges the probe for network n as the kernel table that dockerfence
// renders from the policy does.
func (p *Policy) Evaluate(n Network, pr Probe) Decision {
	d := Decision{Section: p.SectionFor(n), Audit: p.Settings.Mode == Audit}
	if d.Section == nil {
		d.Verdict = Allow
		return d
	}
	// Link-local sources are no spoofing towards the host, nor, for IPv6,
	// between containers of the bridge (br_netfilter hands that traffic to
	// the forward hook): to a link-local address or one in the network's
	// subnets. The kernel never routes an IPv6 link-local source, so
	// towards any other destination it cannot get out: judged as spoofed.
	linkLocal := pr.Hook == Host && (linkLocal4.Contains(pr.Src) || linkLocal6.Contains(pr.Src)) ||
		linkLocal6.Contains(pr.Src) && (linkLocal6.Contains(pr.Dst) || Contains(n.Subnets, pr.Dst))
	if pr.Src.IsValid() && !Contains(n.Subnets, pr.Src) && !linkLocal {
		d.Spoofed, d.Verdict = true, Deny
		return d
	}
	for _, r := range d.Section.Rules(pr.Hook) {
		if p.ruleMatches(r, n, pr) {
			d.Rule, d.Verdict = r, r.Verdict
			return d
		}
	}
	d.Verdict = d.Section.Default(pr.Hook)
	return d
}

func (p *Policy) ruleMatches(r *Rule, n Network, pr Probe) bool {
	if !r.Addrs.Any && !Contains(p.Resolve(r.Addrs, n), pr.Dst) {
		return false
	}
	protos := r.Protos()
	if protos == nil {
		return true
	}
	ok := false
	for _, proto := range protos {
		if proto == pr.Proto {
			ok = true
		}
	}
	switch {
	case !ok:
		return false
	case pr.Proto == ProtoICMP && !pr.Dst.Is4(), pr.Proto == ProtoICMPv6 && pr.Dst.Is4():
		return false
	case len(r.Ports) == 0:
		return true
	}
	for _, pr2 := range r.Ports {
		if pr.Port >= pr2.First && pr.Port <= pr2.Last && pr.Port != 0 {
			return true
		}
	}
	return false
}
