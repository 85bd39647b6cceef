package nfqueue

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nlaNetByteOrder is NLA_F_NET_BYTEORDER, which the kernel may set on
// attributes in network byte order.
const nlaNetByteOrder = 0x4000

// packetBody builds the body of an NFQNL_MSG_PACKET message: the nfgenmsg
// header for family and queue 5, then the attributes attrs encodes.
func packetBody(t testing.TB, family uint8, attrs func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	attrs(ae)
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{family, 0, 0, 5}, b...)
}

// packetHdr encodes struct nfqnl_msg_packet_hdr (7 bytes, packed).
func packetHdr(id uint32, hwProto uint16, hook uint8) []byte {
	b := make([]byte, 7)
	binary.BigEndian.PutUint32(b, id)
	binary.BigEndian.PutUint16(b[4:], hwProto)
	b[6] = hook
	return b
}

// timestamp encodes struct nfqnl_msg_packet_timestamp.
func timestamp(sec, usec uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, sec)
	binary.BigEndian.PutUint64(b[8:], usec)
	return b
}

// dnsAnswer4 is a UDP datagram from 192.168.100.2:53 to 172.20.0.2:40001
// in an IPv4 packet, with the first bytes of a DNS answer; the checksums
// are not filled in, as for a packet on its way out.
var dnsAnswer4 = []byte{
	0x45, 0, 0, 36, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0, // IPv4, 36 bytes, UDP
	192, 168, 100, 2, 172, 20, 0, 2,
	0, 53, 0x9c, 0x41, 0, 16, 0, 0, // UDP 53 -> 40001, 16 bytes
	0xab, 0xcd, 0x81, 0x80, 0, 1, 0, 1, // DNS id, flags, 1 question, 1 answer
}

// golden is a packet message laid out as nfqnl_build_packet_message
// writes one for a DNS answer queued in the output hook of queue 5:
// NFQA_PACKET_HDR, NFQA_IFINDEX_OUTDEV, NFQA_MARK, then NFQA_PAYLOAD (no
// NFQA_HWADDR in output); attribute headers in host order (little-endian
// here), values in network order. The payload follows it.
var golden = []byte{
	2, 0, 0, 5, // nfgenmsg: NFPROTO_IPV4, version 0, res_id 5
	11, 0, 1, 0, 0, 0, 0, 42, 8, 0, 3, 0, // NFQA_PACKET_HDR: id 42, 0x0800, hook 3 (output), padded
	8, 0, 6, 0, 0, 0, 0, 7, // NFQA_IFINDEX_OUTDEV: 7
	8, 0, 3, 0, 0, 0, 0, 0x2a, // NFQA_MARK: 0x2a
	40, 0, 10, 0, // NFQA_PAYLOAD: 36 bytes
}

func TestParsePacketGolden(t *testing.T) {
	body := append(append([]byte(nil), golden...), dnsAnswer4...)
	recv := time.Unix(1700000000, 0)
	got, err := parsePacket(body, recv)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{ID: 42, Time: recv, Family: unix.NFPROTO_IPV4, HWProto: 0x0800, Hook: unix.NF_INET_LOCAL_OUT, OutDev: 7, Mark: 0x2a, Payload: dnsAnswer4}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parsePacket (-want +got):\n%s", diff)
	}
	if got.Truncated() {
		t.Error("Truncated() = true for a whole packet")
	}
}

