package dnslearn

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/dockerfence/dockerfence/dnsname"
)

// Bounds of the streams of DNS over TCP that the learner follows.
const (
	// maxStreams is how many streams it follows at once: past it, a new
	// stream takes the place of the one heard of longest ago.
	maxStreams = 4096
	// maxClientStreams is how many of them may be of one client address:
	// past it, a new stream of the client takes the place of the client's
	// own heard of longest ago, so that a container that opens streams
	// and resets them (the learner sees only the server's side) cannot
	// crowd out its neighbours'.
	maxClientStreams = 256
	// maxEarlySegments is how many segments out of order it keeps of a
	// stream; past it, it gives the stream up.
	maxEarlySegments = 64
	// maxEarly is how many bytes of a stream it keeps that came before
	// bytes it still misses (segments out of order); past it, it gives
	// the stream up.
	maxEarly = 64 << 10
	// maxBuffered is how many bytes it keeps of all streams together, of
	// messages not whole yet and of segments out of order: a container
	// that opens many streams and reads none of their answers makes it
	// give streams up, not grow.
	maxBuffered = 16 << 20
	// streamIdle is how long a stream it hears nothing of is kept.
	streamIdle = 2 * time.Minute
)

// Reasons a TCP segment teaches nothing, as counted in Metrics.
const (
	reasonTCPUnknown = "tcp-unknown" // of a stream whose start (SYN-ACK) the learner did not see
	reasonTCPLost    = "tcp-lost"    // of a stream the learner gave up (bytes it cannot place)
)

// streamKey names a stream of DNS over TCP by its server's and client's
// addresses and ports.
type streamKey struct{ server, client netip.AddrPort }

// stream is what the learner knows of the server's side of a stream: the
// sequence number of the next byte in order, the bytes of a message not
// whole yet, and the segments that came before the bytes they follow.
type stream struct {
	isn     uint32 // of the SYN-ACK
	next    uint32
	started bool // bytes have come in order
	buf     []byte
	early   []segment
	earlyN  int
	lost    bool
	seen    time.Time
}

// segment is a segment's data that came out of order, from seq on.
type segment struct {
	seq  uint32
	data []byte
}

// streams follows the server's side of the streams of DNS over TCP, so
// that the learner reads each message whole, from where the stream says
// it starts: a segment on its own does not say whether its first bytes
// start a message (a length) or lie inside one, and a message whose
// inside the client's own zone lays out (a TXT record) could otherwise be
// read as an answer teaching any address. A stream starts with the
// server's SYN-ACK, which the kernel holds as it holds answers; the
// bytes after it are read as the DNS messages (each after its length,
// RFC 1035 4.2.2) that the client's TCP reads. A stream is given up, and
// teaches nothing more, when the learner cannot follow it: too many bytes
// out of order, or a length of 0. It is the learner's reader's own: no
// lock.
type streams struct {
	m         map[streamKey]*stream
	clients   map[netip.Addr]int // streams by client address
	lastSweep time.Time
	buffered  int // bytes of buf and early over all streams
}

func newStreams() *streams {
	return &streams{m: map[streamKey]*stream{}, clients: map[netip.Addr]int{}}
}

// segment takes a segment from a stream's server and returns the messages
// that it makes whole (nil if none), or why it teaches nothing ("" if it
// is just not the end of a message). A segment whose checksum is wrong
// never gets here (its receiver drops it, and the stream stays as it
// was).
func (s *streams) segment(p *dnsname.Packet, now time.Time) (msgs [][]byte, why string) {
	s.sweep(now)
	k := streamKey{p.Src, p.Dst}
	st := s.m[k]
	seq, data := p.Seq, p.Data
	switch {
	case p.Flags&dnsname.TCPRST != 0:
		if st != nil {
			s.drop(k, st)
		}
		return nil, ""
	case p.Flags&dnsname.TCPSYN != 0:
		if p.Flags&dnsname.TCPACK == 0 {
			return nil, "" // not a server's answer to a connect
		}
		if st != nil && st.started && st.isn == seq {
			// A retransmission of the SYN-ACK of a stream under way.
			// (Conntrack does not let a SYN-ACK into an established
			// connection: one with another sequence number is a new
			// connection on the same addresses and ports, whose end the
			// learner did not see.)
			return nil, ""
		}
		if st != nil {
			s.drop(k, st)
		}
		if s.clients[k.client.Addr()] >= maxClientStreams {
			s.evict(func(o streamKey) bool { return o.client.Addr() == k.client.Addr() })
		}
		if len(s.m) >= maxStreams {
			s.evict(func(streamKey) bool { return true })
		}
		st = &stream{isn: seq, next: seq + 1}
		s.m[k] = st
		s.clients[k.client.Addr()]++
		seq++ // a SYN takes a sequence number; data may follow it
	case st == nil:
		if len(data) == 0 {
			return nil, ""
		}
		return nil, reasonTCPUnknown
	}
	st.seen = now
	if !st.lost && len(data) > 0 {
		before := len(st.buf) + st.earlyN
		msgs = st.take(seq, data, maxBuffered-s.buffered)
		s.buffered += len(st.buf) + st.earlyN - before
	}
	if p.Flags&dnsname.TCPFIN != 0 {
		s.drop(k, st)
	}
	if st.lost && len(data) > 0 {
		return msgs, reasonTCPLost
	}
	return msgs, ""
}

