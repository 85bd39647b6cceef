package nft_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	. "github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"

	"github.com/google/go-cmp/cmp"
)

// TestPlanTextLoads loads the text of plans with nft -f, in one network
// namespace, while Apply sends the same plans over netlink in another, and
// requires that nft lists the same table in both: for a fresh table, and
// for an incremental change of every kind.
func TestPlanTextLoads(t *testing.T) {
	nsText, _ := nfttest.NetNS(t)
	nsApply, k := nfttest.NetNS(t)
	from, to := nfttest.Sample(), nfttest.Changed()
	for _, step := range []struct {
		name string
		t    *Table
	}{{"fresh", from}, {"incremental", to}} {
		p, err := k.Plan(step.t)
		if err != nil {
			t.Fatal(err)
		}
		if p.Empty() {
			t.Fatalf("%s: empty plan", step.name)
		}
		nfttest.NFT(t, nsText, p.String(), "-f", "-")
		if err := p.Send(k); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got, want := nfttest.Listing(t, nsText, step.t.Name), nfttest.Listing(t, nsApply, step.t.Name)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: nft -f of the plan's text lists (+) otherwise than Apply's table (-):\n%s\nplan:\n%s", step.name, diff, p)
		}
		if p, err := k.Plan(step.t); err != nil || !p.Empty() {
			t.Errorf("%s: plan after apply = %v, %v; want empty", step.name, p, err)
		}
	}
}

// TestUpdateRuntimeSet adds and removes elements of a real timeout set
// with Update, in a network namespace of its own, and requires that
// applies leave them in place while the elements expire on their own.
func TestUpdateRuntimeSet(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	tbl := nfttest.Sample()
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix
	set := func() string { return nfttest.NFT(t, ns, "", "list", "set", "inet", tbl.Name, "learned_4") }
	has := func(step string, want, not []string) {
		t.Helper()
		got := set()
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: learned_4 lacks %q:\n%s", step, w, got)
			}
		}
		for _, n := range not {
			if strings.Contains(got, n) {
				t.Errorf("%s: learned_4 still has %q:\n%s", step, n, got)
			}
		}
	}
	add := []Element{
		{Prefix: pfx("192.0.2.4/32"), Timeout: time.Minute},
		{Prefix: pfx("10.9.0.0/16"), Timeout: time.Hour},
		{Prefix: pfx("192.0.2.5/32")},
		{Prefix: pfx("192.0.2.99/32"), Timeout: time.Second},
	}
	if err := k.Update(tbl.Name, "learned_4", add, nil); err != nil {
		t.Fatal(err)
	}
	has("added", []string{"192.0.2.4 timeout 1m", "10.9.0.0/16 timeout 1h", "192.0.2.5,", "192.0.2.99 timeout 1s"}, nil)
	// Delete one; add one again with a new timeout.
	four := Element{Prefix: pfx("192.0.2.4/32"), Timeout: 2 * time.Hour}
	if err := k.Update(tbl.Name, "learned_4", []Element{four}, []Element{{Prefix: pfx("10.9.0.0/16")}, four}); err != nil {
		t.Fatal(err)
	}
	has("updated", []string{"192.0.2.4 timeout 2h"}, []string{"10.9.0.0/16"})
	// The text of an update loads with nft -f.
	nfttest.NFT(t, ns, UpdateTx(tbl.Name, "learned_4", []Element{{Prefix: pfx("198.51.100.0/24"), Timeout: 30 * time.Second}}, nil).String(), "-f", "-")
	has("loaded with nft -f", []string{"198.51.100.0/24 timeout 30s"}, nil)
	// Applies, incremental and verifying the set, keep the elements.
	for _, next := range []*Table{nfttest.Changed(), nfttest.Sample()} {
		if _, err := k.Apply(next, "learned_4"); err != nil {
			t.Fatal(err)
		}
		has("after an apply", []string{"192.0.2.4 timeout 2h", "192.0.2.5", "198.51.100.0/24"}, nil)
	}
	if p, err := k.Plan(tbl, "learned_4"); err != nil || !p.Empty() {
		t.Errorf("plan = %v, %v; want empty", p, err)
	}
	time.Sleep(1500 * time.Millisecond)
	has("after 1.5s", nil, []string{"192.0.2.99"})
}

// TestMeterSetKept loads the sample table, whose meter sets the kernel
// fills from the packet path, puts an element in one as a meter would, and
// requires that applies, incremental and back, leave it there and see
// nothing to change.
func TestMeterSetKept(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	tbl := nfttest.Sample()
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	nfttest.NFT(t, ns, "", "add", "element", "inet", tbl.Name, "meter_4", "{ 192.0.2.7 timeout 1h }")
	for _, next := range []*Table{nfttest.Changed(), nfttest.Sample()} {
		if _, err := k.Apply(next); err != nil {
			t.Fatal(err)
		}
		if got := nfttest.NFT(t, ns, "", "list", "set", "inet", tbl.Name, "meter_4"); !strings.Contains(got, "192.0.2.7") {
			t.Fatalf("an apply emptied meter_4:\n%s", got)
		}
	}
	if p, err := k.Plan(tbl); err != nil || !p.Empty() {
		t.Errorf("plan = %v, %v; want empty", p, err)
	}
	st, err := k.Read(tbl.Name)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(tbl, st); len(d) != 0 {
		t.Errorf("Diff = %q, want none", d)
	}
}
