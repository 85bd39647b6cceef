package fake

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// tableKey is the key of the table of family f and that name in
// Kernel.tables: the name for inet tables.
func tableKey(f nft.Family, name string) string {
	if f == nft.FamilyInet {
		return name
	}
	return f.String() + " " + name
}

// table is one inet or netdev table as the fake kernel holds it.
type table struct {
	flags nft.TableFlags
	// owner is the port of the socket that owns the table (flag owner).
	owner  uint32
	chains []*chain // in the order they were created
	sets   []*set
}

type chain struct {
	name     string
	hook     nft.Hook
	device   string
	priority int
	// policy is a base chain's: "accept" or "drop".
	policy string
	rules  []*rule
}

// rule is a rule as the kernel holds it: its expressions (as the model
// rule they were encoded from) and its user data.
type rule struct {
	handle uint64
	r      *nft.Rule
	ud     []byte
}

type set struct {
	hdr nft.SetState
	// model holds the set's name, key and flags, to render it.
	model *nft.Set
	elems []elem
	vmap  []nft.VMapElem
}

// elem is an element of a plain set, with the time it expires (zero for never).
type elem struct {
	nftables.SetElement
	expires time.Time
}

func (t *table) chain(name string) *chain {
	for _, c := range t.chains {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (t *table) set(name string) *set {
	for _, s := range t.sets {
		if s.hdr.Name == name {
			return s
		}
	}
	return nil
}

// clone copies the table deeply enough that a transaction applied to the
// copy leaves t as it is.
func (t *table) clone() *table {
	out := &table{flags: t.flags, owner: t.owner}
	for _, c := range t.chains {
		cc := *c
		cc.rules = slices.Clone(c.rules)
		out.chains = append(out.chains, &cc)
	}
	for _, s := range t.sets {
		cs := *s
		cs.elems = slices.Clone(s.elems)
		cs.vmap = slices.Clone(s.vmap)
		out.sets = append(out.sets, &cs)
	}
	return out
}

// refusal is an error of the fake kernel: the errno the kernel gives, and
// the command it refused.
func refusal(errno unix.Errno, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), errno)
}

// apply applies one command to the tables, as the kernel does within a
// transaction, with the kernel's checks; port is the committing socket's.
func (k *Kernel) apply(tables map[string]*table, name string, tx *nft.Transaction, op nft.Op, port uint32) error {
	key := tableKey(op.Family, name)
	t := tables[key]
	if t != nil && t.flags&nft.FlagOwner != 0 && t.owner != port {
		return refusal(unix.EPERM, "table inet %s: owned by port %d", name, t.owner)
	}
	switch op.Kind {
	case nft.OpAddTable:
		if t == nil {
			t = &table{}
			tables[key] = t
			if op.SetFlags {
				t.flags = op.Flags
				if op.Flags&nft.FlagOwner != 0 {
					t.owner = port
				}
			}
			return nil
		}
		return t.update(op, port)
	case nft.OpDeleteTable:
		if t == nil {
			return refusal(unix.ENOENT, "delete table inet %s: no such table", name)
		}
		delete(tables, key)
		return nil
	}
	if t == nil {
		return refusal(unix.ENOENT, "table inet %s: no such table", name)
	}
	switch op.Kind {
	case nft.OpAddChain:
		if c := t.chain(op.Name); c != nil {
			if c.hook != op.Hook || c.device != op.Device || (op.Hook != nft.HookNone && c.priority != tx.Priority+op.PriorityOffset) {
				return refusal(unix.EEXIST, "add chain %s: it exists with another hook or priority", op.Name)
			}
			if c.hook != nft.HookNone {
				c.policy = "accept"
			}
			return nil
		}
		t.chains = append(t.chains, &chain{name: op.Name, hook: op.Hook, device: op.Device, priority: tx.Priority + op.PriorityOffset, policy: "accept"})
	case nft.OpFlushChain:
		c := t.chain(op.Name)
		if c == nil {
			return refusal(unix.ENOENT, "flush chain %s: no such chain", op.Name)
		}
		c.rules = nil
	case nft.OpDeleteChain:
		c := t.chain(op.Name)
		if c == nil {
			return refusal(unix.ENOENT, "delete chain %s: no such chain", op.Name)
		}
		if by := t.referrer(op.Name); by != "" {
			return refusal(unix.EBUSY, "delete chain %s: %s goes to it", op.Name, by)
		}
		t.chains = slices.DeleteFunc(t.chains, func(x *chain) bool { return x == c })
	case nft.OpAddSet:
		return k.addSet(t, op.Set)
	case nft.OpDeleteSet:
		if t.set(op.Name) == nil {
			return refusal(unix.ENOENT, "delete set %s: no such set", op.Name)
		}
		if by := t.lookedUpBy(op.Name); by != "" {
			return refusal(unix.EBUSY, "delete set %s: a rule of chain %s looks it up", op.Name, by)
		}
		t.sets = slices.DeleteFunc(t.sets, func(s *set) bool { return s.hdr.Name == op.Name })
	case nft.OpAddElements, nft.OpDeleteElements:
		s := t.set(op.Name)
		if s == nil {
			return refusal(unix.ENOENT, "set %s: no such set", op.Name)
		}
		if op.Map {
			if op.Kind == nft.OpAddElements {
				return t.addVMap(s, op.VMap)
			}
			return s.delVMap(op.VMap)
		}
		if op.Kind == nft.OpAddElements {
			return k.addElems(s, op.Elems)
		}
		return k.delElems(s, op.Elems)
	case nft.OpAddRule:
		c := t.chain(op.Name)
		if c == nil {
			return refusal(unix.ENOENT, "add rule to chain %s: no such chain", op.Name)
		}
		for _, name := range op.Rule.Sets() {
			if t.set(name) == nil {
				return refusal(unix.ENOENT, "add rule to chain %s: no set %s", op.Name, name)
			}
		}
		if target := chainTarget(op.Rule); target != "" && t.chain(target) == nil {
			return refusal(unix.ENOENT, "add rule to chain %s: no chain %s to go to", op.Name, target)
		}
		k.handle++
		c.rules = append(c.rules, &rule{handle: k.handle, r: op.Rule, ud: op.UserData})
	default:
		return refusal(unix.EINVAL, "unknown command %d", op.Kind)
	}
	return nil
}

