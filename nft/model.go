// Package nft is dockerfence's nftables layer, free of policy: a model of one
// inet table, and of a netdev and a bridge table of the same name beside
// it, as plain data (tables, chains, rules of typed matches, sets and
// maps), its rendering as nft syntax, the plan of changes that turns the
// kernel's table into the model, a tracer that evaluates a packet through
// a model table, and the netlink encoding and I/O.
//
// What the chains stand for (networks, policy rules) is the compiler's
// business (package fence); this package only knows nftables.
package nft

import (
	"net/netip"
	"time"
)

// Table is the desired state of one inet table, or of a netdev or bridge
// one.
type Table struct {
	Name string
	// Family is the table's family: inet (the zero value), netdev or
	// bridge.
	Family Family
	// Priority is the hook priority of the base chains (each Chain may
	// hook a little after it, PriorityOffset).
	Priority int
	Sets     []*Set
	Chains   []*Chain
	// Netdev, set on an inet table, is a table of the netdev family of
	// the same name and priority, which sees every frame a device
	// receives (ARP too, which the inet family's ingress hook lets
	// through unseen). It is planned, applied and owned with the inet
	// table, in the same transactions, so that an apply changes both or
	// neither; read back and compared as the kernel has it; and deleted
	// with it. A nil Netdev means there is none: an apply deletes the
	// kernel's.
	Netdev *Table
	// Bridge, set on an inet table, is a table of the bridge family of
	// the same name and priority, whose base chains see every frame that
	// enters any bridge port, ports not known yet included. It is
	// planned, applied, owned, read, compared and deleted with the inet
	// table exactly as Netdev is. A nil Bridge means there is none.
	Bridge *Table
}

// NetdevTable returns the netdev table (Netdev) as it is applied: a copy
// with the inet table's name and priority. It is nil if there is none.
func (t *Table) NetdevTable() *Table {
	if t.Netdev == nil {
		return nil
	}
	nd := *t.Netdev
	nd.Name, nd.Family, nd.Priority, nd.Netdev, nd.Bridge = t.Name, FamilyNetdev, t.Priority, nil, nil
	return &nd
}

// Family is the nftables family of a table.
type Family uint8

// Families. The zero value is inet.
const (
	FamilyInet Family = iota
	FamilyNetdev
	FamilyBridge
)

// Families are the families of the tables of one name that dockerfence
// owns: the inet table and those beside it (Table.Netdev, Table.Bridge).
var Families = []Family{FamilyInet, FamilyNetdev, FamilyBridge}

// String returns the family's nft name.
func (f Family) String() string {
	switch f {
	case FamilyNetdev:
		return "netdev"
	case FamilyBridge:
		return "bridge"
	}
	return "inet"
}

// proto is the family's NFPROTO number.
func (f Family) proto() byte {
	switch f {
	case FamilyNetdev:
		return nfprotoNetdev
	case FamilyBridge:
		return nfprotoBridge
	}
	return nfprotoInet
}

// NFPROTO_INET, NFPROTO_NETDEV and NFPROTO_BRIDGE.
const (
	nfprotoInet   = 1
	nfprotoNetdev = 5
	nfprotoBridge = 7
)

// Hook is the netfilter hook a base chain is attached to.
type Hook int

// Hooks. HookNone marks a regular chain.
const (
	HookNone Hook = iota
	HookForward
	HookInput
	// HookIngress is the ingress hook of one device (Chain.Device), which
	// sees the packets the device receives before anything else does
	// (Linux 5.10 for inet tables): in an inet table the IPv4 and IPv6
	// ones only, in a netdev table every frame.
	HookIngress
	// HookOutput is the output hook: packets the host itself sends, such
	// as the answers of a resolver that runs on the host to containers.
	HookOutput
	// HookPrerouting is the prerouting hook of a bridge table, which sees
	// every frame entering any bridge port (NF_BR_PRE_ROUTING).
	HookPrerouting
)

// nfInetIngress is NF_INET_INGRESS, the ingress hook of the inet family;
// nfNetdevIngress is NF_NETDEV_INGRESS, that of the netdev family.
const (
	nfInetIngress   = 5
	nfNetdevIngress = 0
)

// String returns the hook's nft name, "" for HookNone.
func (h Hook) String() string {
	switch h {
	case HookForward:
		return "forward"
	case HookInput:
		return "input"
	case HookIngress:
		return "ingress"
	case HookOutput:
		return "output"
	case HookPrerouting:
		return "prerouting"
	}
	return ""
}

