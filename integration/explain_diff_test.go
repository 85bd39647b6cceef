package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// TestExplainAgreesWithKernel is a differential test of `dockerfence
// explain` against the kernel. It generates random policies (sections
// matched by subnet, bridge, name and label; allow and deny rules over
// addresses around the topology's hosts, both families, lists, self, any;
// protocols, ports and port ranges; defaults; audit mode; reject or drop),
// applies each in the Host namespace, sends random probes from three
// containers as real packets (TCP connects, UDP datagrams, ICMP and ICMPv6
// echo requests, SCTP INITs; from the containers' own, forged,
// neighbours' and link-local addresses; forwarded, or to the host itself, with --host or
// without it, as to any address) and compares, probe by probe, whether the
// packet arrived with what explain --json says ("passes"), and whether
// explain judged it in the direction the kernel did (packet.hook: "host"
// for the host's own addresses, --host or not).
//
// Arrival is seen by raw sockets bound to each destination address in the
// destination's namespace: the kernel hands them a copy of every packet it
// delivers locally, after the input hook, so they see exactly the packets
// that passed the fence (the destinations have no firewall of their own,
// and the host's input hook holds only dockerfence's table). Each probe is
// told apart by a source port or ICMP echo id used only once.
//
// Half the policies run with Docker unreachable (explain and apply find the
// bridges over netlink), half against a fake Docker API that reports some
// of the bridges as named, labelled networks, so that name and label
// matches, bridges Docker does not report (left to the {name: "*"}
// section's rules, or not fenced) and networks whose Docker subnets lack
// the bridge's IPv6 subnet are covered too.
//
// The container layer is drawn too. Policies get random containers:
// sections (matched by label, name, image and Compose project/service,
// with egress rules and defaults drawn as the networks' are; with Docker
// unreachable they only make a warning). The fake Docker reports some of
// the three containers (with the hardware address of their eth0, mostly,
// so that dockerfence finds their bridge ports) and some neighbours on
// their networks that have no namespace; each with an image, Compose and
// role labels, and sometimes a dockerfence.egress label of random rules in
// flow style, or a broken one (the container is cut off). A reported
// container's probes are explained with explain --container NAME (with
// --network or without), the others' with --network as before: an
// address of a layered network that no reported container holds is held.
// Containers also send from their neighbour's address (source kind
// "neighbour"): a reported container's bridge port drops that (the
// identity check), and explain must say so; from a container whose port
// is not known, the neighbour's rules judge it.
//
// Ingress is drawn too. Network sections (the {bridge: "*"} one included)
// and container sections get random ingress: and ingress_default: keys
// (sources around the outside clients, CIDRs, lists, self, any, both
// families; protocols; the published ports, the containers' ports and
// ranges around them). Host DNATs published ports to the containers as
// Docker does (IPv4 and IPv6, two published ports to one container port
// here and there), and each round sends random connections from outside
// (LAN and Inet, five addresses a family) to the published ports and,
// routed, straight to the containers' addresses (whose ports the rules
// then match), TCP SYNs and UDP datagrams, each from a source port of its
// own (a new connection). Each is held to explain --ingress --from ADDR
// --to-port PORT/PROTO, with --container for a reported container (and
// --network or --to at times), else with --network and --to the
// container's address; arrival is seen in the container's namespace as
// for egress. Egress probes between containers of two networks are
// judged by the receiving network's ingress too, as the kernel does.
//
// DOCKERFENCE_DIFF_SEED repeats a run, DOCKERFENCE_DIFF_POLICIES,
// DOCKERFENCE_DIFF_PROBES and DOCKERFENCE_DIFF_INGRESS change its size
// (50 policies, 20 probes and 12 ingress probes each by default), and
// DOCKERFENCE_DIFF_FIRST starts it at a later policy. Each policy and its
// probes depend only on the seed and the policy's number (link-local
// addresses aside, which the kernel draws anew), but the table that apply
// changes is the previous policy's.
func TestExplainAgreesWithKernel(t *testing.T) {
	e := newEnv(t)
	seed := diffSeed(t)
	nPolicies := diffEnvInt(t, "DOCKERFENCE_DIFF_POLICIES", 50, 1)
	nProbes := diffEnvInt(t, "DOCKERFENCE_DIFF_PROBES", 20, 1)
	nIngress := diffEnvInt(t, "DOCKERFENCE_DIFF_INGRESS", 12, 0)
	first := diffEnvInt(t, "DOCKERFENCE_DIFF_FIRST", 0, 0)
	t.Logf("seed %d (DOCKERFENCE_DIFF_SEED=%d repeats this run); %d policies × (%d probes + %d ingress probes)", seed, seed, nPolicies, nProbes, nIngress)
	start := time.Now()
	lab := newDiffLab(t, e)
	lab.seed = seed
	lab.calibrate()
	t.Logf("topology and calibration: %v", time.Since(start).Round(time.Millisecond))

	var st diffStats
	failed := 0
	for i := first; i < first+nPolicies; i++ {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		if bad := lab.round(i, rng, nProbes, nIngress, &st); bad {
			failed++
			if failed >= 3 {
				t.Fatalf("stopping after %d policies with disagreements (seed %d)", failed, seed)
			}
		}
	}
	t.Logf("%d policies (%d with Docker reachable, reporting %d containers), %d probes in %v: %s",
		nPolicies, st.dockerPolicies, st.containers, st.probes, time.Since(start).Round(time.Millisecond), st)
	if st.probes >= 200 && (st.passed == 0 || st.passed == st.probes) {
		t.Errorf("%d of %d probes passed: the policies do not tell allow from deny, the test proves little", st.passed, st.probes)
	}
	if in := st.by["ingress"]; in >= 200 && (st.inPassed == 0 || st.inPassed == in) {
		t.Errorf("%d of %d ingress probes passed: the policies do not tell allow from deny, the test proves little", st.inPassed, in)
	}
}

// diffSeed returns DOCKERFENCE_DIFF_SEED, or a new seed.
func diffSeed(t *testing.T) uint64 {
	if s := os.Getenv("DOCKERFENCE_DIFF_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DOCKERFENCE_DIFF_SEED=%q: not a number", s)
		}
		return v
	}
	return uint64(time.Now().UnixNano())
}

// diffEnvInt returns the environment variable name as a number of at least
// low, or def if it is not set.
func diffEnvInt(t *testing.T, name string, def, low int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < low {
		t.Fatalf("%s=%q: not a number of at least %d", name, s, low)
	}
	return v
}

// diffCtr is a container of the lab and the addresses it sends from.
type diffCtr struct {
	name    string
	ns      *topo.NS
	bridge  string
	subnets []netip.Prefix
	// addr4 and addr6 are its addresses in the network; ctr3's network has
	// no IPv6 subnet, so its addr6 is invalid.
	addr4, addr6 netip.Addr
	// spoof4 and spoof6 are addresses on its eth0 outside its network.
	spoof4, spoof6 netip.Addr
	// ll is its link-local address; hostLL is Host's on its bridge.
	ll, hostLL netip.Addr
	// eth0 is the index of its eth0, the zone of link-local addresses.
	eth0 int
	// docker is how the fake Docker reports its network.
	docker harness.Network
	// cname and id are its name and ID when the fake Docker reports it as
	// a container, and mac the hardware address of its eth0, by which
	// dockerfence finds its bridge port.
	cname, id, mac string
	// peer4 and peer6 are the addresses of a neighbour on its network
	// that the fake Docker may report (peer is its name then), a
	// container without a namespace: the container holds them too, and
	// sends from them as a forger would (source kind "neighbour"). ctr3
	// has none.
	peer4, peer6 netip.Addr
	peer         string
}

