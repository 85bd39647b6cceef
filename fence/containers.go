package fence

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// Container is a container as the compiler sees it: what its section is
// chosen by, its label, and its addresses on networks.
type Container struct {
	ID, Name, Image string
	Labels          map[string]string
	Endpoints       []Endpoint
	// SharesNetworkOf is the ID or name of the container whose network
	// stack this one joined (docker run --network container:X): it sends
	// from X's addresses, so X's and its own rules both judge them.
	SharesNetworkOf string
}

// Endpoint is a container's attachment to a network: the network's ID (or
// its name, when Docker gave no ID) and the container's addresses there.
type Endpoint struct {
	NetworkID, Network string
	Addrs              []netip.Addr
	// Port is the bridge port its packets enter by (the host's end of its
	// veth pair), "" if unknown: the identity check is made there.
	Port string
	// MAC is the hardware address of the container's interface there
	// (the peer of Port), nil if unknown: with Port, frames and ARP that
	// claim another are dropped at the port.
	MAC net.HardwareAddr
}

// on reports whether the endpoint is on network n: by ID, or by name
// when Docker gave no ID.
func (e Endpoint) on(n policy.Network) bool {
	if e.NetworkID != "" {
		return n.ID == e.NetworkID
	}
	return e.Network != "" && n.Name == e.Network
}

// FencedContainer is a container the container layer judges.
type FencedContainer struct {
	Container Container
	// Section is the container section that matches it, nil if none.
	Section *policy.ContainerSection
	// Label holds the rules of its label policy.EgressLabel; LabelErr,
	// when set, says why the label does not parse: the container is then
	// cut off (all its egress denied) until the label is fixed.
	Label    []*policy.Rule
	LabelErr error
	// Chain is its chain, which the container layer's maps send its
	// packets to; "" for a container without a section or label rules.
	// IngressChain is the chain that judges connections into it, ""
	// unless its section has ingress keys.
	Chain, IngressChain string
}

// Judged reports whether the container has rules of its own (a section, a
// label, or a label that cuts it off).
func (f FencedContainer) Judged() bool {
	return f.Section != nil || len(f.Label) > 0 || f.LabelErr != nil
}

// Container layer names. Each fenced network whose containers the layer
// judges has a chain fwdc_ID (ID as the network's chains have), reached
// from the layer's chain by input interface, which looks the packet's
// source address up in the maps fwdc_ID_4 and fwdc_ID_6. A container with
// rules of its own has a chain c_CID, which jumps to c_CID.s (its
// section's rules) and c_CID.l (its label's): every layer must allow. A
// container without rules goes to noRulesChain, which returns at once.
const (
	containerMapName = "fwd_cif"
	noRulesChain     = "c_none"
)

