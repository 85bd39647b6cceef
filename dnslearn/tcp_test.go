package dnslearn

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/dnsname"
	"github.com/dockerfence/dockerfence/nfqueue"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// tcp4 returns an IPv4 TCP segment from 192.168.100.2:53 to
// 10.0.0.2:40000 with seq, flags and payload, its checksum right.
func tcp4(seq uint32, flags uint8, payload []byte) []byte {
	b := make([]byte, 40+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, 6
	copy(b[12:], []byte{192, 168, 100, 2})
	copy(b[16:], []byte{10, 0, 0, 2})
	binary.BigEndian.PutUint16(b[20:], 53)
	binary.BigEndian.PutUint16(b[22:], 40000)
	binary.BigEndian.PutUint32(b[24:], seq)
	b[32] = 5 << 4
	b[33] = flags
	copy(b[40:], payload)
	return tcp4Recheck(b)
}

const (
	ack    = dnsname.TCPACK
	pshAck = dnsname.TCPACK | 0x08
	synAck = dnsname.TCPSYN | dnsname.TCPACK
	finAck = dnsname.TCPFIN | dnsname.TCPACK
)

// framed returns the DNS message of an answer packet (from answer) with
// its length before it, as DNS over TCP sends it.
func framed(t *testing.T, name string, addrs ...string) []byte {
	t.Helper()
	msg := answer(t, name, 300, addrs...)[28:]
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
}

// tcpLearner starts a learner of github.com's addresses with a fake queue
// and sets that add after delay.
func tcpLearner(t *testing.T, delay time.Duration) (*Learner, *fakeQueue, *fakeSets) {
	t.Helper()
	sets := &fakeSets{delay: delay}
	l, q := start(t, Config{Sets: sets, Metrics: NewMetrics(prometheus.NewRegistry())}, rules(t, map[string]string{"github.com": "gh"}))
	return l, q, sets
}

// learnedAddrs returns the addresses the sets were given, as strings.
func learnedAddrs(s *fakeSets) []string {
	var out []string
	for _, e := range s.elems() {
		out = append(out, e.Addr.String())
	}
	return out
}

// TestTCPStream: over TCP, the learner follows the stream from the
// server's SYN-ACK. A segment that makes a message whole is held until its
// addresses are added; one that does not passes at once; bytes that come
// early wait for those before them; a retransmission teaches nothing
// twice.
func TestTCPStream(t *testing.T) {
	var isn uint32 = 0xfffffff0 // the stream's sequence numbers wrap
	a := framed(t, "github.com", "140.82.121.4")
	b := framed(t, "github.com", "140.82.121.5", "140.82.121.6")

	t.Run("split over two segments", func(t *testing.T) {
		_, q, sets := tcpLearner(t, 30*time.Millisecond)
		q.in <- nfqueue.Packet{ID: 1, Payload: tcp4(isn, synAck, nil)}
		q.wait(t, 1)
		t0 := time.Now()
		q.in <- nfqueue.Packet{ID: 2, Payload: tcp4(isn+1, ack, a[:10])}
		if at := q.wait(t, 2); at.Sub(t0) >= sets.delay {
			t.Errorf("the first piece of a message was held %v", at.Sub(t0))
		}
		t0 = time.Now()
		q.in <- nfqueue.Packet{ID: 3, Payload: tcp4(isn+11, pshAck, a[10:])}
		if at := q.wait(t, 3); at.Sub(t0) < sets.delay {
			t.Errorf("the segment that made the message whole passed %v after it came, before the set update (%v)", at.Sub(t0), sets.delay)
		}
		if got := learnedAddrs(sets); len(got) != 1 || got[0] != "140.82.121.4" {
			t.Errorf("learned %v, want 140.82.121.4", got)
		}
	})

	t.Run("two messages and the start of a third in one segment", func(t *testing.T) {
		_, q, sets := tcpLearner(t, 0)
		q.in <- nfqueue.Packet{ID: 1, Payload: tcp4(isn, synAck, nil)}
		seg := append(append(append([]byte(nil), a...), b...), a[:5]...)
		q.in <- nfqueue.Packet{ID: 2, Payload: tcp4(isn+1, pshAck, seg)}
		q.wait(t, 2)
		if got := learnedAddrs(sets); len(got) != 3 {
			t.Errorf("learned %v, want the 3 addresses of two messages", got)
		}
		q.in <- nfqueue.Packet{ID: 3, Payload: tcp4(isn+1+uint32(len(seg)), finAck, a[5:])}
		q.wait(t, 3)
		if got := learnedAddrs(sets); len(got) != 4 {
			t.Errorf("learned %v, want the third message's address too", got)
		}
	})

	t.Run("out of order, and retransmitted", func(t *testing.T) {
		_, q, sets := tcpLearner(t, 0)
		q.in <- nfqueue.Packet{ID: 1, Payload: tcp4(isn, synAck, nil)}
		q.in <- nfqueue.Packet{ID: 2, Payload: tcp4(isn+21, pshAck, a[20:])} // early
		q.wait(t, 2)
		if got := learnedAddrs(sets); len(got) != 0 {
			t.Errorf("bytes after a gap taught %v", got)
		}
		q.in <- nfqueue.Packet{ID: 3, Payload: tcp4(isn+1, ack, a[:20])} // fills the gap
		q.wait(t, 3)
		if got := learnedAddrs(sets); len(got) != 1 {
			t.Errorf("learned %v once the gap was filled, want 140.82.121.4", got)
		}
		q.in <- nfqueue.Packet{ID: 4, Payload: tcp4(isn+1, pshAck, a)} // all again
		q.in <- nfqueue.Packet{ID: 5, Payload: tcp4(isn+15, pshAck, append(a[14:], b...))}
		q.wait(t, 5)
		if got := learnedAddrs(sets); len(got) != 3 {
			t.Errorf("learned %v; want the first message once and the second's two addresses", got)
		}
	})

	t.Run("a segment with a wrong checksum does not move the stream", func(t *testing.T) {
		l, q, sets := tcpLearner(t, 0)
		q.in <- nfqueue.Packet{ID: 1, Payload: tcp4(isn, synAck, nil)}
		bad := tcp4(isn+1, pshAck, framed(t, "github.com", "6.6.6.6"))
		bad[len(bad)-1] ^= 0xff
		q.in <- nfqueue.Packet{ID: 2, Payload: bad}
		q.in <- nfqueue.Packet{ID: 3, Payload: tcp4(isn+1, pshAck, a)}
		q.wait(t, 3)
		if got := learnedAddrs(sets); len(got) != 1 || got[0] != "140.82.121.4" {
			t.Errorf("learned %v, want 140.82.121.4 alone", got)
		}
		if got := testutil.ToFloat64(l.cfg.Metrics.unreadable.WithLabelValues("checksum")); got != 1 {
			t.Errorf("checksum errors counted: %v, want 1", got)
		}
	})
}

// TestTCPForgedInsideAMessage is the attack that following the stream
// stops: the client's own zone answers a TXT question with a record whose
// text is a whole answer for an allowed name, with its length before it,
// and the server's segments are cut (a small MSS) so that one starts at
// that text. Read alone, that segment is an answer teaching 6.6.6.6 for
// github.com; read in its stream, it is the inside of a TXT answer, which
// teaches nothing. A segment of a stream whose start was not seen teaches
// nothing either.
func TestTCPForgedInsideAMessage(t *testing.T) {
	forged := framed(t, "github.com", "6.6.6.6")
	m := new(dns.Msg)
	m.SetQuestion("evil.example.", dns.TypeTXT)
	m.Response = true
	m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: "evil.example.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
		Txt: []string{string(forged)}})
	msg, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	whole := append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
	at := len(whole) - len(forged) // where the text's bytes start
	if string(whole[at:]) != string(forged) {
		t.Fatal("the TXT record's text is not at the end of the message")
	}
	if p, err := dnsname.ParsePacket(tcp4(1000, pshAck, whole[at:])); err != nil {
		t.Fatal(err)
	} else if l, err := dnsname.Learn(p.Data[2:], rules(t, map[string]string{"github.com": "gh"}).Matcher, dnsname.Bounds{Min: time.Minute}); err != nil || len(l.Addrs) != 1 {
		t.Fatalf("the forged segment, read alone, is not an answer for github.com: %+v, %v", l, err)
	}

	const isn = 1000
	l, q, sets := tcpLearner(t, 0)
	q.in <- nfqueue.Packet{ID: 1, Payload: tcp4(isn, synAck, nil)}
	q.in <- nfqueue.Packet{ID: 2, Payload: tcp4(isn+1, ack, whole[:at])}
	q.in <- nfqueue.Packet{ID: 3, Payload: tcp4(isn+1+uint32(at), pshAck, whole[at:])}
	q.wait(t, 3)
	// The same segment, in a stream whose SYN-ACK the learner did not see.
	q.in <- nfqueue.Packet{ID: 4, Payload: func() []byte {
		p := tcp4(5000, pshAck, whole[at:])
		binary.BigEndian.PutUint16(p[22:], 40001)
		return tcp4Recheck(p)
	}()}
	q.wait(t, 4)
	if got := learnedAddrs(sets); len(got) != 0 {
		t.Errorf("a TXT record's text taught %v", got)
	}
	if got := testutil.ToFloat64(l.cfg.Metrics.unreadable.WithLabelValues("ignored")); got != 1 {
		t.Errorf("messages ignored: %v, want 1 (the TXT answer)", got)
	}
	if got := testutil.ToFloat64(l.cfg.Metrics.unreadable.WithLabelValues(reasonTCPUnknown)); got != 1 {
		t.Errorf("segments of unknown streams: %v, want 1", got)
	}
}

