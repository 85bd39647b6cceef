package nft

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/google/nftables"
)

// Range is an inclusive address range of one family.
type Range struct{ From, To netip.Addr }

// Ranges merges prefixes into sorted, disjoint, non-adjacent ranges, IPv4
// first then IPv6. Overlapping and adjacent prefixes collapse, which is what
// an nftables interval set requires.
func Ranges(prefixes []netip.Prefix) []Range {
	rs := make([]Range, 0, len(prefixes))
	for _, p := range prefixes {
		rs = append(rs, Range{From: p.Masked().Addr(), To: LastAddr(p)})
	}
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i].From, rs[j].From
		if a.Is4() != b.Is4() {
			return a.Is4()
		}
		return a.Less(b)
	})
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].To.Is4() == r.From.Is4() {
			last := &out[n-1]
			next := last.To.Next() // invalid when last reaches the family's end
			if !next.IsValid() {
				continue
			}
			if !next.Less(r.From) { // overlaps or touches
				if last.To.Less(r.To) {
					last.To = r.To
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// LastAddr returns the last address of the prefix.
func LastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	b := a.AsSlice()
	bits := p.Bits()
	for i := range b {
		for bit := 0; bit < 8; bit++ {
			if i*8+bit >= bits {
				b[i] |= 0x80 >> bit
			}
		}
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

// Contains reports whether a is in the range.
func (r Range) Contains(a netip.Addr) bool {
	return a.BitLen() == r.From.BitLen() && !a.Less(r.From) && !r.To.Less(a)
}

// RangePrefix returns the prefix that covers exactly r, if there is one.
func RangePrefix(r Range) (netip.Prefix, bool) {
	for bits := 0; bits <= r.From.BitLen(); bits++ {
		p := netip.PrefixFrom(r.From, bits)
		if p.Masked().Addr() == r.From && LastAddr(p) == r.To {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct{ First, Last uint16 }

// String renders "53" or "8000-8080".
func (r PortRange) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// MergePorts sorts port ranges and merges those that overlap or touch.
func MergePorts(in []PortRange) []PortRange {
	rs := append([]PortRange(nil), in...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].First < rs[j].First })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && uint32(r.First) <= uint32(out[n-1].Last)+1 {
			if r.Last > out[n-1].Last {
				out[n-1].Last = r.Last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// IntervalItems renders the elements of an address or service set, as the
// kernel stores them (interval boundaries), as intervals in nft syntax, in
// key order: one item an interval start.
func IntervalItems(elems []nftables.SetElement) []string { return intervalItems(elems) }

// intervalItems renders the elements of an interval set as the kernel
// stores them as intervals in nft syntax, in key order (see intervals).
func intervalItems(elems []nftables.SetElement) []string {
	var out []string
	for _, iv := range intervals(elems) {
		out = append(out, keyRangeText(iv.from, iv.to))
	}
	return out
}

// keyRange is an inclusive range of keys.
type keyRange struct{ from, to []byte }

// intervals reads the elements of an interval set as the kernel stores
// them (a start and an end boundary an interval, no end for one that
// reaches the last key) as ranges, in key order. As the kernel's lookup
// does, a start reaches up to the next boundary.
func intervals(elems []nftables.SetElement) []keyRange {
	es := slices.Clone(elems)
	slices.SortStableFunc(es, func(a, b nftables.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		switch {
		case a.IntervalEnd == b.IntervalEnd:
			return 0
		case a.IntervalEnd: // an end closes the interval before the start at the same key
			return -1
		}
		return 1
	})
	var out []keyRange
	for i := 0; i < len(es); i++ {
		if es[i].IntervalEnd {
			continue // an end without a start
		}
		iv := keyRange{from: es[i].Key, to: bytes.Repeat([]byte{0xff}, len(es[i].Key))}
		if i+1 < len(es) {
			iv.to = prevKey(es[i+1].Key)
			if es[i+1].IntervalEnd {
				i++
			}
		}
		out = append(out, iv)
	}
	return out
}

// LoadElements sets the elements of an address or service set from
// elements as the kernel stores them: the inverse of Elements.
func (s *Set) LoadElements(elems []nftables.SetElement) {
	s.Ranges, s.Ports = nil, nil
	if s.Key.tuple() {
		s.loadTuples(elems)
		return
	}
	for _, iv := range intervals(elems) {
		switch len(iv.from) {
		case 2:
			s.Ports = append(s.Ports, PortRange{First: binary.BigEndian.Uint16(iv.from), Last: binary.BigEndian.Uint16(iv.to)})
		case 4, 16:
			from, _ := netip.AddrFromSlice(iv.from)
			to, _ := netip.AddrFromSlice(iv.to)
			s.Ranges = append(s.Ranges, Range{From: from, To: to})
		}
	}
}

// Elements returns the set's elements as the kernel stores them: for
// address and service sets, a start and an end boundary an interval.
func (s *Set) Elements() []nftables.SetElement { return setElements(s) }

// prevKey returns the key before k, read as a big-endian number.
func prevKey(k []byte) []byte {
	out := slices.Clone(k)
	for i := len(out) - 1; i >= 0; i-- {
		out[i]--
		if out[i] != 0xff {
			break
		}
	}
	return out
}

// keyRangeText renders the keys from-to of an address or service set.
func keyRangeText(from, to []byte) string {
	switch len(from) {
	case 4, 16:
		a, _ := netip.AddrFromSlice(from)
		b, _ := netip.AddrFromSlice(to)
		return rangeText(Range{From: a, To: b})
	case 2:
		return PortRange{First: binary.BigEndian.Uint16(from), Last: binary.BigEndian.Uint16(to)}.String()
	}
	return hex.EncodeToString(from) + "-" + hex.EncodeToString(to)
}

// itemDiff returns the items of have that want lacks, and those of want
// that have lacks, in their order.
func itemDiff(have, want []string) (del, add []string) {
	in := func(items []string) map[string]bool {
		m := make(map[string]bool, len(items))
		for _, it := range items {
			m[it] = true
		}
		return m
	}
	h, w := in(have), in(want)
	for _, it := range have {
		if !w[it] {
			del = append(del, it)
		}
	}
	for _, it := range want {
		if !h[it] {
			add = append(add, it)
		}
	}
	return del, add
}
