package nfqueue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dockerfence/dockerfence/internal/nfnl"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrBusy is returned by Open, wrapped, when another socket in the network
// namespace already has the queue bound; test for it with errors.Is. The
// kernel answers EPERM in that case, as it does to a process without
// CAP_NET_ADMIN, and Open asks it once more to tell the two apart.
var ErrBusy = errors.New("the queue is already bound by another socket")

// ErrOverrun is returned by Receive (and passed to Run's notice) when the
// socket's receive buffer overflowed (ENOBUFS): the kernel could not
// deliver some queued packets, and, the queue being fail-open, accepted
// them without a verdict. The Conn stays usable; the next Receive returns
// the packets that came after.
var ErrOverrun = errors.New("nfqueue: receive buffer overrun: the kernel accepted queued packets that could not be delivered in time")

// VerdictError is returned by Receive (and passed to Run's notice) when the
// kernel refused a verdict that SetVerdict or SetVerdictBatch sent: ENOENT
// for a packet the queue does not hold (it had its verdict already, or an
// id that was never given), EINVAL for a malformed verdict. The kernel
// answers after SetVerdict has returned, so the answer comes with the
// packets. The Conn stays usable.
type VerdictError struct {
	// ID is the packet id of the refused verdict.
	ID uint32
	// Err is the kernel's error, such as unix.ENOENT.
	Err error
}

// Error says which verdict the kernel refused and why.
func (e *VerdictError) Error() string {
	return fmt.Sprintf("nfqueue: the kernel refused the verdict on packet %d: %v", e.ID, e.Err)
}

// Unwrap returns the kernel's error.
func (e *VerdictError) Unwrap() error { return e.Err }

// receiveBuffer is the receive buffer Open asks for: large, so that a burst
// of queued packets rarely overruns it.
const receiveBuffer = 8 << 20

// configTimeout bounds how long Open waits for the kernel to acknowledge
// the bind.
const configTimeout = 5 * time.Second

// Conn is a socket bound to one queue. One goroutine receives packets
// (Receive or Run); SetVerdict and SetVerdictBatch may be called from any
// goroutines at the same time as that and as each other, and Close and
// SetReadDeadline from any goroutine.
type Conn struct {
	nl     *netlink.Conn
	queue  uint16
	closed atomic.Bool

	mu sync.Mutex // serialises Receive; guards r
	r  nfnl.Reader[Packet]
}

// newConn returns a Conn on socket nl for queue.
func newConn(nl *netlink.Conn, queue uint16) *Conn {
	c := &Conn{nl: nl, queue: queue}
	c.r = nfnl.Reader[Packet]{NL: nl, Type: headerType(msgPacket), Parse: parsePacket}
	return c
}

// Open binds queue number queue in the calling thread's network namespace
// with the given options, in copy mode "packet" and fail-open (see the
// package documentation). It gives the socket a large receive buffer
// (SO_RCVBUFFORCE, or SO_RCVBUF up to net.core.rmem_max without
// CAP_NET_ADMIN).
//
// To bind a queue in another namespace, call Open on a locked OS thread
// that has switched into it; the socket stays there afterwards.
//
// Open returns an error that matches ErrBusy if another socket in the
// namespace has the queue bound, and one that matches unix.EPERM if the
// process lacks CAP_NET_ADMIN in the namespace.
func Open(queue uint16, o Options) (*Conn, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("nfqueue: open a netfilter netlink socket: %w", err)
	}
	if err := nfnl.SetReceiveBuffer(nl, receiveBuffer); err != nil {
		nl.Close()
		return nil, fmt.Errorf("nfqueue: %w", err)
	}
	if err := nl.SetReadDeadline(time.Now().Add(configTimeout)); err != nil {
		nl.Close()
		return nil, fmt.Errorf("nfqueue: set read deadline: %w", err)
	}
	c, err := open(nl, queue, o)
	if err != nil {
		nl.Close()
		return nil, err
	}
	if err := nl.SetReadDeadline(time.Time{}); err != nil {
		nl.Close()
		return nil, fmt.Errorf("nfqueue: clear read deadline: %w", err)
	}
	return c, nil
}