// diffDest is an address that probes go to, and the namespace that holds it.
type diffDest struct {
	ns   *topo.NS
	addr netip.Addr
	// zone is the interface of a link-local address (Host's bridge).
	zone string
	// zoneIndex is that interface's index in ns. Zones are given by index:
	// Go caches interface names process-wide, whatever the namespace.
	zoneIndex int
	// host is set for Host's own addresses (the host hook judges them).
	host bool
	// ctr is the container that holds the address, nil for others.
	ctr *diffCtr
}

// diffLab is the topology of the differential test: three bridges with a
// container each, extra addresses in LAN and Inet, a fake Docker API, and
// raw sockets that see what arrives.
type diffLab struct {
	t      *testing.T
	e      *env
	ctrs   []*diffCtr
	dests  []diffDest
	docker *harness.Docker
	seen   *harness.Capture
	seed   uint64
	// prevYAML and prevView are the previous round's policy and Docker.
	prevYAML, prevView string
	// nextID numbers probes; a source port or echo id is never used twice.
	nextID atomic.Uint32
	// clients are the addresses outside that open connections into the
	// containers, pubs the ports Host publishes (see setUpIngress).
	clients []diffClient
	pubs    []diffPub
}

func newDiffLab(t *testing.T, e *env) *diffLab {
	tp := e.tp
	lab := &diffLab{t: t, e: e, seen: harness.NewCapture(t)}
	// br-test (172.20.0.0/16, fd00:20::/64) with Ctr is the topology's own.
	tp.AddBridge(t, "br-two", "10.77.0.1/24", "fd00:77::1/64")
	ctr2 := tp.AddContainerOn(t, "br-two", "ctr2", "10.77.0.2", "fd00:77::2")
	// A bridge that is not named like Docker's, IPv4 only.
	tp.AddBridge(t, "dfbr3", "10.88.0.1/24", "")
	ctr3 := tp.AddContainerOn(t, "dfbr3", "ctr3", "10.88.0.2", "")

	ip := func(ns *topo.NS, args ...string) { ns.Run(t, "ip", args...) }
	for _, a := range []string{"192.168.100.77/24", "192.168.100.200/24"} {
		ip(tp.LAN, "addr", "add", a, "dev", "eth0")
	}
	for _, a := range []string{"fd00:100::77/64", "fd00:100::1:2/64"} {
		ip(tp.LAN, "addr", "add", a, "dev", "eth0", "nodad")
	}
	ip(tp.Inet, "addr", "add", "203.0.113.20/24", "dev", "eth0")
	ip(tp.Inet, "addr", "add", "2001:db8:ff::20/64", "dev", "eth0", "nodad")
	// Forged sources: the containers hold them, the networks do not.
	ip(tp.Ctr, "addr", "add", "198.18.0.2/32", "dev", "eth0")
	ip(tp.Ctr, "addr", "add", "2001:db8:99::2/128", "dev", "eth0", "nodad")
	ip(ctr2, "addr", "add", "198.18.0.3/32", "dev", "eth0")
	ip(ctr2, "addr", "add", "2001:db8:99::3/128", "dev", "eth0", "nodad")
	ip(ctr3, "addr", "add", "198.18.0.4/32", "dev", "eth0")
	ip(ctr3, "addr", "add", "fd00:88::4/64", "dev", "eth0", "nodad")
	// A neighbour's addresses, on the network (see diffCtr.peer4).
	ip(tp.Ctr, "addr", "add", "172.20.0.9/32", "dev", "eth0")
	ip(tp.Ctr, "addr", "add", "fd00:20::9/128", "dev", "eth0", "nodad")
	ip(ctr2, "addr", "add", "10.77.0.9/32", "dev", "eth0")
	ip(ctr2, "addr", "add", "fd00:77::9/128", "dev", "eth0", "nodad")
	// The host's reverse-path filter would drop forged sources before the
	// forward hook: the policy's anti-spoofing is what is tested here.
	for _, dev := range []string{"all", "default", topo.BridgeName, "br-two", "dfbr3", topo.LANIf, topo.WANIf} {
		if err := tp.Host.SetSysctl("net.ipv4.conf."+dev+".rp_filter", "0"); err != nil {
			t.Fatal(err)
		}
	}

	mk := func(name string, ns *topo.NS, bridge string, subnets []string, a4, a6, s4, s6 string, dn harness.Network) *diffCtr {
		c := &diffCtr{name: name, ns: ns, bridge: bridge, spoof4: netip.MustParseAddr(s4), spoof6: netip.MustParseAddr(s6), docker: dn}
		for _, s := range subnets {
			c.subnets = append(c.subnets, netip.MustParsePrefix(s))
		}
		c.addr4 = netip.MustParseAddr(a4)
		if a6 != "" {
			c.addr6 = netip.MustParseAddr(a6)
		}
		c.ll, c.eth0 = harness.LinkLocal(t, ns, "eth0")
		c.hostLL, _ = harness.LinkLocal(t, tp.Host, bridge)
		return c
	}
	lab.ctrs = []*diffCtr{
		mk("ctr", tp.Ctr, topo.BridgeName, []string{"172.20.0.0/16", "fd00:20::/64"}, topo.CtrIP4, topo.CtrIP6, "198.18.0.2", "2001:db8:99::2",
			harness.Network{Name: "app_default", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}, Labels: map[string]string{"com.docker.compose.project": "app"}}),
		mk("ctr2", ctr2, "br-two", []string{"10.77.0.0/24", "fd00:77::/64"}, "10.77.0.2", "fd00:77::2", "198.18.0.3", "2001:db8:99::3",
			harness.Network{Name: "db_default", Bridge: "br-two", Subnets: []string{"10.77.0.0/24", "fd00:77::/64"}, Labels: map[string]string{"com.docker.compose.project": "db", "tier": "db"}}),
		mk("ctr3", ctr3, "dfbr3", []string{"10.88.0.0/24"}, "10.88.0.2", "", "198.18.0.4", "fd00:88::4",
			harness.Network{Name: "legacy", Bridge: "dfbr3", Subnets: []string{"10.88.0.0/24"}}),
	}
	// As containers, they are named as Compose would (app-web-1, ...),
	// with IDs like Docker's.
	for i, c := range lab.ctrs {
		c.cname = []string{"app-web-1", "db-worker-1", "legacy-job"}[i]
		c.id = strings.Repeat(string(rune('a'+i)), 64)
		c.mac = macOf(t, c.ns)
	}
	lab.ctrs[0].peer, lab.ctrs[0].peer4, lab.ctrs[0].peer6 = "app-web-2", netip.MustParseAddr("172.20.0.9"), netip.MustParseAddr("fd00:20::9")
	lab.ctrs[1].peer, lab.ctrs[1].peer4, lab.ctrs[1].peer6 = "db-worker-2", netip.MustParseAddr("10.77.0.9"), netip.MustParseAddr("fd00:77::9")
	// ctr3's IPv6 source is outside its network (which has no IPv6 subnet);
	// it reaches the host through the bridge's link-local address.
	ip(ctr3, "-6", "route", "add", "default", "via", lab.ctrs[2].hostLL.String(), "dev", "eth0")

	dest := func(ns *topo.NS, host bool, ctr *diffCtr, addrs ...string) {
		for _, a := range addrs {
			lab.dests = append(lab.dests, diffDest{ns: ns, addr: netip.MustParseAddr(a), host: host, ctr: ctr})
		}
	}
	dest(tp.LAN, false, nil, topo.LANProxy4, topo.LANDNS4, topo.LANDB4, "192.168.100.77", "192.168.100.200",
		topo.LANProxy6, topo.LANDNS6, topo.LANDB6, "fd00:100::77", "fd00:100::1:2")
	dest(tp.Inet, false, nil, topo.InetIP4, "203.0.113.20", topo.InetIP6, "2001:db8:ff::20")
	dest(tp.Ctr, false, lab.ctrs[0], topo.CtrIP4, topo.CtrIP6)
	dest(ctr2, false, lab.ctrs[1], "10.77.0.2", "fd00:77::2")
	dest(ctr3, false, lab.ctrs[2], "10.88.0.2")
	dest(tp.Host, true, nil, topo.HostBridge4, topo.HostBridge6, "10.77.0.1", "fd00:77::1", "10.88.0.1",
		topo.HostLAN4, topo.HostLAN6, topo.HostWAN4, topo.HostWAN6)
	for _, c := range lab.ctrs {
		_, idx := harness.LinkLocal(t, tp.Host, c.bridge)
		lab.dests = append(lab.dests, diffDest{ns: tp.Host, addr: c.hostLL, zone: c.bridge, zoneIndex: idx, host: true})
	}
	for _, d := range lab.dests {
		protos := []uint8{harness.ProtoTCP, harness.ProtoUDP, harness.ProtoSCTP, harness.ProtoICMP}
		if d.addr.Is6() {
			protos[3] = harness.ProtoICMPv6
		}
		for _, p := range protos {
			lab.seen.Listen(d.ns, d.addr, d.zoneIndex, p)
		}
	}
	lab.docker = harness.StartDocker(t, filepath.Join(e.dir, "docker.sock"))
	lab.setUpIngress()
	lab.warmUp()
	// The identity check drops what a reported container sends from a
	// forged source, neighbour solicitations too, which the kernel sends
	// from the source of the packet that needs them: the containers'
	// gateways are permanent neighbours, so that a forged probe cannot
	// leave the next ones without a neighbour.
	for _, c := range lab.ctrs {
		mac := lab.hostMAC(c.bridge)
		gws := []netip.Addr{c.hostLL}
		for _, s := range c.subnets {
			gws = append(gws, s.Addr().Next())
		}
		for _, gw := range gws {
			c.ns.Run(t, "ip", "neigh", "replace", gw.String(), "lladdr", mac, "dev", "eth0", "nud", "permanent")
		}
	}
	return lab
}

