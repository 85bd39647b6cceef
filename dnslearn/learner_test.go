package dnslearn

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/dnsname"
	"github.com/dockerfence/dockerfence/nfqueue"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeQueue delivers packets and records verdicts.
type fakeQueue struct {
	in chan nfqueue.Packet

	mu       sync.Mutex
	verdicts map[uint32]int
	at       map[uint32]time.Time
	order    []string // "add" and "verdict N" as they happen
}

func newFakeQueue() *fakeQueue {
	return &fakeQueue{in: make(chan nfqueue.Packet, 16), verdicts: map[uint32]int{}, at: map[uint32]time.Time{}}
}

func (q *fakeQueue) Run(ctx context.Context, handle func(nfqueue.Packet), _ func(error)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case p := <-q.in:
			handle(p)
		}
	}
}

func (q *fakeQueue) SetVerdict(id uint32, v nfqueue.Verdict) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if v != nfqueue.Accept {
		panic("the learner gave a verdict other than accept")
	}
	q.verdicts[id]++
	q.at[id] = time.Now()
	q.order = append(q.order, "verdict")
	return nil
}

// wait waits until packet id has a verdict and returns when it came.
func (q *fakeQueue) wait(t *testing.T, id uint32) time.Time {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		q.mu.Lock()
		at, ok := q.at[id]
		q.mu.Unlock()
		if ok {
			return at
		}
	}
	t.Fatalf("packet %d got no verdict", id)
	return time.Time{}
}

// fakeSets records what is added, after a delay.
type fakeSets struct {
	q     *fakeQueue
	delay time.Duration
	mu    sync.Mutex
	added []Element
	err   error
}

func (s *fakeSets) Add(elems []Element) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.added = append(s.added, elems...)
	s.q.mu.Lock()
	s.q.order = append(s.q.order, "add")
	s.q.mu.Unlock()
	return s.err
}

func (s *fakeSets) elems() []Element {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Element(nil), s.added...)
}

// answer returns an IPv4/UDP packet from 192.168.100.2:53 to
// 10.0.0.2:40000 carrying an answer (DNS ID testID) for name with the
// addresses and ttl; ask returns the query it answers.
func answer(t *testing.T, name string, ttl uint32, addrs ...string) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.Id = testID
	m.Response = true
	for _, a := range addrs {
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
			A: netip.MustParseAddr(a).AsSlice()})
	}
	msg, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return udp4(msg)
}

// testID is the DNS ID of the messages of answer and ask.
const testID = 0x4a7e

// ask returns an IPv4/UDP packet from 10.0.0.2:40000 to 192.168.100.2:53
// carrying a query (DNS ID testID) for name of type A: the query that
// answer's answers.
func ask(t *testing.T, name string) []byte {
	t.Helper()
	return udp(t, "10.0.0.2:40000", "192.168.100.2:53", queryMsg(t, name, testID, dns.TypeA))
}

// queryMsg returns a DNS query for name of type qtype with DNS ID id.
func queryMsg(t *testing.T, name string, id, qtype uint16) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Id = id
	msg, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// udp returns an IPv4/UDP packet from src to dst carrying payload.
func udp(t *testing.T, src, dst string, payload []byte) []byte {
	t.Helper()
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	b := udp4(payload)
	copy(b[12:], s.Addr().AsSlice())
	copy(b[16:], d.Addr().AsSlice())
	binary.BigEndian.PutUint16(b[20:], s.Port())
	binary.BigEndian.PutUint16(b[22:], d.Port())
	return b
}