// containers classifies the containers on the fenced networks and builds
// their chains. A network gets the container layer when the policy has
// container sections (any container on it may match one, so an address
// not classified yet is held) or one of its containers carries a label.
func (b *builder) containers(ctrs []Container) {
	b.containersKnown = true
	ctrs = slices.Clone(ctrs)
	sort.Slice(ctrs, func(i, j int) bool {
		return ctrs[i].Name < ctrs[j].Name || ctrs[i].Name == ctrs[j].Name && ctrs[i].ID < ctrs[j].ID
	})
	byNet := map[string]int{}
	for i, f := range b.r.Fenced {
		byNet["id:"+f.Network.ID] = i
		byNet["name:"+f.Network.Name] = i
	}
	fencedOf := func(e Endpoint) (int, bool) {
		if e.NetworkID != "" {
			i, ok := byNet["id:"+e.NetworkID]
			return i, ok
		}
		i, ok := byNet["name:"+e.Network]
		return i, ok && e.Network != ""
	}
	layered := make([]bool, len(b.r.Fenced))
	for i := range layered {
		layered[i] = len(b.pol.Containers) > 0
	}
	// A container that joined another's network stack sends from the
	// other's addresses: it takes the other's endpoints here.
	byIDName := map[string]Container{}
	for _, c := range ctrs {
		byIDName[c.ID], byIDName[c.Name] = c, c
	}
	for i, c := range ctrs {
		if c.SharesNetworkOf == "" {
			continue
		}
		x, ok := byIDName[c.SharesNetworkOf]
		if !ok {
			for id, o := range byIDName {
				if len(c.SharesNetworkOf) >= 12 && strings.HasPrefix(id, c.SharesNetworkOf) {
					x, ok = o, true
				}
			}
		}
		if ok && x.SharesNetworkOf == "" {
			ctrs[i].Endpoints = x.Endpoints
		}
	}
	var judged []FencedContainer
	usedIDs := map[string]bool{"none": true}
	for _, c := range ctrs {
		fc := FencedContainer{Container: c, Section: b.pol.ContainerSectionFor(c.Name, c.Image, c.Labels)}
		if v, ok := c.Labels[policy.EgressLabel]; ok {
			fc.Label, fc.LabelErr = b.pol.LabelRules(v)
		}
		if _, ok := c.Labels[policy.IngressLabel]; ok {
			b.r.Warnings = append(b.r.Warnings, fmt.Sprintf("container %s (%s) carries the label %s, which dockerfence does not read yet: its rules are not enforced; give the container a section with ingress rules (containers: in the policy)", strconv.Quote(c.Name), shortID(c), policy.IngressLabel))
		}
		on := false
		for _, e := range c.Endpoints {
			if i, ok := fencedOf(e); ok {
				on = true
				if fc.Judged() {
					layered[i] = true
				}
			}
		}
		if !on {
			b.unfencedContainer(fc)
			if fc.Judged() && c.SharesNetworkOf != "" {
				b.r.Warnings = append(b.r.Warnings, fmt.Sprintf("container %s (%s) has rules of its own, but shares the network stack of %s, which is on no fenced network: they are not enforced", strconv.Quote(c.Name), shortID(c), strconv.Quote(c.SharesNetworkOf)))
			}
			continue
		}
		if fc.LabelErr != nil {
			b.r.Warnings = append(b.r.Warnings, fmt.Sprintf("container %s (%s): its label does not parse, so it is cut off (all its egress denied) until the label is fixed: %s", strconv.Quote(c.Name), shortID(c), strings.ReplaceAll(fc.LabelErr.Error(), "\n", "; ")))
		}
		if fc.Judged() {
			id := containerChainID(c, usedIDs)
			fc.Chain = "c_" + id
			b.containerChain(&fc, DirectionOf(policy.Egress), fc.Chain)
			if fc.Section != nil && fc.Section.Ingress.Given {
				fc.IngressChain = "ci_" + id
				b.containerChain(&fc, DirectionOf(policy.Ingress), fc.IngressChain)
			}
		}
		judged = append(judged, fc)
	}
	b.r.Containers = judged
	usesNoRules := false
	for i, f := range b.r.Fenced {
		on := func(e Endpoint) bool { j, ok := fencedOf(e); return ok && j == i }
		if layered[i] {
			elems, noRules := b.holderElems(judged, on, func(fc FencedContainer) string { return fc.Chain }, "c_shared_")
			usesNoRules = usesNoRules || noRules
			b.networkContainers(f, elems)
		}
		// Connections into the network's containers whose sections have
		// ingress keys go to their ingress chains, the others' to
		// noRulesChain; any other address of the network is a container
		// not classified yet, held. Only where a container section has
		// ingress keys (any container may match it): else this layer has
		// nothing to judge.
		if b.pol.ContainerIngress() {
			elems, noRules := b.holderElems(judged, on, func(fc FencedContainer) string { return fc.IngressChain }, "ci_shared_")
			usesNoRules = usesNoRules || noRules
			b.inboundContainers(f, elems)
		}
	}
	if usesNoRules {
		b.addChain(noRulesChain, nft.HookNone)
	}
	for i, f := range b.r.Fenced {
		if layered[i] {
			b.identity(f, judged, func(e Endpoint) bool { j, ok := fencedOf(e); return ok && j == i })
		}
	}
	b.claimsTable()
}

