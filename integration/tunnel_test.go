package integration

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// vxlanIf is the name of the VXLAN device at either end of the tunnel of
// TestTunnelFence; vxlanHost and vxlanCtr are its addresses in Host and Ctr.
const (
	vxlanIf   = "vxdf0"
	vxlanHost = "10.250.0.1"
	vxlanCtr  = "10.250.0.2"
)

// vxlanToHost builds a VXLAN tunnel (VNI 42, UDP port port) from Ctr to a
// VXLAN endpoint in Host that takes packets from anyone (no remote, as a
// learning overlay has), and routes the LAN database from Ctr through it.
// Host forwards what it decapsulates like any packet: from vxdf0 to lan0.
func vxlanToHost(t *testing.T, tp *topo.Topo, port string) {
	t.Helper()
	tp.Host.Run(t, "ip", "link", "add", vxlanIf, "type", "vxlan", "id", "42", "dstport", port)
	tp.Host.Run(t, "ip", "addr", "add", vxlanHost+"/24", "dev", vxlanIf)
	tp.Host.Run(t, "ip", "link", "set", vxlanIf, "up")
	tp.Ctr.Run(t, "ip", "link", "add", vxlanIf, "type", "vxlan", "id", "42", "dstport", port, "remote", topo.HostBridge4, "dev", "eth0")
	tp.Ctr.Run(t, "ip", "addr", "add", vxlanCtr+"/24", "dev", vxlanIf)
	tp.Ctr.Run(t, "ip", "link", "set", vxlanIf, "up")
	tp.Ctr.Run(t, "ip", "route", "add", topo.LANDB4+"/32", "via", vxlanHost, "dev", vxlanIf)
}

// TestTunnelFence proves the tunnel fence with a VXLAN endpoint on the
// host, on UDP port 4790: a port that no rule knows as a tunnel's, so that
// the packet mark alone fences it (TestTunnelEndpoints covers the default
// ports). The container reaches the LAN database through the tunnel without
// dockerfence. Under the embedded default (host_default allow, deny
// @private), the outer packets are container-to-host traffic that the host
// section allows, and what the host decapsulates enters the forward hook
// from vxdf0, which is no fenced bridge: the tunnel fence must deny it
// (drop, counted and logged), in the forward hook and towards the host's
// own tunnel address in the input hook. A policy whose host rules allow
// every UDP port explicitly lets the tunnel carry traffic again, and apply
// and status say so.
func TestTunnelFence(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	tp := e.tp
	vxlanToHost(t, tp, "4790")
	tp.Host.ListenTCP(t, hostPort(vxlanHost, 22))
	through := []probe{
		{"database through the tunnel", "tcp", hostPort(topo.LANDB4, 5432), "ok"},
		{"host's tunnel address", "tcp", hostPort(vxlanHost, 22), "ok"},
	}
	e.expect(tp.Ctr, through)
	if t.Failed() {
		t.Fatal("the tunnel does not work without dockerfence; the test proves nothing")
	}

	out := e.mustDF("apply")
	t.Logf("apply: %s", strings.TrimSpace(out))
	fenced := []probe{
		{"database through the tunnel", "tcp", hostPort(topo.LANDB4, 5432), "timeout"},
		{"host's tunnel address", "tcp", hostPort(vxlanHost, 22), "timeout"},
		{"internet, no tunnel", "tcp", hostPort(topo.InetIP4, 80), "ok"},
	}
	e.expect(tp.Ctr, fenced)
	for _, chain := range []string{"fwd.network", "in.network"} {
		listing := tp.Host.Run(t, "nft", "list", "chain", "inet", "dockerfence", chain)
		if !strings.Contains(listing, "meta mark & 0x10000000 == 0x10000000 counter packets") || strings.Contains(listing, "== 0x10000000 counter packets 0 ") {
			t.Errorf("the tunnel rule of %s counted nothing:\n%s", chain, listing)
		}
	}
	s := e.statusJSON()
	t.Logf("status: %d tunnelled packets denied; warnings %q", s.TunnelDenied, s.Warnings)
	if s.TunnelDenied == 0 || len(s.Warnings) != 0 {
		t.Errorf("status under the embedded default: %d tunnelled packets denied, warnings %q; want some and none", s.TunnelDenied, s.Warnings)
	}

	// Host rules that allow every UDP port explicitly, the VXLAN one too.
	pol := e.write("vxlan.yaml", `version: 1
networks:
  - match: {name: "*"}
    egress:
      - deny: "@private"
    host:
      - allow: any
        proto: udp
        comment: overlay
`)
	want := `network br-test (section 1): host 1 allows every UDP port (VXLAN, GENEVE, FOU and other UDP tunnels) to this host explicitly, so what a tunnel endpoint there decapsulates from the containers' packets is not fenced; the tunnel fence covers only what host_default allows`
	stdout, stderr, err := e.dfStdout("apply", "-c", pol)
	if err != nil {
		t.Fatalf("apply: %v\n%s%s", err, stdout, stderr)
	}
	t.Logf("apply:\n%s%s", stdout, stderr)
	if !strings.Contains(stderr, want) {
		t.Errorf("apply does not warn of the tunnel the host rules let in; stderr:\n%s\nwant:\n%s", stderr, want)
	}
	if s := e.statusJSON("-c", pol); !slices.Contains(s.Warnings, want) {
		t.Errorf("status --json warnings %q lack %q", s.Warnings, want)
	}
	if human := e.mustDF("status", "-c", pol); !strings.Contains(human, "warning:    "+want) {
		t.Errorf("status does not show the warning:\n%s", human)
	}
	e.expect(tp.Ctr, through)
}