func udp4(payload []byte) []byte {
	b := make([]byte, 28+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, 17
	copy(b[12:], []byte{192, 168, 100, 2})
	copy(b[16:], []byte{10, 0, 0, 2})
	binary.BigEndian.PutUint16(b[20:], 53)
	binary.BigEndian.PutUint16(b[22:], 40000)
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	copy(b[28:], payload)
	return b
}

func rules(t *testing.T, pats map[string]string) *Rules {
	t.Helper()
	m := dnsname.NewMatcher()
	r := &Rules{Matcher: m, Bounds: dnsname.Bounds{Min: 60 * time.Second, Max: 24 * time.Hour}}
	for p, key := range pats {
		pat, err := dnsname.ParsePattern(p)
		if err != nil {
			t.Fatal(err)
		}
		m.Add(pat, key)
		r.Keys = append(r.Keys, key)
	}
	return r
}

func start(t *testing.T, cfg Config, r *Rules) (*Learner, *fakeQueue) {
	t.Helper()
	q := newFakeQueue()
	if fs, ok := cfg.Sets.(*fakeSets); ok {
		fs.q = q
	}
	l := New(cfg)
	l.SetRules(r)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		l.Run(ctx, q)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l, q
}

// TestLearnThenAccept: an answer for an allowed name is accepted only
// after its addresses were added, with the TTL clamped to the minimum; an
// answer for another name, and packets that are not DNS, pass at once
// and teach nothing; every packet gets exactly one verdict.
func TestLearnThenAccept(t *testing.T) {
	reg := prometheus.NewRegistry()
	sets := &fakeSets{delay: 20 * time.Millisecond}
	l, q := start(t, Config{Sets: sets, Metrics: NewMetrics(reg)}, rules(t, map[string]string{"*.example.com": "web", "api.example.com": "api"}))

	q.in <- nfqueue.Packet{ID: 101, Payload: ask(t, "api.example.com")}
	q.wait(t, 101)
	t0 := time.Now()
	q.in <- nfqueue.Packet{ID: 1, Payload: answer(t, "api.Example.com.", 5, "203.0.113.7", "203.0.113.8")}
	if at := q.wait(t, 1); at.Sub(t0) < sets.delay {
		t.Errorf("the answer passed %v after it came, before the set update (%v) was done", at.Sub(t0), sets.delay)
	}
	got := sets.elems()
	want := map[Element]bool{}
	for _, k := range []string{"api", "web"} {
		for _, a := range []string{"203.0.113.7", "203.0.113.8"} {
			want[Element{Key: k, Addr: netip.MustParseAddr(a), Timeout: 60 * time.Second}] = true
		}
	}
	if len(got) != len(want) {
		t.Errorf("added %v, want %v", got, want)
	}
	for _, e := range got {
		if !want[e] {
			t.Errorf("added %v, which is not among %v", e, want)
		}
	}

	q.in <- nfqueue.Packet{ID: 2, Payload: answer(t, "example.org", 300, "198.51.100.1")}
	q.in <- nfqueue.Packet{ID: 3, Payload: []byte{0x45, 0, 0}}
	q.in <- nfqueue.Packet{ID: 4, Payload: udp4([]byte("not a DNS message at all"))}
	trunc := answer(t, "api.example.com", 5, "203.0.113.9")
	q.in <- nfqueue.Packet{ID: 105, Payload: ask(t, "api.example.com")}
	q.in <- nfqueue.Packet{ID: 5, Payload: udp4(trunc[28 : len(trunc)-3])}
	for id := uint32(2); id <= 5; id++ {
		q.wait(t, id)
	}
	if n := len(sets.elems()); n != len(want) {
		t.Errorf("after answers that teach nothing, %d elements were added, want still %d", n, len(want))
	}
	time.Sleep(20 * time.Millisecond)
	q.mu.Lock()
	for id, n := range q.verdicts {
		if n != 1 {
			t.Errorf("packet %d got %d verdicts", id, n)
		}
	}
	q.mu.Unlock()
	if got := testutil.ToFloat64(l.cfg.Metrics.heldTotal); got != 5 {
		t.Errorf("answers held: %v, want 5", got)
	}
	if got := testutil.ToFloat64(l.cfg.Metrics.learned); got != 4 {
		t.Errorf("elements learned: %v, want 4", got)
	}
	if got := testutil.ToFloat64(l.cfg.Metrics.unreadable.WithLabelValues("packet")); got != 1 {
		t.Errorf("unreadable packets: %v, want 1", got)
	}
	if got := testutil.ToFloat64(l.cfg.Metrics.unreadable.WithLabelValues("malformed")); got != 1 {
		t.Errorf("malformed messages: %v, want 1", got)
	}
	// The answer for example.org and the datagram that is no DNS answer
	// match no query.
	if got := testutil.ToFloat64(l.cfg.Metrics.unreadable.WithLabelValues("unsolicited")); got != 2 {
		t.Errorf("unsolicited answers: %v, want 2", got)
	}
	if got := testutil.ToFloat64(l.cfg.Metrics.queries); got != 2 {
		t.Errorf("queries held: %v, want 2", got)
	}
	if got := l.Learned(); len(got) != 4 || got[0].Key != "api" || got[0].Name != "api.example.com" {
		t.Errorf("Learned() = %+v", got)
	}
}

// TestBound: a set update slower than the bound lets the answer pass at
// the bound, counts it, and still learns the addresses.
func TestBound(t *testing.T) {
	reg := prometheus.NewRegistry()
	sets := &fakeSets{delay: 400 * time.Millisecond}
	l, q := start(t, Config{Sets: sets, Bound: 50 * time.Millisecond, Metrics: NewMetrics(reg)}, rules(t, map[string]string{"slow.example": "k"}))
	q.in <- nfqueue.Packet{ID: 109, Payload: ask(t, "slow.example")}
	t0 := time.Now()
	q.in <- nfqueue.Packet{ID: 9, Payload: answer(t, "slow.example", 5, "203.0.113.70")}
	took := q.wait(t, 9).Sub(t0)
	if took < 40*time.Millisecond || took > 300*time.Millisecond {
		t.Errorf("the answer passed after %v, want at the bound of 50ms", took)
	}
	for deadline := time.Now().Add(2 * time.Second); len(sets.elems()) == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
	}
	if len(sets.elems()) != 1 {
		t.Errorf("the slow update added %v, want the address", sets.elems())
	}
	time.Sleep(20 * time.Millisecond)
	q.mu.Lock()
	if q.verdicts[9] != 1 {
		t.Errorf("packet 9 got %d verdicts", q.verdicts[9])
	}
	q.mu.Unlock()
	if got := testutil.ToFloat64(l.cfg.Metrics.overBound); got != 1 {
		t.Errorf("over-bound passes: %v, want 1", got)
	}
}

