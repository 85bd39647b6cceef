// Package dnslearn is the daemon's learner of DNS names: it takes the DNS
// answers that the kernel holds in a netfilter queue on their way to
// fenced containers, learns from each the addresses of the names a policy
// allows (package dnsname), adds them to the kernel's name sets with their
// timeouts in one transaction, and only then lets the answer go on. So the
// container's first connection after its lookup finds its address in the
// set already.
//
// Answers over TCP are read from the stream they are part of: the learner
// follows each stream from the server's SYN-ACK (which the kernel holds
// too), and holds the segment that makes a message whole.
//
// The kernel queues the containers' queries over UDP too, in the same
// queue, so that the learner reads each before its answer: it records
// them (addresses, ports, DNS ID, question) and lets them go on at once,
// and learns only from a UDP answer that matches a recorded query, the
// first such answer only, within DefaultQueryTimeout. A forged answer
// must so guess the port, the ID and the question, as a resolver requires.
//
// The learner never holds an answer longer than a bound (Config.Bound,
// default 250 ms): past it, the answer is accepted before its addresses are
// in the kernel, and the event is counted. A packet it cannot read (not
// DNS, malformed, truncated) is accepted unmodified and teaches nothing. It
// never drops a packet.
package dnslearn

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dockerfence/dockerfence/dnsname"
	"github.com/dockerfence/dockerfence/nfqueue"
)

// DefaultBound is how long the learner holds an answer at most by default.
const DefaultBound = 250 * time.Millisecond

// Queue is the queue the answers are held in: *nfqueue.Conn.
type Queue interface {
	Run(ctx context.Context, handle func(nfqueue.Packet), notice func(error)) error
	SetVerdict(id uint32, v nfqueue.Verdict) error
}

// Element is an address learned for a key of the Matcher (a name list),
// with the time it stays in the kernel's set.
type Element struct {
	Key     string
	Addr    netip.Addr
	Timeout time.Duration
	// Refresh says that the set may hold the address already: the learner
	// learned it before, and it has not expired, or only just. Its
	// Timeout is then at least what was left of the old one.
	Refresh bool
	// Tag is the version of the key's patterns it was learned under
	// (Rules.Tags): a set of another version must not take it.
	Tag string
}

// Sets writes learned elements into the kernel's name sets: Add commits
// all of them in one transaction, and returns once the kernel has
// committed them. Each element ends with its Timeout, whether the set held
// it or not (nft.RefreshTx, for those marked Refresh). If only some
// elements went in, Add returns a *PartialError.
type Sets interface {
	Add(elems []Element) error
}

// PartialError is the error of Sets.Add when some of the elements are in
// the kernel's sets and others, Failed, are not.
type PartialError struct {
	Failed []Element
	Err    error
}

// Error says why the elements failed.
func (e *PartialError) Error() string { return e.Err.Error() }

// Unwrap returns why the elements failed.
func (e *PartialError) Unwrap() error { return e.Err }

// refreshGrace is how long after the learner's expiry of an address the
// set may still hold it: the kernel's timeout starts when it takes the
// element, a moment after the learner read its clock.
const refreshGrace = 10 * time.Second

// Rules are what the learner learns for: the name patterns of the policy
// in force, keyed by name list, and the bounds of the timeouts.
type Rules struct {
	Matcher *dnsname.Matcher
	Bounds  dnsname.Bounds
	// Keys are the keys of Matcher's patterns: what was learned for other
	// keys is forgotten.
	Keys []string
	// Hold is the longest an answer is held (settings.dns_hold); 0 takes
	// Config.Bound.
	Hold time.Duration
	// Tags tells, by key, the version of its patterns (fence.NamesTag):
	// a key whose tag changes is a list whose names were edited, and what
	// was learned for it, or is being learned under the old rules, is
	// forgotten.
	Tags map[string]string
}

// current reports whether what rules r taught for key still holds under
// the rules in force, cur: the key is there, with the same patterns.
// A learning of no known rules (Remember, Seed) holds while its key does.
func current(r, cur *Rules, key string) bool {
	switch {
	case r == nil:
		return cur == nil || slices.Contains(cur.Keys, key)
	case cur == nil || !slices.Contains(cur.Keys, key):
		return false
	}
	return r == cur || r.Tags[key] == cur.Tags[key]
}

// Config configures a Learner.
type Config struct {
	// Sets is where learned addresses go.
	Sets Sets
	// Bound is the longest an answer is held when the Rules do not say
	// (DefaultBound if 0).
	Bound time.Duration
	// Metrics, if set, are updated.
	Metrics *Metrics
	// Notice, if set, is told of errors that do not stop the learner: a
	// failed set update, a verdict the kernel refused, an overrun queue.
	Notice func(error)
	// Now is the clock (time.Now if nil), for tests.
	Now func() time.Time
	// ExpiredMemory is how many expired learnings the learner remembers
	// for Expired (default 4096).
	ExpiredMemory int
	// QueryTimeout is how long a query over UDP waits for its answer
	// (DefaultQueryTimeout if 0); MaxQueries bounds how many wait
	// (DefaultMaxQueries if 0).
	QueryTimeout time.Duration
	MaxQueries   int
}

