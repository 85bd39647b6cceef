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
	return append(h, l4...)
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
	return append(append(h, exts...), l4...)
}

func udp(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint16(h[4:], uint16(8+len(payload)))
	return append(h, payload...)
}

func tcp(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	h[12] = 5 << 4
	h[13] = 0x18 // PSH ACK
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
		partial  bool
		err      bool
	}{
		{name: "IPv4 UDP", pkt: ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1)), src: "192.0.2.53:53", dst: "172.20.0.2:40000", msgs: [][]byte{a1}},
		{name: "IPv4 with options", pkt: func() []byte {
			p := ipv4(protoUDP, "192.0.2.53", "172.20.0.2", append(make([]byte, 4), udp(53, 40000, a1)...))
			p[0] = 0x46
			return p
		}(), src: "192.0.2.53:53", dst: "172.20.0.2:40000", msgs: [][]byte{a1}},
		{name: "IPv4 with padding after the datagram", pkt: append(ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1)), 0, 0, 0), src: "192.0.2.53:53", dst: "172.20.0.2:40000", msgs: [][]byte{a1}},
		{name: "IPv6 UDP", pkt: ipv6(protoUDP, "2001:db8::53", "fd00:20::2", udp(53, 40000, a2)), src: "[2001:db8::53]:53", dst: "[fd00:20::2]:40000", msgs: [][]byte{a2}},
		{name: "IPv6 UDP after two extension headers", pkt: ipv6(protoUDP, "2001:db8::53", "fd00:20::2", udp(53, 40000, a2), opts, opts), src: "[2001:db8::53]:53", dst: "[fd00:20::2]:40000", msgs: [][]byte{a2}},
		{name: "IPv4 TCP, one message", pkt: ipv4(protoTCP, "192.0.2.53", "172.20.0.2", tcp(53, 40000, framed(a1))), src: "192.0.2.53:53", dst: "172.20.0.2:40000", tcp: true, msgs: [][]byte{a1}},
		{name: "IPv6 TCP, two messages", pkt: ipv6(protoTCP, "2001:db8::53", "fd00:20::2", tcp(53, 40000, framed(a1, a2))), src: "[2001:db8::53]:53", dst: "[fd00:20::2]:40000", tcp: true, msgs: [][]byte{a1, a2}},
		{name: "TCP, a message and the start of another", pkt: ipv4(protoTCP, "192.0.2.53", "172.20.0.2", tcp(53, 40000, framed(a1, a2)[:len(a1)+2+10])), src: "192.0.2.53:53", dst: "172.20.0.2:40000", tcp: true, msgs: [][]byte{a1}, partial: true},
		{name: "TCP, the start of a message", pkt: ipv4(protoTCP, "192.0.2.53", "172.20.0.2", tcp(53, 40000, framed(a1)[:20])), src: "192.0.2.53:53", dst: "172.20.0.2:40000", tcp: true, partial: true},
		{name: "TCP, the length alone", pkt: ipv4(protoTCP, "192.0.2.53", "172.20.0.2", tcp(53, 40000, framed(a1)[:1])), src: "192.0.2.53:53", dst: "172.20.0.2:40000", tcp: true, partial: true},
		{name: "TCP without payload", pkt: ipv4(protoTCP, "192.0.2.53", "172.20.0.2", tcp(53, 40000, nil)), err: true},
		{name: "UDP without payload", pkt: ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, nil)), err: true},
		{name: "UDP length beyond the packet", pkt: func() []byte {
			p := ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1))
			binary.BigEndian.PutUint16(p[24:], uint16(len(a1)+9))
			return p
		}(), err: true},
		{name: "IPv4 total length beyond the packet", pkt: ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1))[:50], err: true},
		{name: "IPv4 fragment", pkt: func() []byte {
			p := ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1))
			binary.BigEndian.PutUint16(p[6:], 0x2000) // MF
			return p
		}(), err: true},
		{name: "IPv4 later fragment", pkt: func() []byte {
			p := ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, a1))
			binary.BigEndian.PutUint16(p[6:], 0x0010)
			return p
		}(), err: true},
		{name: "IPv6 fragment", pkt: func() []byte {
			p := ipv6(protoUDP, "2001:db8::53", "fd00:20::2", append(make([]byte, 8), udp(53, 40000, a2)...))
			p[6] = protoFragment
			p[40] = protoUDP
			return p
		}(), err: true},
		{name: "ICMP", pkt: ipv4(1, "192.0.2.53", "172.20.0.2", make([]byte, 8)), err: true},
		{name: "IP version 5", pkt: []byte{0x50, 0, 0, 0}, err: true},
		{name: "empty", pkt: nil, err: true},
		{name: "IPv6 cut short", pkt: ipv6(protoUDP, "2001:db8::53", "fd00:20::2", udp(53, 40000, a2))[:60], err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePacket(tc.pkt)
			if tc.err {
				if !errors.Is(err, ErrPacket) {
					t.Fatalf("ParsePacket = %+v, %v; want ErrPacket", p, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Src.String() != tc.src || p.Dst.String() != tc.dst || p.TCP != tc.tcp || p.Partial != tc.partial {
				t.Errorf("ParsePacket = %s > %s tcp %v partial %v; want %s > %s tcp %v partial %v", p.Src, p.Dst, p.TCP, p.Partial, tc.src, tc.dst, tc.tcp, tc.partial)
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
