package nft_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	. "github.com/dockerfence/dockerfence/nft"

	"github.com/google/go-cmp/cmp"
)

// netns creates a network namespace for the test, deleted at its end, and
// returns its name and the Kernel that works in it. It skips the test
// without root or without the ip and nft programs. Nothing here touches
// the namespace the test runs in.
func netns(t *testing.T) (string, Kernel) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	for _, prog := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("needs %s: %v", prog, err)
		}
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "dfnft-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return name, Kernel{NetNS: int(f.Fd())}
}

// nftIn runs nft with args in the namespace, stdin as its input.
func nftIn(t *testing.T, ns, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s in %s: %v\n%s\ninput:\n%s", strings.Join(args, " "), ns, err, out, stdin)
	}
	return string(out)
}

// expires drops what changes with time in a listing: elements' expiry.
var expires = regexp.MustCompile(` expires [0-9a-z]+`)

// listing returns the table as nft lists it.
func listing(t *testing.T, ns, table string) string {
	t.Helper()
	return expires.ReplaceAllString(nftIn(t, ns, "", "list", "table", "inet", table), "")
}

// TestPlanTextLoads loads the text of plans with nft -f, in one network
// namespace, while Apply sends the same plans over netlink in another, and
// requires that nft lists the same table in both: for a fresh table, and
// for an incremental change of every kind.
func TestPlanTextLoads(t *testing.T) {
	nsText, _ := netns(t)
	nsApply, k := netns(t)
	from, to := sampleTable(), sampleChanged()
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
		nftIn(t, nsText, p.String(), "-f", "-")
		if err := p.Send(k); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got, want := listing(t, nsText, step.t.Name), listing(t, nsApply, step.t.Name)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: nft -f of the plan's text lists (+) otherwise than Apply's table (-):\n%s\nplan:\n%s", step.name, diff, p)
		}
		if p, err := k.Plan(step.t); err != nil || !p.Empty() {
			t.Errorf("%s: plan after apply = %v, %v; want empty", step.name, p, err)
		}
	}
}
