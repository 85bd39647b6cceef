package nft_test

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"
)

// TestReplacementKeepsElementsInKernel replaces a table of a real kernel
// (in a network namespace of its own; its priority changes) whose runtime
// timeout set holds elements: the new table's set holds them, each with
// about the time it had left (not a fresh full timeout, and not gone), one
// without a timeout as it was; and UDP flooded to one of them through the
// set's rule is let through after each replacement, and refused only in
// the moment the kernel takes to publish the new set (see below). A base
// chain that comes and goes does not replace the table: the set stays as
// it is, and no datagram is refused.
func TestReplacementKeepsElementsInKernel(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	for _, args := range [][]string{{"link", "set", "lo", "up"}, {"addr", "add", "198.18.0.7/32", "dev", "lo"}} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	udp := L4Proto{Protos: []uint8{17}}
	port := DPort{Range: PortRange{First: 9999, Last: 9999}}
	// Tables that differ in their base chains: a change of priority
	// replaces the table; an input chain that comes or goes is added or
	// deleted in place.
	table := func(prio int, input bool) *Table {
		tbl := &Table{Name: "df_keep", Priority: prio,
			Sets: []*Set{{Name: "names_x_4", Key: KeyIPv4, Timeout: true, Owner: OwnedByRuntime}},
			Chains: []*Chain{{Name: "output", Hook: HookOutput, Rules: []*Rule{
				{Matches: []Match{udp, port, Addr{Set: "names_x_4"}}, Counter: true, Verdict: Verdict{Kind: Accept}, ID: "learned"},
				{Matches: []Match{udp, port}, Counter: true, Verdict: Verdict{Kind: Drop}, ID: "refused"},
			}}}}
		if input {
			tbl.Chains = append(tbl.Chains, &Chain{Name: "input", Hook: HookInput, Rules: []*Rule{{Counter: true, ID: "count"}}})
		}
		return tbl
	}
	if _, err := k.Apply(table(-10, false)); err != nil {
		t.Fatal(err)
	}
	pfx := netip.MustParsePrefix
	elems := []Element{
		{Prefix: pfx("198.18.0.7/32"), Timeout: time.Hour},
		{Prefix: pfx("198.18.0.8/32"), Timeout: 30 * time.Second},
		{Prefix: pfx("198.18.0.9/32")},
	}
	for i := range 300 {
		a := netip.AddrFrom4([4]byte{198, 19, byte(i / 256), byte(i % 256)})
		elems = append(elems, Element{Prefix: netip.PrefixFrom(a, 32), Timeout: 20 * time.Minute})
	}
	if err := k.Update("df_keep", "names_x_4", elems, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)

	p, err := k.Plan(table(-20, false))
	if err != nil {
		t.Fatal(err)
	}
	if text := p.String(); !strings.Contains(text, "delete table inet df_keep\n") || !strings.Contains(text, "# keeps the 303 live elements of set names_x_4") {
		t.Errorf("the plan does not replace the table keeping the 303 elements:\n%s", text)
	}
	if err := p.Send(k); err != nil {
		t.Fatal(err)
	}
	list := func() string { return nfttest.NFT(t, ns, "", "list", "set", "inet", "df_keep", "names_x_4") }
	got := list()
	for _, c := range []struct {
		addr string
		was  time.Duration
	}{{"198.18.0.7", time.Hour}, {"198.18.0.8", 30 * time.Second}} {
		timeout, left, ok := timeoutOf(t, got, c.addr)
		if !ok {
			t.Fatalf("%s is gone after the replacement:\n%s", c.addr, got)
		}
		// It had about was-1.1s left: so it has now, as its timeout too.
		if timeout >= c.was-time.Second || timeout < c.was-5*time.Second || left > timeout || left < timeout-2*time.Second {
			t.Errorf("%s: timeout %v expires %v after the replacement; it had timeout %v, 1.1s of which had passed", c.addr, timeout, left, c.was)
		}
		t.Logf("%s: timeout %v before the replacement, timeout %v expires %v after it", c.addr, c.was, timeout, left)
	}
	if !strings.Contains(got, "198.18.0.9,") && !strings.Contains(got, "198.18.0.9 ") && !strings.Contains(got, "198.18.0.9\n") {
		t.Errorf("198.18.0.9 (no timeout) is gone after the replacement:\n%s", got)
	}
	if n := strings.Count(got, " timeout "); n != 302 {
		t.Errorf("%d elements with a timeout after the replacement, want 302", n)
	}

	// After the replacement, the carried element lets every datagram
	// through.
	if sent, arrived, refused := floodRefused(t, ns, 500*time.Millisecond); refused != 0 || sent < 1000 {
		t.Errorf("after the replacement: %d datagrams sent, %d arrived, %d refused; want none refused", sent, arrived, refused)
	}

	// A flood through the set's rule while the table is replaced every
	// 20ms. The kernel publishes a new interval set's elements to the
	// packet path (the rbtree's lookup array, Linux 6.18) only after the
	// commit's generation flip, so for a moment the new rules look up a
	// set that seems empty: datagrams sent in that moment are refused,
	// as they are with nft -f. Without the carried elements, every
	// datagram after the first replacement would be.
	var replacements atomic.Int64
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := k.Apply(table(-10-10*(i%2), false)); err != nil {
				errs <- fmt.Errorf("replacement %d: %w", i, err)
				return
			}
			replacements.Add(1)
		}
	}()
	sent, arrived, refused := floodRefused(t, ns, 3*time.Second)
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d replacements of the table during the flood: %d datagrams sent, %d arrived, %d refused (%.2f%%, %.1f a replacement)",
		replacements.Load(), sent, arrived, refused, 100*float64(refused)/float64(sent), float64(refused)/float64(replacements.Load()))
	if replacements.Load() < 10 || sent < 1000 {
		t.Errorf("only %d replacements, %d datagrams", replacements.Load(), sent)
	}
	if refused*4 > sent {
		t.Errorf("%d of %d datagrams refused while the table was replaced", refused, sent)
	}
	if sent, arrived, refused := floodRefused(t, ns, 500*time.Millisecond); refused != 0 {
		t.Errorf("after %d replacements: %d datagrams sent, %d arrived, %d refused; want none refused", replacements.Load(), sent, arrived, refused)
	}
	if _, _, ok := timeoutOf(t, list(), "198.18.0.7"); !ok {
		t.Fatalf("198.18.0.7 is gone after %d replacements:\n%s", replacements.Load(), list())
	}

	// An input chain added and deleted in place, in a loop: the set is
	// kept as it is (its elements' timeouts do not change), and no
	// datagram is refused. First back to priority -10, where the loop
	// above may not have left it.
	if _, err := k.Apply(table(-10, false)); err != nil {
		t.Fatal(err)
	}
	timeout, _, ok := timeoutOf(t, list(), "198.18.0.7")
	if !ok {
		t.Fatalf("198.18.0.7 is gone:\n%s", list())
	}
	var changes atomic.Int64
	stop = make(chan struct{})
	errs = make(chan error, 1)
	go func() {
		defer close(errs)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			p, err := k.Plan(table(-10, i%2 == 0))
			if err == nil && strings.Contains(p.String(), "delete table") {
				err = fmt.Errorf("the plan replaces the table:\n%.400s", p)
			}
			if err == nil {
				err = p.Send(k)
			}
			if err != nil {
				errs <- fmt.Errorf("change %d: %w", i, err)
				return
			}
			changes.Add(1)
		}
	}()
	sent, arrived, refused = floodRefused(t, ns, 2*time.Second)
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d in-place additions and deletions of a base chain during the flood: %d datagrams sent, %d arrived, %d refused", changes.Load(), sent, arrived, refused)
	if changes.Load() < 10 || sent < 1000 || refused != 0 {
		t.Errorf("%d of %d datagrams refused during %d in-place changes of base chains; want none", refused, sent, changes.Load())
	}
	if again, _, ok := timeoutOf(t, list(), "198.18.0.7"); !ok || again != timeout {
		t.Errorf("198.18.0.7 after the in-place changes: timeout %v (there: %v), want %v as before: the set was re-created", again, ok, timeout)
	}
}

