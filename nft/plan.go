package nft

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

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
	// Base lists the kept base chains whose policy is not accept: they
	// are declared again, which sets it back.
	Base []*Chain
}

type setElems struct {
	Set   string
	Elems []nftables.SetElement
	// Items are the intervals deleted or added, in nft syntax (see Op.Items).
	Items []string
	// Kept says that the elements are the live ones of the kernel's set of
	// that name, which the plan creates anew: see keptElems.
	Kept bool
}

type mapElems struct {
	Set   string
	Elems []VMapElem
}

// empty reports whether the changes leave the kernel's table as it is.
func (c *changes) empty() bool {
	return len(c.Stage)+len(c.Flush)+len(c.DelElems)+len(c.DelMapElems)+len(c.DelSets)+len(c.DelChains)+
		len(c.AddChains)+len(c.AddSets)+len(c.AddElems)+len(c.AddMapElems)+len(c.Fill)+len(c.Base) == 0
}

// fresh returns the changes that create t from nothing, in place of the
// kernel's table have (nil if there is none): the sets of have that were
// dumped and carry their elements over (see carries) hand them to t's
// new sets of the same name, in the same transaction, so that no packet
// meets those sets without them.
func (t *Table) fresh(have *State) *changes {
	ch := &changes{AddChains: t.Chains, AddSets: t.Sets, Fill: t.Chains}
	if have == nil {
		return ch
	}
	for _, ks := range have.Sets {
		if s := t.Set(ks.Name); s != nil && ks.Dumped && ks.carries(s) {
			if kept := keptElems(s, &ks); len(kept.Elems) > 0 {
				ch.AddElems = append(ch.AddElems, kept)
			}
		}
	}
	return ch
}

// needDump lists the plain sets of have whose elements Apply must read
// before changes can edit them in place: ours, of the right type, and with
// other contents than t wants (digests, from t.setDigests), or named in
// verify. It also lists the sets owned at run time that changes re-creates
// (their type changed) and that can hand their elements to the new one
// (see carries).
func (t *Table) needDump(have *State, digests map[string]string, verify ...string) []string {
	var out []string
	for _, ks := range have.Sets {
		s := t.Set(ks.Name)
		switch {
		case s == nil:
		case !s.Map && s.Owner == OwnedByModel && ks.compatible(s) && (ks.Digest != digests[s.Name] || slices.Contains(verify, s.Name)):
			out = append(out, s.Name)
		case !ks.compatible(s) && ks.carries(s):
			out = append(out, s.Name)
		}
	}
	return out
}

// keepSets lists the sets of have that hand their live elements to the
// sets of t of the same name when a plan replaces the whole table (see
// carries): the only sets such a plan reads.
func (t *Table) keepSets(have *State) []string {
	var out []string
	for _, ks := range have.Sets {
		if s := t.Set(ks.Name); s != nil && ks.carries(s) {
			out = append(out, s.Name)
		}
	}
	return out
}

// carries reports whether the kernel's set ks hands its live elements to
// s when s is created anew in its place (the table replaced, or the set
// re-created for a change of type): s is owned at run time, with
// timeouts, and ks is a plain set of the same key type, intervals or
// not, whose elements the packet path does not write (a meter's are
// limits, not addresses, and go). The elements that the daemon learned
// at run time are then not lost with the old set: see keptElems.
func (ks *SetState) carries(s *Set) bool {
	if s.Map || s.Dynamic || s.Owner != OwnedByRuntime || !s.Timeout {
		return false
	}
	want := NewSetState(s)
	const kind = unix.NFT_SET_INTERVAL | unix.NFT_SET_MAP | nftSetConcat | unix.NFT_SET_OBJECT | unix.NFT_SET_EVAL
	// The same comment: a set of another Tag holds another's contents.
	return ks.Flags&kind == want.Flags&kind && ks.KeyType == want.KeyType && ks.Comment == want.Comment
}

// keptElems returns the elements that s, created anew in place of the
// kernel's set ks (dumped), takes over from it: every live element, the
// start of an interval with the time it has left (the kernel's
// NFTA_SET_ELEM_EXPIRATION) as its timeout, so that it expires when it
// would have; an element without a timeout as it is. An element that
// expired (the kernel has yet to remove it) is left out, and so is one
// that overlaps what the model puts in s, which holds it already.
//
// Writing the time left as the timeout works on every kernel: the
// element is a new one. Its timeout, as the kernel lists it afterwards,
// is that time, not the one it was first given.
func keptElems(s *Set, ks *SetState) setElems {
	out := setElems{Set: s.Name, Kept: true}
	model := intervals(setElements(s))
	g := groupIntervals(ks.Elems)
	for _, k := range g.order {
		es := g.by[k]
		if es[0].IntervalEnd {
			continue // an end without its start
		}
		var timeout time.Duration
		switch {
		case es[0].Expires > 0:
			timeout = max(es[0].Expires, time.Millisecond)
		case es[0].Timeout > 0:
			continue // expired
		}
		if s.Interval() && overlaps(intervals(es), model) {
			continue
		}
		group := make([]nftables.SetElement, len(es))
		for i, e := range es {
			group[i] = nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd}
		}
		group[0].Timeout = timeout
		out.Elems = append(out.Elems, group...)
		for _, item := range elemItems(s, group) {
			if timeout > 0 {
				item += " timeout " + durationText(timeout)
			}
			out.Items = append(out.Items, item)
		}
	}
	return out
}

