package dnslearn

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/nfqueue"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"
)

// answerMsg returns a DNS answer for name of type qtype with DNS ID id,
// giving it addr (an A or AAAA record as addr is).
func answerMsg(t *testing.T, name string, id, qtype uint16, addr string) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Id, m.Response = id, true
	a := netip.MustParseAddr(addr)
	hdr := dns.RR_Header{Name: dns.Fqdn(name), Class: dns.ClassINET, Ttl: 300}
	if a.Is4() {
		hdr.Rrtype = dns.TypeA
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
	} else {
		hdr.Rrtype = dns.TypeAAAA
		m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
	}
	msg, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestAnswersMustMatchQueries: a UDP answer teaches only if it matches a
// query that waits for it: the client's and the server's addresses and
// ports, the DNS ID, the question's name (whatever its case) and type;
// only the first answer, and only within the query timeout. A query is
// accepted at once.
func TestAnswersMustMatchQueries(t *testing.T) {
	const (
		client   = "10.0.0.2:40000"
		resolver = "192.168.100.2:53"
		real     = "140.82.112.3"
		forged   = "203.0.113.66"
	)
	query := func(t *testing.T) []byte {
		return udp(t, client, resolver, queryMsg(t, "github.com", 0x1111, dns.TypeA))
	}
	type pkt struct {
		payload []byte
		hook    uint8
		// advance moves the clock before the packet.
		advance time.Duration
	}
	for _, c := range []struct {
		name string
		pkts func(t *testing.T) []pkt
		// want is the address learned, "" for none.
		want        string
		unsolicited float64
	}{
		{"matching answer", func(t *testing.T) []pkt {
			return []pkt{{payload: query(t)}, {payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1111, dns.TypeA, real))}}
		}, real, 0},
		{"question of another case", func(t *testing.T) []pkt {
			return []pkt{{payload: udp(t, client, resolver, queryMsg(t, "GitHub.COM", 0x1111, dns.TypeA))}, {payload: udp(t, resolver, client, answerMsg(t, "github.Com", 0x1111, dns.TypeA, real))}}
		}, real, 0},
		{"no query", func(t *testing.T) []pkt {
			return []pkt{{payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1111, dns.TypeA, forged))}}
		}, "", 1},
		{"wrong DNS ID", func(t *testing.T) []pkt {
			return []pkt{{payload: query(t)}, {payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1112, dns.TypeA, forged))}}
		}, "", 1},
		{"wrong client port", func(t *testing.T) []pkt {
			return []pkt{{payload: query(t)}, {payload: udp(t, resolver, "10.0.0.2:40001", answerMsg(t, "github.com", 0x1111, dns.TypeA, forged))}}
		}, "", 1},
		{"wrong client address", func(t *testing.T) []pkt {
			return []pkt{{payload: query(t)}, {payload: udp(t, resolver, "10.0.0.3:40000", answerMsg(t, "github.com", 0x1111, dns.TypeA, forged))}}
		}, "", 1},
		{"wrong server", func(t *testing.T) []pkt {
			return []pkt{{payload: query(t)}, {payload: udp(t, "192.168.100.3:53", client, answerMsg(t, "github.com", 0x1111, dns.TypeA, forged))}}
		}, "", 1},
		{"wrong question name", func(t *testing.T) []pkt {
			return []pkt{{payload: udp(t, client, resolver, queryMsg(t, "example.com", 0x1111, dns.TypeA))}, {payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1111, dns.TypeA, forged))}}
		}, "", 1},
		{"wrong question type", func(t *testing.T) []pkt {
			return []pkt{{payload: udp(t, client, resolver, queryMsg(t, "github.com", 0x1111, dns.TypeAAAA))}, {payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1111, dns.TypeA, forged))}}
		}, "", 1},
		{"second answer", func(t *testing.T) []pkt {
			return []pkt{{payload: query(t)}, {payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1111, dns.TypeA, real))}, {payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1111, dns.TypeA, forged))}}
		}, real, 1},
		{"expired query", func(t *testing.T) []pkt {
			return []pkt{{payload: query(t)}, {payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1111, dns.TypeA, forged)), advance: DefaultQueryTimeout + time.Second}}
		}, "", 1},
		{"query sent again: one answer still", func(t *testing.T) []pkt {
			return []pkt{{payload: query(t)}, {payload: query(t)}, {payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1111, dns.TypeA, real))}, {payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1111, dns.TypeA, forged))}}
		}, real, 1},
		{"answer in the input hook", func(t *testing.T) []pkt {
			return []pkt{{payload: query(t)}, {payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1111, dns.TypeA, forged)), hook: unix.NF_INET_LOCAL_IN}}
		}, "", 1},
		{"query from the output hook", func(t *testing.T) []pkt {
			return []pkt{{payload: query(t), hook: unix.NF_INET_LOCAL_OUT}, {payload: udp(t, resolver, client, answerMsg(t, "github.com", 0x1111, dns.TypeA, forged))}}
		}, "", 2},
		// A "query" from the resolver's port 53 (forged through the rules
		// of answers) is none, and the client's "answer" to port 53
		// (through the rules of queries) is none either.
		{"packets the wrong way round", func(t *testing.T) []pkt {
			return []pkt{
				{payload: udp(t, resolver, "10.0.0.2:53", queryMsg(t, "github.com", 0x1111, dns.TypeA))},
				{payload: udp(t, "10.0.0.2:53", resolver, answerMsg(t, "github.com", 0x1111, dns.TypeA, forged))},
			}
		}, "", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
			sets := &fakeSets{}
			l, q := start(t, Config{Sets: sets, Now: clock, Metrics: NewMetrics(prometheus.NewRegistry())}, rules(t, map[string]string{"github.com": "gh"}))
			for i, p := range c.pkts(t) {
				mu.Lock()
				now = now.Add(p.advance)
				mu.Unlock()
				id := uint32(i + 1)
				q.in <- nfqueue.Packet{ID: id, Payload: p.payload, Hook: p.hook}
				q.wait(t, id)
			}
			var got []string
			for _, e := range sets.elems() {
				got = append(got, e.Addr.String())
			}
			if c.want == "" && len(got) != 0 || c.want != "" && (len(got) != 1 || got[0] != c.want) {
				t.Errorf("learned %v, want %q", got, c.want)
			}
			if n := testutil.ToFloat64(l.cfg.Metrics.unreadable.WithLabelValues("unsolicited")); n != c.unsolicited {
				t.Errorf("unsolicited answers: %v, want %v", n, c.unsolicited)
			}
		})
	}
}

