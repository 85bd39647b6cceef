package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"os"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/socket"
	"golang.org/x/sys/unix"
)

// fileSocket is a netlink.Socket over a socket this process did not open:
// an nf_tables socket an earlier daemon left in systemd's file descriptor
// store. mdlayher/netlink can only dial sockets of its own, so this is the
// little it needs to use an inherited one: send, receive, deadlines and the
// raw descriptor.
type fileSocket struct {
	s *socket.Conn
	// buf is the receive buffer, grown to the largest datagram seen; each
	// receive copies what it hands out, so the buffer is reused.
	buf []byte
}

// fileConn makes an nf_tables conn of f, which must be a netlink socket of
// the netfilter family. The conn works on a duplicate of f's descriptor:
// the caller may close f. It keeps the socket's port ID, options and
// buffers as its opener set them, and drops the answers left in it before
// its first exchange.
func fileConn(f *os.File) (*conn, error) {
	s, err := socket.FileConn(f, "netlink")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*conn, error) {
		s.Close()
		return nil, err
	}
	domain, err := s.GetsockoptInt(unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return fail(err)
	}
	proto, err := s.GetsockoptInt(unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return fail(err)
	}
	if domain != unix.AF_NETLINK || proto != unix.NETLINK_NETFILTER {
		return fail(fmt.Errorf("descriptor %d is not a netlink netfilter socket (domain %d, protocol %d)", f.Fd(), domain, proto))
	}
	sa, err := s.Getsockname()
	if err != nil {
		return fail(err)
	}
	nl, ok := sa.(*unix.SockaddrNetlink)
	if !ok || nl.Pid == 0 {
		return fail(errors.New("the inherited netlink socket has no port ID"))
	}
	fs := &fileSocket{s: s, buf: make([]byte, messageBuffer)}
	return &conn{c: netlink.NewConn(fs, nl.Pid), stale: true}, nil
}

// Close closes the socket (this process's descriptor of it).
func (f *fileSocket) Close() error { return f.s.Close() }

// Send sends one message.
func (f *fileSocket) Send(m netlink.Message) error {
	return f.SendMessages([]netlink.Message{m})
}

// SendMessages sends msgs in one datagram.
func (f *fileSocket) SendMessages(msgs []netlink.Message) error {
	var buf []byte
	for _, m := range msgs {
		b, err := m.MarshalBinary()
		if err != nil {
			return err
		}
		buf = append(buf, b...)
	}
	_, err := f.s.Sendmsg(context.Background(), buf, nil, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}, 0)
	return err
}

// Receive reads the messages of one datagram.
func (f *fileSocket) Receive() ([]netlink.Message, error) {
	var msgs []netlink.Message
	for m, err := range f.ReceiveIter() {
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// ReceiveIter reads one datagram and yields its messages.
func (f *fileSocket) ReceiveIter() iter.Seq2[netlink.Message, error] {
	return func(yield func(netlink.Message, error) bool) {
		msgs, err := f.receive()
		if err != nil {
			yield(netlink.Message{}, err)
			return
		}
		for _, m := range msgs {
			if !yield(m, nil) {
				return
			}
		}
	}
}

// receive reads one datagram, first peeking at its size so that the buffer
// can hold it.
func (f *fileSocket) receive() ([]netlink.Message, error) {
	n, _, _, _, err := f.s.Recvmsg(context.Background(), f.buf, nil, unix.MSG_PEEK|unix.MSG_TRUNC)
	if err != nil {
		return nil, err
	}
	if n > len(f.buf) {
		f.buf = make([]byte, n)
	}
	n, _, flags, _, err := f.s.Recvmsg(context.Background(), f.buf, nil, 0)
	if err != nil {
		return nil, err
	}
	if flags&unix.MSG_TRUNC != 0 {
		return nil, errors.New("netlink datagram truncated")
	}
	return parseMessages(append([]byte(nil), f.buf[:n]...))
}

// parseMessages splits a datagram into its netlink messages.
func parseMessages(b []byte) ([]netlink.Message, error) {
	var msgs []netlink.Message
	for len(b) >= nlmsgHeader {
		l := int(binary.NativeEndian.Uint32(b))
		if l < nlmsgHeader || l > len(b) {
			return nil, fmt.Errorf("netlink message of length %d in %d bytes", l, len(b))
		}
		end := min((l+3)&^3, len(b))
		var m netlink.Message
		if err := m.UnmarshalBinary(b[:end]); err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
		b = b[end:]
	}
	return msgs, nil
}

// SetDeadline sets the read and write deadlines.
func (f *fileSocket) SetDeadline(t time.Time) error { return f.s.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (f *fileSocket) SetReadDeadline(t time.Time) error { return f.s.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (f *fileSocket) SetWriteDeadline(t time.Time) error { return f.s.SetWriteDeadline(t) }

// SyscallConn returns the raw socket, for conn.send.
func (f *fileSocket) SyscallConn() (syscall.RawConn, error) { return f.s.SyscallConn() }
