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
	"github.com/dockerfence/dockerfence/status"
	"github.com/spf13/cobra"
)

func explainCmd(g *globalFlags) *cobra.Command {
	var network, to, from string
	var host, asJSON bool
	cmd := &cobra.Command{
		Use:   "explain --network NAME|BRIDGE|SUBNET --to ADDR[:PORT][/PROTO] [--json]",
		Short: "Say which section and rule decide a packet, and the verdict (no root needed)",
		Long: `explain compiles the table that apply would write, traces one packet from a
container of the network to ADDR through it, offline, and says which section
and rule of the policy the rules it passed stand for. PROTO is tcp, udp, sctp,
icmp or icmpv6; with a port and no protocol it is tcp. --host judges traffic
to the host itself (the host rules).

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
			probe, srcNote := fence.DefaultSource(rn.Network, probe)
			if srcNote != "" {
				rn.Note += "; " + srcNote
			}
			d, err := rn.evaluate(pol, probe)
			if err != nil {
				return err
			}
			x := &status.Explain{Network: rn.Network, Source: rn.Source, Note: rn.Note, Probe: probe, Decision: d}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(x.Explanation())
			}
			fmt.Fprint(cmd.OutOrStdout(), x.Text())
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&network, "network", "", "Docker network name, bridge name, or a subnet such as 172.20.0.0/16")
	f.StringVar(&to, "to", "", "destination ADDR[:PORT][/PROTO]; IPv6 with a port as [ADDR]:PORT")
	f.StringVar(&from, "from", "", "source address (default: one inside the network; a link-local one in a family the network has no subnet of)")
	f.BoolVar(&host, "host", false, "the destination is this host (judge the host rules)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object: network {name, bridge, subnets, source}, note, packet {hook, src, dst, port, proto}, section (0: none), match, rule (\"egress 3\", or \"\"), rule_match, comment, decided_by (rule, default, anti-spoofing, unfenced), spoofed, verdict (allow, deny), deny_action, audit, passes; see status.Explanation")
	return cmd
}

// Network sources, as in status.ExplainedNetwork.Source.
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
	// Inventory are the networks apply would find: Docker's if Docker
	// answered, else the bridges found over netlink.
	Inventory []policy.Network
}

// evaluate judges the probe as the kernel does with the table that apply
// compiles for the inventory: explain's network is judged by its own
// chain, by the rules for bridges not known yet, or not at all, as the
// table judges its bridge (see fence.Explain).
func (rn resolvedNetwork) evaluate(pol *policy.Policy, pr fence.Probe) (fence.Decision, error) {
	return fence.Explain(pol, rn.Inventory, rn.Network, pr)
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
	rn := resolvedNetwork{Network: n, Inventory: inv.Networks, DockerAnswered: inv.Source == discover.SourceDocker, CatchAllOnly: f.CatchAllOnly, Unfenced: f.Unfenced}
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
func parseProbe(s string) (fence.Probe, error) {
	var pr fence.Probe
	bad := func(why string) (fence.Probe, error) {
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
