package nft_test

import (
	"net/netip"

	. "github.com/dockerfence/dockerfence/nft"
)

// sampleTable is a small table that uses every kind of match, every verdict,
// an address set of each family, a service set, a verdict map by interface
// name, one by address, and a runtime set with timeouts. The golden netlink
// tests encode it; the nft -f tests load it.
func sampleTable() *Table {
	r := func(id string, v Verdict, ms ...Match) *Rule {
		return &Rule{Matches: ms, Counter: true, Verdict: v, ID: id, Comment: "rule " + id}
	}
	to := func(k VerdictKind, target string) Verdict { return Verdict{Kind: k, Target: target} }
	pfx := netip.MustParsePrefix
	rng := func(p string) Range { return Range{From: pfx(p).Addr(), To: LastAddr(pfx(p))} }
	return &Table{
		Name:     "dftest",
		Priority: -10,
		Sets: []*Set{
			{Name: "l_private_4", Key: KeyIPv4, Ranges: []Range{rng("10.0.0.0/8"), rng("192.168.0.0/16")}},
			{Name: "l_private_6", Key: KeyIPv6, Ranges: []Range{rng("fc00::/7"), {From: netip.MustParseAddr("fe80::1"), To: netip.MustParseAddr("fe80::ff")}}},
			{Name: "ports", Key: KeyService, Ports: []PortRange{{53, 53}, {8000, 8080}}},
			{Name: "learned_4", Key: KeyIPv4, Timeout: true, Owner: OwnedByRuntime},
			{Name: "fwd_if", Key: KeyIfName, Map: true, VMap: []VMapElem{{Key: "br-x", Chain: "fwd_br-x"}, {Key: "docker0", Chain: "fwd_docker0", Jump: true}}},
			{Name: "by_addr", Key: KeyIPv4, Map: true, VMap: []VMapElem{{Addr: netip.MustParseAddr("172.20.0.2"), Chain: "c_a", Jump: true}}},
		},
		Chains: []*Chain{
			{Name: "forward", Hook: HookForward, Rules: []*Rule{
				r("reply", to(Accept, ""), CtReply{}),
				{Verdict: to(Jump, "fwd.network"), ID: "jump"},
			}},
			{Name: "input", Hook: HookInput, Rules: []*Rule{
				r("local", to(Return, ""), Fib{Local: true}),
				r("drop", to(Drop, ""), IfName{Name: "br-", Prefix: true}),
			}},
			{Name: "fwd.network", Rules: []*Rule{
				{Counter: true, Verdict: Verdict{Kind: VMap, Target: "fwd_if"}, ID: "dispatch"},
				r("unknown", to(Goto, "fwd_unknown"), IfName{Name: "br-", Prefix: true}),
			}},
			{Name: "fwd_br-x", Rules: []*Rule{
				r("nd", to(Return, ""), NFProto{V6: true}, ICMPv6Type{Types: []uint8{135, 136}}, HopLimit{Value: 255}),
				r("spoof4", to(Goto, "c_deny"), Addr{Src: true, Neg: true, Prefix: pfx("172.20.0.0/16")}),
				r("spoof6", to(Goto, "c_deny"), Addr{V6: true, Src: true, Neg: true, Prefix: pfx("fd00:20::/64")}),
				r("fib", to(Goto, "c_deny"), Fib{Src: true, Missing: true}),
				r("fib-daddr", to(Return, ""), Fib{}),
				r("self", to(Return, ""), Addr{Prefix: pfx("172.20.0.0/16")}),
				r("host", to(Return, ""), Addr{V6: true, Prefix: pfx("fd00::1/128")}, L4Proto{Protos: []uint8{6}}, DPort{Range: PortRange{443, 443}}),
				r("dns", to(Return, ""), Addr{Prefix: pfx("192.168.100.2/32")}, L4Proto{Protos: []uint8{6, 17}}, DPort{Set: "ports"}),
				r("range", to(Return, ""), L4Proto{Protos: []uint8{17}}, DPort{Range: PortRange{1000, 2000}}),
				r("learned", to(Accept, ""), Addr{Set: "learned_4"}),
				r("by-addr", Verdict{Kind: VMap, Target: "by_addr", Key: SelDAddr4}, NFProto{}),
				r("private4", to(Goto, "c_deny"), Addr{Set: "l_private_4"}),
				r("private6", to(Goto, "c_deny"), Addr{V6: true, Set: "l_private_6"}),
				r("out", to(Continue, ""), IfName{Name: "eth0", Out: true}),
				r("default", to(Return, "")),
			}},
			{Name: "fwd_docker0", Rules: []*Rule{
				r("default", to(Drop, "")),
			}},
			{Name: "fwd_unknown", Rules: []*Rule{
				r("default", to(Return, "")),
			}},
			{Name: "c_a", Rules: []*Rule{
				r("a", to(Return, ""), IfName{Name: "br-x"}),
			}},
			{Name: "c_deny", Rules: []*Rule{
				{Limit: 10, Log: &Log{Prefix: "df c_deny ", Group: 100}, ID: "log"},
				{Matches: []Match{L4Proto{Protos: []uint8{6}}}, Verdict: to(RejectTCPReset, ""), ID: "rst"},
				{Verdict: to(RejectAdminProhibited, ""), ID: "icmpx"},
			}},
		},
	}
}

// sampleChanged is sampleTable after a change of every kind: an address set
// edited in place (one interval grows, one is new), a new set (staged), a
// set no longer used (deleted), a map element removed and one added with a
// new chain, a chain deleted, a map element pointed elsewhere, and rules
// changed in two chains.
func sampleChanged() *Table {
	t := sampleTable()
	pfx := netip.MustParsePrefix
	rng := func(p string) Range { return Range{From: pfx(p).Addr(), To: LastAddr(pfx(p))} }
	t.Set("l_private_4").Ranges = []Range{rng("10.0.0.0/8"), rng("100.64.0.0/10"), rng("192.168.0.0/15")}
	t.Sets = append(t.Sets, &Set{Name: "new_4", Key: KeyIPv4, Ranges: []Range{rng("198.51.100.0/24"), rng("203.0.113.0/24")}})
	var sets []*Set
	for _, s := range t.Sets {
		if s.Name != "ports" {
			sets = append(sets, s)
		}
	}
	t.Sets = sets
	t.Set("fwd_if").VMap = []VMapElem{{Key: "br-x", Chain: "fwd_br-x"}, {Key: "br-y", Chain: "fwd_br-y"}}
	t.Set("by_addr").VMap = []VMapElem{{Addr: netip.MustParseAddr("172.20.0.2"), Chain: "c_deny", Jump: true}}
	var chains []*Chain
	for _, c := range t.Chains {
		if c.Name != "fwd_docker0" {
			chains = append(chains, c)
		}
	}
	t.Chains = append(chains, &Chain{Name: "fwd_br-y", Rules: []*Rule{
		{Matches: []Match{Addr{Set: "new_4"}}, Counter: true, Verdict: Verdict{Kind: Drop}, ID: "new", Comment: "rule new"},
	}})
	x := t.Chain("fwd_br-x")
	for i, r := range x.Rules {
		if r.ID == "dns" {
			x.Rules[i] = &Rule{Matches: []Match{Addr{Prefix: pfx("192.168.100.2/32")}, L4Proto{Protos: []uint8{6, 17}}, DPort{Range: PortRange{53, 53}}}, Counter: true, Verdict: Verdict{Kind: Return}, ID: "dns", Comment: "rule dns"}
		}
	}
	return t
}
