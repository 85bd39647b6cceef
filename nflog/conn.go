package nflog

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dockerfence/dockerfence/internal/nfnl"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrBusy is returned by Open, wrapped, when another socket in the network
// namespace already owns the group; test for it with errors.Is. The kernel
// answers EPERM in that case, as it does to a process without
// CAP_NET_ADMIN, and Open asks it once more to tell the two apart.
var ErrBusy = errors.New("the NFLOG group is already bound by another socket")

// ErrOverrun is returned by Receive when the socket's receive buffer
// overflowed (ENOBUFS): the kernel dropped packets that were not read in
// time. The Conn stays usable; the next Receive returns the packets that
// came after.
var ErrOverrun = errors.New("nflog: receive buffer overrun: the kernel dropped logged packets that were not read in time")

// receiveBuffer is the receive buffer Open asks for: large, so that a burst
// of logged packets rarely overruns it.
const receiveBuffer = 8 << 20

// configTimeout bounds how long Open waits for the kernel to acknowledge
// the bind.
const configTimeout = 5 * time.Second

// Conn is a socket bound to one NFLOG group. Receive may be called from one
// goroutine while Close or SetReadDeadline are called from another.
type Conn struct {
	nl     *netlink.Conn
	group  uint16
	closed atomic.Bool

	mu sync.Mutex // serialises Receive; guards r
	r  nfnl.Reader[Packet]
	// conntrack is set when the kernel sends each packet's connection.
	conntrack bool
}

// newConn returns a Conn on socket nl for group.
func newConn(nl *netlink.Conn, group uint16) *Conn {
	c := &Conn{nl: nl, group: group}
	c.r = nfnl.Reader[Packet]{NL: nl, Type: headerType(msgPacket), Parse: parsePacket}
	return c
}

// Open binds NFLOG group group in the calling thread's network namespace, in
// copy mode "packet" with a copy range of copyRange bytes (0 means as much
// as the kernel allows, about 64 KiB). It asks the kernel to send every
// packet at once (queue threshold 1) and gives the socket a large receive
// buffer (SO_RCVBUFFORCE, or SO_RCVBUF up to net.core.rmem_max without
// CAP_NET_ADMIN).
//
// To bind a group in another namespace, call Open on a locked OS thread
// that has switched into it; the socket stays there afterwards.
//
// Open returns an error that matches ErrBusy if another socket in the
// namespace owns the group, and one that matches unix.EPERM if the process
// lacks CAP_NET_ADMIN in the namespace.
func Open(group uint16, copyRange uint16) (*Conn, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("nflog: open a netfilter netlink socket: %w", err)
	}
	if err := nfnl.SetReceiveBuffer(nl, receiveBuffer); err != nil {
		nl.Close()
		return nil, fmt.Errorf("nflog: %w", err)
	}
	if err := nl.SetReadDeadline(time.Now().Add(configTimeout)); err != nil {
		nl.Close()
		return nil, fmt.Errorf("nflog: set read deadline: %w", err)
	}
	c, err := open(nl, group, copyRange)
	if err != nil {
		nl.Close()
		return nil, err
	}
	if err := nl.SetReadDeadline(time.Time{}); err != nil {
		nl.Close()
		return nil, fmt.Errorf("nflog: clear read deadline: %w", err)
	}
	return c, nil
}

