package nft

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/nftables"
)

// Element is one element of an address or service set, as Update adds or
// deletes it.
type Element struct {
	// Prefix is an address (a prefix of its full length) or a prefix, for
	// address sets.
	Prefix netip.Prefix
	// Ports is a port or a range of ports, for service sets; it is used
	// when Prefix is not valid.
	Ports PortRange
	// Timeout, if not zero, makes the element expire that long after it
	// is added; the set must have timeouts (Set.Timeout). Deleting
	// ignores it.
	Timeout time.Duration
}

// String renders the element in nft syntax, with its timeout if it has one.
func (e Element) String() string {
	s := e.Ports.String()
	if e.Prefix.IsValid() {
		s = prefixText(e.Prefix.Masked())
	}
	if e.Timeout > 0 {
		s += " timeout " + durationText(e.Timeout)
	}
	return s
}

// boundaries returns the element as the kernel stores it in an interval
// set: its start, and its end unless it reaches the last key. The start
// carries the timeout: the kernel refuses one on an end (EINVAL), and
// expires the end with its start.
func (e Element) boundaries() []nftables.SetElement {
	s := &Set{Key: KeyService, Ports: []PortRange{e.Ports}}
	if e.Prefix.IsValid() {
		s = &Set{Key: KeyIPv4, Ranges: []Range{{From: e.Prefix.Masked().Addr(), To: LastAddr(e.Prefix)}}}
	}
	elems := s.Elements()
	elems[0].Timeout = e.Timeout
	return elems
}

// UpdateTx returns the transaction that changes the elements of one set of
// the table and nothing else: it deletes del, then adds add, so that an
// element in both is added again with its new timeout. The elements are
// those of an interval set (every address and service set of the model).
// It is meant for sets owned at run time (OwnedByRuntime), whose elements
// Apply leaves alone; in a set the model owns, the next Apply that reads
// the set undoes it.
func UpdateTx(table, set string, add, del []Element) *Transaction {
	tx := &Transaction{Table: table}
	tx.addOp(OpDeleteElements, set, del)
	tx.addOp(OpAddElements, set, add)
	return tx
}

// RefreshTx returns the transaction that puts elements into one set of the
// table (as UpdateTx does), each with its own timeout, on every kernel.
// The elements of add are taken to be absent: they are added. Those of
// refresh may be in the set already, with another timeout, or may have
// expired a moment ago: each is added without a timeout (nothing if it is
// there, else it is created), deleted, and added with its timeout, all in
// the one transaction. So it ends with its new timeout whether it was
// there or not, and the delete never fails for want of the element. The
// packet path sees the set before the transaction or after it, never in
// between: a refreshed element is never missing. An element named more
// than once goes in once, as a refresh if it is one anywhere, with the
// longest of its timeouts.
//
// Add alone would do on Linux 6.10 and later (see Kernel.Update); older
// kernels keep the old timeout on an add of an element that is there.
func RefreshTx(table, set string, add, refresh []Element) *Transaction {
	type entry struct {
		e       Element
		refresh bool
	}
	var order []Element
	seen := map[Element]*entry{}
	put := func(es []Element, refresh bool) {
		for _, e := range es {
			k := Element{Ports: e.Ports} // the element without its timeout
			if e.Prefix.IsValid() {
				k = Element{Prefix: e.Prefix.Masked()}
			}
			x := seen[k]
			if x == nil {
				seen[k] = &entry{e, refresh}
				order = append(order, k)
				continue
			}
			x.refresh = x.refresh || refresh
			if e.Timeout > x.e.Timeout {
				x.e.Timeout = e.Timeout
			}
		}
	}
	put(add, false)
	put(refresh, true)
	var again, all []Element
	for _, k := range order {
		x := seen[k]
		if x.refresh {
			again = append(again, x.e)
		}
		all = append(all, x.e)
	}
	tx := &Transaction{Table: table}
	bare := make([]Element, len(again))
	for i, e := range again {
		e.Timeout = 0
		bare[i] = e
	}
	tx.addOp(OpAddElements, set, bare)
	tx.addOp(OpDeleteElements, set, again)
	tx.addOp(OpAddElements, set, all)
	return tx
}

// addOp appends the command that adds or deletes es in set, if there are
// any; a delete carries no timeouts.
func (tx *Transaction) addOp(kind OpKind, set string, es []Element) {
	if len(es) == 0 {
		return
	}
	o := Op{Kind: kind, Name: set}
	for _, e := range es {
		if kind == OpDeleteElements {
			e.Timeout = 0
		}
		o.Elems = append(o.Elems, e.boundaries()...)
		o.Items = append(o.Items, e.String())
	}
	tx.Ops = append(tx.Ops, o)
}

// Update changes the elements of one set in one transaction (see
// UpdateTx); with nothing to change, it sends nothing. It returns once
// the kernel has acknowledged the commit: from then on the packet path
// sees the new elements. The elements go in as few messages as fit one
// batch, however many there are (a name's hundreds of addresses are one
// commit).
//
// Adding an element that the set holds already refreshes it only on
// Linux 6.10 and later (commit 4201f3938914 "netfilter: nf_tables: set
// element timeout update support"): the kernel takes an add without
// NLM_F_EXCL, as Update sends it, as an update of the element's timeout
// and expiry, to the new timeout whether longer or shorter. Older kernels
// keep the old timeout on such an add; naming the element in del too
// refreshes it there, but fails (ENOENT, nothing committed) if it expired
// meanwhile. RefreshTx refreshes on every kernel and never fails so.
func (k Kernel) Update(table, set string, add, del []Element) error {
	tx := UpdateTx(table, set, add, del)
	if len(tx.Ops) == 0 {
		return nil
	}
	return k.Commit(tx)
}

// durationText renders a timeout in nft's syntax: 1d2h3m4s5ms.
func durationText(d time.Duration) string {
	var b strings.Builder
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.d
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}