// hostMAC returns the hardware address of Host's interface dev.
func (lab *diffLab) hostMAC(dev string) string {
	f := strings.Fields(lab.e.tp.Host.Run(lab.t, "ip", "-o", "link", "show", dev))
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	lab.t.Fatalf("no hardware address of %s in Host", dev)
	return ""
}

// warmUp resolves the neighbours that the probes need (containers to their
// gateways, Host to every destination), so that the first probes of a round
// do not wait for ARP or neighbour discovery.
func (lab *diffLab) warmUp() {
	send := func(ns *topo.NS, dst netip.Addr, zone string) {
		if err := ns.Do(func() error {
			c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: dst.AsSlice(), Zone: zone, Port: 9})
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("warm up"))
			return err
		}); err != nil {
			lab.t.Fatalf("warm up %s from %s: %v", dst, ns.Name, err)
		}
	}
	for _, c := range lab.ctrs {
		for _, s := range c.subnets {
			send(c.ns, s.Addr().Next(), "")
		}
		send(c.ns, c.hostLL, strconv.Itoa(c.eth0))
	}
	for _, d := range lab.dests {
		if !d.host {
			send(lab.e.tp.Host, d.addr, "")
		}
	}
	for _, cl := range lab.clients {
		send(cl.ns, cl.host, "")
	}
	time.Sleep(200 * time.Millisecond)
}

// diffProbe is one packet of a round, what explain says of it and what the
// kernel did.
type diffProbe struct {
	ctr *diffCtr
	src netip.Addr
	// srcKind is "own", "forged" or "link-local".
	srcKind string
	dst     diffDest
	proto   string
	port    uint16
	// id is the source port (tcp, udp, sctp) or echo id (icmp, icmpv6).
	id uint16
	// network is explain's --network.
	network string
	// container is explain's --container, the probe's container's name
	// when the fake Docker reports it ("" otherwise).
	container string
	// hostFlag says that explain is given --host. A probe to one of
	// Host's own addresses without it must be judged by the host rules all
	// the same, as the kernel delivers it to Host.
	hostFlag bool
	// in is set for a connection from outside into ctr (src is the
	// client's, dst ctr's address, port ctr's port), through the
	// published port pub, or routed to ctr's address if pub is nil.
	// explain is then asked with --ingress (and --to dst if toGiven is set).
	in      *diffClient
	pub     *diffPub
	toGiven bool

	explain     diffExplanation
	explainJSON string
	sendErr     error
	arrived     bool
}

// diffExplanation is the part of explain's JSON the test reads.
type diffExplanation struct {
	Passes    bool   `json:"passes"`
	DecidedBy string `json:"decided_by"`
	// Out is the bridge of another network an egress probe goes into,
	// whose ingress rules judge it too (SectionHook "ingress" if that
	// network's section decided).
	Out         string `json:"out"`
	SectionHook string `json:"section_hook"`
	Network     struct {
		Source string `json:"source"`
	} `json:"network"`
	Packet struct {
		Hook string `json:"hook"`
	} `json:"packet"`
	// Layers are the container's own layers that judged the packet.
	Layers []diffLayer `json:"layers"`
}

// diffLayer is a layer of explain's JSON.
type diffLayer struct {
	Layer   string `json:"layer"`
	Verdict string `json:"verdict"`
	Into    bool   `json:"into"`
}

func (p *diffProbe) protoNumber() uint8 {
	return map[string]uint8{"tcp": harness.ProtoTCP, "udp": harness.ProtoUDP, "sctp": harness.ProtoSCTP, "icmp": harness.ProtoICMP, "icmpv6": harness.ProtoICMPv6}[p.proto]
}

func (p *diffProbe) key() harness.CaptureKey {
	k := harness.CaptureKey{Proto: p.protoNumber(), Src: p.src, Dst: p.dst.addr, SPort: p.id, DPort: p.port}
	if p.port == 0 {
		k.DPort = p.id
	}
	return k
}

// to is explain's --to.
func (p *diffProbe) to() string {
	if p.port == 0 {
		return p.dst.addr.String() + "/" + p.proto
	}
	return netip.AddrPortFrom(p.dst.addr, p.port).String() + "/" + p.proto
}

func (p *diffProbe) hook() string {
	if p.in != nil {
		return "ingress"
	}
	if p.dst.host {
		return "host"
	}
	return "egress"
}

func (p *diffProbe) String() string {
	if p.in != nil {
		into := fmt.Sprintf("%s %s, routed", p.dst.ns.Name, p.to())
		if p.pub != nil {
			into = fmt.Sprintf("%s/%s, published to %s %s", netip.AddrPortFrom(p.in.host, p.pub.port), p.proto, p.dst.ns.Name, p.to())
		}
		if p.container != "" {
			into += " (container " + p.container + ")"
		}
		return fmt.Sprintf("ingress from %s %s (source port %d) into %s", p.in.ns.Name, p.src, p.id, into)
	}
	where := "forwarded"
	switch {
	case p.dst.host && p.hostFlag:
		where = "Host, --host"
	case p.dst.host:
		where = "Host, without --host"
	}
	from := p.ctr.name
	if p.container != "" {
		from += " (container " + p.container + ")"
	}
	return fmt.Sprintf("%s from %s (%s, %s) to %s %s (%s)", p.hook(), from, p.src, p.srcKind, p.dst.ns.Name, p.to(), where)
}

// args are explain's arguments for the probe, with the policy file.
func (p *diffProbe) args(file string) []string {
	args := []string{"explain", "-c", file}
	if p.container != "" {
		args = append(args, "--container", p.container)
	}
	if p.network != "" {
		args = append(args, "--network", p.network)
	}
	if p.in != nil {
		args = append(args, "--ingress", "--from", p.src.String(), "--to-port", p.publishedPort())
		if p.toGiven {
			args = append(args, "--to", p.dst.addr.String())
		}
		return append(args, "--json")
	}
	args = append(args, "--to", p.to(), "--from", p.src.String(), "--json")
	if p.hostFlag {
		args = append(args, "--host")
	}
	return args
}