// open binds queue on nl and waits for the kernel's acknowledgement.
// Packets that arrive before it are kept for the first Receive.
func open(nl *netlink.Conn, queue uint16, o Options) (*Conn, error) {
	c := newConn(nl, queue)
	req, err := configMessage(queue, true, bindAttrs(o))
	if err != nil {
		return nil, err
	}
	err = c.r.Request(req)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, unix.EBUSY):
		// This socket has the queue bound already; a fresh socket never does.
		return nil, busyError(queue)
	case errors.Is(err, unix.EPERM):
		// The kernel answers EPERM both when the queue belongs to another
		// socket and when the sender lacks CAP_NET_ADMIN. Every nfnetlink
		// request needs CAP_NET_ADMIN, and nfnetlink_queue answers a
		// (meaningless) packet message with ENOTSUPP and changes nothing:
		// an EPERM to that means no capability, anything else a busy queue.
		probe := netlink.Message{
			Header: netlink.Header{Type: headerType(msgPacket), Flags: netlink.Request | netlink.Acknowledge},
			Data:   nfnl.GenMsg(queue),
		}
		if perr := c.r.Request(probe); perr != nil && !errors.Is(perr, unix.EPERM) {
			return nil, busyError(queue)
		}
		return nil, fmt.Errorf("nfqueue: bind queue %d: %w: binding a queue needs CAP_NET_ADMIN in the network namespace; run as root or grant the capability", queue, unix.EPERM)
	default:
		return nil, fmt.Errorf("nfqueue: bind queue %d: %w", queue, err)
	}
}

// busyError is the error of Open for a queue that another socket has bound.
func busyError(queue uint16) error {
	return fmt.Errorf("nfqueue: bind queue %d: %w: only one socket per network namespace can bind a queue; stop the other listener or use another queue number", queue, ErrBusy)
}

// Receive blocks until the kernel queues packets and returns them; one
// read of the socket may hold several. Each packet waits in the kernel
// until SetVerdict gives it back (or the Conn is closed).
//
// Receive returns an error matching net.ErrClosed once Close is called
// (also from another goroutine, which ends a blocked Receive at once), one
// matching os.ErrDeadlineExceeded after the read deadline, ErrOverrun if
// packets could not be delivered, a *VerdictError if the kernel refused a
// verdict, and a *MalformedError for a packet message that does not
// decode. After these three the Conn stays usable.
func (c *Conn) Receive() ([]Packet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return nil, c.closedError()
	}
	return c.r.Receive(c.receiveError)
}

// receiveError turns an error of the netlink socket into Receive's error.
// An error message with a sequence number answers a verdict (whose
// sequence number is its packet's id, never 0); an error of the socket
// itself has none.
func (c *Conn) receiveError(err error) error {
	var oe *netlink.OpError
	switch {
	case c.closed.Load():
		return c.closedError()
	case errors.Is(err, unix.ENOBUFS):
		return ErrOverrun
	case errors.As(err, &oe) && oe.Sequence != 0:
		return &VerdictError{ID: oe.Sequence, Err: oe.Err}
	}
	return fmt.Errorf("nfqueue: receive from queue %d: %w", c.queue, nfnl.UnwrapOpError(err))
}

func (c *Conn) closedError() error {
	return fmt.Errorf("nfqueue: queue %d: %w", c.queue, net.ErrClosed)
}

// SetVerdict gives the kernel's verdict on the packet with id id: Accept
// lets it continue, Drop drops it. It does not wait for an answer: the
// kernel answers only a verdict it refuses, and Receive returns that as a
// *VerdictError. SetVerdict is safe to call from any goroutine, also
// while another one is blocked in Receive. After Close it returns an
// error matching net.ErrClosed (closing has dropped the packet).
func (c *Conn) SetVerdict(id uint32, v Verdict) error {
	return c.verdict(id, v, false)
}