func TestParsePacket(t *testing.T) {
	recv := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		body  []byte
		want  Packet
		error string // a part of the error, "" for none
	}{
		{
			name: "forwarded ipv4 with everything",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPacketHdr, packetHdr(0xdeadbeef, 0x0800, unix.NF_INET_FORWARD))
				ae.Uint32(attrMark, 0x2a)
				ae.Uint32(attrIfIndexIn|nlaNetByteOrder, 5)
				ae.Uint32(attrIfIndexOut, 7)
				ae.Uint32(attrPhysIn, 9)
				ae.Uint32(attrPhysOut|nlaNetByteOrder, 10)
				ae.Bytes(9, []byte{0, 6, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0}) // NFQA_HWADDR, ignored
				ae.Bytes(attrTimestamp, timestamp(1700000000, 123456))
				ae.Bytes(attrPayload, dnsAnswer4[:28])
				ae.Uint32(attrCapLen, 36)
				ae.Uint32(attrSKBInfo, SKBChecksumNotReady|SKBGSO)
				ae.Uint32(16, 0) // NFQA_UID, ignored
				ae.Uint32(99, 1) // unknown, ignored
			}),
			want: Packet{
				ID:         0xdeadbeef,
				Time:       time.Unix(1700000000, 123456000),
				KernelTime: true,
				Family:     unix.NFPROTO_IPV4,
				HWProto:    0x0800,
				Hook:       unix.NF_INET_FORWARD,
				InDev:      5,
				OutDev:     7,
				PhysInDev:  9,
				PhysOutDev: 10,
				Mark:       0x2a,
				Payload:    dnsAnswer4[:28],
				CapLen:     36,
				SKBInfo:    SKBChecksumNotReady | SKBGSO,
			},
		},
		{
			name: "output ipv6 without timestamp or indev",
			body: packetBody(t, unix.NFPROTO_IPV6, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPacketHdr|nlaNetByteOrder, packetHdr(1, 0x86dd, unix.NF_INET_LOCAL_OUT))
				ae.Uint32(attrIfIndexOut|nlaNetByteOrder, 3)
				ae.Bytes(attrPayload, []byte{0x60, 0, 0, 0})
			}),
			want: Packet{ID: 1, Time: recv, Family: unix.NFPROTO_IPV6, HWProto: 0x86dd, Hook: unix.NF_INET_LOCAL_OUT, OutDev: 3, Payload: []byte{0x60, 0, 0, 0}},
		},
		{
			name: "a longer packet header is read by its first 7 bytes",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPacketHdr, append(packetHdr(9, 0x0800, unix.NF_INET_PRE_ROUTING), 0xff))
			}),
			want: Packet{ID: 9, Time: recv, Family: unix.NFPROTO_IPV4, HWProto: 0x0800, Hook: unix.NF_INET_PRE_ROUTING},
		},
		{
			name:  "short nfgenmsg",
			body:  []byte{2, 0},
			error: "too short for its 4-byte nfgenmsg header",
		},
		{
			name: "no packet header",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPayload, dnsAnswer4)
			}),
			error: "nfqueue: malformed packet message: no NFQA_PACKET_HDR",
		},
		{
			name: "short packet header",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPacketHdr, []byte{0, 0, 0, 1, 8, 0})
			}),
			error: "NFQA_PACKET_HDR has 6 bytes, want 7",
		},
		{
			name: "short timestamp",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPacketHdr, packetHdr(1, 0x0800, 0))
				ae.Bytes(attrTimestamp, make([]byte, 8))
			}),
			error: "nfqueue: malformed message of packet 1: NFQA_TIMESTAMP has 8 bytes, want 16",
		},
		{
			name: "mark of the wrong size",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPacketHdr, packetHdr(1, 0x0800, 0))
				ae.Uint16(attrMark, 1)
			}),
			error: "nfqueue: malformed message of packet 1: attributes: netlink: attribute 3 is not a uint32",
		},
		{
			name:  "attribute longer than the message",
			body:  []byte{2, 0, 0, 5, 0xff, 0, 1, 0, 1, 2, 3, 4},
			error: "nfqueue: malformed packet message: attributes:",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePacket(tc.body, recv)
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("parsePacket error = %v, want one containing %q", err, tc.error)
				}
				var me *MalformedError
				if !errors.As(err, &me) {
					t.Fatalf("parsePacket error %v is not a *MalformedError", err)
				}
				if want := uint32(strings.Count(tc.error, "of packet 1")); me.ID != want {
					t.Errorf("MalformedError.ID = %d, want %d", me.ID, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("parsePacket: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("parsePacket (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTruncated(t *testing.T) {
	p := Packet{Payload: make([]byte, 10), CapLen: 11}
	if !p.Truncated() {
		t.Error("Truncated() = false for a payload of 10 bytes of an 11-byte packet")
	}
}

func TestConfigMessages(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want []byte
	}{
		{
			name: "defaults",
			want: []byte{
				0, 0, 0, 5, // nfgenmsg: AF_UNSPEC, version 0, res_id htons(5)
				8, 0, 1, 0, 1, 0, 0, 0, // NFQA_CFG_CMD: BIND, pad, pf 0
				9, 0, 2, 0, 0, 0, 0xff, 0xfb, 2, 0, 0, 0, // NFQA_CFG_PARAMS: range 0xfffb, COPY_PACKET, padded
				8, 0, 4, 0, 0, 0, 0, 5, // NFQA_CFG_MASK: FAIL_OPEN|GSO
				8, 0, 5, 0, 0, 0, 0, 1, // NFQA_CFG_FLAGS: FAIL_OPEN
			},
		},
		{
			name: "range, length and GSO",
			o:    Options{CopyRange: 512, MaxLen: 100, GSO: true},
			want: []byte{
				0, 0, 0, 5,
				8, 0, 1, 0, 1, 0, 0, 0,
				9, 0, 2, 0, 0, 0, 2, 0, 2, 0, 0, 0, // range 512
				8, 0, 3, 0, 0, 0, 0, 100, // NFQA_CFG_QUEUE_MAXLEN: 100
				8, 0, 4, 0, 0, 0, 0, 5,
				8, 0, 5, 0, 0, 0, 0, 5, // FAIL_OPEN|GSO
			},
		},
		{
			name: "a range over the kernel's maximum is the maximum",
			o:    Options{CopyRange: 1 << 20},
			want: []byte{
				0, 0, 0, 5,
				8, 0, 1, 0, 1, 0, 0, 0,
				9, 0, 2, 0, 0, 0, 0xff, 0xfb, 2, 0, 0, 0,
				8, 0, 4, 0, 0, 0, 0, 5,
				8, 0, 5, 0, 0, 0, 0, 1,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bind, err := configMessage(5, true, bindAttrs(tc.o))
			if err != nil {
				t.Fatal(err)
			}
			if want := netlink.HeaderType(0x0302); bind.Header.Type != want {
				t.Errorf("bind type %#x, want %#x (NFNL_SUBSYS_QUEUE, NFQNL_MSG_CONFIG)", bind.Header.Type, want)
			}
			if want := netlink.Request | netlink.Acknowledge; bind.Header.Flags != want {
				t.Errorf("bind flags %v, want %v", bind.Header.Flags, want)
			}
			if diff := cmp.Diff(tc.want, bind.Data); diff != "" {
				t.Errorf("bind data (-want +got):\n%s", diff)
			}
		})
	}

	unbind, err := configMessage(0x1234, false, unbindAttrs)
	if err != nil {
		t.Fatal(err)
	}
	if unbind.Header.Flags != netlink.Request {
		t.Errorf("unbind flags %v, want request only", unbind.Header.Flags)
	}
	if diff := cmp.Diff([]byte{0, 0, 0x12, 0x34, 8, 0, 1, 0, 2, 0, 0, 0}, unbind.Data); diff != "" {
		t.Errorf("unbind data (-want +got):\n%s", diff)
	}
}

func TestVerdictMessage(t *testing.T) {
	tests := []struct {
		name  string
		id    uint32
		v     Verdict
		batch bool
		typ   netlink.HeaderType
		want  []byte
	}{
		{"accept", 42, Accept, false, 0x0301, []byte{0, 0, 0, 5, 12, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 42}},
		{"drop", 0x01020304, Drop, false, 0x0301, []byte{0, 0, 0, 5, 12, 0, 2, 0, 0, 0, 0, 0, 1, 2, 3, 4}},
		{"batch accept", 7, Accept, true, 0x0303, []byte{0, 0, 0, 5, 12, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := verdictMessage(5, tc.id, tc.v, tc.batch)
			want := netlink.Header{Type: tc.typ, Flags: netlink.Request, Sequence: tc.id}
			if m.Header != want {
				t.Errorf("header %+v, want %+v", m.Header, want)
			}
			if diff := cmp.Diff(tc.want, m.Data); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
			// The same bytes as the attribute encoder writes them.
			ae := netlink.NewAttributeEncoder()
			hdr := make([]byte, 8)
			binary.BigEndian.PutUint32(hdr, uint32(tc.v))
			binary.BigEndian.PutUint32(hdr[4:], tc.id)
			ae.Bytes(attrVerdictHdr, hdr)
			b, err := ae.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(b, m.Data[4:]); diff != "" {
				t.Errorf("attributes differ from the encoder's (-encoder +got):\n%s", diff)
			}
		})
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Accept: "accept", Drop: "drop", 3: "verdict 3"} {
		if got := v.String(); got != want {
			t.Errorf("Verdict(%d).String() = %q, want %q", uint32(v), got, want)
		}
	}
}

func FuzzParsePacket(f *testing.F) {
	f.Add(append(append([]byte(nil), golden...), dnsAnswer4...))
	f.Add(packetBody(f, unix.NFPROTO_IPV6, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(attrPacketHdr, packetHdr(3, 0x86dd, unix.NF_INET_FORWARD))
		ae.Bytes(attrTimestamp, timestamp(1700000000, 123456))
		ae.Uint32(attrCapLen, 1500)
		ae.Bytes(attrPayload, []byte{0x60})
	}))
	f.Add([]byte{10, 0, 0, 5, 8, 0, attrIfIndexIn, 0x40, 0, 0, 0, 1}) // NLA_F_NET_BYTEORDER set
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parsePacket(body, time.Unix(1, 0))
		if err != nil {
			return
		}
		if p.Family != body[0] {
			t.Errorf("family %d, want the first byte %d", p.Family, body[0])
		}
		if len(p.Payload) > len(body) {
			t.Errorf("payload of %d bytes from a message of %d", len(p.Payload), len(body))
		}
		if !p.KernelTime && !p.Time.Equal(time.Unix(1, 0)) {
			t.Errorf("time %v without a kernel timestamp, want the receive time", p.Time)
		}
		_ = p.Truncated()
	})
}
