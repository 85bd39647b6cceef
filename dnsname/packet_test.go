package dnsname

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// ipv4 wraps l4, a UDP or TCP header and payload, in an IPv4 header.
func ipv4(proto byte, src, dst string, l4 []byte) []byte {
	h := make([]byte, 20, 20+len(l4))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
	binary.BigEndian.PutUint16(h[6:], 0x4000) // DF
	h[8], h[9] = 64, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return checksummed(append(h, l4...))
}

// ipv6 wraps l4 in an IPv6 header, after the extension headers ext (each
// a whole header whose first byte is replaced by the next header's type).
func ipv6(proto byte, src, dst string, l4 []byte, ext ...[]byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	next := proto
	var exts []byte
	for i := len(ext) - 1; i >= 0; i-- {
		e := append([]byte(nil), ext[i]...)
		e[0] = next
		exts = append(e, exts...)
		next = []byte{protoHopByHop, protoDestOpts}[i%2]
	}
	if len(ext) > 0 {
		next = protoHopByHop
	}
	binary.BigEndian.PutUint16(h[4:], uint16(len(exts)+len(l4)))
	h[6], h[7] = next, 64
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return checksummed(append(append(h, exts...), l4...))
}

// checksummed sets the UDP or TCP checksum of pkt, an IPv4 or IPv6 packet
// laid out as ParsePacket reads it, and returns pkt. Whatever pkt holds,
// it does not panic: a packet it cannot find the checksum of is returned
// as it is.
func checksummed(pkt []byte) []byte {
	var (
		src, dst netip.Addr
		proto    byte
		l4       []byte
	)
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		ihl, total := int(pkt[0]&0x0f)*4, int(binary.BigEndian.Uint16(pkt[2:4]))
		if ihl < 20 || total < ihl || total > len(pkt) {
			return pkt
		}
		src, dst = netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		proto, l4 = pkt[9], pkt[ihl:total]
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		plen := int(binary.BigEndian.Uint16(pkt[4:6]))
		if 40+plen > len(pkt) {
			return pkt
		}
		src, dst = netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
		proto, l4 = pkt[6], pkt[40:40+plen]
		for proto == protoHopByHop || proto == protoRouting || proto == protoDestOpts {
			if len(l4) < 8 || 8+int(l4[1])*8 > len(l4) {
				return pkt
			}
			proto, l4 = l4[0], l4[8+int(l4[1])*8:]
		}
	default:
		return pkt
	}
	at := 16
	switch {
	case proto == protoUDP && len(l4) >= 8:
		at = 6
		if n := int(binary.BigEndian.Uint16(l4[4:6])); n >= 8 && n <= len(l4) {
			l4 = l4[:n]
		}
	case proto == protoTCP && len(l4) >= 20:
	default:
		return pkt
	}
	l4[at], l4[at+1] = 0, 0
	var sum uint32
	add := func(b []byte) {
		for ; len(b) >= 2; b = b[2:] {
			sum += uint32(b[0])<<8 | uint32(b[1])
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	sum += uint32(proto) + uint32(len(l4)>>16) + uint32(len(l4)&0xffff)
	add(l4)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 && proto == protoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(l4[at:], c)
	return pkt
}

func udp(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

func tcp(sport, dport uint16, payload []byte) []byte {
	return tcpSeg(sport, dport, 1000, TCPACK|0x08, payload) // PSH ACK
}

// tcpSeg returns a TCP header with seq and flags, and payload.
func tcpSeg(sport, dport uint16, seq uint32, flags uint8, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], seq)
	h[12] = 5 << 4
	h[13] = flags
	return append(h, payload...)
}

// framed prefixes each message with its length, as DNS over TCP does.
func framed(msgs ...[]byte) []byte {
	var out []byte
	for _, m := range msgs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(m)))
		out = append(out, m...)
	}
	return out
}