// SetVerdictBatch gives verdict v to every packet that the queue holds
// with an id up to and including id, with one message. Packets of a
// queue are numbered in the order they were queued, so this suits a
// caller that judges them in order; a caller that holds some packets
// longer than others must give them their verdicts one by one with
// SetVerdict.
func (c *Conn) SetVerdictBatch(id uint32, v Verdict) error {
	return c.verdict(id, v, true)
}

func (c *Conn) verdict(id uint32, v Verdict, batch bool) error {
	if v != Accept && v != Drop {
		return fmt.Errorf("nfqueue: %v on packet %d: only accept and drop are supported", v, id)
	}
	if id == 0 {
		return fmt.Errorf("nfqueue: %v on packet 0: the kernel numbers packets from 1", v)
	}
	if c.closed.Load() {
		return c.closedError()
	}
	if _, err := c.nl.Send(verdictMessage(c.queue, id, v, batch)); err != nil {
		if c.closed.Load() {
			return c.closedError()
		}
		return fmt.Errorf("nfqueue: %v on packet %d of queue %d: %w", v, id, c.queue, nfnl.UnwrapOpError(err))
	}
	return nil
}

// Run receives packets until ctx is done or the Conn fails, and passes
// each packet to handle, in the order they were queued, on Run's
// goroutine. handle must return quickly; it may give the verdict itself
// or hand the packet to another goroutine that does. Run passes
// ErrOverrun, *VerdictError and *MalformedError to notice, if it is not
// nil, and goes on; a packet whose message does not decode but gave its id
// it accepts first (the queue is fail-open, and the kernel would hold the
// packet until the Conn is closed).
//
// Run returns ctx's error once ctx is done (the packets that handle has
// not judged stay in the queue until they get their verdicts or the Conn
// is closed), an error matching net.ErrClosed once Close is called, and
// any other error of Receive. Run uses the read deadline to end a blocked
// Receive when ctx is done; it clears the deadline when it starts.
func (c *Conn) Run(ctx context.Context, handle func(Packet), notice func(error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		_ = c.nl.SetReadDeadline(time.Now()) // fails only once closed, which ends Receive too
	})
	defer stop()
	for {
		pkts, err := c.Receive()
		for _, p := range pkts {
			handle(p)
		}
		var ve *VerdictError
		var me *MalformedError
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrOverrun), errors.As(err, &ve), errors.As(err, &me):
			if me != nil && me.ID != 0 {
				// Nothing else can be done with the packet; the queue
				// is fail-open.
				if verr := c.SetVerdict(me.ID, Accept); verr != nil && notice != nil {
					notice(verr)
				}
			}
			if notice != nil {
				notice(err)
			}
		default:
			if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

// SetReadDeadline sets the time after which Receive gives up with an error
// matching os.ErrDeadlineExceeded; the zero time means no deadline. It also
// ends a Receive that is blocked already.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if err := c.nl.SetReadDeadline(t); err != nil {
		if c.closed.Load() {
			return c.closedError()
		}
		return fmt.Errorf("nfqueue: set read deadline: %w", err)
	}
	return nil
}

// Close unbinds the queue and closes the socket, which ends a blocked
// Receive. The kernel drops the packets that still wait for their
// verdicts; accept them first (SetVerdictBatch with the last id seen) to
// let them pass. The unbind is not waited for: closing the socket releases the
// queue in any case. Calling Close again does nothing and returns nil.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if req, err := configMessage(c.queue, false, unbindAttrs); err == nil {
		_, _ = c.nl.Send(req) // best effort, see above
	}
	if err := c.nl.Close(); err != nil {
		return fmt.Errorf("nfqueue: close: %w", err)
	}
	return nil
}
