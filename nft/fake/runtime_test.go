package fake_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/fake"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"
)

// A set owned at run time is created by Apply and then left alone: the
// elements Update puts in it survive every apply, including one that
// verifies the set, and expire on their own.
func TestRuntimeElementsSurviveApply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tbl := nfttest.Sample()
		k := applied(t, tbl)
		pfx := netip.MustParsePrefix
		add := []nft.Element{
			{Prefix: pfx("192.0.2.4/32"), Timeout: time.Minute},
			{Prefix: pfx("10.9.0.0/16"), Timeout: time.Hour},
			{Prefix: pfx("192.0.2.5/32")},
		}
		if err := k.Update(tbl.Name, "learned_4", add, nil); err != nil {
			t.Fatal(err)
		}
		want := []string{"10.9.0.0/16 timeout 1h0m0s expires 1h0m0s", "192.0.2.4 timeout 1m0s expires 1m0s", "192.0.2.5"}
		if got := k.Elements(tbl.Name, "learned_4"); !slices.Equal(got, want) {
			t.Fatalf("learned_4 = %q, want %q", got, want)
		}
		// Nothing to do, even asked to verify the set; no difference either.
		p, err := k.Plan(tbl, "learned_4")
		if err != nil || !p.Empty() {
			t.Fatalf("plan with runtime elements = %v, %v; want empty", p, err)
		}
		if d := nft.Diff(tbl, p.Have); len(d) != 0 {
			t.Errorf("Diff = %q, want none", d)
		}
		// The rule that looks the set up records no digest of it.
		st, _ := k.Read(tbl.Name)
		for _, c := range st.Chains {
			for _, r := range c.Rules {
				if _, ok := r.Sets["learned_4"]; ok {
					t.Errorf("%s %q records learned_4's contents: %v", c.Name, r.ID, r.Sets)
				}
			}
		}
		// Incremental applies, to another table and back.
		for _, next := range []*nft.Table{nfttest.Changed(), nfttest.Sample()} {
			if _, err := k.Apply(next, "learned_4"); err != nil {
				t.Fatal(err)
			}
			sameTable(t, k, withRuntime(next, k))
			if got := k.Elements(tbl.Name, "learned_4"); !slices.Equal(got, want) {
				t.Fatalf("after applying %v: learned_4 = %q, want %q", next.Set("new_4") != nil, got, want)
			}
		}
		// Update deletes one, and adds one again with a new timeout.
		four := nft.Element{Prefix: pfx("192.0.2.4/32"), Timeout: 2 * time.Minute}
		if err := k.Update(tbl.Name, "learned_4", []nft.Element{four}, []nft.Element{{Prefix: pfx("10.9.0.0/16")}, four}); err != nil {
			t.Fatal(err)
		}
		want = []string{"192.0.2.4 timeout 2m0s expires 2m0s", "192.0.2.5"}
		if got := k.Elements(tbl.Name, "learned_4"); !slices.Equal(got, want) {
			t.Fatalf("after the update: learned_4 = %q, want %q", got, want)
		}
		time.Sleep(3 * time.Minute)
		if got := k.Elements(tbl.Name, "learned_4"); !slices.Equal(got, []string{"192.0.2.5"}) {
			t.Errorf("after 3 minutes: learned_4 = %q, want the element without timeout only", got)
		}
	})
}

// withRuntime returns t with the runtime set's elements as the kernel has
// them, to compare whole tables.
func withRuntime(t *nft.Table, k *fake.Kernel) *nft.Table {
	c := *t
	c.Sets = nil
	for _, s := range t.Sets {
		if s.Owner == nft.OwnedByRuntime {
			ks := *s
			ks.Ranges = k.Table(t.Name).Set(s.Name).Ranges
			s = &ks
		}
		c.Sets = append(c.Sets, s)
	}
	return &c
}

