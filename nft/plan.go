package nft

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// changes is what one apply does to an existing table, in the order the
// batch does it. It is computed from the desired table and the kernel's
// state alone, so it is unit-tested without a kernel.
//
// The order matters twice. First, the kernel refuses to delete a set or
// chain that a rule or map element still refers to, so references go first.
// Second, packets cross the commit, and must meet either the old table or
// the new one, never a mix that lets them through:
//
//   - nft_do_chain picks a chain's rules by the generation it sees on entry,
//     and jumps keep that generation; but a set lookup tests elements against
//     the generation current when it runs, and set backends with a commit
//     step (pipapo, the rbtree's lookup array) publish their new contents
//     only after the generation flips. So a packet may run old rules against
//     new elements, or new rules against a set not yet published.
//   - Hence sets and maps are never deleted and re-created to change them:
//     their elements are deleted and added in place, so that an element the
//     old and the new table share is never absent. Base chains and the
//     chains map elements point to are kept and refilled, not re-created.
//   - A set the new rules need that does not exist yet is created in a
//     transaction of its own before the main one (Stage), so it is complete
//     and published before any rule can look it up. Nothing refers to it
//     until the main transaction, so this changes no packet's fate.
type changes struct {
	// Stage lists the sets created, with their elements, before the main
	// transaction.
	Stage []*Set
	// Flush lists existing chains whose rules are all deleted.
	Flush []string
	// DelElems and DelMapElems list the elements deleted from kept sets and maps.
	DelElems    []setElems
	DelMapElems []mapElems
	// DelSets and DelChains list sets and chains deleted.
	DelSets, DelChains []string
	// AddChains and AddSets list chains and sets created (with their
	// elements) in the main transaction: only when the table is new or
	// replaced, or a set of ours has a foreign type.
	AddChains []*Chain
	AddSets   []*Set
	// AddElems and AddMapElems list the elements added to kept sets and maps.
	AddElems    []setElems
	AddMapElems []mapElems
	// Fill lists the chains whose rules are added: new and flushed ones.
	Fill []*Chain
}

type setElems struct {
	Set   string
	Elems []nftables.SetElement
}

type mapElems struct {
	Set   string
	Elems []VMapElem
}

// empty reports whether the changes leave the kernel's table as it is.
func (c *changes) empty() bool {
	return len(c.Stage)+len(c.Flush)+len(c.DelElems)+len(c.DelMapElems)+len(c.DelSets)+len(c.DelChains)+
		len(c.AddChains)+len(c.AddSets)+len(c.AddElems)+len(c.AddMapElems)+len(c.Fill) == 0
}

// fresh returns the changes that create t from nothing.
func (t *Table) fresh() *changes {
	return &changes{AddChains: t.Chains, AddSets: t.Sets, Fill: t.Chains}
}

// needDump lists the plain sets of have whose elements Apply must read
// before changes can edit them in place: ours, of the right type, and with
// other contents than t wants (digests, from t.setDigests), or named in verify.
func (t *Table) needDump(have *State, digests map[string]string, verify ...string) []string {
	var out []string
	for _, ks := range have.Sets {
		s := t.Set(ks.Name)
		if s != nil && !s.Map && s.Owner == OwnedByModel && ks.compatible(s) && (ks.Digest != digests[s.Name] || slices.Contains(verify, s.Name)) {
			out = append(out, s.Name)
		}
	}
	return out
}

