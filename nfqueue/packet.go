// Package nfqueue holds packets that netfilter queues to user space and
// gives them back with a verdict: the user-space side of nfnetlink_queue,
// as used by a rule such as
//
//	iptables -A OUTPUT -p udp --sport 53 -j NFQUEUE --queue-num 5 --queue-bypass
//
// (or its nft_compat form in an nftables table). Open binds a queue number
// in the calling thread's network namespace; Receive (or Run) returns the
// queued packets; SetVerdict accepts or drops each one, from any goroutine.
//
// The kernel holds a queued packet until it gets a verdict for it. The
// queue is bound fail-open: when it is full, or a packet cannot be
// delivered to the socket, the kernel accepts the packet instead of
// dropping it. With --queue-bypass in the rule, packets also pass while no
// socket has the queue bound (the process is gone). Closing the socket
// (or unbinding the queue) makes the kernel drop every packet that still
// waits for its verdict: to let them pass, accept them before closing.
//
// Only one socket in a network namespace can bind a queue number; Open
// reports a queue that another socket holds with ErrBusy. Binding needs
// CAP_NET_ADMIN in the network namespace.
package nfqueue

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dockerfence/dockerfence/internal/nfnl"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Message types of the nfnetlink_queue subsystem (linux/netfilter/nfnetlink_queue.h).
const (
	msgPacket       = 0 // NFQNL_MSG_PACKET: a queued packet, kernel to user space
	msgVerdict      = 1 // NFQNL_MSG_VERDICT: the verdict on one packet
	msgConfig       = 2 // NFQNL_MSG_CONFIG: configure a queue
	msgVerdictBatch = 3 // NFQNL_MSG_VERDICT_BATCH: the verdict on all packets up to an id
)

// Attributes of an NFQNL_MSG_PACKET and an NFQNL_MSG_VERDICT message (enum nfqnl_attr_type).
const (
	attrPacketHdr  = 1  // NFQA_PACKET_HDR: struct nfqnl_msg_packet_hdr
	attrVerdictHdr = 2  // NFQA_VERDICT_HDR: struct nfqnl_msg_verdict_hdr
	attrMark       = 3  // NFQA_MARK: __be32 nfmark
	attrTimestamp  = 4  // NFQA_TIMESTAMP: struct nfqnl_msg_packet_timestamp
	attrIfIndexIn  = 5  // NFQA_IFINDEX_INDEV: __be32 ifindex
	attrIfIndexOut = 6  // NFQA_IFINDEX_OUTDEV: __be32 ifindex
	attrPhysIn     = 7  // NFQA_IFINDEX_PHYSINDEV: __be32 ifindex
	attrPhysOut    = 8  // NFQA_IFINDEX_PHYSOUTDEV: __be32 ifindex
	attrPayload    = 10 // NFQA_PAYLOAD: the packet from its network header on
	attrCapLen     = 13 // NFQA_CAP_LEN: __be32 length of the packet, if the payload is cut
	attrSKBInfo    = 14 // NFQA_SKB_INFO: __be32 NFQA_SKB_* flags
)

// Attributes of an NFQNL_MSG_CONFIG message (enum nfqnl_attr_config).
const (
	attrCfgCmd    = 1 // NFQA_CFG_CMD: struct nfqnl_msg_config_cmd
	attrCfgParams = 2 // NFQA_CFG_PARAMS: struct nfqnl_msg_config_params
	attrCfgMaxLen = 3 // NFQA_CFG_QUEUE_MAXLEN: __be32, packets
	attrCfgMask   = 4 // NFQA_CFG_MASK: __be32, the flags to change
	attrCfgFlags  = 5 // NFQA_CFG_FLAGS: __be32, their values
)

// Commands of NFQA_CFG_CMD (enum nfqnl_msg_config_cmds).
const (
	cmdBind   = 1 // NFQNL_CFG_CMD_BIND
	cmdUnbind = 2 // NFQNL_CFG_CMD_UNBIND
)

// copyPacket is NFQNL_COPY_PACKET: the kernel copies the packet itself.
const copyPacket = 2

