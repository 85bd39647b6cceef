package integration

import (
	enc "encoding/binary"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nflog"
	"github.com/dockerfence/dockerfence/status"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestContainerIdentityL2 forges identities below IP from containers'
// namespaces with raw frames, 20 of each, and reads what the host (the
// containers' gateway) learned: gratuitous ARP from the worker that claims
// the neighbour's IPv4 address, ARP from the worker that claims its own
// address at another MAC, an unsolicited neighbour advertisement from the
// worker that claims the neighbour's IPv6 address, and UDP frames from the
// neighbour with another Ethernet source. Before dockerfence the host's
// neighbour table takes the forged MACs and the frames arrive (so the test
// can fail); under it the containers' ports drop them, the netdev table's
// rules and the ND rule count them, and what the containers send as
// themselves still passes.
func TestContainerIdentityL2(t *testing.T) {
	e := newEnv(t)
	tp := e.tp
	worker := tp.Ctr
	nb := tp.AddContainer(t, "nb", "172.20.0.3", "fd00:20::3")
	fake := harness.StartDocker(t, filepath.Join(e.dir, "docker.sock"))
	fake.Set([]harness.Network{{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}})
	wMAC, nbMAC := mustMAC(t, macOf(t, worker)), mustMAC(t, macOf(t, nb))
	fake.SetContainers([]harness.Container{
		{ID: strings.Repeat("a", 64), Name: "worker", Labels: map[string]string{"role": "worker"}, Endpoints: []harness.Endpoint{{Network: "app", IPv4: topo.CtrIP4, MAC: wMAC.String()}}},
		{ID: strings.Repeat("b", 64), Name: "neighbour", Endpoints: []harness.Endpoint{{Network: "app", IPv4: "172.20.0.3", IPv6: "fd00:20::3", MAC: nbMAC.String()}}},
	})
	bridgeMAC := linkMAC(t, tp.Host, topo.BridgeName)
	forgedMAC := mustMAC(t, "02:00:00:00:00:99")
	target := netip.MustParseAddrPort(topo.InetIP4 + ":7010")
	counter := harness.ListenUDPCounter(t, tp.Inet, target.String())
	const n = 20

	// seed gives the host a stale entry for each address, at its true
	// owner's MAC, that a forgery could take over (the kernel updates an
	// existing entry from gratuitous ARP and from advertisements with
	// the override flag), then waits out the ARP lock time (1 s).
	seed := func() {
		t.Helper()
		for _, c := range []struct{ ip, mac string }{{"172.20.0.3", nbMAC.String()}, {topo.CtrIP4, wMAC.String()}, {"fd00:20::3", nbMAC.String()}} {
			tp.Host.Run(t, "ip", "neigh", "replace", c.ip, "lladdr", c.mac, "dev", topo.BridgeName, "nud", "stale")
		}
		time.Sleep(1100 * time.Millisecond)
	}
	type result struct {
		nbIP4, wIP4, nbIP6 string // the MACs the host holds for them
		forged, own        int64  // UDP frames with a forged and the own Ethernet source that arrived
	}
	forge := func() result {
		t.Helper()
		seed()
		var frames [][]byte
		for range n {
			// Gratuitous ARP: the worker's MAC for the neighbour's address.
			frames = append(frames, arpFrame(wMAC, wMAC, netip.MustParseAddr("172.20.0.3"), netip.MustParseAddr("172.20.0.3")))
		}
		sendFrames(t, worker, frames)
		frames = frames[:0]
		for range n {
			// Its own address at a MAC not its own.
			frames = append(frames, arpFrame(wMAC, forgedMAC, netip.MustParseAddr(topo.CtrIP4), netip.MustParseAddr(topo.CtrIP4)))
		}
		sendFrames(t, worker, frames)
		sendNA(t, worker, netip.MustParseAddr("fd00:20::3"), wMAC, n)
		var r result
		before := counter.Count()
		frames = frames[:0]
		for i := range n {
			frames = append(frames, udpFrame(bridgeMAC, forgedMAC, netip.MustParseAddr("172.20.0.3"), target, uint16(40000+i)))
		}
		sendFrames(t, nb, frames)
		time.Sleep(300 * time.Millisecond)
		r.forged = counter.Count() - before
		before = counter.Count()
		frames = frames[:0]
		for i := range n {
			frames = append(frames, udpFrame(bridgeMAC, nbMAC, netip.MustParseAddr("172.20.0.3"), target, uint16(41000+i)))
		}
		sendFrames(t, nb, frames)
		time.Sleep(300 * time.Millisecond)
		r.own = counter.Count() - before
		r.nbIP4 = neighMAC(t, tp.Host, topo.BridgeName, "172.20.0.3")
		r.wIP4 = neighMAC(t, tp.Host, topo.BridgeName, topo.CtrIP4)
		r.nbIP6 = neighMAC(t, tp.Host, topo.BridgeName, "fd00:20::3")
		return r
	}

	without := forge()
	t.Logf("without dockerfence: host holds 172.20.0.3 at %s, %s at %s, fd00:20::3 at %s; forged Ethernet source: %d of %d arrived; own: %d of %d",
		without.nbIP4, topo.CtrIP4, without.wIP4, without.nbIP6, without.forged, n, without.own, n)
	if without.nbIP4 != wMAC.String() || without.wIP4 != forgedMAC.String() || without.nbIP6 != wMAC.String() || without.forged != n || without.own != n {
		t.Fatalf("without dockerfence the forgeries did not all take (want 172.20.0.3 at %s, %s at %s, fd00:20::3 at %s, %d forged frames): the test proves nothing",
			wMAC, topo.CtrIP4, forgedMAC, wMAC, n)
	}

	pol := e.write("policy.yaml", containersPolicy)
	if out, stderr, err := e.dfStdout("apply", "-c", pol, "--docker-host", fake.URL); err != nil {
		t.Fatalf("apply: %v\n%s%s", err, out, stderr)
	}
	l2 := tp.Host.Run(t, "nft", "list", "table", "netdev", "dockerfence")
	if strings.Count(l2, "hook ingress device") != 2 {
		t.Fatalf("no netdev chain on each container's port:\n%s", l2)
	}
	if st, stderr, _ := e.dfExit(t, fake.URL, "status", "-c", pol); !strings.Contains(st, "table netdev dockerfence: present, 2 port chains") {
		t.Errorf("status does not list the netdev table:\n%s%s", st, stderr)
	}

	// The netdev table's denials are logged through NFLOG like the inet
	// table's (group 100, the default).
	var logc *nflog.Conn
	if err := tp.Host.Do(func() error {
		var err error
		logc, err = nflog.Open(100, 256)
		return err
	}); err != nil {
		t.Fatalf("open NFLOG group 100: %v", err)
	}
	defer logc.Close()
	logged := make(chan map[string]int, 1)
	go func() {
		seen := map[string]int{}
		defer func() { logged <- seen }()
		for {
			pkts, err := logc.Receive()
			if err != nil {
				return
			}
			for _, p := range pkts {
				seen[fmt.Sprintf("%s hwproto %#04x", strings.TrimSpace(p.Prefix), p.HWProto)]++
			}
		}
	}()
	with := forge()
	logc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	seen := <-logged
	t.Logf("NFLOG: %v", seen)
	for _, want := range []string{"l2_" + worker.HostIf + ".identity hwproto 0x0806", "l2_" + nb.HostIf + ".identity hwproto 0x0800", "id_" + worker.HostIf + ".identity hwproto 0x86dd"} {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(seen)), func(k string) bool { return strings.HasSuffix(k, want) }) {
			t.Errorf("no denial logged as %q; logged: %v", want, seen)
		}
	}
	t.Logf("with dockerfence: host holds 172.20.0.3 at %s, %s at %s, fd00:20::3 at %s; forged Ethernet source: %d of %d arrived; own: %d of %d",
		with.nbIP4, topo.CtrIP4, with.wIP4, with.nbIP6, with.forged, n, with.own, n)
	if with.nbIP4 != nbMAC.String() {
		t.Errorf("the host learned 172.20.0.3 at %s from the worker's gratuitous ARP; want it kept at the neighbour's %s", with.nbIP4, nbMAC)
	}
	if with.wIP4 != wMAC.String() {
		t.Errorf("the host learned %s at %s from ARP with a forged sender MAC; want %s", topo.CtrIP4, with.wIP4, wMAC)
	}
	if with.nbIP6 != nbMAC.String() {
		t.Errorf("the host learned fd00:20::3 at %s from the worker's advertisement; want it kept at %s", with.nbIP6, nbMAC)
	}
	if with.forged != 0 {
		t.Errorf("%d of %d frames with a forged Ethernet source arrived; want none", with.forged, n)
	}
	if with.own != n {
		t.Errorf("%d of %d of the neighbour's own frames arrived; want all", with.own, n)
	}

	// The rules that dropped them counted them.
	l2 = tp.Host.Run(t, "nft", "list", "table", "netdev", "dockerfence")
	inet := tp.Host.Run(t, "nft", "list", "table", "inet", "dockerfence")
	for _, c := range []struct{ listing, comment string }{
		{l2, "ARP sender IPv4 not the container's own"},
		{l2, "ARP sender MAC not the container's own"},
		{l2, "Ethernet source not the container's own"},
		{inet, "neighbour advertisement for an address not the container's own"},
	} {
		if got := countedBy(c.listing, c.comment); got < n {
			t.Errorf("the rule %q counted %v packets; want at least %d\n%s", c.comment, got, n, c.listing)
		}
	}

	for _, c := range []string{"ARP sender IPv4 not the container's own", "ARP sender MAC not the container's own", "Ethernet source not the container's own"} {
		t.Logf("netdev rule %q counted %d packets", c, countedBy(l2, c))
	}
	t.Logf("inet rule %q counted %d packets", "neighbour advertisement ...", countedBy(inet, "neighbour advertisement for an address not the container's own"))

	// Drift in the netdev table is reported and repaired: by apply, and
	// by a daemon, whose socket owns the netdev table as it owns the
	// inet one.
	dockerHost := fake.URL
	l2Chain := "l2_" + worker.HostIf
	tamper := func() error {
		_, err := tp.Host.Try("nft", "flush", "chain", "netdev", "dockerfence", l2Chain)
		return err
	}
	upToDate := func(when string) {
		t.Helper()
		if pl := e.mustDF("plan", "-c", pol, "--docker-host", dockerHost); !strings.Contains(pl, "is up to date") {
			t.Errorf("plan %s:\n%s", when, pl)
		}
	}
	upToDate("after apply")
	if err := tamper(); err != nil {
		t.Fatalf("flush %s after a one-shot apply: %v", l2Chain, err)
	}
	if st, stderr, code := e.dfExit(t, dockerHost, "status", "-c", pol); code != status.ExitDiffers || !strings.Contains(st, "differs from the policy") {
		t.Errorf("status after the netdev chain was flushed: exit %d, want %d:\n%s%s", code, status.ExitDiffers, st, stderr)
	}
	if js := e.statusJSON("-c", pol, "--docker-host", dockerHost); !slices.ContainsFunc(js.Table.Drift, func(l string) bool { return strings.HasPrefix(l, "netdev: ") }) {
		t.Errorf("status --json after the netdev chain was flushed gives no netdev drift: %q", js.Table.Drift)
	} else {
		t.Logf("drift: %q", js.Table.Drift)
	}
	if pl := e.mustDF("plan", "-c", pol, "--docker-host", dockerHost); !strings.Contains(pl, "add rule netdev dockerfence "+l2Chain+" ") {
		t.Errorf("plan after the netdev chain was flushed does not put its rules back:\n%s", pl)
	}
	if out := e.mustDF("apply", "-c", pol, "--docker-host", dockerHost); !strings.HasPrefix(out, "applied") {
		t.Errorf("apply after the tampering: %s", out)
	}
	upToDate("after the repair by apply")

	sock := filepath.Join(e.dir, "docker.sock")
	df := e.startDaemonBin(binary, sock, pol)
	df.waitLog(t, "reason=start")
	if err := tamper(); err == nil || !strings.Contains(err.Error(), "not permitted") {
		t.Errorf("flush of %s while the daemon runs: %v; want the kernel to refuse it (owned)", l2Chain, err)
	}
	df.cmd.Process.Kill()
	<-df.exited
	if err := tamper(); err != nil {
		t.Fatalf("flush %s with no daemon: %v", l2Chain, err)
	}
	df = e.startDaemonBin(binary, sock, pol)
	defer df.stop()
	df.waitLog(t, `msg="table applied" reason=start`)
	if df.countLog("table differs: ", "netdev: ") == 0 {
		t.Errorf("the daemon did not log the netdev drift")
	}
	upToDate("after the repair by the daemon")

	// ARP as the containers send it still works: the host resolves the
	// neighbour again.
	tp.Host.Run(t, "ip", "neigh", "flush", "dev", topo.BridgeName)
	c, err := tp.Host.DialUDP("172.20.0.3:9")
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("who has 172.20.0.3?"))
	c.Close()
	time.Sleep(300 * time.Millisecond)
	if got := neighMAC(t, tp.Host, topo.BridgeName, "172.20.0.3"); got != nbMAC.String() {
		t.Errorf("after a flush the host resolved 172.20.0.3 to %q; want %s (the neighbour's own ARP reply)\n%s", got, nbMAC, tp.Host.Run(t, "ip", "neigh", "show", "dev", topo.BridgeName))
	}

	// delete removes the netdev table with the inet one.
	df.stop()
	e.mustDF("delete", "-c", pol)
	if out, err := tp.Host.Try("nft", "list", "tables"); err != nil || strings.Contains(out, "dockerfence") {
		t.Errorf("tables after delete: %v\n%s", err, out)
	}
}

