// Package nfnl holds what the nfnetlink subsystems that dockerfence speaks
// (nfnetlink_log in nflog/, nfnetlink_queue in nfqueue/) share: the
// nfgenmsg header, message types, attribute encoding in network byte
// order, the socket's receive buffer and the errors of mdlayher/netlink.
package nfnl

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// HeaderType returns the netlink message type of message msg of nfnetlink
// subsystem subsys (such as unix.NFNL_SUBSYS_QUEUE).
func HeaderType(subsys uint16, msg uint8) netlink.HeaderType {
	return netlink.HeaderType(subsys<<8 | uint16(msg))
}

// GenMsg returns the nfgenmsg header of a request about resource res (an
// NFLOG group, a queue number): family AF_UNSPEC, version NFNETLINK_V0 and
// res_id, res in network order.
func GenMsg(res uint16) []byte {
	return []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, byte(res >> 8), byte(res)}
}

// Attrs encodes the attributes that attrs writes, in network byte order
// as nfnetlink wants them.
func Attrs(attrs func(ae *netlink.AttributeEncoder)) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	attrs(ae)
	return ae.Encode()
}

// SetReceiveBuffer sets the socket's receive buffer to size bytes:
// SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN, so
// SO_RCVBUF (capped at rmem_max) is the fallback.
func SetReceiveBuffer(nl *netlink.Conn, size int) error {
	rc, err := nl.SyscallConn()
	if err == nil {
		var serr error
		err = rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
		})
		if err == nil && serr == nil {
			return nil
		}
	}
	if err := nl.SetReadBuffer(size); err != nil {
		return fmt.Errorf("set the receive buffer to %d bytes: %w", size, err)
	}
	return nil
}

// UnwrapOpError returns the error inside a *netlink.OpError, whose message
// repeats the operation, or err itself.
func UnwrapOpError(err error) error {
	var oe *netlink.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