// zoneFor returns the zone a link-local address needs (the index of the
// interface), "" for others.
func zoneFor(a netip.Addr, index int) string {
	if a.Is6() && a.IsLinkLocalUnicast() {
		return strconv.Itoa(index)
	}
	return ""
}

// send sends the probe from its container, or from its client outside
// (to the published port on Host, or to the container's address). TCP
// connects until ctx ends; the outcome is read at the destination, so
// answers are ignored, and only errors that mean the probe was not sent
// are returned.
func (p *diffProbe) send(ctx context.Context) error {
	ns, dstAddr, port := p.ctr.ns, p.dst.addr, p.port
	if p.in != nil {
		ns = p.in.ns
		if p.pub != nil {
			dstAddr, port = p.in.host, p.pub.port
		}
	}
	src, dst := p.src.AsSlice(), dstAddr.AsSlice()
	srcZone, dstZone := zoneFor(p.src, p.ctr.eth0), zoneFor(dstAddr, p.ctr.eth0)
	return ns.Do(func() error {
		switch p.proto {
		case "tcp":
			// connect sends the SYN at once; a retransmission would come
			// only after a second.
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src, Port: int(p.id), Zone: srcZone}, Timeout: 300 * time.Millisecond}
			c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(dstAddr.WithZone(dstZone).String(), strconv.Itoa(int(port))))
			if err == nil {
				c.Close()
			}
			for _, notSent := range []error{syscall.EADDRINUSE, syscall.EADDRNOTAVAIL, syscall.EINVAL, syscall.EAFNOSUPPORT, syscall.ENETUNREACH, syscall.ENODEV} {
				if errors.Is(err, notSent) {
					return err
				}
			}
			return nil
		case "udp":
			c, err := net.DialUDP("udp", &net.UDPAddr{IP: src, Port: int(p.id), Zone: srcZone}, &net.UDPAddr{IP: dst, Port: int(port), Zone: dstZone})
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("dockerfence explain diff probe"))
			return err
		}
		network := fmt.Sprintf("ip4:%d", p.protoNumber())
		if p.src.Is6() {
			network = fmt.Sprintf("ip6:%d", p.protoNumber())
		}
		laddr := p.src.String()
		if srcZone != "" {
			laddr += "%" + srcZone
		}
		c, err := net.ListenPacket(network, laddr)
		if err != nil {
			return err
		}
		defer c.Close()
		var msg []byte
		switch p.proto {
		case "sctp":
			msg = harness.SCTPInit(p.id, p.port)
		default:
			msg = harness.EchoRequest(p.proto == "icmpv6", p.id)
		}
		_, err = c.WriteTo(msg, &net.IPAddr{IP: dst, Zone: dstZone})
		return err
	})
}

// calibrate sends, before any table exists, a probe of every protocol from
// every container to every destination (and forged and link-local ones),
// and TCP and UDP from every client outside to every published port and
// every container's address: all must arrive, or the harness could not see
// a packet pass.
func (lab *diffLab) calibrate() {
	var probes []*diffProbe
	for _, c := range lab.ctrs {
		for _, d := range lab.dests {
			for _, kind := range []string{"own", "forged", "link-local", "neighbour"} {
				for _, proto := range []string{"tcp", "udp", "sctp", "icmp"} {
					p := &diffProbe{ctr: c, dst: d, proto: proto, port: 7}
					if !lab.fill(p, kind) {
						continue
					}
					probes = append(probes, p)
				}
			}
		}
	}
	probes = append(probes, lab.ingressCalibration()...)
	for _, p := range probes {
		p.explain.Passes = true
	}
	lab.sendAll(probes)
	var missing []string
	for _, p := range probes {
		if p.sendErr != nil {
			missing = append(missing, fmt.Sprintf("%s: not sent: %v", p, p.sendErr))
		} else if !p.arrived {
			missing = append(missing, p.String())
		}
	}
	if len(missing) > 0 {
		lab.t.Fatalf("without a table, %d of %d probes did not arrive; the harness cannot see packets pass:\n%s", len(missing), len(probes), strings.Join(missing, "\n"))
	}
	lab.t.Logf("calibration: %d probes, all arrived without a table", len(probes))
}

// source returns the address container c sends from to d for a source
// kind ("own", "forged" or "link-local"), and false if c cannot send that
// probe: forwarded probes never go to c itself, a link-local source reaches
// only the host's addresses on c's bridge (forwarding refuses it before the
// forward hook), and only a link-local source reaches Host's link-local
// address on c's bridge.
func source(c *diffCtr, d diffDest, kind string) (netip.Addr, bool) {
	if d.ctr == c || (d.zone != "" && (d.zone != c.bridge || kind != "link-local")) {
		return netip.Addr{}, false
	}
	var src netip.Addr
	switch kind {
	case "own":
		src = c.addr4
		if d.addr.Is6() {
			src = c.addr6
		}
	case "neighbour":
		src = c.peer4
		if d.addr.Is6() {
			src = c.peer6
		}
	case "forged":
		src = c.spoof4
		if d.addr.Is6() {
			src = c.spoof6
		}
	case "link-local":
		onLink := d.zone == c.bridge || slices.ContainsFunc(c.subnets, func(p netip.Prefix) bool { return p.Contains(d.addr) })
		if d.addr.Is6() && d.host && onLink {
			src = c.ll
		}
	}
	return src, src.IsValid()
}

// fill sets the source of p for a source kind, fixes its protocol for the
// destination's family, and gives it an id of its own; it reports false if
// the container cannot send that probe.
func (lab *diffLab) fill(p *diffProbe, kind string) bool {
	src, ok := source(p.ctr, p.dst, kind)
	if !ok {
		return false
	}
	p.src, p.srcKind = src, kind
	if p.proto == "icmp" && p.dst.addr.Is6() {
		p.proto = "icmpv6"
	}
	if p.proto == "icmp" || p.proto == "icmpv6" {
		p.port = 0
	}
	n := lab.nextID.Add(1)
	p.id = uint16(20000 + n%40000)
	return true
}

// sendAll sends the probes at once and waits until every probe that
// explain lets pass arrived and 250 ms passed (at most 3 s): a packet the
// kernel lets through arrives within milliseconds.
func (lab *diffLab) sendAll(probes []*diffProbe) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg, sent sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, p := range probes {
		wg.Add(1)
		sent.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if p.proto == "tcp" {
				sent.Done() // connect sends the SYN at once and then waits
				p.sendErr = p.send(ctx)
				return
			}
			p.sendErr = p.send(ctx)
			sent.Done()
		}()
	}
	sent.Wait()
	minEnd, deadline := time.Now().Add(250*time.Millisecond), time.Now().Add(3*time.Second)
	for {
		waiting := false
		for _, p := range probes {
			// A TCP probe's goroutine may still be connecting: its
			// sendErr is read only after wg.Wait.
			failed := p.proto != "tcp" && p.sendErr != nil
			if p.explain.Passes && !failed && !lab.seen.Has(p.key()) {
				waiting = true
				break
			}
		}
		now := time.Now()
		if (!waiting && now.After(minEnd)) || now.After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	for _, p := range probes {
		p.arrived = lab.seen.Has(p.key())
	}
}

// diffStats sums up a run.
type diffStats struct {
	probes, passed, dockerPolicies, containers int
	// inPassed counts the ingress probes that passed.
	inPassed int
	by       map[string]int
}

// add counts a probe after its round.
func (s *diffStats) add(p *diffProbe) {
	if s.by == nil {
		s.by = map[string]int{}
	}
	s.probes++
	if p.arrived {
		s.passed++
	}
	if p.in != nil {
		s.by[map[bool]string{true: "ingress published", false: "ingress routed"}[p.pub != nil]]++
		if p.arrived {
			s.inPassed++
			s.by["ingress passed"]++
		}
	}
	s.by["decided by "+p.explain.DecidedBy]++
	s.by[p.proto]++
	s.by[p.srcKind+" source"]++
	s.by[p.hook()]++
	if p.dst.host && !p.hostFlag && p.in == nil {
		s.by["host without --host"]++
	}
	s.by["network from "+p.explain.Network.Source]++
	if p.container != "" {
		s.by["explain --container"]++
	}
	for _, l := range p.explain.Layers {
		into := ""
		if l.Into {
			into = "destination's "
		}
		s.by["layer "+into+l.Layer+" "+l.Verdict]++
	}
	if p.in == nil && p.explain.Out != "" {
		s.by["egress into another network"]++
		if p.explain.SectionHook == "ingress" {
			s.by["egress denied by the destination network's ingress"]++
		}
	}
}

