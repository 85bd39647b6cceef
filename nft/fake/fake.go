// Package fake is an in-memory nf_tables kernel for tests, in the spirit of
// sigs.k8s.io/knftables' fake: it takes the transactions that nft.Kernel
// sends over netlink (the same nft.Transaction values, computed by the same
// plan), applies them to tables in memory with the kernel's checks, reads
// them back as the kernel reports them, and tells watchers about changes
// that others make. Tests inspect the result as a model table.
//
// What it checks, as the kernel does: a transaction applies whole or not at
// all; a command on a missing table, chain, set or element fails (ENOENT);
// a set that a rule looks up, or a chain that a rule or map element goes
// to, cannot be deleted (EBUSY); an element with a timeout needs a set with
// flag timeout, and a key of the set's length (EINVAL); a map key cannot be
// added again with another verdict (EEXIST). Elements with a timeout expire
// on the clock (time.Now, which a synctest bubble fakes).
//
// It keeps table flags as the kernel does (see Own and Exit): an owned
// table refuses others' commits (EPERM), flag persist can be neither added
// nor removed, an orphaned table is adopted by a commit that asks for flag
// owner, and any flag change that the kernel refuses is refused
// (EOPNOTSUPP).
//
// What it does not model: packets and counters, overlapping intervals. A
// rule's expressions are those of the model rule it was encoded from, and
// read back in canonical form (nft.KernelRule), as the kernel's would be.
package fake

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Kernel is an in-memory nf_tables holding inet tables. It implements
// nft.Backend, and what the daemon needs of a kernel (Apply, Read, Watch).
// Its methods are safe for concurrent use. The zero value is not usable:
// call New.
type Kernel struct {
	mu       sync.Mutex
	tables   map[string]*table
	handle   uint64
	watchers []*watcher
	// log lists the transactions committed through Commit.
	log []*nft.Transaction
	// dumped lists the sets whose elements Dump read, in order.
	dumped []string
	// refuse, if set, is called with every transaction Commit is given;
	// an error it returns refuses the transaction.
	refuse func(*nft.Transaction) error
	// owns makes Commit's tables owned by port, as a lasting nft.Kernel's
	// are; port is the netlink port of the socket Commit stands for.
	owns bool
	port uint32
}

// New returns a kernel without tables. Its Commit stands for a one-shot
// nft.Kernel on Linux 6.9 or later: the tables it creates have flag
// persist, and no owner.
func New() *Kernel {
	return &Kernel{tables: map[string]*table{}, port: FirstPort}
}

// Others' commits are reported to watchers as this process, and come from
// a socket of port OtherPort.
const (
	OtherPid  = 4242
	OtherProc = "nft"
	OtherPort = 4242
)

// FirstPort is the netlink port of the socket Commit stands for, until Exit.
const FirstPort = 1000

// Own makes Commit stand for a lasting nft.Kernel on Linux 6.9 or later:
// the tables it creates are owned (flags owner and persist) by its port,
// which others cannot change, and it adopts orphaned ones.
func (k *Kernel) Own() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.owns = true
}

// Exit plays the exit of the process whose socket Commit stands for: the
// tables it owns lose their owner (they have flag persist: they stay), and
// Commit stands for a new socket, of another port, from then on.
func (k *Kernel) Exit() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, t := range k.tables {
		if t.flags&nft.FlagOwner != 0 && t.owner == k.port {
			t.flags &^= nft.FlagOwner
			t.owner = 0
		}
	}
	k.port++
}

// Protection returns the protection nft.Kernel would report for the
// socket Commit stands for (see New and Own).
func (k *Kernel) Protection() (nft.Protection, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.owns {
		return nft.Protection{Flags: nft.FlagOwner | nft.FlagPersist, Port: k.port, Why: "owned by the fake's socket"}, nil
	}
	return nft.Protection{Flags: nft.FlagPersist, Port: k.port, Why: "persistent, not owned"}, nil
}

func (k *Kernel) now() time.Time { return time.Now() }

// Apply makes the table equal to t, as nft.Kernel.Apply does, with the
// same plan and flow.
func (k *Kernel) Apply(t *nft.Table, verify ...string) (bool, error) {
	return nft.ApplyTo(k, t, verify...)
}