// maxSharedChainName is the longest name of a chain of containers that
// share one network stack that lists their IDs; a longer one is named by
// a hash of them.
const maxSharedChainName = 128

// UncheckedRuleID is the ID of the rule of a network's container layer
// that holds packets from a bridge port whose identity check is not in
// the table yet (settings.identity_mark).
const UncheckedRuleID = "unchecked"

// holderElems returns the elements, by family (IPv6 true), of a container
// map of one network: each address of the containers on it (on) goes to
// the chain of the container that holds it (chainOf, "" for none); to a
// chain named shared+... that jumps to each of theirs where several do
// (one joined another's network stack): every one's rules must allow. An
// address whose holders have no chain goes to noRulesChain; noRules
// reports whether one does.
func (b *builder) holderElems(judged []FencedContainer, on func(Endpoint) bool, chainOf func(FencedContainer) string, shared string) (elems map[bool][]nft.VMapElem, noRules bool) {
	holders := map[netip.Addr][]string{}
	var addrs []netip.Addr
	for _, fc := range judged {
		for _, e := range fc.Container.Endpoints {
			if !on(e) {
				continue
			}
			for _, a := range e.Addrs {
				if !a.IsValid() {
					continue
				}
				a = a.Unmap()
				if _, seen := holders[a]; !seen {
					addrs = append(addrs, a)
					holders[a] = nil
				}
				if ch := chainOf(fc); ch != "" && !slices.Contains(holders[a], ch) {
					holders[a] = append(holders[a], ch)
				}
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	elems = map[bool][]nft.VMapElem{}
	for _, a := range addrs {
		chain := noRulesChain
		switch hs := holders[a]; len(hs) {
		case 0:
			noRules = true
		case 1:
			chain = hs[0]
		default:
			_, ids, _ := cutPrefix(strings.Join(hs, "_"))
			chain = shared + ids
			if len(chain) > maxSharedChainName {
				// Many containers on one network stack: the kernel
				// takes chain names of up to 255 bytes.
				sum := sha256.Sum256([]byte(ids))
				chain = shared + hex.EncodeToString(sum[:8])
			}
			if !b.hasChain(chain) {
				sc := b.addChain(chain, nft.HookNone)
				for _, h := range hs {
					sc.Rules = append(sc.Rules, &nft.Rule{Verdict: nft.Verdict{Kind: nft.Jump, Target: h}, ID: "container " + h})
				}
			}
		}
		elems[a.Is6()] = append(elems[a.Is6()], nft.VMapElem{Addr: a, Chain: chain})
	}
	return elems, noRules
}

// identity adds, for each container of fenced network f whose bridge port
// is known, an ingress chain on that port that drops what the container
// sends from any source but its own addresses on the network (and, for
// IPv6, link-local ones and the unspecified address of duplicate address
// detection), and neighbour advertisements for any target but those: its
// rules are picked by its source address, so the address must be its own,
// and it must not make its neighbours send it another's packets. Its
// packets are dropped, whatever deny_action says, and logged under the
// container's name. A container whose port is not known yet (it is
// starting) has no such chain. Where its MAC is known too, a chain on the
// port in the netdev table (see l2Identity) checks every frame, ARP too.
func (b *builder) identity(f Fenced, ctrs []FencedContainer, on func(Endpoint) bool) {
	for _, fc := range ctrs {
		ctr := fc.Container
		for _, e := range ctr.Endpoints {
			if e.Port == "" || !on(e) || !nft.ValidIfName(e.Port) || b.hasChain("id_"+e.Port) {
				continue
			}
			name := "id_" + e.Port
			c := &nft.Chain{Name: name, Hook: nft.HookIngress, Device: e.Port}
			b.r.Table.Chains = append(b.r.Table.Chains, c)
			deny := nft.Verdict{Kind: nft.Goto, Target: b.denyChain(name, &Denial{Network: &f.Network, Section: f.Section, Container: &ctr, Hook: policy.Egress, Reason: ReasonIdentity})}
			var own []netip.Prefix
			has4 := false
			var own4 netip.Addr
			for _, a := range e.Addrs {
				if a.IsValid() {
					own = append(own, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
					if a.Unmap().Is4() && !has4 {
						has4, own4 = true, a.Unmap()
					}
				}
			}
			own = append(own, linkLocal6, netip.MustParsePrefix("::/128"))
			set := name + ".own"
			var v4, v6 *nft.Addr
			if !slices.ContainsFunc(e.Addrs, func(a netip.Addr) bool { return a.IsValid() && a.Unmap().Is6() }) {
				// Without an IPv6 address of its own a container's
				// IPv6 set is everyone's: link-local and ::.
				v4, _ = b.addrMatches(name+".own", own[:len(own)-2], true, true)
				_, v6 = b.addrMatches("id_linklocal", own[len(own)-2:], true, true)
			} else {
				v4, v6 = b.addrMatches(set, own, true, true)
			}
			b.identityRules(c, deny, has4, v4, v6)
			if m := b.pol.Settings.IdentityMark; m != 0 {
				c.Rules = append(c.Rules, &nft.Rule{SetMark: m, ID: "checked", Comment: "the source is the container's own: its rules may judge it"})
			}
			if len(e.MAC) == 6 {
				b.l2Identity(f, &ctr, e.Port, e.MAC, own4)
				b.claim(e.Port, e.MAC, e.Addrs)
			}
		}
	}
}

// identityRules adds to a port's ingress chain c the rules that send a
// packet to deny unless its source is one of the container's own: v4 and
// v6 match the sources that are not (v4 is nil for a container without an
// IPv4 address there, whose IPv4 packets are all denied). A neighbour
// advertisement whose target is not one of its IPv6 addresses (v6) is
// denied too: it would make the neighbours send it that address's packets.
func (b *builder) identityRules(c *nft.Chain, deny nft.Verdict, has4 bool, v4, v6 *nft.Addr) {
	if has4 && v4 != nil {
		c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.NFProto{}, *v4}, Counter: true, Verdict: deny, ID: "identity", Comment: "IPv4 source not the container's own"})
	} else {
		c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.NFProto{}}, Counter: true, Verdict: deny, ID: "identity", Comment: "IPv4 from a container without an IPv4 address here"})
	}
	c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.NFProto{V6: true}, *v6}, Counter: true, Verdict: deny, ID: "identity", Comment: "IPv6 source not the container's own"})
	c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.NFProto{V6: true}, nft.ICMPv6Type{Types: []uint8{ndNeighborAdvert}}, nft.NDTarget{Neg: v6.Neg, Set: v6.Set, Prefix: v6.Prefix}},
		Counter: true, Verdict: deny, ID: "identity nd", Comment: "neighbour advertisement for an address not the container's own"})
}