// String lists the counts, for the log.
func (s diffStats) String() string {
	keys := make([]string, 0, len(s.by))
	for k := range s.by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := []string{fmt.Sprintf("%d passed, %d stopped", s.passed, s.probes-s.passed)}
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, s.by[k]))
	}
	return strings.Join(parts, ", ")
}

// round generates policy i, applies it, asks explain about random probes,
// sends them, and reports the disagreements; it returns whether there were any.
func (lab *diffLab) round(i int, rng *rand.Rand, nProbes, nIngress int, st *diffStats) bool {
	t := lab.t
	g := &polGen{r: rng, lab: lab, docker: rng.IntN(2) == 0}
	if g.docker {
		st.dockerPolicies++
		g.dockerNets = lab.dockerView(rng)
	}
	yaml := g.policy()
	file := lab.e.write(fmt.Sprintf("policy-%03d.yaml", i), yaml)
	var dockerArgs []string
	view := "Docker not reachable: bridges found over netlink"
	if g.docker {
		ctrs := g.containers()
		lab.docker.Set(g.dockerNets)
		lab.docker.SetContainers(ctrs)
		dockerArgs = []string{"--docker-host", lab.docker.URL}
		var names []string
		for _, n := range g.dockerNets {
			names = append(names, fmt.Sprintf("%s on %s %v", n.Name, n.Bridge, n.Subnets))
		}
		view = "Docker reports " + orNone(strings.Join(names, ", "))
		for _, c := range ctrs {
			view += fmt.Sprintf("; container %s (%s) image %s on %+v, labels %q", c.Name, c.ID[:12], c.Image, c.Endpoints, c.Labels)
		}
		st.containers += len(ctrs)
	}
	failed := false
	if out, err := lab.e.df(append([]string{"apply", "-c", file}, dockerArgs...)...); err != nil {
		// Try a fresh table: if that works, apply failed to change the
		// previous policy's table in place, a bug of its own.
		lab.e.mustDF("delete")
		out2, err2 := lab.e.df(append([]string{"apply", "-c", file}, dockerArgs...)...)
		if err2 != nil {
			t.Fatalf("policy %d (DOCKERFENCE_DIFF_SEED=%d): apply failed; the generator wrote a policy dockerfence refuses: %v\n%s\n--- policy (%s)\n%s", i, lab.seed, err2, out2, view, yaml)
		}
		t.Errorf("policy %d (DOCKERFENCE_DIFF_SEED=%d): apply failed to change the table of the previous policy to this one, though it applies on a fresh table (the round goes on with that): %v\n%s--- previous policy (%s)\n%s--- policy (%s)\n%s",
			i, lab.seed, err, out, lab.prevView, lab.prevYAML, view, yaml)
		failed = true
	}
	lab.prevYAML, lab.prevView = yaml, view

	probes := lab.randomProbes(rng, g, lab.sections(file, dockerArgs), nProbes)
	probes = append(probes, lab.ingressProbes(rng, g, nIngress)...)
	lab.explainAll(file, dockerArgs, probes)
	lab.sendAll(probes)

	var bad []string
	for _, p := range probes {
		st.add(p)
		hookOK := p.explain.Packet.Hook == p.hook()
		// The table and explain share the compiler: a connection into a
		// container that Docker reports must find its chain, never be
		// held as an address no container holds, whatever both say.
		heldOK := p.in == nil || p.container == "" || !slices.ContainsFunc(p.explain.Layers, func(l diffLayer) bool { return l.Layer == "held" })
		if p.arrived == p.explain.Passes && p.sendErr == nil && hookOK && heldOK {
			continue
		}
		what := "the kernel delivered it, explain says it does not pass"
		switch {
		case !heldOK:
			what = fmt.Sprintf("explain holds a connection into %s, a container Docker reports, as to an address no container holds (the kernel: arrived %v)", p.container, p.arrived)
		case !hookOK:
			what = fmt.Sprintf("explain judged it in the %q direction, the kernel in the %q one", p.explain.Packet.Hook, p.hook())
		case !p.arrived:
			what = "the kernel did not deliver it, explain says it passes"
		}
		if p.sendErr != nil {
			what = fmt.Sprintf("the probe could not be sent: %v", p.sendErr)
		}
		args := append([]string{"dockerfence"}, p.args("POLICY.yaml")...)
		bad = append(bad, fmt.Sprintf("probe %s:\n  %s\n  %s\n  explain: %s", p, what, strings.Join(append(args, dockerArgs...), " "), p.explainJSON))
	}
	if len(bad) == 0 {
		return failed
	}
	t.Errorf("policy %d: %d of %d probes disagree (%s)\n"+
		"(DOCKERFENCE_DIFF_SEED=%d repeats the run; with DOCKERFENCE_DIFF_FIRST=%d DOCKERFENCE_DIFF_POLICIES=1, only this policy, on a fresh table)\n--- policy\n%s---\n%s",
		i, len(bad), len(probes), view, lab.seed, i, yaml, strings.Join(bad, "\n"))
	return true
}

// orNone is s, or "no networks" if it is empty.
func orNone(s string) string {
	if s == "" {
		return "no networks"
	}
	return s
}

// sections asks explain which section covers each container's network; the
// answer only steers the probes.
func (lab *diffLab) sections(file string, dockerArgs []string) map[*diffCtr]int {
	out := map[*diffCtr]int{}
	for _, c := range lab.ctrs {
		stdout, stderr, err := lab.e.dfStdout(append([]string{"explain", "-c", file, "--network", c.bridge, "--to", "192.0.2.1", "--json"}, dockerArgs...)...)
		var e struct{ Section int }
		if err == nil {
			err = json.Unmarshal([]byte(stdout), &e)
		}
		if err != nil {
			lab.t.Fatalf("explain: %v\n%s%s", err, stdout, stderr)
		}
		out[c] = e.Section
	}
	return out
}

// explainAll runs explain --json for every probe, a few at a time.
func (lab *diffLab) explainAll(file string, dockerArgs []string, probes []*diffProbe) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make([]string, len(probes))
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			args := p.args(file)
			out, stderr, err := lab.e.dfStdout(append(args, dockerArgs...)...)
			p.explainJSON = strings.TrimSpace(out)
			if err == nil {
				err = json.Unmarshal([]byte(out), &p.explain)
			}
			if err != nil {
				errs[i] = fmt.Sprintf("explain %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			lab.t.Fatal(e)
		}
	}
}