// changes computes how to turn have into t, whose set digests are digests
// (t.setDigests). have must be non-nil, its base chains must match t's (see
// baseChainsMatch), and the sets needDump names must have been dumped; a set
// that was not is replaced whole.
func (t *Table) changes(have *State, digests map[string]string) *changes {
	out := &changes{}
	haveSets := map[string]*SetState{}
	for i := range have.Sets {
		haveSets[have.Sets[i].Name] = &have.Sets[i]
	}
	replaced := map[string]bool{}
	for _, s := range t.Sets {
		ks, ok := haveSets[s.Name]
		delete(haveSets, s.Name)
		switch {
		case !ok && s.Map:
			// A missing map cannot be staged: its elements go to chains
			// that may not exist before the main transaction. Nothing
			// looks it up while it is missing, so nothing is lost.
			out.AddSets = append(out.AddSets, s)
		case !ok:
			out.Stage = append(out.Stage, s)
		case !ks.compatible(s) || (!s.Map && s.Owner == OwnedByModel && ks.Digest != digests[s.Name] && !ks.Dumped):
			out.DelSets = append(out.DelSets, s.Name)
			out.AddSets = append(out.AddSets, s)
			replaced[s.Name] = true
		case s.Map:
			del, add := vmapDiff(ks.VMap, s.VMap)
			if len(del) > 0 {
				out.DelMapElems = append(out.DelMapElems, mapElems{s.Name, del})
			}
			if len(add) > 0 {
				out.AddMapElems = append(out.AddMapElems, mapElems{s.Name, add})
			}
		case ks.Dumped:
			// Dumped because its digest differs, or because Apply was
			// asked to verify it (another process changed elements).
			del, add := elemDiff(ks.Elems, setElements(s))
			if len(del) > 0 {
				out.DelElems = append(out.DelElems, setElems{s.Name, del})
			}
			if len(add) > 0 {
				out.AddElems = append(out.AddElems, setElems{s.Name, add})
			}
		}
	}
	for _, ks := range have.Sets {
		if _, gone := haveSets[ks.Name]; gone {
			out.DelSets = append(out.DelSets, ks.Name)
		}
	}

	haveChains := map[string]*ChainState{}
	for i := range have.Chains {
		haveChains[have.Chains[i].Name] = &have.Chains[i]
	}
	for _, c := range t.Chains {
		kc, ok := haveChains[c.Name]
		delete(haveChains, c.Name)
		switch {
		case !ok:
			out.AddChains = append(out.AddChains, c)
			out.Fill = append(out.Fill, c)
		case !sameRules(c, kc, digests) || c.refersTo(replaced):
			out.Flush = append(out.Flush, c.Name)
			out.Fill = append(out.Fill, c)
		}
	}
	for _, kc := range have.Chains {
		if _, gone := haveChains[kc.Name]; gone {
			out.Flush = append(out.Flush, kc.Name)
			out.DelChains = append(out.DelChains, kc.Name)
		}
	}
	return out
}

// compatible reports whether the kernel's set is one of ours with the type
// and flags of s, so that it can be kept and edited in place.
func (ks *SetState) compatible(s *Set) bool {
	ns := setHeader(nil, s)
	var flags, data uint32
	if ns.Interval {
		flags |= unix.NFT_SET_INTERVAL
	}
	if ns.HasTimeout {
		flags |= unix.NFT_SET_TIMEOUT
	}
	if ns.IsMap {
		flags |= unix.NFT_SET_MAP
		data = ns.DataType.GetNFTMagic()
		if ns.DataType.Name == nftables.TypeVerdict.Name {
			data = unix.NFT_DATA_VERDICT // what AddSet sends for TypeVerdict
		}
	}
	const typeFlags = unix.NFT_SET_INTERVAL | unix.NFT_SET_MAP | nftSetConcat | unix.NFT_SET_OBJECT | unix.NFT_SET_TIMEOUT
	return ks.Flags&typeFlags == flags && ks.KeyType == ns.KeyType.GetNFTMagic() && ks.DataType == data && ks.Comment == setComment
}

// nftSetConcat is NFT_SET_CONCAT, which x/sys/unix does not define.
const nftSetConcat = 0x80

// elemDiff returns the elements of have to delete and those of want to add.
// An interval set's elements are compared an interval at a time, its start
// and end together: an interval in both is left alone, any other is deleted
// or added whole. The kernel refuses (ENOENT, EEXIST) some transactions that
// delete the start of one interval and the end of another while keeping
// their other ends, and (ENOENT) the deletion of two or more intervals in
// the descending order a dump lists them; so deletions go in key order.
func elemDiff(have, want []nftables.SetElement) (del, add []nftables.SetElement) {
	h, w := intervals(have), intervals(want)
	for _, iv := range h.order {
		if _, ok := w.by[iv]; !ok {
			for _, e := range h.by[iv] {
				del = append(del, nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd})
			}
		}
	}
	for _, iv := range w.order {
		if _, ok := h.by[iv]; !ok {
			add = append(add, w.by[iv]...)
		}
	}
	return del, add
}

// elemIntervals are a set's elements grouped into intervals, in key order.
type elemIntervals struct {
	order []string
	by    map[string][]nftables.SetElement
}

// intervals groups elements into intervals: a start and the end that
// follows it, if one does (an interval that runs to the end of the key
// space has none; the elements of a set without intervals stand alone).
func intervals(es []nftables.SetElement) elemIntervals {
	s := slices.Clone(es)
	slices.SortStableFunc(s, func(a, b nftables.SetElement) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 || a.IntervalEnd == b.IntervalEnd {
			return c
		}
		if a.IntervalEnd {
			return -1 // an end closes the interval before a start opens the next
		}
		return 1
	})
	out := elemIntervals{by: make(map[string][]nftables.SetElement, len(s))}
	for i := 0; i < len(s); i++ {
		g := []nftables.SetElement{s[i]}
		if !s[i].IntervalEnd && i+1 < len(s) && s[i+1].IntervalEnd {
			i++
			g = append(g, s[i])
		}
		var key strings.Builder
		for _, e := range g {
			key.WriteString(elemKey(e) + " ")
		}
		if _, dup := out.by[key.String()]; !dup {
			out.order = append(out.order, key.String())
		}
		out.by[key.String()] = g
	}
	return out
}