// overlaps reports whether a range of a shares a key with one of b.
func overlaps(a, b []keyRange) bool {
	for _, x := range a {
		for _, y := range b {
			if bytes.Compare(x.from, y.to) <= 0 && bytes.Compare(y.from, x.to) <= 0 {
				return true
			}
		}
	}
	return false
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
			if ks.Dumped && ks.carries(s) {
				if kept := keptElems(s, ks); len(kept.Elems) > 0 {
					out.AddElems = append(out.AddElems, kept)
				}
			}
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
			want := setElements(s)
			del, add := elemDiff(ks.Elems, want)
			if len(del)+len(add) == 0 {
				break // the same boundaries: the same intervals
			}
			delItems, addItems := itemDiff(elemItems(s, ks.Elems), elemItems(s, want))
			if len(del)+len(delItems) > 0 {
				out.DelElems = append(out.DelElems, setElems{Set: s.Name, Elems: del, Items: delItems})
			}
			if len(add)+len(addItems) > 0 {
				out.AddElems = append(out.AddElems, setElems{Set: s.Name, Elems: add, Items: addItems})
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
		if ok && c.Hook != HookNone && kc.Policy != "accept" {
			out.Base = append(out.Base, c)
		}
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
	want := NewSetState(s)
	const typeFlags = unix.NFT_SET_INTERVAL | unix.NFT_SET_MAP | nftSetConcat | unix.NFT_SET_OBJECT | unix.NFT_SET_TIMEOUT | unix.NFT_SET_EVAL
	return ks.Flags&typeFlags == want.Flags && ks.KeyType == want.KeyType && ks.DataType == want.DataType && ks.Comment == want.Comment
}

// NewSetState returns the set that Apply creates for s as Read reports it:
// its name, comment, flags and types, without elements.
func NewSetState(s *Set) SetState {
	ns := setHeader(nil, s)
	st := SetState{Name: s.Name, Comment: ns.Comment, KeyType: ns.KeyType.GetNFTMagic()}
	if ns.Interval {
		st.Flags |= unix.NFT_SET_INTERVAL
	}
	if ns.HasTimeout {
		st.Flags |= unix.NFT_SET_TIMEOUT
	}
	if ns.Dynamic {
		st.Flags |= unix.NFT_SET_EVAL
	}
	if ns.IsMap {
		st.Flags |= unix.NFT_SET_MAP
		st.DataType = ns.DataType.GetNFTMagic()
		if ns.DataType.Name == nftables.TypeVerdict.Name {
			st.DataType = unix.NFT_DATA_VERDICT // what AddSet sends for TypeVerdict
		}
	}
	return st
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
	h, w := groupIntervals(have), groupIntervals(want)
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

// groupIntervals groups elements into intervals: a start and the end that
// follows it, if one does (an interval that runs to the end of the key
// space has none; the elements of a set without intervals stand alone).
func groupIntervals(es []nftables.SetElement) elemIntervals {
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
	key := func(e VMapElem) string { return fmt.Sprintf("%s|%s|%d", e.Key, e.Addr, e.Port) }
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
// order: their expressions as the kernel returns them, and their labels,
// which record the set digests of t (digests).
func sameRules(c *Chain, kc *ChainState, digests map[string]string) bool {
	if len(c.Rules) != len(kc.Rules) {
		return false
	}
	for i, r := range c.Rules {
		k := &kc.Rules[i]
		if k.Digest != r.Digest() || setRefs(r, digests) != setRefs(r, k.Sets) || k.Exprs != r.ExprKey() {
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

// Sets lists the named sets and maps the rule looks up, in order.
func (r *Rule) Sets() []string { return r.sets() }

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
		case CtOrigDPort:
			if m.Set != "" {
				out = append(out, m.Set)
			}
		case NDTarget:
			if m.Set != "" {
				out = append(out, m.Set)
			}
		case Lookup:
			out = append(out, m.Set)
		}
	}
	if r.Meter != nil {
		out = append(out, r.Meter.Set)
	}
	if r.Verdict.Kind == VMap {
		out = append(out, r.Verdict.Target)
	}
	return out
}

// baseChainsMatch reports whether the kernel's base chains can be kept:
// every base chain that t and the kernel both have (by name) has the same
// hook and priority, every base chain of the kernel is of type filter, and
// no base chain that only t has shares its hook with one that only the
// kernel has; the plan then changes the table in place.
//
// Base chains are never deleted and created again in one transaction: the
// kernel registers a new base chain's hook before the commit, ahead of an old
// one of equal priority, so a packet could cross the new chain before the
// commit (still empty) and the old one after it (already empty) and pass. A
// change of priority (or a foreign base chain) replaces the whole table, and
// that one apply has the window; the README says so.
//
// A base chain that only t has, or only the kernel has, on a hook where
// none of the other kind is, is added or deleted in place: it takes the
// place of no chain, so no packet can miss both. Before the commit a new
// one is empty (its policy is accept) and the kept chains judge as
// before; after it, a deleted one is gone. So a container's port chain
// (ingress device) starting or stopping, the chains of names coming and
// going, or a container publishing port 53 (the output chain goes) do not
// replace the table, and the sets keep their elements as they are: those
// the daemon learns at run time included.
func (t *Table) baseChainsMatch(have *State) bool {
	want := map[string]*Chain{}
	regular := map[string]bool{}
	for _, c := range t.Chains {
		if c.Hook != HookNone {
			want[c.Name] = c
		} else {
			regular[c.Name] = true
		}
	}
	kept := map[string]bool{}
	goneHooks := map[string]bool{}
	for _, c := range have.Chains {
		if c.Hook == "" {
			if want[c.Name] != nil {
				// A regular chain where a base chain belongs (someone
				// else's doing): the kernel cannot turn it into one.
				return false
			}
			continue
		}
		if c.Type != "filter" {
			return false
		}
		w, ok := want[c.Name]
		if !ok {
			if regular[c.Name] {
				return false // a base chain where a regular one belongs
			}
			goneHooks[c.Hook] = true // deleted in place
			continue
		}
		if w.HookText() != c.Hook || c.Priority != t.ChainPriority(w) {
			return false
		}
		kept[c.Name] = true
	}
	for name, c := range want {
		if !kept[name] && goneHooks[c.HookText()] {
			return false // a new chain in the place of a deleted one
		}
	}
	return true
}

// flagPlan is what a plan does with the table's flags.
type flagPlan struct {
	// flags are sent with every NEWTABLE of the plan.
	flags TableFlags
	// change says that the kernel's table needs them (it is dormant):
	// the main transaction sends them even if nothing else changes.
	change bool
	// adopt says that the table is orphaned and the backend owns tables:
	// a transaction of its own takes it first.
	adopt bool
	// replace says that the kernel's table cannot take the flags (flag
	// persist cannot be added to a table): the table is created anew.
	replace bool
}

// OwnedError reports a table owned by a socket other than the backend's,
// which the backend would own: another dockerfence daemon, most likely.
type OwnedError struct {
	Family Family
	Table  string
	// Port is the netlink port ID of the owner.
	Port uint32
}

func (e *OwnedError) Error() string {
	return fmt.Sprintf("table %s %s is owned by another process's netlink socket (port %d), and only its owner can change it: is another dockerfence daemon running?", e.Family, e.Table, e.Port)
}

// planFlags decides the table flags of a plan from the backend's
// protection p and the kernel's table have (nil if none). A table is
// created with p's flags. A backend that owns tables adopts an orphaned
// one, replaces one without flag persist (the kernel cannot add it; the
// table is owned from then on), and refuses one owned by another socket.
// Other backends keep the flags a table has: persist cannot be removed,
// and owner is not theirs to take or give. Every backend clears dormant.
func planFlags(p Protection, fam Family, table string, have *State) (flagPlan, error) {
	if have == nil {
		return flagPlan{flags: p.Flags}, nil
	}
	cur := have.Flags & flagMask
	if p.Flags&FlagOwner == 0 {
		return flagPlan{flags: cur &^ FlagDormant, change: cur&FlagDormant != 0}, nil
	}
	switch {
	case cur&FlagOwner != 0 && have.Owner != p.Port:
		return flagPlan{}, &OwnedError{Family: fam, Table: table, Port: have.Owner}
	case cur&FlagPersist == 0:
		return flagPlan{flags: p.Flags, replace: true}, nil
	case cur&FlagOwner == 0:
		return flagPlan{flags: p.Flags, adopt: true}, nil
	}
	return flagPlan{flags: p.Flags, change: cur != p.Flags}, nil
}

// plan returns the plan that turns have into t, whose set digests are
// digests (t.setDigests). have must hold the elements of the sets needDump
// names; a set whose elements were not read is replaced whole. Without a
// table, or with other base chains (see baseChainsMatch), the main
// transaction creates the table from nothing, deleting the old one first;
// the sets keepSets names, if dumped, keep their live elements then (see
// keptElems).
func (t *Table) plan(have *State, digests map[string]string, fp flagPlan) *Plan {
	p := &Plan{Table: t, Have: have}
	newTx := func() *Transaction { return &Transaction{Table: t.Name, Priority: t.Priority} }
	addTable := Op{Kind: OpAddTable, Flags: fp.flags, SetFlags: true}
	if fp.adopt {
		adopt := newTx()
		adopt.Ops = []Op{addTable}
		p.Txs, p.Adopts = []*Transaction{adopt}, true
	}
	var ch *changes
	replace := have != nil
	if have != nil && !fp.replace && t.baseChainsMatch(have) {
		ch, replace = t.changes(have, digests), false
		if ch.empty() && !fp.change {
			return p
		}
	} else {
		ch = t.fresh(have)
	}
	if len(ch.Stage) > 0 {
		stage, undo := newTx(), newTx()
		stage.Ops = append(stage.Ops, addTable)
		for _, s := range ch.Stage {
			stage.Ops = append(stage.Ops, Op{Kind: OpAddSet, Set: s})
			undo.Ops = append(undo.Ops, Op{Kind: OpDeleteSet, Name: s.Name, Map: s.Map})
		}
		p.Txs, p.Undo = append(p.Txs, stage), undo
	}
	tx := newTx()
	add := func(op Op) { tx.Ops = append(tx.Ops, op) }
	if replace {
		add(Op{Kind: OpDeleteTable})
	}
	add(addTable)
	for _, c := range ch.Base {
		add(Op{Kind: OpAddChain, Name: c.Name, Hook: c.Hook, Device: c.Device, PriorityOffset: c.PriorityOffset})
	}
	for _, name := range ch.Flush {
		add(Op{Kind: OpFlushChain, Name: name})
	}
	for _, m := range ch.DelMapElems {
		add(Op{Kind: OpDeleteElements, Name: m.Set, Map: true, VMap: m.Elems})
	}
	for _, m := range ch.DelElems {
		add(Op{Kind: OpDeleteElements, Name: m.Set, Elems: m.Elems, Items: m.Items})
	}
	for _, name := range ch.DelSets {
		add(Op{Kind: OpDeleteSet, Name: name, Map: have.isMap(name)})
	}
	for _, name := range ch.DelChains {
		add(Op{Kind: OpDeleteChain, Name: name})
	}
	for _, c := range ch.AddChains {
		add(Op{Kind: OpAddChain, Name: c.Name, Hook: c.Hook, Device: c.Device, PriorityOffset: c.PriorityOffset})
	}
	for _, s := range ch.AddSets {
		add(Op{Kind: OpAddSet, Set: s})
	}
	for _, m := range ch.AddElems {
		op := Op{Kind: OpAddElements, Name: m.Set, Elems: m.Elems, Items: m.Items}
		if m.Kept {
			op.Note = fmt.Sprintf("keeps the %d live elements of set %s, each with the time it has left", len(m.Items), m.Set)
		}
		add(op)
	}
	for _, m := range ch.AddMapElems {
		add(Op{Kind: OpAddElements, Name: m.Set, Map: true, VMap: m.Elems})
	}
	for _, c := range ch.Fill {
		for _, r := range c.Rules {
			add(Op{Kind: OpAddRule, Name: c.Name, Rule: r, UserData: ruleUserData(r, digests)})
		}
	}
	p.Txs = append(p.Txs, tx)
	return p
}

// vmapElements renders verdict-map elements for google/nftables.
func vmapElements(in []VMapElem) []nftables.SetElement {
	out := make([]nftables.SetElement, len(in))
	for i, e := range in {
		key := ifname(e.Key)
		switch {
		case e.Addr.IsValid():
			key = e.Addr.AsSlice()
		case e.Port != 0:
			key = binary.BigEndian.AppendUint16(nil, e.Port)
		}
		kind := expr.VerdictGoto
		if e.Jump {
			kind = expr.VerdictJump
		}
		out[i] = nftables.SetElement{Key: key, VerdictData: &expr.Verdict{Kind: kind, Chain: e.Chain}}
	}
	return out
}

// String renders the map element in nft syntax: "key" : goto chain.
func (e VMapElem) String() string { return vmapElemText(e) }

// vmapElemText renders a map element in nft syntax.
func vmapElemText(e VMapElem) string {
	key := vmapKeyText(e)
	switch {
	case e.Chain == "":
		return key + " : (not a goto)"
	case e.Jump:
		return key + " : jump " + e.Chain
	}
	return key + " : goto " + e.Chain
}
