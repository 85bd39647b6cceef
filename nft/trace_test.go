package nft

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/ipproto"
)

var (
	addr = netip.MustParseAddr
	pfx  = netip.MustParsePrefix
)

// tcp4 is a TCP packet from a container of br-a to the internet, in the
// forward hook.
func tcp4() Packet {
	return Packet{Hook: HookForward, IIfName: "br-a", OIfName: "eth0", Src: addr("172.20.0.2"), Dst: addr("203.0.113.10"), L4Proto: ipproto.TCP, DPort: 443, HopLimit: 63}
}

// tcp6 is tcp4 in IPv6.
func tcp6() Packet {
	p := tcp4()
	p.Src, p.Dst = addr("fd00:20::2"), addr("2001:db8::10")
	return p
}

// dropIf is a table whose forward chain drops what the rule's matches
// select and accepts the rest by its policy.
func dropIf(sets []*Set, m ...Match) *Table {
	return &Table{Name: "t", Sets: sets, Chains: []*Chain{
		{Name: "forward", Hook: HookForward, Rules: []*Rule{{Matches: m, Verdict: Verdict{Kind: Drop}}}},
	}}
}

func TestTraceMatches(t *testing.T) {
	set4 := &Set{Name: "s4", Key: KeyIPv4, Ranges: Ranges([]netip.Prefix{pfx("10.0.0.0/8"), pfx("192.168.0.0/16")})}
	set6 := &Set{Name: "s6", Key: KeyIPv6, Ranges: Ranges([]netip.Prefix{pfx("fc00::/7")})}
	ports := &Set{Name: "p", Key: KeyService, Ports: []PortRange{{53, 53}, {8000, 8080}}}
	sets := []*Set{set4, set6, ports}
	with := func(p Packet, f func(*Packet)) Packet { f(&p); return p }
	tests := []struct {
		name string
		m    []Match
		p    Packet
		want bool // whether the rule matches (the packet is dropped)
	}{
		{"no matches", nil, tcp4(), true},
		{"ct reply", []Match{CtReply{}}, with(tcp4(), func(p *Packet) { p.Reply = true }), true},
		{"ct original", []Match{CtReply{}}, tcp4(), false},
		{"ct direction original", []Match{CtOriginal{}}, tcp4(), true},
		{"ct direction original of a reply", []Match{CtOriginal{}}, with(tcp4(), func(p *Packet) { p.Reply = true }), false},
		{"nfproto ipv4", []Match{NFProto{}}, tcp4(), true},
		{"nfproto ipv4 of ipv6", []Match{NFProto{}}, tcp6(), false},
		{"nfproto ipv6", []Match{NFProto{V6: true}}, tcp6(), true},
		{"nfproto: a mapped address is IPv6", []Match{NFProto{V6: true}}, with(tcp4(), func(p *Packet) { p.Src, p.Dst = addr("::ffff:172.20.0.2"), addr("::ffff:203.0.113.10") }), true},
		{"l4proto one", []Match{L4Proto{Protos: []uint8{ipproto.TCP}}}, tcp4(), true},
		{"l4proto other", []Match{L4Proto{Protos: []uint8{ipproto.UDP}}}, tcp4(), false},
		{"l4proto of several", []Match{L4Proto{Protos: []uint8{ipproto.UDP, ipproto.TCP}}}, tcp4(), true},
		{"daddr prefix", []Match{Addr{Prefix: pfx("203.0.113.0/24")}}, tcp4(), true},
		{"daddr prefix miss", []Match{Addr{Prefix: pfx("198.51.100.0/24")}}, tcp4(), false},
		{"daddr host", []Match{Addr{Prefix: pfx("203.0.113.10/32")}}, tcp4(), true},
		{"saddr prefix", []Match{Addr{Src: true, Prefix: pfx("172.20.0.0/16")}}, tcp4(), true},
		{"saddr != prefix", []Match{Addr{Src: true, Neg: true, Prefix: pfx("172.20.0.0/16")}}, tcp4(), false},
		{"saddr != prefix, outside", []Match{Addr{Src: true, Neg: true, Prefix: pfx("172.21.0.0/16")}}, tcp4(), true},
		{"ipv4 match of an ipv6 packet", []Match{Addr{Prefix: pfx("0.0.0.0/0")}}, tcp6(), false},
		{"negated ipv4 match of an ipv6 packet", []Match{Addr{Neg: true, Prefix: pfx("10.0.0.0/8")}}, tcp6(), false},
		{"ip6 daddr", []Match{Addr{V6: true, Prefix: pfx("2001:db8::/32")}}, tcp6(), true},
		{"ip6 saddr != ll", []Match{Addr{V6: true, Src: true, Neg: true, Prefix: pfx("fe80::/10")}}, tcp6(), true},
		{"ip6 saddr != ll, ll", []Match{Addr{V6: true, Src: true, Neg: true, Prefix: pfx("fe80::/10")}}, with(tcp6(), func(p *Packet) { p.Src = addr("fe80::1") }), false},
		{"daddr set", []Match{Addr{Set: "s4"}}, with(tcp4(), func(p *Packet) { p.Dst = addr("192.168.100.50") }), true},
		{"daddr set miss", []Match{Addr{Set: "s4"}}, tcp4(), false},
		{"daddr set, last address", []Match{Addr{Set: "s4"}}, with(tcp4(), func(p *Packet) { p.Dst = addr("10.255.255.255") }), true},
		{"saddr != set", []Match{Addr{Src: true, Neg: true, Set: "s4"}}, tcp4(), true},
		{"saddr != set, inside", []Match{Addr{Src: true, Neg: true, Set: "s4"}}, with(tcp4(), func(p *Packet) { p.Src = addr("10.1.1.1") }), false},
		{"ip6 daddr set", []Match{Addr{V6: true, Set: "s6"}}, with(tcp6(), func(p *Packet) { p.Dst = addr("fd00:100::50") }), true},
		{"ip6 set of an ipv4 packet", []Match{Addr{V6: true, Neg: true, Set: "s6"}}, tcp4(), false},
		{"dport", []Match{DPort{Range: PortRange{443, 443}}}, tcp4(), true},
		{"ct original proto-dst: the published port, not the DNAT'ed one", []Match{CtOrigDPort{Range: PortRange{8080, 8080}}}, with(tcp4(), func(p *Packet) { p.DPort, p.OrigDPort = 80, 8080 }), true},
		{"ct original proto-dst: not the packet's port", []Match{CtOrigDPort{Range: PortRange{80, 80}}}, with(tcp4(), func(p *Packet) { p.DPort, p.OrigDPort = 80, 8080 }), false},
		{"ct original proto-dst without DNAT", []Match{CtOrigDPort{Range: PortRange{443, 443}}}, tcp4(), true},
		{"ct original proto-dst range", []Match{CtOrigDPort{Range: PortRange{8000, 8100}}}, with(tcp4(), func(p *Packet) { p.OrigDPort = 8100 }), true},
		{"ct original proto-dst set", []Match{CtOrigDPort{Set: "p"}}, with(tcp4(), func(p *Packet) { p.DPort, p.OrigDPort = 80, 8001 }), true},
		{"ct original proto-dst set miss", []Match{CtOrigDPort{Set: "p"}}, with(tcp4(), func(p *Packet) { p.DPort, p.OrigDPort = 53, 80 }), false},
		{"ct original proto-dst of an untracked packet", []Match{CtOrigDPort{Range: PortRange{443, 443}}}, with(tcp4(), func(p *Packet) { p.Untracked = true }), false},
		{"oifname", []Match{IfName{Name: "eth0", Out: true}}, tcp4(), true},
		{"ct state related", []Match{CtRelated{}}, with(tcp4(), func(p *Packet) { p.Related = true }), true},
		{"ct state related, not related", []Match{CtRelated{}}, tcp4(), false},
		{"dport miss", []Match{DPort{Range: PortRange{80, 80}}}, tcp4(), false},
		{"dport range low edge", []Match{DPort{Range: PortRange{443, 500}}}, tcp4(), true},
		{"dport range high edge", []Match{DPort{Range: PortRange{400, 443}}}, tcp4(), true},
		{"dport range below", []Match{DPort{Range: PortRange{444, 500}}}, tcp4(), false},
		{"dport set", []Match{DPort{Set: "p"}}, with(tcp4(), func(p *Packet) { p.DPort = 8080 }), true},
		{"dport set, single", []Match{DPort{Set: "p"}}, with(tcp4(), func(p *Packet) { p.DPort = 53 }), true},
		{"dport set miss", []Match{DPort{Set: "p"}}, with(tcp4(), func(p *Packet) { p.DPort = 8081 }), false},
		{"iifname", []Match{IfName{Name: "br-a"}}, tcp4(), true},
		{"iifname is not a prefix", []Match{IfName{Name: "br-"}}, tcp4(), false},
		{"iifname longer", []Match{IfName{Name: "br-ab"}}, tcp4(), false},
		{"iifname prefix", []Match{IfName{Name: "br-", Prefix: true}}, tcp4(), true},
		{"iifname prefix miss", []Match{IfName{Name: "docker", Prefix: true}}, tcp4(), false},
		{"oifname", []Match{IfName{Name: "eth0", Out: true}}, tcp4(), true},
		{"ct state related", []Match{CtRelated{}}, with(tcp4(), func(p *Packet) { p.Related = true }), true},
		{"ct state related, not related", []Match{CtRelated{}}, tcp4(), false},
		{"oifname without one", []Match{IfName{Name: "eth0", Out: true}}, with(tcp4(), func(p *Packet) { p.OIfName = "" }), false},
		{"fib saddr missing", []Match{Fib{Src: true, Missing: true}}, tcp4(), true},
		{"fib saddr missing, routed", []Match{Fib{Src: true, Missing: true}}, with(tcp4(), func(p *Packet) { p.Fib.SrcViaIIf = true }), false},
		{"fib saddr exists", []Match{Fib{Src: true}}, with(tcp4(), func(p *Packet) { p.Fib.SrcViaIIf = true }), true},
		{"fib daddr exists", []Match{Fib{}}, with(tcp4(), func(p *Packet) { p.Fib.DstViaIIf = true }), true},
		{"fib daddr exists, not routed", []Match{Fib{}}, with(tcp4(), func(p *Packet) { p.Fib.SrcViaIIf = true }), false},
		{"fib daddr missing", []Match{Fib{Missing: true}}, tcp4(), true},
		{"fib local", []Match{Fib{Local: true}}, with(tcp4(), func(p *Packet) { p.Fib.DstLocal = true }), true},
		{"fib local, routed only", []Match{Fib{Local: true}}, with(tcp4(), func(p *Packet) { p.Fib.DstViaIIf = true }), false},
		{"icmpv6 type", []Match{ICMPv6Type{Types: []uint8{135, 136}}}, with(tcp6(), func(p *Packet) { p.L4Proto, p.ICMPType = ipproto.ICMPv6, 136 }), true},
		{"icmpv6 other type", []Match{ICMPv6Type{Types: []uint8{135, 136}}}, with(tcp6(), func(p *Packet) { p.L4Proto, p.ICMPType = ipproto.ICMPv6, 128 }), false},
		{"icmpv6 type of icmp", []Match{ICMPv6Type{Types: []uint8{135}}}, with(tcp4(), func(p *Packet) { p.L4Proto, p.ICMPType = ipproto.ICMP, 135 }), false},
		{"icmpv6 type: the protocol counts, not the family", []Match{ICMPv6Type{Types: []uint8{135}}}, with(tcp4(), func(p *Packet) { p.L4Proto, p.ICMPType = ipproto.ICMPv6, 135 }), true},
		{"hoplimit", []Match{HopLimit{Value: 255}}, with(tcp6(), func(p *Packet) { p.HopLimit = 255 }), true},
		{"hoplimit other", []Match{HopLimit{Value: 255}}, tcp6(), false},
		{"hoplimit of ipv4 reads the fragment offset", []Match{HopLimit{Value: 255}}, with(tcp4(), func(p *Packet) { p.HopLimit = 255 }), false},
		{"hoplimit 0 of ipv4", []Match{HopLimit{Value: 0}}, tcp4(), true},
		{"udp length at least", []Match{UDPLength{Min: 25}}, with(tcp4(), func(p *Packet) { p.L4Proto, p.UDPLength = ipproto.UDP, 25 }), true},
		{"udp length longer", []Match{UDPLength{Min: 25}}, with(tcp6(), func(p *Packet) { p.L4Proto, p.UDPLength = ipproto.UDP, 512 }), true},
		{"udp length shorter", []Match{UDPLength{Min: 25}}, with(tcp4(), func(p *Packet) { p.L4Proto, p.UDPLength = ipproto.UDP, 24 }), false},
		{"udp length unknown", []Match{UDPLength{Min: 25}}, tcp4(), false},
		{"all must hold", []Match{NFProto{}, L4Proto{Protos: []uint8{ipproto.TCP}}, DPort{Range: PortRange{80, 80}}}, tcp4(), false},
		{"all hold", []Match{NFProto{}, L4Proto{Protos: []uint8{ipproto.TCP}}, DPort{Range: PortRange{443, 443}}, IfName{Name: "br-a"}}, tcp4(), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := dropIf(sets, tt.m...).Trace(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			want := Accept
			if tt.want {
				want = Drop
			}
			if tr.Verdict != want || tr.Policy == tt.want {
				t.Errorf("verdict %v (policy %v), want %v\n%s", tr.Verdict, tr.Policy, want, tr)
			}
			if len(tr.Steps) != 1 || tr.Steps[0].Matched != tt.want || tr.Steps[0].Chain != "forward" {
				t.Errorf("steps %+v, want one of forward, matched %v", tr.Steps, tt.want)
			}
		})
	}
}

