package nft_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dockerfence/dockerfence/internal/testpolicy"

	"github.com/dockerfence/dockerfence/fence"
	. "github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/google/go-cmp/cmp"
	"github.com/google/nftables/userdata"
)

// prefixes, testNetworks and loadPolicy are the shared test policy helpers.
var (
	prefixes     = testpolicy.Prefixes
	testNetworks = testpolicy.Networks
	loadPolicy   = testpolicy.Load
)

func TestDiff(t *testing.T) {
	tbl := Build(loadPolicy(t, "../fence/testdata/seed.yaml"), testNetworks)
	if got := Diff(tbl, nil); len(got) != 1 || !strings.HasPrefix(got[0], "+ table inet dockerfence") {
		t.Errorf("Diff(nil) = %q", got)
	}
	st := stateOf(tbl)
	if got := Diff(tbl, st); len(got) != 0 {
		t.Errorf("Diff(own state) = %q, want none", got)
	}
	// Someone inserts an accept at the top of a network chain and empties a set.
	c := &st.Chains[0]
	for i := range st.Chains {
		if st.Chains[i].Name == "fwd_br-0123456789ab" {
			c = &st.Chains[i]
		}
	}
	c.Rules = append([]RuleState{{Handle: 99}}, c.Rules...)
	st.Chains = append(st.Chains, ChainState{Name: "extra"})
	// It also points a map element elsewhere and empties a map.
	for i := range st.Sets {
		switch s := &st.Sets[i]; s.Name {
		case "fwd_if":
			s.VMap[0].Chain = "extra"
		case "in_if":
			s.VMap = nil
		}
	}
	got := Diff(tbl, st)
	want := []string{
		"- chain fwd_br-0123456789ab: rule handle 99 (a rule dockerfence did not write)",
		"- chain extra (0 rules)",
		`- map fwd_if: "br-0123456789ab" : goto extra`,
		`+ map fwd_if: "br-0123456789ab" : goto fwd_br-0123456789ab`,
		`+ map in_if: "br-0123456789ab" : goto in_br-0123456789ab`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
}

// stateOf returns the state the kernel would report right after a backend
// of protection Owned applied t. Plain sets are not dumped, as in Read.
func stateOf(t *Table) *State {
	st := &State{Name: t.Name, Flags: Owned.Flags, Owner: Owned.Port}
	digests := SetDigests(t)
	for _, c := range t.Chains {
		cs := ChainState{Name: c.Name, Hook: c.Hook.String()}
		if c.Hook != HookNone {
			cs.Priority, cs.Type, cs.Policy = t.ChainPriority(c), "filter", "accept"
		}
		for i, r := range c.Rules {
			rs := KernelRule(r, RuleUserData(r, digests))
			rs.Handle = uint64(i + 1)
			cs.Rules = append(cs.Rules, rs)
		}
		st.Chains = append(st.Chains, cs)
	}
	for _, s := range t.Sets {
		ss := NewSetState(s)
		ss.Digest = digests[s.Name]
		if s.Map {
			ss.VMap = append([]VMapElem(nil), s.VMap...)
		}
		st.Sets = append(st.Sets, ss)
	}
	return st
}

// dump fills in the elements of st's plain sets as t has them, as Apply's
// dumpSets would read them from the kernel.
func dump(st *State, t *Table, names []string) {
	for _, name := range names {
		for i := range st.Sets {
			if st.Sets[i].Name == name {
				_, st.Sets[i].Elems = KernelSet(nil, t.Set(name))
				st.Sets[i].Dumped = true
			}
		}
	}
}

// TestRuleUserDataFitsTheKernel checks that a rule's user data stays within
// the kernel's 256 bytes however long its comment, list names and ID are,
// keeping the tags whole and cutting the comment on a character boundary.
func TestRuleUserDataFitsTheKernel(t *testing.T) {
	long := strings.Repeat("l", 32)
	src := "version: 1\nlists:\n  " + long + ": [10.0.0.0/8, 192.168.0.0/16]\nnetworks:\n  - match: {bridge: br-0123456789a}\n    egress:\n" +
		strings.Repeat("      - allow: 10.9.9.9\n", 119) +
		"      - deny: \"@" + long + "\"\n        ports: [1, 3]\n        comment: \"" + strings.Repeat("é", 50) + "\"\n"
	pol, err := policy.Parse("p.yaml", []byte(src), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	tbl := Build(pol, []policy.Network{{Bridge: "br-0123456789a", Subnets: prefixes("172.20.0.0/16")}})
	digests := SetDigests(tbl)
	checked := 0
	for _, c := range tbl.Chains {
		for _, r := range c.Rules {
			ud := RuleUserData(r, digests)
			if len(ud) > MaxUserData {
				t.Errorf("%s %q: %d bytes of user data, the kernel takes %d", c.Name, r.ID, len(ud), MaxUserData)
			}
			if id, _ := userdata.GetString(ud, UdataID); id != r.ID {
				t.Errorf("%s: the ID tag %q was lost", c.Name, id)
			}
			if d, _ := userdata.GetString(ud, UdataDigest); d != r.Digest() {
				t.Errorf("%s %q: the digest tag was lost", c.Name, r.ID)
			}
			if cm, _ := userdata.GetString(ud, UdataComment); !utf8.ValidString(cm) || !strings.HasPrefix(r.Comment, cm) {
				t.Errorf("%s %q: comment %q is not a whole-character prefix of %q", c.Name, r.ID, cm, r.Comment)
			}
			if r.ID == "egress 120" {
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("the rule with the long comment was not built; the test proves nothing")
	}
	if got := TruncateUTF8("aé", 2); got != "a" {
		t.Errorf("truncateUTF8 split a character: %q", got)
	}
}

// Build compiles the policy for the networks, as apply does.
func Build(pol *policy.Policy, nets []policy.Network) *Table { return fence.Compile(pol, nets).Table }

// What others can do to an unowned table without touching dockerfence's
// labels is reported, and planned back: a dormant flag, a base chain's
// policy, a rule's expressions replaced under its user data.
func TestDiffTampering(t *testing.T) {
	tbl := Build(loadPolicy(t, "../fence/testdata/seed.yaml"), testNetworks)
	st := stateOf(tbl)
	st.Flags = FlagPersist | FlagDormant
	st.Owner = 0
	var chain *ChainState
	for i := range st.Chains {
		switch c := &st.Chains[i]; c.Name {
		case "forward":
			c.Policy = "drop"
		case "fwd_br-0123456789ab":
			chain = c
		}
	}
	victim := &chain.Rules[len(chain.Rules)-2]
	forged := KernelRule(&Rule{Counter: true, Verdict: Verdict{Kind: Accept}}, victim.UserData)
	victim.Exprs, victim.Summary = forged.Exprs, forged.Summary
	got := Diff(tbl, st)
	want := []string{
		"~ table inet dockerfence: flag dormant, so its chains see no packets; want it active",
		"~ chain forward: policy drop, want policy accept",
		fmt.Sprintf(`~ chain fwd_br-0123456789ab: rule handle %d (%s) holds "counter accept", not what dockerfence wrote under its label: %q`, victim.Handle, victim.Comment, chainRuleSummary(tbl, chain.Name, len(chain.Rules)-2)),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
	// A one-shot backend clears dormant and keeps persist.
	flags, change, _, _, err := PlanFlags(Protection{Flags: FlagPersist}, tbl.Name, st)
	if err != nil || flags != FlagPersist || !change {
		t.Fatalf("PlanFlags = %v, %v, %v", flags, change, err)
	}
	// An owning backend adopts the orphaned table (which clears dormant),
	// declares the base chain again and rewrites the chain.
	p, err := PlanFrom(tbl, st)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Adopts || len(p.Txs[0].Ops) != 1 || p.Txs[0].Ops[0].Flags != FlagOwner|FlagPersist {
		t.Errorf("the plan does not adopt the table first:\n%s", p)
	}
	text := p.String()
	for _, line := range []string{
		"add table inet dockerfence\n",
		"add chain inet dockerfence forward { type filter hook forward priority -10; policy accept; }\n",
		"flush chain inet dockerfence fwd_br-0123456789ab\n",
	} {
		if !strings.Contains(text, line) {
			t.Errorf("the plan lacks %q:\n%s", line, text)
		}
	}
	if strings.Contains(text, "flush chain inet dockerfence forward") {
		t.Errorf("the plan rewrites forward, whose rules are intact:\n%s", text)
	}
}

// chainRuleSummary is the summary of the expressions of rule i of chain.
func chainRuleSummary(t *Table, chain string, i int) string {
	return KernelRule(t.Chain(chain).Rules[i], nil).Summary
}
