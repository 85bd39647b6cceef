package harness

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// IANA protocol numbers of the packets built here.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
	ProtoSCTP   = 132
)

// EchoRequest is an ICMP (or ICMPv6) echo request with id and sequence
// number id. The kernel fills in the ICMPv6 checksum.
func EchoRequest(v6 bool, id uint16) []byte {
	b := make([]byte, 16)
	b[0] = 8
	if v6 {
		b[0] = 128
	}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], id)
	copy(b[8:], "dfprobe!")
	if !v6 {
		binary.BigEndian.PutUint16(b[2:], Checksum(b))
	}
	return b
}

// Checksum is the Internet checksum of b (RFC 1071).
func Checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// SCTPInit is an SCTP packet with one INIT chunk from sport to dport, with
// its CRC32c checksum.
func SCTPInit(sport, dport uint16) []byte {
	b := make([]byte, 32)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	// Verification tag 0, as an INIT has; checksum at 8..11, filled below.
	b[12] = 1                                  // chunk type INIT
	binary.BigEndian.PutUint16(b[14:], 20)     // chunk length
	binary.BigEndian.PutUint32(b[16:], 0xdf00) // initiate tag
	binary.BigEndian.PutUint32(b[20:], 65535)  // a_rwnd
	binary.BigEndian.PutUint16(b[24:], 1)      // outbound streams
	binary.BigEndian.PutUint16(b[26:], 1)      // inbound streams
	binary.BigEndian.PutUint32(b[28:], 1)      // initial TSN
	binary.LittleEndian.PutUint32(b[8:], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// BE32 is v in network byte order, as nf_tables attributes carry numbers.
func BE32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// NFTMsg is the nf_tables request typ (unix.NFT_MSG_*) for the inet family
// with attrs and netlink.Request and flags set.
func NFTMsg(typ int, flags netlink.HeaderFlags, attrs []netlink.Attribute) (netlink.Message, error) {
	b, err := netlink.MarshalAttributes(attrs)
	return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: netlink.Request | flags},
		Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, b...)}, err
}

// NFTBatch sends msgs on c as one nf_tables transaction, between a batch
// begin and end, and returns the kernel's answer: the acknowledgement of
// the message that asked for one, or the error of the message it refused.
func NFTBatch(c *netlink.Conn, msgs ...netlink.Message) error {
	batch := func(typ int) netlink.Message {
		return netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
			Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}}
	}
	all := append(append([]netlink.Message{batch(unix.NFNL_MSG_BATCH_BEGIN)}, msgs...), batch(unix.NFNL_MSG_BATCH_END))
	if _, err := c.SendMessages(all); err != nil {
		return err
	}
	_, err := c.Receive()
	return err
}