// TestQueryPassesAtOnce: a query passes at once, before any set update,
// and is not counted among the answers held.
func TestQueryPassesAtOnce(t *testing.T) {
	sets := &fakeSets{delay: time.Second}
	l, q := start(t, Config{Sets: sets, Metrics: NewMetrics(prometheus.NewRegistry())}, rules(t, map[string]string{"github.com": "gh"}))
	t0 := time.Now()
	q.in <- nfqueue.Packet{ID: 1, Payload: ask(t, "github.com")}
	if d := q.wait(t, 1).Sub(t0); d > 100*time.Millisecond {
		t.Errorf("the query passed after %v", d)
	}
	if n := testutil.ToFloat64(l.cfg.Metrics.heldTotal); n != 0 {
		t.Errorf("answers held: %v, want 0", n)
	}
	if n := testutil.ToFloat64(l.cfg.Metrics.queries); n != 1 {
		t.Errorf("queries held: %v, want 1", n)
	}
	if n := l.queries.len(); n != 1 {
		t.Errorf("%d queries wait, want 1", n)
	}
}

// TestQueriesBounded: past MaxQueries, the oldest query is forgotten,
// and its answer teaches nothing; expired queries are dropped.
func TestQueriesBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	qs := newQueries(time.Second, 2)
	k := func(port uint16) query {
		return query{client: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), port), server: netip.MustParseAddrPort("192.168.100.2:53"), id: 1, name: "github.com.", qtype: dns.TypeA, qclass: dns.ClassINET}
	}
	for p := uint16(1); p <= 3; p++ {
		qs.add(k(p), now)
	}
	if qs.len() != 2 || qs.take(k(1), now) || !qs.take(k(3), now) || !qs.take(k(2), now) || qs.take(k(2), now) {
		t.Errorf("the bound of 2: the oldest must go, the others be taken once")
	}
	// A flood of the same query sent again keeps the order bounded.
	for range 1000 {
		qs.add(k(9), now)
	}
	if qs.len() != 1 || len(qs.order) > 2*2+16 {
		t.Errorf("after resending: %d wait, order of %d", qs.len(), len(qs.order))
	}
	qs.add(k(8), now)
	if qs.take(k(8), now.Add(time.Second)) {
		t.Error("a query taken at its timeout")
	}
	qs.add(k(7), now.Add(2*time.Second))
	if qs.len() != 1 {
		t.Errorf("%d wait after the others expired, want 1", qs.len())
	}
}

