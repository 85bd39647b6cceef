package fake_test

import (
	"net/netip"
	"slices"
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
