package fake_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/fake"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"
)

// withBridge returns the sample table with a bridge table that drops a
// known container's address from other ports, looked up in a set of
// concatenated keys.
func withBridge(port string) *nft.Table {
	tbl := nfttest.Sample()
	a := netip.MustParseAddr("172.20.0.2")
	tbl.Bridge = &nft.Table{Sets: []*nft.Set{
		{Name: "claimed4", Key: nft.KeyIPv4, Ranges: []nft.Range{{From: a, To: a}}},
		{Name: "own4", Key: nft.KeyIfNameIPv4, Tuples: []nft.Tuple{{IfName: port, Addr: a}}},
	}, Chains: []*nft.Chain{
		{Name: "claims", Hook: nft.HookPrerouting, Rules: []*nft.Rule{
			{Matches: []nft.Match{nft.Protocol{EtherType: 0x0800}, nft.Lookup{Fields: []nft.Field{nft.FieldIPSrc4}, Set: "claimed4"}, nft.Lookup{Fields: []nft.Field{nft.FieldIIfName, nft.FieldIPSrc4}, Set: "own4", Neg: true}}, Counter: true, Verdict: nft.Verdict{Kind: nft.Drop}, ID: "ip"},
		}},
	}}
	return tbl
}

// TestBridgePlanOneTransaction checks that the bridge table is planned
// into the inet table's transaction, read back as applied (its set of
// concatenated keys too), changed by an element edit when a tuple
// changes, and deleted by an apply without it and by Delete.
func TestBridgePlanOneTransaction(t *testing.T) {
	k := fake.New()
	tbl := withBridge("veth0")
	p, err := k.Plan(tbl)
	if err != nil {
		t.Fatal(err)
	}
	text := p.String()
	for _, want := range []string{
		"add table bridge dftest\n",
		"add chain bridge dftest claims { type filter hook prerouting priority -10; policy accept; }\n",
		`add set bridge dftest own4 { type ifname . ipv4_addr; comment "dockerfence"; elements = { "veth0" . 172.20.0.2 }; }`,
		"add rule bridge dftest claims meta protocol ip ip saddr @claimed4 iifname . ip saddr != @own4 counter drop\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("fresh plan lacks %q:\n%s", want, text)
		}
	}
	if len(p.Txs) != 1 {
		t.Fatalf("fresh plan in %d transactions, want 1:\n%s", len(p.Txs), text)
	}
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	if got := k.Table(tbl.Name).Bridge; got == nil || got.Set("own4") == nil || len(got.Set("own4").Tuples) != 1 || got.Set("own4").Tuples[0].IfName != "veth0" {
		t.Fatalf("the fake holds the bridge table as %+v", got)
	}
	if p, err := k.Plan(tbl); err != nil || !p.Empty() {
		t.Fatalf("plan of the same tables: %v\n%s", err, p)
	}
	moved := withBridge("veth1")
	p, err = k.Plan(moved)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.String(); !strings.Contains(s, `delete element bridge dftest own4 { "veth0" . 172.20.0.2 }`) || !strings.Contains(s, `add element bridge dftest own4 { "veth1" . 172.20.0.2 }`) {
		t.Errorf("plan of a moved tuple:\n%s", s)
	}
	if _, err := k.Apply(moved); err != nil {
		t.Fatal(err)
	}
	if p, err := k.Plan(moved); err != nil || !p.Empty() {
		t.Fatalf("plan after: %v\n%s", err, p)
	}
	plain := nfttest.Sample()
	if _, err := k.Apply(plain); err != nil {
		t.Fatal(err)
	}
	if k.TableOf(nft.FamilyBridge, plain.Name) != nil {
		t.Error("the bridge table outlived an apply without it")
	}
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	if existed, err := k.Delete(tbl.Name); err != nil || !existed || k.TableOf(nft.FamilyBridge, tbl.Name) != nil {
		t.Errorf("Delete: %v, %v; bridge table %v", existed, err, k.TableOf(nft.FamilyBridge, tbl.Name))
	}
}
