package nflog

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

var (
	ctr4 = netip.MustParseAddr("172.20.0.2")
	db4  = netip.MustParseAddr("192.168.100.50")
	ctr6 = netip.MustParseAddr("fd00:20::2")
	db6  = netip.MustParseAddr("fd00:100::50")
)

// ip4 builds an IPv4 packet with the given options and payload; the
// checksum is left 0, which Decode does not look at.
func ip4(proto uint8, src, dst netip.Addr, opts, payload []byte) []byte {
	hlen := 20 + len(opts)
	b := make([]byte, hlen, hlen+len(payload))
	b[0] = 0x40 | byte(hlen/4)
	binary.BigEndian.PutUint16(b[2:], uint16(hlen+len(payload)))
	binary.BigEndian.PutUint16(b[4:], 0x1234) // id
	b[6] = 0x40                               // DF
	b[8] = 64                                 // TTL
	b[9] = proto
	copy(b[12:], src.AsSlice())
	copy(b[16:], dst.AsSlice())
	copy(b[20:], opts)
	return append(b, payload...)
}

// ip6 builds an IPv6 packet whose first next header is nh.
func ip6(nh uint8, src, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, 40, 40+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = nh
	b[7] = 64
	copy(b[8:], src.AsSlice())
	copy(b[24:], dst.AsSlice())
	return append(b, payload...)
}

// ports returns the first 8 bytes of a TCP, UDP or SCTP header.
func ports(src, dst uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b, src)
	binary.BigEndian.PutUint16(b[2:], dst)
	return b
}

