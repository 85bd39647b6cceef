package nflog

import (
	"encoding/binary"
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

// packetBody builds the body of an NFULNL_MSG_PACKET message: the nfgenmsg
// header for family and group 77, then the attributes attrs encodes.
func packetBody(t testing.TB, family uint8, attrs func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	attrs(ae)
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{family, 0, 0, 77}, b...)
}

// timestamp encodes struct nfulnl_msg_packet_timestamp.
func timestamp(sec, usec uint64) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, sec)
	binary.BigEndian.PutUint64(b[8:], usec)
	return b
}

func TestParsePacket(t *testing.T) {
	recv := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	payload := ip4(17, ctr4, db4, nil, ports(40001, 5432))
	tests := []struct {
		name  string
		body  []byte
		want  Packet
		error string // a part of the error, "" for none
	}{
		{
			name: "forwarded ipv4 with everything",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPacketHdr, []byte{0x08, 0x00, unix.NF_INET_FORWARD, 0})
				ae.Uint32(attrMark, 0x2a)
				ae.Uint32(attrIfIndexIn|nlaNetByteOrder, 5)
				ae.Uint32(attrIfIndexOut, 7)
				ae.Uint32(attrPhysIn, 9)
				ae.Uint32(attrPhysOut|nlaNetByteOrder, 10)
				ae.Bytes(8, []byte{0, 6, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0}) // NFULA_HWADDR, ignored
				ae.Bytes(attrTimestamp, timestamp(1700000000, 123456))
				ae.Bytes(attrPayload, payload)
				ae.String(attrPrefix, "df test ") // adds the kernel's NUL
				ae.Uint16(15, 1)                  // NFULA_HWTYPE, ignored
				ae.Uint32(99, 1)                  // unknown, ignored
			}),
			want: Packet{
				Time:       time.Unix(1700000000, 123456000),
				Prefix:     "df test ",
				Family:     unix.NFPROTO_IPV4,
				HWProto:    0x0800,
				Hook:       unix.NF_INET_FORWARD,
				InDev:      5,
				OutDev:     7,
				PhysInDev:  9,
				PhysOutDev: 10,
				Mark:       0x2a,
				Payload:    payload,
			},
		},
		{
			// NFULA_CT as ctnetlink writes a DNAT'ed connection: the
			// original tuple (to the published port 8080) and the reply
			// tuple (from the container's port 80), and its status.
			name: "forwarded with its connection",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPacketHdr, []byte{0x08, 0x00, unix.NF_INET_FORWARD, 0})
				ae.Nested(attrCT, func(ct *netlink.AttributeEncoder) error {
					tuple := func(src, dst uint16) func(*netlink.AttributeEncoder) error {
						return func(tu *netlink.AttributeEncoder) error {
							tu.Nested(1, func(ip *netlink.AttributeEncoder) error { // CTA_TUPLE_IP
								ip.Bytes(1, []byte{198, 51, 100, 7}) // CTA_IP_V4_SRC
								ip.Bytes(2, []byte{203, 0, 113, 254})
								return nil
							})
							tu.Nested(ctaTupleProto, func(pr *netlink.AttributeEncoder) error {
								pr.Uint8(1, 6)    // CTA_PROTO_NUM
								pr.Uint16(2, src) // CTA_PROTO_SRC_PORT
								pr.Uint16(ctaProtoDstPort, dst)
								return nil
							})
							return nil
						}
					}
					ct.Nested(ctaTupleOrig, tuple(40001, 8080))
					ct.Nested(2, tuple(80, 40001)) // CTA_TUPLE_REPLY
					ct.Uint32(3, 0x188)            // CTA_STATUS
					return nil
				})
				ae.Bytes(attrPayload, payload)
			}),
			want: Packet{Time: recv, Family: unix.NFPROTO_IPV4, HWProto: 0x0800, Hook: unix.NF_INET_FORWARD, Payload: payload, OrigDstPort: 8080},
		},
		{
			name: "output ipv6 without timestamp, indev or prefix",
			body: packetBody(t, unix.NFPROTO_IPV6, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPacketHdr|nlaNetByteOrder, []byte{0x86, 0xdd, unix.NF_INET_LOCAL_OUT, 0})
				ae.Uint32(attrIfIndexOut|nlaNetByteOrder, 3)
				ae.Bytes(attrPayload, []byte{0x60, 0, 0, 0})
			}),
			want: Packet{
				Time:    recv,
				Family:  unix.NFPROTO_IPV6,
				HWProto: 0x86dd,
				Hook:    unix.NF_INET_LOCAL_OUT,
				OutDev:  3,
				Payload: []byte{0x60, 0, 0, 0},
			},
		},
		{
			name: "prefix without a NUL, and one cut at an inner NUL",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPrefix, []byte("abc\x00junk\x00"))
			}),
			want: Packet{Time: recv, Family: unix.NFPROTO_IPV4, Prefix: "abc"},
		},
		{
			name: "prefix without any NUL",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPrefix, []byte("no nul"))
			}),
			want: Packet{Time: recv, Family: unix.NFPROTO_IPV4, Prefix: "no nul"},
		},
		{
			name: "timestamp microseconds are kept",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrTimestamp, timestamp(0, 999999))
			}),
			want: Packet{Time: time.Unix(0, 999999000), Family: unix.NFPROTO_IPV4},
		},
		{
			name:  "short nfgenmsg",
			body:  []byte{2, 0},
			error: "too short for its 4-byte nfgenmsg header",
		},
		{
			name: "short packet header",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrPacketHdr, []byte{0x08})
			}),
			error: "NFULA_PACKET_HDR has 1 bytes, want 4",
		},
		{
			name: "short timestamp",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Bytes(attrTimestamp, make([]byte, 8))
			}),
			error: "NFULA_TIMESTAMP has 8 bytes, want 16",
		},
		{
			name: "mark of the wrong size",
			body: packetBody(t, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
				ae.Uint16(attrMark, 1)
			}),
			error: "packet message attributes",
		},
		{
			name:  "attribute longer than the message",
			body:  []byte{2, 0, 0, 77, 0xff, 0, 9, 0, 1, 2, 3, 4},
			error: "packet message attributes",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePacket(tc.body, recv)
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("parsePacket error = %v, want one containing %q", err, tc.error)
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

// TestParsePacketDecode checks that a parsed packet's payload decodes.
func TestParsePacketDecode(t *testing.T) {
	body := packetBody(t, unix.NFPROTO_IPV6, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(attrPayload, ip6(17, ctr6, db6, ports(40012, 5432)))
	})
	p, err := parsePacket(body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(p.Family, p.Payload)
	if err != nil {
		t.Fatal(err)
	}
	want := Flow{Src: ctr6, Dst: db6, Proto: 17, SrcPort: 40012, DstPort: 5432}
	if f != want {
		t.Errorf("Decode = %+v, want %+v", f, want)
	}
}

func TestConfigMessages(t *testing.T) {
	bind, err := configMessage(77, true, bindAttrs(256))
	if err != nil {
		t.Fatal(err)
	}
	if want := netlink.HeaderType(0x0401); bind.Header.Type != want {
		t.Errorf("bind type %#x, want %#x", bind.Header.Type, want)
	}
	if want := netlink.Request | netlink.Acknowledge; bind.Header.Flags != want {
		t.Errorf("bind flags %v, want %v", bind.Header.Flags, want)
	}
	wantBind := []byte{
		0, 0, 0, 77, // nfgenmsg: AF_UNSPEC, version 0, res_id htons(77)
		5, 0, 1, 0, 1, 0, 0, 0, // NFULA_CFG_CMD: BIND, padded
		10, 0, 2, 0, 0, 0, 1, 0, 2, 0, 0, 0, // NFULA_CFG_MODE: range 256, COPY_PACKET
		8, 0, 5, 0, 0, 0, 0, 1, // NFULA_CFG_QTHRESH: 1
		8, 0, 4, 0, 0, 0, 0, 1, // NFULA_CFG_TIMEOUT: 1/100 s
	}
	if diff := cmp.Diff(wantBind, bind.Data); diff != "" {
		t.Errorf("bind data (-want +got):\n%s", diff)
	}

	unbind, err := configMessage(0x1234, false, unbindAttrs)
	if err != nil {
		t.Fatal(err)
	}
	if unbind.Header.Flags != netlink.Request {
		t.Errorf("unbind flags %v, want request only", unbind.Header.Flags)
	}
	wantUnbind := []byte{0, 0, 0x12, 0x34, 5, 0, 1, 0, 2, 0, 0, 0}
	if diff := cmp.Diff(wantUnbind, unbind.Data); diff != "" {
		t.Errorf("unbind data (-want +got):\n%s", diff)
	}
}

func FuzzParsePacket(f *testing.F) {
	f.Add(packetBody(f, unix.NFPROTO_IPV4, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(attrPacketHdr, []byte{0x08, 0x00, unix.NF_INET_FORWARD, 0})
		ae.Bytes(attrTimestamp, timestamp(1700000000, 123456))
		ae.String(attrPrefix, "df test ")
		ae.Bytes(attrPayload, capturedSYN)
	}))
	f.Add([]byte{10, 0, 0, 77, 8, 0, attrIfIndexIn, 0x40, 0, 0, 0, 1}) // NLA_F_NET_BYTEORDER set
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parsePacket(body, time.Unix(1, 0))
		if err != nil {
			return
		}
		if p.Family != body[0] {
			t.Errorf("family %d, want the first byte %d", p.Family, body[0])
		}
		_, _ = Decode(p.Family, p.Payload)
	})
}
