package denylog

import (
	"context"
	"errors"
	"net"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nflog"
)

// Source is where logged packets come from: an *nflog.Conn.
type Source interface {
	Receive() ([]nflog.Packet, error)
	Close() error
}

// Reader reads a Source and publishes the attributed events.
type Reader struct {
	// Table returns the table in force, to attribute packets with.
	Table func() *fence.Result
	// Resolver names containers; nil leaves names empty.
	Resolver Resolver
	// Publish receives every attributed event.
	Publish func(Event)
	// Overrun, if set, is called when the kernel dropped packets because
	// the reader fell behind.
	Overrun func()
}

// maxBad is how many failed receives in a row end Run.
const maxBad = 10

// Run reads src until ctx ends or src fails maxBad times in a row, then
// closes src. It returns nil when ctx ended.
func (r *Reader) Run(ctx context.Context, src Source) error {
	stop := context.AfterFunc(ctx, func() { src.Close() })
	defer func() {
		if stop() {
			src.Close()
		}
	}()
	bad := 0
	for {
		pkts, err := src.Receive()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, nflog.ErrOverrun) {
			if r.Overrun != nil {
				r.Overrun()
			}
			continue
		}
		if err != nil {
			// One bad message must not end the log; a socket that keeps
			// failing does.
			if bad++; bad < maxBad {
				continue
			}
			return err
		}
		bad = 0
		t := r.Table()
		for _, p := range pkts {
			if e, ok := Attribute(p, t, r.Resolver, ifName); ok {
				r.Publish(e)
			}
		}
	}
}

// ifName names an interface of the current network namespace.
func ifName(index uint32) string {
	ifc, err := net.InterfaceByIndex(int(index))
	if err != nil {
		return ""
	}
	return ifc.Name
}

// CopyRange is how much of each logged packet the kernel copies to the
// reader: enough for the IPv6 header, some extension headers and the
// transport header.
const CopyRange = 128

// Open binds NFLOG group to read what the deny rules log, copying
// CopyRange bytes of each packet. Its error matches nflog.ErrBusy when
// another socket holds the group.
func Open(group uint16) (Source, error) {
	c, err := nflog.Open(group, CopyRange)
	if err != nil {
		return nil, err // not a nil *nflog.Conn in a non-nil Source
	}
	return c, nil
}