// rule is a shorthand for a rule with matches and a verdict.
func rule(v Verdict, m ...Match) *Rule { return &Rule{Matches: m, Verdict: v, Counter: true} }

var (
	accept = Verdict{Kind: Accept}
	drop   = Verdict{Kind: Drop}
	ret    = Verdict{Kind: Return}
)

func jump(c string) Verdict  { return Verdict{Kind: Jump, Target: c} }
func gotoC(c string) Verdict { return Verdict{Kind: Goto, Target: c} }

func TestTraceVerdicts(t *testing.T) {
	isUDP := L4Proto{Protos: []uint8{ipproto.UDP}}
	isTCP := L4Proto{Protos: []uint8{ipproto.TCP}}
	base := func(h Hook, rules ...*Rule) *Chain {
		name := map[Hook]string{HookForward: "forward", HookInput: "input"}[h]
		return &Chain{Name: name, Hook: h, Rules: rules}
	}
	chain := func(name string, rules ...*Rule) *Chain { return &Chain{Name: name, Rules: rules} }
	udp := func(p Packet) Packet { p.L4Proto = ipproto.UDP; return p }
	tests := []struct {
		name   string
		chains []*Chain
		sets   []*Set
		p      Packet
		want   VerdictKind
		policy bool
		// steps is the trace's String, when given.
		steps string
	}{
		{
			name: "empty table: nothing hooks the packet",
			p:    tcp4(),
			want: Accept, policy: true,
		},
		{
			name:   "empty base chain: policy accept",
			chains: []*Chain{base(HookForward)},
			p:      tcp4(), want: Accept, policy: true,
		},
		{
			name:   "accept rule",
			chains: []*Chain{base(HookForward, rule(Verdict{}, isUDP), rule(accept), rule(drop))},
			p:      tcp4(), want: Accept,
			steps: "forward 0 no\nforward 1 yes accept\naccept",
		},
		{
			name:   "counter, log and limit go on",
			chains: []*Chain{base(HookForward, &Rule{Counter: true}, &Rule{Limit: 1, Log: &Log{Prefix: "x "}}, rule(drop))},
			p:      tcp4(), want: Drop,
			steps: "forward 0 yes\nforward 1 yes\nforward 2 yes drop\ndrop",
		},
		{
			name: "base chains by priority, then in the table's order",
			chains: []*Chain{
				{Name: "late", Hook: HookForward, PriorityOffset: 1, Rules: []*Rule{rule(drop)}},
				{Name: "first", Hook: HookForward, Rules: []*Rule{rule(accept)}},
				{Name: "second", Hook: HookForward, Rules: []*Rule{rule(Verdict{}, isUDP)}},
			},
			p: tcp4(), want: Drop,
			steps: "first 0 yes accept\nsecond 0 no\nlate 0 yes drop\ndrop",
		},
		{
			name:   "other hook's base chain does not judge",
			chains: []*Chain{base(HookInput, rule(drop))},
			p:      tcp4(), want: Accept, policy: true,
		},
		{
			name:   "accept ends one base chain, the next one judges",
			chains: []*Chain{base(HookForward, rule(accept)), {Name: "forward2", Hook: HookForward, Rules: []*Rule{rule(drop)}}},
			p:      tcp4(), want: Drop,
			steps: "forward 0 yes accept\nforward2 0 yes drop\ndrop",
		},
		{
			name:   "drop is final",
			chains: []*Chain{base(HookForward, rule(drop)), {Name: "forward2", Hook: HookForward, Rules: []*Rule{rule(accept)}}},
			p:      tcp4(), want: Drop,
			steps: "forward 0 yes drop\ndrop",
		},
		{
			name:   "reject tcp reset",
			chains: []*Chain{base(HookForward, rule(Verdict{Kind: RejectTCPReset}, isTCP), rule(Verdict{Kind: RejectAdminProhibited}))},
			p:      tcp4(), want: RejectTCPReset,
		},
		{
			name:   "reject admin-prohibited of udp",
			chains: []*Chain{base(HookForward, rule(Verdict{Kind: RejectTCPReset}, isTCP), rule(Verdict{Kind: RejectAdminProhibited}))},
			p:      udp(tcp4()), want: RejectAdminProhibited,
		},
		{
			name:   "tcp reset of udp drops",
			chains: []*Chain{base(HookForward, rule(Verdict{Kind: RejectTCPReset}))},
			p:      udp(tcp4()), want: Drop,
		},
		{
			name: "jump and return",
			chains: []*Chain{
				base(HookForward, rule(jump("a")), rule(drop)),
				chain("a", rule(ret), rule(accept)),
			},
			p: tcp4(), want: Drop,
			steps: "forward 0 yes jump a\na 0 yes return\nforward 1 yes drop\ndrop",
		},
		{
			name: "end of a jumped-to chain returns",
			chains: []*Chain{
				base(HookForward, rule(jump("a")), rule(drop, isTCP)),
				chain("a", rule(accept, isUDP)),
			},
			p: udp(tcp4()), want: Accept,
			steps: "forward 0 yes jump a\na 0 yes accept\naccept",
		},
		{
			name: "end of a jumped-to chain returns, then policy",
			chains: []*Chain{
				base(HookForward, rule(jump("a")), rule(drop, isUDP)),
				chain("a", rule(accept, isUDP)),
			},
			p: tcp4(), want: Accept, policy: true,
			steps: "forward 0 yes jump a\na 0 no\nforward 1 no\naccept (policy)",
		},
		{
			name: "return in a base chain: policy",
			chains: []*Chain{
				base(HookForward, rule(ret), rule(drop)),
			},
			p: tcp4(), want: Accept, policy: true,
		},
		{
			name: "goto does not come back: its return goes to the last jump's caller",
			chains: []*Chain{
				base(HookForward, rule(jump("a")), rule(drop)),
				chain("a", rule(gotoC("b")), rule(accept)),
				chain("b", rule(ret)),
			},
			p: tcp4(), want: Drop,
			steps: "forward 0 yes jump a\na 0 yes goto b\nb 0 yes return\nforward 1 yes drop\ndrop",
		},
		{
			name: "goto from the base chain: the end is the policy",
			chains: []*Chain{
				base(HookForward, rule(gotoC("a")), rule(drop)),
				chain("a"),
			},
			p: tcp4(), want: Accept, policy: true,
		},
		{
			name: "nested jumps return in order",
			chains: []*Chain{
				base(HookForward, rule(jump("a")), rule(drop, isUDP), rule(accept)),
				chain("a", rule(jump("b")), rule(gotoC("c"))),
				chain("b", rule(ret)),
				chain("c", rule(drop, isTCP)),
			},
			p: udp(tcp4()), want: Drop,
			steps: "forward 0 yes jump a\na 0 yes jump b\nb 0 yes return\na 1 yes goto c\nc 0 no\nforward 1 yes drop\ndrop",
		},
		{
			name: "the same chain twice",
			chains: []*Chain{
				base(HookForward, rule(jump("a")), rule(jump("a")), rule(accept)),
				chain("a", &Rule{Counter: true}),
			},
			p: tcp4(), want: Accept,
			steps: "forward 0 yes jump a\na 0 yes\nforward 1 yes jump a\na 0 yes\nforward 2 yes accept\naccept",
		},
		{
			name: "vmap by iifname: goto",
			chains: []*Chain{
				base(HookForward, rule(jump("l")), rule(accept)),
				chain("l", rule(Verdict{Kind: VMap, Target: "m"}), rule(drop)),
				chain("x", rule(ret)),
			},
			sets: []*Set{{Name: "m", Key: KeyIfName, Map: true, VMap: []VMapElem{{Key: "br-a", Chain: "x"}, {Key: "br-b", Chain: "l"}}}},
			p:    tcp4(), want: Accept,
			steps: "forward 0 yes jump l\nl 0 yes \"br-a\" : goto x\nx 0 yes return\nforward 1 yes accept\naccept",
		},
		{
			name: "vmap by iifname: jump",
			chains: []*Chain{
				base(HookForward, rule(jump("l")), rule(accept)),
				chain("l", rule(Verdict{Kind: VMap, Target: "m"}), rule(drop)),
				chain("x", rule(ret)),
			},
			sets: []*Set{{Name: "m", Key: KeyIfName, Map: true, VMap: []VMapElem{{Key: "br-a", Chain: "x", Jump: true}}}},
			p:    tcp4(), want: Drop,
			steps: "forward 0 yes jump l\nl 0 yes \"br-a\" : jump x\nx 0 yes return\nl 1 yes drop\ndrop",
		},
		{
			name: "vmap miss: the next rule",
			chains: []*Chain{
				base(HookForward, rule(Verdict{Kind: VMap, Target: "m"}), rule(drop)),
				chain("x", rule(accept)),
			},
			sets: []*Set{{Name: "m", Key: KeyIfName, Map: true, VMap: []VMapElem{{Key: "br-b", Chain: "x"}}}},
			p:    tcp4(), want: Drop,
			steps: "forward 0 no\nforward 1 yes drop\ndrop",
		},
		{
			name: "vmap after a match that fails",
			chains: []*Chain{
				base(HookForward, rule(Verdict{Kind: VMap, Target: "m"}, isUDP)),
				chain("x", rule(drop)),
			},
			sets: []*Set{{Name: "m", Key: KeyIfName, Map: true, VMap: []VMapElem{{Key: "br-a", Chain: "x"}}}},
			p:    tcp4(), want: Accept, policy: true,
		},
		{
			name: "vmap by oifname",
			chains: []*Chain{
				base(HookForward, rule(Verdict{Kind: VMap, Target: "m", Key: SelOIfName})),
				chain("x", rule(drop)),
			},
			sets: []*Set{{Name: "m", Key: KeyIfName, Map: true, VMap: []VMapElem{{Key: "br-a", Chain: "l"}, {Key: "eth0", Chain: "x"}}}},
			p:    tcp4(), want: Drop,
		},
		{
			name: "vmap by source address",
			chains: []*Chain{
				base(HookForward, rule(Verdict{Kind: VMap, Target: "m", Key: SelSAddr4}, NFProto{})),
				chain("x", rule(drop)),
			},
			sets: []*Set{{Name: "m", Key: KeyIPv4, Map: true, VMap: []VMapElem{{Addr: addr("172.20.0.2"), Chain: "x"}}}},
			p:    tcp4(), want: Drop,
		},
		{
			name: "vmap by destination address",
			chains: []*Chain{
				base(HookForward, rule(Verdict{Kind: VMap, Target: "m", Key: SelDAddr4}, NFProto{})),
				chain("x", rule(drop)),
			},
			sets: []*Set{{Name: "m", Key: KeyIPv4, Map: true, VMap: []VMapElem{{Addr: addr("172.20.0.2"), Chain: "x"}}}},
			p:    tcp4(), want: Accept, policy: true,
		},
		{
			name: "vmap by ipv6 address, family matched first",
			chains: []*Chain{
				base(HookForward, rule(Verdict{Kind: VMap, Target: "m4", Key: SelDAddr4}, NFProto{}), rule(Verdict{Kind: VMap, Target: "m6", Key: SelDAddr6}, NFProto{V6: true})),
				chain("x", rule(drop)),
			},
			sets: []*Set{
				{Name: "m4", Key: KeyIPv4, Map: true},
				{Name: "m6", Key: KeyIPv6, Map: true, VMap: []VMapElem{{Addr: addr("2001:db8::10"), Chain: "x", Jump: true}}},
			},
			p: tcp6(), want: Drop,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := &Table{Name: "t", Sets: tt.sets, Chains: tt.chains}
			tr, err := tbl.Trace(tt.p)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Verdict != tt.want || tr.Policy != tt.policy {
				t.Errorf("verdict %v policy %v, want %v policy %v\n%s", tr.Verdict, tr.Policy, tt.want, tt.policy, tr)
			}
			if tt.steps != "" && tr.String() != tt.steps {
				t.Errorf("trace:\n%s\nwant:\n%s", tr, tt.steps)
			}
			for _, s := range tr.Steps {
				if c := tbl.Chain(s.Chain); c == nil || s.Index >= len(c.Rules) || c.Rules[s.Index] != s.Rule {
					t.Errorf("step %+v does not name its rule", s)
				}
			}
			if got, want := len(tr.Matched()), strings.Count(tr.String(), " yes"); got != want {
				t.Errorf("%d steps matched, want %d", got, want)
			}
		})
	}
}

