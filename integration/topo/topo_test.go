package topo

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// dialTimeout exceeds the 1 s initial SYN retransmission timeout, so that ICMP
// rejects are seen (see DialTCP).
const dialTimeout = 2 * time.Second

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces")
	}
}

// tcpEcho dials addr from ns, checks the greeting and that a line is echoed.
func tcpEcho(t *testing.T, from *NS, addr string) {
	t.Helper()
	c, err := from.DialTCP(addr, dialTimeout)
	if err != nil {
		t.Fatalf("dial %s from %s: %v (refused=%v timeout=%v)", addr, from.Name, err, IsRefused(err), IsTimeout(err))
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	greeting, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read greeting from %s: %v", addr, err)
	}
	if want := "hello from " + addr + "\n"; greeting != want {
		t.Fatalf("greeting from %s = %q, want %q", addr, greeting, want)
	}
	msg := fmt.Sprintf("ping %s\n", from.Name)
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write to %s: %v", addr, err)
	}
	echo, err := r.ReadString('\n')
	if err != nil || echo != msg {
		t.Fatalf("echo from %s = %q, %v; want %q", addr, echo, err, msg)
	}
}

func udpEcho(t *testing.T, from *NS, srv *UDPServer, addr string) {
	t.Helper()
	before := srv.Received()
	ok, err := from.UDPExchange(addr, []byte("query "+from.Name), dialTimeout)
	if err != nil || !ok {
		t.Fatalf("udp exchange %s from %s: ok=%v err=%v", addr, from.Name, ok, err)
	}
	if got := srv.Received() - before; got != 1 {
		t.Fatalf("server %s received %d datagrams, want 1", addr, got)
	}
}