// tcpSYN is a TCP SYN without options: ports, sequence, flags, window.
func tcpSYN(src, dst uint16) []byte {
	b := make([]byte, 20)
	copy(b, ports(src, dst))
	binary.BigEndian.PutUint32(b[4:], 0xdeadbeef)
	b[12] = 5 << 4
	b[13] = 0x02 // SYN
	binary.BigEndian.PutUint16(b[14:], 64240)
	return b
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// capturedSYN is an IPv4 TCP SYN as the kernel logged it: 172.20.0.2:45678 to
// 192.168.100.50:5432 with MSS, SACK, timestamp and window scale options.
var capturedSYN = mustHex("45000034abcd40003f06" + "0000" + "ac140002c0a86432" +
	"b26e1538" + "a1b2c3d4" + "00000000" + "8002faf0" + "0000" + "0000" +
	"020405b40402080a0001e2400000000001030307")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// decodeCases are the table of TestDecode and the seeds of FuzzDecode.
var decodeCases = []struct {
	name      string
	family    uint8
	payload   []byte
	want      Flow
	truncated bool // want an error wrapping ErrTruncated
	bad       bool // want another error
}{
	{
		name:    "ipv4 tcp captured",
		family:  unix.NFPROTO_IPV4,
		payload: capturedSYN,
		want:    Flow{Src: ctr4, Dst: db4, Proto: 6, SrcPort: 45678, DstPort: 5432},
	},
	{
		name:    "ipv4 tcp",
		family:  unix.NFPROTO_IPV4,
		payload: ip4(6, ctr4, db4, nil, tcpSYN(40001, 5432)),
		want:    Flow{Src: ctr4, Dst: db4, Proto: 6, SrcPort: 40001, DstPort: 5432},
	},
	{
		name:    "ipv4 udp",
		family:  unix.NFPROTO_IPV4,
		payload: ip4(17, ctr4, db4, nil, cat(ports(40002, 53), []byte("ping"))),
		want:    Flow{Src: ctr4, Dst: db4, Proto: 17, SrcPort: 40002, DstPort: 53},
	},
	{
		name:    "ipv4 icmp echo request",
		family:  unix.NFPROTO_IPV4,
		payload: ip4(1, ctr4, db4, nil, []byte{8, 0, 0xf7, 0xff, 0, 1, 0, 1}),
		want:    Flow{Src: ctr4, Dst: db4, Proto: 1, ICMPType: 8},
	},
	{
		name:    "ipv4 icmp port unreachable",
		family:  unix.NFPROTO_IPV4,
		payload: ip4(1, db4, ctr4, nil, []byte{3, 3, 0, 0, 0, 0, 0, 0}),
		want:    Flow{Src: db4, Dst: ctr4, Proto: 1, ICMPType: 3, ICMPCode: 3},
	},
	{
		name:    "ipv4 sctp",
		family:  unix.NFPROTO_IPV4,
		payload: ip4(132, ctr4, db4, nil, cat(ports(5000, 3868), make([]byte, 4))),
		want:    Flow{Src: ctr4, Dst: db4, Proto: 132, SrcPort: 5000, DstPort: 3868},
	},
	{
		name:    "ipv4 udplite",
		family:  unix.NFPROTO_IPV4,
		payload: ip4(136, ctr4, db4, nil, ports(1111, 2222)),
		want:    Flow{Src: ctr4, Dst: db4, Proto: 136, SrcPort: 1111, DstPort: 2222},
	},
	{
		name:    "ipv4 gre has no ports",
		family:  unix.NFPROTO_IPV4,
		payload: ip4(47, ctr4, db4, nil, []byte{0, 0, 8, 0}),
		want:    Flow{Src: ctr4, Dst: db4, Proto: 47},
	},
	{
		name:    "ipv4 with options",
		family:  unix.NFPROTO_IPV4,
		payload: ip4(17, ctr4, db4, []byte{0x94, 0x04, 0, 0}, ports(40003, 5432)), // router alert
		want:    Flow{Src: ctr4, Dst: db4, Proto: 17, SrcPort: 40003, DstPort: 5432},
	},
	{
		name:   "ipv4 later fragment has no ports",
		family: unix.NFPROTO_IPV4,
		payload: func() []byte {
			b := ip4(17, ctr4, db4, nil, ports(40004, 5432))
			binary.BigEndian.PutUint16(b[6:], 185) // offset 1480, no flags
			return b
		}(),
		want: Flow{Src: ctr4, Dst: db4, Proto: 17},
	},
	{
		name:    "ipv4 first fragment has ports",
		family:  unix.NFPROTO_IPV4,
		payload: func() []byte { b := ip4(17, ctr4, db4, nil, ports(40005, 5432)); b[6] = 0x20; return b }(), // MF
		want:    Flow{Src: ctr4, Dst: db4, Proto: 17, SrcPort: 40005, DstPort: 5432},
	},
	{
		name:    "ipv6 tcp",
		family:  unix.NFPROTO_IPV6,
		payload: ip6(6, ctr6, db6, tcpSYN(40011, 5432)),
		want:    Flow{Src: ctr6, Dst: db6, Proto: 6, SrcPort: 40011, DstPort: 5432},
	},
	{
		name:    "ipv6 udp",
		family:  unix.NFPROTO_IPV6,
		payload: ip6(17, ctr6, db6, cat(ports(40012, 5432), []byte("ping"))),
		want:    Flow{Src: ctr6, Dst: db6, Proto: 17, SrcPort: 40012, DstPort: 5432},
	},
	{
		name:    "ipv6 icmpv6 echo request",
		family:  unix.NFPROTO_IPV6,
		payload: ip6(58, ctr6, db6, []byte{128, 0, 0x12, 0x34, 0, 1, 0, 1}),
		want:    Flow{Src: ctr6, Dst: db6, Proto: 58, ICMPType: 128},
	},
	{
		name:    "ipv6 icmpv6 admin prohibited",
		family:  unix.NFPROTO_IPV6,
		payload: ip6(58, db6, ctr6, []byte{1, 1, 0, 0, 0, 0, 0, 0}),
		want:    Flow{Src: db6, Dst: ctr6, Proto: 58, ICMPType: 1, ICMPCode: 1},
	},
	{
		name:   "ipv6 hop-by-hop then udp",
		family: unix.NFPROTO_IPV6,
		// Hop-by-hop header: next header UDP, length 0 (8 bytes), router
		// alert option and PadN.
		payload: ip6(0, ctr6, db6, cat([]byte{17, 0, 5, 2, 0, 0, 1, 0}, ports(40013, 5432))),
		want:    Flow{Src: ctr6, Dst: db6, Proto: 17, SrcPort: 40013, DstPort: 5432},
	},
	{
		name:   "ipv6 hop-by-hop, 16-byte destination options, then tcp",
		family: unix.NFPROTO_IPV6,
		payload: ip6(0, ctr6, db6, cat(
			[]byte{60, 0, 1, 4, 0, 0, 0, 0},
			[]byte{6, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			tcpSYN(40014, 5432))),
		want: Flow{Src: ctr6, Dst: db6, Proto: 6, SrcPort: 40014, DstPort: 5432},
	},
	{
		name:    "ipv6 first fragment has ports",
		family:  unix.NFPROTO_IPV6,
		payload: ip6(44, ctr6, db6, cat([]byte{17, 0, 0, 1, 0, 0, 0, 7}, ports(40015, 5432))), // offset 0, M
		want:    Flow{Src: ctr6, Dst: db6, Proto: 17, SrcPort: 40015, DstPort: 5432},
	},
	{
		name:    "ipv6 later fragment has no ports",
		family:  unix.NFPROTO_IPV6,
		payload: ip6(44, ctr6, db6, cat([]byte{17, 0, 0x05, 0xc8, 0, 0, 0, 7}, ports(1, 2))), // offset 185*8
		want:    Flow{Src: ctr6, Dst: db6, Proto: 17},
	},
	{
		name:    "ipv6 authentication header then tcp",
		family:  unix.NFPROTO_IPV6,
		payload: ip6(51, ctr6, db6, cat([]byte{6, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, make([]byte, 12), tcpSYN(40016, 5432))),
		want:    Flow{Src: ctr6, Dst: db6, Proto: 6, SrcPort: 40016, DstPort: 5432},
	},
	{
		name:    "ipv6 esp stops",
		family:  unix.NFPROTO_IPV6,
		payload: ip6(50, ctr6, db6, []byte{0, 0, 1, 0, 0, 0, 0, 1}),
		want:    Flow{Src: ctr6, Dst: db6, Proto: 50},
	},
	{
		name:    "ipv6 no next header",
		family:  unix.NFPROTO_IPV6,
		payload: ip6(59, ctr6, db6, nil),
		want:    Flow{Src: ctr6, Dst: db6, Proto: 59},
	},
	{
		name:      "ipv4 empty",
		family:    unix.NFPROTO_IPV4,
		payload:   nil,
		truncated: true,
	},
	{
		name:      "ipv4 cut in the header",
		family:    unix.NFPROTO_IPV4,
		payload:   capturedSYN[:16],
		want:      Flow{Src: ctr4, Proto: 6},
		truncated: true,
	},
	{
		name:      "ipv4 cut after the header",
		family:    unix.NFPROTO_IPV4,
		payload:   capturedSYN[:20],
		want:      Flow{Src: ctr4, Dst: db4, Proto: 6},
		truncated: true,
	},
	{
		name:      "ipv4 cut in the ports",
		family:    unix.NFPROTO_IPV4,
		payload:   capturedSYN[:23],
		want:      Flow{Src: ctr4, Dst: db4, Proto: 6},
		truncated: true,
	},
	{
		name:      "ipv4 cut in the options",
		family:    unix.NFPROTO_IPV4,
		payload:   ip4(17, ctr4, db4, make([]byte, 8), nil)[:24],
		want:      Flow{Src: ctr4, Dst: db4, Proto: 17},
		truncated: true,
	},
	{
		name:   "ipv4 total length ends before the ports",
		family: unix.NFPROTO_IPV4,
		payload: func() []byte {
			b := ip4(17, ctr4, db4, nil, ports(1, 2))
			binary.BigEndian.PutUint16(b[2:], 22) // padding after 2 bytes of UDP
			return b
		}(),
		want:      Flow{Src: ctr4, Dst: db4, Proto: 17},
		truncated: true,
	},
	{
		name:      "ipv4 icmp cut",
		family:    unix.NFPROTO_IPV4,
		payload:   ip4(1, ctr4, db4, nil, []byte{8}),
		want:      Flow{Src: ctr4, Dst: db4, Proto: 1},
		truncated: true,
	},
	{
		name:      "ipv6 cut in the header",
		family:    unix.NFPROTO_IPV6,
		payload:   ip6(6, ctr6, db6, nil)[:30],
		want:      Flow{Src: ctr6, Proto: 6},
		truncated: true,
	},
	{
		name:      "ipv6 cut before the addresses",
		family:    unix.NFPROTO_IPV6,
		payload:   ip6(6, ctr6, db6, nil)[:4],
		truncated: true,
	},
	{
		name:      "ipv6 cut in the ports",
		family:    unix.NFPROTO_IPV6,
		payload:   ip6(6, ctr6, db6, tcpSYN(1, 2))[:42],
		want:      Flow{Src: ctr6, Dst: db6, Proto: 6},
		truncated: true,
	},
	{
		name:      "ipv6 cut in hop-by-hop",
		family:    unix.NFPROTO_IPV6,
		payload:   ip6(0, ctr6, db6, []byte{17, 0, 5, 2}),
		want:      Flow{Src: ctr6, Dst: db6, Proto: 0},
		truncated: true,
	},
	{
		name:      "ipv6 hop-by-hop longer than the payload",
		family:    unix.NFPROTO_IPV6,
		payload:   ip6(0, ctr6, db6, []byte{17, 1, 5, 2, 0, 0, 1, 0, 0, 0}),
		want:      Flow{Src: ctr6, Dst: db6, Proto: 0},
		truncated: true,
	},
	{
		name:      "ipv6 cut after a fragment header",
		family:    unix.NFPROTO_IPV6,
		payload:   ip6(44, ctr6, db6, []byte{6, 0, 0, 1, 0, 0, 0, 7}),
		want:      Flow{Src: ctr6, Dst: db6, Proto: 6},
		truncated: true,
	},
	{
		name:      "ipv6 icmpv6 cut",
		family:    unix.NFPROTO_IPV6,
		payload:   ip6(58, ctr6, db6, []byte{128}),
		want:      Flow{Src: ctr6, Dst: db6, Proto: 58},
		truncated: true,
	},
	{
		name:    "ipv6 header in an ipv4 packet",
		family:  unix.NFPROTO_IPV4,
		payload: ip6(6, ctr6, db6, tcpSYN(1, 2)),
		bad:     true,
	},
	{
		name:    "ipv4 header in an ipv6 packet",
		family:  unix.NFPROTO_IPV6,
		payload: capturedSYN,
		bad:     true,
	},
	{
		name:    "ipv4 header length below 20",
		family:  unix.NFPROTO_IPV4,
		payload: func() []byte { b := ip4(6, ctr4, db4, nil, tcpSYN(1, 2)); b[0] = 0x44; return b }(),
		want:    Flow{Src: ctr4, Dst: db4, Proto: 6},
		bad:     true,
	},
	{
		name:    "bridge family",
		family:  unix.NFPROTO_BRIDGE,
		payload: capturedSYN,
		bad:     true,
	},
	{
		name:    "garbage",
		family:  unix.NFPROTO_IPV4,
		payload: []byte{0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef},
		bad:     true,
	},
}

func TestDecode(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.family, tc.payload)
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Decode flow (-want +got):\n%s", diff)
			}
			switch {
			case tc.truncated:
				if !errors.Is(err, ErrTruncated) {
					t.Errorf("Decode error = %v, want one wrapping ErrTruncated", err)
				}
			case tc.bad:
				if err == nil || errors.Is(err, ErrTruncated) {
					t.Errorf("Decode error = %v, want an error other than ErrTruncated", err)
				}
			case err != nil:
				t.Errorf("Decode error = %v, want nil", err)
			}
		})
	}
}

