package nft

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
)

// OpKind is what one command of a transaction does.
type OpKind int

// Commands, in nft terms.
const (
	OpAddTable OpKind = iota + 1
	OpDeleteTable
	OpAddChain
	OpFlushChain
	OpDeleteChain
	OpAddSet
	OpDeleteSet
	OpAddElements
	OpDeleteElements
	OpAddRule
)

// Op is one command of a transaction. Which fields it uses depends on Kind:
//
//   - OpAddTable: with SetFlags, Flags: the table is created with them, or
//     an existing table's flags become them (the kernel refuses to add or
//     remove flag persist, to drop flag owner, or to give an owned table
//     to another socket). Without SetFlags, an existing table keeps its
//     flags and a new one has none.
//   - OpAddChain: Name and Hook (a base chain takes the transaction's
//     Priority plus PriorityOffset, and policy accept).
//   - OpFlushChain, OpDeleteChain: Name.
//   - OpAddSet: Set, created with its elements.
//   - OpDeleteSet: Name, and Map for a verdict map.
//   - OpAddElements, OpDeleteElements: Name, and the elements: Elems for a
//     plain set, VMap (with Map set) for a verdict map.
//   - OpAddRule: Rule, appended to chain Name, with UserData.
type Op struct {
	Kind OpKind
	// Family is the family of the table the command works on: the
	// transaction's table of that name in that family.
	Family   Family
	Flags    TableFlags
	SetFlags bool
	Name     string
	Hook     Hook
	// Device is the device of an ingress chain (Hook HookIngress).
	Device string
	// PriorityOffset is how far after the transaction's Priority a base
	// chain hooks (Chain.PriorityOffset).
	PriorityOffset int
	Map            bool
	Set            *Set
	Rule           *Rule
	// UserData is what the rule carries in the kernel: its comment and
	// dockerfence's tags (see RuleStateOf).
	UserData []byte
	// Elems are a plain set's elements as the kernel stores them:
	// interval boundaries, with per-element timeouts for timeout sets.
	Elems []nftables.SetElement
	// Items renders Elems in nft syntax. An interval is one item there,
	// so where one boundary of an interval changes and the other stays,
	// Elems (what the batch sends) keep the one that stays, while Items
	// delete and add the whole interval: nft -f of the text ends with the
	// same elements.
	Items []string
	VMap  []VMapElem
	// Note, if set, says why the command is there, for people: the text
	// of the transaction has it as a comment line before the command.
	Note string
}

// Transaction is one nf_tables transaction on the tables of one name (the
// inet one, and its netdev one; see Op.Family): the kernel commits all of
// its commands at once, or none.
type Transaction struct {
	Table string
	// Priority is the hook priority of the base chains the transaction adds.
	Priority int
	Ops      []Op
}