// tcp4Recheck recomputes the checksum of an IPv4 TCP segment.
func tcp4Recheck(p []byte) []byte {
	p[36], p[37] = 0, 0
	var sum uint32
	add := func(x []byte) {
		for ; len(x) >= 2; x = x[2:] {
			sum += uint32(x[0])<<8 | uint32(x[1])
		}
		if len(x) == 1 {
			sum += uint32(x[0]) << 8
		}
	}
	add(p[12:20])
	sum += 6 + uint32(len(p)-20)
	add(p[20:])
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[36:], ^uint16(sum))
	return p
}

// TestTCPStreamGivenUp: a length of 0, or more bytes out of order than the
// learner keeps, gives the stream up: nothing more of it teaches, and it
// is counted.
func TestTCPStreamGivenUp(t *testing.T) {
	a := framed(t, "github.com", "140.82.121.4")
	s := newStreams()
	now := time.Now()
	seg := func(seq uint32, flags uint8, data []byte) ([][]byte, string) {
		p, err := dnsname.ParsePacket(tcp4(seq, flags, data))
		if err != nil {
			t.Fatal(err)
		}
		return s.segment(p, now)
	}
	seg(0, synAck, nil)
	if _, why := seg(1, pshAck, []byte{0, 0}); why != reasonTCPLost {
		t.Errorf("a length of 0: %q, want %q", why, reasonTCPLost)
	}
	if msgs, why := seg(3, pshAck, a); len(msgs) != 0 || why != reasonTCPLost {
		t.Errorf("after a length of 0: %d messages, %q", len(msgs), why)
	}
	seg(0, finAck, nil)
	if len(s.m) != 0 {
		t.Error("a FIN left the stream")
	}

	seg(100, synAck, nil)
	for i := uint32(0); ; i++ {
		_, why := seg(101+10000+i*2000, pshAck, make([]byte, 2000))
		if why == reasonTCPLost {
			if n := int(i) * 2000; n < maxEarly-2000 || n > maxEarly {
				t.Errorf("gave up after %d bytes out of order, want about %d", n, maxEarly)
			}
			break
		}
		if i > 1000 {
			t.Fatal("never gave up")
		}
	}
	if msgs, why := seg(101, pshAck, a); len(msgs) != 0 || why != reasonTCPLost {
		t.Errorf("a stream given up: %d messages, %q", len(msgs), why)
	}
	seg(0, dnsname.TCPRST, nil)

	// Bytes one at a time, out of order: given up at maxEarlySegments,
	// whose merging stays cheap.
	seg(100, synAck, nil)
	for i := uint32(0); ; i++ {
		_, why := seg(101+10000-i, pshAck, []byte{1})
		if why == reasonTCPLost {
			if i != maxEarlySegments {
				t.Errorf("gave up after %d segments out of order, want %d", i, maxEarlySegments)
			}
			break
		}
		if i > 1000 {
			t.Fatal("never gave up")
		}
	}
	if msgs, why := seg(101, pshAck, a); len(msgs) != 0 || why != reasonTCPLost {
		t.Errorf("a stream given up: %d messages, %q", len(msgs), why)
	}
}

