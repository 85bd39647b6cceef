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

// forgePort is the port the addresses of the forged-answers test serve,
// which the policy allows to the names list's addresses.
const forgePort = 8443

// forgedPolicy fences br-test: DNS to the server in LAN, the name
// allowed.names.test on forgePort, nothing else.
func forgedPolicy() string {
	return fmt.Sprintf(`version: 1
lists:
  allowed: {names: [allowed.names.test]}
networks:
  - match: {bridge: %s}
    egress:
      - allow: %s
        ports: [53]
      - allow: "@allowed"
        proto: tcp
        ports: [%d]
    egress_default: deny
`, topo.BridgeName, topo.LANDNS4, forgePort)
}

// sendForged sends, from inside ns over a raw socket, an IPv4/UDP datagram
// with any source address and port: what an off-path host that can forge
// the resolver's address sends.
func sendForged(t *testing.T, ns harness.Doer, src, dst netip.AddrPort, payload []byte) {
	t.Helper()
	b := make([]byte, 28+len(payload))
	b[0] = 0x45
	enc.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[8], b[9] = 64, unix.IPPROTO_UDP
	copy(b[12:], src.Addr().AsSlice())
	copy(b[16:], dst.Addr().AsSlice())
	enc.BigEndian.PutUint16(b[20:], src.Port())
	enc.BigEndian.PutUint16(b[22:], dst.Port())
	enc.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	copy(b[28:], payload) // UDP checksum 0: none, which IPv4 allows
	if err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, b, 0, &unix.SockaddrInet4{Addr: dst.Addr().As4()})
	}); err != nil {
		t.Fatalf("send the forged answer: %v", err)
	}
}

// forgedAnswer is an answer (DNS ID id) for name giving addr.
func forgedAnswer(t *testing.T, name string, id uint16, addr netip.Addr) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.Id, m.Response, m.Authoritative = id, true, true
	m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: addr.AsSlice()}}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dnsClient is a UDP socket of Ctr that sends queries to the DNS server in
// LAN and reads what comes back to its port, real or forged.
type dnsClient struct {
	c *net.UDPConn
}

func newDNSClient(t *testing.T, ns harness.Doer) *dnsClient {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(topo.CtrIP4)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &dnsClient{c: c}
}

// port is the client's port: what the attacker is given (the strongest
// off-path case), as it could read it from the conntrack table.
func (d *dnsClient) port() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(topo.CtrIP4), uint16(d.c.LocalAddr().(*net.UDPAddr).Port))
}

func (d *dnsClient) ask(t *testing.T, name string, id uint16) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.c.WriteToUDP(b, &net.UDPAddr{IP: net.ParseIP(topo.LANDNS4), Port: 53}); err != nil {
		t.Fatal(err)
	}
}

// read returns the A addresses of the next DNS message that arrives
// within timeout, and its ID; ok false if none came.
func (d *dnsClient) read(timeout time.Duration) (addrs []netip.Addr, id uint16, ok bool) {
	buf := make([]byte, 4096)
	d.c.SetReadDeadline(time.Now().Add(timeout))
	n, _, err := d.c.ReadFromUDP(buf)
	if err != nil {
		return nil, 0, false
	}
	var m dns.Msg
	if m.Unpack(buf[:n]) != nil {
		return nil, 0, false
	}
	for _, rr := range m.Answer {
		if a, isA := rr.(*dns.A); isA {
			ad, _ := netip.AddrFromSlice(a.A.To4())
			addrs = append(addrs, ad)
		}
	}
	return addrs, m.Id, true
}