// ndNeighborAdvert is the ICMPv6 type of a neighbour advertisement.
const ndNeighborAdvert = 136

// l2Identity adds to the netdev table (Table.Netdev, created on first use)
// a chain on the container's bridge port that drops every frame whose
// Ethernet source is not the container's MAC, and ARP whose sender is not
// the container (its MAC, and its IPv4 address own4 on the network or
// 0.0.0.0, which probes send; only 0.0.0.0 if own4 is not valid: a
// container without an IPv4 address here has no ARP to answer): the inet
// family's ingress hook never sees ARP, with which a container could make
// its neighbours and the host send it another's packets. Denied frames
// are dropped and logged under the container's name, as identity's are.
func (b *builder) l2Identity(f Fenced, ctr *Container, port string, mac net.HardwareAddr, own4 netip.Addr) {
	if b.r.Table.Netdev == nil {
		b.r.Table.Netdev = &nft.Table{}
	}
	nd := b.r.Table.Netdev
	name := "l2_" + port
	c := &nft.Chain{Name: name, Hook: nft.HookIngress, Device: port}
	nd.Chains = append(nd.Chains, c)
	deny := nft.Verdict{Kind: nft.Goto, Target: b.denyChainIn(nd, name, &Denial{Network: &f.Network, Section: f.Section, Container: ctr, Hook: policy.Egress, Reason: ReasonIdentity})}
	var m [6]byte
	copy(m[:], mac)
	arp := nft.Protocol{EtherType: nft.EtherTypeARP}
	c.Rules = append(c.Rules,
		&nft.Rule{Matches: []nft.Match{nft.EtherSrc{MAC: m, Neg: true}}, Counter: true, Verdict: deny, ID: "identity ether", Comment: "Ethernet source not the container's own"},
		&nft.Rule{Matches: []nft.Match{arp, nft.ARPSender{MAC: m, Neg: true}}, Counter: true, Verdict: deny, ID: "identity arp mac", Comment: "ARP sender MAC not the container's own"})
	ip := []nft.Match{arp, nft.ARPSender{IP: netip.IPv4Unspecified(), Neg: true}}
	if own4.IsValid() {
		ip = slices.Insert(ip, 1, nft.Match(nft.ARPSender{IP: own4, Neg: true}))
	}
	c.Rules = append(c.Rules, &nft.Rule{Matches: ip, Counter: true, Verdict: deny, ID: "identity arp ip", Comment: "ARP sender IPv4 not the container's own"})
}

