package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// Socket buffer sizes for the nf_tables netlink socket. The kernel refuses a
// batch larger than the send buffer, so it must hold a whole table: 100k
// prefixes make a batch of about 8 MiB. The kernel answers only the messages
// it refuses and the last one, so the receive buffer holds answers and
// dumps. Memory is only used while a batch or dump is in flight.
const (
	sendBuffer    = 64 << 20
	receiveBuffer = 16 << 20
)

// messageBuffer is the buffer every receive reads into. The kernel sizes
// the datagrams of a dump by the largest buffer the socket has read with
// (up to 32 KiB), and every datagram of a set's dump walks the set from its
// start: so dumping 200,000 elements in 32 KiB datagrams rather than 4 KiB
// ones walks the set an eighth as often.
const messageBuffer = 64 << 10

// answerTimeout bounds the wait for the kernel's answer to a batch or a
// request. The kernel handles a batch within the send call, so its answer
// is queued by the time the send returns; this only guards against a
// kernel that never answers.
const answerTimeout = 30 * time.Second

// testDial is a test seam: when a test sets it, it answers every netlink
// request of Kernel's connections in place of the kernel (see nltest.Func),
// so that tests can play a kernel that refuses or lacks nf_tables.
var testDial nltest.Func

// conn is one nf_tables netlink socket. A lasting Kernel keeps one for its
// life (the socket that owns its table); a one-shot Kernel opens one per
// call. It is not safe for concurrent use: Kernel serializes its calls.
type conn struct {
	c *netlink.Conn
	// seq is the last sequence number used; every message of a batch and
	// every request gets the next one, so answers map back to messages.
	seq uint32
	// stale is set when an exchange ended before every answer was read:
	// the next one first drops what is left in the socket.
	stale bool
}

// dialConn opens an nf_tables socket in the network namespace netNS (0: the
// calling thread's), with socket buffers large enough for a whole table,
// and asks the kernel to answer refusals without a copy of the refused
// message (NETLINK_CAP_ACK): a batch of thousands of refused messages would
// otherwise overflow the receive buffer with its own copy.
func dialConn(netNS int) (*conn, error) {
	if testDial != nil {
		return &conn{c: nltest.Dial(testDial)}, nil
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netNS, MessageBufferSize: messageBuffer})
	if err != nil {
		return nil, err
	}
	if err := setBuffers(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("socket buffers: %w", err)
	}
	if err := c.SetOption(netlink.CapAcknowledge, true); err != nil {
		c.Close()
		return nil, fmt.Errorf("socket option NETLINK_CAP_ACK: %w", err)
	}
	return &conn{c: c}, nil
}

func (c *conn) close() error { return c.c.Close() }

// port returns the socket's netlink port ID: what the kernel records as the
// owner of a table this socket creates with flag owner.
func (c *conn) port() uint32 { return c.c.PID() }

// setBuffers enlarges the socket buffers, past the sysctl limits where the
// process has CAP_NET_ADMIN (which changing nf_tables needs anyway).
func setBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, o := range []struct{ opt, force, size int }{
			{unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, sendBuffer},
			{unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, receiveBuffer},
		} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.force, o.size) != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.opt, o.size)
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// next returns the next sequence number.
func (c *conn) next() uint32 {
	c.seq++
	if c.seq == 0 {
		c.seq++
	}
	return c.seq
}

// drain drops the answers left in the socket by an exchange that ended
// early, so that they are not taken for the next one's.
func (c *conn) drain() {
	if !c.stale || testDial != nil {
		c.stale = false
		return
	}
	c.stale = false
	for range maxDrain {
		if err := c.c.SetReadDeadline(time.Now()); err != nil {
			return
		}
		if _, err := c.c.Receive(); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
	}
	_ = c.c.SetReadDeadline(time.Time{})
}

// maxDrain bounds the answers drain drops: a batch is answered once a
// message at most.
const maxDrain = 1 << 20

// receive reads one datagram of answers, within answerTimeout. An answer
// that is an error comes back as a *netlink.OpError with its sequence
// number; the kernel sends every error of a batch in a datagram of its own.
func (c *conn) receive() ([]netlink.Message, error) {
	if testDial == nil {
		if err := c.c.SetReadDeadline(time.Now().Add(answerTimeout)); err != nil {
			return nil, err
		}
		defer c.c.SetReadDeadline(time.Time{})
	}
	return c.c.Receive()
}

// refusal is the kernel's error for one message of a batch.
type refusal struct {
	// msg is the index of the message in the batch (0 is the batch begin).
	msg int
	err error
}

// batchAnswer is what the kernel answered to a batch.
type batchAnswer struct {
	// refused lists the messages the kernel refused, in order.
	refused []refusal
}

