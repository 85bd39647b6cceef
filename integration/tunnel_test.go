package integration

import (
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/integration/topo"
)

// vxlanIf is the name of the VXLAN device at either end of the tunnel of
// TestTunnelFence; vxlanHost and vxlanCtr are its addresses in Host and Ctr.
const (
	vxlanIf   = "vxdf0"
	vxlanHost = "10.250.0.1"
	vxlanCtr  = "10.250.0.2"
)

// vxlanToHost builds a VXLAN tunnel (VNI 42, UDP port 4789) from Ctr to a
// VXLAN endpoint in Host that takes packets from anyone (no remote, as a
// learning overlay has), and routes the LAN database from Ctr through it.
// Host forwards what it decapsulates like any packet: from vxdf0 to lan0.
func vxlanToHost(t *testing.T, tp *topo.Topo) {
	t.Helper()
	tp.Host.Run(t, "ip", "link", "add", vxlanIf, "type", "vxlan", "id", "42", "dstport", "4789")
	tp.Host.Run(t, "ip", "addr", "add", vxlanHost+"/24", "dev", vxlanIf)
	tp.Host.Run(t, "ip", "link", "set", vxlanIf, "up")
	tp.Ctr.Run(t, "ip", "link", "add", vxlanIf, "type", "vxlan", "id", "42", "dstport", "4789", "remote", topo.HostBridge4, "dev", "eth0")
	tp.Ctr.Run(t, "ip", "addr", "add", vxlanCtr+"/24", "dev", vxlanIf)
	tp.Ctr.Run(t, "ip", "link", "set", vxlanIf, "up")
	tp.Ctr.Run(t, "ip", "route", "add", topo.LANDB4+"/32", "via", vxlanHost, "dev", vxlanIf)
}

// TestTunnelFence proves the tunnel fence with a VXLAN endpoint on the
// host. The container reaches the LAN database through the tunnel without
// dockerfence. Under the embedded default (host_default allow, deny
// @private), the outer packets are container-to-host traffic that the host
// section allows, and what the host decapsulates enters the forward hook
// from vxdf0, which is no fenced bridge: the tunnel fence must deny it
// (drop, counted and logged), in the forward hook and towards the host's
// own tunnel address in the input hook. A policy whose host rules allow
// the VXLAN port explicitly lets the tunnel carry traffic again, and apply
// and status say so.
func TestTunnelFence(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	tp := e.tp
	vxlanToHost(t, tp)
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

	// Host rules that allow the VXLAN port explicitly.
	pol := e.write("vxlan.yaml", `version: 1
networks:
  - match: {name: "*"}
    egress:
      - deny: "@private"
    host:
      - allow: any
        proto: udp
        ports: [4789]
        comment: overlay
`)
	want := `network br-test (section 1): host 1 allows udp/4789 (VXLAN) to this host explicitly, so what a tunnel endpoint there decapsulates from the containers' packets is not fenced; the tunnel fence covers only what host_default allows`
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