// HookText is how the chain's hook reads in nft syntax and in
// ChainState.Hook: "forward", "input", or "ingress device NAME".
func (c *Chain) HookText() string {
	if c.Hook == HookIngress {
		return hookDevText(c.Device)
	}
	return c.Hook.String()
}

// hookDevText is the ingress hook of device dev as ChainState.Hook reads.
func hookDevText(dev string) string { return "ingress device " + quoteName(dev) }

// quoteName quotes a name as nft writes it.
func quoteName(s string) string { return `"` + s + `"` }

// KeyType is the type of a set's or map's key.
type KeyType int

// Key types.
const (
	KeyIPv4 KeyType = iota + 1
	KeyIPv6
	// KeyService is a transport port (inet_service).
	KeyService
	// KeyIfName is an interface name.
	KeyIfName
)

// String returns the key type's nft name.
func (k KeyType) String() string {
	switch k {
	case KeyIPv4:
		return "ipv4_addr"
	case KeyIPv6:
		return "ipv6_addr"
	case KeyService:
		return "inet_service"
	case KeyIfName:
		return "ifname"
	}
	if k.tuple() {
		return k.tupleText()
	}
	return "?"
}

// Owner says who decides a set's elements.
type Owner int

// Owners.
const (
	// OwnedByModel sets hold exactly the model's elements after every apply.
	OwnedByModel Owner = iota
	// OwnedByRuntime sets are filled and expired at run time (with
	// timeouts), through Kernel.Update; an apply creates them (with the
	// model's elements, usually none) but never reads, compares or
	// replaces their elements, and their contents are left out of rule
	// digests and of the set digests rules record. An apply that
	// re-creates the set (its type changed) or the whole table (its base
	// chains changed) reads the old set then, and only then, and creates
	// the new one holding its live elements, each with the time it has
	// left as its timeout, in the same transaction (see keptElems):
	// provided the set has timeouts, is not Dynamic (a meter's limits go),
	// and the old one has the same key type. Otherwise it starts empty.
	OwnedByRuntime
)

// Set is a named set, or a verdict map when Map is set.
type Set struct {
	Name string
	Key  KeyType
	// Map makes the set a verdict map: its elements are VMap.
	Map bool
	// Timeout lets elements carry a timeout (flag timeout).
	Timeout bool
	// Dynamic lets rules add and update elements from the packet path
	// (flag dynamic), as a Meter does. Its elements are the kernel's, so
	// such a set is OwnedByRuntime, and it holds no intervals.
	Dynamic bool
	Owner   Owner
	// Tag, if set, follows the set's comment ("dockerfence TAG"): a
	// kernel's set whose tag differs is another's contents, so the set is
	// created anew (empty) and carries none of its elements. Names lists
	// tag their sets with a digest of their names, so that editing them
	// drops the addresses learned for the old names.
	Tag string
	// Ranges holds the elements of address sets: sorted, disjoint, of the
	// key's family.
	Ranges []Range
	// Ports holds the elements of service sets: sorted, disjoint.
	Ports []PortRange
	// VMap holds the elements of verdict maps, sorted by key.
	VMap []VMapElem
	// Tuples holds the elements of sets of Ethernet and concatenated key
	// types (KeyEther, KeyIfNameIPv4, ...).
	Tuples []Tuple
}

// Interval reports whether the set holds intervals (flag interval):
// address and service sets do, maps do not.
func (s *Set) Interval() bool { return !s.Map && !s.Dynamic && s.Key != KeyIfName && !s.Key.tuple() }

// VMapElem maps a key to the chain that the packet goes to. The key is an
// interface name (Key) for KeyIfName maps, an address (Addr) for address
// maps and a transport port (Port) for KeyService maps. Jump makes the
// element a jump rather than a goto.
type VMapElem struct {
	Key   string
	Addr  netip.Addr
	Port  uint16
	Chain string
	Jump  bool
}

// Chain is a base chain (Hook set) or a regular chain.
type Chain struct {
	Name string
	Hook Hook
	// Device is the device of an ingress chain (HookIngress).
	Device string
	// PriorityOffset, for a base chain, is how far after the table's
	// Priority it hooks: its priority is Table.Priority+PriorityOffset.
	// The kernel runs the base chains of a hook by priority, so a chain
	// with an offset sees only what the table's other chains of that
	// hook passed.
	PriorityOffset int
	Rules          []*Rule
}

// ChainPriority returns the hook priority of base chain c of t.
func (t *Table) ChainPriority(c *Chain) int { return t.Priority + c.PriorityOffset }

