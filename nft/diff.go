package nft

import (
	"fmt"
	"strings"
)

// Diff lists what applying t would change in the kernel state st (nil for no
// table), one line a change. An empty result means the kernel matches t.
// It compares what the kernel returns: the table's dormant flag, base
// chains' hooks, priorities, types and policies, every rule's expressions
// (and its tags, so that a rule whose comment or identity changed is
// rewritten), and the elements of verdict maps and of the sets st holds
// dumped (see Kernel.Dump); for a set not dumped, the digest its rules
// record. Who owns the table is not a difference (see State.Protection).
//
// Where st says so (State.NetdevRead), the netdev and bridge tables are
// compared too (Table.Netdev, Table.Bridge), their lines prefixed with
// "netdev: " and "bridge: ".
func Diff(t *Table, st *State) []string {
	out := diffTable(t, st)
	if st == nil || !st.NetdevRead {
		return out
	}
	for _, f := range sideFamilies {
		side, have := t.side(f), st.Side(f)
		switch {
		case side == nil && have != nil:
			out = append(out, fmt.Sprintf("- table %s %s: %d chains", f, t.Name, len(have.Chains)))
		case side != nil:
			for _, l := range diffTable(side, have) {
				out = append(out, f.String()+": "+l)
			}
		}
	}
	return out
}

// diffTable is Diff of one table.
func diffTable(t *Table, st *State) []string {
	if st == nil {
		return []string{fmt.Sprintf("+ table %s %s: %d chains, %d sets, %d elements", t.Family, t.Name, len(t.Chains), len(t.Sets), t.Elements())}
	}
	var out []string
	if st.Flags&FlagDormant != 0 {
		out = append(out, fmt.Sprintf("~ table %s %s: flag dormant, so its chains see no packets; want it active", t.Family, t.Name))
	}
	have := map[string]*ChainState{}
	for i := range st.Chains {
		have[st.Chains[i].Name] = &st.Chains[i]
	}
	for _, c := range t.Chains {
		kc, ok := have[c.Name]
		if !ok {
			out = append(out, fmt.Sprintf("+ chain %s (%d rules)", c.Name, len(c.Rules)))
			continue
		}
		delete(have, c.Name)
		out = append(out, diffBase(t, c, kc)...)
		out = append(out, diffRules(c, kc)...)
	}
	for _, kc := range st.Chains {
		if _, ok := have[kc.Name]; ok {
			out = append(out, fmt.Sprintf("- chain %s (%d rules)", kc.Name, len(kc.Rules)))
		}
	}
	return append(out, diffSets(t, st)...)
}

// diffBase lists how the kernel chain differs from c as a base chain (or
// as a regular one).
func diffBase(t *Table, c *Chain, kc *ChainState) []string {
	if c.HookText() != kc.Hook || (c.Hook != HookNone && kc.Priority != t.ChainPriority(c)) {
		return []string{fmt.Sprintf("~ chain %s: hook %s priority %d, want hook %s priority %d", c.Name, kc.Hook, kc.Priority, c.HookText(), t.ChainPriority(c))}
	}
	var out []string
	if c.Hook != HookNone && kc.Type != "filter" {
		out = append(out, fmt.Sprintf("~ chain %s: type %s, want type filter", c.Name, kc.Type))
	}
	if c.Hook != HookNone && kc.Policy != "accept" {
		out = append(out, fmt.Sprintf("~ chain %s: policy %s, want policy accept", c.Name, kc.Policy))
	}
	return out
}

// ruleKey identifies a rule for comparison: its digest (the label in its
// user data) and its expressions.
func ruleKey(digest, exprs string) string { return digest + "/" + exprs }