// TestTCPStreamsBounded: the learner follows at most maxStreams streams,
// of which at most maxClientStreams of one client: past either, a new
// stream takes the place of the one (of the client's) heard of longest
// ago. A stream idle for streamIdle is forgotten.
func TestTCPStreamsBounded(t *testing.T) {
	s := newStreams()
	now := time.Now()
	server := netip.MustParseAddrPort("192.168.100.2:53")
	synAckOf := func(client netip.AddrPort, at time.Time) {
		s.segment(&dnsname.Packet{TCP: true, Flags: synAck, Src: server, Dst: client}, at)
	}
	// A neighbour's stream, then one client's many.
	neighbour := netip.MustParseAddrPort("10.0.0.9:4000")
	synAckOf(neighbour, now)
	for i := range maxClientStreams + 100 {
		synAckOf(netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(i+1)), now.Add(time.Duration(i+1)*time.Millisecond))
	}
	if n := s.clients[netip.MustParseAddr("10.0.0.2")]; n != maxClientStreams {
		t.Errorf("one client has %d streams followed, want %d", n, maxClientStreams)
	}
	if s.m[streamKey{server, neighbour}] == nil {
		t.Error("one client's streams crowded out its neighbour's")
	}
	if s.m[streamKey{server, netip.MustParseAddrPort("10.0.0.2:1")}] != nil || s.m[streamKey{server, netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), maxClientStreams+100)}] == nil {
		t.Error("the client's oldest stream was kept, or its newest not")
	}
	// Many clients.
	for i := range maxStreams + 10 {
		c := netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})
		synAckOf(netip.AddrPortFrom(c, 1), now.Add(time.Second+time.Duration(i)*time.Millisecond))
	}
	if len(s.m) != maxStreams {
		t.Errorf("%d streams followed, want %d", len(s.m), maxStreams)
	}
	if s.m[streamKey{server, neighbour}] != nil {
		t.Error("the stream heard of longest ago was kept past the bound")
	}
	total := 0
	for _, n := range s.clients {
		total += n
	}
	if total != len(s.m) {
		t.Errorf("streams by client add up to %d, %d followed", total, len(s.m))
	}
	s.segment(&dnsname.Packet{TCP: true, Flags: ack, Src: server, Dst: netip.MustParseAddrPort("10.0.0.3:1")}, now.Add(streamIdle+time.Hour))
	if len(s.m) != 0 || len(s.clients) != 0 {
		t.Errorf("%d idle streams kept (%d clients)", len(s.m), len(s.clients))
	}
}