// TestExpiredMemory: a learning whose timeout ran out is remembered,
// counted as expired, forgotten again once learned anew, and the memory is
// bounded.
func TestExpiredMemory(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	reg := prometheus.NewRegistry()
	l := New(Config{Sets: &fakeSets{q: newFakeQueue()}, Now: clock, Metrics: NewMetrics(reg), ExpiredMemory: 2})
	learn := func(name string, addrs ...string) {
		h := &held{}
		for _, a := range addrs {
			h.elems = append(h.elems, Element{Key: "k", Addr: netip.MustParseAddr(a), Timeout: time.Minute})
			h.names = append(h.names, name)
		}
		l.remember([]*held{h}, clock(), nil)
	}
	learn("a.example", "203.0.113.1", "203.0.113.2", "203.0.113.3")
	if _, ok := l.Expired(netip.MustParseAddr("203.0.113.1")); ok {
		t.Error("a live learning counts as expired")
	}
	advance(61 * time.Second)
	remembered := 0
	for _, a := range []string{"203.0.113.1", "203.0.113.2", "203.0.113.3"} {
		if e, ok := l.Expired(netip.MustParseAddr(a)); ok {
			remembered++
			if e.Name != "a.example" || e.Key != "k" {
				t.Errorf("Expired(%s) = %+v; want a.example's", a, e)
			}
		}
	}
	if remembered != 2 {
		t.Errorf("Expired knows %d of the 3 expired addresses, want the bound 2", remembered)
	}
	learn("c.example", "203.0.113.3")
	advance(61 * time.Second)
	if e, ok := l.Expired(netip.MustParseAddr("203.0.113.3")); !ok || e.Name != "c.example" {
		t.Errorf("Expired(203.0.113.3) = %+v, %v; want c.example's, the last expired", e, ok)
	}
	if got := testutil.ToFloat64(l.cfg.Metrics.expired); got != 4 {
		t.Errorf("expired: %v, want 4", got)
	}
	if n := len(l.expired); n != 2 {
		t.Errorf("remembers %d expired learnings, want the bound 2", n)
	}
	learn("b.example", "203.0.113.3")
	if _, ok := l.Expired(netip.MustParseAddr("203.0.113.3")); ok {
		t.Error("an address learned again still counts as expired")
	}
	if got := l.Learned(); len(got) != 1 || got[0].Name != "b.example" || !got[0].Expires.Equal(clock().Add(time.Minute)) {
		t.Errorf("Learned() = %+v", got)
	}
}