// TestDecodeErrorText checks that the errors say what is wrong and what to do.
func TestDecodeErrorText(t *testing.T) {
	_, err := Decode(unix.NFPROTO_IPV4, capturedSYN[:22])
	want := "nflog: packet truncated: the TCP header needs 4 bytes at offset 20 but the payload has 22; raise the copy range"
	if err == nil || err.Error() != want {
		t.Errorf("truncated TCP: error %q, want %q", err, want)
	}
	_, err = Decode(unix.NFPROTO_BRIDGE, capturedSYN)
	if err == nil || !strings.Contains(err.Error(), "family 7") {
		t.Errorf("bridge family: error %v, want one naming family 7", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add(tc.family, tc.payload)
	}
	f.Fuzz(func(t *testing.T, family uint8, payload []byte) {
		got, err := Decode(family, payload)
		if err != nil {
			return
		}
		switch family {
		case unix.NFPROTO_IPV4:
			if !got.Src.Is4() || !got.Dst.Is4() {
				t.Errorf("Decode(IPv4) = %+v without error, want IPv4 addresses", got)
			}
		case unix.NFPROTO_IPV6:
			if !got.Src.Is6() || !got.Dst.Is6() {
				t.Errorf("Decode(IPv6) = %+v without error, want IPv6 addresses", got)
			}
		default:
			t.Errorf("Decode(family %d) = %+v without error, want an error", family, got)
		}
		if got.SrcPort != 0 && got.ICMPType != 0 {
			t.Errorf("Decode = %+v: both ports and ICMP type", got)
		}
	})
}