// String renders the transaction in nft syntax, one command a line, in the
// order the batch sends them. nft -f reads it, with two limits: nft cannot
// write dockerfence's rule tags, so a table loaded so differs from one
// applied in its rules' user data (nothing else), and deleting an interval
// needs the interval as the kernel has it.
func (tx *Transaction) String() string {
	var b strings.Builder
	for _, op := range tx.Ops {
		if text := tx.opText(op); text != "" {
			if op.Note != "" {
				b.WriteString("# " + op.Note + "\n")
			}
			b.WriteString(text)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func (tx *Transaction) opText(op Op) string {
	tbl := op.Family.String() + " " + tx.Table
	obj := func(verb, kind, name string) string { return verb + " " + kind + " " + tbl + " " + name }
	setKind := "set"
	if op.Map || (op.Set != nil && op.Set.Map) {
		setKind = "map"
	}
	switch op.Kind {
	case OpAddTable:
		return "add table " + tbl
	case OpDeleteTable:
		return "delete table " + tbl
	case OpAddChain:
		if op.Hook != HookNone {
			c := Chain{Hook: op.Hook, Device: op.Device}
			return obj("add", "chain", op.Name) + fmt.Sprintf(" { type filter hook %s priority %d; policy accept; }", c.HookText(), tx.Priority+op.PriorityOffset)
		}
		return obj("add", "chain", op.Name)
	case OpFlushChain:
		return obj("flush", "chain", op.Name)
	case OpDeleteChain:
		return obj("delete", "chain", op.Name)
	case OpAddSet:
		return obj("add", setKind, op.Set.Name) + " { " + setSpec(op.Set) + "; }"
	case OpDeleteSet:
		return obj("delete", setKind, op.Name)
	case OpAddElements, OpDeleteElements:
		verb := "add"
		if op.Kind == OpDeleteElements {
			verb = "delete"
		}
		items := op.Items
		if op.Map {
			items = make([]string, len(op.VMap))
			for i, e := range op.VMap {
				if op.Kind == OpDeleteElements {
					items[i] = vmapKeyText(e)
				} else {
					items[i] = vmapElemText(e)
				}
			}
		}
		if len(items) == 0 {
			return "" // boundaries that change no interval (see Op.Items)
		}
		return obj(verb, "element", op.Name) + " { " + strings.Join(items, ", ") + " }"
	case OpAddRule:
		return obj("add", "rule", op.Name) + " " + op.Rule.Text()
	}
	return fmt.Sprintf("# unknown command %d", op.Kind)
}

// setSpec renders a set's type, flags, comment and elements as one line
// of nft syntax, without braces.
func setSpec(s *Set) string {
	parts := []string{"type " + s.Key.String()}
	if s.Map {
		parts[0] += " : verdict"
	}
	if flags := s.flagNames(); len(flags) > 0 {
		parts = append(parts, "flags "+strings.Join(flags, ","))
	}
	parts = append(parts, fmt.Sprintf("comment %q", s.comment()))
	if items := setItems(s); len(items) > 0 {
		parts = append(parts, "elements = { "+strings.Join(items, ", ")+" }")
	}
	return strings.Join(parts, "; ")
}

// setItems renders the model's elements of a set in nft syntax.
func setItems(s *Set) []string {
	var items []string
	switch {
	case s.Map:
		for _, e := range s.VMap {
			items = append(items, vmapElemText(e))
		}
	case s.Key == KeyService:
		for _, p := range s.Ports {
			items = append(items, p.String())
		}
	case s.Key.tuple():
		for _, k := range sortedTupleKeys(s) {
			u, _ := tupleOf(s.Key, k)
			items = append(items, u.text(s.Key))
		}
	default:
		for _, r := range s.Ranges {
			items = append(items, rangeText(r))
		}
	}
	return items
}

// vmapKeyText renders a map element's key in nft syntax.
func vmapKeyText(e VMapElem) string {
	if e.Addr.IsValid() {
		return e.Addr.String()
	}
	if e.Port != 0 {
		return fmt.Sprint(e.Port)
	}
	return fmt.Sprintf("%q", e.Key)
}

// Plan is what applying a model table does to the kernel's table: the
// transactions Apply sends, computed from the table the kernel has.
type Plan struct {
	// Table is the model the plan makes the kernel's table equal to.
	Table *Table
	// Have is the kernel's table the plan was computed from (nil if there
	// was none), with the elements of the sets that had to be read.
	// It holds the netdev table of the same name (State.Netdev), read
	// with it.
	Have *State
	// Txs are the transactions, in the order they are sent: the one that
	// adopts an orphaned table (see Adopts), the one that stages new sets,
	// if any, then the main one. There are none when the kernel's table
	// already matches.
	Txs []*Transaction
	// Adopts says that the first transaction takes an orphaned table for
	// the backend's socket (flag owner, see OwnAuto), and nothing else:
	// ApplyTo sends it alone, then plans again from what the kernel has
	// once no one else can change it.
	Adopts bool
	// Undo deletes the staged sets again; it is sent if the main
	// transaction fails after the staging one was committed.
	Undo *Transaction
}

// Empty reports whether the plan leaves the kernel's table as it is.
func (p *Plan) Empty() bool { return len(p.Txs) == 0 }

// String renders the plan in nft syntax, one command a line, transaction
// after transaction in the order Apply sends them, each introduced by a
// comment line. nft -f reads it (in one transaction); see
// Transaction.String for what it cannot say.
func (p *Plan) String() string {
	var b strings.Builder
	for i, tx := range p.Txs {
		what := "the switch-over"
		switch {
		case p.Adopts && i == 0:
			what = "adopt the orphaned table (flags owner, persist)"
		case i < len(p.Txs)-1:
			what = "the new sets, before anything refers to them"
		}
		fmt.Fprintf(&b, "# transaction %d of %d: %s\n", i+1, len(p.Txs), what)
		b.WriteString(tx.String())
	}
	return b.String()
}

// Backend is a kernel that plans are computed against and sent to: Kernel,
// or the fake of package nft/fake.
type Backend interface {
	// ReadFamily returns the table of family fam as the kernel has it
	// (nil if it has none), without the elements of plain sets.
	ReadFamily(fam Family, table string) (*State, error)
	// Dump reads the elements of the named plain sets of st into it.
	Dump(st *State, sets []string) error
	// Commit sends one transaction; on error the tables are as they were.
	Commit(tx *Transaction) error
	// Protection says which table flags the backend writes its tables
	// with, and the port of its socket (the owner, with flag owner).
	Protection() (Protection, error)
}

// MakePlan reads the kernel's table through b, reads the elements of the
// sets the plan must edit (and of those named in verify), and returns the
// plan that makes it equal to t. The netdev and bridge tables of t's name
// are planned too, into the same transactions (see Table.Netdev,
// Table.Bridge): created, changed or deleted with the inet one.
func MakePlan(b Backend, t *Table, verify ...string) (*Plan, error) {
	prot, err := b.Protection()
	if err != nil {
		return nil, err
	}
	p, err := planTable(b, prot, t, verify)
	if err != nil || t.Family != FamilyInet {
		return p, err
	}
	if p.Have != nil {
		p.Have.NetdevRead = true
	}
	for _, f := range sideFamilies {
		var pn *Plan
		if st := t.side(f); st != nil {
			if pn, err = planTable(b, prot, st, verify); err != nil {
				return nil, err
			}
		} else {
			have, err := b.ReadFamily(f, t.Name)
			if err != nil {
				return nil, err
			}
			if have == nil {
				continue
			}
			pn = &Plan{Have: have, Txs: []*Transaction{{Table: t.Name, Priority: t.Priority, Ops: []Op{{Kind: OpDeleteTable}}}}}
		}
		pn.setFamily(f)
		if p.Have != nil {
			p.Have.setSide(f, pn.Have)
		}
		p = p.merge(pn)
	}
	return p, nil
}

// planTable is MakePlan of one table, of t's family.
func planTable(b Backend, prot Protection, t *Table, verify []string) (*Plan, error) {
	have, err := b.ReadFamily(t.Family, t.Name)
	if err != nil {
		return nil, err
	}
	fp, err := planFlags(prot, t.Family, t.Name, have)
	if err != nil {
		return nil, err
	}
	digests := t.setDigests()
	switch {
	case have == nil:
	case !fp.replace && t.baseChainsMatch(have):
		if err := b.Dump(have, t.needDump(have, digests, verify...)); err != nil {
			return nil, err
		}
	default:
		// The table is replaced: only the sets that keep their elements
		// are read (see keepSets), and only now.
		if err := b.Dump(have, t.keepSets(have)); err != nil {
			return nil, err
		}
	}
	return t.plan(have, digests, fp), nil
}

// setFamily makes every command of the plan one on the table of family f.
func (p *Plan) setFamily(f Family) {
	for _, tx := range append(slices.Clone(p.Txs), p.Undo) {
		if tx == nil {
			continue
		}
		for i := range tx.Ops {
			tx.Ops[i].Family = f
		}
	}
}

// parts returns the plan's transactions by what they do: adopt the
// orphaned table, stage new sets, switch over; nil for those it has not.
func (p *Plan) parts() (adopt, stage, main *Transaction) {
	txs := p.Txs
	if p.Adopts && len(txs) > 0 {
		adopt, txs = txs[0], txs[1:]
	}
	if p.Undo != nil && len(txs) > 0 {
		stage, txs = txs[0], txs[1:]
	}
	if len(txs) > 0 {
		main = txs[0]
	}
	return adopt, stage, main
}

// merge returns the plan that does what p and q do, in the same
// transactions: both adoptions in one, both stagings in one, both
// switch-overs in one, so that the kernel commits both tables' changes
// at once or neither.
func (p *Plan) merge(q *Plan) *Plan {
	pa, ps, pm := p.parts()
	qa, qs, qm := q.parts()
	out := &Plan{Table: p.Table, Have: p.Have, Adopts: p.Adopts || q.Adopts}
	join := func(a, b *Transaction) *Transaction {
		switch {
		case a == nil:
			return b
		case b == nil:
			return a
		}
		return &Transaction{Table: a.Table, Priority: a.Priority, Ops: append(slices.Clone(a.Ops), b.Ops...)}
	}
	for _, tx := range []*Transaction{join(pa, qa), join(ps, qs), join(pm, qm)} {
		if tx != nil {
			out.Txs = append(out.Txs, tx)
		}
	}
	out.Undo = join(p.Undo, q.Undo)
	return out
}

// Send commits the plan's transactions through b, in order. If the main
// transaction fails after the staging one was committed, it sends Undo,
// so that the kernel's table is as it was before (bar the staged sets, if
// even that fails).
func (p *Plan) Send(b Backend) error {
	for i, tx := range p.Txs {
		err := b.Commit(tx)
		if err == nil {
			continue
		}
		if i > 0 && i == len(p.Txs)-1 && p.Undo != nil {
			if cerr := b.Commit(p.Undo); cerr != nil {
				err = fmt.Errorf("%w; removing the sets staged for it also failed (%v), they are unused and the next apply deletes them", err, cerr)
			}
		}
		return err
	}
	return nil
}

// ApplyTo makes the table of b equal to t, and reports whether anything
// changed: MakePlan, then Send. Kernel.Apply documents it.
func ApplyTo(b Backend, t *Table, verify ...string) (bool, error) {
	p, err := MakePlan(b, t, verify...)
	if err != nil || p.Empty() {
		return false, err
	}
	adopted := false
	if p.Adopts {
		if err := b.Commit(p.Txs[0]); err != nil {
			return false, fmt.Errorf("adopt table %s: %w", t.Name, err)
		}
		adopted = true
		if p, err = MakePlan(b, t, verify...); err != nil || p.Empty() {
			return adopted, err
		}
	}
	if err := p.Send(b); err != nil {
		return adopted, err
	}
	return true, nil
}
