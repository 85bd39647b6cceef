package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/dockerfence/dockerfence/dnslearn"
	"github.com/dockerfence/dockerfence/dnsname"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nfqueue"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
)

// QueueConn is a bound netfilter queue: *nfqueue.Conn.
type QueueConn interface {
	dnslearn.Queue
	Close() error
}

// OpenQueue binds a netfilter queue in the daemon's network namespace.
func OpenQueue(queue uint16) (QueueConn, error) {
	return nfqueue.Open(queue, nfqueue.Options{})
}

// Committer commits a transaction: the daemon's nft.Kernel, whose socket
// owns the table. The learner's elements go to the kernel through it, all
// of a batch in one transaction (nft.UpdateTx of each set, merged).
type Committer interface {
	Commit(tx *nft.Transaction) error
}

// nameSets writes the learner's elements into the name sets of the table
// the daemon last applied.
type nameSets struct {
	k     Committer
	table func() *fence.Result
}

// Add implements dnslearn.Sets: all elements in one transaction. If the
// kernel refuses it (a set went with a policy reload between the sync and
// the commit, say), it commits set by set, each in a transaction of its
// own, so that one bad set does not cost the others their addresses; the
// error then names the sets that failed, and is a *dnslearn.PartialError
// when others went in.
func (s nameSets) Add(elems []dnslearn.Element) error {
	r := s.table()
	if r == nil || r.Table == nil {
		return errors.New("no table applied yet")
	}
	parts := nameSetTxs(r, elems)
	if len(parts) == 0 {
		return nil
	}
	err := s.k.Commit(mergeTxs(r.Table.Name, parts))
	if err == nil {
		return nil
	}
	if len(parts) == 1 {
		return fmt.Errorf("names set %s: %w", parts[0].set, err)
	}
	var failed []dnslearn.Element
	var sets []string
	var errs []error
	for _, p := range parts {
		if err := s.k.Commit(p.tx); err != nil {
			failed = append(failed, p.elems...)
			sets = append(sets, p.set)
			errs = append(errs, fmt.Errorf("%s: %w", p.set, err))
		}
	}
	switch {
	case len(sets) == 0:
		return nil // each set went in on its own: the batch's failure passed
	case len(sets) == len(parts):
		return fmt.Errorf("names sets %s, each on its own: %w", strings.Join(sets, ", "), errors.Join(errs...))
	}
	return &dnslearn.PartialError{Failed: failed,
		Err: fmt.Errorf("names sets %s learned nothing (the others did): %w", strings.Join(sets, ", "), errors.Join(errs...))}
}

// setTx is the transaction that puts elements into one name set.
type setTx struct {
	set   string
	tx    *nft.Transaction
	elems []dnslearn.Element
}

// nameSetTxs returns, set by set in the order of elems, the transaction
// that puts elems (with their timeouts) into the name sets of r's table,
// each into its list's set of its family (nft.RefreshTx: the elements
// marked Refresh end with their new timeout on every kernel); elements of
// lists r does not have are left out.
func nameSetTxs(r *fence.Result, elems []dnslearn.Element) []setTx {
	sets := map[string]fence.NameSet{}
	tags := map[string]string{}
	for _, ns := range r.NameSets {
		sets[ns.List] = ns
		tags[ns.List] = fence.NamesTag(ns.Names)
	}
	var parts []setTx
	index := map[string]int{}
	for _, e := range elems {
		ns, ok := sets[e.Key]
		if !ok || e.Tag != "" && e.Tag != tags[e.Key] {
			continue // the list went with a reload, or its names changed
		}
		set := ns.Set4
		if e.Addr.Is6() {
			set = ns.Set6
		}
		i, seen := index[set]
		if !seen {
			i = len(parts)
			index[set] = i
			parts = append(parts, setTx{set: set})
		}
		parts[i].elems = append(parts[i].elems, e)
	}
	for i := range parts {
		var add, refresh []nft.Element
		for _, e := range parts[i].elems {
			ne := nft.Element{Prefix: netip.PrefixFrom(e.Addr, e.Addr.BitLen()), Timeout: e.Timeout}
			if e.Refresh {
				refresh = append(refresh, ne)
			} else {
				add = append(add, ne)
			}
		}
		parts[i].tx = nft.RefreshTx(r.Table.Name, parts[i].set, add, refresh)
	}
	return parts
}