// Flags of NFQA_CFG_FLAGS.
const (
	cfgFailOpen = 1 << 0 // NFQA_CFG_F_FAIL_OPEN: accept, not drop, what cannot be queued
	cfgGSO      = 1 << 2 // NFQA_CFG_F_GSO: queue GSO packets whole, without segmenting them
)

// MaxCopyRange is the largest copy range the kernel accepts
// (NFQNL_MAX_COPY_RANGE, 0xffff less an attribute header); Open uses it
// when Options.CopyRange is 0.
const MaxCopyRange = 0xffff - 4

// Flags of Packet.SKBInfo (NFQA_SKB_*).
const (
	// SKBChecksumNotReady says the packet's checksum is left to the
	// device (a packet on its way out): the payload's transport checksum
	// is not filled in, and that is not an error.
	SKBChecksumNotReady = 1 << 0
	// SKBGSO says the packet is a GSO packet, larger than the device's MTU.
	SKBGSO = 1 << 1
	// SKBChecksumNotVerified says the packet's checksum was not verified
	// by the device.
	SKBChecksumNotVerified = 1 << 2
)

// headerType returns the netlink message type of nfnetlink_queue message msg.
func headerType(msg uint8) netlink.HeaderType {
	return nfnl.HeaderType(unix.NFNL_SUBSYS_QUEUE, msg)
}

// Verdict is what the kernel does with a queued packet.
type Verdict uint32

// The verdicts that SetVerdict accepts (NF_DROP and NF_ACCEPT).
const (
	// Drop drops the packet.
	Drop Verdict = 0
	// Accept lets the packet go on as if the queueing rule had accepted
	// it: the rest of its chain is skipped, later hooks and tables still
	// judge it.
	Accept Verdict = 1
)

