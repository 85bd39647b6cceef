package dnslearn

import (
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/dnsname"
	"github.com/dockerfence/dockerfence/nfqueue"
)

// FuzzHandle feeds the learner arbitrary packets: it never panics, and
// every packet gets exactly one verdict, accept, at once or after the set
// update (which the fake commits without delay).
func FuzzHandle(f *testing.F) {
	f.Add(answer(&testing.T{}, "api.example.com", 5, "203.0.113.7"))
	f.Add(udp4([]byte("not DNS")))
	f.Add([]byte{0x45})
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 17, 64})
	r := rules(&testing.T{}, map[string]string{"*.example.com": "k", "example.org": "o"})
	f.Fuzz(func(t *testing.T, payload []byte) {
		q := newFakeQueue()
		sets := &fakeSets{q: q}
		l := New(Config{Sets: sets, Bound: time.Second})
		l.SetRules(r)
		// An answer that teaches must match a query: make the one it
		// would match wait, so that the learning is fuzzed too.
		if pkt, err := dnsname.ParsePacket(payload); err == nil && len(pkt.Msgs) == 1 {
			if hdr, err := dnsname.ReadHeader(pkt.Msgs[0]); err == nil {
				l.queries.add(query{client: pkt.Dst, server: pkt.Src, id: hdr.ID, name: hdr.Name, qtype: hdr.Type, qclass: hdr.Class}, time.Now())
			}
		}
		l.handle(q, nfqueue.Packet{ID: 1, Payload: payload})
		// A packet that teaches waits for the committer: play it.
		select {
		case h := <-l.work:
			if err := sets.Add(h.elems); err != nil {
				t.Fatal(err)
			}
			l.release(q, h, false)
		default:
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.verdicts[1] != 1 {
			t.Fatalf("%d verdicts for one packet", q.verdicts[1])
		}
	})
}