// drop forgets stream st, named k.
func (s *streams) drop(k streamKey, st *stream) {
	s.buffered -= len(st.buf) + st.earlyN
	delete(s.m, k)
	if s.clients[k.client.Addr()]--; s.clients[k.client.Addr()] <= 0 {
		delete(s.clients, k.client.Addr())
	}
}

// evict forgets, of the streams that which picks, the one heard of
// longest ago.
func (s *streams) evict(which func(streamKey) bool) {
	var (
		oldest streamKey
		st     *stream
	)
	for k, o := range s.m {
		if which(k) && (st == nil || o.seen.Before(st.seen)) {
			oldest, st = k, o
		}
	}
	if st != nil {
		s.drop(oldest, st)
	}
}

// take adds data, from sequence number seq, to the stream, and returns
// the messages it makes whole; room is how many more bytes the stream may
// keep (of all streams' bound), past which it is given up.
func (st *stream) take(seq uint32, data []byte, room int) [][]byte {
	if len(data) > room {
		st.lost = true
		st.buf, st.early, st.earlyN = nil, nil, 0
		return nil
	}
	if d := int32(seq - st.next); d > 0 {
		// Bytes after some the stream has not had yet: kept until
		// those come.
		if st.earlyN+len(data) > maxEarly || len(st.early) >= maxEarlySegments {
			st.lost = true
			st.buf, st.early, st.earlyN = nil, nil, 0
			return nil
		}
		st.early = append(st.early, segment{seq, append([]byte(nil), data...)})
		st.earlyN += len(data)
		return nil
	}
	st.append(seq, data)
	// The bytes that came early and now follow on.
	for progress := true; progress && len(st.early) > 0; {
		progress = false
		kept := st.early[:0]
		for _, e := range st.early {
			if int32(e.seq-st.next) <= 0 {
				st.append(e.seq, e.data)
				st.earlyN -= len(e.data)
				progress = true
				continue
			}
			kept = append(kept, e)
		}
		st.early = kept
	}
	return st.messages()
}

// append adds the bytes of data, from sequence number seq (not after
// st.next), that the stream has not had yet.
func (st *stream) append(seq uint32, data []byte) {
	skip := uint32(st.next - seq)
	if uint64(skip) >= uint64(len(data)) {
		return // a retransmission of bytes the stream has
	}
	st.buf = append(st.buf, data[skip:]...)
	st.next += uint32(len(data)) - skip
	st.started = true
}

// messages returns the messages that the stream's bytes hold whole, and
// keeps the rest.
func (st *stream) messages() [][]byte {
	var msgs [][]byte
	b := st.buf
	for len(b) >= 2 {
		n := int(binary.BigEndian.Uint16(b))
		if n == 0 {
			st.lost = true
			break
		}
		if len(b) < 2+n {
			break
		}
		msgs = append(msgs, b[2:2+n])
		b = b[2+n:]
	}
	if len(msgs) > 0 || st.lost {
		// The messages keep the old buffer; the rest moves to a new one.
		st.buf = append([]byte(nil), b...)
	}
	if st.lost {
		st.buf, st.early, st.earlyN = nil, nil, 0
	}
	return msgs
}

// sweep forgets the streams heard nothing of for streamIdle, at most every
// few seconds.
func (s *streams) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < 5*time.Second {
		return
	}
	s.lastSweep = now
	for k, st := range s.m {
		if now.Sub(st.seen) > streamIdle {
			s.drop(k, st)
		}
	}
}