// Verify is Apply that reads every set the model owns in full, as
// nft.Kernel.Verify does.
func (k *Kernel) Verify(t *nft.Table) (bool, error) {
	return nft.ApplyTo(k, t, t.OwnedSets()...)
}

// Plan returns what Apply would do now.
func (k *Kernel) Plan(t *nft.Table, verify ...string) (*nft.Plan, error) {
	return nft.MakePlan(k, t, verify...)
}

// Commit applies one transaction as dockerfence's own: whole, or not at
// all. Watchers are not told (see CommitAs).
func (k *Kernel) Commit(tx *nft.Transaction) error {
	k.mu.Lock()
	refuse := k.refuse
	k.mu.Unlock()
	if refuse != nil {
		if err := refuse(tx); err != nil {
			return fmt.Errorf("apply table inet %s: the kernel refused the transaction, the previous table is unchanged: %w", tx.Table, err)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.commit(tx, k.port); err != nil {
		return fmt.Errorf("apply table inet %s: the kernel refused the transaction, the previous table is unchanged: %w", tx.Table, err)
	}
	k.log = append(k.log, tx)
	return nil
}

// Update changes the elements of one set in one transaction, as
// nft.Kernel.Update does.
func (k *Kernel) Update(table, set string, add, del []nft.Element) error {
	tx := nft.UpdateTx(table, set, add, del)
	if len(tx.Ops) == 0 {
		return nil
	}
	return k.Commit(tx)
}

// Elements returns the elements that a set of the table holds now, in
// nft syntax, each with its timeout and when it expires; nil if there is
// no such set. A map's elements are its keys and verdicts.
func (k *Kernel) Elements(table, name string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.tables[table]
	if t == nil || t.set(name) == nil {
		return nil
	}
	s := t.set(name)
	k.live(s)
	var out []string
	if s.hdr.Flags&unix.NFT_SET_MAP != 0 {
		for _, e := range s.vmap {
			out = append(out, e.String())
		}
		return out
	}
	// Elements are kept as interval boundaries, each with its expiry:
	// the start's is the interval's. IntervalItems renders one item a
	// start, in key order.
	elems := slices.Clone(s.elems)
	slices.SortStableFunc(elems, func(a, b elem) int { return bytes.Compare(a.Key, b.Key) })
	var plain []nftables.SetElement
	var starts []elem
	for _, e := range elems {
		plain = append(plain, e.SetElement)
		if !e.IntervalEnd {
			starts = append(starts, e)
		}
	}
	for i, item := range nft.IntervalItems(plain) {
		if e := starts[i]; !e.expires.IsZero() {
			item += fmt.Sprintf(" timeout %v expires %v", e.Timeout, e.expires.Sub(k.now()))
		}
		out = append(out, item)
	}
	return out
}

// Refuse makes Commit call fn with every transaction first; an error fn
// returns refuses the transaction, as the kernel would. nil stops it.
func (k *Kernel) Refuse(fn func(*nft.Transaction) error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refuse = fn
}

// commit applies tx, from the socket of port, to a copy of the tables and
// keeps the copy only if every command succeeded.
func (k *Kernel) commit(tx *nft.Transaction, port uint32) error {
	tables := make(map[string]*table, len(k.tables))
	for name, t := range k.tables {
		tables[name] = t
	}
	for _, f := range nft.Families {
		if t := tables[tableKey(f, tx.Table)]; t != nil {
			tables[tableKey(f, tx.Table)] = t.clone()
		}
	}
	handle := k.handle
	for _, op := range tx.Ops {
		if err := k.apply(tables, tx.Table, tx, op, port); err != nil {
			k.handle = handle
			return err
		}
	}
	k.tables = tables
	return nil
}

// CommitAs applies tx as another process (OtherPid, OtherProc) would, say
// nft by hand: watchers of the table are told, with the sets whose elements
// it changed.
func (k *Kernel) CommitAs(tx *nft.Transaction) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.commit(tx, OtherPort); err != nil {
		return err
	}
	ch := nft.Change{Pid: OtherPid, Proc: OtherProc, Port: OtherPort}
	for _, op := range tx.Ops {
		name := op.Name
		if op.Kind == nft.OpAddSet {
			name = op.Set.Name
		}
		if (op.Kind == nft.OpAddElements || op.Kind == nft.OpDeleteElements || op.Kind == nft.OpAddSet) && !slices.Contains(ch.Sets, name) {
			ch.Sets = append(ch.Sets, name)
		}
	}
	k.notify(tx.Table, ch)
	return nil
}

// notify tells the watchers of table about another process's change.
func (k *Kernel) notify(table string, ch nft.Change) {
	for _, w := range k.watchers {
		if w.table != table {
			continue
		}
		select {
		case w.ch <- ch:
		default:
			w.overrun = true
		}
	}
}

// Transactions returns the transactions committed through Commit, in order.
func (k *Kernel) Transactions() []*nft.Transaction {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.log)
}