// unfencedContainer warns of a container with rules of its own that is on
// no fenced network: on networks the table cannot fence (host, macvlan,
// ipvlan, ...), its rules are not enforced; say so, naming the network and
// why.
func (b *builder) unfencedContainer(fc FencedContainer) {
	if !fc.Judged() {
		return
	}
	for _, e := range fc.Container.Endpoints {
		for _, u := range b.r.NotFenceable {
			if e.on(u.Network) {
				b.r.Warnings = append(b.r.Warnings, fmt.Sprintf("container %s (%s) has rules of its own, but its network %s cannot be fenced (%s): they are not enforced", strconv.Quote(fc.Container.Name), shortID(fc.Container), networkName(u.Network), u.Reason))
				return
			}
		}
	}
}

// hasChain reports whether the table has a chain of that name.
func (b *builder) hasChain(name string) bool {
	return slices.ContainsFunc(b.r.Table.Chains, func(c *nft.Chain) bool { return c.Name == name })
}

// containerChainID names container c in chain names, unique among used:
// its short ID, or a longer prefix of its ID where two short IDs are the
// same (a container's full ID is unique), else chainID's numbered form.
func containerChainID(c Container, used map[string]bool) string {
	if len(c.ID) >= 12 && strings.Trim(c.ID, "0123456789abcdef") == "" {
		for n := 12; n <= len(c.ID); n = min(n+4, len(c.ID)) {
			if id := c.ID[:n]; !used[id] {
				used[id] = true
				return id
			}
			if n == len(c.ID) {
				break
			}
		}
	}
	return chainID(shortID(c), used)
}

// shortID names a container in chain names: the first 12 characters of
// its ID (as docker ps shows it), else its name.
func shortID(c Container) string {
	if len(c.ID) >= 12 {
		return c.ID[:12]
	}
	if c.ID != "" {
		return c.ID
	}
	return c.Name
}