// Learner learns addresses from held DNS answers. Its methods are safe for
// concurrent use.
type Learner struct {
	cfg   Config
	rules atomic.Pointer[Rules]
	work  chan *held
	tcp   *streams // of the reader of the queue only
	// queries are the UDP queries that wait for their answers: only an
	// answer that matches one teaches.
	queries *queries

	mu      sync.Mutex
	learned map[string]map[netip.Addr]*Learning // by key, then address
	expired map[netip.Addr]Learning
	order   []expiry // of expired, oldest first; may hold stale entries
}

// Learning is an address learned for a key: the name whose answer taught
// it and until when it stays.
type Learning struct {
	Key     string
	Name    string
	Addr    netip.Addr
	Learned time.Time
	Expires time.Time
	// Inherited is set for an address the set held when the learner
	// started (see Seed): an earlier daemon's, or a one-shot apply's,
	// whose name and time of learning are not known.
	Inherited bool
}

// expiry is an entry of the order of expired learnings: stale unless
// expired[Addr] still is the learning that expired at Expires.
type expiry struct {
	Addr    netip.Addr
	Expires time.Time
}

// held is an answer waiting for its verdict.
type held struct {
	id       uint32
	received time.Time
	rules    *Rules // what it was read under
	elems    []Element
	names    []string // the question's name of each element
	done     atomic.Bool
	timer    atomic.Pointer[time.Timer]
}

// New returns a Learner with cfg; it learns nothing until SetRules.
func New(cfg Config) *Learner {
	if cfg.Bound <= 0 {
		cfg.Bound = DefaultBound
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ExpiredMemory <= 0 {
		cfg.ExpiredMemory = 4096
	}
	return &Learner{
		cfg:     cfg,
		work:    make(chan *held, 4096),
		tcp:     newStreams(),
		queries: newQueries(cfg.QueryTimeout, cfg.MaxQueries),
		learned: map[string]map[netip.Addr]*Learning{},
		expired: map[netip.Addr]Learning{},
	}
}

// SetRules replaces the rules the learner learns for (after a policy
// reload). nil, or a Matcher without patterns, learns nothing. What was
// learned for a key that the new rules no longer have is forgotten.
func (l *Learner) SetRules(r *Rules) {
	old := l.rules.Swap(r)
	l.mu.Lock()
	for k := range l.learned {
		if !current(old, r, k) {
			delete(l.learned, k)
		}
	}
	l.mu.Unlock()
}

// Run judges the packets of q until ctx ends or q fails, and returns why.
// Every packet gets exactly one verdict, accept.
func (l *Learner) Run(ctx context.Context, q Queue) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { l.commit(ctx, q) })
	err := q.Run(ctx, func(p nfqueue.Packet) { l.handle(q, p) }, l.notice)
	cancel()
	wg.Wait()
	// What is still held passes now: the caller closes the queue next,
	// which would drop it, and the next Run must not see it.
	for {
		select {
		case h := <-l.work:
			l.release(q, h, false)
		default:
			return err
		}
	}
}

func (l *Learner) notice(err error) {
	if l.cfg.Notice != nil {
		l.cfg.Notice(err)
	}
}