func TestTraceErrors(t *testing.T) {
	base := func(rules ...*Rule) *Chain { return &Chain{Name: "forward", Hook: HookForward, Rules: rules} }
	chain := func(name string, rules ...*Rule) *Chain { return &Chain{Name: name, Rules: rules} }
	deep := []*Chain{base(rule(jump("c0")))}
	for i := range maxJumpDepth + 1 {
		deep = append(deep, chain("c"+string(rune('a'+i)), rule(jump("c"+string(rune('a'+i+1))))))
	}
	deep[0].Rules[0] = rule(jump("ca"))
	tests := []struct {
		name   string
		chains []*Chain
		sets   []*Set
		p      Packet
		want   string
	}{
		{name: "no hook", p: Packet{Src: addr("10.0.0.1"), Dst: addr("10.0.0.2")}, want: "no hook"},
		{name: "no source", p: Packet{Hook: HookForward, Dst: addr("10.0.0.2")}, want: "not addresses of one family"},
		{name: "two families", p: Packet{Hook: HookForward, Src: addr("10.0.0.1"), Dst: addr("2001:db8::1")}, want: "not addresses of one family"},
		{name: "no such chain", chains: []*Chain{base(rule(jump("nope")))}, p: tcp4(), want: `no chain "nope"`},
		{name: "jump to a base chain", chains: []*Chain{base(rule(jump("input"))), {Name: "input", Hook: HookInput}}, p: tcp4(), want: "is a base chain"},
		{name: "goto loop", chains: []*Chain{base(rule(gotoC("a"))), chain("a", rule(gotoC("b"))), chain("b", rule(gotoC("a")))}, p: tcp4(), want: "goto a makes a loop"},
		{name: "jump loop", chains: []*Chain{base(rule(jump("a"))), chain("a", rule(gotoC("b"))), chain("b", rule(jump("a")))}, p: tcp4(), want: "jump a makes a loop"},
		{name: "self", chains: []*Chain{base(rule(jump("a"))), chain("a", rule(gotoC("a")))}, p: tcp4(), want: "goto a makes a loop"},
		{name: "too deep", chains: deep, p: tcp4(), want: "deeper than 16 jumps"},
		{name: "no such set", chains: []*Chain{base(rule(drop, Addr{Set: "nope"}))}, p: tcp4(), want: `no set "nope"`},
		{name: "set of the wrong type", chains: []*Chain{base(rule(drop, DPort{Set: "s"}))}, sets: []*Set{{Name: "s", Key: KeyIPv4}}, p: tcp4(), want: "keys of type ipv4_addr, not inet_service"},
		{name: "a map as a set", chains: []*Chain{base(rule(drop, Addr{Set: "m"}))}, sets: []*Set{{Name: "m", Key: KeyIPv4, Map: true}}, p: tcp4(), want: `"m" is not a set`},
		{name: "a set as a map", chains: []*Chain{base(rule(Verdict{Kind: VMap, Target: "s"}))}, sets: []*Set{{Name: "s", Key: KeyIfName}}, p: tcp4(), want: `"s" is not a map`},
		{name: "no such map", chains: []*Chain{base(rule(Verdict{Kind: VMap, Target: "m"}))}, p: tcp4(), want: `no map "m"`},
		{name: "map element without a chain", chains: []*Chain{base(rule(Verdict{Kind: VMap, Target: "m"}))}, sets: []*Set{{Name: "m", Key: KeyIfName, Map: true, VMap: []VMapElem{{Key: "br-a"}}}}, p: tcp4(), want: `no chain ""`},
		{name: "address map of the other family", chains: []*Chain{base(rule(Verdict{Kind: VMap, Target: "m", Key: SelSAddr4}))}, sets: []*Set{{Name: "m", Key: KeyIPv4, Map: true}}, p: tcp6(), want: "match the family first"},
		{name: "prefix of the wrong family", chains: []*Chain{base(rule(drop, Addr{Prefix: pfx("2001:db8::/32")}))}, p: tcp4(), want: "wrong family"},
		{name: "no prefix", chains: []*Chain{base(rule(drop, Addr{}))}, p: tcp4(), want: "wrong family"},
		{name: "nil match", chains: []*Chain{base(rule(drop, nil))}, p: tcp4(), want: "unknown match"},
		{name: "unknown verdict", chains: []*Chain{base(rule(Verdict{Kind: 99}))}, p: tcp4(), want: "unknown verdict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := (&Table{Name: "t", Sets: tt.sets, Chains: tt.chains}).Trace(tt.p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q; trace:\n%v", err, tt.want, tr)
			}
		})
	}
	// 16 jumps deep is as deep as the kernel goes.
	ok := append([]*Chain(nil), deep[:maxJumpDepth+1]...)
	ok[maxJumpDepth] = chain(ok[maxJumpDepth].Name, rule(drop))
	if tr, err := (&Table{Name: "t", Chains: ok}).Trace(tcp4()); err != nil || tr.Verdict != Drop {
		t.Errorf("16 jumps deep: %v, %v", tr, err)
	}
}