// A plan that replaces the table (here its priority changes, so its base
// chains do) creates the runtime set anew holding the live elements of
// the old one, each with the time it has left, in the same transaction;
// it reads that set only then, and no other: not the meters' dynamic
// sets, whose elements go. A plan that changes the table in place does
// not read the runtime set at all.
func TestReplacementKeepsRuntimeElements(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tbl := nfttest.Sample()
		k := applied(t, tbl)
		pfx := netip.MustParsePrefix
		add := []nft.Element{
			{Prefix: pfx("192.0.2.4/32"), Timeout: time.Hour},
			{Prefix: pfx("192.0.2.6/32"), Timeout: 30 * time.Second},
			{Prefix: pfx("10.9.0.0/16"), Timeout: 5 * time.Second},
			{Prefix: pfx("192.0.2.5/32")},
		}
		if err := k.Update(tbl.Name, "learned_4", add, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second) // 10.9.0.0/16 expires

		// In place: the runtime set is not read.
		if _, err := k.Apply(nfttest.Changed()); err != nil {
			t.Fatal(err)
		}
		if d := k.Dumped(); slices.Contains(d, "learned_4") {
			t.Errorf("an apply in place read learned_4: dumped %q", d)
		}
		before := len(k.Dumped())

		moved := nfttest.Sample()
		moved.Priority = -20
		p, err := k.Plan(moved)
		if err != nil {
			t.Fatal(err)
		}
		if d := k.Dumped()[before:]; !slices.Equal(d, []string{"learned_4"}) {
			t.Errorf("the replacing plan read %q, want learned_4 alone", d)
		}
		text := p.String()
		for _, want := range []string{
			"delete table inet dftest\n",
			"# keeps the 3 live elements of set learned_4, each with the time it has left\n" +
				"add element inet dftest learned_4 { 192.0.2.4 timeout 59m50s, 192.0.2.5, 192.0.2.6 timeout 20s }\n",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("plan lacks %q:\n%s", want, text)
			}
		}
		if err := p.Send(k); err != nil {
			t.Fatal(err)
		}
		// One transaction: the table went and came back with them.
		if txs := p.Txs; len(txs) != 1 {
			t.Errorf("%d transactions, want 1", len(txs))
		}
		want := []string{"192.0.2.4 timeout 59m50s expires 59m50s", "192.0.2.5", "192.0.2.6 timeout 20s expires 20s"}
		if got := k.Elements(tbl.Name, "learned_4"); !slices.Equal(got, want) {
			t.Fatalf("after the replacement: learned_4 = %q, want %q", got, want)
		}
		if got := k.Table(tbl.Name).Chain("forward"); got == nil {
			t.Fatal("no forward chain after the replacement")
		}
		// They expire when they would have.
		time.Sleep(21 * time.Second)
		if got := k.Elements(tbl.Name, "learned_4"); !slices.Equal(got, []string{"192.0.2.4 timeout 59m50s expires 59m29s", "192.0.2.5"}) {
			t.Errorf("21s later: learned_4 = %q", got)
		}
	})
}

// A runtime set re-created in place for a change of type (it gains flag
// timeout) keeps its elements, as they were: they had no timeouts.
func TestRecreatedRuntimeSetKeepsElements(t *testing.T) {
	tbl := nfttest.Sample()
	tbl.Set("learned_4").Timeout = false
	k := applied(t, tbl)
	pfx := netip.MustParsePrefix
	if err := k.Update(tbl.Name, "learned_4", []nft.Element{{Prefix: pfx("192.0.2.4/32")}, {Prefix: pfx("10.9.0.0/16")}}, nil); err != nil {
		t.Fatal(err)
	}
	p, err := k.Plan(nfttest.Sample())
	if err != nil {
		t.Fatal(err)
	}
	if text := p.String(); !strings.Contains(text, "delete set inet dftest learned_4\n") ||
		!strings.Contains(text, "add element inet dftest learned_4 { 10.9.0.0/16, 192.0.2.4 }\n") || strings.Contains(text, "delete table") {
		t.Errorf("plan does not re-create learned_4 with its elements in place:\n%s", text)
	}
	if err := p.Send(k); err != nil {
		t.Fatal(err)
	}
	if got := k.Elements(tbl.Name, "learned_4"); !slices.Equal(got, []string{"10.9.0.0/16", "192.0.2.4"}) {
		t.Errorf("after the re-creation: learned_4 = %q", got)
	}
}
