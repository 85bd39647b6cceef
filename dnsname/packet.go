package dnsname

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ErrPacket is wrapped by the errors of ParsePacket: the packet is not a
// whole IPv4 or IPv6 packet carrying UDP or TCP with a payload, and
// teaches nothing.
var ErrPacket = errors.New("not a packet carrying DNS")

// IP protocol numbers and IPv6 extension headers that ParsePacket knows.
const (
	protoHopByHop = 0
	protoTCP      = 6
	protoUDP      = 17
	protoRouting  = 43
	protoFragment = 44
	protoDestOpts = 60
)

// Packet is the DNS content of an IP packet as NFQUEUE delivers it.
type Packet struct {
	// Src and Dst are the packet's addresses and ports: for an answer,
	// Src is the resolver and Dst the client.
	Src, Dst netip.AddrPort
	// TCP is set for a TCP segment, clear for a UDP datagram.
	TCP bool
	// Msgs holds the DNS message of a UDP datagram: its payload. It is
	// nil for a TCP segment, whose messages only its stream tells (DNS
	// over TCP, RFC 1035 4.2.2, puts a length before each message, and
	// a message may span segments, or a segment hold several).
	Msgs [][]byte
	// Seq, Flags and Data are a TCP segment's sequence number, flags
	// (TCPFIN, TCPSYN, TCPRST, TCPACK, ...) and payload, which may be
	// empty.
	Seq   uint32
	Flags uint8
	Data  []byte
}

// TCP flags of Packet.Flags.
const (
	TCPFIN = 0x01
	TCPSYN = 0x02
	TCPRST = 0x04
	TCPACK = 0x10
)

// ErrChecksum is wrapped by the error of ParsePacket for a UDP datagram or
// TCP segment whose checksum is wrong: its receiver drops it, so it must
// teach nothing either.
var ErrChecksum = errors.New("bad checksum")

