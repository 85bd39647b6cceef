package dnslearn

import (
	"net/netip"
	"sync"
	"time"

	"github.com/dockerfence/dockerfence/dnsname"
	"golang.org/x/sys/unix"
)

// DefaultQueryTimeout is how long a query waits for its answer by default:
// an answer that comes later teaches nothing (clients give up sooner).
const DefaultQueryTimeout = 10 * time.Second

// DefaultMaxQueries bounds the queries that wait for their answers by
// default; past it, the oldest is forgotten.
const DefaultMaxQueries = 65536

// maxClientQueries is how many of the queries that wait may be of one
// client address: past it, a new query of the client takes the place of
// the client's own oldest, so that a container that sends queries no
// answer comes for cannot evict its neighbours' from the global bound.
// The query rules let a source queue 1,000 a second, and a query waits 10
// seconds at most: a client that keeps within the rate with answers
// coming keeps far fewer waiting.
const maxClientQueries = 1024

// query is what an answer over UDP must match to teach, as a resolver
// checks it: the client's and the server's addresses and ports, the DNS
// ID and the question (name in lower case, type and class).
type query struct {
	client, server netip.AddrPort
	id             uint16
	name           string
	qtype, qclass  uint16
}

// queries are the queries over UDP that fenced containers sent and that
// no answer has matched yet. An answer matches one at most once: the
// first answer wins, as it does for the client.
type queries struct {
	mu      sync.Mutex
	timeout time.Duration
	max     int
	pending map[query]pendingQuery
	order   []queued // oldest first; may hold stale entries
	seq     uint64
	// maxClient bounds the queries of one client address (clients).
	maxClient int
	clients   map[netip.Addr]*clientQueries
}

// clientQueries are one client address's queries that wait: how many,
// and their order, oldest first (which may hold stale entries).
type clientQueries struct {
	n     int
	order []queued
}

// pendingQuery is a query's place in the order and until when it waits.
type pendingQuery struct {
	seq     uint64
	expires time.Time
}

// queued is an entry of the order: stale unless pending[q] has seq.
type queued struct {
	q   query
	seq uint64
}

func newQueries(timeout time.Duration, max int) *queries {
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	if max <= 0 {
		max = DefaultMaxQueries
	}
	return &queries{timeout: timeout, max: max, pending: map[query]pendingQuery{}, maxClient: maxClientQueries, clients: map[netip.Addr]*clientQueries{}}
}

// add records q, sent at now; a query sent again (the same ID, port and
// question) waits anew, for one answer still.
func (t *queries) add(q query, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	t.seq++
	c := t.clients[q.client.Addr()]
	if c == nil {
		c = &clientQueries{}
		t.clients[q.client.Addr()] = c
	}
	if _, again := t.pending[q]; !again {
		c.n++
	}
	t.pending[q] = pendingQuery{seq: t.seq, expires: now.Add(t.timeout)}
	t.order = append(t.order, queued{q, t.seq})
	c.order = append(c.order, queued{q, t.seq})
	for c.n > t.maxClient {
		e := c.order[0]
		c.order[0] = queued{}
		c.order = c.order[1:]
		if t.live(e) {
			t.forget(e.q)
		}
	}
	c.order = t.compact(c.order, c.n)
	for len(t.pending) > t.max {
		t.pop()
	}
	t.order = t.compact(t.order, t.max)
}

// compact returns order without its stale entries once they are many
// (it holds more than twice live, the entries that may be live, and 16).
func (t *queries) compact(order []queued, live int) []queued {
	if len(order) <= 2*live+16 {
		return order
	}
	kept := order[:0]
	for _, e := range order {
		if t.live(e) {
			kept = append(kept, e)
		}
	}
	clear(order[len(kept):])
	return kept
}

// forget deletes q, which waits, and counts it off its client's.
func (t *queries) forget(q query) {
	delete(t.pending, q)
	a := q.client.Addr()
	if c := t.clients[a]; c != nil {
		if c.n--; c.n <= 0 {
			delete(t.clients, a)
		}
	}
}

// take reports whether an answer to q may teach at now: q waits for its
// answer, which it then no longer does.
func (t *queries) take(q query, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	p, ok := t.pending[q]
	if !ok || !now.Before(p.expires) {
		return false
	}
	t.forget(q)
	return true
}

// len returns how many queries wait.
func (t *queries) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

func (t *queries) live(e queued) bool {
	p, ok := t.pending[e.q]
	return ok && p.seq == e.seq
}

// pop forgets the oldest entry of the order (the query, if it is live).
func (t *queries) pop() {
	if e := t.order[0]; t.live(e) {
		t.forget(e.q)
	}
	t.order[0] = queued{}
	t.order = t.order[1:]
}

// expire forgets the queries whose time is up: every query waits as long,
// so they are the oldest.
func (t *queries) expire(now time.Time) {
	for len(t.order) > 0 {
		e := t.order[0]
		if p, ok := t.pending[e.q]; ok && p.seq == e.seq && now.Before(p.expires) {
			return
		}
		t.pop()
	}
}

// port53 is DNS's port: a query goes to it, an answer comes from it.
const port53 = 53

// A query and an answer are told apart by their ports as well as by
// their QR bit: a query goes to port 53 from another port, an answer
// comes from port 53 to another port. So a packet that came through the
// rules of answers (from port 53) is never taken for a query, and one
// that came through those of queries (to port 53) never for an answer,
// whatever its QR bit says. A client that sends from port 53 gets no
// answer learned from.

// query records pkt, a held UDP packet that hook queued, if it is a query
// (QR clear, opcode QUERY, one question, to port 53 from another port,
// not from the output hook), and reports whether it was: it is accepted
// at once, and is not counted among the answers held.
func (l *Learner) query(hook uint8, pkt *dnsname.Packet) bool {
	if len(pkt.Msgs) != 1 || !toPort53(hook, pkt) {
		return false
	}
	hdr, err := dnsname.ReadHeader(pkt.Msgs[0])
	if err != nil || hdr.Response || hdr.Opcode != 0 {
		return false
	}
	l.queries.add(query{client: pkt.Src, server: pkt.Dst, id: hdr.ID, name: hdr.Name, qtype: hdr.Type, qclass: hdr.Class}, l.cfg.Now())
	l.cfg.Metrics.queryInc()
	return true
}

// toPort53 reports whether pkt, a held UDP packet that hook queued, went
// to port 53 from another port, not in the output hook: what the rules of
// the queries queue, and never those of the answers.
func toPort53(hook uint8, pkt *dnsname.Packet) bool {
	return pkt.Dst.Port() == port53 && pkt.Src.Port() != port53 && hook != unix.NF_INET_LOCAL_OUT
}

// solicited reports whether pkt, a held UDP packet that hook queued, is
// an answer (QR set, from port 53 to another port, not in the input hook)
// that matches a query waiting for it, which it then consumes: only such
// an answer may teach. Another is counted (reason unsolicited).
func (l *Learner) solicited(hook uint8, pkt *dnsname.Packet) bool {
	if len(pkt.Msgs) == 1 && pkt.Src.Port() == port53 && pkt.Dst.Port() != port53 && hook != unix.NF_INET_LOCAL_IN {
		hdr, err := dnsname.ReadHeader(pkt.Msgs[0])
		if err == nil && hdr.Response {
			k := query{client: pkt.Dst, server: pkt.Src, id: hdr.ID, name: hdr.Name, qtype: hdr.Type, qclass: hdr.Class}
			if l.queries.take(k, l.cfg.Now()) {
				return true
			}
		}
	}
	l.cfg.Metrics.unreadableInc("unsolicited")
	return false
}
