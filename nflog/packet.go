// Package nflog receives packets that netfilter logs to an NFLOG group: the
// receive side of nfnetlink_log, as used by an nftables rule such as
//
//	log prefix "dockerfence deny " group 77
//
// Open binds a group in the calling thread's network namespace, Receive
// returns the logged packets, and Decode reads the addresses, protocol and
// ports from a packet's IP and transport headers.
//
// Only one socket in a network namespace can bind a group; Open reports a
// group that another socket holds with ErrBusy. Binding needs CAP_NET_ADMIN
// in the network namespace.
package nflog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dockerfence/dockerfence/internal/nfnl"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Message types of the nfnetlink_log subsystem (linux/netfilter/nfnetlink_log.h).
const (
	msgPacket = 0 // NFULNL_MSG_PACKET: a logged packet, kernel to user space
	msgConfig = 1 // NFULNL_MSG_CONFIG: configure a group, user space to kernel
)

// Attributes of an NFULNL_MSG_PACKET message (enum nfulnl_attr_type).
const (
	attrPacketHdr  = 1  // NFULA_PACKET_HDR: struct nfulnl_msg_packet_hdr
	attrMark       = 2  // NFULA_MARK: __be32 nfmark
	attrTimestamp  = 3  // NFULA_TIMESTAMP: struct nfulnl_msg_packet_timestamp
	attrIfIndexIn  = 4  // NFULA_IFINDEX_INDEV: __be32 ifindex
	attrIfIndexOut = 5  // NFULA_IFINDEX_OUTDEV: __be32 ifindex
	attrPhysIn     = 6  // NFULA_IFINDEX_PHYSINDEV: __be32 ifindex
	attrPhysOut    = 7  // NFULA_IFINDEX_PHYSOUTDEV: __be32 ifindex
	attrPayload    = 9  // NFULA_PAYLOAD: the packet from its network header on
	attrPrefix     = 10 // NFULA_PREFIX: NUL-terminated string
	attrCT         = 18 // NFULA_CT: the packet's connection, ctnetlink attributes
)

// Attributes of NFULA_CT, as ctnetlink writes a connection
// (linux/netfilter/nfnetlink_conntrack.h): the original tuple, its
// transport part, and that part's destination port.
const (
	ctaTupleOrig     = 1 // CTA_TUPLE_ORIG: nested tuple
	ctaTupleProto    = 2 // CTA_TUPLE_PROTO: nested, in a tuple
	ctaProtoDstPort  = 3 // CTA_PROTO_DST_PORT: __be16, in CTA_TUPLE_PROTO
	cfgFlagConntrack = 4 // NFULNL_CFG_F_CONNTRACK: send NFULA_CT with each packet
)

// Attributes of an NFULNL_MSG_CONFIG message (enum nfulnl_attr_config).
const (
	attrCfgCmd     = 1 // NFULA_CFG_CMD: struct nfulnl_msg_config_cmd
	attrCfgMode    = 2 // NFULA_CFG_MODE: struct nfulnl_msg_config_mode
	attrCfgTimeout = 4 // NFULA_CFG_TIMEOUT: __be32, in 1/100 s
	attrCfgQThresh = 5 // NFULA_CFG_QTHRESH: __be32, packets
	attrCfgFlags   = 6 // NFULA_CFG_FLAGS: __be16
)

// Commands of NFULA_CFG_CMD (enum nfulnl_msg_config_cmds).
const (
	cmdBind   = 1 // NFULNL_CFG_CMD_BIND
	cmdUnbind = 2 // NFULNL_CFG_CMD_UNBIND
)

// copyPacket is NFULNL_COPY_PACKET: the kernel copies the packet itself.
const copyPacket = 2

// headerType returns the netlink message type of nfnetlink_log message msg.
func headerType(msg uint8) netlink.HeaderType {
	return nfnl.HeaderType(unix.NFNL_SUBSYS_ULOG, msg)
}

// Packet is one packet logged to an NFLOG group.
type Packet struct {
	// Time is when the kernel logged the packet (NFULA_TIMESTAMP) if the
	// message says, else when Receive read the message. Linux 6.6 and later
	// send a timestamp for every packet logged in the prerouting, input
	// and forward hooks and none for output and postrouting; older kernels
	// only for packets that carry a receive timestamp.
	Time time.Time
	// Prefix is the rule's log prefix, without the trailing NUL.
	Prefix string
	// Family is the packet's protocol family from the nfgenmsg header:
	// unix.NFPROTO_IPV4 or unix.NFPROTO_IPV6 for rules in ip, ip6 and inet
	// tables (an inet table reports the packet's real family).
	Family uint8
	// HWProto is the packet's link-layer protocol (an EtherType such as
	// 0x0800 or 0x86dd) from NFULA_PACKET_HDR.
	HWProto uint16
	// Hook is the netfilter hook that logged the packet (for the inet
	// family unix.NF_INET_PRE_ROUTING ... unix.NF_INET_POST_ROUTING) from
	// NFULA_PACKET_HDR.
	Hook uint8
	// InDev and OutDev are the interface indexes the packet came in on and
	// goes out on (NFULA_IFINDEX_INDEV and NFULA_IFINDEX_OUTDEV), 0 if the
	// kernel did not say (no input device in output, for example). For a
	// packet routed from a bridge, InDev is the bridge, not its port.
	InDev, OutDev uint32
	// PhysInDev and PhysOutDev are the bridge ports (such as a container's
	// veth) a bridged packet came in on and goes out on
	// (NFULA_IFINDEX_PHYSINDEV and NFULA_IFINDEX_PHYSOUTDEV). The kernel
	// knows them only when br_netfilter is active; 0 otherwise.
	PhysInDev, PhysOutDev uint32
	// Mark is the packet's mark (NFULA_MARK), 0 if it has none.
	Mark uint32
	// Payload is the packet from its network header on, as much of it as
	// the copy range allowed (NFULA_PAYLOAD). Decode reads its headers.
	Payload []byte
	// OrigDstPort is the destination port of the original direction of
	// the packet's connection (NFULA_CT): for a connection that DNAT
	// rewrote, the port the client connected to, such as a port Docker
	// publishes. 0 when the kernel sent no connection (the group was
	// bound without conntrack, see Conn.Conntrack, or the packet has
	// none) or it has no ports.
	OrigDstPort uint16
}

