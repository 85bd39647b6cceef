package nfqueue_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/dockerfence/dockerfence/nfqueue"
)

// ExampleConn_Run holds the packets that a rule such as
//
//	iptables -A OUTPUT -p udp --sport 53 -j NFQUEUE --queue-num 5 --queue-bypass
//
// queues, hands each to a worker that judges it, and accepts what is still
// held when it stops, so that closing drops nothing.
func ExampleConn_Run() {
	c, err := nfqueue.Open(5, nfqueue.Options{MaxLen: 4096})
	if errors.Is(err, nfqueue.ErrBusy) {
		fmt.Fprintln(os.Stderr, "another process holds queue 5")
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer c.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	work := make(chan nfqueue.Packet, 4096)
	go func() {
		for p := range work {
			// Judge p (parse it, update sets), then give it back.
			if err := c.SetVerdict(p.ID, nfqueue.Accept); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
	}()
	var last uint32
	err = c.Run(ctx, func(p nfqueue.Packet) {
		last = p.ID
		select {
		case work <- p:
		default: // the worker is behind: let the packet pass unjudged
			_ = c.SetVerdict(p.ID, nfqueue.Accept)
		}
	}, func(err error) {
		fmt.Fprintln(os.Stderr, err) // overruns, refused verdicts, malformed messages
	})
	close(work)
	if last != 0 {
		_ = c.SetVerdictBatch(last, nfqueue.Accept) // whatever is still held passes
	}
	if !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, err)
	}
}