// networkContainers builds the container layer's chain of fenced network f:
// the containers' addresses, by family, sent to their chains; IPv6
// neighbour discovery passes; any other source of the network's subnets
// is a container not classified yet, held (dropped) until it is.
func (b *builder) networkContainers(f Fenced, elems map[bool][]nft.VMapElem) {
	_, id, _ := cutPrefix(f.Chains[policy.Egress])
	name := "fwdc_" + id
	c := b.addChain(name, nft.HookNone)
	b.r.ContainerChains = append(b.r.ContainerChains, ContainerChain{Network: f.Network, Chain: name})
	c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.NFProto{V6: true}, nft.ICMPv6Type{Types: DirectionOf(policy.Egress).ND}, nft.HopLimit{Value: 255}}, Counter: true, Verdict: allow, ID: "nd", Comment: "IPv6 neighbour discovery"})
	held := b.denyChain(name, &Denial{Network: &f.Network, Section: f.Section, Hook: policy.Egress, Reason: ReasonHeld})
	if m := b.pol.Settings.IdentityMark; m != 0 {
		// A packet's source picks its container's rules only if the
		// identity check of its bridge port let it through: a container
		// whose port has no check yet (it is starting) could send as its
		// neighbour, or as the container whose address it took.
		c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.Mark{Bits: m, Clear: true}}, Counter: true, Verdict: nft.Verdict{Kind: nft.Goto, Target: held}, ID: UncheckedRuleID, Comment: "from a bridge port whose identity check is not in yet (held)"})
	}
	b.containerMaps(c, elems, [2]nft.Selector{nft.SelSAddr4, nft.SelSAddr6})
	v4, v6 := b.addrMatches(netSetName(f.Chains[policy.Egress]), f.Network.Subnets, true, false)
	// IPv6 link-local sources reach the forward hook only bridged between
	// the network's containers (br_netfilter); no map holds them, so no
	// container's rules could judge them: held too, but neighbour
	// discovery, which passed above.
	ll := &nft.Addr{V6: true, Src: true, Prefix: linkLocal6}
	for _, a := range []*nft.Addr{v4, v6, ll} {
		if a == nil {
			continue
		}
		comment := "a container not classified yet (held)"
		if a == ll {
			comment = "IPv6 link-local, which no container's rules judge (held)"
		}
		c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{*a}, Counter: true, Verdict: nft.Verdict{Kind: nft.Goto, Target: held}, ID: "held", Comment: comment})
	}
}

// cutPrefix splits a network chain's name (fwd_ID) at its first "_".
func cutPrefix(chain string) (prefix, id string, ok bool) {
	for i := range len(chain) {
		if chain[i] == '_' {
			return chain[:i], chain[i+1:], true
		}
	}
	return "", chain, false
}

// containerChain builds chain name, which judges the packets of a container
// with rules of its own in direction d: a jump to its section's chain and,
// for egress, one to its label's, or, for a label that does not parse, a
// deny of everything (cut off).
func (b *builder) containerChain(fc *FencedContainer, d Direction, name string) {
	c := b.addChain(name, nft.HookNone)
	h := d.Hook
	ctr := fc.Container
	var self *policy.Network
	if fc.LabelErr != nil && h == policy.Egress {
		deny := b.denyChain(fc.Chain, &Denial{Container: &ctr, Hook: policy.Egress, Reason: ReasonCutOff, Layer: LayerLabel})
		c.Rules = append(c.Rules, &nft.Rule{Counter: true, Verdict: nft.Verdict{Kind: nft.Goto, Target: deny}, ID: "cut off", Comment: "label " + policy.EgressLabel + " does not parse: all egress denied"})
		return
	}
	layer := func(suffix string, lay ContainerLayer, rules []*policy.Rule, def policy.Verdict, sec *policy.ContainerSection) {
		lc := b.addChain(name+suffix, nft.HookNone)
		c.Rules = append(c.Rules, &nft.Rule{Verdict: nft.Verdict{Kind: nft.Jump, Target: lc.Name}, ID: "layer " + string(lay)})
		den := Denial{Container: &ctr, ContainerSection: sec, Layer: lay}
		for _, r := range rules {
			// "self" in a container's rules is the subnets of the
			// networks it is on.
			lc.Rules = append(lc.Rules, b.policyRules(lc.Name, den, d, r, self, lc.Name+".self")...)
		}
		dr := &nft.Rule{Counter: true, Verdict: allow, ID: "default", Comment: h.String() + "_default allow"}
		if def == policy.Deny {
			den.Hook, den.Reason = h, ReasonDefault
			dr.Verdict = nft.Verdict{Kind: nft.Goto, Target: b.denyChain(lc.Name, &den)}
			dr.Comment = h.String() + "_default deny"
		}
		lc.Rules = append(lc.Rules, dr)
	}
	self = b.containerSubnets(ctr)
	if s := fc.Section; s != nil {
		hr := s.Hook(h)
		layer(".s", LayerSection, hr.Rules, hr.Default, s)
	}
	if len(fc.Label) > 0 && h == policy.Egress {
		layer(".l", LayerLabel, fc.Label, policy.Allow, nil)
	}
}