// mergeTxs returns one transaction of table with the commands of parts.
func mergeTxs(table string, parts []setTx) *nft.Transaction {
	tx := &nft.Transaction{Table: table}
	for _, p := range parts {
		tx.Ops = append(tx.Ops, p.tx.Ops...)
	}
	return tx
}

// NameElementsTx returns the transaction that puts elems (with their
// timeouts) into the name sets of r's table, each into its list's set of
// its family; elements of lists r does not have are left out.
func NameElementsTx(r *fence.Result, elems []dnslearn.Element) *nft.Transaction {
	return mergeTxs(r.Table.Name, nameSetTxs(r, elems))
}

// namesRules returns what the learner learns for under the policy and
// table of a sync: the patterns of each names list the table uses, keyed
// by list; nil if it uses none.
func namesRules(pol *policy.Policy, r *fence.Result) (*dnslearn.Rules, error) {
	if pol == nil || r == nil || len(r.NameSets) == 0 {
		return nil, nil
	}
	m := dnsname.NewMatcher()
	minTTL, maxTTL, hold := NamesSettings(pol)
	rules := &dnslearn.Rules{Matcher: m, Hold: hold, Bounds: dnsname.Bounds{Min: minTTL, Max: maxTTL}}
	for _, ns := range r.NameSets {
		for _, n := range ns.Names {
			p, err := dnsname.ParsePattern(n)
			if err != nil {
				return nil, fmt.Errorf("names list %s: %w", ns.List, err)
			}
			m.Add(p, ns.List)
		}
		rules.Keys = append(rules.Keys, ns.List)
		if rules.Tags == nil {
			rules.Tags = map[string]string{}
		}
		rules.Tags[ns.List] = fence.NamesTag(ns.Names)
	}
	return rules, nil
}

