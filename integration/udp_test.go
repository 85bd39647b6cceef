package integration

import (
	"net"
	"testing"

	"github.com/dockerfence/dockerfence/integration/topo"
	"sync/atomic"
	"time"
)

// netDialUDPFrom dials addr over UDP from the local address src ("" for any).
// Call it inside NS.Do so that the socket lives in that namespace.
func netDialUDPFrom(src, addr string) (*net.UDPConn, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	var laddr *net.UDPAddr
	if src != "" {
		laddr = &net.UDPAddr{IP: net.ParseIP(src)}
	}
	return net.DialUDP("udp", laddr, raddr)
}

// floodLoop sends 4 datagrams every millisecond (about 4000 a second, well
// above the 1000 the leak tests promise) until stop closes.
func floodLoop(c *net.UDPConn, stop <-chan struct{}, sent *int64) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			for i := 0; i < 4; i++ {
				c.Write([]byte("leak?"))
				atomic.AddInt64(sent, 1)
			}
		}
	}
}

// startFlood starts floodLoop from a socket in ns towards target; closing the
// returned channel stops it. sent counts the datagrams sent.
func startFlood(t *testing.T, ns *topo.NS, target string, sent *int64) chan struct{} {
	t.Helper()
	stop := make(chan struct{})
	err := ns.Do(func() error {
		c, err := netDialUDPFrom("", target)
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			floodLoop(c, stop, sent)
		}()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return stop
}
