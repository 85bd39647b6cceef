package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dockerfence/dockerfence/discover"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/spf13/cobra"
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
	Section int `json:"section"`
	// Match is that section's match as written, such as
	// `{subnet: 172.20.0.0/16}`; "" without a section.
	Match string `json:"match"`
	// Rule names the rule that decided, "egress 3" or "host 1"; "" when
	// anti-spoofing or the hook's default decided, or no section applies.
	Rule string `json:"rule"`
	// RuleMatch is what that rule matches, such as "192.168.100.2 udp/53";
	// "" without a rule.
	RuleMatch string `json:"rule_match"`
	// Comment is that rule's comment; "" without a rule or comment.
	Comment string `json:"comment"`
	// DecidedBy is "rule", "default" (egress_default or host_default),
	// "anti-spoofing" or "unfenced" (no section covers the network).
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
}

// ExplainedNetwork is the network part of an Explanation.
type ExplainedNetwork struct {
	// Name is the Docker network's name; for a bridge found over netlink,
	// the bridge's name if it is docker0 or br-*, else "".
	Name   string `json:"name"`
	Bridge string `json:"bridge"`
	// Subnets are the network's subnets, IPv4 first; `self` stands for them.
	Subnets []string `json:"subnets"`
	// Source is where the network came from: "docker" (Docker's API),
	// "netlink" (a bridge found over netlink), or "argument" (nothing
	// found: --network as given, a name or a subnet).
	Source string `json:"source"`
}

// ExplainedPacket is the packet part of an Explanation.
type ExplainedPacket struct {
	// Hook is "egress" (to anywhere but the host) or "host" (--host).
	Hook string `json:"hook"`
	// Src is the source address; "" stands for an address inside the network.
	Src string `json:"src"`
	Dst string `json:"dst"`
	// Port is the destination port, 0 for none.
	Port int `json:"port"`
	// Proto is tcp, udp, sctp, icmp, icmpv6, or any (no protocol given).
	Proto string `json:"proto"`
}

