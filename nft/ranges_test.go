package nft

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
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
