package fence

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/fake"
	"github.com/dockerfence/dockerfence/policy"
)

// TestNamesEditedListDropsOldAddresses: editing a named list's names
// gets its sets anew: what was learned for the old names is gone (the sets
// are tagged with a digest of the names); the same names in another order
// or case keep them.
func TestNamesEditedListDropsOldAddresses(t *testing.T) {
	nets := []policy.Network{{Name: "app", Bridge: "br-app", Subnets: prefixes("172.20.0.0/16")}}
	src := func(name string) string {
		return "version: 1\nlists:\n  gh: {names: [" + name + "]}\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n      - allow: \"@gh\"\n        proto: tcp\n        ports: [443]\n    egress_default: deny\n"
	}
	a := compileSource(t, src("old.example"), nets)
	b := compileSource(t, src("new.example"), nets)
	k := fake.New()
	if _, err := k.Apply(a.Table); err != nil {
		t.Fatal(err)
	}
	set := a.NameSets[0].Set4
	if err := k.Update(a.Table.Name, set, []nft.Element{{Prefix: netip.MustParsePrefix("203.0.113.9/32"), Timeout: time.Hour}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Apply(b.Table); err != nil {
		t.Fatal(err)
	}
	if got := k.Elements(b.Table.Name, b.NameSets[0].Set4); len(got) != 0 {
		t.Errorf("after the list's patterns changed from old.example to new.example, %s still holds %q (old.example's address)", b.NameSets[0].Set4, got)
	}
	// The same names, written otherwise: nothing is dropped.
	c := compileSource(t, src("new.example, Other.example."), nets)
	d := compileSource(t, src("other.example, new.example"), nets)
	if _, err := k.Apply(c.Table); err != nil {
		t.Fatal(err)
	}
	if err := k.Update(c.Table.Name, set, []nft.Element{{Prefix: netip.MustParsePrefix("203.0.113.10/32"), Timeout: time.Hour}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Apply(d.Table); err != nil {
		t.Fatal(err)
	}
	if got := k.Elements(d.Table.Name, set); len(got) == 0 {
		t.Errorf("the same names in another order and case dropped what was learned")
	}
}