// FuzzTCPStream feeds a stream arbitrary segments (each: 4 bytes of
// offset from the SYN-ACK, a byte of flags, then data): it never panics,
// never returns more bytes of messages than it was given, and keeps its
// buffers bounded.
func FuzzTCPStream(f *testing.F) {
	a := framed(&testing.T{}, "github.com", "140.82.121.4")
	f.Add(append([]byte{0, 0, 0, 1, ack}, a...))
	f.Add(append([]byte{0, 0, 0, 20, ack}, a[19:]...))
	f.Add([]byte{0, 0, 0, 1, ack, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := newStreams()
		now := time.Now()
		src, dst := netip.MustParseAddrPort("192.168.100.2:53"), netip.MustParseAddrPort("10.0.0.2:40000")
		s.segment(&dnsname.Packet{TCP: true, Flags: synAck, Seq: 7, Src: src, Dst: dst}, now)
		given, got := 0, 0
		for len(in) >= 5 {
			off := binary.BigEndian.Uint32(in)
			flags := in[4]
			in = in[5:]
			n := len(in)
			if n > 300 {
				n = 300
			}
			data := in[:n]
			in = in[n:]
			given += len(data)
			msgs, _ := s.segment(&dnsname.Packet{TCP: true, Flags: flags, Seq: 7 + off, Data: data, Src: src, Dst: dst}, now)
			for _, m := range msgs {
				got += len(m)
			}
			st := s.m[streamKey{src, dst}]
			if st != nil && (st.earlyN > maxEarly || len(st.buf) > 2+65535+300) {
				t.Fatalf("buffers grew: %d early, %d buffered", st.earlyN, len(st.buf))
			}
			if want := 0; st != nil && s.buffered != len(st.buf)+st.earlyN || st == nil && s.buffered != want {
				t.Fatalf("%d bytes counted as buffered, the stream holds %+v", s.buffered, st)
			}
		}
		if got > given {
			t.Fatalf("%d bytes of messages from %d bytes of data", got, given)
		}
	})
}

