package nft_test

import (
	"testing"

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
