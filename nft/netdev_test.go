package nft_test

import (
	"errors"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	. "github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"
	"golang.org/x/sys/unix"
)

// netdevTable is an inet table with an ingress chain on device dev and a
// netdev table with one there that drops ARP and frames that a port's
// container does not send as itself.
func netdevTable(dev string) *Table {
	mac := [6]byte{0x02, 0x42, 0xac, 0x14, 0, 2}
	deny := Verdict{Kind: Goto, Target: "arp_" + dev + ".deny"}
	return &Table{Name: "df_netdev", Priority: -10, Chains: []*Chain{
		{Name: "id_" + dev, Hook: HookIngress, Device: dev, Rules: []*Rule{
			{Matches: []Match{NFProto{}, Addr{Src: true, Neg: true, Prefix: netip.MustParsePrefix("172.20.0.2/32")}}, Counter: true, Verdict: Verdict{Kind: Drop}, ID: "spoof"},
			{Matches: []Match{NFProto{V6: true}, ICMPv6Type{Types: []uint8{136}}, NDTarget{Neg: true, Prefix: netip.MustParsePrefix("fe80::/64")}}, Counter: true, Verdict: Verdict{Kind: Drop}, ID: "nd"},
		}},
	}, Netdev: &Table{Chains: []*Chain{
		{Name: "arp_" + dev, Hook: HookIngress, Device: dev, Rules: []*Rule{
			{Matches: []Match{EtherSrc{MAC: mac, Neg: true}}, Counter: true, Verdict: deny, ID: "ether"},
			{Matches: []Match{Protocol{EtherType: EtherTypeARP}, ARPSender{MAC: mac, Neg: true}}, Counter: true, Verdict: deny, ID: "arp mac"},
			{Matches: []Match{Protocol{EtherType: EtherTypeARP}, ARPSender{IP: netip.MustParseAddr("172.20.0.2"), Neg: true}, ARPSender{IP: netip.IPv4Unspecified(), Neg: true}}, Counter: true, Verdict: deny, ID: "arp ip", Comment: "ARP sender not the container's own"},
		}},
		{Name: "arp_" + dev + ".deny", Rules: []*Rule{
			{Limit: 10, Log: &Log{Prefix: "dockerfence: deny arp ", Group: 100}, ID: "log"},
			{Verdict: Verdict{Kind: Drop}, ID: "drop"},
		}},
	}}}
}

// TestNetdevTable applies an inet table with its netdev table in a
// network namespace: nft lists both, as the model says; a plan of the same
// tables is empty; a chain of the netdev table that another process
// flushes or deletes is noticed and put back; an apply that the kernel
// refuses in the netdev table leaves the inet table as it was too (one
// transaction); a table without a netdev table deletes the kernel's; and
// Delete removes both.
func TestNetdevTable(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "vtest0", "type", "veth", "peer", "name", "vtest1").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	tbl := netdevTable("vtest0")
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	l := nfttest.NFT(t, ns, "", "list", "table", "netdev", "df_netdev")
	for _, want := range []string{
		`type filter hook ingress device "vtest0" priority filter - 10; policy accept;`,
		// nft has no Ethernet context in a netdev chain to name the field.
		"@ll,48,48 != 0x242ac140002 counter packets 0 bytes 0 goto arp_vtest0.deny",
		"arp saddr ether != 02:42:ac:14:00:02",
		"arp saddr ip != 172.20.0.2 arp saddr ip != 0.0.0.0 counter",
		`log prefix "dockerfence: deny arp " group 100`,
	} {
		if !strings.Contains(l, want) {
			t.Errorf("nft lists no %q:\n%s", want, l)
		}
	}
	if l := nfttest.NFT(t, ns, "", "list", "table", "inet", "df_netdev"); !strings.Contains(l, "icmpv6 type nd-neighbor-advert @th,64,128 & 0xffffffffffffffff0000000000000000 != 0xfe80") {
		t.Errorf("inet table:\n%s", l)
	}
	if got := tbl.Text(); !strings.Contains(got, "table netdev df_netdev {") || !strings.Contains(got, "arp saddr ip != 172.20.0.2 arp saddr ip != 0.0.0.0 counter goto arp_vtest0.deny") {
		t.Errorf("text:\n%s", got)
	}
	empty := func(what string) {
		t.Helper()
		if p, err := k.Plan(tbl); err != nil || !p.Empty() {
			t.Fatalf("%s: plan of the same tables: %v\n%s", what, err, p)
		}
	}
	empty("after apply")
	st, err := k.ReadFamily(FamilyNetdev, "df_netdev")
	if err != nil || st == nil || len(st.Chains) != 2 || st.Flags&FlagPersist == 0 {
		t.Fatalf("netdev table as read: %+v, %v; want 2 chains and flag persist, as the inet table", st, err)
	}

	for _, tamper := range []func() []string{
		func() []string { return []string{"flush", "chain", "netdev", "df_netdev", "arp_vtest0"} },
		func() []string {
			return []string{"delete", "rule", "netdev", "df_netdev", "arp_vtest0", "handle", handleOf(t, st, "arp_vtest0", 1)}
		},
	} {
		tamper := tamper()
		nfttest.NFT(t, ns, "", tamper...)
		all, err := k.ReadAll("df_netdev")
		if err != nil {
			t.Fatal(err)
		}
		if d := Diff(tbl, all); len(d) == 0 || !strings.HasPrefix(d[0], "netdev: ") {
			t.Errorf("after %v Diff says %q; want the netdev chain's drift", tamper, d)
		}
		p, err := k.Plan(tbl)
		if err != nil || p.Empty() {
			t.Fatalf("after %v the plan is empty (%v): the tampering went unnoticed", tamper, err)
		}
		if !strings.Contains(p.String(), "add rule netdev df_netdev arp_vtest0 ") {
			t.Errorf("the plan does not put the rules back:\n%s", p)
		}
		if _, err := k.Apply(tbl); err != nil {
			t.Fatal(err)
		}
		empty("after the repair of " + strings.Join(tamper, " "))
		if all, err := k.ReadAll("df_netdev"); err != nil || len(Diff(tbl, all)) > 0 {
			t.Errorf("after the repair Diff says %q (%v)", Diff(tbl, all), err)
		}
		st, _ = k.ReadFamily(FamilyNetdev, "df_netdev")
	}
	nfttest.NFT(t, ns, "", "delete", "table", "netdev", "df_netdev")
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	empty("after the netdev table was deleted and applied again")

	// One transaction: a netdev rule that goes to a missing chain is
	// refused, and the inet table's change with it.
	bad := netdevTable("vtest0")
	bad.Chains[0].Rules = bad.Chains[0].Rules[:1]
	bad.Netdev.Chains[0].Rules = append(bad.Netdev.Chains[0].Rules, &Rule{Verdict: Verdict{Kind: Goto, Target: "nochain"}, ID: "bad"})
	if _, err := k.Apply(bad); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("apply of a rule that goes to a missing chain: %v, want ENOENT", err)
	}
	empty("after a refused apply (the inet table must be unchanged too)")

	plain := &Table{Name: "df_netdev", Priority: -10, Chains: tbl.Chains}
	p, err := k.Plan(plain)
	if err != nil || !strings.Contains(p.String(), "delete table netdev df_netdev") {
		t.Fatalf("plan without a netdev table: %v\n%s", err, p)
	}
	if _, err := k.Apply(plain); err != nil {
		t.Fatal(err)
	}
	if st, err := k.ReadFamily(FamilyNetdev, "df_netdev"); err != nil || st != nil {
		t.Fatalf("netdev table after an apply without it: %+v, %v", st, err)
	}
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	if existed, err := k.Delete("df_netdev"); err != nil || !existed {
		t.Fatalf("Delete: %v, %v", existed, err)
	}
	for _, f := range []Family{FamilyInet, FamilyNetdev} {
		if st, err := k.ReadFamily(f, "df_netdev"); err != nil || st != nil {
			t.Errorf("%s table after Delete: %+v, %v", f, st, err)
		}
	}
}

