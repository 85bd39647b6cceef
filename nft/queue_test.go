package nft_test

import (
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"
)

// queueTable is a table whose output chain queues UDP from port 53 to
// queue 53 with bypass, and UDP from port 54 to queue 54 without.
func queueTable() *Table {
	udp := L4Proto{Protos: []uint8{17}}
	return &Table{Name: "df_queue", Priority: -10, Chains: []*Chain{
		{Name: "output", Hook: HookOutput, Rules: []*Rule{
			{Matches: []Match{udp, SPort{Range: PortRange{First: 53, Last: 53}}}, Counter: true, Verdict: Verdict{Kind: Queue, QueueNum: 53, Bypass: true}, ID: "bypass"},
			{Matches: []Match{udp, SPort{Range: PortRange{First: 54, Last: 54}}}, Counter: true, Verdict: Verdict{Kind: Queue, QueueNum: 54}, ID: "held"},
		}},
	}}
}

// udpThrough sends n datagrams over the namespace's loopback from port
// sport to a socket of its own, and returns how many arrived.
func udpThrough(t *testing.T, ns string, sport, n int) int {
	t.Helper()
	const script = `
import socket, sys
sport, n = int(sys.argv[1]), int(sys.argv[2])
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(("127.0.0.1", 5353)); r.settimeout(0.2)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", sport))
got = 0
for i in range(n):
    s.sendto(b"answer", ("127.0.0.1", 5353))
    try:
        r.recv(64); got += 1
    except socket.timeout:
        pass
print(got)
`
	out, err := exec.Command("ip", "netns", "exec", ns, "python3", "-c", script, strconv.Itoa(sport), strconv.Itoa(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 in %s: %v: %s", ns, err, out)
	}
	got, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("python3 printed %q", out)
	}
	return got
}

// TestQueueVerdict loads rules whose verdict is the xtables target
// NFQUEUE (through nft_compat) in an output base chain of a namespace of
// its own: the table applies, a plan of the same table is empty (the
// target reads back equal), nft lists the rules as the model's text
// renders them, and with no program bound to the queues the datagrams of
// the bypass rule pass while those of the other one are dropped, each
// counted by its rule.
func TestQueueVerdict(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	tbl := queueTable()
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	if p, err := k.Plan(tbl); err != nil || !p.Empty() {
		t.Fatalf("plan of the same table: %v, %v", p, err)
	}
	st, err := k.Read(tbl.Name)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(tbl, st); len(d) != 0 {
		t.Errorf("Diff = %q, want none", d)
	}
	// nft (with libxtables) lists the target as its translation, and
	// libxtables complains on stderr of the inet family.
	listing := strings.ReplaceAll(nfttest.NFT(t, ns, "", "list", "table", "inet", tbl.Name), "libxtables: unhandled NFPROTO in xtables_set_nfproto\n", "")
	if !strings.Contains(listing, "type filter hook output priority filter - 10; policy accept;") {
		t.Errorf("nft lists no output chain:\n%s", listing)
	}
	text := tbl.Text()
	for _, r := range tbl.Chains[0].Rules {
		// nft shortens "meta l4proto udp th sport" to "udp sport".
		line := strings.Replace(r.Text(), "meta l4proto udp th sport", "udp sport", 1)
		if !strings.Contains(listing, strings.Replace(line, "counter", "counter packets 0 bytes 0", 1)) {
			t.Errorf("nft lists otherwise than the model's text %q:\n%s", line, listing)
		}
		if !strings.Contains(text, r.Text()) {
			t.Errorf("the table's text lacks %q:\n%s", r.Text(), text)
		}
	}
	for _, want := range []string{"counter queue num 53 bypass", "counter queue num 54\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("the table's text lacks %q:\n%s", want, text)
		}
	}
	const n = 20
	if got := udpThrough(t, ns, 53, n); got != n {
		t.Errorf("queue 53 with bypass, no program bound: %d of %d datagrams arrived", got, n)
	}
	if got := udpThrough(t, ns, 54, 5); got != 0 {
		t.Errorf("queue 54 without bypass, no program bound: %d of 5 datagrams arrived, want 0", got)
	}
	st, err = k.Read(tbl.Name)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, c := range st.Chains {
		for _, r := range c.Rules {
			counts[r.ID] = r.Packets
		}
	}
	if counts["bypass"] != n || counts["held"] != 5 {
		t.Errorf("counters %v, want bypass %d, held 5", counts, n)
	}
	t.Logf("bypass: %d of %d arrived; held: 0 of 5; counters %v", n, n, counts)
}