// handle reads one held packet: a query over UDP is recorded for its
// answer and passes at once; an answer that teaches nothing (over UDP: one
// that matches no recorded query) passes at once; one that teaches goes to
// the committer with a timer that lets it pass at the bound if the kernel
// is slower.
func (l *Learner) handle(q Queue, p nfqueue.Packet) {
	now := l.cfg.Now()
	received := now
	if p.KernelTime && !p.Time.IsZero() && p.Time.Before(now) {
		received = p.Time
	}
	m := l.cfg.Metrics
	rules := l.rules.Load()
	h := &held{id: p.ID, received: received, rules: rules}
	pkt, err := dnsname.ParsePacket(p.Payload)
	if err == nil && !pkt.TCP && l.query(p.Hook, pkt) {
		// A query, recorded for its answer: it goes on at once.
		if err := q.SetVerdict(p.ID, nfqueue.Accept); err != nil {
			l.notice(err)
		}
		return
	}
	if err == nil && !pkt.TCP && toPort53(p.Hook, pkt) {
		// It came by the rules of the queries, as queries do, but is
		// none: it is not an answer held either, and goes on at once.
		m.unreadableInc("not-a-query")
		if err := q.SetVerdict(p.ID, nfqueue.Accept); err != nil {
			l.notice(err)
		}
		return
	}
	m.held()
	if err != nil {
		if errors.Is(err, dnsname.ErrChecksum) {
			m.unreadableInc("checksum")
		} else {
			m.unreadableInc("packet")
		}
		l.release(q, h, false)
		return
	}
	if p.InDev != 0 && p.InDev == p.OutDev {
		// Routed back out of the interface it came in by: a container
		// that sent itself an answer from its resolver's address through
		// its gateway. The table does not hold such packets (its hold
		// rules check the reverse path); a table that does teaches
		// nothing by them either.
		m.unreadableInc("hairpin")
		l.release(q, h, false)
		return
	}
	msgs := pkt.Msgs
	if pkt.TCP {
		// The messages this segment makes whole in its stream: the
		// segment is held if they teach, and the client's TCP gives its
		// reader none of them before the segment passes.
		var why string
		msgs, why = l.tcp.segment(pkt, now)
		if why != "" {
			m.unreadableInc(why)
		}
	}
	if !pkt.TCP && !l.solicited(p.Hook, pkt) {
		l.release(q, h, false)
		return
	}
	for _, msg := range msgs {
		if rules == nil || rules.Matcher == nil {
			break
		}
		lr, err := dnsname.Learn(msg, rules.Matcher, rules.Bounds)
		switch {
		case errors.Is(err, dnsname.ErrMalformed):
			m.unreadableInc("malformed")
			continue
		case err != nil:
			m.unreadableInc("ignored")
			continue
		}
		for _, k := range lr.Keys {
			for _, a := range lr.Addrs {
				h.elems = append(h.elems, Element{Key: k, Addr: a.Addr, Timeout: a.TTL})
				h.names = append(h.names, lr.Question)
			}
		}
	}
	if len(h.elems) == 0 {
		l.release(q, h, false)
		return
	}
	bound := l.cfg.Bound
	if rules.Hold > 0 {
		bound = rules.Hold
	}
	wait := bound - now.Sub(received)
	if wait <= 0 {
		l.release(q, h, true)
		l.queue(h)
		return
	}
	h.timer.Store(time.AfterFunc(wait, func() { l.release(q, h, true) }))
	l.queue(h)
}

// queue hands h to the committer; if it is that far behind, h passes at
// the bound (its timer) and its addresses are not learned.
func (l *Learner) queue(h *held) {
	select {
	case l.work <- h:
	default:
		l.notice(errors.New("dnslearn: the set updates fall behind; an answer passed before its addresses were learned"))
	}
}

// release gives h its verdict, accept, once: over says it is the bound that
// lets it pass.
func (l *Learner) release(q Queue, h *held, over bool) {
	if h.done.Swap(true) {
		return
	}
	if t := h.timer.Load(); t != nil {
		t.Stop()
	}
	if err := q.SetVerdict(h.id, nfqueue.Accept); err != nil {
		l.notice(err)
	}
	l.cfg.Metrics.released(l.cfg.Now().Sub(h.received), over)
}

// commit adds the elements of the held answers to the kernel, as many
// answers as wait at once in one transaction, then lets them pass.
func (l *Learner) commit(ctx context.Context, q Queue) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		var batch []*held
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			l.sweep()
			continue
		case h := <-l.work:
			batch = append(batch, h)
		}
	more:
		for {
			select {
			case h := <-l.work:
				batch = append(batch, h)
			default:
				break more
			}
		}
		now := l.cfg.Now()
		elems := l.prepare(batch, now)
		err := l.cfg.Sets.Add(elems)
		var partial *PartialError
		switch {
		case err == nil:
			l.cfg.Metrics.learnedN(len(elems))
			l.remember(batch, now, nil)
		case errors.As(err, &partial):
			l.cfg.Metrics.failed()
			l.notice(err)
			l.cfg.Metrics.learnedN(len(elems) - len(partial.Failed))
			l.remember(batch, now, partial.Failed)
		default:
			l.cfg.Metrics.failed()
			l.notice(err)
		}
		for _, h := range batch {
			l.release(q, h, false)
		}
	}
}

// prepare returns the elements to commit for a batch of answers at now:
// each key's address once, with the longest timeout the answers gave it.
// An address the learner knows for the key is marked Refresh, and its
// timeout is at least what is left of its learning, rounded up to a
// second: an answer with a shorter TTL (another name's of the same
// address, or the countdown of a resolver's cache) never shortens the
// element in the kernel below what the learner says (status).
func (l *Learner) prepare(batch []*held, now time.Time) []Element {
	type key struct {
		key  string
		addr netip.Addr
	}
	var out []Element
	at := map[key]int{}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.rules.Load()
	for _, h := range batch {
		for _, e := range h.elems {
			if !current(h.rules, cur, e.Key) {
				continue // its list went, or its names changed, meanwhile
			}
			if h.rules != nil {
				e.Tag = h.rules.Tags[e.Key]
			}
			k := key{e.Key, e.Addr}
			if i, ok := at[k]; ok {
				out[i].Timeout = max(out[i].Timeout, e.Timeout)
				continue
			}
			if old := l.learned[e.Key][e.Addr]; old != nil && now.Before(old.Expires.Add(refreshGrace)) {
				e.Refresh = true
				if left := old.Expires.Sub(now); left > 0 {
					e.Timeout = max(e.Timeout, ceilSecond(left))
				}
			} else if old, ok := l.expired[e.Addr]; ok && old.Key == e.Key && now.Before(old.Expires.Add(refreshGrace)) {
				e.Refresh = true
			}
			at[k] = len(out)
			out = append(out, e)
		}
	}
	return out
}