func explainCmd(g *globalFlags) *cobra.Command {
	var network, to, from string
	var host, asJSON bool
	cmd := &cobra.Command{
		Use:   "explain --network NAME|BRIDGE|SUBNET --to ADDR[:PORT][/PROTO] [--json]",
		Short: "Say which section and rule decide a packet, and the verdict (no root needed)",
		Long: `explain evaluates the policy offline for one packet from a container of the
network to ADDR. PROTO is tcp, udp, sctp, icmp or icmpv6; with a port and no
protocol it is tcp. --host judges traffic to the host itself (the host rules).

The network is found as apply finds it. If Docker answers, --network is one of
Docker's networks, by name or bridge; a bridge Docker does not know is judged
as apply leaves it (by the {name: "*"} section if it is docker0 or br-*, else
not fenced). Without Docker, --network is a bridge found over netlink, by its
name. A SUBNET that a network or bridge holds stands for that whole network
(all its subnets count for 'self'); otherwise it is judged alone.`,
		Example: `  dockerfence explain --network app_default --to 192.168.100.50:5432
  dockerfence explain --network 172.20.0.0/16 --to 192.168.100.2:53/udp
  dockerfence explain --network br-0123456789ab --to '[2001:db8::1]:443' --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if network == "" || to == "" {
				return fmt.Errorf("explain needs --network NAME|BRIDGE|SUBNET and --to ADDR[:PORT][/PROTO]")
			}
			pol, err := loadPolicy(g)
			if err != nil {
				return err
			}
			probe, err := parseProbe(to)
			if err != nil {
				return err
			}
			if host {
				probe.Hook = policy.Host
			}
			if from != "" {
				if probe.Src, err = parseAddr(from); err != nil {
					return fmt.Errorf("--from %q: not an address", from)
				}
			}
			rn := explainNetwork(cmd, g, network)
			if pol.NeedsDocker() && !rn.DockerAnswered {
				rn.Note += "; note that apply refuses this policy while Docker is not reachable, as it matches by name or label"
			}
			probe, srcNote := defaultSource(rn.Network, probe)
			if srcNote != "" {
				rn.Note += "; " + srcNote
			}
			d := rn.evaluate(pol, probe)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(explanation(pol, rn, probe, d))
			}
			printDecision(cmd, pol, rn.Network, rn.Note, probe, d)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&network, "network", "", "Docker network name, bridge name, or a subnet such as 172.20.0.0/16")
	f.StringVar(&to, "to", "", "destination ADDR[:PORT][/PROTO]; IPv6 with a port as [ADDR]:PORT")
	f.StringVar(&from, "from", "", "source address (default: one inside the network; a link-local one in a family the network has no subnet of)")
	f.BoolVar(&host, "host", false, "the destination is this host (judge the host rules)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object: network {name, bridge, subnets, source}, note, packet {hook, src, dst, port, proto}, section (0: none), match, rule (\"egress 3\", or \"\"), rule_match, comment, decided_by (rule, default, anti-spoofing, unfenced), spoofed, verdict (allow, deny), deny_action, audit, passes; see the Explanation type")
	return cmd
}

// Network sources, as in ExplainedNetwork.Source.
const (
	sourceDocker   = "docker"
	sourceNetlink  = "netlink"
	sourceArgument = "argument"
)

// resolvedNetwork is the network explain judges a packet for, and how it
// was found.
type resolvedNetwork struct {
	policy.Network
	// Source is sourceDocker, sourceNetlink or sourceArgument.
	Source string
	// Note says where the network came from, for people.
	Note string
	// DockerAnswered is set when Docker's networks were read.
	DockerAnswered bool
	// CatchAllOnly is set for a docker0 or br-* bridge that Docker, though
	// reachable, does not report: apply does not fence it as a network, so
	// only the table's rules for bridges not known yet, those of the
	// {name: "*"} section, judge its packets.
	CatchAllOnly bool
	// Unfenced is set for a bridge that Docker, though reachable, does not
	// report and that is not docker0 or br-*: apply does not fence it at all.
	Unfenced bool
}

// evaluate judges the probe as the kernel's table does for this network.
func (rn resolvedNetwork) evaluate(pol *policy.Policy, pr policy.Probe) policy.Decision {
	switch {
	case rn.Unfenced:
		only := *pol
		only.Sections = nil
		return only.Evaluate(rn.Network, pr)
	case rn.CatchAllOnly:
		only := *pol
		only.Sections = nil
		if ca := pol.CatchAll(); ca != nil {
			only.Sections = []*policy.Section{ca}
		}
		return only.Evaluate(rn.Network, pr)
	}
	return pol.Evaluate(rn.Network, pr)
}

// explainNetwork finds the network as apply would: Docker's networks if
// Docker answers, else the bridges found over netlink.
func explainNetwork(cmd *cobra.Command, g *globalFlags, arg string) resolvedNetwork {
	// Bridges that cannot be listed are in inv.BridgesErr, which the note
	// tells: explain judges with what there is.
	inv, _ := takeInventory(cmd.Context(), g)
	return resolveNetworkIn(inv, arg)
}

// resolveNetworkIn finds the network that arg (a network name, a bridge
// name or a subnet) stands for in the inventory, as apply fences it, and
// says in the note how it was found and what that means.
func resolveNetworkIn(inv *discover.Inventory, arg string) resolvedNetwork {
	f := inv.Find(arg)
	n := f.Network
	rn := resolvedNetwork{Network: n, DockerAnswered: inv.Source == discover.SourceDocker, CatchAllOnly: f.CatchAllOnly, Unfenced: f.Unfenced}
	var how string
	switch {
	case !f.Subnet.IsValid():
	case f.Subnet == f.Prefix:
		how = fmt.Sprintf(", which holds %s", f.Prefix)
	default:
		how = fmt.Sprintf(", whose subnet %s contains %s", f.Subnet, f.Prefix)
	}
	var extra string
	if inv.BridgesErr != nil {
		extra = fmt.Sprintf("; bridges not listed: %v", inv.BridgesErr)
	}
	switch {
	case f.Source == discover.SourceNone:
		rn.Source = sourceArgument
		switch {
		case inv.FromDocker() && f.Prefix.IsValid():
			rn.Note = "no Docker network or bridge holds this subnet: judged by the subnet alone, so name, bridge and label matches cannot hold" + extra
		case inv.FromDocker():
			rn.Note = "Docker has no network or bridge of that name: judged by name alone, so 'self' and subnet, bridge and label matches cannot hold" + extra
		case f.Prefix.IsValid():
			rn.Note = fmt.Sprintf("%v, and no bridge holds this subnet: judged by the subnet alone, so name, bridge and label matches cannot hold%s", inv.DockerErr, extra)
		default:
			rn.Note = fmt.Sprintf("%v, and no bridge has that name: judged by name alone, so 'self' and subnet, bridge and label matches cannot hold%s", inv.DockerErr, extra)
		}
	case !inv.FromDocker():
		rn.Source = sourceNetlink
		rn.Note = fmt.Sprintf("%v; bridge %s found over netlink%s, as apply fences it without Docker (no labels)", inv.DockerErr, n.Bridge, how)
		if n.Name == "" {
			rn.Note += "; it is not docker0 or br-*, so it has no name that name matches could fit"
		}
	case f.Unlisted:
		// A subnet of the bridge that Docker's network on it does not
		// list: the kernel fences the bridge as that network.
		rn.Source = sourceDocker
		rn.Note = fmt.Sprintf("Docker's network %s (bridge %s): the bridge%s, though Docker does not list that subnet", orDash(n.Name), n.Bridge, how) + extra
	case f.CatchAllOnly:
		rn.Source = sourceNetlink
		rn.Note = fmt.Sprintf("bridge %s found over netlink%s, but Docker reports no network on it: apply leaves it to the rules for bridges not known yet, those of the {name: \"*\"} section if the policy has one", n.Bridge, how)
	case f.Unfenced:
		rn.Source = sourceNetlink
		rn.Note = fmt.Sprintf("bridge %s found over netlink%s, but Docker reports no network on it and it is not docker0 or br-*: apply does not fence it", n.Bridge, how)
	default:
		rn.Source = sourceDocker
		rn.Note = fmt.Sprintf("Docker's network %s (bridge %s)", orDash(n.Name), orDash(n.Bridge)) + how + extra
	}
	return rn
}

// defaultSource gives a probe without --from the only kind of source a
// container can have in a family its network has no subnet of: a link-local
// one. Egress, that is spoofing, as in the kernel, where every packet of
// such a family is; the host hook lets link-local sources pass.
func defaultSource(n policy.Network, pr policy.Probe) (policy.Probe, string) {
	if pr.Src.IsValid() || len(n.Subnets) == 0 {
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

// parseAddr parses an address; an IPv4-mapped one becomes IPv4 and a zone
// is dropped, as the kernel's rules never see either.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return a.Unmap().WithZone(""), nil
}

// parseProbe parses ADDR[:PORT][/PROTO].
func parseProbe(s string) (policy.Probe, error) {
	var pr policy.Probe
	bad := func(why string) (policy.Probe, error) {
		return pr, fmt.Errorf("--to %q: %s; expected ADDR[:PORT][/PROTO], e.g. 192.168.1.5:5432/tcp or [2001:db8::1]:53/udp", s, why)
	}
	rest, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		switch policy.Proto(proto) {
		case policy.ProtoTCP, policy.ProtoUDP, policy.ProtoSCTP, policy.ProtoICMP, policy.ProtoICMPv6:
			pr.Proto = policy.Proto(proto)
		default:
			return bad(fmt.Sprintf("unknown protocol %q", proto))
		}
	}
	addr, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return bad("missing ]")
		}
		addr, port = rest[1:end], rest[end+1:]
		if port != "" {
			if !strings.HasPrefix(port, ":") {
				return bad(fmt.Sprintf("%q after ] is not :PORT", port))
			}
			port = port[1:]
			if port == "" {
				return bad("no port after :")
			}
		}
	} else if strings.Count(rest, ":") == 1 {
		addr, port, _ = strings.Cut(rest, ":")
		if port == "" {
			return bad("no port after :")
		}
	}
	a, err := parseAddr(addr)
	if err != nil {
		return bad(fmt.Sprintf("%q is not an address", addr))
	}
	pr.Dst = a
	if port != "" {
		v, err := strconv.Atoi(port)
		if err != nil || v < 1 || v > 65535 {
			return bad(fmt.Sprintf("port %q is not 1..65535", port))
		}
		pr.Port = uint16(v)
		if !hasProto {
			pr.Proto = policy.ProtoTCP
		}
	}
	if pr.Proto == "" {
		pr.Proto = policy.ProtoAny
	}
	if pr.Port != 0 && !pr.Proto.HasPorts() {
		return bad(string(pr.Proto) + " has no ports")
	}
	if pr.Proto == policy.ProtoICMP && !pr.Dst.Is4() || pr.Proto == policy.ProtoICMPv6 && pr.Dst.Is4() {
		return bad(fmt.Sprintf("%s does not go to %s addresses; use %s", pr.Proto, familyOf(pr.Dst), map[bool]string{true: "icmp", false: "icmpv6"}[pr.Dst.Is4()]))
	}
	return pr, nil
}

func familyOf(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// explanation turns a decision into the JSON object of explain --json.
func explanation(pol *policy.Policy, rn resolvedNetwork, pr policy.Probe, d policy.Decision) Explanation {
	e := Explanation{
		Network: ExplainedNetwork{Name: rn.Name, Bridge: rn.Bridge, Subnets: []string{}, Source: rn.Source},
		Note:    rn.Note,
		Packet:  ExplainedPacket{Hook: pr.Hook.String(), Dst: pr.Dst.String(), Port: int(pr.Port), Proto: string(pr.Proto)},
		Spoofed: d.Spoofed,
		Verdict: d.Verdict.String(),
		Audit:   d.Audit,
		Passes:  d.Passes(),
	}
	for _, s := range rn.Subnets {
		e.Network.Subnets = append(e.Network.Subnets, s.String())
	}
	if pr.Src.IsValid() {
		e.Packet.Src = pr.Src.String()
	}
	if d.Verdict == policy.Deny && !d.Audit {
		e.DenyAction = string(pol.Settings.DenyAction)
	}
	switch {
	case d.Section == nil:
		e.DecidedBy = "unfenced"
		return e
	case d.Spoofed:
		e.DecidedBy = "anti-spoofing"
	case d.Rule != nil:
		e.DecidedBy = "rule"
		e.Rule, e.RuleMatch, e.Comment = d.Rule.ID(), fence.RuleMatch(d.Rule), d.Rule.Comment
	default:
		e.DecidedBy = "default"
	}
	e.Section, e.Match = d.Section.Index, d.Section.Match.String()
	return e
}

func printDecision(cmd *cobra.Command, pol *policy.Policy, n policy.Network, note string, pr policy.Probe, d policy.Decision) {
	out := cmd.OutOrStdout()
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
	fmt.Fprintf(out, "network  %s", name)
	if n.Bridge != "" || len(subs) > 0 {
		fmt.Fprintf(out, " (bridge %s, subnets %s)", orDash(n.Bridge), orDash(strings.Join(subs, ", ")))
	}
	fmt.Fprintln(out)
	if note != "" {
		fmt.Fprintf(out, "note     %s\n", note)
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
	fmt.Fprintf(out, "packet   %s%s to %s, %s\n", pr.Hook, from, dst, proto)
	if d.Section == nil {
		fmt.Fprintf(out, "section  none matches this network\nverdict  allow: the network is not fenced\n")
		return
	}
	fmt.Fprintf(out, "section  %d %s (%s)\n", d.Section.Index, d.Section.Match, d.Section.Pos)
	switch {
	case d.Spoofed:
		fmt.Fprintf(out, "rule     anti-spoofing: source %s is outside the network's subnets\n", pr.Src)
	case d.Rule != nil:
		c := ""
		if d.Rule.Comment != "" {
			c = fmt.Sprintf(" %q", d.Rule.Comment)
		}
		fmt.Fprintf(out, "rule     %s%s: %s %s (%s)\n", d.Rule.ID(), c, d.Rule.Verdict, d.Rule.Addrs.Text, d.Rule.Pos)
	default:
		fmt.Fprintf(out, "rule     none matches: %s_default\n", pr.Hook)
	}
	var v string
	switch {
	case d.Verdict == policy.Deny && d.Audit:
		v = "allow (audit mode: would deny, logged and counted)"
	case d.Verdict == policy.Deny:
		v = fmt.Sprintf("deny (%s)", pol.Settings.DenyAction)
	default:
		v = "allow (handed on to the rest of the firewall; Docker's rules still apply)"
	}
	fmt.Fprintf(out, "verdict  %s\n", v)
}
