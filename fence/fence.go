// Package fence is dockerfence's compiler: it turns a policy and the
// networks found into an nftables model (package nft) and records what each
// chain stands for, so that status, explain and the denial log can speak of
// networks, sections and rules.
//
// Compile is pure: it does no I/O.
//
// The table has one base chain per netfilter hook that a direction
// (Directions) is judged in; directions of one hook share it. A packet passes
// one chain per layer (Layers), jumped to from the base chain in order; a
// layer that allows the packet returns to the base chain, so that the next
// layer judges it too, and a layer that denies ends it. Every layer that
// applies to a packet must allow it.
package fence

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// Result is the compiled table and what its chains stand for.
type Result struct {
	// Table is the model to apply; its fields and methods are the Result's.
	*nft.Table
	// Policy is the policy the table was compiled from.
	Policy *policy.Policy
	// Fenced lists the networks the table fences, in bridge order.
	Fenced []Fenced
	// Unfenced lists the networks no section matches.
	Unfenced []policy.Network
	// NotFenceable lists the networks the table cannot fence (of other
	// drivers than bridge), sorted by name, whether a section matches them
	// or not.
	NotFenceable []NotFenceable
	// CatchAll is the section that fences bridges not known yet (docker0,
	// br-*), nil if the policy has none.
	CatchAll *policy.Section
	// Warnings are findings a person should see, such as skipped networks.
	Warnings []string
	// TunnelChains names the chains that hold the rule of the tunnel
	// fence (ID TunnelRuleID), one per direction; none if
	// settings.tunnel_mark turns it off.
	TunnelChains []string
	// Containers lists the containers on fenced networks that the
	// container layer classified, by name; ContainerChains the container
	// layer's chain of each network that has one.
	Containers      []FencedContainer
	ContainerChains []ContainerChain
	// InboundContainerChains are the ingress container layer's chains,
	// one for each fenced network when a container section has ingress
	// keys (none otherwise).
	InboundContainerChains []ContainerChain
	// Proxied lists the published ports of containers on fenced networks
	// whose connections through docker-proxy (the input hook) the
	// ingress rules judge, one per container, network and binding.
	Proxied []ProxiedPort
	// Denials says, for each deny chain by name, what its packets were
	// denied for, so that a logged packet can be attributed to a network
	// and a rule.
	Denials map[string]*Denial
	// NameSets lists the names lists that rules use, with their sets,
	// in the order rules first use them; DNSHold says which DNS answers
	// are held for the daemon to learn from, nil when no rule uses names.
	NameSets []NameSet
	DNSHold  *DNSHold
}

// Fenced is a network and the section that fences it.
type Fenced struct {
	Network policy.Network
	Section *policy.Section
	// Chains names the network's chain of each direction, by the
	// direction's policy hook.
	Chains map[policy.Hook]string
}

// Direction is one way packets cross the fence: the policy rules that judge
// them (Hook), the base chain and netfilter hook they are judged in, and
// how a packet finds its network's chain (by input interface).
type Direction struct {
	Hook policy.Hook
	// Base is the base chain's name, NFHook its netfilter hook.
	Base   string
	NFHook nft.Hook
	// Prefix starts the names of the direction's chains and maps.
	Prefix string
	// Dispatch is what picks a network's chain.
	Dispatch nft.Selector
	// ND lists the ICMPv6 neighbour discovery types that pass.
	ND []uint8
	// ToHost says the packets go to the host's own addresses: there,
	// link-local sources of both families are no spoofing, and "self" of a
	// bridge not known yet means the host's addresses on it.
	ToHost bool
	// Inbound says the packets come into the network's containers from
	// elsewhere (ingress): a network is found by the output interface, a
	// rule's addresses are the source and its ports the connection's
	// original destination port (the published port, before DNAT), the
	// source is no container's (no anti-spoofing, no neighbour
	// discovery), and packets between containers of the network itself
	// pass (the sender's egress judges them). A section without keys of
	// the direction adds nothing to it.
	Inbound bool
}