// update changes an existing table's flags as the kernel's NEWTABLE does:
// no flags, no change; flag persist can be neither added nor removed; an
// owned table keeps flag owner, and an owned one takes no other flags;
// an orphaned table (persist, no owner) is adopted by the socket that asks
// for flag owner.
func (t *table) update(op nft.Op, port uint32) error {
	const mask = nft.FlagDormant | nft.FlagOwner | nft.FlagPersist
	if !op.SetFlags || op.Flags == t.flags&mask {
		return nil
	}
	orphan := t.flags&(nft.FlagOwner|nft.FlagPersist) == nft.FlagPersist
	switch {
	case op.Flags&^mask != 0,
		t.flags&nft.FlagOwner != 0 && op.Flags&nft.FlagOwner == 0,
		op.Flags&nft.FlagOwner != 0 && !orphan,
		(op.Flags^t.flags)&nft.FlagPersist != 0:
		return refusal(unix.EOPNOTSUPP, "table flags %s to %s", t.flags, op.Flags)
	}
	t.flags = op.Flags
	if op.Flags&nft.FlagOwner != 0 {
		t.owner = port
	}
	return nil
}

// chainTarget returns the chain a rule jumps or goes to, if any.
func chainTarget(r *nft.Rule) string {
	if r.Verdict.Kind == nft.Jump || r.Verdict.Kind == nft.Goto {
		return r.Verdict.Target
	}
	return ""
}

// referrer says what refers to chain name: a rule or a map element; "" if nothing does.
func (t *table) referrer(name string) string {
	for _, c := range t.chains {
		if c.name == name {
			continue // its own rules go with it
		}
		for _, r := range c.rules {
			if chainTarget(r.r) == name {
				return "a rule of chain " + c.name
			}
		}
	}
	for _, s := range t.sets {
		for _, e := range s.vmap {
			if e.Chain == name {
				return "an element of map " + s.hdr.Name
			}
		}
	}
	return ""
}

// lookedUpBy returns the chain of a rule that looks set name up, or "".
func (t *table) lookedUpBy(name string) string {
	for _, c := range t.chains {
		for _, r := range c.rules {
			if slices.Contains(r.r.Sets(), name) {
				return c.name
			}
		}
	}
	return ""
}