// TestForgedAnswersTeachNothing: an off-path host in LAN that forges the
// resolver's address and port 53, and is even given the port of the
// container's query, cannot teach its own address for an allowed name:
// not with a wrong DNS ID, not after the real answer (with the right ID),
// not to a port whose conntrack entry is open but has no query waiting.
// The container's real lookup teaches the real address. The forged
// answers reach the container (they pass unlearned); the addresses they
// give stay out of the set and refused. A forged answer that does match
// a waiting query (port, ID and question: what only an on-path attacker
// sees) is learned, as the README says: the forged packets reach the
// learner, and only the matching keeps them out.
func TestForgedAnswersTeachNothing(t *testing.T) {
	e := newEnv(t)
	a := netip.MustParseAddr
	var (
		resolver = netip.AddrPortFrom(a(topo.LANDNS4), 53)
		real     = a(topo.InetIP4)
		evilID   = a("203.0.113.61") // wrong DNS ID
		evil2nd  = a("203.0.113.62") // second answer
		evilNone = a("203.0.113.63") // no query waiting
		evilHit  = a("203.0.113.64") // matches a waiting query: the limit
	)
	e.tp.Inet.ListenTCP(t, hostPort(real.String(), forgePort))
	for _, ad := range []netip.Addr{evilID, evil2nd, evilNone, evilHit} {
		e.tp.Inet.Run(t, "ip", "addr", "add", ad.String()+"/24", "dev", "eth0")
		e.tp.Inet.ListenTCP(t, hostPort(ad.String(), forgePort))
	}
	pol := e.write("policy.yaml", forgedPolicy())
	p := startProc(t, e.dfCmd("run", "--no-docker", "-c", pol, "--metrics-addr", metricsAddr))
	p.waitLog(t, "table applied")
	p.waitLog(t, "learning names from DNS answers")
	if out := e.tp.Host.Run(t, "nft", "list", "chain", "inet", "dockerfence", "dnsq_forward"); !strings.Contains(out, "queue") {
		t.Fatalf("no query hold in the table:\n%s", out)
	}

	set := func() string { return e.tp.Host.Run(t, "nft", "list", "set", "inet", "dockerfence", "names_allowed_4") }
	learned := func(ad netip.Addr) bool {
		for _, f := range strings.FieldsFunc(set(), func(r rune) bool { return strings.ContainsRune(" ,{}\n\t", r) }) {
			if f == ad.String() {
				return true
			}
		}
		return false
	}
	connect := func(ad netip.Addr) string { return tcpOutcome(e.tp.Ctr, hostPort(ad.String(), forgePort)) }
	// forge sends the forged answer for addr with id to the client's
	// port and checks that it arrived (it passes, unlearned or not).
	forge := func(t *testing.T, cl *dnsClient, id uint16, ad netip.Addr) {
		t.Helper()
		sendForged(t, e.tp.LAN, resolver, cl.port(), forgedAnswer(t, "allowed.names.test", id, ad))
		got, gotID, ok := cl.read(2 * time.Second)
		if !ok || gotID != id || len(got) != 1 || got[0] != ad {
			t.Fatalf("the forged answer (ID %#x, %s) did not reach the container: %v %#x %v", id, ad, got, gotID, ok)
		}
	}
	if got := connect(real); got == "ok" {
		t.Fatalf("%s:%d reached before any lookup: %s; the fence does not hold", real, forgePort, got)
	}

	// No DNS server yet: the queries wait, unanswered, while the
	// attacker answers.
	t.Run("wrong DNS ID", func(t *testing.T) {
		cl := newDNSClient(t, e.tp.Ctr)
		cl.ask(t, "allowed.names.test", 0x1111)
		cl.read(200 * time.Millisecond) // the port unreachable of LAN, if any
		forge(t, cl, 0x2222, evilID)
		if learned(evilID) || connect(evilID) == "ok" {
			t.Errorf("an answer with a wrong DNS ID taught %s (connect: %s)\n%s", evilID, connect(evilID), set())
		}
	})
	t.Run("right port, ID and question: learned (the limit)", func(t *testing.T) {
		cl := newDNSClient(t, e.tp.Ctr)
		cl.ask(t, "allowed.names.test", 0x3333)
		cl.read(200 * time.Millisecond)
		forge(t, cl, 0x3333, evilHit)
		if !learned(evilHit) || connect(evilHit) != "ok" {
			t.Errorf("a forged answer that matches the waiting query was not learned (connect: %s): the forged answers do not reach the learner, and the test proves nothing\n%s", connect(evilHit), set())
		}
	})

	srv := harness.StartDNS(t, e.tp.LAN, topo.LANDNS4)
	srv.Set("allowed.names.test", time.Minute, real)
	t.Run("real lookup, then a second answer", func(t *testing.T) {
		cl := newDNSClient(t, e.tp.Ctr)
		cl.ask(t, "allowed.names.test", 0x4444)
		got, id, ok := cl.read(2 * time.Second)
		if !ok || id != 0x4444 || len(got) != 1 || got[0] != real {
			t.Fatalf("the real answer: %v %#x %v", got, id, ok)
		}
		if !learned(real) || connect(real) != "ok" {
			t.Errorf("the real answer did not teach %s (connect: %s)\n%s", real, connect(real), set())
		}
		forge(t, cl, 0x4444, evil2nd)
		if learned(evil2nd) || connect(evil2nd) == "ok" {
			t.Errorf("a second answer with the right ID taught %s (connect: %s)\n%s", evil2nd, connect(evil2nd), set())
		}
		// The same port's conntrack entry is open, no query waits.
		forge(t, cl, 0x5555, evilNone)
		if learned(evilNone) || connect(evilNone) == "ok" {
			t.Errorf("an unsolicited answer to a port with a conntrack entry taught %s (connect: %s)\n%s", evilNone, connect(evilNone), set())
		}
	})
	body := e.scrape()
	var lines []string
	for _, l := range strings.Split(grepLines(body, "dockerfence_dns_"), "\n") {
		if !strings.HasPrefix(l, "#") && !strings.Contains(l, "_bucket") {
			lines = append(lines, l)
		}
	}
	t.Logf("metrics:\n%s", strings.Join(lines, "\n"))
	if v := metricValue(t, body, `dockerfence_dns_messages_not_learned_total{reason="unsolicited"}`); v < 3 {
		t.Errorf("unsolicited answers counted: %v, want at least the 3 forged ones", v)
	}
}
