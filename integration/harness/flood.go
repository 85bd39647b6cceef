package harness

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dockerfence/dockerfence/integration/topo"
)

// UDPFlood sends pps datagrams a second to a target, and as many to a
// control address if it has one, from one unconnected IPv4 socket, paced by
// the clock: each millisecond it sends what is due, so a late tick is caught
// up and the average rate holds. An unconnected socket ignores the ICMP
// errors of a reject, so a write fails only when the sender has no route
// (its interface is gone); such writes are counted apart and not as sent.
// A sender that is a *MovingNS is followed: after each of its moves the
// flood opens a new socket in the new namespace before its next datagram.
type UDPFlood struct {
	from            Doer
	target, control netip.AddrPort
	pps             int
	sent, ctlSent   atomic.Int64
	failed          atomic.Int64
	// firstOK is when the first write succeeded after the sender last
	// moved (unix nanoseconds, 0 until then).
	firstOK atomic.Int64
	lastErr atomic.Value // string
	stop    chan struct{}
	done    chan struct{}
	start   time.Time
	end     time.Time
}

// StartUDPFlood opens the socket in from and starts sending pps datagrams
// a second to target and, unless control is "", to control (both ip:port);
// it fails the test if the socket cannot be opened.
func StartUDPFlood(t topo.T, from Doer, target, control string, pps int) *UDPFlood {
	t.Helper()
	f := &UDPFlood{from: from, target: netip.MustParseAddrPort(target), pps: pps,
		stop: make(chan struct{}), done: make(chan struct{})}
	if control != "" {
		f.control = netip.MustParseAddrPort(control)
	}
	c, err := f.open()
	if err != nil {
		t.Fatalf("UDP flood: open the sender's socket: %v", err)
	}
	f.start = time.Now()
	go f.run(c)
	return f
}

// open opens an unconnected IPv4 UDP socket in the sender's namespace.
func (f *UDPFlood) open() (*net.UDPConn, error) {
	var c *net.UDPConn
	err := f.from.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp4", &net.UDPAddr{})
		return err
	})
	return c, err
}

// run sends until Halt, from c and, after each move of a MovingNS sender,
// from a new socket in the new namespace.
func (f *UDPFlood) run(c *net.UDPConn) {
	defer close(f.done)
	defer func() { c.Close() }()
	gen := 0
	mv, moving := f.from.(*MovingNS)
	if moving {
		gen = mv.Generation()
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	payload := make([]byte, 16)
	var due int64
	for {
		select {
		case <-f.stop:
			f.end = time.Now()
			return
		case <-tick.C:
		}
		if moving && mv.Generation() != gen {
			nc, err := f.open()
			if err != nil {
				f.lastErr.Store("open a socket in the new namespace: " + err.Error())
				continue // the namespace may not be ready yet: retry next tick
			}
			c.Close()
			c, gen = nc, mv.Generation()
			f.firstOK.Store(0)
		}
		target := int64(time.Since(f.start).Seconds() * float64(f.pps))
		for ; due < target; due++ {
			copy(payload, fmt.Sprintf("%016d", due))
			if _, err := c.WriteToUDPAddrPort(payload, f.target); err != nil {
				f.failed.Add(1)
				f.lastErr.Store(err.Error())
			} else {
				f.sent.Add(1)
				if moving && f.firstOK.Load() == 0 {
					f.firstOK.Store(time.Now().UnixNano())
				}
			}
			if !f.control.IsValid() {
				continue
			}
			if _, err := c.WriteToUDPAddrPort(payload, f.control); err == nil {
				f.ctlSent.Add(1)
			}
		}
	}
}

// Sent is the number of datagrams sent to the target so far.
func (f *UDPFlood) Sent() int64 { return f.sent.Load() }

// ControlSent is the number of datagrams sent to the control so far.
func (f *UDPFlood) ControlSent() int64 { return f.ctlSent.Load() }

// Failed is the number of writes to the target that the sender's kernel
// refused (no route).
func (f *UDPFlood) Failed() int64 { return f.failed.Load() }

// FirstOK is when the first write to the target succeeded after a
// MovingNS sender last moved; the zero time until then.
func (f *UDPFlood) FirstOK() time.Time {
	if n := f.firstOK.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// LastError is the sender's last write or socket error, "none" if none.
func (f *UDPFlood) LastError() string {
	if s, ok := f.lastErr.Load().(string); ok {
		return s
	}
	return "none"
}

// Halt stops the flood and waits for it; it returns how long it ran.
func (f *UDPFlood) Halt() time.Duration {
	close(f.stop)
	<-f.done
	return f.end.Sub(f.start)
}

// UDPCounter counts the datagrams that reach an address, and notes when the
// first and the last arrived.
type UDPCounter struct {
	conn        *net.UDPConn
	n           atomic.Int64
	first, last atomic.Int64 // unix nanoseconds
	done        chan struct{}
}

// ListenUDPCounter starts a UDPCounter on the IPv4 addr (ip:port) inside
// ns, with a receive buffer large enough that a burst is not dropped;
// cleanup closes it.
func ListenUDPCounter(t topo.T, ns *topo.NS, addr string) *UDPCounter {
	t.Helper()
	var conn *net.UDPConn
	err := ns.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	})
	if err != nil {
		t.Fatalf("UDP counter: listen on %s in %s: %v", addr, ns.Name, err)
	}
	conn.SetReadBuffer(4 << 20)
	u := &UDPCounter{conn: conn, done: make(chan struct{})}
	t.Cleanup(u.Close)
	go func() {
		defer close(u.done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			now := time.Now().UnixNano()
			u.first.CompareAndSwap(0, now)
			u.last.Store(now)
			u.n.Add(1)
		}
	}()
	return u
}

// Count is the number of datagrams received so far.
func (u *UDPCounter) Count() int64 { return u.n.Load() }

// First and Last are when the first and the last datagram arrived; the
// zero time if none did.
func (u *UDPCounter) First() time.Time { return unixNano(u.first.Load()) }

// Last: see First.
func (u *UDPCounter) Last() time.Time { return unixNano(u.last.Load()) }

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Close stops the counter and waits for its goroutine; it is safe to call
// more than once.
func (u *UDPCounter) Close() {
	if u.conn.Close() == nil {
		<-u.done
	}
}

// UDPRcvErrors reads RcvbufErrors of /proc/net/snmp in ns: datagrams the
// kernel dropped because a receiver's buffer was full, which would make a
// count too low.
func UDPRcvErrors(t topo.T, ns *topo.NS) int64 {
	t.Helper()
	out := ns.Run(t, "cat", "/proc/net/snmp")
	var names, values []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Udp:" {
			if names == nil {
				names = f
			} else {
				values = f
			}
		}
	}
	for i, n := range names {
		if n == "RcvbufErrors" && i < len(values) {
			v, err := strconv.ParseInt(values[i], 10, 64)
			if err == nil {
				return v
			}
		}
	}
	t.Fatalf("no Udp RcvbufErrors in /proc/net/snmp of %s:\n%s", ns.Name, out)
	return 0
}