// floodRefused sends UDP datagrams to 198.18.0.7:9999 in namespace ns for
// d, to a socket of its own there, and returns how many were sent, how
// many arrived, and how many the output hook refused (their send fails
// with EPERM).
func floodRefused(t *testing.T, ns string, d time.Duration) (sent, got, refused int) {
	t.Helper()
	const script = `
import socket, sys, time
d = float(sys.argv[1])
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 24)
r.bind(("198.18.0.7", 9999)); r.setblocking(False)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sent = got = refused = 0
def drain():
    global got
    while True:
        try:
            r.recv(64); got += 1
        except BlockingIOError:
            return
end = time.monotonic() + d
while time.monotonic() < end:
    for _ in range(50):
        sent += 1
        try:
            s.sendto(b"x", ("198.18.0.7", 9999))
        except PermissionError:
            refused += 1
    drain()
time.sleep(0.05)
drain()
print(sent, got, refused)
`
	out, err := exec.Command("ip", "netns", "exec", ns, "python3", "-c", script, strconv.FormatFloat(d.Seconds(), 'f', 3, 64)).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 in %s: %v: %s", ns, err, out)
	}
	if _, err := fmt.Sscan(string(out), &sent, &got, &refused); err != nil {
		t.Fatalf("python3 printed %q: %v", out, err)
	}
	return sent, got, refused
}
