package integration

import (
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nflog"
)

// TestContainerIdentityClaims forges a known neighbour's identity from a
// container whose bridge port dockerfence has not found (Docker reports
// it without its MAC, as in the moment after it starts), so that no
// identity chain is on its port: gratuitous ARP that claims the
// neighbour's IPv4 address, an unsolicited neighbour advertisement that
// claims its IPv6 address, and UDP frames with the neighbour's MAC as
// Ethernet source, 20 of each. Before dockerfence the host's neighbour
// entries and the bridge's forwarding entry for the neighbour's MAC follow
// the forger and the frames arrive (so the test can fail); under it the
// bridge table's claims chain drops them all, counts and logs them, and
// the entries stay the neighbour's. The forger's ARP for its own address,
// which no known container claims, still works.
func TestContainerIdentityClaims(t *testing.T) {
	e := newEnv(t)
	tp := e.tp
	worker := tp.Ctr
	nb := tp.AddContainer(t, "nb", "172.20.0.3", "fd00:20::3")
	fake := harness.StartDocker(t, filepath.Join(e.dir, "docker.sock"))
	fake.Set([]harness.Network{{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}})
	wMAC, nbMAC := mustMAC(t, macOf(t, worker)), mustMAC(t, macOf(t, nb))
	fake.SetContainers([]harness.Container{
		// No MAC: its port is not found, as while it starts.
		{ID: strings.Repeat("a", 64), Name: "worker", Labels: map[string]string{"role": "worker"}, Endpoints: []harness.Endpoint{{Network: "app", IPv4: topo.CtrIP4}}},
		{ID: strings.Repeat("b", 64), Name: "neighbour", Endpoints: []harness.Endpoint{{Network: "app", IPv4: "172.20.0.3", IPv6: "fd00:20::3", MAC: nbMAC.String()}}},
	})
	bridgeMAC := linkMAC(t, tp.Host, topo.BridgeName)
	target := netip.MustParseAddrPort(topo.InetIP4 + ":7011")
	counter := harness.ListenUDPCounter(t, tp.Inet, target.String())
	nbIP4, nbIP6 := netip.MustParseAddr("172.20.0.3"), netip.MustParseAddr("fd00:20::3")
	const n = 20

	type result struct {
		nbIP4, nbIP6 string // the MACs the host holds for the neighbour's addresses
		fdb          string // the port the bridge forwards the neighbour's MAC to
		forged       int64  // frames with the neighbour's MAC as source that arrived
	}
	forge := func() result {
		t.Helper()
		// Stale entries at the neighbour's MAC, which a forgery could
		// take over, and the bridge taught where the neighbour is.
		for _, c := range []string{"172.20.0.3", "fd00:20::3"} {
			tp.Host.Run(t, "ip", "neigh", "replace", c, "lladdr", nbMAC.String(), "dev", topo.BridgeName, "nud", "stale")
		}
		sendFrames(t, nb, [][]byte{udpFrame(bridgeMAC, nbMAC, nbIP4, target, 42000)})
		time.Sleep(1100 * time.Millisecond) // the ARP lock time
		var frames [][]byte
		for range n {
			frames = append(frames, arpFrame(wMAC, wMAC, nbIP4, nbIP4))
		}
		sendFrames(t, worker, frames)
		sendNA(t, worker, nbIP6, wMAC, n)
		before := counter.Count()
		frames = frames[:0]
		for i := range n {
			// The worker's own address, the neighbour's MAC.
			frames = append(frames, udpFrame(bridgeMAC, nbMAC, netip.MustParseAddr(topo.CtrIP4), target, uint16(43000+i)))
		}
		sendFrames(t, worker, frames)
		time.Sleep(300 * time.Millisecond)
		return result{
			nbIP4:  neighMAC(t, tp.Host, topo.BridgeName, "172.20.0.3"),
			nbIP6:  neighMAC(t, tp.Host, topo.BridgeName, "fd00:20::3"),
			fdb:    fdbPort(t, tp.Host, nbMAC.String()),
			forged: counter.Count() - before,
		}
	}

	without := forge()
	t.Logf("without dockerfence: host holds 172.20.0.3 at %s, fd00:20::3 at %s; the bridge sends %s to %s; %d of %d frames with it as source arrived",
		without.nbIP4, without.nbIP6, nbMAC, without.fdb, without.forged, n)
	if without.nbIP4 != wMAC.String() || without.nbIP6 != wMAC.String() || without.fdb != worker.HostIf || without.forged != n {
		t.Fatalf("without dockerfence the forgeries did not all take (want the neighbour's addresses at %s, its MAC on %s, %d frames): the test proves nothing", wMAC, worker.HostIf, n)
	}

	pol := e.write("policy.yaml", containersPolicy)
	if out, stderr, err := e.dfStdout("apply", "-c", pol, "--docker-host", fake.URL); err != nil {
		t.Fatalf("apply: %v\n%s%s", err, out, stderr)
	}
	br := tp.Host.Run(t, "nft", "list", "table", "bridge", "dockerfence")
	if !strings.Contains(br, "hook prerouting") || !strings.Contains(br, `"`+nb.HostIf+`" . 172.20.0.3 . `+nbMAC.String()) || strings.Contains(br, topo.CtrIP4) {
		t.Fatalf("the bridge table does not hold the neighbour's claims (and only them):\n%s", br)
	}

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
	t.Logf("with dockerfence: host holds 172.20.0.3 at %s, fd00:20::3 at %s; the bridge sends %s to %s; %d of %d frames with it as source arrived; NFLOG: %v",
		with.nbIP4, with.nbIP6, nbMAC, with.fdb, with.forged, n, seen)
	if with.nbIP4 != nbMAC.String() {
		t.Errorf("the host learned 172.20.0.3 at %s from the unchecked worker's gratuitous ARP; want it kept at the neighbour's %s", with.nbIP4, nbMAC)
	}
	if with.nbIP6 != nbMAC.String() {
		t.Errorf("the host learned fd00:20::3 at %s from the unchecked worker's advertisement; want it kept at %s", with.nbIP6, nbMAC)
	}
	if with.fdb != nb.HostIf {
		t.Errorf("the bridge sends the neighbour's MAC to %q after the worker's frames; want the neighbour's port %s", with.fdb, nb.HostIf)
	}
	if with.forged != 0 {
		t.Errorf("%d of %d frames with the neighbour's MAC from the worker arrived; want none", with.forged, n)
	}
	// The chain's log limit (10 a second, shared by all forgers) lets
	// the first ones through: the ARP ones, sent first.
	if !slices.ContainsFunc(slices.Collect(maps.Keys(seen)), func(k string) bool { return strings.HasSuffix(k, "claims.identity hwproto 0x0806") }) {
		t.Errorf("no ARP denial logged as claims.identity; logged: %v", seen)
	}
	br = tp.Host.Run(t, "nft", "list", "table", "bridge", "dockerfence")
	for _, c := range []string{
		"a known container's MAC as Ethernet source from another port",
		"ARP claiming a known container's IPv4 address, not from its port with its MAC",
		"neighbour advertisement for a known container's IPv6 address from another port",
	} {
		got := countedBy(br, c)
		t.Logf("bridge rule %q counted %d packets", c, got)
		if got < n {
			t.Errorf("the rule %q counted %d packets; want at least %d\n%s", c, got, n, br)
		}
	}
	if pl := e.mustDF("plan", "-c", pol, "--docker-host", fake.URL); !strings.Contains(pl, "is up to date") {
		t.Errorf("plan after apply:\n%s", pl)
	}

	// The worker's ARP for its own address, which no known container
	// claims, passes: the host resolves it at once.
	tp.Host.Run(t, "ip", "neigh", "flush", "dev", topo.BridgeName)
	c, err := tp.Host.DialUDP(topo.CtrIP4 + ":9")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.Write([]byte("who has 172.20.0.2?"))
	c.Close()
	for neighMAC(t, tp.Host, topo.BridgeName, topo.CtrIP4) == "" && time.Since(start) < time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	if got := neighMAC(t, tp.Host, topo.BridgeName, topo.CtrIP4); got != wMAC.String() {
		t.Errorf("the host resolved the unchecked worker's own %s to %q; want %s (its own ARP reply)", topo.CtrIP4, got, wMAC)
	} else {
		t.Logf("the host resolved the unchecked worker's own address in %v", time.Since(start).Round(time.Millisecond))
	}

	if st, stderr, _ := e.dfExit(t, fake.URL, "status", "-c", pol); !strings.Contains(st, "table bridge dockerfence: present, the claims of 1 container ports") {
		t.Errorf("status does not list the bridge table:\n%s%s", st, stderr)
	}
	// Drift in the bridge table is reported and repaired.
	tp.Host.Run(t, "nft", "flush", "chain", "bridge", "dockerfence", "claims")
	if js := e.statusJSON("-c", pol, "--docker-host", fake.URL); !slices.ContainsFunc(js.Table.Drift, func(l string) bool { return strings.HasPrefix(l, "bridge: ") }) {
		t.Errorf("status --json after the claims chain was flushed gives no bridge drift: %q", js.Table.Drift)
	}
	if pl := e.mustDF("plan", "-c", pol, "--docker-host", fake.URL); !strings.Contains(pl, "add rule bridge dockerfence claims ") {
		t.Errorf("plan after the claims chain was flushed does not put its rules back:\n%s", pl)
	}
	e.mustDF("apply", "-c", pol, "--docker-host", fake.URL)
	if pl := e.mustDF("plan", "-c", pol, "--docker-host", fake.URL); !strings.Contains(pl, "is up to date") {
		t.Errorf("plan after the repair:\n%s", pl)
	}

	// A daemon's socket owns the bridge table as it owns the inet one,
	// and a daemon repairs drift in it.
	tamper := func() error {
		_, err := tp.Host.Try("nft", "flush", "chain", "bridge", "dockerfence", "claims")
		return err
	}
	sock := filepath.Join(e.dir, "docker.sock")
	df := e.startDaemonBin(binary, sock, pol)
	df.waitLog(t, "reason=start")
	if err := tamper(); err == nil || !strings.Contains(err.Error(), "not permitted") {
		t.Errorf("flush of the claims chain while the daemon runs: %v; want the kernel to refuse it (owned)", err)
	}
	df.cmd.Process.Kill()
	<-df.exited
	if err := tamper(); err != nil {
		t.Fatalf("flush the claims chain with no daemon: %v", err)
	}
	df = e.startDaemonBin(binary, sock, pol)
	defer df.stop()
	df.waitLog(t, `msg="table applied" reason=start`)
	if df.countLog("table differs: ", "bridge: ") == 0 {
		t.Errorf("the daemon did not log the bridge table's drift")
	}
	if pl := e.mustDF("plan", "-c", pol, "--docker-host", fake.URL); !strings.Contains(pl, "is up to date") {
		t.Errorf("plan after the daemon's repair:\n%s", pl)
	}
	df.stop()

	// delete removes the bridge table with the others.
	e.mustDF("delete", "-c", pol)
	if out, err := tp.Host.Try("nft", "list", "tables"); err != nil || strings.Contains(out, "dockerfence") {
		t.Errorf("tables after delete: %v\n%s", err, out)
	}
}

// fdbPort returns the port that ns's bridges forward mac to, as `bridge
// fdb` lists it, "" if none.
func fdbPort(t *testing.T, ns *topo.NS, mac string) string {
	t.Helper()
	for _, l := range strings.Split(ns.Run(t, "bridge", "fdb", "show", "br", topo.BridgeName), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == mac && f[1] == "dev" && !strings.Contains(l, "permanent") {
			return f[2]
		}
	}
	return ""
}