// vmapDiff returns the elements of have to delete and those of want to add.
// An element whose chain changes is deleted and added again.
func vmapDiff(have, want []VMapElem) (del, add []VMapElem) {
	key := func(e VMapElem) string { return e.Key + "|" + e.Addr.String() }
	w := map[string]VMapElem{}
	for _, e := range want {
		w[key(e)] = e
	}
	h := map[string]VMapElem{}
	for _, e := range have {
		h[key(e)] = e
		if c, ok := w[key(e)]; !ok || c != e {
			del = append(del, e)
		}
	}
	for _, e := range want {
		if c, ok := h[key(e)]; !ok || c != e {
			add = append(add, e)
		}
	}
	return del, add
}

// sameRules reports whether the kernel chain holds exactly c's rules, in
// order, and they record the set digests of t (digests).
func sameRules(c *Chain, kc *ChainState, digests map[string]string) bool {
	if len(c.Rules) != len(kc.Rules) {
		return false
	}
	for i, r := range c.Rules {
		if kc.Rules[i].Digest != r.Digest() || setRefs(r, digests) != setRefs(r, kc.Rules[i].Sets) {
			return false
		}
	}
	return true
}

// refersTo reports whether a rule of c looks a set of names up.
func (c *Chain) refersTo(names map[string]bool) bool {
	for _, r := range c.Rules {
		if slices.ContainsFunc(r.sets(), func(s string) bool { return names[s] }) {
			return true
		}
	}
	return false
}

// sets lists the named sets and maps the rule looks up.
func (r *Rule) sets() []string {
	var out []string
	for _, m := range r.Matches {
		switch m := m.(type) {
		case Addr:
			if m.Set != "" {
				out = append(out, m.Set)
			}
		case DPort:
			if m.Set != "" {
				out = append(out, m.Set)
			}
		}
	}
	if r.Verdict.Kind == VMap {
		out = append(out, r.Verdict.Target)
	}
	return out
}

// baseChainsMatch reports whether the kernel's base chains are exactly t's,
// with the same hooks and priority, so that they can be kept.
//
// Base chains are never deleted and created again in one transaction: the
// kernel registers a new base chain's hook before the commit, ahead of an old
// one of equal priority, so a packet could cross the new chain before the
// commit (still empty) and the old one after it (already empty) and pass. A
// change of priority (or a foreign base chain) replaces the whole table, and
// that one apply has the window; the README says so.
func (t *Table) baseChainsMatch(have *State) bool {
	want := map[string]string{}
	for _, c := range t.Chains {
		if c.Hook != HookNone {
			want[c.Name] = c.Hook.String()
		}
	}
	n := 0
	for _, c := range have.Chains {
		if c.Hook == "" {
			continue
		}
		n++
		if want[c.Name] != c.Hook || c.Priority != t.Priority {
			return false
		}
	}
	return n == len(want)
}

// batch holds the google/nftables view of one table while a transaction is built.
type batch struct {
	c       *nftables.Conn
	t       *Table
	tbl     *nftables.Table
	digests map[string]string
	// sets maps set names to what rules refer to: kept sets by name, sets
	// created in this batch by the ID AddSet gives them.
	sets map[string]*nftables.Set
}

func (t *Table) newBatch(c *nftables.Conn, digests map[string]string) *batch {
	b := &batch{c: c, t: t, tbl: &nftables.Table{Name: t.Name, Family: nftables.TableFamilyINet}, digests: digests}
	b.sets = make(map[string]*nftables.Set, len(t.Sets))
	for _, s := range t.Sets {
		b.sets[s.Name] = setHeader(b.tbl, s)
	}
	return b
}

func (b *batch) chain(name string) *nftables.Chain {
	return &nftables.Chain{Table: b.tbl, Name: name}
}

// addSets creates sets with their elements.
func (b *batch) addSets(sets []*Set) error {
	for _, s := range sets {
		ns, elems := kernelSet(b.tbl, s)
		if err := b.c.AddSet(ns, nil); err != nil {
			return fmt.Errorf("set %s: %w", s.Name, err)
		}
		if err := b.elements(ns, elems, false); err != nil {
			return err
		}
		b.sets[s.Name] = ns
	}
	return nil
}