// randomProbes draws the probes of a round: half of them aim at a rule of
// the section that covers the container (sections, from explain), at an
// address the rule holds, if the lab has one, with its protocol and a port
// at the edge of its ranges; the others are drawn at random.
func (lab *diffLab) randomProbes(r *rand.Rand, g *polGen, sections map[*diffCtr]int, n int) []*diffProbe {
	var out []*diffProbe
	var reportedCtrs []*diffCtr
	for _, c := range lab.ctrs {
		if _, ok := g.reported[c]; ok {
			reportedCtrs = append(reportedCtrs, c)
		}
	}
	for len(out) < n {
		c := lab.ctrs[r.IntN(len(lab.ctrs))]
		if len(reportedCtrs) > 0 && r.IntN(2) == 0 {
			// Reported containers more often: their every layer.
			c = reportedCtrs[r.IntN(len(reportedCtrs))]
		}
		var rule *genRule
		_, reported := g.reported[c]
		if r.IntN(2) == 0 {
			var rules []*genRule
			ownLayers := reported && r.IntN(2) == 0
			for _, gr := range g.rules {
				switch {
				case gr.ingress:
				case ownLayers && gr.section == labelSection && gr.owner == c,
					ownLayers && gr.section < 0 && gr.section != labelSection,
					!ownLayers && gr.section == sections[c]:
					rules = append(rules, gr)
				}
			}
			if len(rules) == 0 {
				rules = slices.DeleteFunc(slices.Clone(g.rules), func(gr *genRule) bool { return gr.ingress })
			}
			if len(rules) > 0 {
				rule = rules[r.IntN(len(rules))]
			}
		}
		host, v6 := r.IntN(10) < 3, r.IntN(2) == 0
		// Some probes are told to explain as they would be to any address,
		// without --host, though they go to Host's own addresses (as a
		// container's to its gateway do): explain must find that out.
		hostFlag := r.IntN(2) == 0
		proto := pick(r, "tcp", "tcp", "tcp", "udp", "udp", "udp", "sctp", "sctp", "icmp", "icmp", "icmp")
		if rule != nil {
			host = rule.host
			if !host && r.IntN(6) == 0 {
				host, hostFlag = true, false
			}
			switch rule.proto {
			case "tcp", "udp", "sctp":
				proto = rule.proto
			case "icmp", "icmpv6":
				proto, v6 = "icmp", rule.proto == "icmpv6"
			default:
				if len(rule.ports) > 0 {
					proto = pick(r, "tcp", "udp")
				}
			}
		}
		kind := "own"
		switch x := r.IntN(100); {
		case v6 && !c.addr6.IsValid():
			kind = pick(r, "forged", "link-local")
		case v6 && host && x < 30:
			kind = "link-local"
		case x < 12:
			kind = "forged"
		case x < 24 && c.peer != "":
			kind = "neighbour"
		}
		var cands, covered []diffDest
		for _, d := range lab.dests {
			if _, ok := source(c, d, kind); ok && d.host == host && d.addr.Is6() == v6 {
				cands = append(cands, d)
				if rule != nil && rule.covers(d.addr, c) {
					covered = append(covered, d)
				}
			}
		}
		if len(covered) > 0 && r.IntN(5) > 0 {
			cands = covered
		}
		if len(cands) == 0 {
			continue
		}
		p := &diffProbe{ctr: c, dst: cands[r.IntN(len(cands))], proto: proto}
		p.hostFlag = p.dst.host && hostFlag
		if proto != "icmp" {
			p.port = g.probePort()
			if rule != nil && len(rule.ports) > 0 && r.IntN(5) > 0 {
				p.port = rule.ports[r.IntN(len(rule.ports))]
			}
		}
		if !lab.fill(p, kind) {
			continue
		}
		p.network = lab.networkArg(r, g, c)
		if reported {
			// The container's packet, judged by every layer; --network
			// (its one network) or not.
			p.container, p.network = c.cname, ""
			if r.IntN(2) == 0 {
				p.network = g.reported[c]
			}
		}
		out = append(out, p)
	}
	return out
}

// networkArg is explain's --network for a container: its bridge, one of
// its subnets, or its Docker network's name if Docker reports it.
func (lab *diffLab) networkArg(r *rand.Rand, g *polGen, c *diffCtr) string {
	opts := []string{c.bridge}
	for _, s := range c.subnets {
		opts = append(opts, s.String())
	}
	for _, n := range g.dockerNets {
		if n.Bridge == c.bridge {
			opts = append(opts, n.Name, n.Name)
		}
	}
	return opts[r.IntN(len(opts))]
}

// dockerView draws what the fake Docker reports in a round: app_default
// always, sometimes without its IPv6 subnet; db_default and legacy only
// sometimes, so that their bridges are at times ones Docker does not know.
func (lab *diffLab) dockerView(r *rand.Rand) []harness.Network {
	var out []harness.Network
	for i, c := range lab.ctrs {
		n := c.docker
		n.Subnets = slices.Clone(n.Subnets)
		if i > 0 && r.IntN(3) == 0 {
			continue
		}
		if len(n.Subnets) > 1 && r.IntN(6) == 0 {
			n.Subnets = n.Subnets[:1]
		}
		out = append(out, n)
	}
	return out
}

// polGen writes a random policy that dockerfence accepts, and remembers
// its rules, so that probes can aim at them.
type polGen struct {
	r   *rand.Rand
	lab *diffLab
	// docker is set when the round's Docker is reachable: sections may then
	// match by name and label.
	docker     bool
	dockerNets []harness.Network
	// lists are the user lists, by name, with their prefixes.
	lists map[string][]netip.Prefix
	rules []*genRule
	// section is the number of the section being written.
	section int
	// reported are the lab's containers that the fake Docker reports in
	// the round, with the name of the network they are on.
	reported map[*diffCtr]string
	// inbound is set while ingress rules are drawn.
	inbound bool
}

// genRule is a generated rule, as far as aiming probes at it needs.
type genRule struct {
	// section is the number of the network section, -k for container
	// section k, labelSection for a label's rules (of owner).
	section int
	owner   *diffCtr
	host    bool
	// ingress is set for an ingress rule: its addresses are sources.
	ingress bool
	// prefixes are its inline and list prefixes (built-in lists as the lab
	// knows them); self and any are set for those specs.
	prefixes  []netip.Prefix
	self, any bool
	proto     string
	ports     []uint16 // the edges of its port ranges and their neighbours
}

// builtinLists are the built-in lists as they are in the lab (resolvers
// from the env's resolv.conf).
var builtinLists = map[string][]netip.Prefix{
	"private": {netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"), netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fc00::/7"), netip.MustParsePrefix("fe80::/10")},
	"metadata":  {netip.MustParsePrefix("169.254.169.254/32"), netip.MustParsePrefix("fd00:ec2::254/128")},
	"resolvers": {netip.MustParsePrefix(topo.LANDNS4 + "/32"), netip.MustParsePrefix(topo.LANDNS6 + "/128")},
}

func (g *polGen) chance(pct int) bool { return g.r.IntN(100) < pct }

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func (g *polGen) policy() string {
	var b strings.Builder
	b.WriteString("version: 1\n")
	if g.chance(60) {
		b.WriteString("settings:\n")
		if g.chance(60) {
			fmt.Fprintf(&b, "  deny_action: %s\n", pick(g.r, "reject", "drop"))
		}
		if g.chance(20) {
			fmt.Fprintf(&b, "  mode: %s\n", pick(g.r, "audit", "enforce"))
		}
		if g.chance(30) {
			fmt.Fprintf(&b, "  log_denied: %v\n", g.chance(50))
		}
		if g.chance(20) {
			fmt.Fprintf(&b, "  priority: %d\n", pick(g.r, -1, -10, -100, -199))
		}
		b.WriteString("  table: dockerfence\n")
	}
	g.lists = map[string][]netip.Prefix{}
	if g.chance(50) {
		b.WriteString("lists:\n")
		for _, name := range []string{"lan", "far", "mixed", "private"} {
			keep := g.chance(50)
			switch {
			case name == "private":
				keep = g.chance(15) // overrides the built-in list
			case name == "mixed" && len(g.lists) == 0:
				keep = true // lists: holds one at least
			}
			if !keep {
				continue
			}
			n := 1 + g.r.IntN(4)
			if g.chance(5) {
				n = 0 // an empty list matches nothing
			}
			var items []string
			g.lists[name] = []netip.Prefix{}
			for range n {
				p, text := g.prefix()
				items = append(items, text)
				g.lists[name] = append(g.lists[name], p)
			}
			fmt.Fprintf(&b, "  %s: [%s]\n", name, strings.Join(items, ", "))
		}
	}
	b.WriteString("networks:\n")
	for range 1 + g.r.IntN(4) {
		g.section++
		fmt.Fprintf(&b, "  - match: %s\n", g.match())
		if n := g.r.IntN(8); n > 0 || g.chance(20) {
			b.WriteString("    egress:")
			if n == 0 {
				b.WriteString(" []")
			}
			b.WriteString("\n")
			for range n {
				g.rule(&b, false)
			}
		}
		if g.chance(70) {
			fmt.Fprintf(&b, "    egress_default: %s\n", pick(g.r, "allow", "deny"))
		}
		if n := g.r.IntN(5); n > 0 {
			b.WriteString("    host:\n")
			for range n {
				g.rule(&b, true)
			}
		}
		if g.chance(60) {
			fmt.Fprintf(&b, "    host_default: %s\n", pick(g.r, "allow", "deny"))
		}
		if g.chance(60) {
			g.ingressKeys(&b, g.section)
		}
	}
	if g.chance(40) {
		// Every bridge the earlier sections leave, Docker's or not.
		g.section++
		b.WriteString("  - match: {bridge: \"*\"}\n    egress:\n")
		for range 1 + g.r.IntN(4) {
			g.rule(&b, false)
		}
		fmt.Fprintf(&b, "    egress_default: %s\n    host:\n", pick(g.r, "allow", "deny"))
		g.rule(&b, true)
		if g.chance(50) {
			g.ingressKeys(&b, g.section)
		}
	}
	// Without Docker, container sections are only a warning: the network
	// sections alone fence, and explain must say so.
	if g.chance(map[bool]int{true: 75, false: 15}[g.docker]) {
		g.containerSections(&b)
	}
	return b.String()
}