// rawDelivered sends n packets of IP protocol proto (with a marker
// payload) from Ctr to the host's bridge address, and returns how many a
// raw socket of that protocol in Host received: what a GRE or IPIP
// endpoint there would get, had the kernel one (the test kernel has no
// GRE, IPIP, GENEVE or WireGuard devices; the raw socket sees what they
// would).
func rawDelivered(t *testing.T, tp *topo.Topo, proto, n int) int {
	t.Helper()
	network := fmt.Sprintf("ip4:%d", proto)
	var l *net.IPConn
	if err := tp.Host.Do(func() error {
		var err error
		l, err = net.ListenIP(network, &net.IPAddr{IP: net.ParseIP(topo.HostBridge4)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var c *net.IPConn
	if err := tp.Ctr.Do(func() error {
		var err error
		c, err = net.DialIP(network, nil, &net.IPAddr{IP: net.ParseIP(topo.HostBridge4)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	marker := []byte("\x00\x00\x08\x00dockerfence tunnel probe")
	for range n {
		if _, err := c.Write(marker); err != nil {
			t.Fatalf("send protocol %d: %v", proto, err)
		}
	}
	got := 0
	buf := make([]byte, 2048)
	l.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		k, err := l.Read(buf)
		if err != nil {
			return got
		}
		if bytes.Contains(buf[:k], marker) {
			got++
		}
	}
}

// udpDelivered sends n datagrams from Ctr to port on the host's bridge
// address and returns how many a socket there received.
func udpDelivered(t *testing.T, tp *topo.Topo, port, n int) int64 {
	t.Helper()
	addr := hostPort(topo.HostBridge4, port)
	u := harness.ListenUDPCounter(t, tp.Host, addr)
	defer u.Close()
	c, err := tp.Ctr.DialUDPFrom("", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range n {
		c.Write([]byte("dockerfence tunnel probe"))
	}
	time.Sleep(300 * time.Millisecond)
	return u.Count()
}

// TestTunnelEndpoints sends what a container would send to tunnel
// endpoints on the host, GRE and IPIP packets and datagrams to the UDP
// ports of WireGuard (which clears the packet mark when it decapsulates,
// so the mark cannot fence it), GENEVE and VXLAN, and requires that under
// the embedded default none reaches the host while a datagram to another
// port does, that a real VXLAN endpoint on its default port no longer
// carries the container to the database, and that status counts the
// denials. A host rule that allows WireGuard's port explicitly lets its
// datagrams in again, and apply warns.
func TestTunnelEndpoints(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	tp := e.tp
	vxlanToHost(t, tp, "4789")
	const n = 20
	type sent struct {
		what string
		got  func() int64
	}
	probes := []sent{
		{"GRE (protocol 47)", func() int64 { return int64(rawDelivered(t, tp, 47, n)) }},
		{"IPIP (protocol 4)", func() int64 { return int64(rawDelivered(t, tp, 4, n)) }},
		{"WireGuard (udp/51820)", func() int64 { return udpDelivered(t, tp, 51820, n) }},
		{"GENEVE (udp/6081)", func() int64 { return udpDelivered(t, tp, 6081, n) }},
	}
	db := []probe{{"database through the VXLAN tunnel on udp/4789", "tcp", hostPort(topo.LANDB4, 5432), "ok"}}
	for _, p := range probes {
		if got := p.got(); got != n {
			t.Fatalf("without dockerfence, %d of %d packets of %s reached the host; the test proves nothing", got, n, p.what)
		}
	}
	e.expect(tp.Ctr, db)
	if t.Failed() {
		t.FailNow()
	}

	e.mustDF("apply")
	for _, p := range probes {
		if got := p.got(); got != 0 {
			t.Errorf("under the embedded default, %d of %d packets of %s reached the host's tunnel endpoint", got, n, p.what)
		}
	}
	if got := udpDelivered(t, tp, 4790, n); got != n {
		t.Errorf("under the embedded default, %d of %d datagrams to udp/4790 (no tunnel's port) reached the host; want all", got, n)
	}
	db[0].want = "timeout"
	e.expect(tp.Ctr, db)
	s := e.statusJSON()
	var counted uint64
	for _, nw := range s.Networks {
		for _, r := range nw.Rules {
			if r.ID == fence.TunnelEndpointRuleID {
				counted += r.Packets
			}
		}
	}
	if counted < 4*n {
		t.Errorf("status counts %d packets denied to tunnel endpoints; want at least %d", counted, 4*n)
	}

	pol := e.write("wireguard.yaml", `version: 1
networks:
  - match: {name: "*"}
    egress:
      - deny: "@private"
    host:
      - allow: any
        proto: udp
        ports: [51820]
        comment: wireguard for the sidecar
`)
	_, stderr, err := e.dfStdout("apply", "-c", pol)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, stderr)
	}
	if want := "host 1 allows udp/51820 (WireGuard) to this host explicitly"; !strings.Contains(stderr, want) {
		t.Errorf("apply does not warn of the WireGuard port the host rules let in; stderr:\n%s", stderr)
	}
	if got := udpDelivered(t, tp, 51820, n); got != n {
		t.Errorf("with udp/51820 allowed explicitly, %d of %d datagrams arrived; want all", got, n)
	}
	if got := udpDelivered(t, tp, 6081, n); got != 0 {
		t.Errorf("with only udp/51820 allowed, %d datagrams to GENEVE's port arrived; want none", got)
	}
}
