package nfqueue

import (
	"context"
	"errors"
	"iter"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// The tests in this file talk to fake kernels; the real one is exercised
// by integration/nfqueue_test.go inside a network namespace of its own.

// errnoENOTSUPP is the kernel-internal ENOTSUPP (524) that nfnetlink_queue
// answers to a packet message sent to it.
const errnoENOTSUPP = 524

var errNoMoreReads = errors.New("fake kernel: the test read more often than it scripted")

// fakeKernel answers requests with reply and reads with nothing queued
// with the next of reads. It is for one goroutine (nltest is).
type fakeKernel struct {
	sent  []netlink.Message
	reply func(n int, req netlink.Message) ([]netlink.Message, error)
	reads []func() ([]netlink.Message, error)
}

func (k *fakeKernel) fn(reqs []netlink.Message) ([]netlink.Message, error) {
	if reqs == nil {
		if len(k.reads) == 0 {
			return nil, errNoMoreReads
		}
		r := k.reads[0]
		k.reads = k.reads[1:]
		return r()
	}
	k.sent = append(k.sent, reqs...)
	if k.reply == nil {
		return nil, nil
	}
	return k.reply(len(k.sent)-1, reqs[0])
}

// ack is the kernel's acknowledgement of req.
func ack(req netlink.Message) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.Error, Sequence: req.Header.Sequence, PID: req.Header.PID},
		Data:   make([]byte, 4+16),
	}
}

// packetMsg is a packet message of queue 5 for packet id.
func packetMsg(t testing.TB, id uint32) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: 0x0300},
		Data: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
			ae.Bytes(attrPacketHdr, packetHdr(id, 0x0800, unix.NF_INET_LOCAL_OUT))
			ae.Bytes(attrTimestamp, timestamp(uint64(1000+id), 0))
			ae.Bytes(attrPayload, dnsAnswer4)
		}),
	}
}

func wantPacket(id uint32) Packet {
	return Packet{ID: id, Time: time.Unix(int64(1000+id), 0), KernelTime: true, Family: unix.NFPROTO_IPV4, HWProto: 0x0800, Hook: unix.NF_INET_LOCAL_OUT, Payload: dnsAnswer4}
}

func msgs(m ...netlink.Message) func() ([]netlink.Message, error) {
	return func() ([]netlink.Message, error) { return m, nil }
}

// verdictRefused is the kernel's error message for a refused verdict on
// packet id: netlink echoes the request's header, whose sequence number
// is the packet id.
func verdictRefused(id uint32, errno unix.Errno) netlink.Message {
	m, _ := nltest.Error(int(errno), []netlink.Message{verdictMessage(5, id, Accept, false)})
	return m[0]
}