// TestQueriesPerClient: past maxClient queries of one client address,
// the client's own oldest goes, not another client's, however many the
// client sends; the counts per client follow answers, expiry and the
// global bound, and the per-client order stays bounded.
func TestQueriesPerClient(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	qs := newQueries(time.Second, 8)
	qs.maxClient = 3
	k := func(client string, port uint16) query {
		return query{client: netip.AddrPortFrom(netip.MustParseAddr(client), port), server: netip.MustParseAddrPort("192.168.100.2:53"), id: 1, name: "github.com.", qtype: dns.TypeA, qclass: dns.ClassINET}
	}
	const victim, flooder = "10.0.0.2", "10.0.0.3"
	qs.add(k(victim, 1), now)
	qs.add(k(victim, 2), now)
	for p := uint16(1); p <= 1000; p++ {
		qs.add(k(flooder, p), now)
	}
	if n := qs.len(); n != 5 {
		t.Errorf("%d queries wait, want the victim's 2 and the flooder's 3", n)
	}
	if c := qs.clients[netip.MustParseAddr(flooder)]; c == nil || c.n != 3 || len(c.order) > 2*3+16 {
		if c != nil {
			t.Errorf("the flooder's count: %d, order of %d; want 3, at most 22", c.n, len(c.order))
		} else {
			t.Error("the flooder has no count")
		}
	}
	if qs.take(k(flooder, 997), now) || !qs.take(k(flooder, 998), now) || !qs.take(k(flooder, 1000), now) {
		t.Error("the flooder's newest 3 must wait, the older be gone")
	}
	if !qs.take(k(victim, 1), now) || !qs.take(k(victim, 2), now) {
		t.Error("the flooder evicted the victim's queries")
	}
	if c := qs.clients[netip.MustParseAddr(victim)]; c != nil {
		t.Errorf("the victim's count after its answers: %+v, want none", c)
	}
	// A query sent again counts once.
	for range 10 {
		qs.add(k(victim, 3), now)
	}
	qs.add(k(victim, 4), now)
	qs.add(k(victim, 5), now)
	if !qs.take(k(victim, 3), now) {
		t.Error("a query sent again counted more than once against its client")
	}
	// The global bound still holds, and counts the evicted off their
	// clients; expiry empties the counts.
	for i := range 20 {
		qs.add(k(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}).String(), 1), now)
	}
	if n := qs.len(); n != 8 {
		t.Errorf("%d wait, want the global bound 8", n)
	}
	total := 0
	for _, c := range qs.clients {
		total += c.n
	}
	if total != 8 {
		t.Errorf("clients count %d queries, want 8", total)
	}
	qs.add(k(victim, 9), now.Add(2*time.Second))
	if len(qs.clients) != 1 || qs.clients[netip.MustParseAddr(victim)].n != 1 {
		t.Errorf("after expiry: %d clients", len(qs.clients))
	}
}

// TestNotAQueryNotHeld: a UDP datagram to port 53 that is no query (not
// DNS, a header alone, an answer) came by the rules of the queries: it
// passes at once, is counted as not-a-query, and neither as an answer
// held nor as an unsolicited one; a query after them is still recorded.
func TestNotAQueryNotHeld(t *testing.T) {
	const client, resolver = "10.0.0.2:40000", "192.168.100.2:53"
	l, q := start(t, Config{Sets: &fakeSets{}, Metrics: NewMetrics(prometheus.NewRegistry())}, rules(t, map[string]string{"github.com": "gh"}))
	notDNS := []byte{1, 0, 0, 0}
	header := make([]byte, 12)
	for i, payload := range [][]byte{
		notDNS,
		header,
		answerMsg(t, "github.com", 0x1111, dns.TypeA, "203.0.113.66"),
		queryMsg(t, "github.com", 0x1111, dns.TypeA),
	} {
		id := uint32(i + 1)
		q.in <- nfqueue.Packet{ID: id, Payload: udp(t, client, resolver, payload)}
		q.wait(t, id)
	}
	m := l.cfg.Metrics
	for name, c := range map[string]struct {
		got  float64
		want float64
	}{
		"answers held":   {testutil.ToFloat64(m.heldTotal), 0},
		"not-a-query":    {testutil.ToFloat64(m.unreadable.WithLabelValues("not-a-query")), 3},
		"unsolicited":    {testutil.ToFloat64(m.unreadable.WithLabelValues("unsolicited")), 0},
		"packet":         {testutil.ToFloat64(m.unreadable.WithLabelValues("packet")), 0},
		"queries held":   {testutil.ToFloat64(m.queries), 1},
		"queries queued": {float64(l.queries.len()), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", name, c.got, c.want)
		}
	}
}