// match draws a section's match: by subnet, bridge or name "*" (which
// Docker is not needed for), and with Docker also by name and label; most
// of them fit one of the lab's networks.
func (g *polGen) match() string {
	one := func() string {
		kinds := 7
		if g.docker {
			kinds = 10
		}
		switch g.r.IntN(kinds) {
		case 0, 1:
			return fmt.Sprintf("subnet: %q", pick(g.r, "172.20.0.0/16", "172.16.0.0/12", "10.0.0.0/8", "10.77.0.0/24", "10.77.0.0/16",
				"10.88.0.0/24", "10.88.0.0/16", "fd00:20::/64", "fd00::/8", "fd00:77::/64", "fd00:77::/48", "192.168.0.0/16", "0.0.0.0/0", "::/0"))
		case 2, 3:
			return fmt.Sprintf("bridge: %q", pick(g.r, "br-test", "br-two", "dfbr3", "br-*", "df*", "*", "br-t*", "nomatch0"))
		case 4, 5, 6:
			return `name: "*"`
		case 7, 8:
			return fmt.Sprintf("name: %q", pick(g.r, "app_default", "app_*", "*_default", "db*", "legacy", "br-*", "nomatch"))
		default:
			return fmt.Sprintf("label: %q", pick(g.r, "com.docker.compose.project=app", "com.docker.compose.project", "tier=db", "tier", "tier=web"))
		}
	}
	m := one()
	if g.chance(15) {
		if m2 := one(); strings.SplitN(m2, ":", 2)[0] != strings.SplitN(m, ":", 2)[0] {
			m += ", " + m2
		}
	}
	return "{" + m + "}"
}

// prefix draws an address or prefix around the lab's destinations, or a
// fixed one, and returns it with its text in the policy.
func (g *polGen) prefix() (netip.Prefix, string) {
	var p netip.Prefix
	text := ""
	if g.inbound {
		// The address spec of an ingress rule is the source.
		p = g.ingressPrefix()
		text = p.String()
		if p.IsSingleIP() && g.chance(70) {
			text = p.Addr().String()
		}
		return p, fmt.Sprintf("%q", text)
	}
	switch g.r.IntN(10) {
	case 0, 1, 2:
		d := g.lab.dests[g.r.IntN(len(g.lab.dests))].addr
		p = netip.PrefixFrom(d, d.BitLen())
		text = d.String()
		if g.chance(20) {
			text = p.String()
		}
	case 3, 4, 5, 6:
		d := g.lab.dests[g.r.IntN(len(g.lab.dests))].addr
		bits := 8 + g.r.IntN(25)
		if d.Is6() {
			bits = pick(g.r, 8, 10, 16, 32, 48, 60, 64, 96, 112, 120, 124, 126, 127, 128, g.r.IntN(129))
		}
		p, _ = d.Prefix(bits)
	default:
		p = netip.MustParsePrefix(pick(g.r, "192.168.0.0/16", "192.168.100.0/24", "192.168.100.0/25", "192.168.100.128/25", "203.0.113.0/24",
			"0.0.0.0/0", "::/0", "fd00::/8", "fc00::/7", "2001:db8::/32", "10.0.0.0/8", "172.16.0.0/12", "198.51.100.0/24",
			"2001:db8:dead::/48", "169.254.169.254/32", "fe80::/10", "fe80::/64", "198.18.0.0/15", "2001:db8:99::/48"))
	}
	if text == "" {
		text = p.String()
	}
	return p, fmt.Sprintf("%q", text)
}

// spec draws a rule's address spec and records it in r; v4 and v6 say
// which families its inline prefixes have and inlineOnly whether that is
// all it has.
func (g *polGen) spec(r *genRule) (text string, v4, v6, inlineOnly bool) {
	if g.chance(12) {
		r.any = true
		return pick(g.r, "any", `"any"`), true, true, false
	}
	inlineOnly = true
	var items []string
	for range 1 + g.r.IntN(3) {
		var it string
		switch x := g.r.IntN(100); {
		case x < 12:
			it = pick(g.r, "self", `"self"`)
			r.self, inlineOnly = true, false
		case x < 30:
			names := []string{"private", "metadata", "resolvers"}
			for n := range g.lists {
				names = append(names, n)
			}
			slices.Sort(names)
			name := pick(g.r, names...)
			it = fmt.Sprintf("%q", "@"+name)
			if l, ok := g.lists[name]; ok {
				r.prefixes = append(r.prefixes, l...)
			} else {
				r.prefixes = append(r.prefixes, builtinLists[name]...)
			}
			inlineOnly = false
		default:
			var p netip.Prefix
			p, it = g.prefix()
			r.prefixes = append(r.prefixes, p)
			v4, v6 = v4 || p.Addr().Is4(), v6 || p.Addr().Is6()
		}
		items = append(items, it)
	}
	if len(items) == 1 && g.chance(60) {
		return items[0], v4, v6, inlineOnly
	}
	return "[" + strings.Join(items, ", ") + "]", v4, v6, inlineOnly
}

// rule writes one rule of the current section in block style and records it.
func (g *polGen) rule(b *strings.Builder, host bool) {
	items, _ := g.ruleItems(host, g.section)
	blockRule(b, items)
}

// blockRule writes a rule's items in block style, as an item of a
// section's rules.
func blockRule(b *strings.Builder, items []string) {
	fmt.Fprintf(b, "      - %s\n", items[0])
	for _, it := range items[1:] {
		fmt.Fprintf(b, "        %s\n", it)
	}
}

// labelSection is the section number of the rules of containers' labels;
// container section k has number -k, network sections are numbered from 1.
const labelSection = -1000

// flowRules draws 1 to 3 rules of container c's label, in flow style, and
// records them.
func (g *polGen) flowRules(c *diffCtr) string {
	var rules []string
	for range 1 + g.r.IntN(3) {
		items, r := g.ruleItems(false, labelSection)
		r.owner = c
		rules = append(rules, "{"+strings.Join(items, ", ")+"}")
	}
	return "[" + strings.Join(rules, ", ") + "]"
}