// TestRefreshNeverShortens: an address learned with a long TTL and seen
// again in an answer with a shorter one (another name's, of the same
// list) is sent to the kernel as a refresh with what is left of the long
// one, rounded up to a second; status keeps the long one; a fresh address
// is a plain add with its own TTL; an address that expired a moment ago
// is still a refresh, one long expired is not.
func TestRefreshNeverShortens(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t0 := now
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	sets := &fakeSets{}
	l, q := start(t, Config{Sets: sets, Now: clock}, rules(t, map[string]string{"a.example": "cdn", "b.example": "cdn"}))
	id := uint32(0)
	send := func(name string, ttl uint32, addrs ...string) []Element {
		t.Helper()
		id++
		before := len(sets.elems())
		q.in <- nfqueue.Packet{ID: 1000 + id, Payload: ask(t, name)}
		q.in <- nfqueue.Packet{ID: id, Payload: answer(t, name, ttl, addrs...)}
		q.wait(t, id)
		return sets.elems()[before:]
	}
	a := netip.MustParseAddr
	if got := send("a.example", 3600, "203.0.113.1"); len(got) != 1 || got[0] != (Element{Key: "cdn", Addr: a("203.0.113.1"), Timeout: time.Hour}) {
		t.Fatalf("first learning sent %+v, want a plain add with 1h", got)
	}
	advance(10*time.Minute + 400*time.Millisecond)
	got := send("b.example", 60, "203.0.113.1", "203.0.113.2")
	want := []Element{
		{Key: "cdn", Addr: a("203.0.113.1"), Timeout: 50 * time.Minute, Refresh: true}, // 49m59.6s left, rounded up
		{Key: "cdn", Addr: a("203.0.113.2"), Timeout: time.Minute},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("the shorter answer sent %+v, want %+v", got, want)
	}
	learned := l.Learned()
	if len(learned) != 2 || learned[0].Addr != a("203.0.113.1") || !learned[0].Expires.Equal(t0.Add(time.Hour)) || learned[0].Name != "b.example" {
		t.Errorf("Learned() = %+v, want 203.0.113.1 to expire at %v still", learned, t0.Add(time.Hour))
	}
	// A longer TTL wins over what is left.
	if got := send("a.example", 7200, "203.0.113.1"); len(got) != 1 || got[0].Timeout != 2*time.Hour || !got[0].Refresh {
		t.Errorf("a longer TTL sent %+v, want a refresh with 2h", got)
	}
	// 203.0.113.2 expired 2s ago: the kernel may hold it yet.
	advance(62 * time.Second)
	l.sweep()
	if got := send("b.example", 60, "203.0.113.2"); len(got) != 1 || got[0] != (Element{Key: "cdn", Addr: a("203.0.113.2"), Timeout: time.Minute, Refresh: true}) {
		t.Errorf("an address expired a moment ago sent %+v, want a refresh with 1m", got)
	}
	advance(time.Minute + refreshGrace)
	l.sweep()
	if got := send("b.example", 60, "203.0.113.2"); len(got) != 1 || got[0].Refresh {
		t.Errorf("an address long expired sent %+v, want a plain add", got)
	}
}

// TestPrepareMerges: an address that two answers of one batch teach for
// one key is sent once, with the longer TTL; for two keys, once each.
func TestPrepareMerges(t *testing.T) {
	l := New(Config{Sets: &fakeSets{}})
	a := netip.MustParseAddr("203.0.113.5")
	batch := []*held{
		{elems: []Element{{Key: "k", Addr: a, Timeout: time.Minute}, {Key: "j", Addr: a, Timeout: time.Minute}}},
		{elems: []Element{{Key: "k", Addr: a, Timeout: time.Hour}}},
	}
	got := l.prepare(batch, time.Now())
	if len(got) != 2 || got[0] != (Element{Key: "k", Addr: a, Timeout: time.Hour}) || got[1] != (Element{Key: "j", Addr: a, Timeout: time.Minute}) {
		t.Errorf("prepare = %+v", got)
	}
}

// TestPartialAdd: when the sets take only some of an answer's elements,
// the learner remembers those and not the others, and counts them.
func TestPartialAdd(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := netip.MustParseAddr
	sets := &fakeSets{err: &PartialError{Failed: []Element{{Key: "bad", Addr: a("203.0.113.9"), Timeout: time.Minute}}, Err: errors.New("set names_bad_4 failed")}}
	var notices []error
	var nmu sync.Mutex
	l, q := start(t, Config{Sets: sets, Metrics: NewMetrics(reg), Notice: func(err error) { nmu.Lock(); notices = append(notices, err); nmu.Unlock() }},
		rules(t, map[string]string{"www.x.example": "good", "*.x.example": "bad"}))
	q.in <- nfqueue.Packet{ID: 101, Payload: ask(t, "www.x.example")}
	q.in <- nfqueue.Packet{ID: 1, Payload: answer(t, "www.x.example", 300, "203.0.113.9")}
	q.wait(t, 1)
	if n := len(sets.elems()); n != 2 {
		t.Fatalf("sent %v, want the address for both lists", sets.elems())
	}
	got := l.Learned()
	if len(got) != 1 || got[0].Key != "good" {
		t.Errorf("Learned() = %+v, want only the good list's address", got)
	}
	if n := testutil.ToFloat64(l.cfg.Metrics.learned); n != 1 {
		t.Errorf("elements learned: %v, want 1", n)
	}
	nmu.Lock()
	defer nmu.Unlock()
	if len(notices) != 1 || !strings.Contains(notices[0].Error(), "names_bad_4") {
		t.Errorf("notices %v, want the failed set named", notices)
	}
}

