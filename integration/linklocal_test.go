package integration

import (
	enc "encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nflog"
	"golang.org/x/sys/unix"
)

// linkLocalPolicy denies (or allows) whatever no rule allows, towards
// other hosts and the host, and has a container section: with deny, every
// packet a container sends that is not allowed is denied and logged (with
// a log rate high enough for every packet of the test); either way the
// container layer holds addresses it does not know (IPv6 link-local ones
// among them).
const linkLocalPolicy = `version: 1
settings: {log_rate: 10000}
networks:
  - match: {name: "*"}
    egress:
      - allow: self
    egress_default: %[1]s
    host_default: %[1]s
containers:
  - match: {label: "role=worker"}
    egress_default: deny
`

// TestLinkLocalControl starts a container's IPv6 as a kernel does when
// Docker brings its interface up (duplicate address detection of its
// link-local address, MLD reports from :: and then from that address,
// router solicitations) under a policy whose defaults deny everything
// else, and one whose defaults allow (where the container layer holds
// link-local sources), and proves that none of it is denied or logged: it passes by the base
// chains' link-local control rules, which count it. Then it forges, with
// raw frames from the container, each near miss of those rules (an MLD
// report with hop limit 2, or to a wider scope, or from a global source;
// an MLD query; an echo, a UDP datagram and a router solicitation of hop
// limit 64 to link-local groups) and proves that each is denied and
// logged, while the exact forms, sent the same way (an MLDv2 report and a
// router solicitation from ::), pass unlogged.
func TestLinkLocalControl(t *testing.T) {
	e := newEnv(t)
	tp := e.tp
	const freshIP4, freshIP6 = "172.20.0.7", "fd00:20::7"
	fresh := tp.AddContainer(t, "fresh", freshIP4, freshIP6)
	fake := harness.StartDocker(t, filepath.Join(e.dir, "docker.sock"))
	fake.Set([]harness.Network{{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}})
	freshMAC := mustMAC(t, macOf(t, fresh))
	fake.SetContainers([]harness.Container{
		{ID: strings.Repeat("a", 64), Name: "ctr", Endpoints: []harness.Endpoint{{Network: "app", IPv4: topo.CtrIP4, IPv6: topo.CtrIP6, MAC: macOf(t, tp.Ctr)}}},
		{ID: strings.Repeat("f", 64), Name: "fresh", Endpoints: []harness.Endpoint{{Network: "app", IPv4: freshIP4, IPv6: freshIP6, MAC: freshMAC.String()}}},
	})
	// The container's IPv6 starts as in a container Docker starts: DAD
	// on (the topology turns it off), router solicitations on (it does
	// not forward); its global address is Docker's, kept (nodad) across
	// the restart of the interface.
	for _, kv := range [][2]string{
		{"net.ipv6.conf.all.accept_dad", "1"}, {"net.ipv6.conf.eth0.accept_dad", "1"},
		{"net.ipv6.conf.eth0.keep_addr_on_down", "1"}, {"net.ipv6.conf.eth0.accept_ra", "1"},
		{"net.ipv6.conf.eth0.router_solicitation_delay", "0"},
	} {
		if err := fresh.SetSysctl(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, def := range []string{"deny", "allow"} {
		t.Run("defaults "+def, func(t *testing.T) {
			pol := e.write("policy-"+def+".yaml", fmt.Sprintf(linkLocalPolicy, def))
			if out, stderr, err := e.dfStdout("apply", "-c", pol, "--docker-host", fake.URL); err != nil {
				t.Fatalf("apply: %v\n%s%s", err, out, stderr)
			}
			linkLocalStart(t, e, fresh, freshMAC, netip.MustParseAddr(freshIP6), def == "deny")
		})
	}
}

// linkLocalStart restarts fresh's IPv6 under the table in force and checks
// that nothing of it is logged, then sends the forged packets and checks
// that each is (those from its global address global only where strict:
// the defaults deny; else its section allows them).
func linkLocalStart(t *testing.T, e *env, fresh *topo.NS, freshMAC net.HardwareAddr, global netip.Addr, strict bool) {
	tp := e.tp
	var logs *nflog.Conn
	if err := tp.Host.Do(func() error {
		var err error
		logs, err = nflog.Open(100, 256)
		return err
	}); err != nil {
		t.Fatalf("open the denial log's NFLOG group in Host: %v", err)
	}
	defer logs.Close()
	// Nothing of the running containers is denied either.
	if got := drain(t, logs, 300*time.Millisecond); len(got) != 0 {
		t.Errorf("denials of the running containers before the start: %v", got)
	}

	before := tp.Host.Run(t, "nft", "list", "table", "inet", "dockerfence")
	fresh.Run(t, "ip", "link", "set", "eth0", "down")
	fresh.Run(t, "ip", "link", "set", "eth0", "up")
	usable(t, fresh)
	ll, _ := harness.LinkLocal(t, fresh, "eth0")
	// After DAD (1 s): the reports again from the link-local address,
	// the first router solicitation, the reports' repetition.
	start := drain(t, logs, 3*time.Second)
	for _, p := range start {
		t.Errorf("the container's IPv6 start was denied: %s", p)
	}
	after := tp.Host.Run(t, "nft", "list", "table", "inet", "dockerfence")
	for _, c := range []string{
		"IPv6 multicast listener report (MLDv2), link-local",
		"IPv6 router solicitation, link-local",
	} {
		n := countedBy(after, c) - max(countedBy(before, c), 0)
		if n <= 0 {
			t.Errorf("rule %q counted %d packets of the start; want its packets judged and passed there", c, n)
		}
		t.Logf("the container's IPv6 start (link-local %s): %d packets passed by %q", ll, n, c)
	}

	// Forged near misses and exact forms, in raw frames.
	unspec := netip.IPv6Unspecified()
	type forged struct {
		name     string
		src, dst netip.Addr
		hop      uint8
		proto    uint8 // ICMPv6 or UDP
		typ      uint8 // ICMPv6 type
		denied   bool
	}
	mcast := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	const icmp6, udp = unix.IPPROTO_ICMPV6, unix.IPPROTO_UDP
	cases := []forged{
		{"MLDv2 report, hop limit 2", ll, mcast("ff02::16"), 2, icmp6, 143, true},
		{"MLDv2 report to ff05::16", ll, mcast("ff05::16"), 1, icmp6, 143, true},
		{"MLDv2 report from its global address", global, mcast("ff02::16"), 1, icmp6, 143, strict},
		{"MLDv1 report to ff02::1:ff00:7 from its global address", global, mcast("ff02::1:ff00:7"), 1, icmp6, 131, strict},
		{"MLD query", ll, mcast("ff02::1"), 1, icmp6, 130, true},
		{"echo request to ff02::1, hop limit 1", ll, mcast("ff02::1"), 1, icmp6, 128, true},
		{"router solicitation, hop limit 64", ll, mcast("ff02::2"), 64, icmp6, 133, true},
		{"UDP to ff02::1, hop limit 1", ll, mcast("ff02::1"), 1, udp, 0, true},
		{"MLDv2 report from ::", unspec, mcast("ff02::16"), 1, icmp6, 143, false},
		{"MLDv1 done from the link-local address", ll, mcast("ff02::2"), 1, icmp6, 132, false},
		{"router solicitation from ::", unspec, mcast("ff02::2"), 255, icmp6, 133, false},
	}
	var frames [][]byte
	for _, c := range cases {
		frames = append(frames, icmp6Frame(freshMAC, c.src, c.dst, c.hop, c.proto, c.typ))
	}
	sendFrames(t, fresh, frames)
	got := drain(t, logs, 2*time.Second)
	for _, c := range cases {
		var hits []string
		for _, p := range got {
			if p.src == c.src && p.dst == c.dst && p.hop == c.hop && p.proto == c.proto && p.typ == c.typ {
				hits = append(hits, p.prefix)
			}
		}
		switch {
		case c.denied && len(hits) == 0:
			t.Errorf("forged %s (%s -> %s): not denied", c.name, c.src, c.dst)
		case !c.denied && len(hits) > 0:
			t.Errorf("%s (%s -> %s): denied by %v; want it passed", c.name, c.src, c.dst, hits)
		default:
			t.Logf("%s (%s -> %s, hop limit %d): denied by %v", c.name, c.src, c.dst, c.hop, hits)
		}
	}
	if len(got) == 0 {
		t.Errorf("no forged packet was logged")
	}
}

// loggedPacket is a packet the deny rules logged: its deny chain (by the
// log prefix), addresses, hop limit and transport protocol, and for
// ICMPv6 its type.
type loggedPacket struct {
	prefix   string
	src, dst netip.Addr
	hop      uint8
	proto    uint8
	typ      uint8
}

func (p loggedPacket) String() string {
	return fmt.Sprintf("%q %s -> %s hop limit %d proto %d type %d", p.prefix, p.src, p.dst, p.hop, p.proto, p.typ)
}

// drain reads the IPv6 packets logged to logs within d.
func drain(t *testing.T, logs *nflog.Conn, d time.Duration) []loggedPacket {
	t.Helper()
	var out []loggedPacket
	logs.SetReadDeadline(time.Now().Add(d))
	for {
		ps, err := logs.Receive()
		if errors.Is(err, os.ErrDeadlineExceeded) || topo.IsTimeout(err) {
			return out
		}
		if err != nil {
			t.Fatalf("read the denial log: %v", err)
		}
		for _, p := range ps {
			if p.Family != unix.NFPROTO_IPV6 || len(p.Payload) < 40 {
				if _, _, ok := fence.ParseLogPrefix(p.Prefix); ok {
					t.Logf("an IPv4 denial: %q", p.Prefix)
				}
				continue
			}
			f, _ := nflog.Decode(p.Family, p.Payload)
			out = append(out, loggedPacket{prefix: p.Prefix, src: f.Src, dst: f.Dst, hop: p.Payload[7], proto: f.Proto, typ: f.ICMPType})
		}
	}
}

// icmp6Frame is an IPv6 packet from src to the multicast group dst with
// hop limit hop, in an Ethernet frame from mac to the group's MAC: an
// ICMPv6 message of type typ (behind a hop-by-hop router alert for MLD,
// as the kernel sends it), or a UDP datagram.
func icmp6Frame(mac net.HardwareAddr, src, dst netip.Addr, hop, proto, typ uint8) []byte {
	var l4 []byte
	if proto == unix.IPPROTO_UDP {
		l4 = []byte{0x9c, 0x40, 0x9c, 0x40, 0, 12, 0, 0, 'h', 'i', '?', '!'}
	} else {
		l4 = make([]byte, 8)
		l4[0] = typ
		switch typ {
		case 143: // MLDv2 report: one record, change to exclude {} of ff02::1:ff00:7
			l4 = append(l4[:4], 0, 0, 0, 1)
			l4 = append(l4, 4, 0, 0, 0)
			l4 = append(l4, netip.MustParseAddr("ff02::1:ff00:7").AsSlice()...)
		case 130, 131, 132: // MLDv1: max response delay, reserved, group
			l4 = append(l4[:4], 0, 0, 0, 0)
			l4 = append(l4, dst.AsSlice()...)
		}
	}
	mld := proto == unix.IPPROTO_ICMPV6 && (typ == 130 || typ == 131 || typ == 132 || typ == 143)
	next := proto
	var ext []byte
	if mld {
		// Hop-by-hop options: router alert (MLD), then PadN.
		ext = []byte{proto, 0, 5, 2, 0, 0, 1, 0}
		next = 0
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	enc.BigEndian.PutUint16(ip[4:], uint16(len(ext)+len(l4)))
	ip[6], ip[7] = next, hop
	copy(ip[8:], src.AsSlice())
	copy(ip[24:], dst.AsSlice())
	// The checksum over the pseudo-header and the transport message.
	ph := append(append([]byte{}, ip[8:40]...), 0, 0, 0, 0, 0, 0, 0, proto)
	enc.BigEndian.PutUint16(ph[34:], uint16(len(l4)))
	sum := harness.Checksum(append(ph, l4...))
	if proto == unix.IPPROTO_UDP {
		enc.BigEndian.PutUint16(l4[6:], sum)
	} else {
		enc.BigEndian.PutUint16(l4[2:], sum)
	}
	d := dst.As16()
	b := []byte{0x33, 0x33, d[12], d[13], d[14], d[15]}
	b = append(b, mac...)
	b = enc.BigEndian.AppendUint16(b, unix.ETH_P_IPV6)
	return append(append(append(b, ip...), ext...), l4...)
}