// TestTCPStreamRestartAndBound: a SYN-ACK with another sequence number
// starts the stream anew (a new connection on the same addresses and
// ports), a retransmitted one does not; the bytes all streams keep
// together are bounded, and counted down as streams end.
func TestTCPStreamRestartAndBound(t *testing.T) {
	a := framed(t, "github.com", "140.82.121.4")
	s := newStreams()
	now := time.Now()
	seg := func(port uint16, seq uint32, flags uint8, data []byte) ([][]byte, string) {
		t.Helper()
		p, err := dnsname.ParsePacket(tcp4Recheck(func() []byte {
			b := tcp4(seq, flags, data)
			binary.BigEndian.PutUint16(b[22:], port)
			b[18], b[19] = byte(port>>8), byte(port) // a client address a port
			return b
		}()))
		if err != nil {
			t.Fatal(err)
		}
		return s.segment(p, now)
	}
	seg(1, 100, synAck, nil)
	seg(1, 101, ack, a[:10])
	seg(1, 100, synAck, nil) // retransmitted: the stream goes on
	if msgs, _ := seg(1, 111, pshAck, a[10:]); len(msgs) != 1 {
		t.Errorf("after a retransmitted SYN-ACK: %d messages, want 1", len(msgs))
	}
	seg(1, 101+uint32(len(a)), ack, a[:10])
	seg(1, 5000, synAck, nil) // a new connection
	if msgs, _ := seg(1, 5001, pshAck, a); len(msgs) != 1 {
		t.Errorf("after a new SYN-ACK: %d messages, want 1", len(msgs))
	}
	if s.buffered != 0 {
		t.Errorf("%d bytes counted as buffered with no message in progress", s.buffered)
	}

	// Streams that each keep the start of a message of 60,000 bytes.
	big := make([]byte, 30000)
	big[0], big[1] = 0xea, 0x60
	lost := 0
	for port := uint16(10); port < 10+2*maxBuffered/30000+10; port++ {
		seg(port, 0, synAck, nil)
		if _, why := seg(port, 1, ack, big); why == reasonTCPLost {
			lost++
		}
	}
	if s.buffered > maxBuffered || lost == 0 {
		t.Errorf("%d bytes buffered (bound %d), %d streams given up", s.buffered, maxBuffered, lost)
	}
	for port := uint16(10); port < 10+2*maxBuffered/30000+10; port++ {
		seg(port, 0, dnsname.TCPRST, nil)
	}
	if s.buffered != 0 || len(s.m) != 1 {
		t.Errorf("after the resets: %d bytes buffered in %d streams, want 0 in 1", s.buffered, len(s.m))
	}
}

// TestHairpinTeachesNothing: an answer routed back out of the interface it
// came in by (a container's own, from its resolver's address, through its
// gateway) teaches nothing and leaves the stream as it was; the same
// bytes from the resolver's side then teach.
func TestHairpinTeachesNothing(t *testing.T) {
	a := framed(t, "github.com", "140.82.121.4")
	l, q, sets := tcpLearner(t, 0)
	q.in <- nfqueue.Packet{ID: 1, InDev: 2, OutDev: 5, Payload: tcp4(100, synAck, nil)}
	q.in <- nfqueue.Packet{ID: 2, InDev: 5, OutDev: 5, Payload: tcp4(101, pshAck, framed(t, "github.com", "6.6.6.6"))}
	q.wait(t, 2)
	if got := learnedAddrs(sets); len(got) != 0 {
		t.Errorf("a hairpinned answer taught %v", got)
	}
	if got := testutil.ToFloat64(l.cfg.Metrics.unreadable.WithLabelValues("hairpin")); got != 1 {
		t.Errorf("hairpinned answers counted: %v, want 1", got)
	}
	q.in <- nfqueue.Packet{ID: 3, InDev: 2, OutDev: 5, Payload: tcp4(101, pshAck, a)}
	q.wait(t, 3)
	if got := learnedAddrs(sets); len(got) != 1 || got[0] != "140.82.121.4" {
		t.Errorf("then the resolver's answer taught %v, want 140.82.121.4", got)
	}
}
