package nft

import (
	"fmt"
	"net/netip"
	"sort"
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