// containerSections writes a containers: list of 1 to 3 sections, matched
// by label, name, image or Compose project/service, with rules drawn as a
// network section's egress.
func (g *polGen) containerSections(b *strings.Builder) {
	b.WriteString("containers:\n")
	for k := range 1 + g.r.IntN(3) {
		fmt.Fprintf(b, "  - match: %s\n", g.containerMatch())
		if n := g.r.IntN(5); n > 0 {
			b.WriteString("    egress:\n")
			for range n {
				items, _ := g.ruleItems(false, -(k + 1))
				blockRule(b, items)
			}
		}
		if g.chance(70) {
			fmt.Fprintf(b, "    egress_default: %s\n", pick(g.r, "allow", "deny"))
		}
		if g.chance(50) {
			g.ingressKeys(b, -(k + 1))
		}
	}
}

// containerMatch draws a container section's match; most of them fit
// some of the containers that containers draws.
func (g *polGen) containerMatch() string {
	one := func() string {
		switch g.r.IntN(4) {
		case 0:
			return fmt.Sprintf("label: %q", pick(g.r, "role=worker", "role", "role=web", "tier=db", "com.docker.compose.project=app"))
		case 1:
			return fmt.Sprintf("name: %q", pick(g.r, "app-*", "*-1", "db-worker-1", "legacy-job", "*", "nomatch-*"))
		case 2:
			return fmt.Sprintf("image: %q", pick(g.r, "busybox", "busybox*", "registry.example/*", "redis:*", "*:7"))
		default:
			return fmt.Sprintf("compose: %q", pick(g.r, "app/web", "app/*", "db/worker", "*/*", "shop/api"))
		}
	}
	m := one()
	if g.chance(20) {
		if m2 := one(); strings.SplitN(m2, ":", 2)[0] != strings.SplitN(m, ":", 2)[0] {
			m += ", " + m2
		}
	}
	return "{" + m + "}"
}

// brokenLabels are dockerfence.egress labels that do not parse or
// validate: the container is cut off.
var brokenLabels = []string{
	"[{deny: 10.0.0.0/33}]",
	"[{allow: self, ports: [70000]}]",
	"{deny: 192.168.100.1}",
	`[{deny: "@nosuchlist"}]`,
	"[{deny: 192.168.100.1, proto: tcp, ports: [}",
	"[{allow: any, bogus: 1}]",
}

// containers draws the containers the fake Docker reports: some of the
// lab's containers whose networks it reports, and some of their
// neighbours (diffCtr.peer), each with an image, Compose
// and role labels, and sometimes a dockerfence.egress label, valid or
// broken; mostly with the hardware address of its eth0, so that
// dockerfence finds its bridge port (the identity check). Their label
// rules are recorded. It is drawn after the policy, whose lists the
// labels may name.
func (g *polGen) containers() []harness.Container {
	g.reported = map[*diffCtr]string{}
	var out []harness.Container
	for _, c := range g.lab.ctrs {
		i := slices.IndexFunc(g.dockerNets, func(n harness.Network) bool { return n.Bridge == c.bridge })
		if i < 0 {
			continue
		}
		if c.peer != "" && g.chance(75) {
			// The neighbour, without a namespace or a bridge port: the
			// container forges its address.
			hc := g.container(nil, strings.Repeat(string(rune(c.id[0]+3)), 64), c.peer, g.dockerNets[i].Name, c.peer4, c.peer6, "")
			out = append(out, hc)
		}
		if !g.chance(75) {
			continue
		}
		mac := ""
		if g.chance(90) {
			mac = c.mac
		}
		out = append(out, g.container(c, c.id, c.cname, g.dockerNets[i].Name, c.addr4, c.addr6, mac))
		g.reported[c] = g.dockerNets[i].Name
	}
	return out
}

// container draws a container on network, with its image and labels
// (label rules recorded as owner's, nil for none).
func (g *polGen) container(owner *diffCtr, id, name, network string, a4, a6 netip.Addr, mac string) harness.Container {
	hc := harness.Container{ID: id, Name: name, Image: pick(g.r, "busybox", "busybox:1.36", "registry.example/team/web:1.2", "redis:7"), Labels: map[string]string{}}
	if g.chance(50) {
		hc.Labels["com.docker.compose.project"] = pick(g.r, "app", "db", "shop")
		hc.Labels["com.docker.compose.service"] = pick(g.r, "web", "worker", "api")
	}
	if g.chance(50) {
		hc.Labels["role"] = pick(g.r, "worker", "web", "db")
	}
	switch x := g.r.IntN(100); {
	case x < 35:
		hc.Labels["dockerfence.egress"] = g.flowRules(owner)
	case x < 45:
		hc.Labels["dockerfence.egress"] = pick(g.r, brokenLabels...)
	}
	ep := harness.Endpoint{Network: network, IPv4: a4.String(), MAC: mac}
	if a6.IsValid() {
		ep.IPv6 = a6.String()
	}
	hc.Endpoints = []harness.Endpoint{ep}
	return hc
}

// ruleItems draws one rule, records it as one of section's, and returns
// its keys with their values ("allow: ...", "proto: tcp", ...), in order.
func (g *polGen) ruleItems(host bool, section int) ([]string, *genRule) {
	r := &genRule{section: section, host: host, ingress: g.inbound}
	g.rules = append(g.rules, r)
	spec, v4, v6, inlineOnly := g.spec(r)
	items := []string{fmt.Sprintf("%s: %s", pick(g.r, "allow", "deny"), spec)}
	proto := pick(g.r, "", "", "", "", "any", "tcp", "tcp", "udp", "udp", "sctp", "icmp", "icmpv6")
	// icmp must be able to reach the rule's inline addresses.
	if proto == "icmp" && inlineOnly && !v4 {
		proto = "icmpv6"
	}
	if proto == "icmpv6" && inlineOnly && !v6 {
		proto = "icmp"
	}
	r.proto = proto
	if proto != "" {
		items = append(items, "proto: "+proto)
	}
	if proto != "icmp" && proto != "icmpv6" && g.chance(55) {
		var ports []string
		for range 1 + g.r.IntN(3) {
			lo := pick(g.r, 22, 53, 80, 443, 5432, 8080, 1+g.r.IntN(65535), 1000+g.r.IntN(50000))
			if g.inbound {
				lo = pick(g.r, append(g.lab.ingressPorts(), 1+g.r.IntN(65535))...)
			}
			hi := lo
			if g.chance(40) {
				hi = min(lo+pick(g.r, 1, 10, 100, 1000, g.r.IntN(3000)), 65535)
				ports = append(ports, fmt.Sprintf(`"%d-%d"`, lo, hi))
			} else {
				ports = append(ports, pick(g.r, strconv.Itoa(lo), fmt.Sprintf("%q", strconv.Itoa(lo))))
			}
			for _, p := range []int{lo - 1, lo, hi, hi + 1} {
				if p >= 1 && p <= 65535 {
					r.ports = append(r.ports, uint16(p))
				}
			}
		}
		if len(ports) == 1 && g.chance(30) {
			items = append(items, "ports: "+ports[0])
		} else {
			items = append(items, "ports: ["+strings.Join(ports, ", ")+"]")
		}
	}
	if g.chance(25) {
		items = append(items, fmt.Sprintf("comment: %q", pick(g.r, "proxy", "DNS", "lan: databases", "metadata (cloud)", "rule #7")))
	}
	return items, r
}

// covers reports whether the rule's addresses hold a, for container c.
func (r *genRule) covers(a netip.Addr, c *diffCtr) bool {
	if r.any {
		return true
	}
	if r.self && slices.ContainsFunc(c.subnets, func(p netip.Prefix) bool { return p.Contains(a) }) {
		return true
	}
	return slices.ContainsFunc(r.prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
}

// probePort draws a destination port: mostly one at some rule's edge.
func (g *polGen) probePort() uint16 {
	var ports []uint16
	for _, r := range g.rules {
		ports = append(ports, r.ports...)
	}
	if len(ports) > 0 && g.chance(70) {
		return ports[g.r.IntN(len(ports))]
	}
	return uint16(pick(g.r, 22, 53, 80, 443, 5432, 8080, 1+g.r.IntN(65535)))
}
