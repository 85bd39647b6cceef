package harness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/dockerfence/dockerfence/integration/topo"
)

// SYNKey is where a TCP SYN came from and the port it was for.
type SYNKey struct {
	Src   netip.Addr
	DPort uint16
}

// SYNCounter counts the TCP SYNs (without ACK) that a network namespace
// delivers locally, by source address and destination port, IPv4 and
// IPv6. A raw socket gets a copy of every TCP segment the kernel delivers,
// after the input hook and whether or not a socket listens on the port, so
// the counts are what passed every firewall on the way in.
type SYNCounter struct {
	mu          sync.Mutex
	seen        map[SYNKey]int64
	first, last map[SYNKey]time.Time
}

// CountSYNs opens a raw TCP socket of each family in ns and counts the
// SYNs they see until the test ends; it fails the test if a socket cannot
// be opened.
func CountSYNs(t topo.T, ns Doer) *SYNCounter {
	t.Helper()
	c, stop, err := StartSYNCounter(ns)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(stop)
	return c
}

// StartSYNCounter is CountSYNs for a goroutine other than the test's: it
// returns an error instead of failing the test, and a function that
// closes the sockets, which the caller must call.
func StartSYNCounter(ns Doer) (*SYNCounter, func(), error) {
	c := &SYNCounter{seen: map[SYNKey]int64{}, first: map[SYNKey]time.Time{}, last: map[SYNKey]time.Time{}}
	var stops []func()
	stop := func() {
		for _, s := range stops {
			s()
		}
	}
	for _, network := range []string{"ip4:tcp", "ip6:tcp"} {
		var pc net.PacketConn
		if err := ns.Do(func() error {
			var err error
			pc, err = net.ListenPacket(network, "")
			return err
		}); err != nil {
			stop()
			return nil, nil, fmt.Errorf("raw socket %s: %w", network, err)
		}
		done := make(chan struct{})
		stops = append(stops, func() {
			pc.Close()
			<-done
		})
		go c.read(pc, done)
	}
	return c, stop, nil
}

func (c *SYNCounter) read(pc net.PacketConn, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf) // the TCP header on: Go strips IPv4's
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ipa, ok := from.(*net.IPAddr)
		if !ok || n < 14 {
			continue
		}
		src, ok := netip.AddrFromSlice(ipa.IP)
		if !ok {
			continue
		}
		if flags := buf[13]; flags&0x12 != 0x02 { // SYN without ACK
			continue
		}
		k := SYNKey{Src: src.Unmap(), DPort: binary.BigEndian.Uint16(buf[2:])}
		now := time.Now()
		c.mu.Lock()
		c.seen[k]++
		if c.first[k].IsZero() {
			c.first[k] = now
		}
		c.last[k] = now
		c.mu.Unlock()
	}
}

// Count returns how many SYNs from src to port arrived.
func (c *SYNCounter) Count(src netip.Addr, port uint16) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[SYNKey{Src: src, DPort: port}]
}

// Sources returns the count of SYNs to port by source address.
func (c *SYNCounter) Sources(port uint16) map[netip.Addr]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[netip.Addr]int64{}
	for k, n := range c.seen {
		if k.DPort == port {
			m[k.Src] += n
		}
	}
	return m
}

// Span returns when the first and the last SYN from src to port arrived,
// zero times if none did.
func (c *SYNCounter) Span(src netip.Addr, port uint16) (first, last time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := SYNKey{Src: src, DPort: port}
	return c.first[k], c.last[k]
}
