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
	// Msgs are the DNS messages the packet carries whole: the payload of
	// a UDP datagram; each length-prefixed message of a TCP segment (DNS
	// over TCP, RFC 1035 4.2.2, may put several in one segment).
	Msgs [][]byte
	// Partial is set for a TCP segment whose payload ends with a piece of
	// a message that it does not hold whole (split over segments): that
	// piece is not in Msgs, and is not learned from. A segment that
	// starts inside a message cannot be told apart from one that starts
	// with one, without following the stream: its bytes are read as a
	// length and a message, which then most likely do not parse.
	Partial bool
}

// ParsePacket reads the DNS messages of pkt, a raw IPv4 or IPv6 packet
// (from its IP header on, as NFQUEUE delivers it) carrying a UDP datagram
// or a TCP segment. A fragment, a packet shorter than its headers say, or
// any other protocol is an error wrapping ErrPacket; so is a UDP datagram
// or TCP segment without payload. Checksums are not verified. The
// messages in Packet share pkt's memory. ParsePacket does not panic,
// whatever pkt holds.
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
		p.TCP = true
		data := payload[off:]
		if len(data) == 0 {
			return nil, fmt.Errorf("%w: TCP segment without payload", ErrPacket)
		}
		for len(data) >= 2 {
			n := int(binary.BigEndian.Uint16(data))
			if n == 0 || 2+n > len(data) {
				break
			}
			p.Msgs = append(p.Msgs, data[2:2+n])
			data = data[2+n:]
		}
		p.Partial = len(data) > 0
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