// diffRules lists how the kernel chain's rules differ from c's. A kernel
// rule is c's rule when both its expressions and its label are. Rules that
// differ only in the set digests they record are not reported: the set's
// own line says its elements differ.
func diffRules(c *Chain, kc *ChainState) []string {
	want := make([]string, len(c.Rules))
	wantCanon := make([]canonical, len(c.Rules))
	for i, r := range c.Rules {
		can, err := r.canonical()
		if err != nil {
			can.key = "unencodable: " + err.Error()
		}
		wantCanon[i] = can
		want[i] = ruleKey(r.Digest(), can.key)
	}
	got := make([]string, len(kc.Rules))
	for i, r := range kc.Rules {
		got[i] = ruleKey(r.Digest, r.Exprs)
	}
	if strings.Join(want, ",") == strings.Join(got, ",") {
		return nil
	}
	wantSet := map[string]bool{}
	for _, k := range want {
		wantSet[k] = true
	}
	gotSet := map[string]bool{}
	for _, k := range got {
		gotSet[k] = true
	}
	reported := make([]bool, len(c.Rules))
	var out []string
	for i, r := range kc.Rules {
		if wantSet[got[i]] {
			continue
		}
		// A rule with the label of one of c's, whose expressions are not
		// that rule's: someone replaced them under dockerfence's user data.
		replaced := -1
		for j, mr := range c.Rules {
			if r.Digest != "" && !reported[j] && !gotSet[want[j]] && mr.Digest() == r.Digest {
				replaced = j
				break
			}
		}
		switch {
		case replaced >= 0:
			reported[replaced] = true
			out = append(out, fmt.Sprintf("~ chain %s: rule handle %d (%s) holds %q, not what dockerfence wrote under its label: %q",
				c.Name, r.Handle, r.Comment, r.Summary, wantCanon[replaced].summary))
		case r.Digest == "":
			out = append(out, fmt.Sprintf("- chain %s: rule handle %d (a rule dockerfence did not write)", c.Name, r.Handle))
		default:
			out = append(out, fmt.Sprintf("- chain %s: rule handle %d (%s)", c.Name, r.Handle, r.Comment))
		}
	}
	for i, r := range c.Rules {
		if !gotSet[want[i]] && !reported[i] {
			out = append(out, fmt.Sprintf("+ chain %s: %s", c.Name, r.Text()))
		}
	}
	if len(out) == 0 {
		out = append(out, fmt.Sprintf("~ chain %s: rules out of order", c.Name))
	}
	return out
}

// diffSets lists how the kernel's sets and maps differ from t's.
func diffSets(t *Table, st *State) []string {
	var out []string
	haveSets := map[string]*SetState{}
	for i := range st.Sets {
		haveSets[st.Sets[i].Name] = &st.Sets[i]
	}
	for _, s := range t.Sets {
		ks, ok := haveSets[s.Name]
		elems := setElements(s)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("+ set %s (%d elements)", s.Name, len(elems)))
			continue
		case !ks.compatible(s):
			out = append(out, fmt.Sprintf("~ set %s: type or flags differ", s.Name))
		case s.Map:
			del, add := vmapDiff(ks.VMap, s.VMap)
			for _, e := range del {
				out = append(out, fmt.Sprintf("- map %s: %s", s.Name, vmapElemText(e)))
			}
			for _, e := range add {
				out = append(out, fmt.Sprintf("+ map %s: %s", s.Name, vmapElemText(e)))
			}
		case s.Owner == OwnedByRuntime:
			// Filled at run time: its elements are not the model's.
		case ks.Dumped:
			if del, add := elemDiff(ks.Elems, elems); len(del)+len(add) > 0 {
				out = append(out, fmt.Sprintf("~ set %s: %d elements to delete, %d to add", s.Name, len(del), len(add)))
			}
		case ks.Digest == "":
			out = append(out, fmt.Sprintf("~ set %s: no rule records its elements (want %d)", s.Name, len(elems)))
		case ks.Digest != setDigest(s):
			out = append(out, fmt.Sprintf("~ set %s: elements differ (want %d)", s.Name, len(elems)))
		}
		delete(haveSets, s.Name)
	}
	for _, ks := range st.Sets {
		if _, ok := haveSets[ks.Name]; ok {
			out = append(out, fmt.Sprintf("- set %s", ks.Name))
		}
	}
	return out
}