func TestParsePacket(t *testing.T) {
	m := newMatcher(t, map[string][]string{"github": {"github.com", "*.github.com"}})
	a1 := pack(t, answer(t, "github.com.", dns.TypeA, "github.com. 60 IN A 140.82.121.4"))
	a2 := pack(t, answer(t, "api.github.com.", dns.TypeAAAA, "api.github.com. 60 IN AAAA 2606:50c0:8000::154"))
	opts := make([]byte, 8) // an empty hop-by-hop or destination options header
	for _, tc := range []struct {
		name     string
		pkt      []byte
		src, dst string
		tcp      bool
		msgs     [][]byte
		seq      uint32
		flags    uint8
		data     []byte
		err      error // ErrPacket unless set to ErrChecksum
		bad      bool
	}{
		{name: "IPv4 UDP", pkt: ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1)), src: "192.0.2.53:53", dst: "172.20.0.2:40000", msgs: [][]byte{a1}},
		{name: "IPv4 with options", pkt: func() []byte {
			p := ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1))
			p = append(p[:20:20], append(make([]byte, 4), p[20:]...)...)
			p[0] = 0x46
			binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
			return p
		}(), src: "192.0.2.53:53", dst: "172.20.0.2:40000", msgs: [][]byte{a1}},
		{name: "IPv4 with padding after the datagram", pkt: append(ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1)), 0, 0, 0), src: "192.0.2.53:53", dst: "172.20.0.2:40000", msgs: [][]byte{a1}},
		{name: "IPv6 UDP", pkt: ipv6(protoUDP, "2001:db8::53", "fd00:20::2", udp(53, 40000, a2)), src: "[2001:db8::53]:53", dst: "[fd00:20::2]:40000", msgs: [][]byte{a2}},
		{name: "IPv6 UDP after two extension headers", pkt: ipv6(protoUDP, "2001:db8::53", "fd00:20::2", udp(53, 40000, a2), opts, opts), src: "[2001:db8::53]:53", dst: "[fd00:20::2]:40000", msgs: [][]byte{a2}},
		{name: "IPv4 TCP", pkt: ipv4(protoTCP, "192.0.2.53", "172.20.0.2", tcp(53, 40000, framed(a1))), src: "192.0.2.53:53", dst: "172.20.0.2:40000", tcp: true, data: framed(a1)},
		{name: "IPv6 TCP, two messages", pkt: ipv6(protoTCP, "2001:db8::53", "fd00:20::2", tcp(53, 40000, framed(a1, a2))), src: "[2001:db8::53]:53", dst: "[fd00:20::2]:40000", tcp: true, data: framed(a1, a2)},
		{name: "TCP, a SYN-ACK", pkt: ipv4(protoTCP, "192.0.2.53", "172.20.0.2", tcpSeg(53, 40000, 77, TCPSYN|TCPACK, nil)), src: "192.0.2.53:53", dst: "172.20.0.2:40000", tcp: true, seq: 77, flags: TCPSYN | TCPACK},
		{name: "TCP, a FIN with data", pkt: ipv4(protoTCP, "192.0.2.53", "172.20.0.2", tcpSeg(53, 40000, 1<<31, TCPFIN|TCPACK, framed(a1)[:7])), src: "192.0.2.53:53", dst: "172.20.0.2:40000", tcp: true, seq: 1 << 31, flags: TCPFIN | TCPACK, data: framed(a1)[:7]},
		{name: "TCP, odd length", pkt: ipv4(protoTCP, "192.0.2.53", "172.20.0.2", tcp(53, 40000, []byte{1, 2, 3})), src: "192.0.2.53:53", dst: "172.20.0.2:40000", tcp: true, data: []byte{1, 2, 3}},
		{name: "IPv4 UDP without checksum", pkt: func() []byte {
			p := ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1))
			p[26], p[27] = 0, 0
			return p
		}(), src: "192.0.2.53:53", dst: "172.20.0.2:40000", msgs: [][]byte{a1}},
		{name: "IPv4 UDP, wrong checksum", pkt: func() []byte {
			p := ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1))
			p[len(p)-1] ^= 1
			return p
		}(), err: ErrChecksum},
		{name: "IPv6 UDP without checksum", pkt: func() []byte {
			p := ipv6(protoUDP, "2001:db8::53", "fd00:20::2", udp(53, 40000, a2))
			p[46], p[47] = 0, 0
			return p
		}(), err: ErrChecksum},
		{name: "IPv6 TCP, wrong checksum", pkt: func() []byte {
			p := ipv6(protoTCP, "2001:db8::53", "fd00:20::2", tcp(53, 40000, framed(a2)))
			p[50] ^= 0x80 // a sequence number bit
			return p
		}(), err: ErrChecksum},
		{name: "IPv4 TCP, wrong address", pkt: func() []byte {
			p := ipv4(protoTCP, "192.0.2.53", "172.20.0.2", tcp(53, 40000, framed(a1)))
			p[19] = 3 // the checksum covers the addresses
			return p
		}(), err: ErrChecksum},
		{name: "UDP without payload", pkt: ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, nil)), bad: true},
		{name: "UDP length beyond the packet", pkt: func() []byte {
			p := ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1))
			binary.BigEndian.PutUint16(p[24:], uint16(len(a1)+9))
			return p
		}(), bad: true},
		{name: "IPv4 total length beyond the packet", pkt: ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1))[:50], bad: true},
		{name: "IPv4 fragment", pkt: func() []byte {
			p := ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1))
			binary.BigEndian.PutUint16(p[6:], 0x2000) // MF
			return p
		}(), bad: true},
		{name: "IPv4 later fragment", pkt: func() []byte {
			p := ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1))
			binary.BigEndian.PutUint16(p[6:], 0x0010)
			return p
		}(), bad: true},
		{name: "IPv6 fragment", pkt: func() []byte {
			p := ipv6(protoUDP, "2001:db8::53", "fd00:20::2", append(make([]byte, 8), udp(53, 40000, a2)...))
			p[6] = protoFragment
			p[40] = protoUDP
			return p
		}(), bad: true},
		{name: "ICMP", pkt: ipv4(1, "192.0.2.53", "172.20.0.2", make([]byte, 8)), bad: true},
		{name: "IP version 5", pkt: []byte{0x50, 0, 0, 0}, bad: true},
		{name: "empty", pkt: nil, bad: true},
		{name: "IPv6 cut short", pkt: ipv6(protoUDP, "2001:db8::53", "fd00:20::2", udp(53, 40000, a2))[:60], bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePacket(tc.pkt)
			if tc.bad && tc.err == nil {
				tc.err = ErrPacket
			}
			if tc.err != nil {
				if !errors.Is(err, tc.err) || p != nil {
					t.Fatalf("ParsePacket = %+v, %v; want %v", p, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Src.String() != tc.src || p.Dst.String() != tc.dst || p.TCP != tc.tcp || p.Seq != tc.seq && tc.tcp && tc.seq != 0 || p.Flags&(TCPSYN|TCPFIN|TCPRST) != tc.flags&(TCPSYN|TCPFIN|TCPRST) || string(p.Data) != string(tc.data) {
				t.Errorf("ParsePacket = %s > %s tcp %v seq %d flags %#x data %d bytes; want %s > %s tcp %v seq %d flags %#x data %d bytes", p.Src, p.Dst, p.TCP, p.Seq, p.Flags, len(p.Data), tc.src, tc.dst, tc.tcp, tc.seq, tc.flags, len(tc.data))
			}
			if len(p.Msgs) != len(tc.msgs) {
				t.Fatalf("%d messages, want %d", len(p.Msgs), len(tc.msgs))
			}
			for i, msg := range p.Msgs {
				if string(msg) != string(tc.msgs[i]) {
					t.Errorf("message %d differs", i)
				}
				if l, err := Learn(msg, m, Bounds{Min: time.Minute}); err != nil || len(l.Addrs) != 1 {
					t.Errorf("Learn(message %d) = %+v, %v", i, l, err)
				}
			}
		})
	}
}
