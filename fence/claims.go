package fence

import (
	"net"
	"net/netip"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// ClaimsChain is the bridge table's base chain (Table.Bridge) that drops
// frames claiming a known container's address or MAC from another
// bridge port than the container's own.
const ClaimsChain = "claims"

// claims are the addresses and MACs of the containers whose bridge ports
// are known (and checked: see identity), with their ports.
type claims struct {
	v4, v6         []netip.Prefix
	macs           []nft.Tuple
	own4, own6     []nft.Tuple
	ownMAC, ownARP []nft.Tuple
}

// claim records that port is a container's bridge port, with its MAC and
// its addresses on the network.
func (b *builder) claim(port string, mac net.HardwareAddr, addrs []netip.Addr) {
	var m [6]byte
	copy(m[:], mac)
	c := &b.claims
	c.macs = append(c.macs, nft.Tuple{MAC: m})
	c.ownMAC = append(c.ownMAC, nft.Tuple{IfName: port, MAC: m})
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		a = a.Unmap()
		p := netip.PrefixFrom(a, a.BitLen())
		if a.Is4() {
			c.v4 = append(c.v4, p)
			c.own4 = append(c.own4, nft.Tuple{IfName: port, Addr: a})
			c.ownARP = append(c.ownARP, nft.Tuple{IfName: port, Addr: a, MAC: m})
		} else {
			c.v6 = append(c.v6, p)
			c.own6 = append(c.own6, nft.Tuple{IfName: port, Addr: a})
		}
	}
}

// claimsTable adds the bridge table (Table.Bridge) whose prerouting
// chain sees every frame that enters any bridge port, those of ports not
// known yet too (a container that is starting, whose port has no
// identity check yet, or never gets one), and drops the frames that
// claim a known container's identity from another port than its own:
// an Ethernet source that is its MAC, ARP whose sender IPv4 is its
// address (unless sent from its port with its MAC), IPv4 and IPv6
// packets from its address, and neighbour advertisements for its IPv6
// address. A port not known yet may still send as itself (ARP for its own
// new address, which no known container claims), so its first connection
// is not delayed. Without known containers there is no bridge table.
func (b *builder) claimsTable() {
	c := b.claims
	if len(c.macs) == 0 {
		return
	}
	bt := &nft.Table{Sets: []*nft.Set{
		{Name: "claimed4", Key: nft.KeyIPv4, Ranges: nft.Ranges(c.v4)},
		{Name: "claimed6", Key: nft.KeyIPv6, Ranges: nft.Ranges(c.v6)},
		{Name: "claimedmac", Key: nft.KeyEther, Tuples: c.macs},
		{Name: "own4", Key: nft.KeyIfNameIPv4, Tuples: c.own4},
		{Name: "own6", Key: nft.KeyIfNameIPv6, Tuples: c.own6},
		{Name: "ownmac", Key: nft.KeyIfNameEther, Tuples: c.ownMAC},
		{Name: "ownarp", Key: nft.KeyIfNameIPv4Ether, Tuples: c.ownARP},
	}}
	b.r.Table.Bridge = bt
	ch := &nft.Chain{Name: ClaimsChain, Hook: nft.HookPrerouting}
	bt.Chains = append(bt.Chains, ch)
	deny := nft.Verdict{Kind: nft.Goto, Target: b.denyChainIn(bt, ClaimsChain, &Denial{Hook: policy.Egress, Reason: ReasonIdentity})}
	lookup := func(set string, neg bool, fields ...nft.Field) nft.Lookup {
		return nft.Lookup{Fields: fields, Set: set, Neg: neg}
	}
	ip4, ip6 := nft.Protocol{EtherType: etherTypeIPv4}, nft.Protocol{EtherType: etherTypeIPv6}
	ch.Rules = append(ch.Rules,
		&nft.Rule{Matches: []nft.Match{lookup("claimedmac", false, nft.FieldEtherSrc), lookup("ownmac", true, nft.FieldIIfName, nft.FieldEtherSrc)},
			Counter: true, Verdict: deny, ID: "claim ether", Comment: "a known container's MAC as Ethernet source from another port"},
		&nft.Rule{Matches: []nft.Match{nft.Protocol{EtherType: nft.EtherTypeARP}, lookup("claimed4", false, nft.FieldARPSenderIP), lookup("ownarp", true, nft.FieldIIfName, nft.FieldARPSenderIP, nft.FieldARPSenderMAC)},
			Counter: true, Verdict: deny, ID: "claim arp", Comment: "ARP claiming a known container's IPv4 address, not from its port with its MAC"},
		&nft.Rule{Matches: []nft.Match{ip4, lookup("claimed4", false, nft.FieldIPSrc4), lookup("own4", true, nft.FieldIIfName, nft.FieldIPSrc4)},
			Counter: true, Verdict: deny, ID: "claim ip", Comment: "a known container's IPv4 source from another port"},
		&nft.Rule{Matches: []nft.Match{ip6, lookup("claimed6", false, nft.FieldIPSrc6), lookup("own6", true, nft.FieldIIfName, nft.FieldIPSrc6)},
			Counter: true, Verdict: deny, ID: "claim ip6", Comment: "a known container's IPv6 source from another port"},
		&nft.Rule{Matches: []nft.Match{ip6, nft.ICMPv6Type{Types: []uint8{ndNeighborAdvert}}, lookup("claimed6", false, nft.FieldNDTarget), lookup("own6", true, nft.FieldIIfName, nft.FieldNDTarget)},
			Counter: true, Verdict: deny, ID: "claim nd", Comment: "neighbour advertisement for a known container's IPv6 address from another port"},
	)
}

// The EtherTypes of IPv4 and IPv6.
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
)