// Directions are the directions the fence judges, in the order their base
// chains are created.
var Directions = []Direction{
	// Between containers (bridged traffic that br_netfilter hands to the
	// forward hook) only solicitations and adverts pass: router adverts and
	// redirects from a container are no business of its peers.
	{Hook: policy.Egress, Base: "forward", NFHook: nft.HookForward, Prefix: "fwd", Dispatch: nft.SelIIfName, ND: []uint8{135, 136}},
	{Hook: policy.Host, Base: "input", NFHook: nft.HookInput, Prefix: "in", Dispatch: nft.SelIIfName, ND: []uint8{133, 134, 135, 136, 137}, ToHost: true},
	// Connections into containers, after Docker's DNAT: every packet of
	// the original direction (the forward chain accepts replies first),
	// so that tightening the policy cuts open connections.
	{Hook: policy.Ingress, Base: "forward", NFHook: nft.HookForward, Prefix: "ing", Dispatch: nft.SelOIfName, Inbound: true},
}

// Judges reports whether the direction has chains for section sec: every
// direction but an inbound one, which only where the section has its keys.
func (d Direction) Judges(sec *policy.Section) bool { return !d.Inbound || sec.Given(d.Hook) }

// DirectionOf returns the direction of policy hook h.
func DirectionOf(h policy.Hook) Direction {
	for _, d := range Directions {
		if d.Hook == h {
			return d
		}
	}
	panic(fmt.Sprintf("fence: no direction for hook %v", h))
}

// DispatchMap names the direction's dispatch map: from the bridge of each
// fenced network to that network's chain.
func (d Direction) DispatchMap() string { return d.Prefix + "_if" }

// CatchAllChain names the direction's chain for bridges not known yet, the
// catch-all: it judges the packets of every docker0 or br-* bridge that
// the dispatch map does not hold, by the {name: "*"} section.
func (d Direction) CatchAllChain() string { return d.Prefix + "_" + unknownID }

// CatchAllBridge reports whether the catch-all judges the packets of a
// bridge of that name when the dispatch map does not hold it: docker0 and
// br-* bridges, those Docker makes.
func CatchAllBridge(name string) bool { return name == "docker0" || strings.HasPrefix(name, "br-") }

// Layer is one stage every packet of a direction passes: its chain is
// jumped to from the base chain, and returns on allow. Build fills the
// layer's chain for the direction; it reports false if the layer has
// nothing to judge, and is then left out.
type Layer struct {
	Name  string
	Build func(b *builder, d Direction, c *nft.Chain) bool
}

// Layers are the layers a packet passes, in order.
var Layers = []Layer{
	{Name: "network", Build: (*builder).networkLayer},
	{Name: "container", Build: (*builder).containerLayer},
}

// layerChain names the chain of layer l in direction d: "fwd.network".
// Network chains are named prefix_id, so the dot keeps them apart.
func layerChain(d Direction, l Layer) string { return d.Prefix + "." + l.Name }

// unknownID names the chains that fence bridges not known yet, noneID the
// empty chain of an inbound direction for the networks whose sections have
// no keys of it.
const (
	unknownID = "unknown"
	noneID    = "none"
)

// Compile returns the table that fences networks as the policy says,
// without the container layer: for an inventory that does not know the
// containers (Docker cannot be asked).
func Compile(pol *policy.Policy, networks []policy.Network) *Result {
	return compile(pol, networks, pol.SectionFor, nil)
}

// CompileContainers is Compile with the container layer: containers are
// all the containers on the networks, as Docker lists them. On a network
// whose containers have rules of their own (or any network, when the
// policy has container sections), an address no container holds is held.
func CompileContainers(pol *policy.Policy, networks []policy.Network, containers []Container) *Result {
	if containers == nil {
		containers = []Container{}
	}
	return compile(pol, networks, pol.SectionFor, containers)
}