// parsePacket decodes the body of an NFULNL_MSG_PACKET message: the nfgenmsg
// header and the attributes after it. Attributes it does not know are
// skipped. recv is the Time to report if the message has no timestamp.
func parsePacket(data []byte, recv time.Time) (Packet, error) {
	if len(data) < 4 {
		return Packet{}, fmt.Errorf("nflog: packet message has %d bytes, too short for its 4-byte nfgenmsg header", len(data))
	}
	p := Packet{Family: data[0], Time: recv}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return Packet{}, fmt.Errorf("nflog: packet message attributes: %w", err)
	}
	// nfnetlink attributes are in network byte order, whether or not the
	// kernel marks them with NLA_F_NET_BYTEORDER; Type masks that flag
	// and NLA_F_NESTED off.
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case attrPacketHdr:
			b := ad.Bytes()
			if len(b) < 3 {
				return Packet{}, fmt.Errorf("nflog: NFULA_PACKET_HDR has %d bytes, want 4", len(b))
			}
			p.HWProto = binary.BigEndian.Uint16(b)
			p.Hook = b[2]
		case attrMark:
			p.Mark = ad.Uint32()
		case attrTimestamp:
			b := ad.Bytes()
			if len(b) != 16 {
				return Packet{}, fmt.Errorf("nflog: NFULA_TIMESTAMP has %d bytes, want 16", len(b))
			}
			sec := binary.BigEndian.Uint64(b)
			usec := binary.BigEndian.Uint64(b[8:])
			p.Time = time.Unix(int64(sec), int64(usec%1e6)*1e3)
		case attrIfIndexIn:
			p.InDev = ad.Uint32()
		case attrIfIndexOut:
			p.OutDev = ad.Uint32()
		case attrPhysIn:
			p.PhysInDev = ad.Uint32()
		case attrPhysOut:
			p.PhysOutDev = ad.Uint32()
		case attrPayload:
			p.Payload = ad.Bytes()
		case attrCT:
			p.OrigDstPort = origDstPort(ad.Bytes())
		case attrPrefix:
			b := ad.Bytes()
			if i := bytes.IndexByte(b, 0); i >= 0 {
				b = b[:i]
			}
			p.Prefix = string(b)
		}
	}
	if err := ad.Err(); err != nil {
		return Packet{}, fmt.Errorf("nflog: packet message attributes: %w", err)
	}
	return p, nil
}

// origDstPort reads the original tuple's destination port from the
// ctnetlink attributes of NFULA_CT, 0 if they hold none.
func origDstPort(ct []byte) uint16 {
	nested := func(b []byte, typ uint16) []byte {
		ad, err := netlink.NewAttributeDecoder(b)
		if err != nil {
			return nil
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == typ {
				return ad.Bytes()
			}
		}
		return nil
	}
	port := nested(nested(nested(ct, ctaTupleOrig), ctaTupleProto), ctaProtoDstPort)
	if len(port) != 2 {
		return 0
	}
	return binary.BigEndian.Uint16(port)
}

// conntrackAttrs are the attributes of the request that asks the kernel
// to send each packet's connection (NFULA_CT).
func conntrackAttrs(ae *netlink.AttributeEncoder) {
	ae.Uint16(attrCfgFlags, cfgFlagConntrack)
}

// configMessage returns an NFULNL_MSG_CONFIG request for group with the
// given attributes. The kernel acknowledges it if ack is true, and reports
// an error in any case.
func configMessage(group uint16, ack bool, attrs func(ae *netlink.AttributeEncoder)) (netlink.Message, error) {
	b, err := nfnl.Attrs(attrs)
	if err != nil {
		return netlink.Message{}, fmt.Errorf("nflog: encode config attributes: %w", err)
	}
	flags := netlink.Request
	if ack {
		flags |= netlink.Acknowledge
	}
	return netlink.Message{
		Header: netlink.Header{Type: headerType(msgConfig), Flags: flags},
		Data:   append(nfnl.GenMsg(group), b...),
	}, nil
}

// bindAttrs are the attributes of the bind request: bind the group, copy
// copyRange bytes of each packet, and send every packet at once.
func bindAttrs(copyRange uint16) func(ae *netlink.AttributeEncoder) {
	return func(ae *netlink.AttributeEncoder) {
		ae.Bytes(attrCfgCmd, []byte{cmdBind})
		mode := make([]byte, 6) // __be32 copy_range, u8 copy_mode, u8 pad
		binary.BigEndian.PutUint32(mode, uint32(copyRange))
		mode[4] = copyPacket
		ae.Bytes(attrCfgMode, mode)
		ae.Uint32(attrCfgQThresh, 1)
		ae.Uint32(attrCfgTimeout, 1)
	}
}

// unbindAttrs are the attributes of the unbind request.
func unbindAttrs(ae *netlink.AttributeEncoder) {
	ae.Bytes(attrCfgCmd, []byte{cmdUnbind})
}