// TestSeedRenewsAsRefresh: an address the set held when the learner
// started (Seed: an earlier daemon's, or a one-shot apply's) shows in
// Learned as inherited; a new answer for it renews it as a refresh, never
// shorter than it had left, and then it is the answer's.
func TestSeedRenewsAsRefresh(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sets := &fakeSets{}
	l, q := start(t, Config{Sets: sets, Now: func() time.Time { return now }}, rules(t, map[string]string{"a.example": "k"}))
	a := netip.MustParseAddr
	l.Seed("k", a("203.0.113.1"), 20*time.Minute)
	l.Seed("k", a("203.0.113.9"), 0) // expired: not seeded
	if got := l.Learned(); len(got) != 1 || !got[0].Inherited || got[0].Name != "" || !got[0].Expires.Equal(now.Add(20*time.Minute)) {
		t.Fatalf("Learned() after Seed = %+v", got)
	}
	q.in <- nfqueue.Packet{ID: 1001, Payload: ask(t, "a.example")}
	q.in <- nfqueue.Packet{ID: 1, Payload: answer(t, "a.example", 60, "203.0.113.1")}
	q.wait(t, 1)
	if got := sets.elems(); len(got) != 1 || got[0] != (Element{Key: "k", Addr: a("203.0.113.1"), Timeout: 20 * time.Minute, Refresh: true}) {
		t.Errorf("the answer sent %+v, want a refresh with the 20m left", got)
	}
	if got := l.Learned(); len(got) != 1 || got[0].Inherited || got[0].Name != "a.example" {
		t.Errorf("Learned() after the answer = %+v, want a.example's", got)
	}
	// Seeding what the learner knows changes nothing.
	l.Seed("k", a("203.0.113.1"), time.Second)
	if got := l.Learned(); got[0].Inherited || !got[0].Expires.Equal(now.Add(20*time.Minute)) {
		t.Errorf("Seed over a learning: %+v", got)
	}
}

// TestEditedNamesForgotten: when a key's patterns change (its tag), what
// was learned for it is forgotten, and an answer read under the old
// patterns but committed after the change teaches nothing; a key whose
// tag stays keeps its learnings.
func TestEditedNamesForgotten(t *testing.T) {
	sets := &fakeSets{delay: 50 * time.Millisecond}
	r1 := rules(t, map[string]string{"old.example": "k", "keep.example": "j"})
	r1.Tags = map[string]string{"k": "v1", "j": "v1"}
	l, q := start(t, Config{Sets: sets}, r1)
	q.in <- nfqueue.Packet{ID: 1001, Payload: ask(t, "keep.example")}
	q.in <- nfqueue.Packet{ID: 1, Payload: answer(t, "keep.example", 60, "203.0.113.1")}
	q.wait(t, 1)
	q.in <- nfqueue.Packet{ID: 1002, Payload: ask(t, "old.example")}
	q.in <- nfqueue.Packet{ID: 2, Payload: answer(t, "old.example", 60, "203.0.113.2")}
	q.wait(t, 2)
	// An answer for the old name, held while the names change.
	q.in <- nfqueue.Packet{ID: 1003, Payload: ask(t, "old.example")}
	q.in <- nfqueue.Packet{ID: 3, Payload: answer(t, "old.example", 60, "203.0.113.3")}
	time.Sleep(10 * time.Millisecond) // read, and in the committer's hands
	r2 := rules(t, map[string]string{"new.example": "k", "keep.example": "j"})
	r2.Tags = map[string]string{"k": "v2", "j": "v1"}
	l.SetRules(r2)
	q.wait(t, 3)
	var got []string
	for _, e := range l.Learned() {
		got = append(got, e.Key+" "+e.Addr.String())
	}
	if len(got) != 1 || got[0] != "j 203.0.113.1" {
		t.Errorf("Learned() after the names of k changed = %v, want only j's 203.0.113.1", got)
	}
	// If the committer had it already, it went with the old tag, which
	// the new sets refuse (daemon: NameElementsTx).
	for _, e := range sets.elems() {
		if e.Addr == netip.MustParseAddr("203.0.113.3") && e.Tag != "v1" {
			t.Errorf("an answer for the old name went to the sets as %+v, not with the old tag", e)
		}
	}
}
