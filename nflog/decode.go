package nflog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/dockerfence/dockerfence/ipproto"
	"golang.org/x/sys/unix"
)

// Flow is what Decode reads from a packet's headers.
type Flow struct {
	// Src and Dst are the packet's source and destination addresses.
	Src, Dst netip.Addr
	// Proto is the IANA number of the transport protocol: the IPv4
	// protocol field, or for IPv6 the next header after the extension
	// headers Decode can skip (hop-by-hop, routing, fragment, destination
	// options, AH, mobility, HIP, shim6).
	Proto uint8
	// SrcPort and DstPort are the ports of a TCP, UDP, SCTP or UDP-Lite
	// packet, 0 for other protocols and for fragments after the first.
	SrcPort, DstPort uint16
	// ICMPType and ICMPCode are the type and code of an ICMP packet (in
	// IPv4) or an ICMPv6 packet (in IPv6), 0 otherwise.
	ICMPType, ICMPCode uint8
}

// ErrTruncated is wrapped by the error of Decode when the payload ends
// before a header it needs; the Flow then holds what came before. A copy
// range that is too small, set by Open or by the rule's snaplen, is the
// usual cause.
var ErrTruncated = errors.New("nflog: packet truncated")

// IANA protocol numbers that Decode understands.
const (
	protoHopByHop = 0
	protoICMP     = ipproto.ICMP
	protoTCP      = ipproto.TCP
	protoUDP      = ipproto.UDP
	protoRouting  = 43
	protoFragment = 44
	protoAH       = 51
	protoICMPv6   = ipproto.ICMPv6
	protoDstOpts  = 60
	protoMobility = 135
	protoSCTP     = ipproto.SCTP
	protoUDPLite  = ipproto.UDPLite
	protoHIP      = 139
	protoShim6    = 140
)

// Decode parses the IPv4 (family unix.NFPROTO_IPV4) or IPv6
// (unix.NFPROTO_IPV6) header at the start of payload and the transport
// header after it, as Packet gives them. It does no I/O.
//
// A payload that ends too early returns what could be read and an error
// wrapping ErrTruncated. A fragment other than the first has no transport
// header: Decode returns its addresses and protocol, no ports, and a nil
// error. An IPv6 packet whose extension headers end in ESP or "no next
// header" reports that as its Proto.
func Decode(family uint8, payload []byte) (Flow, error) {
	switch family {
	case unix.NFPROTO_IPV4:
		return decode4(payload)
	case unix.NFPROTO_IPV6:
		return decode6(payload)
	}
	return Flow{}, fmt.Errorf("nflog: cannot decode a packet of family %d: only NFPROTO_IPV4 (%d) and NFPROTO_IPV6 (%d) are IP", family, unix.NFPROTO_IPV4, unix.NFPROTO_IPV6)
}

// truncated returns the error for a header of need bytes at offset off in
// a payload of have bytes.
func truncated(what string, off, need, have int) error {
	return fmt.Errorf("%w: the %s needs %d bytes at offset %d but the payload has %d; raise the copy range", ErrTruncated, what, need, off, have)
}

// decode4 decodes an IPv4 packet.
func decode4(b []byte) (Flow, error) {
	var f Flow
	if len(b) == 0 {
		return f, truncated("IPv4 header", 0, 20, 0)
	}
	if v := b[0] >> 4; v != 4 {
		return f, fmt.Errorf("nflog: not an IPv4 packet: the IP version is %d", v)
	}
	if len(b) >= 10 {
		f.Proto = b[9]
	}
	if len(b) >= 16 {
		f.Src = netip.AddrFrom4([4]byte(b[12:16]))
	}
	if len(b) < 20 {
		return f, truncated("IPv4 header", 0, 20, len(b))
	}
	f.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	hlen := int(b[0]&0x0f) * 4
	if hlen < 20 {
		return f, fmt.Errorf("nflog: malformed IPv4 header: header length %d is below the minimum of 20", hlen)
	}
	if len(b) < hlen {
		return f, truncated("IPv4 header with options", 0, hlen, len(b))
	}
	// Ignore padding after the packet. A total length of 0 (IPv4 BIG TCP)
	// or one below the header length says nothing.
	if total := int(binary.BigEndian.Uint16(b[2:])); total >= hlen && total < len(b) {
		b = b[:total]
	}
	if binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
		return f, nil // not the first fragment: no transport header
	}
	return f, transport(&f, b, hlen, false)
}

