package fence

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dockerfence/dockerfence/policy"
)

// tunnelPorts are the UDP ports that tunnels listen on by default.
var tunnelPorts = []struct {
	port uint16
	name string
}{
	{4754, "GRE-in-UDP"},
	{4789, "VXLAN"},
	{6081, "GENEVE"},
	{6635, "MPLS-in-UDP"},
	{8472, "VXLAN of Linux and flannel"},
	{51820, "WireGuard"},
}

// warn adds the findings about what the table cannot fence as the policy
// reads: tunnels the host rules let through, and address families a
// network has and its deny rules leave out.
func (b *builder) warn() {
	if b.pol.Settings.TunnelMark == 0 && (len(b.r.Fenced) > 0 || b.r.CatchAll != nil) {
		b.r.Warnings = append(b.r.Warnings, "settings.tunnel_mark is 0: what tunnels on this host (VXLAN, GENEVE, GRE, IPIP, FOU, WireGuard) decapsulate from the packets containers send to the host is not fenced")
	}
	for _, f := range b.r.Fenced {
		who := "network " + networkName(f.Network)
		b.tunnelWarnings(who, f.Section)
		for _, d := range Directions {
			b.familyWarnings(who, f.Section, d, f.Network)
		}
	}
	if ca := b.r.CatchAll; ca != nil {
		b.tunnelWarnings("bridges not known yet", ca)
	}
}

// networkName names a network in warnings: its name, else its bridge;
// quoted if it holds more than letters, digits and "_.-", so that a
// hostile name cannot pass for a part of the message.
func networkName(n policy.Network) string {
	name := n.Name
	if name == "" {
		name = n.Bridge
	}
	if name == "" || strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
	}) >= 0 {
		return strconv.Quote(name)
	}
	return name
}

// tunnelWarnings warns of every host rule of sec that allows tunnel traffic
// explicitly: such packets are not marked (see networkChain), so what a
// tunnel decapsulates from them is not fenced.
func (b *builder) tunnelWarnings(who string, sec *policy.Section) {
	if b.pol.Settings.TunnelMark == 0 {
		return
	}
	for _, r := range sec.Rules(policy.Host) {
		if r.Verdict != policy.Allow {
			continue
		}
		if what := tunnelsAllowed(r); what != "" {
			b.r.Warnings = append(b.r.Warnings, fmt.Sprintf("%s (section %d): %s allows %s to this host explicitly, so what a tunnel endpoint there decapsulates from the containers' packets is not fenced; the tunnel fence covers only what host_default allows", who, sec.Index, r.ID(), what))
		}
	}
}

// tunnelsAllowed says which tunnels a host allow rule lets in: every
// protocol (GRE and IPIP included) and UDP port, every UDP port, or the
// UDP ports of known tunnels it covers; "" for none.
func tunnelsAllowed(r *policy.Rule) string {
	protos := r.Protos()
	if len(protos) == 0 {
		return "every protocol (GRE, IPIP and UDP tunnels on any port)"
	}
	udp := false
	for _, p := range protos {
		udp = udp || p == policy.ProtoUDP
	}
	if !udp {
		return ""
	}
	if len(r.Ports) == 0 {
		return "every UDP port (VXLAN, GENEVE, FOU and other UDP tunnels)"
	}
	var found []string
	for _, tp := range tunnelPorts {
		for _, pr := range r.Ports {
			if pr.First <= tp.port && tp.port <= pr.Last {
				found = append(found, fmt.Sprintf("udp/%d (%s)", tp.port, tp.name))
				break
			}
		}
	}
	return strings.Join(found, ", ")
}

// familyWarnings warns when network n has subnets of an address family
// that none of the deny rules of its section in direction d covers, while
// some cover the other family, and the direction's default allows: that
// family's traffic passes what the rules meant to deny.
func (b *builder) familyWarnings(who string, sec *policy.Section, d Direction, n policy.Network) {
	h := d.Hook
	if sec.Default(h) == policy.Deny {
		return
	}
	var covers [2]bool // by family: IPv4, IPv6
	for _, r := range sec.Rules(h) {
		if r.Verdict != policy.Deny {
			continue
		}
		v4, v6 := b.families(r, n)
		covers[0], covers[1] = covers[0] || v4, covers[1] || v6
	}
	if covers[0] == covers[1] {
		return // both families, or no deny rule at all
	}
	var subnets [2][]string
	for _, p := range n.Subnets {
		i := 0
		if p.Addr().Is6() {
			i = 1
		}
		subnets[i] = append(subnets[i], p.String())
	}
	names := [2]string{"IPv4", "IPv6"}
	for fam := range 2 {
		if covers[fam] || len(subnets[fam]) == 0 {
			continue
		}
		what := "subnet " + subnets[fam][0] + " has"
		if len(subnets[fam]) > 1 {
			what = "subnets " + strings.Join(subnets[fam], ", ") + " have"
		}
		traffic := "traffic from it to anywhere but this host is"
		switch {
		case d.ToHost:
			traffic = "traffic from it to this host is"
		case d.Inbound:
			traffic = "connections into it from outside are"
		}
		b.r.Warnings = append(b.r.Warnings, fmt.Sprintf("%s: its %s %s no %s deny rule in section %d %s, whose deny rules cover %s only and whose %s_default is allow: %s %s not fenced",
			who, names[fam], what, names[fam], sec.Index, h, names[1-fam], h, names[fam], traffic))
	}
}

// families reports which address families a deny rule covers for network
// n, as policyRules renders it.
func (b *builder) families(r *policy.Rule, n policy.Network) (v4, v6 bool) {
	v4, v6 = r.Proto != policy.ProtoICMPv6, r.Proto != policy.ProtoICMP
	if r.Addrs.Any {
		return v4, v6
	}
	var has4, has6 bool
	for _, p := range b.pol.Resolve(r.Addrs, n) {
		has4, has6 = has4 || p.Addr().Is4(), has6 || p.Addr().Is6()
	}
	return v4 && has4, v6 && has6
}
