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
// reads: tunnels the host rules let through.
func (b *builder) warn() {
	if b.pol.Settings.TunnelMark == 0 && (len(b.r.Fenced) > 0 || b.r.CatchAll != nil) {
		b.r.Warnings = append(b.r.Warnings, "settings.tunnel_mark is 0: what tunnels on this host (VXLAN, GENEVE, GRE, IPIP, FOU) decapsulate from the packets containers send to the host is not fenced")
	}
	for _, f := range b.r.Fenced {
		b.tunnelWarnings("network "+networkName(f.Network), f.Section)
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