// decode6 decodes an IPv6 packet, skipping its extension headers.
func decode6(b []byte) (Flow, error) {
	var f Flow
	if len(b) == 0 {
		return f, truncated("IPv6 header", 0, 40, 0)
	}
	if v := b[0] >> 4; v != 6 {
		return f, fmt.Errorf("nflog: not an IPv6 packet: the IP version is %d", v)
	}
	if len(b) >= 7 {
		f.Proto = b[6]
	}
	if len(b) >= 24 {
		f.Src = netip.AddrFrom16([16]byte(b[8:24]))
	}
	if len(b) < 40 {
		return f, truncated("IPv6 header", 0, 40, len(b))
	}
	f.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	// Ignore padding after the packet. A payload length of 0 (a jumbogram,
	// or BIG TCP) says nothing.
	if plen := int(binary.BigEndian.Uint16(b[4:])); plen != 0 && 40+plen < len(b) {
		b = b[:40+plen]
	}
	// Every extension header takes at least 8 bytes, so the loop ends.
	off, nh := 40, b[6]
	for {
		f.Proto = nh
		switch nh {
		case protoHopByHop, protoRouting, protoDstOpts, protoMobility, protoHIP, protoShim6:
			if len(b)-off < 8 {
				return f, truncated("IPv6 extension header", off, 8, len(b))
			}
			n := (int(b[off+1]) + 1) * 8
			if len(b)-off < n {
				return f, truncated("IPv6 extension header", off, n, len(b))
			}
			nh = b[off]
			off += n
		case protoFragment:
			if len(b)-off < 8 {
				return f, truncated("IPv6 fragment header", off, 8, len(b))
			}
			nh = b[off]
			first := binary.BigEndian.Uint16(b[off+2:])>>3 == 0
			off += 8
			if !first {
				f.Proto = nh
				return f, nil // not the first fragment: no transport header
			}
		case protoAH:
			if len(b)-off < 8 {
				return f, truncated("IPv6 authentication header", off, 8, len(b))
			}
			n := (int(b[off+1]) + 2) * 4
			if len(b)-off < n {
				return f, truncated("IPv6 authentication header", off, n, len(b))
			}
			nh = b[off]
			off += n
		default:
			return f, transport(&f, b, off, true)
		}
	}
}

// transport reads the ports or the ICMP type and code of f.Proto from the
// transport header at offset off of packet b.
func transport(f *Flow, b []byte, off int, v6 bool) error {
	t := b[off:]
	switch f.Proto {
	case protoTCP, protoUDP, protoSCTP, protoUDPLite:
		if len(t) < 4 {
			return truncated(protoName(f.Proto)+" header", off, 4, len(b))
		}
		f.SrcPort = binary.BigEndian.Uint16(t)
		f.DstPort = binary.BigEndian.Uint16(t[2:])
	case protoICMP, protoICMPv6:
		if (f.Proto == protoICMPv6) != v6 {
			return nil // ICMP in IPv6 or ICMPv6 in IPv4: nothing to read
		}
		if len(t) < 2 {
			return truncated(protoName(f.Proto)+" header", off, 2, len(b))
		}
		f.ICMPType, f.ICMPCode = t[0], t[1]
	}
	return nil
}

// protoName names the transport protocols whose headers Decode reads.
func protoName(p uint8) string {
	if r, ok := ipproto.ByNum(p); ok {
		return r.Title
	}
	return fmt.Sprintf("protocol %d", p)
}
