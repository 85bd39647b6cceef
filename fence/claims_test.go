package fence

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/dockerfence/dockerfence/nft"
)

// TestClaims checks the bridge table of claims: a port whose MAC is known
// claims its MAC and addresses, tied to the port; a port without a known
// MAC, or a container without a port, claims nothing (its own ARP must
// pass); the claims chain hooks prerouting and denies into a drop chain
// without a container; and a table without such ports has no bridge
// table.
func TestClaims(t *testing.T) {
	pol := loadPolicy(t, "testdata/containers.yaml")
	mac := mustMAC("02:00:00:00:00:0a")
	ctrs := []Container{
		{ID: "aaaaaaaaaaaa1111", Name: "known", Endpoints: []Endpoint{{Network: "app_default", Port: "vetha", MAC: mac, Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.10"), netip.MustParseAddr("fd00:20::10")}}}},
		{ID: "bbbbbbbbbbbb2222", Name: "nomac", Endpoints: []Endpoint{{Network: "app_default", Port: "vethb", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.11")}}}},
		{ID: "cccccccccccc3333", Name: "noport", Endpoints: []Endpoint{{Network: "app_default", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.12")}}}},
	}
	r := CompileContainers(pol, testNetworks, ctrs)
	bt := r.Table.Bridge
	if bt == nil {
		t.Fatalf("no bridge table:\n%s", r.Text())
	}
	var m [6]byte
	copy(m[:], mac)
	a4, a6 := netip.MustParseAddr("172.20.0.10"), netip.MustParseAddr("fd00:20::10")
	for _, c := range []struct {
		set  string
		want []nft.Tuple
	}{
		{"claimedmac", []nft.Tuple{{MAC: m}}},
		{"ownmac", []nft.Tuple{{IfName: "vetha", MAC: m}}},
		{"own4", []nft.Tuple{{IfName: "vetha", Addr: a4}}},
		{"own6", []nft.Tuple{{IfName: "vetha", Addr: a6}}},
		{"ownarp", []nft.Tuple{{IfName: "vetha", Addr: a4, MAC: m}}},
	} {
		if s := bt.Set(c.set); s == nil || !slices.Equal(s.Tuples, c.want) {
			t.Errorf("set %s = %+v, want %+v", c.set, s, c.want)
		}
	}
	if s := bt.Set("claimed4"); s == nil || !slices.Equal(s.Ranges, []nft.Range{{From: a4, To: a4}}) {
		t.Errorf("claimed4 = %+v: want the known container's address only", s)
	}
	c := bt.Chain(ClaimsChain)
	if c == nil || c.Hook != nft.HookPrerouting || len(c.Rules) != 5 {
		t.Fatalf("chain claims:\n%s", r.Text())
	}
	d := r.Denials[ClaimsChain+".identity"]
	if d == nil || d.Container != nil || d.Reason != ReasonIdentity || c.Rules[1].Verdict.Target != d.Chain {
		t.Errorf("denial of the claims: %+v", d)
	}
	if dc := bt.Chain(ClaimsChain + ".identity"); dc == nil || dc.Rules[len(dc.Rules)-1].Verdict.Kind != nft.Drop {
		t.Errorf("the claims' deny chain does not drop:\n%s", r.Text())
	}
	ctrs[0].Endpoints[0].MAC = nil
	if r := CompileContainers(pol, testNetworks, ctrs); r.Table.Bridge != nil {
		t.Errorf("a bridge table without ports of known MAC:\n%s", r.Text())
	}
}