// compile is Compile with the section of each network chosen by
// sectionFor, and the container layer unless containers is nil.
func compile(pol *policy.Policy, networks []policy.Network, sectionFor func(policy.Network) *policy.Section, containers []Container) *Result {
	s := pol.Settings
	b := &builder{
		pol:        pol,
		r:          &Result{Table: &nft.Table{Name: s.Table, Priority: s.Priority}, Policy: pol, Denials: map[string]*Denial{}},
		sets:       map[string]*nft.Set{},
		sectionFor: sectionFor,
		namesOf:    namesSource(pol),
		dnsQueue:   dnsQueueOf(pol),
	}
	bases := map[string]*nft.Chain{}
	for _, d := range Directions {
		if bases[d.Base] == nil {
			bases[d.Base] = b.addChain(d.Base, d.NFHook)
			bases[d.Base].Rules = append(bases[d.Base].Rules, &nft.Rule{Matches: []nft.Match{nft.CtReply{}}, Counter: true, Verdict: nft.Verdict{Kind: nft.Accept}, ID: "reply", Comment: "replies to connections opened towards containers"})
		}
		if !d.Inbound {
			bases[d.Base].Rules = append(bases[d.Base].Rules, b.linkLocalControl(d)...)
		}
	}
	b.fence(networks)
	if containers != nil {
		b.containers(containers)
		if m := s.IdentityMark; m != 0 && len(b.r.ContainerChains) > 0 {
			// The mark of the identity check must not outlive the
			// packet's way through the bridge: what a tunnel on the
			// host decapsulates from a packet to the host would
			// carry it.
			in := bases[DirectionOf(policy.Host).Base]
			in.Rules = append([]*nft.Rule{{ClearMark: m, ID: "identity mark", Comment: "the identity check's mark ends here"}}, in.Rules...)
		}
	}
	b.warn()
	b.unusedWarnings(networks)
	// The layer chains are listed right after the base chains, the network
	// chains after them: the table reads from the hook down.
	var layerChains []*nft.Chain
	for _, d := range Directions {
		for _, l := range Layers {
			c := &nft.Chain{Name: layerChain(d, l)}
			if !l.Build(b, d, c) {
				continue
			}
			layerChains = append(layerChains, c)
			id := "layer " + l.Name
			if d.Inbound {
				id = d.Hook.String() + " " + id
			}
			bases[d.Base].Rules = append(bases[d.Base].Rules, &nft.Rule{Verdict: nft.Verdict{Kind: nft.Jump, Target: c.Name}, ID: id})
		}
	}
	if m := s.IdentityMark; m != 0 && len(b.r.ContainerChains) > 0 {
		// Replies pass the forward hook before any layer judges them,
		// but not from a bridge port whose identity check is not in:
		// a container that took another's address while the daemon
		// lags must not answer connections meant for the other. Its
		// network's container chain holds them (rule unchecked).
		fwd := bases[DirectionOf(policy.Egress).Base]
		r := &nft.Rule{Matches: []nft.Match{nft.CtReply{}, nft.Mark{Bits: m, Clear: true}}, Counter: true,
			Verdict: nft.Verdict{Kind: nft.VMap, Target: containerMapName, Key: DirectionOf(policy.Egress).Dispatch}, ID: "unchecked replies",
			Comment: "replies from a bridge port whose identity check is not in yet"}
		fwd.Rules = append([]*nft.Rule{r}, fwd.Rules...)
	}
	t := b.r.Table
	t.Chains = append(t.Chains[:len(bases):len(bases)], append(layerChains, t.Chains[len(bases):]...)...)
	if held := b.holdDNS(bases[DirectionOf(policy.Egress).Base], b.hostDNSProtos(containers)); held != nil {
		t.Chains = slices.Insert(t.Chains, len(bases), held...)
	}
	if containers != nil {
		b.proxy(bases[DirectionOf(policy.Host).Base])
	}
	return b.r
}

// fence picks the section of each network and builds the networks' chains.
func (b *builder) fence(networks []policy.Network) {
	nets := b.notFenceable(networks)
	sort.Slice(nets, func(i, j int) bool { return nets[i].Bridge < nets[j].Bridge })
	seen := map[string]bool{}
	usedIDs := map[string]bool{unknownID: true, noneID: true}
	for _, n := range nets {
		if !nft.ValidIfName(n.Bridge) {
			b.r.Warnings = append(b.r.Warnings, fmt.Sprintf("network %q: bridge name %q is not an interface name; not fenced", n.Name, n.Bridge))
			continue
		}
		if seen[n.Bridge] {
			b.r.Warnings = append(b.r.Warnings, fmt.Sprintf("network %q: bridge %s is already fenced for another network; skipped", n.Name, n.Bridge))
			continue
		}
		seen[n.Bridge] = true
		sec := b.sectionFor(n)
		if sec == nil {
			b.r.Unfenced = append(b.r.Unfenced, n)
			continue
		}
		id := chainID(n.Bridge, usedIDs)
		f := Fenced{Network: n, Section: sec, Chains: map[policy.Hook]string{}}
		for _, d := range Directions {
			if d.Judges(sec) {
				f.Chains[d.Hook] = d.Prefix + "_" + id
				b.networkChain(f.Chains[d.Hook], sec, d, &n)
			}
		}
		b.r.Fenced = append(b.r.Fenced, f)
	}
	if ca := b.pol.CatchAll(); ca != nil {
		b.r.CatchAll = ca
		for _, d := range Directions {
			if d.Judges(ca) {
				b.networkChain(d.CatchAllChain(), ca, d, nil)
			}
		}
	}
}

