package nft

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Key types of Ethernet addresses and of concatenations (nft's "a . b"),
// whose elements are Tuples. Numbered apart from the plain ones.
const (
	// KeyEther is an Ethernet address (ether_addr).
	KeyEther KeyType = 64 + iota
	// KeyIfNameIPv4 is an interface name and an IPv4 address.
	KeyIfNameIPv4
	// KeyIfNameIPv6 is an interface name and an IPv6 address.
	KeyIfNameIPv6
	// KeyIfNameEther is an interface name and an Ethernet address.
	KeyIfNameEther
	// KeyIfNameIPv4Ether is an interface name, an IPv4 address and an
	// Ethernet address.
	KeyIfNameIPv4Ether
)

// Field is one field of a key: what a Lookup loads from the packet.
type Field int

// Fields.
const (
	// FieldIIfName is the input interface's name (meta iifname).
	FieldIIfName Field = iota + 1
	// FieldEtherSrc is the Ethernet source address (ether saddr).
	FieldEtherSrc
	// FieldARPSenderIP and FieldARPSenderMAC are the sender's IPv4 and
	// hardware address of an Ethernet/IPv4 ARP packet (arp saddr ip,
	// arp saddr ether).
	FieldARPSenderIP
	FieldARPSenderMAC
	// FieldIPSrc4 and FieldIPSrc6 are the IPv4 and IPv6 source address.
	FieldIPSrc4
	FieldIPSrc6
	// FieldNDTarget is the target address of an ICMPv6 neighbour
	// solicitation or advertisement (icmpv6 taddr).
	FieldNDTarget
)

// fieldInfo is how a field reads in nft syntax, its type and where it is
// loaded from (a payload, unless meta).
type fieldInfo struct {
	text string
	typ  nftables.SetDatatype
	meta bool
	base expr.PayloadBase
	off  uint32
}

var fields = map[Field]fieldInfo{
	FieldIIfName:      {text: "iifname", typ: nftables.TypeIFName, meta: true},
	FieldEtherSrc:     {text: "ether saddr", typ: nftables.TypeEtherAddr, base: expr.PayloadBaseLLHeader, off: 6},
	FieldARPSenderIP:  {text: "arp saddr ip", typ: nftables.TypeIPAddr, base: expr.PayloadBaseNetworkHeader, off: 14},
	FieldARPSenderMAC: {text: "arp saddr ether", typ: nftables.TypeEtherAddr, base: expr.PayloadBaseNetworkHeader, off: 8},
	FieldIPSrc4:       {text: "ip saddr", typ: nftables.TypeIPAddr, base: expr.PayloadBaseNetworkHeader, off: 12},
	FieldIPSrc6:       {text: "ip6 saddr", typ: nftables.TypeIP6Addr, base: expr.PayloadBaseNetworkHeader, off: 8},
	FieldNDTarget:     {text: "icmpv6 taddr", typ: nftables.TypeIP6Addr, base: expr.PayloadBaseTransportHeader, off: 8},
}

// keyTypes are the types of each tuple key type's fields, in order.
var keyTypes = map[KeyType][]nftables.SetDatatype{
	KeyEther:           {nftables.TypeEtherAddr},
	KeyIfNameIPv4:      {nftables.TypeIFName, nftables.TypeIPAddr},
	KeyIfNameIPv6:      {nftables.TypeIFName, nftables.TypeIP6Addr},
	KeyIfNameEther:     {nftables.TypeIFName, nftables.TypeEtherAddr},
	KeyIfNameIPv4Ether: {nftables.TypeIFName, nftables.TypeIPAddr, nftables.TypeEtherAddr},
}

// tuple reports whether the key type's elements are Tuples.
func (k KeyType) tuple() bool { return keyTypes[k] != nil }

// tupleText is the nft name of a tuple key type.
func (k KeyType) tupleText() string {
	var names []string
	for _, t := range keyTypes[k] {
		names = append(names, t.Name)
	}
	return strings.Join(names, " . ")
}

// datatype is the google/nftables type of a tuple key type.
func (k KeyType) datatype() nftables.SetDatatype {
	ts := keyTypes[k]
	if len(ts) == 1 {
		return ts[0]
	}
	return nftables.MustConcatSetType(ts...)
}

// Len returns the length of the key type's keys in bytes, as the kernel
// stores them (the fields of a concatenation padded to 4 bytes each).
func (k KeyType) Len() int {
	switch k {
	case KeyIPv4:
		return 4
	case KeyIPv6:
		return 16
	case KeyService:
		return 2
	case KeyIfName:
		return unix.IFNAMSIZ
	}
	return int(k.datatype().Bytes)
}

// Tuple is an element of a set of an Ethernet or concatenated key type:
// the fields its key type has (an interface name, an address, a MAC).
type Tuple struct {
	IfName string
	Addr   netip.Addr
	MAC    [6]byte
}

// key returns the tuple's key for key type k, as the kernel stores it.
func (u Tuple) key(k KeyType) []byte {
	var b []byte
	for _, t := range keyTypes[k] {
		switch t.Name {
		case nftables.TypeIFName.Name:
			b = append(b, ifname(u.IfName)...)
		case nftables.TypeIPAddr.Name, nftables.TypeIP6Addr.Name:
			b = append(b, u.Addr.AsSlice()...)
		case nftables.TypeEtherAddr.Name:
			b = append(b, u.MAC[:]...)
			if len(keyTypes[k]) > 1 {
				b = append(b, 0, 0) // padded to 4 bytes in a concatenation
			}
		}
	}
	return b
}

// tupleOf decodes a key of key type k; ok is false if it is not one.
func tupleOf(k KeyType, key []byte) (u Tuple, ok bool) {
	if len(key) != k.Len() {
		return u, false
	}
	for _, t := range keyTypes[k] {
		switch t.Name {
		case nftables.TypeIFName.Name:
			u.IfName, key = string(bytes.TrimRight(key[:unix.IFNAMSIZ], "\x00")), key[unix.IFNAMSIZ:]
		case nftables.TypeIPAddr.Name:
			u.Addr, key = netip.AddrFrom4([4]byte(key[:4])), key[4:]
		case nftables.TypeIP6Addr.Name:
			u.Addr, key = netip.AddrFrom16([16]byte(key[:16])), key[16:]
		case nftables.TypeEtherAddr.Name:
			copy(u.MAC[:], key[:6])
			key = key[min(len(key), 8):]
		}
	}
	return u, true
}

// text renders the tuple for key type k in nft syntax.
func (u Tuple) text(k KeyType) string {
	var parts []string
	for _, t := range keyTypes[k] {
		switch t.Name {
		case nftables.TypeIFName.Name:
			parts = append(parts, quoteName(u.IfName))
		case nftables.TypeIPAddr.Name, nftables.TypeIP6Addr.Name:
			parts = append(parts, u.Addr.String())
		case nftables.TypeEtherAddr.Name:
			parts = append(parts, net.HardwareAddr(u.MAC[:]).String())
		}
	}
	return strings.Join(parts, " . ")
}

// sortedTupleKeys returns the keys of the set's tuples, sorted, without
// duplicates.
func sortedTupleKeys(s *Set) [][]byte {
	keys := make([][]byte, 0, len(s.Tuples))
	for _, u := range s.Tuples {
		keys = append(keys, u.key(s.Key))
	}
	slices.SortFunc(keys, bytes.Compare)
	return slices.CompactFunc(keys, bytes.Equal)
}

// loadTuples sets the tuples of a set of a tuple key type from elements
// as the kernel stores them.
func (s *Set) loadTuples(elems []nftables.SetElement) {
	s.Tuples = nil
	es := slices.Clone(elems)
	slices.SortFunc(es, func(a, b nftables.SetElement) int { return bytes.Compare(a.Key, b.Key) })
	for _, e := range es {
		if u, ok := tupleOf(s.Key, e.Key); ok {
			s.Tuples = append(s.Tuples, u)
		}
	}
}

// Lookup matches packets whose fields, concatenated in order, are (or,
// with Neg, are not) an element of the named set, whose key type must be
// theirs: one field, or a concatenation (iifname . ip saddr). The rule
// must match the packet's protocol first (Protocol) for fields of the
// network and transport headers.
type Lookup struct {
	Fields []Field
	Set    string
	Neg    bool
}

func (Lookup) isMatch() {}

// String renders the lookup's fields, for Rule.keys.
func (m Lookup) String() string { return fmt.Sprintf("lookup%v@%s/%v", m.Fields, m.Set, m.Neg) }

// text renders the lookup in nft syntax.
func (m Lookup) text() string {
	var parts []string
	for _, f := range m.Fields {
		parts = append(parts, fields[f].text)
	}
	return strings.Join(parts, " . ") + " " + negText(m.Neg) + "@" + m.Set
}

// exprs returns the lookup's expressions: its fields loaded into
// consecutive registers, as nft does (a concatenation into consecutive
// 32-bit registers, each field padded to 4 bytes), then the lookup.
func (m Lookup) exprs(set *nftables.Set) ([]expr.Any, error) {
	if len(m.Fields) == 0 {
		return nil, fmt.Errorf("lookup of set %s without fields", m.Set)
	}
	var out []expr.Any
	off := uint32(0)
	for _, f := range m.Fields {
		fi, ok := fields[f]
		if !ok {
			return nil, fmt.Errorf("lookup of set %s: unknown field %d", m.Set, f)
		}
		if off+(fi.typ.Bytes+3)/4 > 16 {
			return nil, fmt.Errorf("lookup of set %s: the fields are longer than the registers", m.Set)
		}
		if fi.meta {
			out = append(out, &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: register(off)})
		} else {
			out = append(out, &expr.Payload{DestRegister: register(off), Base: fi.base, Offset: fi.off, Len: fi.typ.Bytes})
		}
		off += (fi.typ.Bytes + 3) / 4
	}
	out = append(out, &expr.Lookup{SourceRegister: register(0), SetName: set.Name, SetID: set.ID, Invert: m.Neg})
	return out, nil
}

// register is the number of the register off 32-bit words past the
// start of NFT_REG_1, as the kernel returns it: a 16-byte register
// (NFT_REG_1 to NFT_REG_4) where one starts there, else a 32-bit one
// (NFT_REG32_00 on). The kernel takes both forms and returns this one,
// so the canonical form of a rule is the same on both sides.
func register(off uint32) uint32 {
	if off%4 == 0 {
		return 1 + off/4
	}
	return nftReg32_00 + off
}

// nftReg32_00 is NFT_REG32_00, the first 32-bit register.
const nftReg32_00 = 8

// elemItems renders elements of set s as the kernel stores them in nft
// syntax, in key order: its tuples, or its intervals (see intervalItems).
func elemItems(s *Set, elems []nftables.SetElement) []string {
	if !s.Key.tuple() {
		return intervalItems(elems)
	}
	es := slices.Clone(elems)
	slices.SortFunc(es, func(a, b nftables.SetElement) int { return bytes.Compare(a.Key, b.Key) })
	var out []string
	for _, e := range es {
		if u, ok := tupleOf(s.Key, e.Key); ok {
			out = append(out, u.text(s.Key))
		}
	}
	return out
}