func TestOpenReceiveVerdictClose(t *testing.T) {
	k := &fakeKernel{
		reply: func(n int, req netlink.Message) ([]netlink.Message, error) {
			if n == 0 { // the bind: a packet overtakes the acknowledgement
				return []netlink.Message{packetMsg(t, 1), ack(req)}, nil
			}
			return nil, nil // verdicts and the unbind ask for no answer
		},
	}
	k.reads = []func() ([]netlink.Message, error){
		msgs(packetMsg(t, 2), packetMsg(t, 3)),
		func() ([]netlink.Message, error) { return nil, unix.ENOBUFS },
		msgs(verdictRefused(9, unix.ENOENT)),
		msgs(packetMsg(t, 4), netlink.Message{Header: netlink.Header{Type: 0x0300}, Data: []byte{2}}),
		func() ([]netlink.Message, error) { return nil, errors.New("something broke") },
	}
	c, err := open(nltest.Dial(k.fn), 5, Options{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if len(k.sent) != 1 || k.sent[0].Header.Type != 0x0302 || k.sent[0].Header.Flags != netlink.Request|netlink.Acknowledge {
		t.Fatalf("open sent %+v, want the bind, acknowledged", k.sent)
	}

	receive := func(want ...Packet) {
		t.Helper()
		got, err := c.Receive()
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("Receive (-want +got):\n%s", diff)
		}
	}
	receiveError := func(want error, text string) error {
		t.Helper()
		got, err := c.Receive()
		if len(got) != 0 || err == nil || (want != nil && !errors.Is(err, want)) || !strings.Contains(err.Error(), text) {
			t.Fatalf("Receive = %v, %v; want no packets and an error matching %v containing %q", got, err, want, text)
		}
		return err
	}

	receive(wantPacket(1))
	receive(wantPacket(2), wantPacket(3))
	for _, v := range []struct {
		id uint32
		v  Verdict
	}{{1, Accept}, {2, Drop}} {
		if err := c.SetVerdict(v.id, v.v); err != nil {
			t.Fatalf("SetVerdict(%d, %v): %v", v.id, v.v, err)
		}
	}
	if err := c.SetVerdictBatch(3, Accept); err != nil {
		t.Fatalf("SetVerdictBatch: %v", err)
	}
	wantSent := []netlink.Message{
		verdictMessage(5, 1, Accept, false),
		verdictMessage(5, 2, Drop, false),
		verdictMessage(5, 3, Accept, true),
	}
	for i, w := range wantSent {
		got := k.sent[1+i]
		if got.Header.Type != w.Header.Type || got.Header.Flags != w.Header.Flags || got.Header.Sequence != w.Header.Sequence || !slices.Equal(got.Data, w.Data) {
			t.Errorf("verdict %d sent %+v, want %+v", i, got, w)
		}
	}

	receiveError(ErrOverrun, "receive buffer overrun")
	err = receiveError(unix.ENOENT, "the kernel refused the verdict on packet 9: no such file or directory")
	var ve *VerdictError
	if !errors.As(err, &ve) || ve.ID != 9 {
		t.Errorf("Receive error %v, want a *VerdictError for packet 9", err)
	}
	receive(wantPacket(4)) // the malformed message after it is reported next
	receiveError(nil, "too short for its 4-byte nfgenmsg header")
	receiveError(nil, "nfqueue: receive from queue 5: something broke")

	for _, bad := range []struct {
		id   uint32
		v    Verdict
		text string
	}{{5, 3, "verdict 3 on packet 5: only accept and drop"}, {0, Accept, "accept on packet 0"}} {
		if err := c.SetVerdict(bad.id, bad.v); err == nil || !strings.Contains(err.Error(), bad.text) {
			t.Errorf("SetVerdict(%d, %d) = %v, want an error containing %q", bad.id, uint32(bad.v), err, bad.text)
		}
	}
	if n := len(k.sent); n != 4 {
		t.Fatalf("%d messages sent, want the bind and 3 verdicts (none for the bad ones)", n)
	}

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	unbind := k.sent[4]
	if unbind.Header.Type != 0x0302 || unbind.Header.Flags != netlink.Request {
		t.Errorf("unbind header %+v, want a config request without acknowledgement", unbind.Header)
	}
	if diff := cmp.Diff([]byte{0, 0, 0, 5, 8, 0, 1, 0, 2, 0, 0, 0}, unbind.Data); diff != "" {
		t.Errorf("unbind data (-want +got):\n%s", diff)
	}
	receiveError(net.ErrClosed, "queue 5")
	if err := c.SetVerdict(4, Accept); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetVerdict after Close: %v, want an error matching net.ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v, want nil", err)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name    string
		answers []int // the errno answering each request, 0 for an acknowledgement
		busy    bool
		is      error  // an error the result must match, besides ErrBusy
		text    string // a part of the message
		probe   bool   // whether Open must have sent the capability probe
	}{
		{name: "this socket has the queue", answers: []int{int(unix.EBUSY)}, busy: true, text: "nfqueue: bind queue 5: the queue is already bound by another socket: only one socket"},
		{name: "another socket has the queue", answers: []int{int(unix.EPERM), errnoENOTSUPP}, busy: true, probe: true, text: "stop the other listener"},
		{name: "no CAP_NET_ADMIN", answers: []int{int(unix.EPERM), int(unix.EPERM)}, is: unix.EPERM, probe: true, text: "needs CAP_NET_ADMIN"},
		{name: "other error", answers: []int{int(unix.EINVAL)}, is: unix.EINVAL, text: "nfqueue: bind queue 5: invalid argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := &fakeKernel{reply: func(n int, req netlink.Message) ([]netlink.Message, error) {
				if n >= len(tc.answers) {
					t.Fatalf("request %d is one too many: %+v", n, req)
				}
				if tc.answers[n] == 0 {
					return []netlink.Message{ack(req)}, nil
				}
				return nltest.Error(tc.answers[n], []netlink.Message{req})
			}}
			c, err := open(nltest.Dial(k.fn), 5, Options{})
			if err == nil {
				c.Close()
				t.Fatal("open succeeded, want an error")
			}
			if errors.Is(err, ErrBusy) != tc.busy {
				t.Errorf("open error %q: errors.Is(err, ErrBusy) = %v, want %v", err, !tc.busy, tc.busy)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("open error %q does not match %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("open error %q does not contain %q", err, tc.text)
			}
			if got := len(k.sent) == 2; got != tc.probe {
				t.Fatalf("open sent %d requests; probe sent = %v, want %v", len(k.sent), got, tc.probe)
			}
			if tc.probe {
				p := k.sent[1]
				if p.Header.Type != 0x0300 || p.Header.Flags != netlink.Request|netlink.Acknowledge || !cmp.Equal(p.Data, []byte{0, 0, 0, 5}) {
					t.Errorf("probe %+v, want an acknowledged NFQNL_MSG_PACKET request for queue 5 without attributes", p)
				}
			}
		})
	}
}

