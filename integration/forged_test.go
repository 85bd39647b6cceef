package integration

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// answers counts what arrives at some addresses of a namespace in answer
// to packets sent in their name: TCP resets, SYN-ACKs and ICMP (or ICMPv6)
// errors, by address family.
type answers struct {
	mu     sync.Mutex
	counts map[string]int // "rst4", "synack6", "icmp4", ...
}

// listenAnswers opens raw TCP and ICMP sockets bound to addrs in ns, which
// see every such packet the namespace receives for them, until the test
// ends.
func listenAnswers(t *testing.T, ns *topo.NS, addrs ...netip.Addr) *answers {
	t.Helper()
	a := &answers{counts: map[string]int{}}
	for _, addr := range addrs {
		fam, icmp := "4", harness.ProtoICMP
		if addr.Is6() {
			fam, icmp = "6", harness.ProtoICMPv6
		}
		for _, proto := range []int{harness.ProtoTCP, icmp} {
			network := fmt.Sprintf("ip%s:%d", fam, proto)
			var pc net.PacketConn
			if err := ns.Do(func() error {
				var err error
				pc, err = net.ListenPacket(network, addr.String())
				return err
			}); err != nil {
				t.Fatalf("raw socket %s %s: %v", network, addr, err)
			}
			done := make(chan struct{})
			t.Cleanup(func() {
				pc.Close()
				<-done
			})
			go func() {
				defer close(done)
				buf := make([]byte, 65536)
				for {
					n, _, err := pc.ReadFrom(buf)
					if errors.Is(err, net.ErrClosed) {
						return
					}
					if err != nil {
						continue
					}
					if kind := answerKind(proto, buf[:n]); kind != "" {
						a.mu.Lock()
						a.counts[kind+fam]++
						a.mu.Unlock()
					}
				}
			}()
		}
	}
	return a
}

// answerKind names a TCP segment or ICMP message that answers another
// packet: "rst", "synack" or "icmp" (an error: destination unreachable,
// ICMPv6 type 1, or any other ICMP error type); "" for anything else.
func answerKind(proto int, b []byte) string {
	switch proto {
	case harness.ProtoTCP:
		if len(b) < 14 {
			return ""
		}
		switch flags := b[13]; {
		case flags&0x04 != 0:
			return "rst"
		case flags&0x12 == 0x12:
			return "synack"
		}
	case harness.ProtoICMP:
		if len(b) > 0 && (b[0] == 3 || b[0] == 11 || b[0] == 12) {
			return "icmp"
		}
	case harness.ProtoICMPv6:
		if len(b) > 0 && b[0] < 128 {
			return "icmp"
		}
	}
	return ""
}

// take returns the counts so far and starts again from zero.
func (a *answers) take() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.counts
	a.counts = map[string]int{}
	return out
}

// forgedBurst sends n TCP SYNs (one connection attempt each, abandoned
// after 20 ms) and n UDP datagrams from src, an address ns holds, to each
// of the destinations, then waits for answers to arrive.
func forgedBurst(t *testing.T, ns *topo.NS, src netip.Addr, n int, tcp, udp []string) {
	t.Helper()
	err := ns.Do(func() error {
		for _, dst := range tcp {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 20 * time.Millisecond}
			for range n {
				if c, err := d.Dial("tcp", dst); err == nil {
					c.Close()
				}
			}
		}
		for _, dst := range udp {
			raddr, err := net.ResolveUDPAddr("udp", dst)
			if err != nil {
				return err
			}
			c, err := net.DialUDP("udp", &net.UDPAddr{IP: src.AsSlice()}, raddr)
			if err != nil {
				return err
			}
			for i := range n {
				c.Write([]byte("forged " + strconv.Itoa(i)))
			}
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
}

// TestForgedSourceNeverAnswered sends TCP SYNs and UDP datagrams from the
// container with the LAN database's addresses as their source, to the
// internet (forward hook) and to the host (input hook), under the embedded
// default policy (deny_action reject). Anti-spoofing must deny them
// without a word: a TCP reset or an ICMP error would go to the database,
// an address the container chose. Raw sockets at the database's addresses
// count every reset, SYN-ACK and ICMP error that arrives there. Without
// dockerfence the forged SYNs reach the internet host, whose SYN-ACKs
// arrive at the database (so the forged packets do cross the host); with
// it nothing may arrive, while the anti-spoofing counters count them all.
func TestForgedSourceNeverAnswered(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	tp := e.tp
	// Loose reverse-path filtering, as Debian's and Ubuntu's defaults set
	// it: a source routable through any interface passes, so the forged
	// database addresses reach the hooks. (Strict filtering would drop
	// them before dockerfence sees them, and prove nothing.)
	for _, k := range []string{"all", "default", topo.BridgeName} {
		if err := tp.Host.SetSysctl("net.ipv4.conf."+k+".rp_filter", "2"); err != nil {
			t.Fatal(err)
		}
	}
	tp.Host.ListenTCP(t, hostPort(topo.HostBridge4, 22))
	tp.Host.ListenTCP(t, hostPort(topo.HostBridge6, 22))
	db4, db6 := netip.MustParseAddr(topo.LANDB4), netip.MustParseAddr(topo.LANDB6)
	// Connections from the container's own addresses first resolve the
	// gateways, so that no ARP or neighbour solicitation goes out from a
	// forged address.
	e.expect(tp.Ctr, []probe{
		{"internet v4 from the container's own address", "tcp", hostPort(topo.InetIP4, 80), "ok"},
		{"internet v6 from the container's own address", "tcp", hostPort(topo.InetIP6, 80), "ok"},
	})
	tp.Ctr.Run(t, "ip", "addr", "add", topo.LANDB4+"/32", "dev", "eth0")
	tp.Ctr.Run(t, "ip", "addr", "add", topo.LANDB6+"/128", "dev", "eth0", "nodad")
	got := listenAnswers(t, tp.LAN, db4, db6)
	const n = 20
	burst := func() map[string]int {
		forgedBurst(t, tp.Ctr, db4, n, []string{hostPort(topo.InetIP4, 80), hostPort(topo.HostBridge4, 22)}, []string{hostPort(topo.InetIP4, 9), hostPort(topo.HostBridge4, 53)})
		forgedBurst(t, tp.Ctr, db6, n, []string{hostPort(topo.InetIP6, 80), hostPort(topo.HostBridge6, 22)}, []string{hostPort(topo.InetIP6, 9), hostPort(topo.HostBridge6, 53)})
		return got.take()
	}

	before := burst()
	t.Logf("without dockerfence, at the database: %v", before)
	if before["synack4"] < n || before["synack6"] < n {
		t.Fatalf("without dockerfence, %d and %d SYN-ACKs arrived at the database for %d forged SYNs of each family to the internet; the forged packets do not cross the host and the test proves nothing", before["synack4"], before["synack6"], n)
	}

	e.mustDF("apply")
	after := burst()
	t.Logf("with dockerfence (embedded default, deny_action reject), at the database: %v", after)
	for kind, count := range after {
		t.Errorf("%d %s arrived at the database in answer to %d forged packets of each kind: a denial answered an address the container chose", count, kind, 4*n)
	}

	s := e.statusJSON()
	counted := map[string]uint64{}
	for _, nw := range s.Networks {
		for _, r := range nw.Rules {
			if r.ID == "anti-spoofing" {
				counted[r.Hook] += r.Packets
			}
		}
	}
	// Per family and hook: n SYNs and n datagrams.
	if counted["egress"] < 4*n || counted["host"] < 4*n {
		t.Errorf("anti-spoofing counted %v packets, want at least %d in each hook", counted, 4*n)
	}
}
