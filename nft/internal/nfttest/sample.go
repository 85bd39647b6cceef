// Package nfttest holds what the tests of nft and its fake kernel share: a
// sample table that uses every feature of the model, and network
// namespaces to test against the real kernel in.
package nfttest

import (
	"net/netip"
	"time"

	"github.com/dockerfence/dockerfence/nft"
)

// Sample is a small table that uses every kind of match, every verdict,
// a base chain that hooks after the table's priority, an address set of
// each family, a service set, a verdict map by input
// interface name, one by output interface name, one by address, a runtime set with timeouts, and the dynamic sets
// of a meter of each family. The golden netlink
// tests encode it; the nft -f tests load it.
func Sample() *nft.Table {
	r := func(id string, v nft.Verdict, ms ...nft.Match) *nft.Rule {
		return &nft.Rule{Matches: ms, Counter: true, Verdict: v, ID: id, Comment: "rule " + id}
	}
	to := func(k nft.VerdictKind, target string) nft.Verdict { return nft.Verdict{Kind: k, Target: target} }
	pfx := netip.MustParsePrefix
	rng := func(p string) nft.Range { return nft.Range{From: pfx(p).Addr(), To: nft.LastAddr(pfx(p))} }
	return &nft.Table{
		Name:     "dftest",
		Priority: -10,
		Sets: []*nft.Set{
			{Name: "l_private_4", Key: nft.KeyIPv4, Ranges: []nft.Range{rng("10.0.0.0/8"), rng("192.168.0.0/16")}},
			{Name: "l_private_6", Key: nft.KeyIPv6, Ranges: []nft.Range{rng("fc00::/7"), {From: netip.MustParseAddr("fe80::1"), To: netip.MustParseAddr("fe80::ff")}}},
			{Name: "ports", Key: nft.KeyService, Ports: []nft.PortRange{{First: 53, Last: 53}, {First: 8000, Last: 8080}}},
			{Name: "published", Key: nft.KeyService, Ports: []nft.PortRange{{First: 443, Last: 443}, {First: 3000, Last: 3001}}},
			{Name: "learned_4", Key: nft.KeyIPv4, Timeout: true, Owner: nft.OwnedByRuntime},
			{Name: "meter_4", Key: nft.KeyIPv4, Dynamic: true, Timeout: true, Owner: nft.OwnedByRuntime},
			{Name: "meter_6", Key: nft.KeyIPv6, Dynamic: true, Timeout: true, Owner: nft.OwnedByRuntime},
			{Name: "fwd_if", Key: nft.KeyIfName, Map: true, VMap: []nft.VMapElem{{Key: "br-x", Chain: "fwd_br-x"}, {Key: "docker0", Chain: "fwd_docker0", Jump: true}}},
			{Name: "by_addr", Key: nft.KeyIPv4, Map: true, VMap: []nft.VMapElem{{Addr: netip.MustParseAddr("172.20.0.2"), Chain: "c_a", Jump: true}}},
			{Name: "ing_if", Key: nft.KeyIfName, Map: true, VMap: []nft.VMapElem{{Key: "br-x", Chain: "c_a", Jump: true}}},
			{Name: "by_port", Key: nft.KeyService, Map: true, VMap: []nft.VMapElem{{Port: 443, Chain: "fwd_unknown", Jump: true}, {Port: 8080, Chain: "c_a"}}},
		},
		Chains: []*nft.Chain{
			{Name: "forward", Hook: nft.HookForward, Rules: []*nft.Rule{
				r("reply", to(nft.Accept, ""), nft.CtReply{}),
				{Verdict: to(nft.Jump, "fwd.network"), ID: "jump"},
			}},
			{Name: "input", Hook: nft.HookInput, Rules: []*nft.Rule{
				r("local", to(nft.Return, ""), nft.Fib{Local: true}),
				{Matches: []nft.Match{nft.IfName{Name: "br-x"}}, Counter: true, SetMark: 0x02000000, Verdict: to(nft.Return, ""), ID: "mark", Comment: "rule mark"},
				r("drop", to(nft.Drop, ""), nft.IfName{Name: "br-", Prefix: true}),
				r("by-port", nft.Verdict{Kind: nft.VMap, Target: "by_port", Key: nft.SelDPort}, nft.L4Proto{Protos: []uint8{6}}),
			}},
			{Name: "late", Hook: nft.HookForward, PriorityOffset: 1, Rules: []*nft.Rule{
				r("after", to(nft.Accept, ""), nft.CtOriginal{}, nft.L4Proto{Protos: []uint8{17}}, nft.DPort{Range: nft.PortRange{First: 53, Last: 53}}),
			}},
			{Name: "fwd.network", Rules: []*nft.Rule{
				{Counter: true, Verdict: nft.Verdict{Kind: nft.VMap, Target: "fwd_if"}, ID: "dispatch"},
				r("unknown", to(nft.Goto, "fwd_unknown"), nft.IfName{Name: "br-", Prefix: true}),
				r("marked", to(nft.Goto, "c_meter"), nft.Mark{Bits: 0x02000000}),
				r("ingress", nft.Verdict{Kind: nft.VMap, Target: "ing_if", Key: nft.SelOIfName}),
			}},
			{Name: "fwd_br-x", Rules: []*nft.Rule{
				r("nd", to(nft.Return, ""), nft.NFProto{V6: true}, nft.ICMPv6Type{Types: []uint8{135, 136}}, nft.HopLimit{Value: 255}),
				r("rs", to(nft.Drop, ""), nft.NFProto{V6: true}, nft.ICMPv6Type{Types: []uint8{133}}),
				r("spoof4", to(nft.Goto, "c_deny"), nft.Addr{Src: true, Neg: true, Prefix: pfx("172.20.0.0/16")}),
				r("spoof6", to(nft.Goto, "c_deny"), nft.Addr{V6: true, Src: true, Neg: true, Prefix: pfx("fd00:20::/64")}),
				r("fib", to(nft.Goto, "c_deny"), nft.Fib{Src: true, Missing: true}),
				r("fib-daddr", to(nft.Return, ""), nft.Fib{}),
				r("self", to(nft.Return, ""), nft.Addr{Prefix: pfx("172.20.0.0/16")}),
				r("host", to(nft.Return, ""), nft.Addr{V6: true, Prefix: pfx("fd00::1/128")}, nft.L4Proto{Protos: []uint8{6}}, nft.DPort{Range: nft.PortRange{First: 443, Last: 443}}),
				r("dns", to(nft.Return, ""), nft.Addr{Prefix: pfx("192.168.100.2/32")}, nft.L4Proto{Protos: []uint8{6, 17}}, nft.DPort{Set: "ports"}),
				r("range", to(nft.Return, ""), nft.L4Proto{Protos: []uint8{17}}, nft.DPort{Range: nft.PortRange{First: 1000, Last: 2000}}),
				r("published", to(nft.Return, ""), nft.L4Proto{Protos: []uint8{6}}, nft.CtOrigDPort{Range: nft.PortRange{First: 8080, Last: 8080}}),
				r("published-range", to(nft.Return, ""), nft.L4Proto{Protos: []uint8{6}}, nft.CtOrigDPort{Range: nft.PortRange{First: 9000, Last: 9100}}),
				r("published-set", to(nft.Return, ""), nft.L4Proto{Protos: []uint8{6, 17}}, nft.CtOrigDPort{Set: "published"}),
				r("related", to(nft.Return, ""), nft.CtRelated{}, nft.L4Proto{Protos: []uint8{1, 58}}),
				r("learned", to(nft.Accept, ""), nft.Addr{Set: "learned_4"}),
				r("by-addr", nft.Verdict{Kind: nft.VMap, Target: "by_addr", Key: nft.SelDAddr4}, nft.NFProto{}),
				r("private4", to(nft.Goto, "c_deny"), nft.Addr{Set: "l_private_4"}),
				r("private6", to(nft.Goto, "c_deny"), nft.Addr{V6: true, Set: "l_private_6"}),
				r("out", to(nft.Continue, ""), nft.IfName{Name: "eth0", Out: true}),
				r("default", to(nft.Return, "")),
			}},
			{Name: "fwd_docker0", Rules: []*nft.Rule{
				r("default", to(nft.Drop, "")),
			}},
			{Name: "fwd_unknown", Rules: []*nft.Rule{
				r("default", to(nft.Return, "")),
			}},
			{Name: "c_a", Rules: []*nft.Rule{
				r("a", to(nft.Return, ""), nft.IfName{Name: "br-x"}),
			}},
			{Name: "c_deny", Rules: []*nft.Rule{
				{Limit: 10, Log: &nft.Log{Prefix: "df c_deny ", Group: 100}, ID: "log"},
				{Matches: []nft.Match{nft.L4Proto{Protos: []uint8{6}}}, Verdict: to(nft.RejectTCPReset, ""), ID: "rst"},
				{Verdict: to(nft.RejectAdminProhibited, ""), ID: "icmpx"},
			}},
			{Name: "c_meter", Rules: []*nft.Rule{
				{Meter: &nft.Meter{Set: "meter_4", Key: nft.SelSAddr4, Rate: 10, Timeout: 10 * time.Second}, Log: &nft.Log{Prefix: "df c_meter ", Group: 100}, ID: "log4"},
				{Meter: &nft.Meter{Set: "meter_6", Key: nft.SelSAddr6, Rate: 10, Timeout: 10 * time.Second}, Log: &nft.Log{Prefix: "df c_meter ", Group: 100}, ID: "log6"},
				{Verdict: to(nft.Drop, ""), ID: "drop"},
			}},
		},
	}
}

