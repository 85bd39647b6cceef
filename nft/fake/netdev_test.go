package fake_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/fake"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"
	"golang.org/x/sys/unix"
)

// withNetdev returns the sample table with a netdev table of one port
// chain that checks ARP from the address own.
func withNetdev(own string) *nft.Table {
	tbl := nfttest.Sample()
	mac := [6]byte{2, 0x42, 0xac, 0x14, 0, 2}
	tbl.Netdev = &nft.Table{Chains: []*nft.Chain{
		{Name: "l2_veth0", Hook: nft.HookIngress, Device: "veth0", Rules: []*nft.Rule{
			{Matches: []nft.Match{nft.EtherSrc{MAC: mac, Neg: true}}, Counter: true, Verdict: nft.Verdict{Kind: nft.Drop}, ID: "ether"},
			{Matches: []nft.Match{nft.Protocol{EtherType: nft.EtherTypeARP}, nft.ARPSender{IP: netip.MustParseAddr(own), Neg: true}}, Counter: true, Verdict: nft.Verdict{Kind: nft.Drop}, ID: "arp ip"},
		}},
	}}
	return tbl
}

// TestNetdevPlanOneTransaction checks that the netdev table is planned
// into the inet table's transactions, is read back as it was applied, is
// changed alone when only it changes, goes with the inet table's change
// when the kernel refuses either, and is deleted by an apply without it
// and by Delete.
func TestNetdevPlanOneTransaction(t *testing.T) {
	k := fake.New()
	tbl := withNetdev("172.20.0.2")
	p, err := k.Plan(tbl)
	if err != nil {
		t.Fatal(err)
	}
	text := p.String()
	for _, want := range []string{
		"# transaction 1 of 1: the switch-over\n",
		"add table inet dftest\n",
		"add table netdev dftest\n",
		"add chain netdev dftest l2_veth0 { type filter hook ingress device \"veth0\" priority -10; policy accept; }\n",
		"add rule netdev dftest l2_veth0 ether saddr != 02:42:ac:14:00:02 counter drop\n",
		"add rule netdev dftest l2_veth0 meta protocol arp arp saddr ip != 172.20.0.2 counter drop\n",
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
	if got, want := k.Table(tbl.Name).Body(), tbl.Body(); !strings.Contains(got, "table netdev dftest {") || canonical(k.Table(tbl.Name)) != canonical(tbl) {
		t.Errorf("read back:\n%s\nwant:\n%s", got, want)
	}
	if p, err := k.Plan(tbl); err != nil || !p.Empty() {
		t.Fatalf("plan of the applied table: %v\n%s", err, p)
	}

	// Only the netdev table changes: one transaction of netdev commands.
	moved := withNetdev("172.20.0.9")
	p, err = k.Plan(moved)
	if err != nil || len(p.Txs) != 1 {
		t.Fatalf("plan of a netdev change: %v\n%s", err, p)
	}
	for _, op := range p.Txs[0].Ops {
		if op.Family != nft.FamilyNetdev {
			t.Errorf("a netdev change plans %v on the inet table:\n%s", op.Kind, p)
		}
	}

	// A refusal in the netdev table leaves the inet table's change out too.
	both := withNetdev("172.20.0.9")
	both.Chains[0].Rules = both.Chains[0].Rules[:1]
	k.Refuse(func(tx *nft.Transaction) error {
		for _, op := range tx.Ops {
			if op.Family == nft.FamilyNetdev && op.Kind == nft.OpAddRule {
				return unix.EINVAL
			}
		}
		return nil
	})
	if _, err := k.Apply(both); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("apply refused in the netdev table: %v", err)
	}
	k.Refuse(nil)
	if p, err := k.Plan(tbl); err != nil || !p.Empty() {
		t.Fatalf("after a refused apply the tables are not as they were: %v\n%s", err, p)
	}

	// A table without a netdev table deletes the kernel's.
	plain := nfttest.Sample()
	p, err = k.Plan(plain)
	if err != nil || !strings.Contains(p.String(), "delete table netdev dftest\n") {
		t.Fatalf("plan without a netdev table: %v\n%s", err, p)
	}
	if _, err := k.Apply(plain); err != nil {
		t.Fatal(err)
	}
	if k.TableOf(nft.FamilyNetdev, plain.Name) != nil {
		t.Error("the netdev table is still there")
	}
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	if existed, err := k.Delete(tbl.Name); err != nil || !existed || k.TableOf(nft.FamilyNetdev, tbl.Name) != nil || k.Table(tbl.Name) != nil {
		t.Errorf("Delete: %v, %v; tables left: inet %v, netdev %v", existed, err, k.Table(tbl.Name) != nil, k.TableOf(nft.FamilyNetdev, tbl.Name) != nil)
	}
}

// TestNetdevOwned checks that an owning socket owns the netdev table with
// the inet one, and that another's change to it is refused.
func TestNetdevOwned(t *testing.T) {
	k := fake.New()
	k.Own()
	tbl := withNetdev("172.20.0.2")
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	st, err := k.ReadFamily(nft.FamilyNetdev, tbl.Name)
	if err != nil || st == nil || st.Flags != nft.FlagOwner|nft.FlagPersist || st.Owner != fake.FirstPort {
		t.Fatalf("netdev table: %+v, %v", st, err)
	}
	err = k.CommitAs(&nft.Transaction{Table: tbl.Name, Ops: []nft.Op{{Kind: nft.OpFlushChain, Family: nft.FamilyNetdev, Name: "l2_veth0"}}})
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("another's flush of the owned netdev chain: %v, want EPERM", err)
	}
	// After the owner's exit, the next owner adopts both tables in one
	// transaction.
	k.Exit()
	p, err := k.Plan(tbl)
	if err != nil || !p.Adopts || len(p.Txs) != 1 || !strings.Contains(p.String(), "add table netdev dftest") || !strings.Contains(p.String(), "add table inet dftest") {
		t.Fatalf("plan after the owner's exit: %v\n%s", err, p)
	}
}
