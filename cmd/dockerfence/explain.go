package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/discover"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"github.com/spf13/cobra"
)

func explainCmd(g *globalFlags) *cobra.Command {
	var network, to, from, ctr, toPort string
	var host, ingress, asJSON bool
	cmd := &cobra.Command{
		Use:   "explain --network NAME|BRIDGE|SUBNET | --container NAME (--to ADDR[:PORT][/PROTO] | --ingress --from ADDR --to-port PORT[/PROTO]) [--json]",
		Short: "Say which section and rule decide a packet, and the verdict (no root needed)",
		Long: `explain compiles the table that apply would write, traces one packet from a
container of the network to ADDR through it, offline, and says which section
and rule of the policy the rules it passed stand for. PROTO is tcp, udp, sctp,
icmp or icmpv6; with a port and no protocol it is tcp. Traffic to the host
itself is judged by the host rules, as the kernel does (input hook): with
--host, or when ADDR is one of the addresses of this host's interfaces (found
over netlink in the network namespace explain runs in; an IPv6 link-local
one only on the network's bridge). A packet to a container of another
network (an address on another bridge of this host) is judged by the
receiving network's ingress rules too, its section's and its container's,
as the kernel's forward hook does.

The network is found as apply finds it. If Docker answers, --network is one of
Docker's networks, by name or bridge; a bridge Docker does not know is judged
as apply leaves it (by the {name: "*"} section if it is docker0 or br-*, else
not fenced). A Docker network of another driver than bridge (macvlan, ipvlan,
host, null, overlay) cannot be fenced: explain says "not fenced" and why. Without
Docker, --network is a bridge found over netlink, by its name. A SUBNET that a network or bridge holds stands for that whole network
(all its subnets count for 'self'); otherwise it is judged alone. A SUBNET or
NAME that no network holds is judged as a new bridge would be when the policy
has a {name: "*"} section that would fence it: by the catch-all, the rules of
that section for docker0 and br-* bridges that appear after apply (the note
says so); without such a section, a subnet alone is not fenced.

With --ingress, the packet is a connection from --from into the network (to
--container's address, or to --to's, or to one inside the network), to the
published port --to-port: the port on the host before Docker's DNAT, which
the ingress rules match. Every layer must allow it: the network's section,
then the container's.`,
		Example: `  dockerfence explain --network app_default --to 192.168.100.50:5432
  dockerfence explain --container shop-api-1 --to 192.168.100.1:3128
  dockerfence explain --network 172.20.0.0/16 --to 192.168.100.2:53/udp
  dockerfence explain --network br-0123456789ab --to '[2001:db8::1]:443' --json
  dockerfence explain --network app_default --container web-1 --ingress --from 198.51.100.7 --to-port 8080
  dockerfence explain --network app_default --to api.github.com:443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if network == "" && ctr == "" || to == "" && !ingress {
				return fmt.Errorf("explain needs --network NAME|BRIDGE|SUBNET or --container NAME, and --to ADDR[:PORT][/PROTO]")
			}
			if ingress && (from == "" || toPort == "") {
				return fmt.Errorf("explain --ingress needs --from ADDR (the source outside) and --to-port PORT[/PROTO] (the published port)")
			}
			if ingress && host {
				return fmt.Errorf("--ingress judges connections into the network, --host traffic to the host: give one")
			}
			if !ingress && toPort != "" {
				return fmt.Errorf("--to-port is the published port of --ingress; without it, give the port in --to ADDR:PORT")
			}
			pol, err := loadPolicy(g)
			if err != nil {
				return err
			}
			// one explains the packet to the destination to, with the
			// addresses learned for names lists.
			one := func(to string, learned *fence.Learned) (*status.Explain, error) {
				var probe fence.Probe
				if ingress {
					if probe, err = fence.ParseIngressProbe(to, toPort); err != nil {
						return nil, err
					}
				} else if probe, err = parseProbe(to); err != nil {
					return nil, err
				}
				if host {
					probe.Hook = policy.Host
				}
				if from != "" {
					if probe.Src, err = parseAddr(from); err != nil {
						return nil, fmt.Errorf("--from %q: not an address", from)
					}
					if probe.Dst.IsValid() && probe.Dst.Is4() != probe.Src.Is4() {
						return nil, fmt.Errorf("--from %s and --to %s are not addresses of one family", probe.Src, probe.Dst)
					}
				}
				var rn resolvedNetwork
				var c *containerProbe
				if ctr != "" {
					if c, err = findContainer(cmd, g, ctr, network, &probe); err != nil {
						return nil, err
					}
					rn = c.rn
				} else {
					rn = explainNetwork(cmd, g, network)
				}
				var notes []string
				if pol.NeedsDocker() && !rn.DockerAnswered {
					notes = append(notes, "note that apply refuses this policy while Docker is not reachable, as it matches by name or label")
				}
				local, lerr := bridge.Netlink{}.Local()
				probe, hostNote := fence.ToHost(rn.Network, probe, local, lerr)
				probe, srcNote := fence.DefaultSource(rn.Network, probe)
				probe, dstNote := fence.DefaultDestination(rn.Network, probe)
				probe, outNote := fence.RoutedOut(rn.Network, probe, rn.routes())
				// The container layer picks a container by the packet's
				// source, or for ingress by its destination: judge by it
				// where that address was given, not made up.
				given := from != ""
				if ingress {
					given = to != ""
				}
				probe.Learned = learned
				d, err := rn.evaluate(pol, probe, given)
				if c != nil {
					d, err = fence.ExplainContainer(pol, rn.Inventory, c.all, rn.Network, probe)
				}
				if err != nil {
					return nil, err
				}
				if d.NewBridge {
					rn.Note = rn.newBridgeNote(network, d.Section)
				}
				switch {
				case c == nil && ingress && to == "" && rn.hasContainerLayer(pol):
					notes = append(notes, "the container layer judges connections into each container too (its section; an address no container holds is held): --container NAME, or --to with its address, judges them")
				case c == nil && !ingress && from == "" && rn.hasContainerLayer(pol):
					notes = append(notes, "the container layer judges each container's packets too (its section, its label; an address no container holds is held): --container NAME, or --from with its address, judges them")
				}
				for _, n := range append(notes, hostNote, srcNote, dstNote, outNote) {
					if n != "" {
						rn.Note += "; " + n
					}
				}
				return &status.Explain{Network: rn.Network, Source: rn.Source, Note: rn.Note, Probe: probe, Decision: d}, nil
			}
			if name, addrTo, ok := nameDestination(to); ok && !ingress {
				return explainName(cmd, g, pol, name, addrTo, asJSON, one)
			}
			x, err := one(to, nil)
			if err != nil {
				return err
			}
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
	f.StringVar(&network, "network", "", "Docker network name, bridge name, or a subnet such as 172.20.0.0/16 (with --container: which of its networks)")
	f.StringVar(&ctr, "container", "", "a running container, by name or ID: its packet, from its address, judged by every layer (its network's section, its container section, its label)")
	f.StringVar(&to, "to", "", "destination ADDR[:PORT][/PROTO]; IPv6 with a port as [ADDR]:PORT; or NAME[:PORT][/PROTO], a DNS name: resolved through the host's resolver, each address explained as after a container's lookup")
	f.StringVar(&from, "from", "", "source address (default: one inside the network; a link-local one in a family the network has no subnet of)")
	f.BoolVar(&ingress, "ingress", false, "judge a connection from --from into the network (ingress rules), to the published port --to-port")
	f.StringVar(&toPort, "to-port", "", "with --ingress: the published port PORT[/PROTO] (the host's port before Docker's DNAT; tcp unless PROTO says)")
	f.BoolVar(&host, "host", false, "the destination is this host (judge the host rules); implied when ADDR is one of this host's addresses")
	f.BoolVar(&asJSON, "json", false, "print one JSON object: network {name, bridge, driver, subnets, source}, note, packet {hook (egress, host: --host or one of this host's addresses), src, dst, port, proto}, section (0: none), match, section_hook (the direction of the section's rules that decided), rule (\"egress 3\", or \"\"), rule_match, comment, decided_by (rule, default, anti-spoofing, unfenced, not fenceable), spoofed, verdict (allow, deny), deny_action, audit, passes, catch_all (judged by the catch-all of the {name: \"*\"} section), container {name, id}, layers [{layer, section, match, rule, rule_match, comment, verdict, into}] (with --container: its own layers; into: the receiving container's, for a packet into another network) and out (the bridge of another network the packet goes into, whose ingress rules judge it too); see status.Explanation")
	return cmd
}

// containerProbe is the container explain --container judges, on the
// network it was found on, and every container, as apply compiles them.
type containerProbe struct {
	rn  resolvedNetwork
	all []fence.Container
}

// findContainer finds the running container arg in Docker's inventory and
// the network its packet is judged on (network, or its first one), and
// gives the probe its address there unless --from set one.
func findContainer(cmd *cobra.Command, g *globalFlags, arg, network string, pr *fence.Probe) (*containerProbe, error) {
	inv, _ := takeInventory(cmd.Context(), g)
	if inv.Source != discover.SourceDocker {
		return nil, fmt.Errorf("--container %s: Docker's containers are needed, and Docker did not answer: %v", arg, inv.DockerErr)
	}
	c, ok := inv.FindContainer(arg)
	if !ok {
		return nil, fmt.Errorf("--container %s: no running container of that name or ID", arg)
	}
	if network == "" && len(c.Endpoints) > 1 {
		var names []string
		for _, e := range c.Endpoints {
			names = append(names, e.Network)
		}
		return nil, fmt.Errorf("--container %s: it is on networks %s; give --network with the one its packet leaves by (the one its route to the destination uses)", arg, strings.Join(names, ", "))
	}
	for _, e := range c.Endpoints {
		if network != "" && e.Network != network {
			continue
		}
		inbound := fence.DirectionOf(pr.Hook).Inbound
		v6 := pr.Dst.Is6()
		if inbound {
			v6 = pr.Src.Is6()
		}
		a := e.IPv4
		if v6 {
			a = e.IPv6
		}
		if !a.IsValid() && (inbound || !pr.Src.IsValid()) {
			return nil, fmt.Errorf("--container %s: it has no %s address on network %s", arg, map[bool]string{true: "IPv6", false: "IPv4"}[v6], e.Network)
		}
		rn := resolveNetworkIn(inv, e.Network)
		if inbound {
			if !pr.Dst.IsValid() {
				pr.Dst = a
			}
			rn.Note = fmt.Sprintf("container %s on Docker's network %s, to its address %s", c.Name, e.Network, pr.Dst)
			return &containerProbe{rn: rn, all: inv.FenceContainers()}, nil
		}
		if !pr.Src.IsValid() {
			pr.Src = a
		}
		pr.Ingress = e.Port
		rn.Note = fmt.Sprintf("container %s on Docker's network %s, from its address %s", c.Name, e.Network, a)
		if pr.Src != a {
			rn.Note = fmt.Sprintf("container %s on Docker's network %s, from %s (not its address there)", c.Name, e.Network, pr.Src)
		}
		return &containerProbe{rn: rn, all: inv.FenceContainers()}, nil
	}
	return nil, fmt.Errorf("--container %s: it is not on network %q", arg, network)
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
	// NotFound says, for a network that nothing holds, why Docker's
	// networks were not read or bridges not listed ("" if they were).
	NotFound string
	// Containers are Docker's containers, as apply compiles them, when
	// Docker's networks were read; nil otherwise.
	Containers []fence.Container
	// Bridges are the host's bridges found over netlink, nil if they
	// could not be listed.
	Bridges []bridge.Bridge
}

// routes returns the bridges of the host with the subnets they route:
// those found over netlink, or the inventory's networks if the bridges
// could not be listed.
func (rn resolvedNetwork) routes() []policy.Network {
	if rn.Bridges == nil {
		return rn.Inventory
	}
	var out []policy.Network
	for _, b := range rn.Bridges {
		out = append(out, policy.Network{Bridge: b.Name, Subnets: b.Subnets})
	}
	return out
}

// newBridgeNote is the note of a network that nothing holds and that
// explain judged as a new bridge, by the catch-all of section sec.
func (rn resolvedNetwork) newBridgeNote(arg string, sec *policy.Section) string {
	what := "no network holds " + arg
	if len(rn.Network.Subnets) == 0 {
		what = "no network or bridge is named " + arg
	}
	return fmt.Sprintf("%s; judged by section %d %s as a new bridge would be: by the catch-all, the rules for docker0 and br-* bridges that appear after apply%s", what, sec.Index, sec.Match, rn.NotFound)
}

// evaluate judges the probe as the kernel does with the table that apply
// compiles for the inventory: explain's network is judged by its own
// chain, by the rules for bridges not known yet, or not at all, as the
// table judges its bridge (see fence.Explain). A probe whose container
// address was given (addrGiven: the source, or for ingress the
// destination) is judged with Docker's containers, when Docker answered, as
// apply compiles the table: the container layer then judges it as the
// packet of the container that holds the source, and holds it if none
// does. Without a source, the network's layer alone judges it: the source
// explain makes up is no container's.
func (rn resolvedNetwork) evaluate(pol *policy.Policy, pr fence.Probe, addrGiven bool) (fence.Decision, error) {
	if addrGiven && rn.Containers != nil {
		return fence.ExplainContainer(pol, rn.Inventory, rn.Containers, rn.Network, pr)
	}
	return fence.Explain(pol, rn.Inventory, rn.Network, pr)
}

// hasContainerLayer reports whether the table apply compiles may judge the
// containers of rn by the container layer: Docker answered and the
// policy has container sections or a container carries rules in its label.
func (rn resolvedNetwork) hasContainerLayer(pol *policy.Policy) bool {
	if rn.Containers == nil {
		return false
	}
	if len(pol.Containers) > 0 {
		return true
	}
	for _, c := range rn.Containers {
		if _, ok := c.Labels[policy.EgressLabel]; ok {
			return true
		}
	}
	return false
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
	rn := resolvedNetwork{Network: n, Inventory: inv.Networks, DockerAnswered: inv.Source == discover.SourceDocker, CatchAllOnly: f.CatchAllOnly, Unfenced: f.Unfenced, Bridges: inv.Bridges}
	if inv.FromDocker() {
		rn.Containers = inv.FenceContainers()
	}
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
		if !inv.FromDocker() {
			rn.NotFound = fmt.Sprintf(" (%v)", inv.DockerErr)
		}
		rn.NotFound += extra
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
	case !n.IsBridge():
		rn.Source = sourceDocker
		rn.Note = fmt.Sprintf("Docker's network %s (driver %s)", orDash(n.Name), n.Driver) + how + extra
	default:
		rn.Source = sourceDocker
		rn.Note = fmt.Sprintf("Docker's network %s (bridge %s)", orDash(n.Name), orDash(n.Bridge)) + how + extra
	}
	return rn
}

// parseAddr and parseProbe read explain's --from and --to.
var (
	parseAddr  = fence.ParseAddr
	parseProbe = fence.ParseProbe
)