// Read returns the table as nft.Kernel.Read would: its flags and owner,
// chains with their hooks, types and policies, rules (handles, canonical
// expressions, user data and dockerfence's tags, counters at zero), sets
// with their flags, types and comments, maps with their elements; plain
// sets without elements, but with the digest their rules record.
func (k *Kernel) Read(name string) (*nft.State, error) {
	return k.ReadFamily(nft.FamilyInet, name)
}

// ReadFamily is Read of the table of family fam, as
// nft.Kernel.ReadFamily.
func (k *Kernel) ReadFamily(fam nft.Family, name string) (*nft.State, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.tables[tableKey(fam, name)]
	if t == nil {
		return nil, nil
	}
	st := &nft.State{Name: name, Family: fam, Flags: t.flags, Owner: t.owner}
	for _, c := range t.chains {
		cs := nft.ChainState{Name: c.name, Hook: (&nft.Chain{Hook: c.hook, Device: c.device}).HookText()}
		if c.hook != nft.HookNone {
			cs.Priority, cs.Type, cs.Policy = c.priority, "filter", c.policy
		}
		for _, r := range c.rules {
			rs := nft.KernelRule(r.r, r.ud)
			rs.Handle = r.handle
			cs.Rules = append(cs.Rules, rs)
		}
		st.Chains = append(st.Chains, cs)
	}
	for _, s := range t.sets {
		ss := s.hdr
		if s.hdr.Flags&unix.NFT_SET_MAP != 0 {
			ss.VMap = slices.Clone(s.vmap)
		}
		st.Sets = append(st.Sets, ss)
	}
	st.Finish()
	return st, nil
}

// Dump reads the elements of the named plain sets into st, as
// nft.Kernel.Dump does: keys, interval ends, and for elements with a
// timeout, the timeout and the time they have left (Expires), in
// milliseconds as the kernel counts them.
func (k *Kernel) Dump(st *nft.State, names []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.tables[tableKey(st.Family, st.Name)]
	for _, name := range names {
		var s *set
		if t != nil {
			s = t.set(name)
		}
		if s == nil {
			return fmt.Errorf("read set %s of inet %s: %w", name, st.Name, unix.ENOENT)
		}
		k.live(s)
		k.dumped = append(k.dumped, name)
		for i := range st.Sets {
			if st.Sets[i].Name != name {
				continue
			}
			st.Sets[i].Elems = nil
			for _, e := range s.elems {
				de := nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd, Timeout: e.Timeout}
				if !e.expires.IsZero() {
					de.Expires = e.expires.Sub(k.now()).Truncate(time.Millisecond)
				}
				st.Sets[i].Elems = append(st.Sets[i].Elems, de)
			}
			st.Sets[i].Dumped = true
		}
	}
	return nil
}

// Dumped returns the names of the sets whose elements Dump has read, in
// order, once a read: tests tell from it which plans read which sets.
func (k *Kernel) Dumped() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.dumped)
}

// Table returns the table as a model (nil if there is none), for tests to
// inspect: its chains and rules as committed (others' rules included), its
// sets with the elements they hold now, its priority that of its base
// chains; its Netdev and Bridge the netdev and bridge tables of that
// name, if any. Its Body
// renders it in nft syntax.
func (k *Kernel) Table(name string) *nft.Table {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := k.table(nft.FamilyInet, name)
	if out != nil {
		out.Netdev = k.table(nft.FamilyNetdev, name)
		out.Bridge = k.table(nft.FamilyBridge, name)
	}
	return out
}

