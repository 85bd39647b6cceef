package nft_test

import (
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"
)

// TestRefreshTxText: a refresh is a bare add, a delete and an add with
// the timeout; a fresh element is only added; an element named twice goes
// in once, a refresh if either says so, with the longer timeout.
func TestRefreshTxText(t *testing.T) {
	pfx := netip.MustParsePrefix
	tx := RefreshTx("t", "s",
		[]Element{{Prefix: pfx("192.0.2.1/32"), Timeout: time.Minute}, {Prefix: pfx("192.0.2.2/32"), Timeout: time.Hour}},
		[]Element{{Prefix: pfx("192.0.2.2/32"), Timeout: time.Minute}, {Prefix: pfx("192.0.2.3/32"), Timeout: 90 * time.Second}, {Prefix: pfx("192.0.2.3/32"), Timeout: time.Second}})
	want := "add element inet t s { 192.0.2.2, 192.0.2.3 }\n" +
		"delete element inet t s { 192.0.2.2, 192.0.2.3 }\n" +
		"add element inet t s { 192.0.2.1 timeout 1m, 192.0.2.2 timeout 1h, 192.0.2.3 timeout 1m30s }\n"
	if got := tx.String(); got != want {
		t.Errorf("RefreshTx:\n%s\nwant\n%s", got, want)
	}
	if tx := RefreshTx("t", "s", []Element{{Prefix: pfx("192.0.2.1/32"), Timeout: time.Minute}}, nil); len(tx.Ops) != 1 || tx.Ops[0].Kind != OpAddElements {
		t.Errorf("RefreshTx of fresh elements only: %v, want one add", tx)
	}
	if tx := RefreshTx("t", "s", nil, nil); len(tx.Ops) != 0 {
		t.Errorf("RefreshTx of nothing: %v", tx)
	}
}

// timeoutOf returns the timeout and the time left of addr in an nft
// listing of a set, and whether it is there.
func timeoutOf(t *testing.T, listing, addr string) (timeout, left time.Duration, ok bool) {
	t.Helper()
	m := regexp.MustCompile(`(?:^|[ {,\t])` + regexp.QuoteMeta(addr) + ` timeout ([0-9a-z]+) expires ([0-9a-z]+)`).FindStringSubmatch(listing)
	if m == nil {
		return 0, 0, false
	}
	parse := func(s string) time.Duration {
		// nft writes 1h, 2m30s, 29s996ms: Go's syntax, but for days.
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("nft's duration %q: %v", s, err)
		}
		return d
	}
	return parse(m[1]), parse(m[2]), true
}

// TestRefreshInKernel refreshes elements of a timeout set of a real
// kernel, in a network namespace of its own, with RefreshTx: an element
// that is there gets its new timeout, shorter or longer (the first add
// carries no timeout, so on this kernel too only the delete and the add
// after it can change it, as on kernels before 6.10); an element that is
// not there, or expired a moment ago, is created; 300 elements refreshed
// and 300 added go in one transaction.
func TestRefreshInKernel(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	tbl := &Table{Name: "df_refresh", Priority: -10, Sets: []*Set{{Name: "names_x_4", Key: KeyIPv4, Timeout: true, Owner: OwnedByRuntime}}}
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix
	list := func() string { return nfttest.NFT(t, ns, "", "list", "set", "inet", tbl.Name, "names_x_4") }
	if err := k.Update(tbl.Name, "names_x_4", []Element{
		{Prefix: pfx("192.0.2.1/32"), Timeout: time.Hour},
		{Prefix: pfx("192.0.2.2/32"), Timeout: time.Minute},
		{Prefix: pfx("192.0.2.3/32"), Timeout: time.Second},
	}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // 192.0.2.3 expires
	refresh := []Element{
		{Prefix: pfx("192.0.2.1/32"), Timeout: 30 * time.Second}, // shorter
		{Prefix: pfx("192.0.2.2/32"), Timeout: 2 * time.Hour},    // longer
		{Prefix: pfx("192.0.2.3/32"), Timeout: time.Minute},      // expired
		{Prefix: pfx("192.0.2.4/32"), Timeout: time.Minute},      // never there
	}
	if err := k.Commit(RefreshTx(tbl.Name, "names_x_4", nil, refresh)); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	got := list()
	for _, e := range refresh {
		addr := e.Prefix.Addr().String()
		timeout, left, ok := timeoutOf(t, got, addr)
		if !ok {
			t.Errorf("%s is not in the set after its refresh:\n%s", addr, got)
			continue
		}
		if timeout != e.Timeout || left > e.Timeout || left < e.Timeout-5*time.Second {
			t.Errorf("%s: timeout %v expires %v after the refresh, want timeout %v expiring in about that:\n%s", addr, timeout, left, e.Timeout, got)
		}
	}

	// 300 elements there and 300 not, in one transaction.
	var old, fresh, again []Element
	for i := range 300 {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i % 256)})
		b := netip.AddrFrom4([4]byte{198, 19, byte(i / 256), byte(i % 256)})
		old = append(old, Element{Prefix: netip.PrefixFrom(a, 32), Timeout: time.Hour})
		again = append(again, Element{Prefix: netip.PrefixFrom(a, 32), Timeout: 10 * time.Minute})
		fresh = append(fresh, Element{Prefix: netip.PrefixFrom(b, 32), Timeout: 20 * time.Minute})
	}
	if err := k.Update(tbl.Name, "names_x_4", old, nil); err != nil {
		t.Fatal(err)
	}
	tx := RefreshTx(tbl.Name, "names_x_4", fresh, again)
	if len(tx.Ops) != 3 {
		t.Errorf("RefreshTx of 600 elements: %d commands, want 3", len(tx.Ops))
	}
	start := time.Now()
	if err := k.Commit(tx); err != nil {
		t.Fatalf("refresh of 300 and add of 300: %v", err)
	}
	t.Logf("refreshed 300 elements and added 300 in one transaction in %v", time.Since(start))
	got = list()
	if n, m, h := strings.Count(got, "timeout 10m "), strings.Count(got, "timeout 20m "), strings.Count(got, "timeout 1h "); n != 300 || m != 300 || h != 0 {
		t.Errorf("after the refresh: %d elements with timeout 10m, %d with 20m, %d with 1h; want 300, 300, 0", n, m, h)
	}
	if p, err := k.Plan(tbl); err != nil || !p.Empty() {
		t.Errorf("plan = %v, %v; want empty", p, err)
	}
}