// Rule is a list of matches, an optional counter, mark, meter, limit and
// log, and a verdict, evaluated in that order.
type Rule struct {
	Matches []Match
	Counter bool
	// SetMark, when not zero, sets these bits of the packet's mark and
	// keeps the others (meta mark set meta mark | SetMark).
	SetMark uint32
	// ClearMark, when not zero, clears these bits of the packet's mark
	// and keeps the others (meta mark set meta mark & ^ClearMark), before
	// SetMark.
	ClearMark uint32
	// SetCtMark, when not zero, sets these bits of the connection's
	// conntrack mark and keeps the others (ct mark set ct mark |
	// SetCtMark).
	SetCtMark uint32
	// Meter, when set, makes the rule go on only for packets within the
	// rate of their key's own limit.
	Meter *Meter
	// Limit, when set, makes the rule match at most Limit packets a second (burst the same).
	Limit   int
	Log     *Log
	Verdict Verdict
	// Comment is shown by nft; ID identifies the rule within its chain for status.
	Comment string
	ID      string
}

// Meter is a limit per key: each value of Key (a source address) may pass
// Rate packets a second (burst the same), and the rule goes no further for
// packets beyond it. The limits are kept in the dynamic set Set, one
// element a value, each expiring Timeout after its last packet (so a key
// that comes back starts with a full burst, as it would have anyway once
// its limit refilled). An address key implies its family: the rule
// matches only packets of that family. When the set is full (the kernel
// takes 65535 elements), packets of keys it does not hold go no further.
type Meter struct {
	Set     string
	Key     Selector
	Rate    int
	Timeout time.Duration
}

// Log is an NFLOG statement.
type Log struct {
	Prefix string
	Group  uint16
}

// VerdictKind is the kind of a rule's verdict.
type VerdictKind int

// Verdict kinds.
const (
	// Continue: no verdict, the next rule is evaluated.
	Continue VerdictKind = iota
	Accept
	Drop
	// Jump evaluates chain Target and comes back after it returns.
	Jump
	// Goto evaluates chain Target and does not come back: its return
	// goes to the last jump's caller.
	Goto
	// Return ends this chain: evaluation goes on after the last jump, or
	// ends with the base chain's policy.
	Return
	// VMap looks the key that Key selects up in verdict map Target.
	VMap
	RejectTCPReset
	RejectAdminProhibited
	// Queue hands the packet to the program bound to netfilter queue
	// QueueNum (nfnetlink_queue), which issues its verdict; with Bypass,
	// the packet is accepted when no program is bound. It is written as
	// the xtables target NFQUEUE (revision 3) through nft_compat, which
	// kernels without the nft queue expression (CONFIG_NFT_QUEUE) have
	// too; nft lists it as "queue num N bypass". An accepted packet goes
	// on to the hook's later base chains, as after Accept.
	Queue
)

// Verdict is what a rule does with a packet that matches.
type Verdict struct {
	Kind VerdictKind
	// Target is the chain of Jump and Goto or the map of VMap.
	Target string
	// Key is what a VMap looks up.
	Key Selector
	// QueueNum is the queue of Queue; Bypass accepts the packet when no
	// program is bound to it (fail open).
	QueueNum uint16
	Bypass   bool
}

// Selector is a packet field that a verdict map is keyed by.
type Selector int

// Selectors.
const (
	// SelIIfName is the input interface's name (the default).
	SelIIfName Selector = iota
	// SelOIfName is the output interface's name.
	SelOIfName
	// SelSAddr4, SelSAddr6, SelDAddr4 and SelDAddr6 are the source and
	// destination addresses; the rule must match the family first.
	SelSAddr4
	SelSAddr6
	SelDAddr4
	SelDAddr6
	// SelDPort is the transport destination port (th dport), for a map
	// of KeyService; the rule must match the transport protocol first.
	SelDPort
)

// Match is one condition of a rule. It is one of the types below.
type Match interface{ isMatch() }

// CtReply matches packets in the reply direction of their connection.
type CtReply struct{}

// CtOriginal matches packets in the original direction of their
// connection.
type CtOriginal struct{}

// NFProto matches IPv4 or IPv6 packets.
type NFProto struct{ V6 bool }

// L4Proto matches transport protocols (IANA numbers).
type L4Proto struct{ Protos []uint8 }

// Addr matches the source or destination address against one prefix or a named set.
type Addr struct {
	V6, Src, Neg bool
	Prefix       netip.Prefix // used when Set is empty
	Set          string
}

// DPort matches the transport destination port against a range or a named set.
type DPort struct {
	Range PortRange // used when Set is empty
	Set   string
}