// TableOf returns the table of family fam as a model (see Table), nil if
// there is none.
func (k *Kernel) TableOf(fam nft.Family, name string) *nft.Table {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.table(fam, name)
}

func (k *Kernel) table(fam nft.Family, name string) *nft.Table {
	t := k.tables[tableKey(fam, name)]
	if t == nil {
		return nil
	}
	out := &nft.Table{Name: name, Family: fam}
	// The table's priority is its lowest base chain's; the others hook
	// after it by their offset.
	first := true
	for _, c := range t.chains {
		if c.hook != nft.HookNone && (first || c.priority < out.Priority) {
			out.Priority, first = c.priority, false
		}
	}
	for _, c := range t.chains {
		mc := &nft.Chain{Name: c.name, Hook: c.hook, Device: c.device}
		if c.hook != nft.HookNone {
			mc.PriorityOffset = c.priority - out.Priority
		}
		for _, r := range c.rules {
			mc.Rules = append(mc.Rules, r.r)
		}
		out.Chains = append(out.Chains, mc)
	}
	for _, s := range t.sets {
		k.live(s)
		ms := *s.model
		if ms.Map {
			ms.VMap = slices.Clone(s.vmap)
			sort.Slice(ms.VMap, func(i, j int) bool {
				a, b := ms.VMap[i], ms.VMap[j]
				if a.Key != b.Key {
					return a.Key < b.Key
				}
				if a.Port != b.Port {
					return a.Port < b.Port
				}
				return a.Addr.Less(b.Addr)
			})
		} else {
			var elems []nftables.SetElement
			for _, e := range s.elems {
				elems = append(elems, e.SetElement)
			}
			ms.LoadElements(elems)
		}
		out.Sets = append(out.Sets, &ms)
	}
	return out
}

// watcher is one Watch call.
type watcher struct {
	table   string
	ch      chan nft.Change
	overrun bool
}

// watchBuffer is how many changes a watcher holds before it overruns.
const watchBuffer = 64

// Watch reports on out the changes that others make to the table
// (CommitAs and the helpers built on it), as nft.Kernel.Watch does, until
// ctx ends. It returns nft.ErrOverrun when more changes came than it could
// hold, or after Overrun.
func (k *Kernel) Watch(ctx context.Context, table string, out chan<- nft.Change, ready func()) error {
	w := &watcher{table: table, ch: make(chan nft.Change, watchBuffer)}
	k.mu.Lock()
	k.watchers = append(k.watchers, w)
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.watchers = slices.DeleteFunc(k.watchers, func(x *watcher) bool { return x == w })
	}()
	if ready != nil {
		ready()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ch := <-w.ch:
			if ch.Pid == 0 {
				return nft.ErrOverrun
			}
			k.mu.Lock()
			overrun := w.overrun
			k.mu.Unlock()
			if overrun {
				return nft.ErrOverrun
			}
			select {
			case out <- ch:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// Overrun makes every Watch return nft.ErrOverrun, as when the kernel
// dropped notifications.
func (k *Kernel) Overrun() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, w := range k.watchers {
		w.overrun = true
		select {
		case w.ch <- nft.Change{}:
		default:
		}
	}
}

// Watchers returns how many Watch calls are subscribed.
func (k *Kernel) Watchers() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.watchers)
}

// Delete removes the inet, netdev and bridge tables of that name as dockerfence's
// own socket, in one transaction, as nft.Kernel.Delete does; it reports
// whether either existed.
func (k *Kernel) Delete(name string) (bool, error) {
	tx := &nft.Transaction{Table: name}
	for _, f := range nft.Families {
		if k.TableOf(f, name) != nil {
			tx.Ops = append(tx.Ops, nft.Op{Kind: nft.OpDeleteTable, Family: f})
		}
	}
	if len(tx.Ops) == 0 {
		return false, nil
	}
	return true, k.Commit(tx)
}
