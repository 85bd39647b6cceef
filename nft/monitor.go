package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Change is one committed nf_tables transaction that touched the table.
type Change struct {
	// Pid and Proc name the process that committed it, as the kernel
	// reports them: the id of the sending thread, in the initial pid
	// namespace, so it cannot tell dockerfence's own commits apart.
	Pid  uint32
	Proc string
	// Port is the netlink port ID of the socket that sent the transaction
	// (the notification's header): a lasting Kernel compares it with its
	// own (Protection().Port) to skip its own commits.
	Port uint32
	// Sets names the sets whose elements the transaction changed.
	Sets []string
}

// ErrOverrun is returned by Watch when the kernel dropped notifications
// because the socket's buffer was full: changes may have been missed, and
// the caller should compare the whole table and watch again.
var ErrOverrun = errors.New("nftables monitor overrun: notifications were lost")

// monitorBuffer is the receive buffer of the monitor socket: large, so that
// the notifications of a big apply (one a set element) rarely overrun it.
const monitorBuffer = 32 << 20

// Watch reports on out every transaction, by any process, that changes the
// inet table named table: its deletion (also by "nft flush ruleset"), or a
// change of its chains, rules, sets or elements. It returns when ctx ends
// (nil), or with an error when the subscription fails or overruns
// (ErrOverrun); the caller should then resync fully and call Watch again.
//
// ready, if not nil, is called once the subscription is in place: a change
// after that is reported, so a caller that compares the table then misses
// nothing.
func (k Kernel) Watch(ctx context.Context, table string, out chan<- Change, ready func()) error {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: k.NetNS})
	if err != nil {
		return fmt.Errorf("nftables monitor: %w", explain(err))
	}
	defer c.Close()
	if err := c.SetReadBuffer(monitorBuffer); err != nil {
		return fmt.Errorf("nftables monitor: %w", err)
	}
	rc, err := c.SyscallConn()
	if err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, monitorBuffer)
		})
	}
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("nftables monitor: join group: %w", explain(err))
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if ready != nil {
		ready()
	}
	touched := false
	var sets []string
	for {
		msgs, err := c.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.ENOBUFS) {
				return ErrOverrun
			}
			return fmt.Errorf("nftables monitor: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
				continue
			}
			typ := int(m.Header.Type & 0xff)
			if typ == unix.NFT_MSG_NEWGEN {
				if touched {
					ch := genChange(m.Data[4:])
					ch.Port = m.Header.PID
					ch.Sets = sets
					select {
					case out <- ch:
					case <-ctx.Done():
						return nil
					}
				}
				touched, sets = false, nil
				continue
			}
			// The netdev and bridge tables of the same name are
			// dockerfence's too (Table.Netdev, Table.Bridge): a
			// change to them is one to the table.
			if m.Data[0] != unix.NFPROTO_INET && m.Data[0] != unix.NFPROTO_NETDEV && m.Data[0] != unix.NFPROTO_BRIDGE || attrString(m.Data[4:], 1) != table {
				continue
			}
			touched = true
			if typ == unix.NFT_MSG_NEWSETELEM || typ == unix.NFT_MSG_DELSETELEM {
				if name := attrString(m.Data[4:], unix.NFTA_SET_ELEM_LIST_SET); name != "" && !slices.Contains(sets, name) {
					sets = append(sets, name)
				}
			}
		}
	}
}

// attrString returns the string attribute typ of a notification. Attribute
// 1 is the table's name in table, chain, rule, set and element messages alike.
func attrString(b []byte, typ uint16) string {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == typ {
			return ad.String()
		}
	}
	return ""
}

// genChange decodes the process of a NEWGEN notification.
func genChange(b []byte) Change {
	var ch Change
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ch
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_GEN_PROC_PID:
			ch.Pid = ad.Uint32()
		case unix.NFTA_GEN_PROC_NAME:
			ch.Proc = ad.String()
		}
	}
	return ch
}
