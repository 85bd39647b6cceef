// Package topo builds a Docker-host-like topology of network namespaces for
// integration tests of the dockerfence egress firewall.
//
// A topology consists of four namespaces that are connected by veth pairs and
// plain routing (no NAT):
//
//	Ctr  (172.20.0.2, fd00:20::2) --eth0/vethcN-- br-test in Host
//	Host (br-test 172.20.0.1/16 fd00:20::1/64, forwarding on)
//	LAN  (192.168.100.1/.2/.50, fd00:100::1/::2/::50) --eth0/lan0-- Host
//	Inet (203.0.113.10, 2001:db8:ff::10) --eth0/wan0-- Host
//
// Every namespace is created with "ip netns add" under a name that is unique
// per process and per topology, so it is reachable as /run/netns/NAME by other
// tools (nsenter, dockerd). Nothing is ever changed in the namespace of the
// test process itself. All namespaces are deleted by test cleanup, including
// when the test fails midway.
package topo

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
)

// Well-known names and addresses of the topology built by New.
const (
	// BridgeName is the name of the container bridge in Host.
	BridgeName = "br-test"

	// LANIf is the name of Host's interface towards LAN.
	LANIf = "lan0"

	// WANIf is the name of Host's interface towards Inet.
	WANIf = "wan0"

	// HostBridge4 is Host's IPv4 address on br-test and the IPv4 gateway of its containers.
	HostBridge4 = "172.20.0.1"

	// HostBridge6 is Host's IPv6 address on br-test and the IPv6 gateway of its containers.
	HostBridge6 = "fd00:20::1"

	// CtrIP4 is the IPv4 address of Ctr.
	CtrIP4 = "172.20.0.2"

	// CtrIP6 is the IPv6 address of Ctr.
	CtrIP6 = "fd00:20::2"

	// HostLAN4 is Host's IPv4 address on lan0.
	HostLAN4 = "192.168.100.254"

	// HostLAN6 is Host's IPv6 address on lan0.
	HostLAN6 = "fd00:100::fe"

	// LANProxy4 is the IPv4 address of the "proxy" in LAN.
	LANProxy4 = "192.168.100.1"

	// LANProxy6 is the IPv6 address of the "proxy" in LAN.
	LANProxy6 = "fd00:100::1"

	// LANDNS4 is the IPv4 address of the "dns" server in LAN.
	LANDNS4 = "192.168.100.2"

	// LANDNS6 is the IPv6 address of the "dns" server in LAN.
	LANDNS6 = "fd00:100::2"

	// LANDB4 is the IPv4 address of the "database" in LAN.
	LANDB4 = "192.168.100.50"

	// LANDB6 is the IPv6 address of the "database" in LAN.
	LANDB6 = "fd00:100::50"

	// HostWAN4 is Host's IPv4 address on wan0.
	HostWAN4 = "203.0.113.254"

	// HostWAN6 is Host's IPv6 address on wan0.
	HostWAN6 = "2001:db8:ff::fe"

	// InetIP4 is the IPv4 address of Inet.
	InetIP4 = "203.0.113.10"

	// InetIP6 is the IPv6 address of Inet.
	InetIP6 = "2001:db8:ff::10"
)

// topoCounter makes namespace prefixes unique within the process.
var topoCounter atomic.Int64

// validName restricts user-supplied namespace and bridge names.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Topo is a Docker-host-like topology of network namespaces.
type Topo struct {
	// Prefix is the unique prefix of all namespace names of this topology,
	// e.g. "dft-1234-1"; namespaces are named Prefix+"-"+role.
	Prefix string
	// Host is the Docker host: it owns br-test, lan0 and wan0 and forwards
	// IPv4 and IPv6 between them.
	Host *NS
	// Ctr is the first container, attached to br-test.
	Ctr *NS
	// LAN is a host on the local network behind Host's lan0.
	LAN *NS
	// Inet is a host on the "internet" behind Host's wan0.
	Inet *NS

	mu      sync.Mutex
	names   map[string]bool
	bridges map[string]bridgeInfo
	nveth   int
}

type bridgeInfo struct {
	gw4, gw6 netip.Prefix // zero if the family is not configured
}