// open binds group on nl and waits for the kernel's acknowledgement. Packets
// that arrive before it are kept for the first Receive.
func open(nl *netlink.Conn, group, copyRange uint16) (*Conn, error) {
	c := newConn(nl, group)
	req, err := configMessage(group, true, bindAttrs(copyRange))
	if err != nil {
		return nil, err
	}
	err = c.r.Request(req)
	switch {
	case err == nil:
		c.conntrack = c.askConntrack(group)
		return c, nil
	case errors.Is(err, unix.EBUSY):
		// This socket already owns the group; a fresh socket never does.
		return nil, busyError(group)
	case errors.Is(err, unix.EPERM):
		// The kernel answers EPERM both when the group belongs to another
		// socket and when the sender lacks CAP_NET_ADMIN. Every nfnetlink
		// request needs CAP_NET_ADMIN, and nfnetlink_log answers a
		// (meaningless) packet message with ENOTSUPP and changes nothing:
		// an EPERM to that means no capability, anything else a busy group.
		probe := netlink.Message{
			Header: netlink.Header{Type: headerType(msgPacket), Flags: netlink.Request | netlink.Acknowledge},
			Data:   nfnl.GenMsg(group),
		}
		if perr := c.r.Request(probe); perr != nil && !errors.Is(perr, unix.EPERM) {
			return nil, busyError(group)
		}
		return nil, fmt.Errorf("nflog: bind NFLOG group %d: %w: binding a group needs CAP_NET_ADMIN in the network namespace; run as root or grant the capability", group, unix.EPERM)
	default:
		return nil, fmt.Errorf("nflog: bind NFLOG group %d: %w", group, err)
	}
}

// askConntrack asks the kernel to send each packet's connection with it
// (Packet.OrigDstPort) and reports whether it will. The kernel needs
// ctnetlink for that: it loads the module on the first request and
// answers EAGAIN, so the request is made twice; without ctnetlink the
// group logs packets without their connections.
func (c *Conn) askConntrack(group uint16) bool {
	for range 2 {
		req, err := configMessage(group, true, conntrackAttrs)
		if err != nil {
			return false
		}
		err = c.r.Request(req)
		if err == nil {
			return true
		}
		if !errors.Is(err, unix.EAGAIN) {
			return false
		}
	}
	return false
}

// Conntrack reports whether the kernel sends each packet's connection
// with it (Packet.OrigDstPort): it does where ctnetlink is there.
func (c *Conn) Conntrack() bool { return c.conntrack }

// busyError is the error of Open for a group that another socket owns.
func busyError(group uint16) error {
	return fmt.Errorf("nflog: bind NFLOG group %d: %w: only one socket per network namespace can receive a group; stop the other listener (ulogd, another dockerfence) or use another group", group, ErrBusy)
}

// Receive blocks until the kernel sends logged packets and returns them;
// one read of the socket may hold several. It returns an error matching
// net.ErrClosed once Close is called (also from another goroutine, which
// ends a blocked Receive at once), one matching os.ErrDeadlineExceeded
// after the read deadline, and ErrOverrun if packets were lost.
func (c *Conn) Receive() ([]Packet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return nil, c.closedError()
	}
	return c.r.Receive(c.receiveError)
}

// receiveError turns an error of the netlink socket into Receive's error.
func (c *Conn) receiveError(err error) error {
	switch {
	case c.closed.Load():
		return c.closedError()
	case errors.Is(err, unix.ENOBUFS):
		return ErrOverrun
	}
	return fmt.Errorf("nflog: receive from NFLOG group %d: %w", c.group, nfnl.UnwrapOpError(err))
}

func (c *Conn) closedError() error {
	return fmt.Errorf("nflog: receive from NFLOG group %d: %w", c.group, net.ErrClosed)
}

// SetReadDeadline sets the time after which Receive gives up with an error
// matching os.ErrDeadlineExceeded; the zero time means no deadline. It also
// ends a Receive that is blocked already.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if err := c.nl.SetReadDeadline(t); err != nil {
		return fmt.Errorf("nflog: set read deadline: %w", err)
	}
	return nil
}

// Close unbinds the group and closes the socket, which ends a blocked
// Receive. The unbind is not waited for: closing the socket releases the
// group in any case. Calling Close again does nothing and returns nil.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if req, err := configMessage(c.group, false, unbindAttrs); err == nil {
		_, _ = c.nl.Send(req) // best effort, see above
	}
	if err := c.nl.Close(); err != nil {
		return fmt.Errorf("nflog: close: %w", err)
	}
	return nil
}