// Changed is Sample after a change of every kind: an address set
// edited in place (one interval grows, one is new), a new set (staged), a
// set no longer used (deleted), a map element removed and one added with a
// new chain, a chain deleted, a map element pointed elsewhere, and rules
// changed in two chains.
func Changed() *nft.Table {
	t := Sample()
	pfx := netip.MustParsePrefix
	rng := func(p string) nft.Range { return nft.Range{From: pfx(p).Addr(), To: nft.LastAddr(pfx(p))} }
	t.Set("l_private_4").Ranges = []nft.Range{rng("10.0.0.0/8"), rng("100.64.0.0/10"), rng("192.168.0.0/15")}
	t.Sets = append(t.Sets, &nft.Set{Name: "new_4", Key: nft.KeyIPv4, Ranges: []nft.Range{rng("198.51.100.0/24"), rng("203.0.113.0/24")}})
	var sets []*nft.Set
	for _, s := range t.Sets {
		if s.Name != "ports" {
			sets = append(sets, s)
		}
	}
	t.Sets = sets
	t.Set("fwd_if").VMap = []nft.VMapElem{{Key: "br-x", Chain: "fwd_br-x"}, {Key: "br-y", Chain: "fwd_br-y"}}
	t.Set("by_addr").VMap = []nft.VMapElem{{Addr: netip.MustParseAddr("172.20.0.2"), Chain: "c_deny", Jump: true}}
	t.Set("by_port").VMap = []nft.VMapElem{{Port: 443, Chain: "fwd_unknown", Jump: true}, {Port: 9090, Chain: "c_deny"}}
	var chains []*nft.Chain
	for _, c := range t.Chains {
		if c.Name != "fwd_docker0" {
			chains = append(chains, c)
		}
	}
	t.Chains = append(chains, &nft.Chain{Name: "fwd_br-y", Rules: []*nft.Rule{
		{Matches: []nft.Match{nft.Addr{Set: "new_4"}}, Counter: true, Verdict: nft.Verdict{Kind: nft.Drop}, ID: "new", Comment: "rule new"},
	}})
	x := t.Chain("fwd_br-x")
	for i, r := range x.Rules {
		if r.ID == "dns" {
			x.Rules[i] = &nft.Rule{Matches: []nft.Match{nft.Addr{Prefix: pfx("192.168.100.2/32")}, nft.L4Proto{Protos: []uint8{6, 17}}, nft.DPort{Range: nft.PortRange{First: 53, Last: 53}}}, Counter: true, Verdict: nft.Verdict{Kind: nft.Return}, ID: "dns", Comment: "rule dns"}
		}
	}
	return t
}
