package nfnl

import (
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
)

// Reader reads the packet messages of one netfilter subsystem (NFLOG,
// NFQUEUE) from its netlink socket: a request waits for its
// acknowledgement and keeps the packets that arrive meanwhile for the next
// Receive, and an error met after some packets of one read is kept for
// the Receive after. It is not safe for concurrent use: its owner
// serialises Request and Receive.
type Reader[P any] struct {
	NL *netlink.Conn
	// Type is the header type of a packet message.
	Type netlink.HeaderType
	// Parse decodes a packet message read at now.
	Parse func(data []byte, now time.Time) (P, error)

	pending []P
	err     error
}

// Request sends req with an acknowledgement requested and waits for the
// acknowledgement, keeping packets that arrive meanwhile. It returns the
// kernel's error, if any.
func (r *Reader[P]) Request(req netlink.Message) error {
	sent, err := r.NL.Send(req)
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	for {
		now := time.Time{}
		for m, err := range r.NL.ReceiveIter() {
			if err != nil {
				// The only request in flight is ours, so a netlink
				// error message answers it.
				return UnwrapOpError(err)
			}
			switch {
			case m.Header.Type == netlink.Error && m.Header.Sequence == sent.Header.Sequence:
				return nil // an acknowledgement: errors come as err above
			case m.Header.Type == r.Type:
				if now.IsZero() {
					now = time.Now()
				}
				p, err := r.Parse(m.Data, now)
				if err != nil {
					return err
				}
				r.pending = append(r.pending, p)
			}
		}
	}
}

// Receive returns the packets kept by Request, else the error kept by the
// last Receive, else reads the socket until it holds packets or fails.
// recvErr turns an error of the socket into the one Receive returns.
func (r *Reader[P]) Receive(recvErr func(error) error) ([]P, error) {
	if len(r.pending) > 0 {
		p := r.pending
		r.pending = nil
		return p, nil
	}
	if err := r.err; err != nil {
		r.err = nil
		return nil, err
	}
	for {
		pkts, err := r.read(recvErr)
		if len(pkts) > 0 {
			r.err = err
			return pkts, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// read reads the socket once and returns the packets it held. An error met
// after some packets is returned with them.
func (r *Reader[P]) read(recvErr func(error) error) ([]P, error) {
	var pkts []P
	var now time.Time
	for m, err := range r.NL.ReceiveIter() {
		if err != nil {
			return pkts, recvErr(err)
		}
		if m.Header.Type != r.Type {
			continue // a late acknowledgement, or NLMSG_DONE after a batch
		}
		if now.IsZero() {
			now = time.Now()
		}
		p, err := r.Parse(m.Data, now)
		if err != nil {
			return pkts, err
		}
		pkts = append(pkts, p)
	}
	return pkts, nil
}
