package fake_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/fake"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// applied returns a fake kernel with t applied.
func applied(t *testing.T, tbl *nft.Table) *fake.Kernel {
	t.Helper()
	k := fake.New()
	if changed, err := k.Apply(tbl); err != nil || !changed {
		t.Fatalf("Apply = %v, %v", changed, err)
	}
	return k
}

// sameTable fails the test if the kernel's table is not want. The kernel
// keeps chains and sets in the order they were created, so both are
// compared in name order.
func sameTable(t *testing.T, k *fake.Kernel, want *nft.Table) {
	t.Helper()
	got := k.Table(want.Name)
	if got == nil {
		t.Fatalf("no table %s", want.Name)
	}
	if diff := cmp.Diff(canonical(want), canonical(got)); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
}

// canonical renders a table in nft syntax, its chains and sets in name order.
func canonical(t *nft.Table) string {
	c := *t
	c.Chains = slices.Clone(t.Chains)
	c.Sets = slices.Clone(t.Sets)
	slices.SortFunc(c.Chains, func(a, b *nft.Chain) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(c.Sets, func(a, b *nft.Set) int { return strings.Compare(a.Name, b.Name) })
	return c.Body()
}

func TestApplyFreshThenNothing(t *testing.T) {
	tbl := nfttest.Sample()
	k := applied(t, tbl)
	sameTable(t, k, tbl)
	if changed, err := k.Apply(nfttest.Sample()); err != nil || changed {
		t.Errorf("second Apply = %v, %v; want nothing to do", changed, err)
	}
	if n := len(k.Transactions()); n != 1 {
		t.Errorf("%d transactions, want 1", n)
	}
}

// An incremental change stages the new set, then switches over; the
// result is the new table.
func TestApplyIncremental(t *testing.T) {
	k := applied(t, nfttest.Sample())
	to := nfttest.Changed()
	if changed, err := k.Apply(to); err != nil || !changed {
		t.Fatalf("Apply = %v, %v", changed, err)
	}
	sameTable(t, k, to)
	txs := k.Transactions()
	if len(txs) != 3 || txs[1].Ops[1].Kind != nft.OpAddSet || txs[1].Ops[1].Set.Name != "new_4" {
		t.Errorf("transactions:\n%v", txs)
	}
	if p, err := k.Plan(to); err != nil || !p.Empty() {
		t.Errorf("plan after apply = %v, %v", p, err)
	}
}

// The fake refuses what the kernel refuses, and a refused transaction
// changes nothing.
func TestKernelChecks(t *testing.T) {
	tbl := nfttest.Sample()
	k := applied(t, tbl)
	tx := func(ops ...nft.Op) *nft.Transaction { return &nft.Transaction{Table: tbl.Name, Ops: ops} }
	four, _ := fake.Elements("1.2.3.4")
	four[0].Timeout = time.Minute
	for _, tt := range []struct {
		name  string
		tx    *nft.Transaction
		errno unix.Errno
	}{
		{"delete a set a rule looks up", tx(nft.Op{Kind: nft.OpDeleteSet, Name: "l_private_4"}), unix.EBUSY},
		{"delete a chain a rule goes to", tx(nft.Op{Kind: nft.OpDeleteChain, Name: "c_deny"}), unix.EBUSY},
		{"delete a chain a map element goes to", tx(nft.Op{Kind: nft.OpFlushChain, Name: "forward"}, nft.Op{Kind: nft.OpDeleteChain, Name: "fwd_docker0"}), unix.EBUSY},
		{"flush a missing chain", tx(nft.Op{Kind: nft.OpFlushChain, Name: "fwd_br-x"}, nft.Op{Kind: nft.OpFlushChain, Name: "nope"}), unix.ENOENT},
		{"rule looks up a missing set", tx(nft.Op{Kind: nft.OpAddRule, Name: "c_a", Rule: &nft.Rule{Matches: []nft.Match{nft.Addr{Set: "nope"}}}}), unix.ENOENT},
		{"rule goes to a missing chain", tx(nft.Op{Kind: nft.OpAddRule, Name: "c_a", Rule: &nft.Rule{Verdict: nft.Verdict{Kind: nft.Goto, Target: "nope"}}}), unix.ENOENT},
		{"delete an element not there", tx(nft.Op{Kind: nft.OpDeleteElements, Name: "l_private_4", Elems: must(fake.Elements("10.0.0.0/9"))}), unix.ENOENT},
		{"timeout in a set without timeouts", tx(nft.Op{Kind: nft.OpAddElements, Name: "l_private_4", Elems: four}), unix.EINVAL},
		{"key of another length", tx(nft.Op{Kind: nft.OpAddElements, Name: "l_private_6", Elems: must(fake.Elements("1.2.3.4"))}), unix.EINVAL},
		{"map key with another verdict", tx(nft.Op{Kind: nft.OpAddElements, Name: "fwd_if", Map: true, VMap: []nft.VMapElem{{Key: "br-x", Chain: "c_a"}}}), unix.EEXIST},
		{"missing table", &nft.Transaction{Table: "nope", Ops: []nft.Op{{Kind: nft.OpFlushChain, Name: "x"}}}, unix.ENOENT},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := k.CommitAs(tt.tx)
			if !errors.Is(err, tt.errno) {
				t.Errorf("CommitAs = %v, want %v", err, tt.errno)
			}
			sameTable(t, k, tbl)
		})
	}
	// A timeout set takes elements with timeouts, which expire.
	if err := k.Commit(tx(nft.Op{Kind: nft.OpAddElements, Name: "learned_4", Elems: four})); err != nil {
		t.Fatal(err)
	}
	if got := k.Table(tbl.Name).Set("learned_4").Ranges; len(got) != 1 {
		t.Errorf("learned_4 = %v, want 1.2.3.4", got)
	}
}

