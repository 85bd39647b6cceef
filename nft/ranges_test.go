package nft

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables"
)

func prefixesOf(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestRanges(t *testing.T) {
	r := func(a, b string) Range { return Range{netip.MustParseAddr(a), netip.MustParseAddr(b)} }
	tests := []struct {
		in   []string
		want []Range
	}{
		{[]string{"10.0.0.0/8"}, []Range{r("10.0.0.0", "10.255.255.255")}},
		{[]string{"10.1.0.0/16", "10.0.0.0/8"}, []Range{r("10.0.0.0", "10.255.255.255")}},
		{[]string{"10.0.0.0/24", "10.0.1.0/24"}, []Range{r("10.0.0.0", "10.0.1.255")}},
		{[]string{"10.0.0.0/24", "10.0.2.0/24"}, []Range{r("10.0.0.0", "10.0.0.255"), r("10.0.2.0", "10.0.2.255")}},
		{[]string{"fc00::/7", "192.168.0.0/16", "0.0.0.0/0"}, []Range{r("0.0.0.0", "255.255.255.255"), r("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}},
		{[]string{"255.255.255.255/32", "255.255.255.0/24", "1.1.1.1/32"}, []Range{r("1.1.1.1", "1.1.1.1"), r("255.255.255.0", "255.255.255.255")}},
		{[]string{"::/0", "2001:db8::/32"}, []Range{r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}},
		{nil, []Range{}},
	}
	for _, tt := range tests {
		got := Ranges(prefixesOf(tt.in...))
		if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("Ranges(%v) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// TestIntervalItems reads interval boundaries as the kernel stores them
// back into intervals, and LoadElements inverts Elements.
func TestIntervalItems(t *testing.T) {
	s := &Set{Key: KeyIPv4, Ranges: Ranges(prefixesOf("10.0.0.0/8", "192.168.0.0/16", "255.255.255.0/24"))}
	s.Ranges = append(s.Ranges[:1], Range{From: netip.MustParseAddr("172.16.0.1"), To: netip.MustParseAddr("172.16.0.9")}, s.Ranges[1], s.Ranges[2])
	elems := s.Elements()
	// The last interval reaches the last address: it has no end boundary.
	if len(elems) != 7 {
		t.Fatalf("%d boundaries, want 7", len(elems))
	}
	want := []string{"10.0.0.0/8", "172.16.0.1-172.16.0.9", "192.168.0.0/16", "255.255.255.0/24"}
	// The kernel dumps them in descending order.
	rev := append([]nftables.SetElement(nil), elems...)
	slices.Reverse(rev)
	if diff := cmp.Diff(want, IntervalItems(rev)); diff != "" {
		t.Errorf("IntervalItems (-want +got):\n%s", diff)
	}
	back := &Set{Key: KeyIPv4}
	back.LoadElements(rev)
	if diff := cmp.Diff(s.Ranges, back.Ranges, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("LoadElements (-want +got):\n%s", diff)
	}
	ports := &Set{Key: KeyService, Ports: []PortRange{{First: 53, Last: 53}, {First: 8000, Last: 65535}}}
	if got := IntervalItems(ports.Elements()); !slices.Equal(got, []string{"53", "8000-65535"}) {
		t.Errorf("ports = %q", got)
	}
	del, add := itemDiff([]string{"a", "b", "c"}, []string{"b", "d"})
	if !slices.Equal(del, []string{"a", "c"}) || !slices.Equal(add, []string{"d"}) {
		t.Errorf("itemDiff = %q, %q", del, add)
	}
}