// runNames runs the learner on the queue that queues last named (0 and
// false: none, the policy uses no names), rebinding it when the number
// changes and retrying every 5 s while it cannot be bound, until ctx ends.
func runNames(ctx context.Context, log *slog.Logger, queues <-chan namesQueue, open func(uint16) (QueueConn, error), l *dnslearn.Learner) {
	var q namesQueue
	for {
		if !q.on {
			select {
			case q = <-queues:
				continue
			case <-ctx.Done():
				return
			}
		}
		conn, err := open(q.num)
		if err != nil {
			log.Warn("cannot bind the queue of DNS answers; retrying in 5s: meanwhile answers pass (bypass) and no name is learned", "queue", q.num, "err", err)
			select {
			case q = <-queues:
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		log.Info("learning names from DNS answers", "queue", q.num)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- l.Run(rctx, conn) }()
		select {
		case q = <-queues:
			cancel()
			<-done
			conn.Close()
		case err := <-done:
			cancel()
			conn.Close()
			if ctx.Err() != nil {
				return
			}
			log.Warn("learning names failed; binding the queue again in 1s", "queue", q.num, "err", err)
			select {
			case q = <-queues:
			case <-time.After(time.Second):
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			cancel()
			<-done
			conn.Close()
			return
		}
	}
}

// namesQueue is the queue of DNS answers a sync's table holds them in;
// on is false when it holds none.
type namesQueue struct {
	num uint16
	on  bool
}

// expiredName returns the name behind a denied destination whose learning
// expired, for the denial log.
func expiredName(l *dnslearn.Learner, dst string) (string, time.Time, bool) {
	a, err := netip.ParseAddr(dst)
	if err != nil {
		return "", time.Time{}, false
	}
	e, ok := l.Expired(a)
	return e.Name, e.Expires, ok
}

// seedLearner tells l of the addresses the name sets of t hold in the
// kernel state st (read with every set's elements), each with the time it
// has left: an earlier daemon's, or a one-shot apply's. It returns how
// many it told.
func seedLearner(l *dnslearn.Learner, t *fence.Result, st *nft.State) int {
	if l == nil || t == nil || st == nil {
		return 0
	}
	n := 0
	for _, ns := range t.NameSets {
		for _, ss := range st.Sets {
			if ss.Name != ns.Set4 && ss.Name != ns.Set6 || !ss.Dumped {
				continue
			}
			for _, e := range ss.Elems {
				a, ok := netip.AddrFromSlice(e.Key)
				if e.IntervalEnd || !ok || e.Expires <= 0 {
					continue
				}
				l.Seed(ns.List, a.Unmap(), e.Expires)
				n++
			}
		}
	}
	return n
}

// NamesSettings returns the policy's settings of names: dns_min_ttl,
// dns_max_ttl and dns_hold.
func NamesSettings(pol *policy.Policy) (minTTL, maxTTL, hold time.Duration) {
	return pol.Settings.DNSMinTTL, pol.Settings.DNSMaxTTL, pol.Settings.DNSHold
}

// namesStatus returns the names lists of t with what l learned for them,
// whether each address is in its set in the kernel state st, and the
// packets the rules that use each list matched (from s's rules).
func namesStatus(l *dnslearn.Learner, t *fence.Result, st *nft.State, s *status.Status, now time.Time) []status.NameListStatus {
	if t == nil || len(t.NameSets) == 0 {
		return nil
	}
	inKernel := func(set string, a netip.Addr) bool {
		if st == nil {
			return false
		}
		for _, ss := range st.Sets {
			if ss.Name != set {
				continue
			}
			for _, e := range ss.Elems {
				if !e.IntervalEnd && string(e.Key) == string(a.AsSlice()) {
					return true
				}
			}
		}
		return false
	}
	var rules []status.RuleStatus
	for _, n := range s.Networks {
		rules = append(rules, n.Rules...)
	}
	for _, c := range s.Containers {
		rules = append(rules, c.Rules...)
	}
	if s.CatchAll != nil {
		rules = append(rules, s.CatchAll.Rules...)
	}
	var learned []dnslearn.Learning
	if l != nil {
		learned = l.Learned()
	}
	out := []status.NameListStatus{}
	for _, ns := range t.NameSets {
		n := status.NameListStatus{List: ns.List, Patterns: ns.Names, Sets: []string{ns.Set4, ns.Set6}, Learned: []status.LearnedAddr{}}
		for _, e := range learned {
			if e.Key != ns.List {
				continue
			}
			set := ns.Set4
			if e.Addr.Is6() {
				set = ns.Set6
			}
			n.Learned = append(n.Learned, status.LearnedAddr{Addr: e.Addr.String(), Name: e.Name, Learned: e.Learned,
				TTLLeft: e.Expires.Sub(now).Round(time.Second).Seconds(), InKernel: inKernel(set, e.Addr), Inherited: e.Inherited})
		}
		for _, r := range rules {
			if mentionsList(r.Match, ns.List) || strings.HasPrefix(ns.List, "inline.") && strings.Contains(r.Match, "names:") && containsAll(r.Match, ns.Names) {
				n.Hits += r.Packets
			}
		}
		out = append(out, n)
	}
	return out
}

// mentionsList reports whether a rule's match text names list as "@list",
// a whole name: "@git" is not in "@github".
func mentionsList(match, list string) bool {
	at := "@" + list
	for i := strings.Index(match, at); i >= 0; {
		end := i + len(at)
		if end == len(match) || !isListNameByte(match[end]) {
			return true
		}
		j := strings.Index(match[end:], at)
		if j < 0 {
			break
		}
		i = end + j
	}
	return false
}

// isListNameByte reports whether b may be part of a list's name.
func isListNameByte(b byte) bool {
	return b == '_' || b == '-' || b >= '0' && b <= '9' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z'
}

// containsAll reports whether s mentions every one of subs.
func containsAll(s string, subs []string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