// batch sends msgs as one nf_tables transaction, between a batch begin and
// end, in one send, and returns the messages the kernel refused. The kernel
// handles every message, answers each it refuses with an error carrying
// the message's sequence number, and then commits the batch, or aborts it
// if it refused any. Only the last message asks for an acknowledgement
// (NLM_F_ACK): its answer comes after every error, so reading up to it
// reads them all. A refusal of the batch itself (no CAP_NET_ADMIN, no
// nf_tables) carries the begin's sequence number and is the only answer.
func (c *conn) batch(msgs []netlink.Message) (batchAnswer, error) {
	c.drain()
	all := make([]netlink.Message, 0, len(msgs)+2)
	all = append(all, batchMsg(unix.NFNL_MSG_BATCH_BEGIN))
	all = append(all, msgs...)
	all = append(all, batchMsg(unix.NFNL_MSG_BATCH_END))
	first := c.seq + 1
	for i := range all {
		all[i].Header.Sequence = c.next()
		all[i].Header.Flags &^= netlink.Acknowledge
	}
	last := len(all) - 2 // the last message before the end
	all[last].Header.Flags |= netlink.Acknowledge
	lastSeq := all[last].Header.Sequence
	index := func(seq uint32) (int, bool) {
		i := int(seq - first)
		return i, seq-first < uint32(len(all))
	}
	var ans batchAnswer
	if err := c.send(all); err != nil {
		return ans, err
	}
	c.stale = true
	for {
		replies, err := c.receive()
		var oe *netlink.OpError
		if errors.As(err, &oe) && oe.Sequence != 0 {
			i, ours := index(oe.Sequence)
			if !ours {
				continue // a late answer to an earlier exchange
			}
			ans.refused = append(ans.refused, refusal{msg: i, err: oe.Err})
			if i == 0 || oe.Sequence == lastSeq {
				c.stale = i == 0 && testDial == nil
				return ans, nil
			}
			continue
		}
		if err != nil {
			return ans, fmt.Errorf("%w (the kernel's answer to the batch was lost: the table may or may not have changed)", err)
		}
		for _, m := range replies {
			if m.Header.Type == netlink.Error && m.Header.Sequence == lastSeq {
				c.stale = false
				return ans, nil
			}
		}
	}
}

// send sends msgs in one datagram. Rather than netlink.Conn.SendMessages,
// which copies each message and then all of them (three copies of a batch
// of 8 MiB), it lays them out once in a buffer of their exact size.
func (c *conn) send(msgs []netlink.Message) error {
	if testDial != nil {
		_, err := c.c.SendMessages(msgs)
		return err
	}
	n := 0
	for _, m := range msgs {
		n += nlmsgHeader + (len(m.Data)+3)&^3
	}
	buf := make([]byte, 0, n)
	for _, m := range msgs {
		var h [nlmsgHeader]byte
		binary.NativeEndian.PutUint32(h[0:], uint32(nlmsgHeader+len(m.Data)))
		binary.NativeEndian.PutUint16(h[4:], uint16(m.Header.Type))
		binary.NativeEndian.PutUint16(h[6:], uint16(m.Header.Flags))
		binary.NativeEndian.PutUint32(h[8:], m.Header.Sequence)
		binary.NativeEndian.PutUint32(h[12:], c.port())
		buf = append(buf, h[:]...)
		buf = append(buf, m.Data...)
		for len(buf)%4 != 0 {
			buf = append(buf, 0)
		}
	}
	rc, err := c.c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			serr = unix.Sendmsg(int(fd), buf, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
			if serr != unix.EINTR {
				return serr != unix.EAGAIN
			}
		}
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return os.NewSyscallError("sendmsg", serr)
	}
	return nil
}

// nlmsgHeader is the size of a netlink message header (nlmsghdr).
const nlmsgHeader = 16

// batchMsg is a batch begin or end for the nf_tables subsystem.
func batchMsg(typ int) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES},
	}
}

// errDumpInterrupted reports a dump that the kernel marked inconsistent: the
// ruleset changed while it was read.
var errDumpInterrupted = errors.New("the ruleset changed during the dump")

// request sends one nf_tables request (a dump with netlink.Dump in flags)
// and returns its answers. A dump that the ruleset's change interrupted
// (NLM_F_DUMP_INTR) is read again, up to three times.
func (c *conn) request(typ int, flags netlink.HeaderFlags, family byte, attrs []byte) ([]netlink.Message, error) {
	for try := 0; ; try++ {
		msgs, err := c.requestOnce(typ, flags, family, attrs)
		if errors.Is(err, errDumpInterrupted) && try < 3 {
			continue
		}
		return msgs, err
	}
}

func (c *conn) requestOnce(typ int, flags netlink.HeaderFlags, family byte, attrs []byte) ([]netlink.Message, error) {
	c.drain()
	seq := c.next()
	req := netlink.Message{
		Header: netlink.Header{Type: nftType(typ), Flags: netlink.Request | flags, Sequence: seq},
		Data:   append([]byte{family, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
	if _, err := c.c.Send(req); err != nil {
		return nil, err
	}
	c.stale = true
	for {
		// One Receive reads a whole answer: one message, an error, or
		// a multi-part dump up to its done message.
		msgs, err := c.receive()
		var oe *netlink.OpError
		if errors.As(err, &oe) && oe.Sequence != 0 && oe.Sequence != seq {
			continue // a late answer to an earlier exchange
		}
		if err != nil {
			c.stale = !errors.As(err, &oe)
			return nil, err
		}
		if len(msgs) > 0 && msgs[0].Header.Sequence != seq {
			continue
		}
		c.stale = false
		for _, m := range msgs {
			if m.Header.Flags&netlink.DumpInterrupted != 0 {
				return nil, errDumpInterrupted
			}
		}
		return msgs, nil
	}
}

// nftType is the netlink message type of nf_tables message typ (NFT_MSG_*).
func nftType(typ int) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ)
}