func (k *Kernel) addSet(t *table, s *nft.Set) error {
	hdr := nft.NewSetState(s)
	if old := t.set(s.Name); old != nil {
		if old.hdr.Flags != hdr.Flags || old.hdr.KeyType != hdr.KeyType || old.hdr.DataType != hdr.DataType {
			return refusal(unix.EEXIST, "add set %s: it exists with another type", s.Name)
		}
	} else {
		model := *s
		model.Ranges, model.Ports, model.VMap, model.Tuples = nil, nil, nil, nil
		t.sets = append(t.sets, &set{hdr: hdr, model: &model})
	}
	ns := t.set(s.Name)
	if s.Map {
		return t.addVMap(ns, s.VMap)
	}
	return k.addElems(ns, s.Elements())
}

// keyLen returns the length of the set's keys.
func (s *set) keyLen() int {
	return s.model.Key.Len()
}

func sameElem(a, b nftables.SetElement) bool {
	return bytes.Equal(a.Key, b.Key) && a.IntervalEnd == b.IntervalEnd
}

// live drops the elements that have expired: an interval's start, and
// with it the end that follows it in key order.
func (k *Kernel) live(s *set) {
	now := k.now()
	slices.SortStableFunc(s.elems, func(a, b elem) int {
		if c := bytes.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		switch {
		case a.IntervalEnd == b.IntervalEnd:
			return 0
		case a.IntervalEnd:
			return -1
		}
		return 1
	})
	var out []elem
	for i := 0; i < len(s.elems); i++ {
		e := s.elems[i]
		if !e.IntervalEnd && !e.expires.IsZero() && !now.Before(e.expires) {
			if i+1 < len(s.elems) && s.elems[i+1].IntervalEnd {
				i++
			}
			continue
		}
		out = append(out, e)
	}
	s.elems = out
}

func (k *Kernel) addElems(s *set, elems []nftables.SetElement) error {
	k.live(s)
	for _, e := range elems {
		if len(e.Key) != s.keyLen() {
			return refusal(unix.EINVAL, "add element to set %s: key of %d bytes, the set's are %d", s.hdr.Name, len(e.Key), s.keyLen())
		}
		if e.Timeout != 0 && s.hdr.Flags&unix.NFT_SET_TIMEOUT == 0 {
			return refusal(unix.EINVAL, "add element to set %s: a timeout, and the set has no flag timeout", s.hdr.Name)
		}
		if e.Timeout != 0 && e.IntervalEnd {
			return refusal(unix.EINVAL, "add element to set %s: a timeout on the end of an interval", s.hdr.Name)
		}
		if slices.ContainsFunc(s.elems, func(x elem) bool { return sameElem(x.SetElement, e) }) {
			continue // the same element again: no error without NLM_F_EXCL
		}
		ne := elem{SetElement: nftables.SetElement{Key: e.Key, IntervalEnd: e.IntervalEnd, Timeout: e.Timeout}}
		if e.Timeout != 0 {
			ne.expires = k.now().Add(e.Timeout)
		}
		s.elems = append(s.elems, ne)
	}
	return nil
}

func (k *Kernel) delElems(s *set, elems []nftables.SetElement) error {
	k.live(s)
	for _, e := range elems {
		i := slices.IndexFunc(s.elems, func(x elem) bool { return sameElem(x.SetElement, e) })
		if i < 0 {
			return refusal(unix.ENOENT, "delete element of set %s: no element %x (end %v)", s.hdr.Name, e.Key, e.IntervalEnd)
		}
		s.elems = slices.Delete(s.elems, i, i+1)
	}
	return nil
}

func vmapKey(e nft.VMapElem) string { return fmt.Sprintf("%s|%s|%d", e.Key, e.Addr, e.Port) }

func (t *table) addVMap(s *set, elems []nft.VMapElem) error {
	for _, e := range elems {
		if t.chain(e.Chain) == nil {
			return refusal(unix.ENOENT, "add element to map %s: no chain %s", s.hdr.Name, e.Chain)
		}
		i := slices.IndexFunc(s.vmap, func(x nft.VMapElem) bool { return vmapKey(x) == vmapKey(e) })
		switch {
		case i < 0:
			s.vmap = append(s.vmap, e)
		case s.vmap[i] != e:
			return refusal(unix.EEXIST, "add element to map %s: the key is there with another verdict", s.hdr.Name)
		}
	}
	return nil
}

func (s *set) delVMap(elems []nft.VMapElem) error {
	for _, e := range elems {
		i := slices.IndexFunc(s.vmap, func(x nft.VMapElem) bool { return vmapKey(x) == vmapKey(e) })
		if i < 0 {
			return refusal(unix.ENOENT, "delete element of map %s: no key %s", s.hdr.Name, vmapKey(e))
		}
		s.vmap = slices.Delete(s.vmap, i, i+1)
	}
	return nil
}