// SPort matches the transport source port against a range: the DNS
// answers of a server come from port 53.
type SPort struct{ Range PortRange }

// IfName matches the input (or, with Out, the output) interface name
// exactly, or by prefix when Prefix is set.
type IfName struct {
	Name        string
	Prefix, Out bool
}

// Fib matches whether the source (Src) or destination address routes via the
// input interface; Missing inverts it. It stands in for subnets not known yet.
// Local instead matches a destination that is one of the host's addresses
// on the input interface (fib daddr . iif type local; with iif, the kernel
// counts only addresses of that device): a route lookup of a local address
// finds no output interface, so in the input hook that is what "the
// network's subnets" can mean for a bridge not known yet. It also counts the
// bridge's IPv6 link-local address, which the subnets do not hold, until
// the network is known.
type Fib struct{ Src, Missing, Local bool }

// ICMPv6Type matches ICMPv6 packets of the given types.
type ICMPv6Type struct{ Types []uint8 }

// Mark matches packets whose mark has all of Bits set (meta mark & Bits
// == Bits).
type Mark struct {
	Bits uint32
	// Clear, when set, matches packets that carry none of Bits instead.
	Clear bool
}

// CtMark matches packets of connections whose conntrack mark has all of
// Bits set (ct mark & Bits == Bits).
type CtMark struct{ Bits uint32 }

// HopLimit matches IPv6 packets whose hop limit is Value. Neighbour
// discovery is sent with 255 and is only valid so (RFC 4861); in the
// forward hook a routed packet has already lost one, so 255 there means a
// packet bridged by br_netfilter.
type HopLimit struct{ Value uint8 }

// UDPLength matches packets whose UDP length field (the UDP header's 8
// bytes and the payload) is at least Min: a DNS query over UDP holds a
// header (12 bytes) and a question (5 at least) after it. The encoding
// reads the transport header's bytes 4 and 5 whatever the protocol, so
// the rule must match L4Proto UDP first.
type UDPLength struct{ Min uint16 }

// EtherSrc matches frames whose Ethernet source address is MAC, or, with
// Neg, is not.
type EtherSrc struct {
	MAC [6]byte
	Neg bool
}

// Protocol matches frames of the given EtherType (meta protocol, the
// skb's protocol: 0x0806 for ARP).
type Protocol struct{ EtherType uint16 }

// EtherTypeARP is the EtherType of ARP.
const EtherTypeARP = 0x0806

// ARPSender matches ARP packets (of Ethernet and IPv4, the only ones
// Linux's ARP takes: it refuses other lengths) by their sender's hardware
// address (MAC, when IP is not valid) or protocol address (IP), equal or,
// with Neg, not equal. The rule must match Protocol{EtherTypeARP} first.
type ARPSender struct {
	MAC [6]byte
	IP  netip.Addr
	Neg bool
}

// NDTarget matches ICMPv6 neighbour solicitations and advertisements by
// their target address against a named set of IPv6 addresses (or one
// prefix, when Set is empty); Neg matches a target not in it. The rule
// must match ICMPv6Type first.
type NDTarget struct {
	Neg    bool
	Prefix netip.Prefix
	Set    string
}

func (CtReply) isMatch()    {}
func (CtOriginal) isMatch() {}
func (NFProto) isMatch()    {}
func (L4Proto) isMatch()    {}
func (Addr) isMatch()       {}
func (DPort) isMatch()      {}
func (SPort) isMatch()      {}
func (IfName) isMatch()     {}
func (Fib) isMatch()        {}
func (ICMPv6Type) isMatch() {}
func (HopLimit) isMatch()   {}
func (UDPLength) isMatch()  {}
func (EtherSrc) isMatch()   {}
func (Protocol) isMatch()   {}
func (ARPSender) isMatch()  {}
func (NDTarget) isMatch()   {}
func (Mark) isMatch()       {}
func (CtMark) isMatch()     {}

// Chain returns the chain of that name, or nil.
func (t *Table) Chain(name string) *Chain {
	for _, c := range t.Chains {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Set returns the set of that name, or nil.
func (t *Table) Set(name string) *Set {
	for _, s := range t.Sets {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Elements returns how many elements the table's sets hold.
func (t *Table) Elements() int {
	n := 0
	for _, s := range t.Sets {
		n += len(s.Ranges) + len(s.Ports) + len(s.VMap) + len(s.Tuples)
	}
	return n
}

// ValidIfName reports whether s can be a Linux interface name.
func ValidIfName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || r == '/' || r == ':' || r == '"' || r == '\\' || r == '*' {
			return false
		}
	}
	return true
}
