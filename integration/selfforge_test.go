package integration

import (
	enc "encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// TestSelfForgedAnswerTeachesNothing: a container (with CAP_NET_RAW, as
// Docker gives by default) asks the resolver for an allowed name, then
// sends itself the answer: from the resolver's address and port 53, to
// its own address and the query's port, with the query's ID, giving an
// address of its choosing; out of eth0 to its gateway's MAC, so the host
// routes it back out of the same bridge. In the forward hook that packet
// is a reply of conntrack's, from @resolvers, to a held bridge, and it
// matches the query the container recorded: before the hold rules checked
// the reverse path (fib saddr . iif oif), the learner took it, and the
// container opened any address it liked (IPv4 with rp_filter loose, as
// with masquerade and hairpin, what dockerd sets with
// --userland-proxy=false, and IPv6, which has no rp_filter). Now the
// forged answer reaches the container, and teaches nothing.
func TestSelfForgedAnswerTeachesNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		v6   bool
		nat  bool
	}{
		{name: "IPv4, rp_filter loose"},
		{name: "IPv4, masquerade and hairpin, rp_filter loose", nat: true},
		{name: "IPv6", v6: true},
	} {
		t.Run(c.name, func(t *testing.T) { selfForge(t, c.v6, c.nat) })
	}
}

func selfForge(t *testing.T, v6, nat bool) {
	e := newEnv(t)
	resolver, ctr, evil, family := topo.LANDNS4, topo.CtrIP4, "203.0.113.77", "4"
	if v6 {
		resolver, ctr, evil, family = topo.LANDNS6, topo.CtrIP6, "2001:db8:66::77", "6"
		e.tp.Inet.Run(t, "ip", "-6", "addr", "add", evil+"/64", "dev", "eth0", "nodad")
	} else {
		e.tp.Inet.Run(t, "ip", "addr", "add", evil+"/24", "dev", "eth0")
	}
	e.tp.Inet.ListenTCP(t, hostPort(evil, forgePort))
	e.tp.Host.Run(t, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=2", "net.ipv4.conf."+topo.BridgeName+".rp_filter=2")
	pol := e.write("policy.yaml", fmt.Sprintf(`version: 1
lists:
  allowed: {names: [allowed.names.test]}
networks:
  - match: {bridge: %s}
    egress:
      - allow: [%s, %s]
        ports: [53]
      - allow: "@allowed"
        proto: tcp
        ports: [%d]
    egress_default: deny
`, topo.BridgeName, topo.LANDNS4, topo.LANDNS6, forgePort))
	p := startProc(t, e.dfCmd("run", "--no-docker", "-c", pol))
	p.waitLog(t, "table applied")
	p.waitLog(t, "learning names from DNS answers")
	var dst netip.Addr = netip.MustParseAddr(ctr)
	if nat {
		// As Docker does: masquerade out of other interfaces, and the
		// container's bridge port in hairpin mode (--userland-proxy=false).
		e.tp.Host.Run(t, "nft", "add table ip selfforge_nat; add chain ip selfforge_nat post { type nat hook postrouting priority 100; }; add rule ip selfforge_nat post ip saddr "+topo.CtrIP4+" oifname != "+topo.BridgeName+" masquerade")
		e.tp.Host.Run(t, "ip", "link", "set", e.tp.Ctr.HostIf, "type", "bridge_slave", "hairpin", "on")
		// The container knows the host's outbound address; masquerade
		// keeps its port.
		dst = netip.MustParseAddr(topo.HostLAN4)
	}
	connect := func() string { return tcpOutcome(e.tp.Ctr, hostPort(evil, forgePort)) }
	if got := connect(); got == "ok" {
		t.Fatalf("%s reached before any lookup: the fence does not hold", evil)
	}
	gw, err := net.ParseMAC(strings.Fields(e.tp.Host.Run(t, "ip", "-br", "link", "show", topo.BridgeName))[2])
	if err != nil {
		t.Fatal(err)
	}
	network := "udp" + family
	var c *net.UDPConn
	if err := e.tp.Ctr.Do(func() (err error) {
		c, err = net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(ctr)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	q := new(dns.Msg)
	q.SetQuestion("allowed.names.test.", dns.TypeA)
	q.Id = 0x7777
	qb, _ := q.Pack()
	if _, err := c.WriteToUDP(qb, &net.UDPAddr{IP: net.ParseIP(resolver), Port: 53}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the query has passed its queue; its conntrack entry is confirmed
	a := new(dns.Msg)
	a.SetReply(q)
	if v6 {
		a.Answer = []dns.RR{&dns.AAAA{Hdr: dns.RR_Header{Name: "allowed.names.test.", Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 300}, AAAA: netip.MustParseAddr(evil).AsSlice()}}
	} else {
		a.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "allowed.names.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: netip.MustParseAddr(evil).AsSlice()}}
	}
	ab, err := a.Pack()
	if err != nil {
		t.Fatal(err)
	}
	pkt := udpPacket(netip.AddrPortFrom(netip.MustParseAddr(resolver), 53), netip.AddrPortFrom(dst, uint16(c.LocalAddr().(*net.UDPAddr).Port)), ab)
	proto := unix.ETH_P_IP
	if v6 {
		proto = unix.ETH_P_IPV6
	}
	if err := e.tp.Ctr.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(uint16(proto))))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Protocol: htons(uint16(proto)), Ifindex: ifi.Index, Halen: 6}
		copy(sa.Addr[:], gw)
		return unix.Sendto(fd, pkt, 0, sa)
	}); err != nil {
		t.Fatal(err)
	}
	// The forged answer comes back to the container (the path is live);
	// the server's real answer (NXDOMAIN: the test runs none) may too.
	forged := false
	buf := make([]byte, 2048)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && !forged; {
		c.SetReadDeadline(deadline)
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			break
		}
		var m dns.Msg
		forged = m.Unpack(buf[:n]) == nil && len(m.Answer) == 1 && from.Port == 53
	}
	if !forged {
		t.Fatal("the container's own answer did not come back to it: the test shows nothing")
	}
	set := e.tp.Host.Run(t, "nft", "list", "set", "inet", "dockerfence", "names_allowed_"+family)
	if strings.Contains(set, evil) {
		t.Errorf("the container taught itself %s:\n%s", evil, set)
	}
	if got := connect(); got != "refused" {
		t.Errorf("connect to %s after the container's own answer: %s, want refused", evil, got)
	}
}