func must(e []nftables.SetElement, err error) []nftables.SetElement {
	if err != nil {
		panic(err)
	}
	return e
}

// When the kernel refuses the main transaction, the staged sets are
// removed again and the table is as it was.
func TestRefusedSwitchOverUnstages(t *testing.T) {
	from := nfttest.Sample()
	k := applied(t, from)
	k.Refuse(func(tx *nft.Transaction) error {
		if slices.ContainsFunc(tx.Ops, func(op nft.Op) bool { return op.Kind == nft.OpFlushChain }) {
			return unix.EINVAL
		}
		return nil
	})
	if changed, err := k.Apply(nfttest.Changed()); !errors.Is(err, unix.EINVAL) || changed {
		t.Fatalf("Apply = %v, %v; want refused", changed, err)
	}
	sameTable(t, k, from)
	txs := k.Transactions()
	if len(txs) != 3 || txs[2].Ops[0].Kind != nft.OpDeleteSet || txs[2].Ops[0].Name != "new_4" {
		t.Errorf("transactions after the refusal:\n%v", txs)
	}
}

// Another process deletes an element: the rules still record the set's
// digest, so only an Apply that verifies the set sees it, and puts it back.
func TestVerifyRepairsElement(t *testing.T) {
	tbl := nfttest.Sample()
	k := applied(t, tbl)
	if err := k.DeleteElements(tbl.Name, "l_private_4", "10.0.0.0/8"); err != nil {
		t.Fatal(err)
	}
	if changed, err := k.Apply(tbl); err != nil || changed {
		t.Fatalf("Apply without verify = %v, %v; want nothing seen", changed, err)
	}
	if changed, err := k.Apply(tbl, "l_private_4"); err != nil || !changed {
		t.Fatalf("Apply verifying l_private_4 = %v, %v", changed, err)
	}
	sameTable(t, k, tbl)
	last := k.Transactions()[len(k.Transactions())-1]
	if want := "# transaction\nadd table inet dftest\nadd element inet dftest l_private_4 { 10.0.0.0/8 }\n"; "# transaction\n"+last.String() != want {
		t.Errorf("repair = %q, want %q", last.String(), want)
	}
}

// Another process flushes a chain and adds a rule to another: Apply
// refills the first and empties the second of the foreign rule.
func TestApplyRepairsChains(t *testing.T) {
	tbl := nfttest.Sample()
	k := applied(t, tbl)
	if err := k.FlushChain(tbl.Name, "fwd_br-x"); err != nil {
		t.Fatal(err)
	}
	if err := k.AddRule(tbl.Name, "forward", &nft.Rule{Verdict: nft.Verdict{Kind: nft.Accept}, Comment: "let everything through"}); err != nil {
		t.Fatal(err)
	}
	if err := k.SetMapElement(tbl.Name, "fwd_if", "br-x", "fwd_unknown"); err != nil {
		t.Fatal(err)
	}
	if changed, err := k.Apply(tbl); err != nil || !changed {
		t.Fatalf("Apply = %v, %v", changed, err)
	}
	sameTable(t, k, tbl)
}

func TestWatchReportsOthers(t *testing.T) {
	tbl := nfttest.Sample()
	k := applied(t, tbl)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan nft.Change, 1)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- k.Watch(ctx, tbl.Name, out, func() { close(ready) }) }()
	<-ready
	if _, err := k.Apply(nfttest.Changed()); err != nil { // our own: not reported
		t.Fatal(err)
	}
	if err := k.DeleteElements(tbl.Name, "l_private_4", "100.64.0.0/10"); err != nil {
		t.Fatal(err)
	}
	select {
	case ch := <-out:
		if ch.Pid != fake.OtherPid || !slices.Equal(ch.Sets, []string{"l_private_4"}) {
			t.Errorf("change = %+v", ch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no change reported")
	}
	k.Overrun()
	if err := <-done; !errors.Is(err, nft.ErrOverrun) {
		t.Errorf("Watch after Overrun = %v", err)
	}
}

// TestReadLikeKernel applies the sample table, then its change, to the real
// kernel (in a network namespace of its own) and to the fake, and requires
// that both read back the same state, and dump the same elements.
func TestReadLikeKernel(t *testing.T) {
	_, real := nfttest.NetNS(t)
	k := fake.New()
	for _, tbl := range []*nft.Table{nfttest.Sample(), nfttest.Changed()} {
		for _, b := range []nft.Backend{real, k} {
			if _, err := nft.ApplyTo(b, tbl); err != nil {
				t.Fatal(err)
			}
		}
		want, err := real.Read(tbl.Name)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := k.Read(tbl.Name)
		var plain []string
		for _, s := range want.Sets {
			if s.Flags&unix.NFT_SET_MAP == 0 {
				plain = append(plain, s.Name)
			}
		}
		if err := real.Dump(want, plain); err != nil {
			t.Fatal(err)
		}
		if err := k.Dump(got, plain); err != nil {
			t.Fatal(err)
		}
		sortElems := cmpopts.SortSlices(func(a, b nftables.SetElement) bool {
			if c := bytes.Compare(a.Key, b.Key); c != 0 {
				return c < 0
			}
			return !a.IntervalEnd && b.IntervalEnd
		})
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(nft.RuleState{}, "Handle"), sortElems, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.Addr{})); diff != "" {
			t.Errorf("%s: fake Read (+) differs from the kernel's (-):\n%s", tbl.Name, diff)
		}
	}
}
