package nft_test

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	. "github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"
)

// TestIngressChain applies a table with an ingress chain on a device in a
// network namespace: it loads, nft lists it on the device, a plan of the
// same table is empty, and when the device goes away the chain is read
// back without it and a table without the chain applies.
func TestIngressChain(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	if out, err := exec.Command("ip", "-n", ns, "link", "add", "vtest0", "type", "veth", "peer", "name", "vtest1").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	tbl := &Table{Name: "df_ingress", Priority: -10, Chains: []*Chain{
		{Name: "id_vtest0", Hook: HookIngress, Device: "vtest0", Rules: []*Rule{
			{Matches: []Match{NFProto{}, Addr{Src: true, Neg: true, Prefix: netip.MustParsePrefix("172.20.0.2/32")}}, Counter: true, Verdict: Verdict{Kind: Drop}, ID: "spoof"},
		}},
	}}
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	l := nfttest.NFT(t, ns, "", "list", "table", "inet", "df_ingress")
	if !strings.Contains(l, `type filter hook ingress device "vtest0"`) {
		t.Fatalf("nft lists:\n%s", l)
	}
	if p, err := k.Plan(tbl); err != nil || !p.Empty() {
		t.Fatalf("plan of the same table: %v, %v", p, err)
	}
	if got := tbl.Text(); !strings.Contains(got, `hook ingress device "vtest0"`) {
		t.Errorf("text:\n%s", got)
	}
	if out, err := exec.Command("ip", "-n", ns, "link", "del", "vtest0").CombinedOutput(); err != nil {
		t.Fatalf("ip link del: %v: %s", err, out)
	}
	st, err := k.Read("df_ingress")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Chains {
		t.Logf("after the device went: chain %s hook %q", c.Name, c.Hook)
	}
	without := &Table{Name: "df_ingress", Priority: -10}
	if _, err := k.Apply(without); err != nil {
		t.Fatalf("apply without the chain: %v", err)
	}
	if p, err := k.Plan(without); err != nil || !p.Empty() {
		t.Errorf("plan after: %v, %v", p, err)
	}
}