// TestRefreshKeepsPackets floods UDP to an address of a timeout set,
// through a rule that accepts it only while the set holds it, while
// RefreshTx refreshes it and its 299 neighbours in a loop: the kernel
// must refuse none of the datagrams (the rule after the set's is a
// counted drop), and as many must arrive as without the refreshes.
func TestRefreshKeepsPackets(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", "198.18.0.7/32", "dev", "lo"}} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	udp := L4Proto{Protos: []uint8{17}}
	port := DPort{Range: PortRange{First: 9999, Last: 9999}}
	tbl := &Table{Name: "df_refresh", Priority: -10,
		Sets: []*Set{{Name: "names_x_4", Key: KeyIPv4, Timeout: true, Owner: OwnedByRuntime}},
		Chains: []*Chain{{Name: "output", Hook: HookOutput, Rules: []*Rule{
			{Matches: []Match{udp, port, Addr{Set: "names_x_4"}}, Counter: true, Verdict: Verdict{Kind: Accept}, ID: "learned"},
			{Matches: []Match{udp, port}, Counter: true, Verdict: Verdict{Kind: Drop}, ID: "refused"},
		}}}}
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	var elems []Element
	for i := range 300 {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i % 256)})
		elems = append(elems, Element{Prefix: netip.PrefixFrom(a, 32), Timeout: time.Minute})
	}
	if err := k.Update(tbl.Name, "names_x_4", elems, nil); err != nil {
		t.Fatal(err)
	}
	counters := func() (learned, refused uint64) {
		t.Helper()
		st, err := k.Read(tbl.Name)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.Chains {
			for _, r := range c.Rules {
				switch r.ID {
				case "learned":
					learned = r.Packets
				case "refused":
					refused = r.Packets
				}
			}
		}
		return learned, refused
	}

	baseSent, baseGot := flood(t, ns, 2*time.Second)
	l0, r0 := counters()
	if r0 != 0 || l0 != uint64(baseSent) || baseSent < 1000 {
		t.Fatalf("without refreshes: %d sent, %d arrived; counters learned %d, refused %d", baseSent, baseGot, l0, r0)
	}

	var refreshes atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			again := make([]Element, len(elems))
			for j, e := range elems {
				e.Timeout = time.Duration(60+i%60) * time.Second
				again[j] = e
			}
			if err := k.Commit(RefreshTx(tbl.Name, "names_x_4", nil, again)); err != nil {
				errs <- fmt.Errorf("refresh %d: %w", i, err)
				return
			}
			refreshes.Add(1)
		}
	}()
	sent, got := flood(t, ns, 3*time.Second)
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	l1, r1 := counters()
	t.Logf("without refreshes: %d datagrams sent, %d arrived; with %d refreshes of 300 elements: %d sent, %d arrived, %d refused by the kernel",
		baseSent, baseGot, refreshes.Load(), sent, got, r1)
	if refreshes.Load() < 10 {
		t.Errorf("only %d refreshes during the flood", refreshes.Load())
	}
	if r1 != 0 || l1-l0 != uint64(sent) {
		t.Errorf("during the refreshes: %d sent, the set's rule accepted %d, the drop refused %d; want all accepted", sent, l1-l0, r1)
	}
	if lostBase, lost := baseSent-baseGot, sent-got; lost > lostBase {
		t.Errorf("%d of %d datagrams lost during the refreshes, %d of %d without", lost, sent, lostBase, baseSent)
	}
}

// flood sends UDP datagrams to 198.18.0.7:9999 in namespace ns for d, to
// a socket of its own there, and returns how many were sent and how many
// arrived. A datagram that the output hook drops fails its send (EPERM);
// it counts as sent, not as arrived (floodRefused counts those too).
func flood(t *testing.T, ns string, d time.Duration) (sent, got int) {
	t.Helper()
	sent, got, _ = floodRefused(t, ns, d)
	return sent, got
}
