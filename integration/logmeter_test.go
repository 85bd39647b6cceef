package integration

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nflog"
	"github.com/dockerfence/dockerfence/policy"
)

// loggedBySource reads an NFLOG group in ns until the test ends and counts
// the logged packets by source address and, for TCP, destination port.
type loggedBySource struct {
	mu     sync.Mutex
	counts map[netip.Addr]int
	tcp    map[netip.Addr]int
}

func listenLogged(t *testing.T, ns *topo.NS, group uint16) *loggedBySource {
	t.Helper()
	var c *nflog.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = nflog.Open(group, 128)
		return err
	}); err != nil {
		t.Fatalf("open NFLOG group %d in %s: %v", group, ns.Name, err)
	}
	l := &loggedBySource{counts: map[netip.Addr]int{}, tcp: map[netip.Addr]int{}}
	done := make(chan struct{})
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	go func() {
		defer close(done)
		for {
			pkts, err := c.Receive()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue // ENOBUFS: the reader fell behind; counts are then low, never high
			}
			l.mu.Lock()
			for _, p := range pkts {
				f, err := nflog.Decode(p.Family, p.Payload)
				if err != nil {
					continue
				}
				l.counts[f.Src]++
				if f.Proto == harness.ProtoTCP {
					l.tcp[f.Src]++
				}
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *loggedBySource) get(src netip.Addr) (all, tcp int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[src], l.tcp[src]
}

// TestDenialLogPerSource floods the LAN database from one container at
// 2000 datagrams a second while another container of the same network
// makes 10 connections to it, all denied by the same rule of the seed
// policy (deny 192.168.0.0/16, log_rate 10). The denial log is read from
// its NFLOG group. The flood must not hide the other container's denials:
// each of its 10 refused connections is logged (its source is within its
// own rate). The flooder's own log stays within its rate, and the rule's
// kernel counter counts every packet of both.
func TestDenialLogPerSource(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	tp := e.tp
	const b4 = "172.20.0.3"
	b := tp.AddContainer(t, "b", b4, "fd00:20::3")
	pol := e.write("seed.yaml", seedPolicy)
	e.mustDF("apply", "-c", pol)
	logged := listenLogged(t, tp.Host, policy.DefaultSettings().LogGroup)

	flood := harness.StartUDPFlood(t, tp.Ctr, hostPort(topo.LANDB4, 9), "", 2000)
	time.Sleep(time.Second) // past any burst the log had saved up
	const conns = 10
	refused := 0
	for range conns {
		if out := harness.DialOutcome(b, hostPort(topo.LANDB4, 5432), dialTimeout); out == "refused" {
			refused++
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	took := flood.Halt()
	time.Sleep(200 * time.Millisecond) // let the last log messages arrive
	sent := flood.Sent()

	a := netip.MustParseAddr(topo.CtrIP4)
	aLogged, _ := logged.get(a)
	_, bLogged := logged.get(netip.MustParseAddr(b4))
	t.Logf("flooder %s: %d datagrams in %v, %d logged; the other container: %d of %d connections refused, %d SYNs logged", a, sent, took.Round(time.Millisecond), aLogged, refused, conns, bLogged)
	if refused != conns {
		t.Fatalf("%d of %d connections to the database were refused; want all", refused, conns)
	}
	if bLogged < conns {
		t.Errorf("the flood hid the other container's denials: %d of its %d refused connections logged", bLogged, conns)
	}
	rate := policy.DefaultSettings().LogRate
	if limit := rate*int(took.Seconds()+1) + rate; aLogged > limit || aLogged == 0 {
		t.Errorf("the flooder had %d denials logged in %v; want 1 to %d (log_rate %d a second, burst %d)", aLogged, took, limit, rate, rate)
	}

	var counted uint64
	for _, n := range e.statusJSON("-c", pol).Networks {
		for _, r := range n.Rules {
			if r.ID == "egress 4" {
				counted += r.Packets
			}
		}
	}
	if want := uint64(sent) + conns; counted != want {
		t.Errorf("the counter of egress 4 counted %d packets; want %d (%d datagrams and %d SYNs): every packet, not rate limited", counted, want, sent, conns)
	}
}