// inboundContainers builds the ingress container layer's chain of fenced
// network f: packets between the network's own containers pass (their
// egress judges them), the others go by destination address, by family,
// to the chain of the container that holds it; to any other address of
// the network's subnets, a container not classified yet, they are held
// (dropped) until it is.
func (b *builder) inboundContainers(f Fenced, elems map[bool][]nft.VMapElem) {
	d := DirectionOf(policy.Ingress)
	_, id, _ := cutPrefix(f.Chains[policy.Egress])
	name := d.Prefix + "c_" + id
	c := b.addChain(name, nft.HookNone)
	b.r.InboundContainerChains = append(b.r.InboundContainerChains, ContainerChain{Network: f.Network, Chain: name})
	b.inboundHead(c, &f.Network)
	b.containerMaps(c, elems, [2]nft.Selector{nft.SelDAddr4, nft.SelDAddr6})
	held := nft.Verdict{Kind: nft.Goto, Target: b.denyChain(name, &Denial{Network: &f.Network, Section: f.Section, Hook: policy.Ingress, Reason: ReasonHeld})}
	v4, v6 := b.addrMatches(netSetName(f.Chains[policy.Egress]), f.Network.Subnets, false, false)
	for _, a := range []*nft.Addr{v4, v6} {
		if a != nil {
			c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{*a}, Counter: true, Verdict: held, ID: "held", Comment: "to a container not classified yet (held)"})
		}
	}
}

// containerMaps adds to chain c the maps of a network's container
// addresses, by family (elems, IPv6 true), named after c (c_4, c_6), and
// the rules that look a packet's address up in them: by the selector of
// its family, sel (the source, or for ingress the destination).
func (b *builder) containerMaps(c *nft.Chain, elems map[bool][]nft.VMapElem, sel [2]nft.Selector) {
	for i, v6 := range []bool{false, true} {
		es := elems[v6]
		if len(es) == 0 {
			continue
		}
		slices.SortFunc(es, func(x, y nft.VMapElem) int { return x.Addr.Compare(y.Addr) })
		es = slices.CompactFunc(es, func(x, y nft.VMapElem) bool { return x.Addr == y.Addr })
		key, suffix := nft.KeyIPv4, "_4"
		if v6 {
			key, suffix = nft.KeyIPv6, "_6"
		}
		m := &nft.Set{Name: c.Name + suffix, Key: key, Map: true, VMap: es}
		b.addSet(m)
		c.Rules = append(c.Rules, &nft.Rule{Matches: []nft.Match{nft.NFProto{V6: v6}}, Counter: true, Verdict: nft.Verdict{Kind: nft.VMap, Target: m.Name, Key: sel[i]}, ID: "containers"})
	}
}

// containerSubnets returns a network that holds the subnets of every fenced
// network the container is on: what "self" means in its rules.
func (b *builder) containerSubnets(c Container) *policy.Network {
	n := &policy.Network{Name: c.Name}
	for _, e := range c.Endpoints {
		for _, f := range b.r.Fenced {
			if e.on(f.Network) {
				n.Subnets = append(n.Subnets, f.Network.Subnets...)
			}
		}
	}
	return n
}