// New builds the topology for t and registers its removal with t.Cleanup.
// It skips the test if the process is not running as root and fails it if
// the topology cannot be built.
func New(t T) *Topo {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("topo: needs root (creates network namespaces)")
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("topo: %s not found in PATH: %v", tool, err)
		}
	}
	processNSID() // record the test process's namespace before any Do
	tp := &Topo{
		Prefix:  fmt.Sprintf("dft-%d-%d", os.Getpid(), topoCounter.Add(1)),
		names:   map[string]bool{},
		bridges: map[string]bridgeInfo{},
	}

	tp.Host = tp.newNS(t, "host")
	tp.Host.mustSysctl(t,
		"net.ipv4.ip_forward", "1",
		"net.ipv6.conf.all.forwarding", "1",
		"net.ipv6.conf.default.forwarding", "1",
	)
	tp.AddBridge(t, BridgeName, HostBridge4+"/16", HostBridge6+"/64")
	tp.Ctr = tp.AddContainerOn(t, BridgeName, "ctr", CtrIP4, CtrIP6)

	tp.LAN = tp.newNS(t, "lan")
	tp.LAN.HostIf = LANIf
	tp.link(t, tp.LAN, LANIf,
		[]string{HostLAN4 + "/24", HostLAN6 + "/64"},
		[]string{LANProxy4 + "/24", LANDNS4 + "/24", LANDB4 + "/24",
			LANProxy6 + "/64", LANDNS6 + "/64", LANDB6 + "/64"},
		HostLAN4, HostLAN6)

	tp.Inet = tp.newNS(t, "inet")
	tp.Inet.HostIf = WANIf
	tp.link(t, tp.Inet, WANIf,
		[]string{HostWAN4 + "/24", HostWAN6 + "/64"},
		[]string{InetIP4 + "/24", InetIP6 + "/64"},
		HostWAN4, HostWAN6)
	return tp
}

// AddBridge creates another bridge named bridge in Host with the gateway
// addresses gw4 and gw6 in prefix notation (e.g. "172.21.0.1/16" and
// "fd00:21::1/64"). Either gateway may be empty to leave that family
// unconfigured. Containers can be attached to it with AddContainerOn.
func (tp *Topo) AddBridge(t T, bridge, gw4, gw6 string) {
	t.Helper()
	if !validName.MatchString(bridge) || len(bridge) > 15 {
		t.Fatalf("topo: invalid bridge name %q", bridge)
	}
	var bi bridgeInfo
	var err error
	if gw4 != "" {
		if bi.gw4, err = netip.ParsePrefix(gw4); err != nil || !bi.gw4.Addr().Is4() {
			t.Fatalf("topo: AddBridge %s: bad IPv4 gateway %q: %v", bridge, gw4, err)
		}
	}
	if gw6 != "" {
		if bi.gw6, err = netip.ParsePrefix(gw6); err != nil || !bi.gw6.Addr().Is6() {
			t.Fatalf("topo: AddBridge %s: bad IPv6 gateway %q: %v", bridge, gw6, err)
		}
	}
	tp.mu.Lock()
	_, dup := tp.bridges[bridge]
	tp.mu.Unlock()
	if dup {
		t.Fatalf("topo: bridge %s already exists", bridge)
	}

	cmds := []string{"link add " + bridge + " type bridge"}
	if bi.gw4.IsValid() {
		cmds = append(cmds, "addr add "+bi.gw4.String()+" dev "+bridge)
	}
	if bi.gw6.IsValid() {
		cmds = append(cmds, "addr add "+bi.gw6.String()+" dev "+bridge+" nodad")
	}
	cmds = append(cmds, "link set "+bridge+" up")
	if err := tp.Host.ipBatch(cmds...); err != nil {
		t.Fatalf("topo: AddBridge %s: %v", bridge, err)
	}
	tp.mu.Lock()
	tp.bridges[bridge] = bi
	tp.mu.Unlock()
}

// AddContainer creates another container namespace called name attached to
// br-test with the addresses v4 and v6 (e.g. "172.20.0.3" and "fd00:20::3").
// It is AddContainerOn with the bridge br-test.
func (tp *Topo) AddContainer(t T, name, v4, v6 string) *NS {
	t.Helper()
	return tp.AddContainerOn(t, BridgeName, name, v4, v6)
}

// AddContainerOn creates a container namespace called name and attaches it to
// bridge in Host via a veth pair (eth0 inside the container). The addresses v4
// and v6 may be given with or without a prefix length; without one, the
// prefix length of the bridge's gateway is used. Either may be empty to leave
// that family unconfigured. Default routes point to the bridge's gateways.
func (tp *Topo) AddContainerOn(t T, bridge, name, v4, v6 string) *NS {
	t.Helper()
	tp.mu.Lock()
	bi, ok := tp.bridges[bridge]
	tp.mu.Unlock()
	if !ok {
		t.Fatalf("topo: AddContainerOn %s: unknown bridge %q", name, bridge)
	}
	addr4 := containerAddr(t, name, v4, bi.gw4, true)
	addr6 := containerAddr(t, name, v6, bi.gw6, false)

	ns := tp.newNS(t, name)
	tp.mu.Lock()
	hostIf := fmt.Sprintf("vethc%d", tp.nveth)
	tp.nveth++
	tp.mu.Unlock()
	ns.HostIf = hostIf

	if err := tp.Host.ipBatch(
		"link add "+hostIf+" type veth peer name eth0 netns "+ns.Name,
		"link set "+hostIf+" master "+bridge,
		"link set "+hostIf+" up",
	); err != nil {
		t.Fatalf("topo: AddContainerOn %s: %v", name, err)
	}
	cmds := []string{"link set eth0 up"}
	if addr4.IsValid() {
		cmds = append(cmds, "addr add "+addr4.String()+" dev eth0")
	}
	if addr6.IsValid() {
		cmds = append(cmds, "addr add "+addr6.String()+" dev eth0 nodad")
	}
	if addr4.IsValid() {
		cmds = append(cmds, "route add 0.0.0.0/0 via "+bi.gw4.Addr().String()+" dev eth0")
	}
	if addr6.IsValid() {
		cmds = append(cmds, "route add ::/0 via "+bi.gw6.Addr().String()+" dev eth0")
	}
	if err := ns.ipBatch(cmds...); err != nil {
		t.Fatalf("topo: AddContainerOn %s: %v", name, err)
	}
	return ns
}