// TestNetdevTableOwned checks that a lasting Kernel owns the netdev table
// as it owns the inet one, where the kernel has the flags.
func TestNetdevTableOwned(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "vtest0", "type", "veth", "peer", "name", "vtest1").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	lk, err := OpenKernel(Options{NetNS: k.NetNS})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	prot, err := lk.Protection()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lk.Apply(netdevTable("vtest0")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []Family{FamilyInet, FamilyNetdev} {
		st, err := lk.ReadFamily(f, "df_netdev")
		if err != nil || st == nil {
			t.Fatalf("%s: %v, %v", f, st, err)
		}
		if st.Flags != prot.Flags || prot.Flags&FlagOwner != 0 && st.Owner != prot.Port {
			t.Errorf("%s table: flags %v owner %d; want %v owner %d", f, st.Flags, st.Owner, prot.Flags, prot.Port)
		}
	}
	if prot.Flags&FlagOwner != 0 {
		cmd := exec.Command("ip", "netns", "exec", ns, "nft", "flush", "chain", "netdev", "df_netdev", "arp_vtest0")
		if out, err := cmd.CombinedOutput(); err == nil {
			t.Errorf("another process flushed the owned netdev chain: %s", out)
		}
	} else {
		t.Logf("kernel without owned tables (%s): ownership not checked", prot.Why)
	}
}

// handleOf returns the handle of rule i of chain name in st.
func handleOf(t *testing.T, st *State, name string, i int) string {
	t.Helper()
	for _, c := range st.Chains {
		if c.Name == name && i < len(c.Rules) {
			return strconv.FormatUint(c.Rules[i].Handle, 10)
		}
	}
	t.Fatalf("no rule %d in chain %s", i, name)
	return ""
}

// TestNetdevChainDeviceGone applies the tables with chains on a device,
// removes the device (a container that died), and applies again: the
// tables without the device's chains, as the compiler then makes them,
// apply, and a plan of them is empty after.
func TestNetdevChainDeviceGone(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "vtest0", "type", "veth", "peer", "name", "vtest1").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	tbl := netdevTable("vtest0")
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "-n", ns, "link", "del", "vtest0").CombinedOutput(); err != nil {
		t.Fatalf("ip link del: %v: %s", err, out)
	}
	for _, f := range []Family{FamilyInet, FamilyNetdev} {
		st, err := k.ReadFamily(f, "df_netdev")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.Chains {
			t.Logf("%s table after the device went: chain %s hook %q", f, c.Name, c.Hook)
		}
	}
	// The same tables again: what a sync that has not yet seen the
	// container die applies. The kernel may take it or refuse it; either
	// way the next apply, without the chains, must work.
	if _, err := k.Apply(tbl); err != nil {
		t.Logf("apply with the chains of the missing device: %v", err)
	}
	without := &Table{Name: "df_netdev", Priority: -10, Netdev: &Table{}}
	if _, err := k.Apply(without); err != nil {
		t.Fatalf("apply without the chains: %v", err)
	}
	if p, err := k.Plan(without); err != nil || !p.Empty() {
		t.Errorf("plan after: %v\n%s", err, p)
	}
}
