package fake

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The helpers below change a table as another process would (nft by hand,
// say), each in one transaction through CommitAs: watchers are told.

// FlushChain deletes the rules of a chain: nft flush chain.
func (k *Kernel) FlushChain(table, chain string) error {
	return k.CommitAs(&nft.Transaction{Table: table, Ops: []nft.Op{{Kind: nft.OpFlushChain, Name: chain}}})
}

// DeleteChain deletes a chain and its rules: nft delete chain.
func (k *Kernel) DeleteChain(table, chain string) error {
	return k.CommitAs(&nft.Transaction{Table: table, Ops: []nft.Op{{Kind: nft.OpDeleteChain, Name: chain}}})
}

// DeleteTable deletes a table: nft delete table.
func (k *Kernel) DeleteTable(table string) error {
	return k.CommitAs(&nft.Transaction{Table: table, Ops: []nft.Op{{Kind: nft.OpDeleteTable}}})
}

// AddRule appends a rule to a chain: nft add rule. The rule carries its
// comment, and none of dockerfence's tags.
func (k *Kernel) AddRule(table, chain string, r *nft.Rule) error {
	var ud []byte
	if r.Comment != "" {
		ud = userdata.AppendString(nil, userdata.Type(0), r.Comment)
	}
	return k.CommitAs(&nft.Transaction{Table: table, Ops: []nft.Op{{Kind: nft.OpAddRule, Name: chain, Rule: r, UserData: ud}}})
}

// DeleteElements deletes addresses and prefixes from an address set: nft
// delete element. Each must be an interval the set holds.
func (k *Kernel) DeleteElements(table, set string, prefixes ...string) error {
	elems, err := Elements(prefixes...)
	if err != nil {
		return err
	}
	return k.CommitAs(&nft.Transaction{Table: table, Ops: []nft.Op{{Kind: nft.OpDeleteElements, Name: set, Elems: elems, Items: prefixes}}})
}

// AddElements adds addresses and prefixes to an address set: nft add element.
func (k *Kernel) AddElements(table, set string, prefixes ...string) error {
	elems, err := Elements(prefixes...)
	if err != nil {
		return err
	}
	return k.CommitAs(&nft.Transaction{Table: table, Ops: []nft.Op{{Kind: nft.OpAddElements, Name: set, Elems: elems, Items: prefixes}}})
}

// SetMapElement points key of verdict map m to another chain (goto), or
// adds it: nft delete element and add element in one transaction.
func (k *Kernel) SetMapElement(table, m, key, chain string) error {
	tx := &nft.Transaction{Table: table}
	if t := k.Table(table); t != nil && t.Set(m) != nil {
		for _, e := range t.Set(m).VMap {
			if e.Key == key {
				tx.Ops = append(tx.Ops, nft.Op{Kind: nft.OpDeleteElements, Name: m, Map: true, VMap: []nft.VMapElem{e}})
			}
		}
	}
	tx.Ops = append(tx.Ops, nft.Op{Kind: nft.OpAddElements, Name: m, Map: true, VMap: []nft.VMapElem{{Key: key, Chain: chain}}})
	return k.CommitAs(tx)
}

// Elements returns the elements, as the kernel stores them, of an
// interval set that holds the addresses and prefixes given, all of one
// family.
func Elements(prefixes ...string) ([]nftables.SetElement, error) {
	s := &nft.Set{}
	for _, p := range prefixes {
		pfx, err := netip.ParsePrefix(p)
		if err != nil && !strings.Contains(p, "/") {
			var a netip.Addr
			a, err = netip.ParseAddr(p)
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if err != nil {
			return nil, err
		}
		key := nft.KeyIPv4
		if pfx.Addr().Is6() {
			key = nft.KeyIPv6
		}
		if s.Key != 0 && s.Key != key {
			return nil, fmt.Errorf("%s: addresses of two families", strings.Join(prefixes, ", "))
		}
		s.Key = key
		s.Ranges = append(s.Ranges, nft.Range{From: pfx.Masked().Addr(), To: nft.LastAddr(pfx)})
	}
	return s.Elements(), nil
}

// SetFlags sets the table's flags: nft add table inet T '{ flags dormant; }'
// (which an owned table refuses, EPERM, as the kernel does).
func (k *Kernel) SetFlags(table string, flags nft.TableFlags) error {
	return k.CommitAs(&nft.Transaction{Table: table, Ops: []nft.Op{{Kind: nft.OpAddTable, Flags: flags, SetFlags: true}}})
}

// ReplaceRule replaces the expressions of the rule of that handle with r's,
// keeping its user data (dockerfence's tags): what a raw NEWRULE with
// NLM_F_REPLACE that copies the user data does.
func (k *Kernel) ReplaceRule(table, chain string, handle uint64, r *nft.Rule) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.tables[table]
	if t == nil || t.chain(chain) == nil {
		return refusal(unix.ENOENT, "replace rule: no chain %s in table %s", chain, table)
	}
	if t.flags&nft.FlagOwner != 0 {
		return refusal(unix.EPERM, "table inet %s: owned by port %d", table, t.owner)
	}
	c := t.chain(chain)
	for i, old := range c.rules {
		if old.handle == handle {
			c.rules[i] = &rule{handle: handle, r: r, ud: old.ud}
			k.notify(table, nft.Change{Pid: OtherPid, Proc: OtherProc})
			return nil
		}
	}
	return refusal(unix.ENOENT, "replace rule: no handle %d in chain %s", handle, chain)
}

// SetPolicy sets a base chain's policy ("accept" or "drop"): nft add chain
// with the chain's hook and priority and another policy.
func (k *Kernel) SetPolicy(table, chain, policy string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.tables[table]
	if t == nil || t.chain(chain) == nil || t.chain(chain).hook == nft.HookNone {
		return refusal(unix.ENOENT, "set policy: no base chain %s in table %s", chain, table)
	}
	if t.flags&nft.FlagOwner != 0 {
		return refusal(unix.EPERM, "table inet %s: owned by port %d", table, t.owner)
	}
	t.chain(chain).policy = policy
	k.notify(table, nft.Change{Pid: OtherPid, Proc: OtherProc})
	return nil
}