// String returns "accept", "drop" or the verdict's number.
func (v Verdict) String() string {
	switch v {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("verdict %d", uint32(v))
}

// Packet is one packet that the kernel holds in the queue until it gets a
// verdict.
type Packet struct {
	// ID identifies the packet in its queue; SetVerdict takes it. The
	// kernel numbers a queue's packets from 1 upwards.
	ID uint32
	// Time is when the packet arrived on its interface (NFQA_TIMESTAMP)
	// if the kernel says so, else when Receive read the message.
	// KernelTime tells which. The kernel stamps packets it received (when
	// some socket asked for receive timestamps, or a feature needs them),
	// not packets the host sends.
	Time time.Time
	// KernelTime is true if Time comes from the kernel (NFQA_TIMESTAMP).
	KernelTime bool
	// Family is the packet's protocol family from the nfgenmsg header:
	// unix.NFPROTO_IPV4 or unix.NFPROTO_IPV6 for rules in ip, ip6 and inet
	// tables (an inet table reports the packet's real family).
	Family uint8
	// HWProto is the packet's link-layer protocol (an EtherType such as
	// 0x0800 or 0x86dd) from NFQA_PACKET_HDR.
	HWProto uint16
	// Hook is the netfilter hook that queued the packet (for the inet
	// family unix.NF_INET_PRE_ROUTING ... unix.NF_INET_POST_ROUTING)
	// from NFQA_PACKET_HDR.
	Hook uint8
	// InDev and OutDev are the interface indexes the packet came in on and
	// goes out on (NFQA_IFINDEX_INDEV and NFQA_IFINDEX_OUTDEV), 0 if the
	// kernel did not say (no input device in output, for example).
	InDev, OutDev uint32
	// PhysInDev and PhysOutDev are the bridge ports a bridged packet came
	// in on and goes out on (NFQA_IFINDEX_PHYSINDEV and
	// NFQA_IFINDEX_PHYSOUTDEV), known only with br_netfilter; 0 otherwise.
	PhysInDev, PhysOutDev uint32
	// Mark is the packet's mark (NFQA_MARK), 0 if it has none.
	Mark uint32
	// Payload is the packet from its network header on, as much of it as
	// the copy range allowed (NFQA_PAYLOAD).
	Payload []byte
	// CapLen is the packet's length when the copy range cut its payload
	// (NFQA_CAP_LEN), 0 when Payload is the whole packet.
	CapLen uint32
	// SKBInfo holds the SKB* flags (NFQA_SKB_INFO); the kernel sends them
	// only to a queue bound with Options.GSO.
	SKBInfo uint32
}

// Truncated reports whether the copy range cut the packet's payload.
func (p *Packet) Truncated() bool { return p.CapLen > uint32(len(p.Payload)) }

// MalformedError is returned by Receive (and passed to Run's notice) for
// a packet message that does not decode. The Conn stays usable.
type MalformedError struct {
	// ID is the packet's id if the message gave it before the fault, 0
	// otherwise. The kernel holds that packet until it gets a verdict:
	// Run accepts it, a caller of Receive should give it one.
	ID uint32
	// Err says what is wrong with the message.
	Err error
}

// Error says which message is malformed and how.
func (e *MalformedError) Error() string {
	if e.ID != 0 {
		return fmt.Sprintf("nfqueue: malformed message of packet %d: %v", e.ID, e.Err)
	}
	return fmt.Sprintf("nfqueue: malformed packet message: %v", e.Err)
}

// Unwrap returns what is wrong with the message.
func (e *MalformedError) Unwrap() error { return e.Err }

// parsePacket decodes the body of an NFQNL_MSG_PACKET message: the nfgenmsg
// header and the attributes after it. Attributes it does not know are
// skipped. recv is the Time to report if the message has no timestamp.
// A packet message without NFQA_PACKET_HDR is an error: without its id
// the packet could never be given back. Its errors are *MalformedError.
func parsePacket(data []byte, recv time.Time) (Packet, error) {
	p, err := decodePacket(data, recv)
	if err != nil {
		return Packet{}, &MalformedError{ID: p.ID, Err: err}
	}
	return p, nil
}

// decodePacket is parsePacket without the *MalformedError: on an error it
// returns the packet as far as it got.
func decodePacket(data []byte, recv time.Time) (Packet, error) {
	if len(data) < 4 {
		return Packet{}, fmt.Errorf("%d bytes, too short for its 4-byte nfgenmsg header", len(data))
	}
	p := Packet{Family: data[0], Time: recv}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return p, fmt.Errorf("attributes: %w", err)
	}
	// nfnetlink attributes are in network byte order, whether or not the
	// kernel marks them with NLA_F_NET_BYTEORDER; Type masks that flag
	// and NLA_F_NESTED off.
	ad.ByteOrder = binary.BigEndian
	header := false
	for ad.Next() {
		switch ad.Type() {
		case attrPacketHdr:
			b := ad.Bytes()
			if len(b) < 7 {
				return p, fmt.Errorf("NFQA_PACKET_HDR has %d bytes, want 7", len(b))
			}
			p.ID = binary.BigEndian.Uint32(b)
			p.HWProto = binary.BigEndian.Uint16(b[4:])
			p.Hook = b[6]
			header = true
		case attrMark:
			p.Mark = ad.Uint32()
		case attrTimestamp:
			b := ad.Bytes()
			if len(b) != 16 {
				return p, fmt.Errorf("NFQA_TIMESTAMP has %d bytes, want 16", len(b))
			}
			sec := binary.BigEndian.Uint64(b)
			usec := binary.BigEndian.Uint64(b[8:])
			p.Time = time.Unix(int64(sec), int64(usec%1e6)*1e3)
			p.KernelTime = true
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
		case attrCapLen:
			p.CapLen = ad.Uint32()
		case attrSKBInfo:
			p.SKBInfo = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return p, fmt.Errorf("attributes: %w", err)
	}
	if !header {
		return p, fmt.Errorf("no NFQA_PACKET_HDR")
	}
	return p, nil
}

// Options configure a queue. The zero value is a queue that copies whole
// packets (up to MaxCopyRange bytes) and holds up to the kernel's default
// of 1024 packets.
type Options struct {
	// CopyRange is how many bytes of each packet the kernel copies into
	// Packet.Payload: 0 means MaxCopyRange, enough for any packet that is
	// not GSO.
	CopyRange uint32
	// MaxLen is how many packets the kernel holds in the queue, waiting
	// for their verdicts, before it accepts the next ones unqueued (the
	// queue is bound fail-open); 0 leaves the kernel's default, 1024.
	MaxLen uint32
	// GSO asks the kernel to queue GSO packets (a TCP segment larger than
	// the MTU, on its way out) whole instead of segmenting them first,
	// and to report Packet.SKBInfo.
	GSO bool
}

// configMessage returns an NFQNL_MSG_CONFIG request for queue with the
// given attributes. The kernel acknowledges it if ack is true, and
// reports an error in any case.
func configMessage(queue uint16, ack bool, attrs func(ae *netlink.AttributeEncoder)) (netlink.Message, error) {
	b, err := nfnl.Attrs(attrs)
	if err != nil {
		return netlink.Message{}, fmt.Errorf("nfqueue: encode config attributes: %w", err)
	}
	flags := netlink.Request
	if ack {
		flags |= netlink.Acknowledge
	}
	return netlink.Message{
		Header: netlink.Header{Type: headerType(msgConfig), Flags: flags},
		Data:   append(nfnl.GenMsg(queue), b...),
	}, nil
}

// bindAttrs are the attributes of the bind request: bind the queue, copy
// packets, fail open, and the options' copy range, queue length and GSO.
// The kernel reads them in this order whatever their order in the message:
// the command, the parameters, the length, the flags.
func bindAttrs(o Options) func(ae *netlink.AttributeEncoder) {
	return func(ae *netlink.AttributeEncoder) {
		ae.Bytes(attrCfgCmd, []byte{cmdBind, 0, 0, 0}) // u8 command, u8 pad, __be16 pf (unused)
		copyRange := o.CopyRange
		if copyRange == 0 || copyRange > MaxCopyRange {
			copyRange = MaxCopyRange
		}
		params := make([]byte, 5) // __be32 copy_range, u8 copy_mode, packed
		binary.BigEndian.PutUint32(params, copyRange)
		params[4] = copyPacket
		ae.Bytes(attrCfgParams, params)
		if o.MaxLen != 0 {
			ae.Uint32(attrCfgMaxLen, o.MaxLen)
		}
		flags := uint32(cfgFailOpen)
		if o.GSO {
			flags |= cfgGSO
		}
		ae.Uint32(attrCfgMask, cfgFailOpen|cfgGSO)
		ae.Uint32(attrCfgFlags, flags)
	}
}

// unbindAttrs are the attributes of the unbind request.
func unbindAttrs(ae *netlink.AttributeEncoder) {
	ae.Bytes(attrCfgCmd, []byte{cmdUnbind, 0, 0, 0})
}

// verdictMessage returns the NFQNL_MSG_VERDICT (or, with batch, the
// NFQNL_MSG_VERDICT_BATCH) message that gives packet id of queue verdict v.
// Its sequence number is the packet's id, so that an error the kernel
// answers names the packet. It asks for no acknowledgement: the kernel
// answers only a verdict it refuses.
func verdictMessage(queue uint16, id uint32, v Verdict, batch bool) netlink.Message {
	msg := uint8(msgVerdict)
	if batch {
		msg = msgVerdictBatch
	}
	b := make([]byte, 4+4+8)
	copy(b, nfnl.GenMsg(queue))
	// The NFQA_VERDICT_HDR attribute: __u16 length, __u16 type (native
	// byte order), then struct nfqnl_msg_verdict_hdr in network order.
	binary.NativeEndian.PutUint16(b[4:], 4+8)
	binary.NativeEndian.PutUint16(b[6:], attrVerdictHdr)
	binary.BigEndian.PutUint32(b[8:], uint32(v))
	binary.BigEndian.PutUint32(b[12:], id)
	return netlink.Message{
		Header: netlink.Header{Type: headerType(msg), Flags: netlink.Request, Sequence: id},
		Data:   b,
	}
}