// TestUDPLengthKernel loads rules that match the UDP length in a
// namespace of its own: nft lists them as the model's text renders them,
// a plan of the same table is empty, and the kernel compares the length
// as a number: the datagrams udpThrough sends (6 bytes of payload, a UDP
// length of 14) are counted by "udp length >= 14" and not by ">= 15" nor
// ">= 256" (whose low byte is smaller).
func TestUDPLengthKernel(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	udp := L4Proto{Protos: []uint8{17}}
	to := DPort{Range: PortRange{First: 5353, Last: 5353}}
	tbl := &Table{Name: "df_udplen", Priority: -10, Chains: []*Chain{
		{Name: "output", Hook: HookOutput, Rules: []*Rule{
			{Matches: []Match{udp, to, UDPLength{Min: 14}}, Counter: true, ID: "14"},
			{Matches: []Match{udp, to, UDPLength{Min: 15}}, Counter: true, ID: "15"},
			{Matches: []Match{udp, to, UDPLength{Min: 256}}, Counter: true, ID: "256"},
		}},
	}}
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	if p, err := k.Plan(tbl); err != nil || !p.Empty() {
		t.Fatalf("plan of the same table: %v, %v", p, err)
	}
	listing := nfttest.NFT(t, ns, "", "list", "table", "inet", tbl.Name)
	for _, r := range tbl.Chains[0].Rules {
		// nft shortens "meta l4proto udp th dport" to "udp dport".
		line := strings.Replace(r.Text(), "meta l4proto udp th dport", "udp dport", 1)
		if !strings.Contains(listing, strings.Replace(line, "counter", "counter packets 0 bytes 0", 1)) {
			t.Errorf("nft lists otherwise than the model's text %q:\n%s", line, listing)
		}
	}
	const n = 5
	if got := udpThrough(t, ns, 40000, n); got != n {
		t.Fatalf("%d of %d datagrams arrived", got, n)
	}
	st, err := k.Read(tbl.Name)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, c := range st.Chains {
		for _, r := range c.Rules {
			counts[r.ID] = r.Packets
		}
	}
	if counts["14"] != n || counts["15"] != 0 || counts["256"] != 0 {
		t.Errorf("counters %v, want 14: %d, 15: 0, 256: 0", counts, n)
	}
	t.Logf("counters %v", counts)
}

// TestUpdateRefreshAndMany adds 300 addresses with timeouts to a runtime
// set in one Update, then adds some of them again with other timeouts
// (without deleting them first): the kernel (Linux 6.10 and later)
// updates an existing element's timeout and expiry on an add without
// NLM_F_EXCL, both longer and shorter.
func TestUpdateRefreshAndMany(t *testing.T) {
	ns, k := nfttest.NetNS(t)
	tbl := &Table{Name: "df_learn", Priority: -10, Sets: []*Set{{Name: "names_x_4", Key: KeyIPv4, Timeout: true, Owner: OwnedByRuntime}}}
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	var add []Element
	for i := range 300 {
		a := netip.AddrFrom4([4]byte{198, 18, byte(i / 256), byte(i % 256)})
		add = append(add, Element{Prefix: netip.PrefixFrom(a, 32), Timeout: time.Minute})
	}
	if tx := UpdateTx(tbl.Name, "names_x_4", add, nil); len(tx.Ops) != 1 {
		t.Errorf("UpdateTx of 300 elements: %d commands, want 1", len(tx.Ops))
	}
	if err := k.Update(tbl.Name, "names_x_4", add, nil); err != nil {
		t.Fatal(err)
	}
	list := func() string { return nfttest.NFT(t, ns, "", "list", "set", "inet", tbl.Name, "names_x_4") }
	if got := strings.Count(list(), "timeout 1m"); got != 300 {
		t.Fatalf("%d elements with timeout 1m, want 300", got)
	}
	again := []Element{
		{Prefix: add[0].Prefix, Timeout: time.Hour},
		{Prefix: add[1].Prefix, Timeout: 5 * time.Second},
		{Prefix: netip.MustParsePrefix("198.18.9.9/32"), Timeout: time.Hour},
	}
	if err := k.Update(tbl.Name, "names_x_4", again, nil); err != nil {
		t.Fatalf("adding existing elements again: %v", err)
	}
	got := list()
	for _, want := range []string{"198.18.0.0 timeout 1h", "198.18.0.1 timeout 5s", "198.18.9.9 timeout 1h"} {
		if !strings.Contains(got, want) {
			t.Errorf("after a refresh, no %q in\n%s", want, got)
		}
	}
	if n := strings.Count(got, "timeout 1m"); n != 298 {
		t.Errorf("%d elements still with timeout 1m, want 298", n)
	}
	if p, err := k.Plan(tbl); err != nil || !p.Empty() {
		t.Errorf("plan = %v, %v; want empty", p, err)
	}
}

// TestTraceQueue traces packets through the queue table: an answer from
// port 53 in the output hook is queued (the trace says "queue"), one from
// another port passes by the policy, and the forward hook has no chain.
func TestTraceQueue(t *testing.T) {
	tbl := queueTable()
	a := netip.MustParseAddr
	p := Packet{Hook: HookOutput, OIfName: "br-x", Src: a("172.20.0.1"), Dst: a("172.20.0.2"), L4Proto: 17, SPort: 53, DPort: 40000}
	tr, err := tbl.Trace(p)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Verdict != Queue || tr.Policy || !strings.HasSuffix(tr.String(), "queue") {
		t.Errorf("sport 53: %v", tr)
	}
	p.SPort = 5353
	if tr, err = tbl.Trace(p); err != nil || tr.Verdict != Accept || !tr.Policy {
		t.Errorf("sport 5353: %v, %v", tr, err)
	}
	p.SPort, p.Hook = 53, HookForward
	if tr, err = tbl.Trace(p); err != nil || tr.Verdict != Accept || len(tr.Steps) != 0 {
		t.Errorf("forward hook: %v, %v", tr, err)
	}
}
