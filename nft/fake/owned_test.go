package fake_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/fake"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"

	"golang.org/x/sys/unix"
)

// An owned table refuses every other process's change; when its owner
// exits it stays, orphaned, open to others, until the next owner adopts it
// in a transaction of its own, then plans again from what it holds.
func TestOwnedTable(t *testing.T) {
	tbl := nfttest.Sample()
	k := fake.New()
	k.Own()
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	st, _ := k.Read(tbl.Name)
	if st.Flags != nft.FlagOwner|nft.FlagPersist || st.Owner != fake.FirstPort {
		t.Fatalf("flags %s, owner %d; want owner,persist by %d", st.Flags, st.Owner, fake.FirstPort)
	}
	for name, tamper := range map[string]func() error{
		"delete table": func() error { return k.DeleteTable(tbl.Name) },
		"flush chain":  func() error { return k.FlushChain(tbl.Name, "forward") },
		"dormant":      func() error { return k.SetFlags(tbl.Name, nft.FlagDormant|nft.FlagPersist) },
		"add rule":     func() error { return k.AddRule(tbl.Name, "forward", &nft.Rule{Verdict: nft.Verdict{Kind: nft.Accept}}) },
		"replace rule": func() error {
			return k.ReplaceRule(tbl.Name, "forward", 1, &nft.Rule{Verdict: nft.Verdict{Kind: nft.Accept}})
		},
		"policy": func() error { return k.SetPolicy(tbl.Name, "forward", "drop") },
	} {
		if err := tamper(); !errors.Is(err, unix.EPERM) {
			t.Errorf("%s on an owned table: %v, want EPERM", name, err)
		}
	}
	sameTable(t, k, tbl)

	k.Exit()
	st, _ = k.Read(tbl.Name)
	if st.Flags != nft.FlagPersist || st.Owner != 0 {
		t.Fatalf("after the owner's exit: flags %s, owner %d; want persist, none", st.Flags, st.Owner)
	}
	if err := k.DeleteElements(tbl.Name, "l_private_4", "10.0.0.0/8"); err != nil {
		t.Fatalf("an orphaned table refuses others: %v", err)
	}
	before := len(k.Transactions())
	if changed, err := k.Verify(tbl); err != nil || !changed {
		t.Fatalf("Verify after adoption = %v, %v", changed, err)
	}
	txs := k.Transactions()[before:]
	if len(txs) != 2 || len(txs[0].Ops) != 1 || txs[0].Ops[0].Kind != nft.OpAddTable || txs[0].Ops[0].Flags != nft.FlagOwner|nft.FlagPersist {
		t.Fatalf("adoption: transactions %v, want the adoption alone, then the repair", txs)
	}
	sameTable(t, k, tbl)
	st, _ = k.Read(tbl.Name)
	if st.Owner != fake.FirstPort+1 {
		t.Errorf("owner %d after adoption, want %d", st.Owner, fake.FirstPort+1)
	}
	if err := k.FlushChain(tbl.Name, "forward"); !errors.Is(err, unix.EPERM) {
		t.Errorf("the adopted table takes others' changes: %v", err)
	}
}

// A table owned by another socket is not taken: an owning backend says so.
func TestOwnedByAnother(t *testing.T) {
	tbl := nfttest.Sample()
	k := fake.New()
	k.Own()
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	// The fake's socket is another one now, and the table still has its
	// owner: as if two daemons ran.
	k.Exit()
	if err := k.CommitAs(&nft.Transaction{Table: tbl.Name, Ops: []nft.Op{{Kind: nft.OpAddTable, Flags: nft.FlagOwner | nft.FlagPersist, SetFlags: true}}}); err != nil {
		t.Fatal(err)
	}
	var oe *nft.OwnedError
	if _, err := k.Apply(tbl); !errors.As(err, &oe) || oe.Port != fake.OtherPort {
		t.Errorf("Apply on another's table = %v, want OwnedError by port %d", err, fake.OtherPort)
	}
}