// containerLayer fills the container layer's chain: the map from bridge to
// the network's container chain. Only egress has the layer.
//
// With container sections and a catch-all section, a bridge not known yet
// (docker0, br-*) holds every packet of its containers, which no one has
// classified: a network created while no daemon runs is cut off until
// dockerfence knows it, rather than judged by its network's rules alone.
func (b *builder) containerLayer(d Direction, c *nft.Chain) bool {
	if d.Inbound {
		return b.inboundContainerLayer(d, c)
	}
	holdUnknown := b.containerHoldsUnknown()
	if d.Hook != policy.Egress || len(b.r.ContainerChains) == 0 && !holdUnknown {
		return false
	}
	m := &nft.Set{Name: containerMapName, Key: nft.KeyIfName, Map: true}
	for _, cc := range b.r.ContainerChains {
		m.VMap = append(m.VMap, nft.VMapElem{Key: cc.Network.Bridge, Chain: cc.Chain})
	}
	b.addSet(m)
	c.Rules = append(c.Rules, &nft.Rule{Counter: true, Verdict: nft.Verdict{Kind: nft.VMap, Target: m.Name, Key: d.Dispatch}, ID: "dispatch"})
	if holdUnknown {
		held := nft.Verdict{Kind: nft.Goto, Target: b.denyChain("fwdc_"+unknownID, &Denial{Section: b.r.CatchAll, Hook: policy.Egress, Reason: ReasonHeld})}
		c.Rules = append(c.Rules,
			&nft.Rule{Matches: []nft.Match{nft.IfName{Name: "docker0"}}, Counter: true, Verdict: held, ID: "held", Comment: "containers of docker0 before dockerfence knows it (held)"},
			&nft.Rule{Matches: []nft.Match{nft.IfName{Name: "br-", Prefix: true}}, Counter: true, Verdict: held, ID: "held", Comment: "containers of bridges dockerfence does not know yet (held)"})
	}
	return true
}

// inboundContainerLayer fills the container layer's chain of inbound
// direction d: the map from output bridge to the network's chain of
// inbound container rules. It is left out when no container has
// ingress rules: then it costs nothing.
//
// As for egress, where container sections have ingress keys and a
// catch-all section fences bridges not known yet, a connection into such
// a bridge (docker0, br-*) is held: its containers, which any section may
// match, are not classified yet.
func (b *builder) inboundContainerLayer(d Direction, c *nft.Chain) bool {
	holdUnknown := b.containerHoldsUnknown() && b.pol.ContainerIngress()
	if len(b.r.InboundContainerChains) == 0 && !holdUnknown {
		return false
	}
	m := &nft.Set{Name: d.Prefix + "_cif", Key: nft.KeyIfName, Map: true}
	for _, cc := range b.r.InboundContainerChains {
		m.VMap = append(m.VMap, nft.VMapElem{Key: cc.Network.Bridge, Chain: cc.Chain})
	}
	b.addSet(m)
	c.Rules = append(c.Rules, &nft.Rule{Counter: true, Verdict: nft.Verdict{Kind: nft.VMap, Target: m.Name, Key: d.Dispatch}, ID: "dispatch"})
	if holdUnknown {
		held := nft.Verdict{Kind: nft.Goto, Target: b.denyChain(d.Prefix+"c_"+unknownID, &Denial{Section: b.r.CatchAll, Hook: d.Hook, Reason: ReasonHeld})}
		c.Rules = append(c.Rules,
			&nft.Rule{Matches: []nft.Match{nft.IfName{Name: "docker0", Out: true}}, Counter: true, Verdict: held, ID: "held", Comment: "into containers of docker0 before dockerfence knows it (held)"},
			&nft.Rule{Matches: []nft.Match{nft.IfName{Name: "br-", Prefix: true, Out: true}}, Counter: true, Verdict: held, ID: "held", Comment: "into containers of bridges dockerfence does not know yet (held)"})
	}
	return true
}

// containerHoldsUnknown reports whether the container layer holds the
// packets of bridges not known yet: with container sections (which any
// container may match) and a catch-all section (which fences such
// bridges), when the containers are known at all.
func (b *builder) containerHoldsUnknown() bool {
	return b.containersKnown && len(b.pol.Containers) > 0 && b.r.CatchAll != nil
}

// ContainerChain is the container layer's chain of one fenced network.
type ContainerChain struct {
	Network policy.Network
	Chain   string
}

// ContainerLayer names a layer of a container's own: its section or its
// label.
type ContainerLayer string

// Container layers.
const (
	LayerSection ContainerLayer = "container section"
	LayerLabel   ContainerLayer = "label"
)

// String returns the layer's name.
func (l ContainerLayer) String() string { return string(l) }
