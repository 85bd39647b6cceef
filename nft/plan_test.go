package nft_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	. "github.com/dockerfence/dockerfence/nft"

	"github.com/dockerfence/dockerfence/policy"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/nftables"
)

// planSummary is changes with chains, sets and elements as text, for comparing.
type planSummary struct {
	Stage, Flush, DelSets, DelChains, AddChains, AddSets, Fill []string
	DelElems, AddElems                                         []string // "set: element"
}

func summarize(c *Changes) planSummary {
	var s planSummary
	names := func(dst *[]string, chains []*Chain) {
		for _, ch := range chains {
			*dst = append(*dst, ch.Name)
		}
	}
	sets := func(dst *[]string, sets []*Set) {
		for _, st := range sets {
			*dst = append(*dst, st.Name)
		}
	}
	elems := func(dst *[]string, es []SetElems) {
		for _, m := range es {
			for _, e := range m.Elems {
				*dst = append(*dst, m.Set+": "+elemText(e))
			}
		}
	}
	maps := func(dst *[]string, ms []MapElems) {
		for _, m := range ms {
			for _, e := range m.Elems {
				*dst = append(*dst, m.Set+": "+VMapElemText(e))
			}
		}
	}
	sets(&s.Stage, c.Stage)
	s.Flush, s.DelSets, s.DelChains = c.Flush, c.DelSets, c.DelChains
	maps(&s.DelElems, c.DelMapElems)
	elems(&s.DelElems, c.DelElems)
	names(&s.AddChains, c.AddChains)
	sets(&s.AddSets, c.AddSets)
	elems(&s.AddElems, c.AddElems)
	maps(&s.AddElems, c.AddMapElems)
	names(&s.Fill, c.Fill)
	return s
}

// elemText renders an address element for test output: "10.0.0.0" or "11.0.0.0 end".
func elemText(e nftables.SetElement) string {
	a, _ := netip.AddrFromSlice(e.Key)
	if e.IntervalEnd {
		return a.String() + " end"
	}
	return a.String()
}