func TestNoFirewallPaths(t *testing.T) {
	needRoot(t)
	t.Parallel()
	tp := New(t)

	for _, ns := range []*NS{tp.Host, tp.Ctr, tp.LAN, tp.Inet} {
		if !strings.HasPrefix(ns.Name, tp.Prefix+"-") {
			t.Errorf("namespace %s lacks prefix %s", ns.Name, tp.Prefix)
		}
		if _, err := os.Stat(ns.Path()); err != nil {
			t.Errorf("namespace path: %v", err)
		}
		if !ns.Handle().IsOpen() {
			t.Errorf("handle of %s is not open", ns.Name)
		}
	}
	for _, k := range []string{"ipv4/ip_forward", "ipv6/conf/all/forwarding"} {
		if got := strings.TrimSpace(tp.Host.Run(t, "cat", "/proc/sys/net/"+k)); got != "1" {
			t.Errorf("Host %s = %q, want 1", k, got)
		}
	}
	if out := tp.Host.Run(t, "ip", "-br", "link"); !strings.Contains(out, BridgeName) ||
		!strings.Contains(out, LANIf) || !strings.Contains(out, WANIf) {
		t.Errorf("Host links lack %s/%s/%s:\n%s", BridgeName, LANIf, WANIf, out)
	}
	if out := tp.Ctr.Run(t, "ip", "-6", "addr", "show", "dev", "eth0"); strings.Contains(out, "tentative") {
		t.Errorf("Ctr has tentative IPv6 addresses:\n%s", out)
	}

	tcpTargets := []struct {
		ns   *NS
		addr string
	}{
		{tp.LAN, LANDB4 + ":5432"},
		{tp.LAN, "[" + LANDB6 + "]:5432"},
		{tp.Inet, InetIP4 + ":80"},
		{tp.Inet, "[" + InetIP6 + "]:80"},
	}
	for _, tt := range tcpTargets {
		srv := tt.ns.ListenTCP(t, tt.addr)
		if srv.Addr() != tt.addr {
			t.Errorf("server Addr() = %s, want %s", srv.Addr(), tt.addr)
		}
		tcpEcho(t, tp.Ctr, tt.addr)
		if srv.Accepted() != 1 {
			t.Errorf("server %s accepted %d connections, want 1", tt.addr, srv.Accepted())
		}
	}

	for _, addr := range []string{LANDNS4 + ":53", "[" + LANDNS6 + "]:53"} {
		udpEcho(t, tp.Ctr, tp.LAN.ListenUDP(t, addr), addr)
	}

	// A connected UDP socket from DialUDP can carry a longer flow.
	dns := tp.LAN.ListenUDP(t, LANDNS4+":5353")
	c, err := tp.Ctr.DialUDP(LANDNS4 + ":5353")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const flood = 50
	for i := 0; i < flood; i++ {
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(dialTimeout)
	for dns.Received() < flood && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := dns.Received(); got != flood {
		t.Errorf("flood: server received %d datagrams, want %d", got, flood)
	}
	if got, want := c.LocalAddr().(*net.UDPAddr).IP.String(), CtrIP4; got != want {
		t.Errorf("DialUDP local address %s, want %s (socket not in Ctr?)", got, want)
	}
}

func TestAddContainerAndBridge(t *testing.T) {
	needRoot(t)
	t.Parallel()
	tp := New(t)

	c2 := tp.AddContainer(t, "c2", "172.20.0.3", "fd00:20::3")
	if c2.HostIf == "" || c2.HostIf == tp.Ctr.HostIf {
		t.Errorf("c2.HostIf = %q, Ctr.HostIf = %q", c2.HostIf, tp.Ctr.HostIf)
	}
	for _, addr := range []string{CtrIP4 + ":8080", "[" + CtrIP6 + "]:8080"} {
		tp.Ctr.ListenTCP(t, addr)
		tcpEcho(t, c2, addr)
	}

	// A bridge that appears later, with a container that is routed
	// through Host to Ctr and to LAN.
	tp.AddBridge(t, "br-late", "172.21.0.1/16", "fd00:21::1/64")
	late := tp.AddContainerOn(t, "br-late", "late", "172.21.0.2", "fd00:21::2/64")
	tcpEcho(t, late, CtrIP4+":8080")
	tcpEcho(t, late, "["+CtrIP6+"]:8080")
	for _, addr := range []string{LANDB4 + ":5432", "[" + LANDB6 + "]:5432"} {
		tp.LAN.ListenTCP(t, addr)
		tcpEcho(t, late, addr)
	}

	// An IPv4-only container.
	v4only := tp.AddContainer(t, "v4only", "172.20.0.4/16", "")
	tcpEcho(t, v4only, CtrIP4+":8080")
	if _, err := v4only.DialTCP("["+CtrIP6+"]:8080", 500*time.Millisecond); err == nil {
		t.Error("IPv4-only container reached an IPv6 address")
	}
}

// TestRefusedVersusTimeout checks the error classification with routes in
// Host that answer with ICMP (prohibit) or silently discard (blackhole).
func TestRefusedVersusTimeout(t *testing.T) {
	needRoot(t)
	t.Parallel()
	tp := New(t)
	tp.Host.Run(t, "ip", "route", "add", "prohibit", "198.51.100.1/32")
	tp.Host.Run(t, "ip", "route", "add", "blackhole", "198.51.100.2/32")
	tp.Host.Run(t, "ip", "-6", "route", "add", "prohibit", "2001:db8:1::/48")
	tp.Host.Run(t, "ip", "-6", "route", "add", "blackhole", "2001:db8:2::/48")
	tp.LAN.ListenUDP(t, LANDNS4+":53")

	refused := []struct {
		addr string
		rst  bool // refused by a TCP reset, which is noticed at once
	}{
		{LANDB4 + ":5433", true},          // closed port in LAN
		{"[" + LANDB6 + "]:5433", true},   // closed port in LAN
		{InetIP4 + ":443", true},          // closed port on Inet
		{"[" + InetIP6 + "]:443", true},   // closed port on Inet
		{HostBridge4 + ":9", true},        // closed port on Host itself
		{"[" + HostBridge6 + "]:9", true}, // closed port on Host itself
		// ICMP errors may only be noticed on the first SYN
		// retransmission (see DialTCP).
		{"198.51.100.1:443", false},    // ICMP admin prohibited
		{"[2001:db8:1::1]:443", false}, // ICMPv6 admin prohibited
	}
	for _, tt := range refused {
		start := time.Now()
		c, err := tp.Ctr.DialTCP(tt.addr, dialTimeout)
		if err == nil {
			c.Close()
			t.Errorf("dial %s succeeded", tt.addr)
			continue
		}
		if !IsRefused(err) || IsTimeout(err) {
			t.Errorf("dial %s: %v: refused=%v timeout=%v, want refused", tt.addr, err, IsRefused(err), IsTimeout(err))
		}
		if d := time.Since(start); tt.rst && d > 500*time.Millisecond {
			t.Errorf("dial %s took %v to be refused by a reset", tt.addr, d)
		}
	}

	for _, addr := range []string{"198.51.100.2:443", "[2001:db8:2::1]:443"} {
		_, err := tp.Ctr.DialTCP(addr, 300*time.Millisecond)
		if !IsTimeout(err) || IsRefused(err) {
			t.Errorf("dial %s: %v: refused=%v timeout=%v, want timeout", addr, err, IsRefused(err), IsTimeout(err))
		}
	}

	// UDP: a closed port answers with ICMP port unreachable, a blackhole
	// answers nothing.
	if ok, err := tp.Ctr.UDPExchange(LANDNS4+":54", []byte("x"), dialTimeout); ok || !IsRefused(err) {
		t.Errorf("udp to closed port: ok=%v err=%v, want refused", ok, err)
	}
	if ok, err := tp.Ctr.UDPExchange("198.51.100.2:53", []byte("x"), 300*time.Millisecond); ok || err != nil {
		t.Errorf("udp to blackhole: ok=%v err=%v, want no answer and no error", ok, err)
	}
	if IsRefused(nil) || IsTimeout(nil) {
		t.Error("nil error classified")
	}
}

func TestDoRestoresNamespace(t *testing.T) {
	needRoot(t)
	tp := New(t)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	err = tp.LAN.Do(func() error {
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(tp.LAN.Handle()) {
			return fmt.Errorf("thread is in %v, want %s", cur, tp.LAN.Name)
		}
		// Nested Do into another namespace and back.
		return tp.Inet.Do(func() error {
			in, err := netns.Get()
			if err != nil {
				return err
			}
			defer in.Close()
			if !in.Equal(tp.Inet.Handle()) {
				return fmt.Errorf("nested: thread is in %v, want %s", in, tp.Inet.Name)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	after, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Equal(before) {
		t.Fatalf("Do did not restore the namespace: before %v after %v", before, after)
	}
	if err := tp.Host.SetSysctl("kernel.hostname", "x"); err == nil {
		t.Error("SetSysctl accepted a non-net key")
	}
}

// netnsEntries returns the names under /run/netns and in "ip netns list"
// that start with prefix.
func netnsEntries(t *testing.T, prefix string) []string {
	t.Helper()
	var found []string
	ents, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			found = append(found, "/run/netns/"+e.Name())
		}
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			found = append(found, "ip netns list: "+f[0])
		}
	}
	return found
}

func TestCleanupRemovesNamespaces(t *testing.T) {
	needRoot(t)
	var prefix string
	t.Run("build", func(t *testing.T) {
		tp := New(t)
		prefix = tp.Prefix + "-"
		tp.AddContainer(t, "c2", "172.20.0.3", "fd00:20::3")
		tp.AddBridge(t, "br-late", "172.21.0.1/16", "")
		tp.AddContainerOn(t, "br-late", "late", "172.21.0.2", "")
		tp.LAN.ListenTCP(t, LANDB4+":5432")
		tp.LAN.ListenUDP(t, LANDNS4+":53")
		if got := netnsEntries(t, prefix); len(got) != 2*6 {
			t.Fatalf("expected 6 namespaces with prefix %s, found %v", prefix, got)
		}
	})
	if prefix == "" {
		t.Fatal("subtest did not build a topology")
	}
	if left := netnsEntries(t, prefix); len(left) > 0 {
		t.Fatalf("namespaces left after cleanup: %v", left)
	}
}

func TestCleanupAfterFailureMidway(t *testing.T) {
	needRoot(t)
	ft := &RecordingTB{TB: t}
	t.Cleanup(ft.RunCleanups) // safety net if this test fails early
	var prefix string
	done := make(chan struct{})
	go func() {
		defer close(done)
		tp := New(ft)
		prefix = tp.Prefix + "-"
		tp.AddContainer(ft, "c2", "172.20.0.3", "")
		tp.LAN.ListenTCP(ft, LANDB4+":5432")
		// Fails: an interface named lan0 already exists in Host.
		tp.AddBridge(ft, LANIf, "10.99.0.1/16", "")
		t.Error("AddBridge with a clashing name did not fail")
	}()
	<-done
	if ft.Fatalled() == "" {
		t.Fatal("expected a fatal error")
	}
	t.Logf("expected failure: %s", ft.Fatalled())
	if got := netnsEntries(t, prefix); len(got) != 2*5 {
		t.Errorf("before cleanup: expected 5 namespaces, found %v", got)
	}
	ft.RunCleanups()
	if left := netnsEntries(t, prefix); len(left) > 0 {
		t.Fatalf("namespaces left after cleanup: %v", left)
	}
}

// TestAddOutside connects from each of Outside's four addresses to a
// server on Host's out0 and checks that the server sees that address as
// the peer, and that Outside reaches nothing beyond the link.
func TestAddOutside(t *testing.T) {
	needRoot(t)
	t.Parallel()
	tp := New(t)
	out := tp.AddOutside(t)
	for _, tc := range []struct{ host, src string }{
		{HostOut4, OutAllowed4}, {HostOut4, OutStranger4},
		{HostOut6, OutAllowed6}, {HostOut6, OutStranger6},
	} {
		var ln net.Listener
		if err := tp.Host.Do(func() error {
			var err error
			ln, err = net.Listen("tcp", net.JoinHostPort(tc.host, "0"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		peer := make(chan string, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				peer <- err.Error()
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			peer <- host
			c.Close()
		}()
		c, err := out.DialTCPFrom(tc.src, ln.Addr().String(), dialTimeout)
		if err != nil {
			t.Fatalf("dial %s from %s: %v", ln.Addr(), tc.src, err)
		}
		c.Close()
		if got := <-peer; got != tc.src {
			t.Errorf("the server on %s saw the peer %s, want %s", tc.host, got, tc.src)
		}
		ln.Close()
	}
	tp.LAN.ListenTCP(t, LANDB4+":5432")
	if _, err := out.DialTCP(LANDB4+":5432", 500*time.Millisecond); err == nil {
		t.Error("Outside reached the LAN: it should have a route to its link only")
	}
}