// containerAddr parses a container address and checks it against the
// bridge's gateway prefix.
func containerAddr(t T, name, s string, gw netip.Prefix, v4 bool) netip.Prefix {
	t.Helper()
	if s == "" {
		return netip.Prefix{}
	}
	if !gw.IsValid() {
		t.Fatalf("topo: container %s: address %s given but the bridge has no gateway in that family", name, s)
	}
	var p netip.Prefix
	var err error
	if strings.Contains(s, "/") {
		p, err = netip.ParsePrefix(s)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil {
			p = netip.PrefixFrom(a, gw.Bits())
		}
	}
	if err != nil || p.Addr().Is4() != v4 || p.Addr().Is4In6() {
		t.Fatalf("topo: container %s: bad address %q: %v", name, s, err)
	}
	if !gw.Masked().Contains(p.Addr()) {
		t.Fatalf("topo: container %s: address %s is not in the bridge subnet %s", name, s, gw.Masked())
	}
	return p
}

// link connects peer to Host with a veth pair: hostIf in Host and eth0 in
// peer. hostAddrs and peerAddrs are prefixes assigned to either end; peer's
// default routes point to gw4 and gw6.
func (tp *Topo) link(t T, peer *NS, hostIf string, hostAddrs, peerAddrs []string, gw4, gw6 string) {
	t.Helper()
	hostCmds := []string{"link add " + hostIf + " type veth peer name eth0 netns " + peer.Name}
	hostCmds = append(hostCmds, addrCmds(hostIf, hostAddrs)...)
	hostCmds = append(hostCmds, "link set "+hostIf+" up")
	if err := tp.Host.ipBatch(hostCmds...); err != nil {
		t.Fatalf("topo: link %s: %v", hostIf, err)
	}
	peerCmds := []string{"link set eth0 up"}
	peerCmds = append(peerCmds, addrCmds("eth0", peerAddrs)...)
	peerCmds = append(peerCmds,
		"route add 0.0.0.0/0 via "+gw4+" dev eth0",
		"route add ::/0 via "+gw6+" dev eth0",
	)
	if err := peer.ipBatch(peerCmds...); err != nil {
		t.Fatalf("topo: link %s peer %s: %v", hostIf, peer.Name, err)
	}
}

func addrCmds(dev string, prefixes []string) []string {
	var cmds []string
	for _, p := range prefixes {
		c := "addr add " + p + " dev " + dev
		if strings.Contains(p, ":") {
			c += " nodad"
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// newNS creates the namespace Prefix+"-"+role, registers its deletion, opens
// its handle, brings up lo and disables IPv6 duplicate address detection.
func (tp *Topo) newNS(t T, role string) *NS {
	t.Helper()
	if !validName.MatchString(role) || len(role) > 64 {
		t.Fatalf("topo: invalid namespace name %q", role)
	}
	tp.mu.Lock()
	dup := tp.names[role]
	tp.names[role] = true
	tp.mu.Unlock()
	if dup {
		t.Fatalf("topo: namespace %q already exists in this topology", role)
	}
	n := &NS{Name: tp.Prefix + "-" + role}

	// Register removal before creation so a failure midway leaves nothing.
	t.Cleanup(func() {
		if _, err := os.Lstat(n.Path()); err != nil {
			return // never created
		}
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("topo: ip netns del %s: %v: %s", n.Name, err, strings.TrimSpace(string(out)))
		}
	})
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Fatalf("topo: ip netns add %s: %v: %s", n.Name, err, strings.TrimSpace(string(out)))
	}
	if err := n.open(); err != nil {
		t.Fatalf("topo: %v", err)
	}
	t.Cleanup(n.closeHandle)

	n.mustSysctl(t,
		"net.ipv6.conf.all.accept_dad", "0",
		"net.ipv6.conf.default.accept_dad", "0",
	)
	if err := n.ipBatch("link set lo up"); err != nil {
		t.Fatalf("topo: %s: %v", n.Name, err)
	}
	return n
}