// elements adds (or deletes) elements in chunks.
func (b *batch) elements(ns *nftables.Set, elems []nftables.SetElement, del bool) error {
	for i := 0; i < len(elems); i += elemChunk {
		chunk := elems[i:min(i+elemChunk, len(elems))]
		var err error
		if del {
			err = b.c.SetDeleteElements(ns, chunk)
		} else {
			err = b.c.SetAddElements(ns, chunk)
		}
		if err != nil {
			return fmt.Errorf("set %s: %w", ns.Name, err)
		}
	}
	return nil
}

// stage adds to the batch the sets the main transaction will need.
func (b *batch) stage(ch *changes) error {
	b.c.AddTable(b.tbl)
	return b.addSets(ch.Stage)
}

// unstage deletes the staged sets again, after the main transaction failed.
func (b *batch) unstage(ch *changes) error {
	for _, s := range ch.Stage {
		b.c.DelSet(&nftables.Set{Table: b.tbl, Name: s.Name})
	}
	return nil
}

// enqueue adds to the batch the main transaction: everything but Stage.
// replace says whether an existing table is deleted first.
func (b *batch) enqueue(ch *changes, replace bool) error {
	if replace {
		b.c.DelTable(b.tbl)
	}
	b.c.AddTable(b.tbl)
	for _, name := range ch.Flush {
		b.c.FlushChain(b.chain(name))
	}
	for _, m := range ch.DelMapElems {
		if err := b.c.SetDeleteElements(b.sets[m.Set], vmapElements(m.Elems)); err != nil {
			return fmt.Errorf("map %s: %w", m.Set, err)
		}
	}
	for _, m := range ch.DelElems {
		if err := b.elements(b.sets[m.Set], m.Elems, true); err != nil {
			return err
		}
	}
	for _, name := range ch.DelSets {
		b.c.DelSet(&nftables.Set{Table: b.tbl, Name: name})
	}
	for _, name := range ch.DelChains {
		b.c.DelChain(b.chain(name))
	}
	for _, ch := range ch.AddChains {
		nc := b.chain(ch.Name)
		if ch.Hook != HookNone {
			hook := nftables.ChainHookForward
			if ch.Hook == HookInput {
				hook = nftables.ChainHookInput
			}
			accept := nftables.ChainPolicyAccept
			nc.Type, nc.Hooknum, nc.Priority, nc.Policy = nftables.ChainTypeFilter, hook, nftables.ChainPriorityRef(nftables.ChainPriority(b.t.Priority)), &accept
		}
		b.c.AddChain(nc)
	}
	if err := b.addSets(ch.AddSets); err != nil {
		return err
	}
	for _, m := range ch.AddElems {
		if err := b.elements(b.sets[m.Set], m.Elems, false); err != nil {
			return err
		}
	}
	for _, m := range ch.AddMapElems {
		if err := b.c.SetAddElements(b.sets[m.Set], vmapElements(m.Elems)); err != nil {
			return fmt.Errorf("map %s: %w", m.Set, err)
		}
	}
	for _, ch := range ch.Fill {
		for _, r := range ch.Rules {
			exprs, err := ruleExprs(b.c, b.tbl, b.sets, r)
			if err != nil {
				return fmt.Errorf("chain %s rule %q: %w", ch.Name, r.Text(), err)
			}
			b.c.AddRule(&nftables.Rule{Table: b.tbl, Chain: b.chain(ch.Name), Exprs: exprs, UserData: ruleUserData(r, b.digests)})
		}
	}
	return nil
}

// vmapElements renders verdict-map elements for google/nftables.
func vmapElements(in []VMapElem) []nftables.SetElement {
	out := make([]nftables.SetElement, len(in))
	for i, e := range in {
		key := ifname(e.Key)
		if e.Addr.IsValid() {
			key = e.Addr.AsSlice()
		}
		kind := expr.VerdictGoto
		if e.Jump {
			kind = expr.VerdictJump
		}
		out[i] = nftables.SetElement{Key: key, VerdictData: &expr.Verdict{Kind: kind, Chain: e.Chain}}
	}
	return out
}

// vmapElemText renders a map element in nft syntax.
func vmapElemText(e VMapElem) string {
	key := fmt.Sprintf("%q", e.Key)
	if e.Addr.IsValid() {
		key = e.Addr.String()
	}
	switch {
	case e.Chain == "":
		return key + " : (not a goto)"
	case e.Jump:
		return key + " : jump " + e.Chain
	}
	return key + " : goto " + e.Chain
}
