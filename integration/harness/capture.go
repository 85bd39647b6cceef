package harness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"github.com/dockerfence/dockerfence/integration/topo"
)

// CaptureKey identifies a packet at its destination: for ICMP and ICMPv6
// echo requests, SPort and DPort are the echo id and sequence number.
type CaptureKey struct {
	Proto        uint8
	Src, Dst     netip.Addr
	SPort, DPort uint16
}

// Capture records what raw sockets bound to destination addresses receive.
// The kernel hands a raw socket a copy of every packet of its protocol that
// it delivers locally, after the input hook: so a Capture sees exactly the
// packets that passed a firewall on the way.
type Capture struct {
	t    topo.T
	mu   sync.Mutex
	seen map[CaptureKey]bool
}

// NewCapture returns a Capture whose sockets close when the test ends.
func NewCapture(t topo.T) *Capture {
	return &Capture{t: t, seen: map[CaptureKey]bool{}}
}

// Listen opens a raw socket for proto bound to addr (on the interface with
// index zone, for a link-local address) in ns and records the packets it
// receives (for ICMP and ICMPv6, the echo requests) until the test ends.
func (c *Capture) Listen(ns *topo.NS, addr netip.Addr, zone int, proto uint8) {
	network := fmt.Sprintf("ip4:%d", proto)
	if addr.Is6() {
		network = fmt.Sprintf("ip6:%d", proto)
	}
	laddr := addr.String()
	if zone != 0 {
		laddr += "%" + strconv.Itoa(zone)
	}
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, laddr)
		return err
	}); err != nil {
		c.t.Fatalf("raw socket %s %s in %s: %v", network, laddr, ns.Name, err)
	}
	done := make(chan struct{})
	c.t.Cleanup(func() {
		pc.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			ipa, ok := from.(*net.IPAddr)
			if !ok {
				continue
			}
			src, ok := netip.AddrFromSlice(ipa.IP)
			if !ok {
				continue
			}
			k := CaptureKey{Proto: proto, Src: src.Unmap(), Dst: addr}
			b := buf[:n]
			switch proto {
			case ProtoICMP, ProtoICMPv6:
				if len(b) < 8 || (proto == ProtoICMP && b[0] != 8) || (proto == ProtoICMPv6 && b[0] != 128) {
					continue // not an echo request
				}
				k.SPort, k.DPort = binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:])
			default:
				if len(b) < 4 {
					continue
				}
				k.SPort, k.DPort = binary.BigEndian.Uint16(b), binary.BigEndian.Uint16(b[2:])
			}
			c.mu.Lock()
			c.seen[k] = true
			c.mu.Unlock()
		}
	}()
}

// Has reports whether a packet with key k arrived.
func (c *Capture) Has(k CaptureKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen[k]
}
