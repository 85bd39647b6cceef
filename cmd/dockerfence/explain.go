package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/spf13/cobra"
)

func explainCmd(g *globalFlags) *cobra.Command {
	var network, to, from string
	var host bool
	cmd := &cobra.Command{
		Use:   "explain --network NAME|SUBNET --to ADDR[:PORT][/PROTO]",
		Short: "Say which section and rule decide a packet, and the verdict (no root needed)",
		Long: `explain evaluates the policy offline for one packet from a container of the
network to ADDR. PROTO is tcp, udp, sctp, icmp or icmpv6; with a port and no
protocol it is tcp. --host judges traffic to the host itself (the host rules).
With a network NAME, Docker is asked for its subnets and labels if reachable.`,
		Example: `  dockerfence explain --network app_default --to 192.168.100.50:5432
  dockerfence explain --network 172.20.0.0/16 --to 192.168.100.2:53/udp
  dockerfence explain --network app_default --to '[2001:db8::1]:443'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if network == "" || to == "" {
				return fmt.Errorf("explain needs --network NAME|SUBNET and --to ADDR[:PORT][/PROTO]")
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
				if probe.Src, err = netip.ParseAddr(from); err != nil {
					return fmt.Errorf("--from %q: not an address", from)
				}
			}
			n, note := explainNetwork(cmd, g, network)
			d := pol.Evaluate(n, probe)
			printDecision(cmd, pol, n, note, probe, d)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&network, "network", "", "network name, or a subnet such as 172.20.0.0/16")
	f.StringVar(&to, "to", "", "destination ADDR[:PORT][/PROTO]; IPv6 with a port as [ADDR]:PORT")
	f.StringVar(&from, "from", "", "source address (default: one inside the network)")
	f.BoolVar(&host, "host", false, "the destination is this host (judge the host rules)")
	return cmd
}

// explainNetwork finds the network: a subnet as given, else Docker's network
// of that name if Docker answers, else the bare name.
func explainNetwork(cmd *cobra.Command, g *globalFlags, s string) (policy.Network, string) {
	if pfx, err := netip.ParsePrefix(s); err == nil {
		return policy.Network{Subnets: []netip.Prefix{pfx.Masked()}}, ""
	}
	nets, err := dockerNetworks(cmd.Context(), g.dockerHost)
	if err != nil {
		return policy.Network{Name: s}, fmt.Sprintf("%v: labels and subnets unknown, so label and subnet matches and 'self' cannot hold", err)
	}
	for _, n := range daemon.FromDocker(nets, nil) {
		if n.Name == s {
			return n, ""
		}
	}
	return policy.Network{Name: s}, "Docker has no network of that name: judged by name alone"
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
		addr, port = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
	} else if strings.Count(rest, ":") == 1 {
		addr, port, _ = strings.Cut(rest, ":")
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return bad(fmt.Sprintf("%q is not an address", addr))
	}
	pr.Dst = a.Unmap()
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
	return pr, nil
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
	fmt.Fprintf(out, "packet   %s to %s, %s\n", pr.Hook, dst, proto)
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