// ceilSecond rounds d up to a whole second.
func ceilSecond(d time.Duration) time.Duration {
	if r := d.Truncate(time.Second); r < d {
		return r + time.Second
	}
	return d
}

// remember records what a committed batch taught, for status: all of it
// but the elements of failed. now is when the batch was prepared, before
// the kernel took it, so the learner's expiry is never after the
// kernel's.
func (l *Learner) remember(batch []*held, now time.Time, failed []Element) {
	type key struct {
		key  string
		addr netip.Addr
	}
	skip := map[key]bool{}
	for _, e := range failed {
		skip[key{e.Key, e.Addr}] = true
	}
	cur := l.rules.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range batch {
		for i, e := range h.elems {
			if skip[key{e.Key, e.Addr}] || !current(h.rules, cur, e.Key) {
				continue
			}
			m := l.learned[e.Key]
			if m == nil {
				m = map[netip.Addr]*Learning{}
				l.learned[e.Key] = m
			}
			exp := now.Add(e.Timeout)
			if old := m[e.Addr]; old != nil && old.Expires.After(exp) {
				exp = old.Expires
			}
			m[e.Addr] = &Learning{Key: e.Key, Name: h.names[i], Addr: e.Addr, Learned: now, Expires: exp}
			delete(l.expired, e.Addr)
		}
	}
}

// sweep moves the learnings whose time is up to the bounded memory of
// expired ones, and counts them.
func (l *Learner) sweep() {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for k, m := range l.learned {
		for a, e := range m {
			if !now.Before(e.Expires) {
				delete(m, a)
				n++
				l.expired[a] = *e
				l.order = append(l.order, expiry{a, e.Expires})
			}
		}
		if len(m) == 0 {
			delete(l.learned, k)
		}
	}
	live := func(x expiry) bool {
		e, ok := l.expired[x.Addr]
		return ok && e.Expires.Equal(x.Expires)
	}
	for len(l.expired) > l.cfg.ExpiredMemory && len(l.order) > 0 {
		if x := l.order[0]; live(x) {
			delete(l.expired, x.Addr)
		}
		l.order = l.order[1:]
	}
	// Drop the stale entries: of addresses learned again, or expired again.
	if len(l.order) > 2*len(l.expired)+16 {
		kept := l.order[:0]
		for _, x := range l.order {
			if live(x) {
				kept = append(kept, x)
			}
		}
		l.order = kept
	}
	l.cfg.Metrics.expiredN(n)
}

// Learned returns the addresses learned for each key that have not
// expired, sorted by key, then address.
func (l *Learner) Learned() []Learning {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Learning
	for _, m := range l.learned {
		for _, e := range m {
			if now.Before(e.Expires) {
				out = append(out, *e)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].Addr.Less(out[j].Addr)
	})
	return out
}

// Expired returns the learning of a that expired, if the learner
// remembers one and a has not been learned again since.
func (l *Learner) Expired(a netip.Addr) (Learning, bool) {
	l.sweep()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.expired[a.Unmap()]
	return e, ok
}

// Seed records that the kernel's set of key holds addr already, for left
// more, unless the learner knows addr for key: what an earlier daemon
// learned, or a one-shot apply put in, before this learner started. So a
// new answer for it renews it as a refresh (on every kernel), never
// shorter than left, and status shows it.
func (l *Learner) Seed(key string, addr netip.Addr, left time.Duration) {
	if left <= 0 {
		return
	}
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.learned[key]
	if m == nil {
		m = map[netip.Addr]*Learning{}
		l.learned[key] = m
	}
	if m[addr] != nil {
		return
	}
	m[addr] = &Learning{Key: key, Addr: addr, Expires: now.Add(left), Inherited: true}
}

// Remember records, as a committed answer for name would, that elems were
// learned: for tests of what reads the learner (status).
func Remember(l *Learner, name string, elems ...Element) error {
	h := &held{elems: elems}
	for range elems {
		h.names = append(h.names, name)
	}
	l.remember([]*held{h}, l.cfg.Now(), nil)
	return nil
}
