package nflog

import (
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// The tests in this file talk to a fake kernel (nltest); the real one is
// exercised by integration/nflog_test.go inside a network namespace of its
// own, never in the namespace of the test process.

// errnoENOTSUPP is the kernel-internal ENOTSUPP (524) that nfnetlink_log
// answers to a packet message sent to it.
const errnoENOTSUPP = 524

var errNoMoreReads = errors.New("fake kernel: the test read more often than it scripted")

// fakeKernel answers requests with reply and reads with nothing queued
// with the next of reads.
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

// packetMsg is a packet message of group 77 with prefix and, if sec is not
// 0, a timestamp.
func packetMsg(t *testing.T, prefix string, sec uint64) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: 0x0400},
		Data: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
			ae.Bytes(attrPacketHdr, []byte{0x08, 0x00, unix.NF_INET_FORWARD, 0})
			if sec != 0 {
				ae.Bytes(attrTimestamp, timestamp(sec, 0))
			}
			ae.String(attrPrefix, prefix)
		}),
	}
}

func wantPacket(prefix string, sec int64) Packet {
	return Packet{Time: time.Unix(sec, 0), Prefix: prefix, Family: unix.NFPROTO_IPV4, HWProto: 0x0800, Hook: unix.NF_INET_FORWARD}
}

func msgs(m ...netlink.Message) func() ([]netlink.Message, error) {
	return func() ([]netlink.Message, error) { return m, nil }
}

func TestOpenReceiveClose(t *testing.T) {
	k := &fakeKernel{
		reply: func(n int, req netlink.Message) ([]netlink.Message, error) {
			switch n {
			case 0: // the bind: a packet overtakes the acknowledgement
				return []netlink.Message{packetMsg(t, "early", 100), ack(req)}, nil
			case 1: // the request for each packet's connection
				return []netlink.Message{ack(req)}, nil
			}
			return nil, nil // the unbind of Close asks for no answer
		},
	}
	k.reads = []func() ([]netlink.Message, error){
		msgs(packetMsg(t, "a", 101), packetMsg(t, "b", 102)),
		func() ([]netlink.Message, error) { return nil, unix.ENOBUFS },
		msgs(netlink.Message{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 20)}, packetMsg(t, "c", 0)),
		msgs(packetMsg(t, "d", 104), netlink.Message{Header: netlink.Header{Type: 0x0400}, Data: []byte{2}}),
		func() ([]netlink.Message, error) { return nil, errors.New("something broke") },
	}
	c, err := open(nltest.Dial(k.fn), 77, 256)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if len(k.sent) != 2 || k.sent[0].Header.Type != 0x0401 || k.sent[0].Header.Flags != netlink.Request|netlink.Acknowledge {
		t.Fatalf("open sent %+v, want the bind and the conntrack request, acknowledged", k.sent)
	}
	// NFULA_CFG_FLAGS (6), __be16 NFULNL_CFG_F_CONNTRACK, after the
	// nfgenmsg header of group 77.
	if want := []byte{0, 0, 0, 77, 6, 0, 6, 0, 0, 4, 0, 0}; !slices.Equal(k.sent[1].Data, want) || !c.Conntrack() {
		t.Fatalf("open's second request %v (conntrack %v), want %v and conntrack", k.sent[1].Data, c.Conntrack(), want)
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
	receiveError := func(want error, text string) {
		t.Helper()
		got, err := c.Receive()
		if len(got) != 0 || err == nil || (want != nil && !errors.Is(err, want)) || !strings.Contains(err.Error(), text) {
			t.Fatalf("Receive = %v, %v; want no packets and an error matching %v containing %q", got, err, want, text)
		}
	}

	receive(wantPacket("early", 100))
	receive(wantPacket("a", 101), wantPacket("b", 102))
	receiveError(ErrOverrun, "receive buffer overrun")

	before := time.Now()
	got, err := c.Receive()
	if err != nil || len(got) != 1 || got[0].Prefix != "c" || got[0].Time.Before(before) || time.Since(got[0].Time) > time.Minute {
		t.Fatalf("Receive = %+v, %v; want packet c, stamped with the time it was read, after a late acknowledgement", got, err)
	}

	receive(wantPacket("d", 104)) // the malformed message after it is reported next
	receiveError(nil, "too short for its 4-byte nfgenmsg header")
	receiveError(nil, "nflog: receive from NFLOG group 77: something broke")

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(k.sent) != 3 {
		t.Fatalf("Close sent %d messages, want the unbind", len(k.sent)-2)
	}
	unbind := k.sent[2]
	if unbind.Header.Type != 0x0401 || unbind.Header.Flags != netlink.Request {
		t.Errorf("unbind header %+v, want a config request without acknowledgement", unbind.Header)
	}
	if diff := cmp.Diff([]byte{0, 0, 0, 77, 5, 0, 1, 0, 2, 0, 0, 0}, unbind.Data); diff != "" {
		t.Errorf("unbind data (-want +got):\n%s", diff)
	}
	receiveError(net.ErrClosed, "NFLOG group 77")
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
		{name: "this socket owns the group", answers: []int{int(unix.EBUSY)}, busy: true, text: "nflog: bind NFLOG group 77: the NFLOG group is already bound by another socket: only one socket"},
		{name: "another socket owns the group", answers: []int{int(unix.EPERM), errnoENOTSUPP}, busy: true, probe: true, text: "stop the other listener"},
		{name: "no CAP_NET_ADMIN", answers: []int{int(unix.EPERM), int(unix.EPERM)}, is: unix.EPERM, probe: true, text: "needs CAP_NET_ADMIN"},
		{name: "other error", answers: []int{int(unix.EINVAL)}, is: unix.EINVAL, text: "nflog: bind NFLOG group 77: invalid argument"},
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
			c, err := open(nltest.Dial(k.fn), 77, 256)
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
				if p.Header.Type != 0x0400 || p.Header.Flags != netlink.Request|netlink.Acknowledge || !cmp.Equal(p.Data, []byte{0, 0, 0, 77}) {
					t.Errorf("probe %+v, want an acknowledged NFULNL_MSG_PACKET request for group 77 without attributes", p)
				}
			}
		})
	}
}