// countedBy returns the packets the rule with that comment counted in an
// nft listing, -1 if there is no such rule.
func countedBy(listing, comment string) int {
	re := regexp.MustCompile(`counter packets (\d+) bytes \d+ .*comment "` + regexp.QuoteMeta(comment) + `"`)
	total := -1
	for _, m := range re.FindAllStringSubmatch(listing, -1) {
		v, _ := strconv.Atoi(m[1])
		total = max(total, 0) + v
	}
	return total
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// linkMAC returns the hardware address of link name in ns.
func linkMAC(t *testing.T, ns *topo.NS, name string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// neighMAC returns the MAC that ns's neighbour table holds for ip on
// link dev, "" if none.
func neighMAC(t *testing.T, ns *topo.NS, dev, ip string) string {
	t.Helper()
	a := net.ParseIP(ip)
	var mac string
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		fam := netlink.FAMILY_V4
		if a.To4() == nil {
			fam = netlink.FAMILY_V6
		}
		ns, err := netlink.NeighList(l.Attrs().Index, fam)
		if err != nil {
			return err
		}
		for _, n := range ns {
			if n.IP.Equal(a) && n.HardwareAddr != nil {
				mac = n.HardwareAddr.String()
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// arpFrame is a broadcast gratuitous ARP reply from Ethernet source src
// that says ip is at sha.
func arpFrame(src, sha net.HardwareAddr, spa, tpa netip.Addr) []byte {
	b := make([]byte, 0, 42)
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, src...)
	b = enc.BigEndian.AppendUint16(b, unix.ETH_P_ARP)
	b = enc.BigEndian.AppendUint16(b, 1) // Ethernet
	b = enc.BigEndian.AppendUint16(b, unix.ETH_P_IP)
	b = append(b, 6, 4)
	b = enc.BigEndian.AppendUint16(b, 2) // reply
	b = append(b, sha...)
	b = append(b, spa.AsSlice()...)
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	return append(b, tpa.AsSlice()...)
}

// udpFrame is an IPv4 UDP datagram from src:sport to dst in an Ethernet
// frame from ethSrc to ethDst.
func udpFrame(ethDst, ethSrc net.HardwareAddr, src netip.Addr, dst netip.AddrPort, sport uint16) []byte {
	payload := []byte("forged?")
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_UDP
	enc.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	copy(ip[12:], src.AsSlice())
	copy(ip[16:], dst.Addr().AsSlice())
	enc.BigEndian.PutUint16(ip[10:], harness.Checksum(ip))
	udp := make([]byte, 8)
	enc.BigEndian.PutUint16(udp[0:], sport)
	enc.BigEndian.PutUint16(udp[2:], dst.Port())
	enc.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	b := append(append([]byte{}, ethDst...), ethSrc...)
	b = enc.BigEndian.AppendUint16(b, unix.ETH_P_IP)
	return append(append(append(b, ip...), udp...), payload...)
}

// sendFrames sends raw Ethernet frames on eth0 of ns (AF_PACKET).
func sendFrames(t *testing.T, ns *topo.NS, frames [][]byte) {
	t.Helper()
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for _, f := range frames {
			sa := &unix.SockaddrLinklayer{Ifindex: l.Attrs().Index, Halen: 6, Protocol: htons(enc.BigEndian.Uint16(f[12:14]))}
			copy(sa.Addr[:], f[:6])
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return fmt.Errorf("sendto: %w", err)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("send frames from %s: %v", ns.Name, err)
	}
}

// sendNA sends n unsolicited neighbour advertisements from ns's eth0 to
// all nodes (ff02::1, from its link-local address, hop limit 255) that
// say target is at mac, with the override flag.
func sendNA(t *testing.T, ns *topo.NS, target netip.Addr, mac net.HardwareAddr, n int) {
	t.Helper()
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, l.Attrs().Index); err != nil {
			return err
		}
		// Type, code, checksum (the kernel's), flags (override), target,
		// then the target link-layer address option.
		msg := []byte{136, 0, 0, 0, 0x20, 0, 0, 0}
		msg = append(msg, target.AsSlice()...)
		msg = append(append(msg, 2, 1), mac...)
		sa := &unix.SockaddrInet6{Addr: netip.MustParseAddr("ff02::1").As16(), ZoneId: uint32(l.Attrs().Index)}
		for range n {
			if err := unix.Sendto(fd, msg, 0, sa); err != nil {
				return fmt.Errorf("sendto: %w", err)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("send advertisements from %s: %v", ns.Name, err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