// ParsePacket reads the DNS messages of pkt, a raw IPv4 or IPv6 packet
// (from its IP header on, as NFQUEUE delivers it) carrying a UDP datagram
// or a TCP segment. A fragment, a packet shorter than its headers say, or
// any other protocol is an error wrapping ErrPacket; so is a UDP datagram
// without payload (a TCP segment without payload is not: its flags start
// and end streams). A UDP or TCP checksum that does not add up is an error
// wrapping ErrChecksum (an IPv4 UDP datagram without checksum, 0, is
// taken as it is). NFQUEUE fills in the checksums that a sender left to
// its device unless the queue is bound to take GSO packets whole, which
// the learner's is not. The messages and data in Packet share pkt's
// memory. ParsePacket does not panic, whatever pkt holds.
func ParsePacket(pkt []byte) (*Packet, error) {
	if len(pkt) < 1 {
		return nil, fmt.Errorf("%w: empty", ErrPacket)
	}
	var (
		src, dst netip.Addr
		proto    byte
		payload  []byte
	)
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return nil, fmt.Errorf("%w: %d bytes, shorter than an IPv4 header", ErrPacket, len(pkt))
		}
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if ihl < 20 || total < ihl || total > len(pkt) {
			return nil, fmt.Errorf("%w: IPv4 header length %d, total length %d, in %d bytes", ErrPacket, ihl, total, len(pkt))
		}
		if frag := binary.BigEndian.Uint16(pkt[6:8]); frag&0x3fff != 0 {
			return nil, fmt.Errorf("%w: an IPv4 fragment", ErrPacket)
		}
		proto = pkt[9]
		src = netip.AddrFrom4([4]byte(pkt[12:16]))
		dst = netip.AddrFrom4([4]byte(pkt[16:20]))
		payload = pkt[ihl:total]
	case 6:
		if len(pkt) < 40 {
			return nil, fmt.Errorf("%w: %d bytes, shorter than an IPv6 header", ErrPacket, len(pkt))
		}
		plen := int(binary.BigEndian.Uint16(pkt[4:6]))
		if 40+plen > len(pkt) {
			return nil, fmt.Errorf("%w: IPv6 payload length %d in %d bytes", ErrPacket, plen, len(pkt))
		}
		src = netip.AddrFrom16([16]byte(pkt[8:24]))
		dst = netip.AddrFrom16([16]byte(pkt[24:40]))
		proto, payload = pkt[6], pkt[40:40+plen]
		// Skip the extension headers a DNS answer may carry; a fragment
		// is refused (the kernel reassembles before the queue when
		// conntrack runs, so one seen here is an exception).
		for {
			switch proto {
			case protoHopByHop, protoRouting, protoDestOpts:
				if len(payload) < 8 {
					return nil, fmt.Errorf("%w: IPv6 extension header cut short", ErrPacket)
				}
				n := 8 + int(payload[1])*8
				if n > len(payload) {
					return nil, fmt.Errorf("%w: IPv6 extension header cut short", ErrPacket)
				}
				proto, payload = payload[0], payload[n:]
				continue
			case protoFragment:
				return nil, fmt.Errorf("%w: an IPv6 fragment", ErrPacket)
			}
			break
		}
	default:
		return nil, fmt.Errorf("%w: IP version %d", ErrPacket, pkt[0]>>4)
	}
	p := &Packet{}
	switch proto {
	case protoUDP:
		if len(payload) < 8 {
			return nil, fmt.Errorf("%w: UDP header cut short", ErrPacket)
		}
		ulen := int(binary.BigEndian.Uint16(payload[4:6]))
		if ulen < 8 || ulen > len(payload) {
			return nil, fmt.Errorf("%w: UDP length %d in %d bytes", ErrPacket, ulen, len(payload))
		}
		p.Src, p.Dst = ports(src, dst, payload)
		if ulen == 8 {
			return nil, fmt.Errorf("%w: UDP datagram without payload", ErrPacket)
		}
		if sum := binary.BigEndian.Uint16(payload[6:8]); (sum != 0 || src.Is6()) && !checksumOK(src, dst, protoUDP, payload[:ulen]) {
			return nil, fmt.Errorf("%w: UDP datagram from %s to %s", ErrChecksum, p.Src, p.Dst)
		}
		p.Msgs = [][]byte{payload[8:ulen]}
	case protoTCP:
		if len(payload) < 20 {
			return nil, fmt.Errorf("%w: TCP header cut short", ErrPacket)
		}
		off := int(payload[12]>>4) * 4
		if off < 20 || off > len(payload) {
			return nil, fmt.Errorf("%w: TCP data offset %d in %d bytes", ErrPacket, off, len(payload))
		}
		p.Src, p.Dst = ports(src, dst, payload)
		if !checksumOK(src, dst, protoTCP, payload) {
			return nil, fmt.Errorf("%w: TCP segment from %s to %s", ErrChecksum, p.Src, p.Dst)
		}
		p.TCP = true
		p.Seq = binary.BigEndian.Uint32(payload[4:8])
		p.Flags = payload[13]
		p.Data = payload[off:]
	default:
		return nil, fmt.Errorf("%w: IP protocol %d", ErrPacket, proto)
	}
	return p, nil
}

// ports returns the source and destination of a UDP or TCP header,
// whose ports are its first four bytes.
func ports(src, dst netip.Addr, hdr []byte) (netip.AddrPort, netip.AddrPort) {
	return netip.AddrPortFrom(src, binary.BigEndian.Uint16(hdr[0:2])), netip.AddrPortFrom(dst, binary.BigEndian.Uint16(hdr[2:4]))
}

// checksumOK reports whether the UDP or TCP segment seg (header and
// payload) from src to dst adds up with its pseudo-header (RFC 768, RFC
// 793, RFC 8200 8.1).
func checksumOK(src, dst netip.Addr, proto byte, seg []byte) bool {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(b[0])<<8 | uint32(b[1])
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.AsSlice(), dst.AsSlice()
	add(s)
	add(d)
	sum += uint32(proto)
	sum += uint32(len(seg) >> 16)
	sum += uint32(len(seg) & 0xffff)
	add(seg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}