// udpPacket is an IPv4 or IPv6 packet (by the family of src) carrying a UDP
// datagram from src to dst with payload, its checksum right.
func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	ul := 8 + len(payload)
	u := make([]byte, ul)
	enc.BigEndian.PutUint16(u[0:], src.Port())
	enc.BigEndian.PutUint16(u[2:], dst.Port())
	enc.BigEndian.PutUint16(u[4:], uint16(ul))
	copy(u[8:], payload)
	pseudo := append(append(src.Addr().AsSlice(), dst.Addr().AsSlice()...), 0, unix.IPPROTO_UDP, byte(ul>>8), byte(ul))
	if src.Addr().Is6() {
		pseudo = append(append(src.Addr().AsSlice(), dst.Addr().AsSlice()...), 0, 0, byte(ul>>8), byte(ul), 0, 0, 0, unix.IPPROTO_UDP)
	}
	sum := harness.Checksum(append(pseudo, u...))
	if sum == 0 {
		sum = 0xffff
	}
	enc.BigEndian.PutUint16(u[6:], sum)
	if src.Addr().Is4() {
		h := make([]byte, 20)
		h[0] = 0x45
		enc.BigEndian.PutUint16(h[2:], uint16(20+ul))
		h[8], h[9] = 64, unix.IPPROTO_UDP
		copy(h[12:], src.Addr().AsSlice())
		copy(h[16:], dst.Addr().AsSlice())
		enc.BigEndian.PutUint16(h[10:], harness.Checksum(h))
		return append(h, u...)
	}
	h := make([]byte, 40)
	h[0] = 0x60
	enc.BigEndian.PutUint16(h[4:], uint16(ul))
	h[6], h[7] = unix.IPPROTO_UDP, 64
	copy(h[8:], src.Addr().AsSlice())
	copy(h[24:], dst.Addr().AsSlice())
	return append(h, u...)
}