func TestChanges(t *testing.T) {
	def := loadPolicy(t, "")
	// A network with two IPv4 subnets has them in a set.
	two := testNetworks[1]
	two.Subnets = prefixes("172.20.0.0/16", "172.22.0.0/16", "fd00:20::/64")
	moved := two
	moved.Subnets = prefixes("172.20.0.0/16", "172.24.0.0/16", "fd00:20::/64")
	other := policy.Network{Name: "other", Bridge: "br-other", Subnets: prefixes("172.31.0.0/16")}
	tighter := loadPolicy(t, "")
	tighter.Sections[0].ByHook[policy.Egress].Default = policy.Deny
	app4 := "net_br-0123456789ab_4"
	appChains := []string{"fwd_br-0123456789ab", "in_br-0123456789ab"}
	otherChains := []string{"fwd_br-other", "fwd_br-other.spoof", "fwd_br-other.e3", "fwd_br-other.e4", "in_br-other", "in_br-other.spoof", "in_br-other.tunnel-endpoint"}

	tests := []struct {
		name     string
		from, to *Table
		// edit changes the kernel state before planning; dump says whether
		// the sets needDump names are dumped, as Apply does.
		edit      func(*State)
		noDump    bool
		want      planSummary
		wantEmpty bool
	}{{
		name:      "nothing changed",
		from:      Build(def, testNetworks),
		to:        Build(def, testNetworks),
		wantEmpty: true,
	}, {
		// A new network adds its chains and its map elements; the base
		// chains and the other networks stay untouched.
		name: "network created",
		from: Build(def, testNetworks),
		to:   Build(def, append(testNetworks[:2:2], other)),
		want: planSummary{
			AddChains: otherChains,
			AddElems:  []string{`fwd_if: "br-other" : goto fwd_br-other`, `in_if: "br-other" : goto in_br-other`},
			Fill:      otherChains,
		},
	}, {
		name: "network removed",
		from: Build(def, append(testNetworks[:2:2], other)),
		to:   Build(def, testNetworks),
		want: planSummary{
			Flush:     otherChains,
			DelElems:  []string{`fwd_if: "br-other" : goto fwd_br-other`, `in_if: "br-other" : goto in_br-other`},
			DelChains: otherChains,
		},
	}, {
		// Compose recreates a network with another subnet on the same
		// bridge name: the subnet set is edited in place, the element the
		// old and new sets share untouched; the chains that look it up are
		// refilled to record its new digest.
		name: "set elements change",
		from: Build(def, []policy.Network{testNetworks[0], two}),
		to:   Build(def, []policy.Network{testNetworks[0], moved}),
		want: planSummary{
			Flush:    appChains,
			DelElems: []string{app4 + ": 172.22.0.0", app4 + ": 172.23.0.0 end"},
			AddElems: []string{app4 + ": 172.24.0.0", app4 + ": 172.25.0.0 end"},
			Fill:     appChains,
		},
	}, {
		// Without the dump, the set cannot be edited, and is replaced.
		name:   "set not dumped",
		from:   Build(def, []policy.Network{testNetworks[0], two}),
		to:     Build(def, []policy.Network{testNetworks[0], moved}),
		noDump: true,
		want: planSummary{
			Flush:   appChains,
			DelSets: []string{app4},
			AddSets: []string{app4},
			Fill:    appChains,
		},
	}, {
		// A set that did not exist is staged before the main transaction.
		name: "new set",
		from: Build(def, testNetworks),
		to:   Build(def, []policy.Network{testNetworks[0], two}),
		want: planSummary{
			Stage: []string{app4},
			Flush: appChains,
			Fill:  appChains,
		},
	}, {
		name: "set no longer used",
		from: Build(def, []policy.Network{testNetworks[0], two}),
		to:   Build(def, testNetworks),
		want: planSummary{
			Flush:   appChains,
			DelSets: []string{app4},
			Fill:    appChains,
		},
	}, {
		name: "one rule changed",
		from: Build(def, testNetworks),
		to:   Build(tighter, testNetworks),
		want: planSummary{
			Flush:     []string{"fwd_br-0123456789ab", "fwd_docker0", "fwd_unknown"},
			AddChains: []string{"fwd_br-0123456789ab.default", "fwd_docker0.default", "fwd_unknown.default"},
			Fill:      []string{"fwd_br-0123456789ab", "fwd_br-0123456789ab.default", "fwd_docker0", "fwd_docker0.default", "fwd_unknown", "fwd_unknown.default"},
		},
	}, {
		// A map that is not ours (no comment) is replaced whole, and the
		// chains that look it up are refilled.
		name: "foreign map",
		from: Build(def, testNetworks),
		to:   Build(def, testNetworks),
		edit: func(st *State) {
			for i := range st.Sets {
				if st.Sets[i].Name == "fwd_if" {
					st.Sets[i].Comment = ""
				}
			}
		},
		want: planSummary{
			Flush:   []string{"fwd.network"},
			DelSets: []string{"fwd_if"},
			AddSets: []string{"fwd_if"},
			Fill:    []string{"fwd.network"},
		},
	}, {
		// The map is gone (deleted by hand) while a network is new: the
		// map comes back in the main transaction, after the chains its
		// elements go to; staging it would refer to chains not there yet.
		name: "map missing, network new",
		from: Build(def, testNetworks),
		to:   Build(def, append(testNetworks[:2:2], other)),
		edit: func(st *State) {
			// The kernel deletes a map only once no rule looks it up.
			st.Sets = slices.DeleteFunc(st.Sets, func(s SetState) bool { return s.Name == "fwd_if" })
			for i := range st.Chains {
				if st.Chains[i].Name == "fwd.network" {
					st.Chains[i].Rules = nil
				}
			}
		},
		want: planSummary{
			Flush:     []string{"fwd.network"},
			AddChains: otherChains,
			AddSets:   []string{"fwd_if"},
			AddElems:  []string{`in_if: "br-other" : goto in_br-other`},
			Fill:      append([]string{"fwd.network"}, otherChains...),
		},
	}, {
		// Another process added an element to a set; the rules' digests
		// still match, so only a verified (dumped) set shows it.
		name: "foreign element in a verified set",
		from: Build(def, []policy.Network{testNetworks[0], two}),
		to:   Build(def, []policy.Network{testNetworks[0], two}),
		edit: func(st *State) {
			for i := range st.Sets {
				if st.Sets[i].Name == app4 {
					_, st.Sets[i].Elems = KernelSet(nil, Build(def, []policy.Network{testNetworks[0], two}).Set(app4))
					st.Sets[i].Elems = append(st.Sets[i].Elems, nftables.SetElement{Key: []byte{0, 0, 0, 0}})
					st.Sets[i].Dumped = true
				}
			}
		},
		want: planSummary{DelElems: []string{app4 + ": 0.0.0.0"}},
	}, {
		// Someone adds a rule to a chain and an element to a map.
		name: "tampered",
		from: Build(def, testNetworks),
		to:   Build(def, testNetworks),
		edit: func(st *State) {
			for i := range st.Sets {
				if st.Sets[i].Name == "fwd_if" {
					st.Sets[i].VMap = append(st.Sets[i].VMap, VMapElem{Key: "eth0", Chain: "fwd_docker0"})
				}
			}
			for i := range st.Chains {
				if st.Chains[i].Name == "fwd_docker0" {
					st.Chains[i].Rules = append(st.Chains[i].Rules, RuleState{Handle: 99})
				}
			}
		},
		want: planSummary{
			Flush:    []string{"fwd_docker0"},
			DelElems: []string{`fwd_if: "eth0" : goto fwd_docker0`},
			Fill:     []string{"fwd_docker0"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := stateOf(tt.from)
			if tt.edit != nil {
				tt.edit(st)
			}
			if !BaseChainsMatch(tt.to, st) {
				t.Fatal("base chains do not match")
			}
			if !tt.noDump {
				dump(st, tt.from, NeedDump(tt.to, st, SetDigests(tt.to)))
			}
			c := PlanChanges(tt.to, st, SetDigests(tt.to))
			if c.Empty() != tt.wantEmpty {
				t.Fatalf("empty() = %v, want %v: %+v", c.Empty(), tt.wantEmpty, summarize(c))
			}
			if got := Diff(tt.to, st); (len(got) == 0) != tt.wantEmpty {
				t.Errorf("Diff = %q, but changes.Empty() = %v", got, c.Empty())
			}
			if tt.wantEmpty {
				return
			}
			if diff := cmp.Diff(tt.want, summarize(c), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			// Whatever changes, our maps are never replaced and the base
			// chains never re-created.
			for _, name := range c.DelSets {
				if strings.HasSuffix(name, "_if") && tt.edit == nil {
					t.Errorf("map %s replaced", name)
				}
			}
			for _, ch := range c.AddChains {
				if ch.Hook != HookNone {
					t.Errorf("base chain %s re-created", ch.Name)
				}
			}
		})
	}
}

func TestElemDiff(t *testing.T) {
	set := func(ss ...string) *Set {
		var rs []Range
		for _, s := range ss {
			p := netip.MustParsePrefix(s)
			rs = append(rs, Range{From: p.Addr(), To: LastAddr(p)})
		}
		return &Set{Name: "s", Key: KeyIPv4, Ranges: rs}
	}
	diff := func(have, want *Set) []string {
		_, h := KernelSet(nil, have)
		// A dump lists the elements in descending order.
		slices.Reverse(h)
		_, w := KernelSet(nil, want)
		del, add := ElemDiff(h, w)
		var got []string
		for _, e := range del {
			got = append(got, "-"+elemText(e))
		}
		for _, e := range add {
			got = append(got, "+"+elemText(e))
		}
		return got
	}
	tests := []struct {
		name       string
		have, want *Set
		diff       []string
	}{
		{
			name: "a range that grows is deleted and added whole; deletions in key order",
			have: set("10.0.0.0/8", "192.168.0.0/17"), want: set("0.0.0.0/1", "192.168.0.0/16"),
			diff: []string{"-10.0.0.0", "-11.0.0.0 end", "-192.168.0.0", "-192.168.128.0 end", "+0.0.0.0", "+128.0.0.0 end", "+192.168.0.0", "+192.169.0.0 end"},
		},
		{
			// Deleting just the start of the first and the end of the
			// second, as the same ends stay, is what the kernel refuses.
			name: "one range's start moves, another's end",
			have: set("10.0.0.0/31", "10.2.0.0/16"), want: set("10.0.0.1/32", "10.2.0.0/15"),
			diff: []string{"-10.0.0.0", "-10.0.0.2 end", "-10.2.0.0", "-10.3.0.0 end", "+10.0.0.1", "+10.0.0.2 end", "+10.2.0.0", "+10.4.0.0 end"},
		},
		{
			name: "ranges in both are left alone",
			have: set("10.0.0.0/8", "172.16.0.0/12"), want: set("10.0.0.0/8", "192.168.0.0/16"),
			diff: []string{"-172.16.0.0", "-172.32.0.0 end", "+192.168.0.0", "+192.169.0.0 end"},
		},
		{
			name: "a range to the end of the key space has no end",
			have: set("10.0.0.0/8", "128.0.0.0/1"), want: set("10.0.0.0/8", "192.0.0.0/2"),
			diff: []string{"-128.0.0.0", "+192.0.0.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.diff, diff(tt.have, tt.want)); d != "" {
				t.Errorf("elemDiff (-want +got):\n%s", d)
			}
		})
	}
}

func TestBaseChainsMatch(t *testing.T) {
	tbl := Build(loadPolicy(t, ""), testNetworks)
	st := stateOf(tbl)
	if !BaseChainsMatch(tbl, st) {
		t.Fatal("own state does not match")
	}
	tbl.Priority = -20
	if BaseChainsMatch(tbl, st) {
		t.Error("a priority change matches")
	}
	tbl.Priority = st.Chains[0].Priority
	tbl.Chains[0].PriorityOffset = 1
	if BaseChainsMatch(tbl, st) {
		t.Error("a base chain's own priority change matches")
	}
	tbl.Chains[0].PriorityOffset = 0
	// A container's port chain that comes or goes is added or deleted in
	// place: the other base chains still match.
	withPort := *tbl
	withPort.Chains = append(slices.Clone(tbl.Chains), &Chain{Name: "id_veth1", Hook: HookIngress, Device: "veth1"})
	if !BaseChainsMatch(&withPort, st) {
		t.Error("a new device chain replaces the table")
	}
	gone := *st
	gone.Chains = append(slices.Clone(st.Chains), ChainState{Name: "id_veth2", Hook: `ingress device "veth2"`, Priority: tbl.Priority, Type: "filter"})
	if !BaseChainsMatch(tbl, &gone) {
		t.Error("a device chain to delete replaces the table")
	}
	moved := *st
	moved.Chains = append(slices.Clone(st.Chains), ChainState{Name: "id_veth1", Hook: `ingress device "veth9"`, Priority: tbl.Priority, Type: "filter"})
	if BaseChainsMatch(&withPort, &moved) {
		t.Error("a device chain on another device matches")
	}
	// So are the chains of names (output, dnsq_input at an offset) that
	// come and go: they take the place of no chain.
	withNames := *tbl
	withNames.Chains = append(slices.Clone(tbl.Chains), &Chain{Name: "output", Hook: HookOutput}, &Chain{Name: "dnsq_input", Hook: HookInput, PriorityOffset: 1})
	if !BaseChainsMatch(&withNames, st) {
		t.Error("new base chains of names replace the table")
	}
	namesGone := *st
	namesGone.Chains = append(slices.Clone(st.Chains), ChainState{Name: "output", Hook: "output", Priority: tbl.Priority, Type: "filter"},
		ChainState{Name: "dnsq_input", Hook: "input", Priority: tbl.Priority + 1, Type: "filter"})
	if !BaseChainsMatch(tbl, &namesGone) {
		t.Error("base chains of names to delete replace the table")
	}
	// A regular chain where a base chain belongs (someone else's): the
	// kernel cannot make it a base chain in place.
	regular := *st
	regular.Chains = append(slices.Clone(st.Chains), ChainState{Name: "output"})
	if BaseChainsMatch(&withNames, &regular) {
		t.Error("a regular chain named output matches the base chain output")
	}
	// And a base chain where a regular chain belongs.
	var reg string
	for _, c := range tbl.Chains {
		if c.Hook == HookNone {
			reg = c.Name
			break
		}
	}
	hooked := *st
	hooked.Chains = slices.Clone(st.Chains)
	for i := range hooked.Chains {
		if hooked.Chains[i].Name == reg {
			hooked.Chains[i].Hook, hooked.Chains[i].Type, hooked.Chains[i].Priority = "forward", "filter", tbl.Priority
		}
	}
	if reg == "" || BaseChainsMatch(tbl, &hooked) {
		t.Errorf("a base chain named like the regular chain %q matches", reg)
	}
	// A new chain on the hook of one that goes would take its place.
	renamed := *tbl
	renamed.Chains = append(slices.Clone(tbl.Chains), &Chain{Name: "output2", Hook: HookOutput})
	if BaseChainsMatch(&renamed, &namesGone) {
		t.Error("a new output chain in place of the old one matches")
	}
	st.Chains = append(st.Chains, ChainState{Name: "foreign", Hook: "hook0"})
	if BaseChainsMatch(tbl, st) {
		t.Error("a foreign base chain matches")
	}
}

// The table flags a plan sends, by the backend's protection and the
// kernel's table.
func TestPlanFlags(t *testing.T) {
	const self, other = 7, 9
	owned := Protection{Flags: FlagOwner | FlagPersist, Port: self}
	oneShot := Protection{Flags: FlagPersist, Port: self}
	plain := Protection{Port: self}
	st := func(f TableFlags, owner uint32) *State { return &State{Name: "t", Flags: f, Owner: owner} }
	type want struct {
		flags                  TableFlags
		change, adopt, replace bool
		owned                  bool // refused: owned by another socket
	}
	for _, tc := range []struct {
		name string
		p    Protection
		have *State
		want want
	}{
		{"owned, new table", owned, nil, want{flags: FlagOwner | FlagPersist}},
		{"owned, its own", owned, st(FlagOwner|FlagPersist, self), want{flags: FlagOwner | FlagPersist}},
		{"owned, orphaned", owned, st(FlagPersist, 0), want{flags: FlagOwner | FlagPersist, adopt: true}},
		{"owned, orphaned and dormant", owned, st(FlagPersist|FlagDormant, 0), want{flags: FlagOwner | FlagPersist, adopt: true}},
		{"owned, ordinary table", owned, st(0, 0), want{flags: FlagOwner | FlagPersist, replace: true}},
		{"owned, ordinary dormant table", owned, st(FlagDormant, 0), want{flags: FlagOwner | FlagPersist, replace: true}},
		{"owned, another's", owned, st(FlagOwner|FlagPersist, other), want{owned: true}},
		{"one-shot, new table", oneShot, nil, want{flags: FlagPersist}},
		{"one-shot, orphaned", oneShot, st(FlagPersist, 0), want{flags: FlagPersist}},
		{"one-shot, orphaned and dormant", oneShot, st(FlagPersist|FlagDormant, 0), want{flags: FlagPersist, change: true}},
		{"one-shot, ordinary table", oneShot, st(0, 0), want{}},
		{"one-shot, a daemon's", oneShot, st(FlagOwner|FlagPersist, other), want{flags: FlagOwner | FlagPersist}},
		{"ordinary, new table", plain, nil, want{}},
		{"ordinary, dormant", plain, st(FlagDormant, 0), want{change: true}},
		{"ordinary, orphaned", plain, st(FlagPersist, 0), want{flags: FlagPersist}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flags, change, adopt, replace, err := PlanFlags(tc.p, "t", tc.have)
			var oe *OwnedError
			if tc.want.owned {
				if !errors.As(err, &oe) || oe.Port != other {
					t.Errorf("err = %v, want owned by port %d", err, other)
				}
				return
			}
			got := want{flags: flags, change: change, adopt: adopt, replace: replace}
			if err != nil || got != tc.want {
				t.Errorf("PlanFlags = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
