package nft

import "testing"

// TestTraceMarkAndMeter traces the packet mark, which a rule sets for the
// rules after it and a Mark match tests, and meters keyed by an address,
// which apply to packets of their family only.
func TestTraceMarkAndMeter(t *testing.T) {
	const bit = 0x10000000
	tbl := &Table{Name: "t", Sets: []*Set{
		{Name: "m4", Key: KeyIPv4, Dynamic: true, Timeout: true, Owner: OwnedByRuntime},
		{Name: "m6", Key: KeyIPv6, Dynamic: true, Timeout: true, Owner: OwnedByRuntime},
	}, Chains: []*Chain{
		{Name: "forward", Hook: HookForward, Rules: []*Rule{
			{Matches: []Match{IfName{Name: "br-a"}}, SetMark: bit},
			{Matches: []Match{Mark{Bits: bit}}, Verdict: Verdict{Kind: Goto, Target: "deny"}},
		}},
		{Name: "deny", Rules: []*Rule{
			{Meter: &Meter{Set: "m4", Key: SelSAddr4, Rate: 10}, Log: &Log{Prefix: "x "}},
			{Meter: &Meter{Set: "m6", Key: SelSAddr6, Rate: 10}, Log: &Log{Prefix: "x "}},
			{Verdict: Verdict{Kind: Drop}},
		}},
	}}
	for _, tt := range []struct {
		name string
		p    Packet
		want string
	}{
		{"marked by an earlier rule", tcp4(), "forward 0 yes\nforward 1 yes goto deny\ndeny 0 yes\ndeny 1 no\ndeny 2 yes drop\ndrop"},
		{"IPv6 meter", tcp6(), "forward 0 yes\nforward 1 yes goto deny\ndeny 0 no\ndeny 1 yes\ndeny 2 yes drop\ndrop"},
		{"marked before the hook", Packet{Hook: HookForward, IIfName: "vx0", Src: addr("10.250.0.2"), Dst: addr("192.168.100.50"), L4Proto: 6, Mark: bit | 1}, "forward 0 no\nforward 1 yes goto deny\ndeny 0 yes\ndeny 1 no\ndeny 2 yes drop\ndrop"},
		{"other bits", Packet{Hook: HookForward, IIfName: "vx0", Src: addr("10.250.0.2"), Dst: addr("192.168.100.50"), L4Proto: 6, Mark: 1}, "forward 0 no\nforward 1 no\naccept (policy)"},
	} {
		tr, err := tbl.Trace(tt.p)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := tr.String(); got != tt.want {
			t.Errorf("%s: trace\n%s\nwant\n%s", tt.name, got, tt.want)
		}
	}
}
