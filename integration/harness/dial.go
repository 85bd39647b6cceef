package harness

import (
	"time"

	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nft"
)

// Outcome names what a dial's error shows: "ok" for none, "refused" (a
// reset or an ICMP error), "timeout", or the error itself.
func Outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case topo.IsRefused(err):
		return "refused"
	case topo.IsTimeout(err):
		return "timeout"
	}
	return err.Error()
}

// DialOutcome connects over TCP from ns to addr, giving up after timeout,
// closes the connection and reports the Outcome.
func DialOutcome(ns *topo.NS, addr string, timeout time.Duration) string {
	c, err := ns.DialTCP(addr, timeout)
	if err == nil {
		c.Close()
	}
	return Outcome(err)
}

// TCPOutcome connects over TCP from ns to addr like DialOutcome and then
// waits up to timeout for the server's greeting (topo's servers send one):
// it reports "ok" (the greeting arrived), "no greeting: " and the error,
// "refused", "timeout" or the error.
func TCPOutcome(ns *topo.NS, addr string, timeout time.Duration) string {
	c, err := ns.DialTCP(addr, timeout)
	if err != nil {
		return Outcome(err)
	}
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err.Error()
	}
	if _, err := c.Read(make([]byte, 64)); err != nil {
		return "no greeting: " + err.Error()
	}
	return "ok"
}

// Mapped reports whether dockerfence's table, as k reads it, sends bridge
// to a chain of its own in the forward verdict map.
func Mapped(k nft.Kernel, bridge string) bool {
	st, err := k.Read("dockerfence")
	if err != nil || st == nil {
		return false
	}
	for _, s := range st.Sets {
		if s.Name != "fwd_if" {
			continue
		}
		for _, el := range s.VMap {
			if el.Key == bridge && el.Chain == "fwd_"+bridge {
				return true
			}
		}
	}
	return false
}