// networkLayer fills the network layer's chain of direction d: the map
// from bridge to network chain, and the catch-all for bridges not known yet.
//
// An inbound direction's layer is left out when no network's section (nor
// the catch-all) has keys of it: then it costs nothing.
func (b *builder) networkLayer(d Direction, c *nft.Chain) bool {
	m := &nft.Set{Name: d.DispatchMap(), Key: nft.KeyIfName, Map: true}
	catchAll := b.r.CatchAll != nil && d.Judges(b.r.CatchAll)
	unjudged := false
	for _, f := range b.r.Fenced {
		ch, ok := f.Chains[d.Hook]
		if !ok && catchAll {
			// The network's section has no keys of the direction: its
			// bridge goes to a chain that passes, not to the catch-all.
			ch, unjudged = d.Prefix+"_"+noneID, true
		}
		if ch != "" {
			m.VMap = append(m.VMap, nft.VMapElem{Key: f.Network.Bridge, Chain: ch})
		}
	}
	if d.Inbound && len(m.VMap) == 0 && !catchAll {
		return false
	}
	if unjudged {
		b.addChain(d.Prefix+"_"+noneID, nft.HookNone)
	}
	b.addSet(m)
	c.Rules = append(c.Rules, &nft.Rule{Counter: true, Verdict: nft.Verdict{Kind: nft.VMap, Target: m.Name, Key: d.Dispatch}, ID: "dispatch"})
	if catchAll {
		unknown := d.CatchAllChain()
		c.Rules = append(c.Rules,
			&nft.Rule{Matches: []nft.Match{nft.IfName{Name: "docker0", Out: d.Inbound}}, Counter: true, Verdict: nft.Verdict{Kind: nft.Goto, Target: unknown}, ID: "unknown docker0", Comment: "docker0 before dockerfence knows it"},
			&nft.Rule{Matches: []nft.Match{nft.IfName{Name: "br-", Prefix: true, Out: d.Inbound}}, Counter: true, Verdict: nft.Verdict{Kind: nft.Goto, Target: unknown}, ID: "unknown br-*", Comment: "bridges dockerfence does not know yet"})
	}
	if d.Inbound {
		return true
	}
	if r := b.tunnelRule(d); r != nil {
		c.Rules = append(c.Rules, r)
		b.r.TunnelChains = append(b.r.TunnelChains, c.Name)
	}
	return true
}

// TunnelRuleID is the ID of the rule of the tunnel fence in the chains
// that Result.TunnelChains names.
const TunnelRuleID = "tunnel"

// tunnelRule returns the rule of the tunnel fence in direction d, nil if
// settings.tunnel_mark turns it off. It follows the dispatch to network
// chains, so it sees only packets from interfaces that are no fenced
// bridge: a packet there that carries the mark was decapsulated by a
// tunnel on the host (VXLAN, GENEVE, GRE, IPIP, FOU: the kernel keeps the
// mark through decapsulation in the same namespace) from a packet that a
// container sent to the host and that no host rule allowed explicitly. It
// is denied: dropped, whatever deny_action says, since its source is
// whatever the container wrote inside.
func (b *builder) tunnelRule(d Direction) *nft.Rule {
	mark := b.pol.Settings.TunnelMark
	if mark == 0 {
		return nil
	}
	deny := b.denyChain(d.Prefix, &Denial{Hook: d.Hook, Reason: ReasonTunnel})
	return &nft.Rule{Matches: []nft.Match{nft.Mark{Bits: mark}}, Counter: true, Verdict: nft.Verdict{Kind: nft.Goto, Target: deny}, ID: TunnelRuleID, Comment: "decapsulated on this host from a container's packet (tunnel)"}
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