// delivery is what one read of a chanSocket returns.
type delivery struct {
	msgs []netlink.Message
	err  error
}

// chanSocket is a netlink.Socket for many goroutines: reads block until
// the test delivers a datagram, the read deadline passes or the socket is
// closed; sends go to a channel.
type chanSocket struct {
	in     chan delivery
	sent   chan netlink.Message
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	deadline time.Time
	kick     chan struct{} // a deadline changed
}

func newChanSocket() *chanSocket {
	return &chanSocket{
		in:     make(chan delivery),
		sent:   make(chan netlink.Message, 4096),
		closed: make(chan struct{}),
		kick:   make(chan struct{}, 1),
	}
}

func (s *chanSocket) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *chanSocket) Send(m netlink.Message) error {
	select {
	case <-s.closed:
		return net.ErrClosed
	default:
	}
	s.sent <- m
	return nil
}

func (s *chanSocket) SendMessages(ms []netlink.Message) error {
	for _, m := range ms {
		if err := s.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func (s *chanSocket) Receive() ([]netlink.Message, error) {
	var out []netlink.Message
	for m, err := range s.ReceiveIter() {
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *chanSocket) ReceiveIter() iter.Seq2[netlink.Message, error] {
	return func(yield func(netlink.Message, error) bool) {
		for {
			s.mu.Lock()
			d := s.deadline
			s.mu.Unlock()
			var expired <-chan time.Time
			if !d.IsZero() {
				timer := time.NewTimer(time.Until(d))
				defer timer.Stop()
				expired = timer.C
			}
			select {
			case d := <-s.in:
				if d.err != nil {
					yield(netlink.Message{}, d.err)
					return
				}
				for _, m := range d.msgs {
					if !yield(m, nil) {
						return
					}
				}
				return
			case <-s.closed:
				yield(netlink.Message{}, net.ErrClosed)
				return
			case <-expired:
				yield(netlink.Message{}, os.ErrDeadlineExceeded)
				return
			case <-s.kick:
			}
		}
	}
}

func (s *chanSocket) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	s.deadline = t
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

func (s *chanSocket) SetDeadline(t time.Time) error    { return s.SetReadDeadline(t) }
func (s *chanSocket) SetWriteDeadline(time.Time) error { return nil }

// TestRunConcurrentVerdicts runs Run while handlers give their verdicts
// from goroutines of their own, in any order: every packet gets exactly
// its verdict. Lost packets, a refused verdict and a malformed message
// reach notice, and Run goes on (accepting the malformed packet); cancelling the context ends Run at once.
func TestRunConcurrentVerdicts(t *testing.T) {
	sock := newChanSocket()
	c := newConn(netlink.NewConn(sock, 1), 5)
	defer c.Close()

	const n = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu      sync.Mutex
		notices []error
		vErrs   []error
	)
	done := make(chan error, 1)
	go func() {
		done <- c.Run(ctx, func(p Packet) {
			go func() {
				v := Accept
				if p.ID%3 == 0 {
					v = Drop
				}
				if err := c.SetVerdict(p.ID, v); err != nil {
					mu.Lock()
					vErrs = append(vErrs, err)
					mu.Unlock()
				}
			}()
		}, func(err error) {
			mu.Lock()
			notices = append(notices, err)
			mu.Unlock()
		})
	}()

	for id := uint32(1); id <= n; id++ {
		sock.in <- delivery{msgs: []netlink.Message{packetMsg(t, id)}}
		switch id {
		case 100:
			sock.in <- delivery{msgs: []netlink.Message{verdictRefused(77777, unix.ENOENT)}}
		case 500:
			// An overrun, as the real socket reports it: a failed read.
			sock.in <- delivery{err: os.NewSyscallError("recvmsg", unix.ENOBUFS)}
		case 700:
			bad := netlink.Message{Header: netlink.Header{Type: 0x0300}, Data: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPacketHdr, packetHdr(100000, 0x0800, unix.NF_INET_LOCAL_OUT))
				ae.Bytes(attrTimestamp, []byte{1})
			})}
			sock.in <- delivery{msgs: []netlink.Message{bad}}
		}
	}
	got := map[uint32]Verdict{}
	for len(got) < n+1 { // and the malformed packet, accepted by Run
		var m netlink.Message
		select {
		case m = <-sock.sent:
		case <-time.After(3 * time.Second):
			mu.Lock()
			t.Fatalf("%d verdicts after 3 s, want %d; SetVerdict errors: %v", len(got), n+1, vErrs)
		}
		if m.Header.Type != 0x0301 {
			t.Fatalf("sent %+v, want only verdicts", m)
		}
		id := m.Header.Sequence
		if _, dup := got[id]; dup {
			t.Fatalf("two verdicts on packet %d", id)
		}
		got[id] = Verdict(m.Data[11])
		if want := verdictMessage(5, id, got[id], false); !slices.Equal(m.Data, want.Data) {
			t.Fatalf("verdict on %d: %v, want %v", id, m.Data, want.Data)
		}
	}
	// Run is blocked in Receive now; cancelling ends it.
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Run took %v to end after cancel", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run still running 3 s after its context was cancelled")
	}
	if len(sock.sent) != 0 {
		t.Fatalf("%d messages sent beyond the %d verdicts", len(sock.sent), n)
	}
	if v, ok := got[100000]; !ok || v != Accept {
		t.Fatalf("malformed packet 100000: verdict %v (sent %v), want accept", v, ok)
	}
	for id, v := range got {
		if want := id%3 != 0; (v == Accept) != want {
			t.Errorf("packet %d got %v", id, v)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notices) != 3 {
		t.Fatalf("notices %v, want the refused verdict, an overrun and a malformed message", notices)
	}
	var ve *VerdictError
	if !errors.As(notices[0], &ve) || ve.ID != 77777 || !errors.Is(ve, unix.ENOENT) {
		t.Errorf("first notice %v, want the refused verdict on 77777", notices[0])
	}
	if !errors.Is(notices[1], ErrOverrun) {
		t.Errorf("second notice %v, want ErrOverrun", notices[1])
	}
	var me *MalformedError
	if !errors.As(notices[2], &me) || me.ID != 100000 {
		t.Errorf("third notice %v, want a *MalformedError of packet 100000", notices[2])
	}

	// Run with a context that is done returns at once; after Close, Run
	// and SetVerdict say the Conn is closed.
	if err := c.Run(ctx, func(Packet) {}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled context = %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Run(context.Background(), func(Packet) {}, nil) }()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-closed:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Run ended by Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run still running 3 s after Close")
	}
	if err := c.SetVerdict(1, Accept); !errors.Is(err, net.ErrClosed) {
		t.Errorf("SetVerdict after Close = %v, want net.ErrClosed", err)
	}
}