// On an unowned table (a one-shot apply, or an older kernel), every
// change that keeps dockerfence's labels is seen and repaired: a dormant
// flag, a rule's expressions replaced under its user data, a base chain's
// policy, an element deleted (by a verifying apply).
func TestUnownedTampering(t *testing.T) {
	tbl := nfttest.Sample()
	k := applied(t, tbl)
	st, _ := k.Read(tbl.Name)
	if st.Flags != nft.FlagPersist || st.Owner != 0 {
		t.Fatalf("one-shot table: flags %s, owner %d; want persist, none", st.Flags, st.Owner)
	}
	handle := st.Chains[slices.IndexFunc(st.Chains, func(c nft.ChainState) bool { return c.Name == "fwd_br-x" })].Rules[0].Handle
	for _, tc := range []struct {
		name, diff string
		tamper     func() error
	}{
		{"dormant", "flag dormant", func() error { return k.SetFlags(tbl.Name, nft.FlagPersist|nft.FlagDormant) }},
		{"rule replaced", `holds "counter accept"`, func() error {
			return k.ReplaceRule(tbl.Name, "fwd_br-x", handle, &nft.Rule{Counter: true, Verdict: nft.Verdict{Kind: nft.Accept}})
		}},
		{"policy", "policy drop", func() error { return k.SetPolicy(tbl.Name, "input", "drop") }},
		{"element", "~ set l_private_6: 0 elements to delete, 2 to add", func() error { return k.DeleteElements(tbl.Name, "l_private_6", "fc00::/7") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.tamper(); err != nil {
				t.Fatal(err)
			}
			st, _ := k.Read(tbl.Name)
			if err := k.Dump(st, tbl.OwnedSets()); err != nil {
				t.Fatal(err)
			}
			if d := strings.Join(nft.Diff(tbl, st), "\n"); !strings.Contains(d, tc.diff) {
				t.Errorf("Diff does not say %q:\n%s", tc.diff, d)
			}
			if changed, err := k.Verify(tbl); err != nil || !changed {
				t.Fatalf("Verify = %v, %v", changed, err)
			}
			sameTable(t, k, tbl)
			st, _ = k.Read(tbl.Name)
			if st.Flags != nft.FlagPersist {
				t.Errorf("flags %s after the repair, want persist", st.Flags)
			}
			if p, err := k.Plan(tbl, tbl.OwnedSets()...); err != nil || !p.Empty() {
				t.Errorf("plan after the repair = %v, %v", p, err)
			}
			if d := nft.Diff(tbl, dumped(k, tbl)); len(d) != 0 {
				t.Errorf("Diff after the repair: %q", d)
			}
		})
	}
}

// dumped returns the kernel's state of tbl with its sets dumped.
func dumped(k *fake.Kernel, tbl *nft.Table) *nft.State {
	st, _ := k.Read(tbl.Name)
	k.Dump(st, tbl.OwnedSets())
	return st
}

// An owning backend finds an ordinary table (from an older dockerfence, or
// OwnNever): flag persist cannot be added, so it replaces the table, once,
// and owns it from then on.
func TestOwnedReplacesOrdinaryTable(t *testing.T) {
	tbl := nfttest.Sample()
	k := fake.New()
	// An ordinary table, as nft.Kernel with OwnNever writes it.
	if err := k.CommitAs(&nft.Transaction{Table: tbl.Name, Ops: []nft.Op{{Kind: nft.OpAddTable}}}); err != nil {
		t.Fatal(err)
	}
	k.Own()
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	txs := k.Transactions()
	if len(txs) != 1 || txs[0].Ops[0].Kind != nft.OpDeleteTable {
		t.Errorf("transactions %v, want one that deletes the table and creates it", txs)
	}
	st, _ := k.Read(tbl.Name)
	if st.Flags != nft.FlagOwner|nft.FlagPersist {
		t.Errorf("flags %s, want owner,persist", st.Flags)
	}
	sameTable(t, k, tbl)
	if changed, err := k.Apply(tbl); err != nil || changed {
		t.Errorf("second Apply = %v, %v; want nothing to do", changed, err)
	}
}
