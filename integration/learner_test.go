package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/dnslearn"
	"github.com/dockerfence/dockerfence/dnsname"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nfqueue"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/miekg/dns"
)

// learnerSets commits the learner's elements into the set s4 of the
// table inet learn in a namespace, one transaction a batch, as the daemon
// does into its name sets.
type learnerSets struct{ k nft.Kernel }

func (s learnerSets) Add(elems []dnslearn.Element) error {
	var add []nft.Element
	for _, e := range elems {
		add = append(add, nft.Element{Prefix: netip.PrefixFrom(e.Addr, 32), Timeout: e.Timeout})
	}
	return s.k.Commit(nft.UpdateTx("learn", "s4", add, nil))
}

// TestLearnerHoldsAnswers runs the learner of names (package dnslearn) on
// a real queue in Host, without the daemon and the policy: iptables
// NFQUEUE rules (with bypass) hold the DNS answers that Host forwards to
// Ctr from the DNS server in LAN, and Ctr's queries over UDP, which the
// answers must match to teach. The moment Ctr has an answer for a
// listed name, its addresses are in the set already, with the TTL raised
// to the minimum; an answer for another name and a datagram from port 53
// that is not DNS pass and teach nothing; with the learner gone, answers
// pass (bypass) and nothing is learned.
func TestLearnerHoldsAnswers(t *testing.T) {
	e := newEnv(t)
	srv := harness.StartDNS(t, e.tp.LAN, topo.LANDNS4)
	e.tp.Host.Run(t, "nft", "add table inet learn; add set inet learn s4 { type ipv4_addr; flags interval, timeout; }")
	e.tp.Host.Run(t, "iptables", "-A", "FORWARD", "-m", "conntrack", "--ctdir", "REPLY", "-p", "udp", "--sport", "53", "-j", "NFQUEUE", "--queue-num", "7", "--queue-bypass")
	e.tp.Host.Run(t, "iptables", "-A", "FORWARD", "-m", "conntrack", "--ctdir", "REPLY", "-p", "tcp", "--sport", "53", "-j", "NFQUEUE", "--queue-num", "7", "--queue-bypass")
	e.tp.Host.Run(t, "iptables", "-A", "FORWARD", "-m", "conntrack", "--ctdir", "ORIGINAL", "-p", "udp", "--dport", "53", "-j", "NFQUEUE", "--queue-num", "7", "--queue-bypass")

	var conn *nfqueue.Conn
	if err := e.tp.Host.Do(func() error {
		var err error
		conn, err = nfqueue.Open(7, nfqueue.Options{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	m := dnsname.NewMatcher()
	for _, p := range []string{"one.names.test", "*.cdn.names.test"} {
		pat, err := dnsname.ParsePattern(p)
		if err != nil {
			t.Fatal(err)
		}
		m.Add(pat, "k")
	}
	l := dnslearn.New(dnslearn.Config{Sets: learnerSets{nft.Kernel{NetNS: int(e.tp.Host.Handle())}},
		Notice: func(err error) { t.Logf("learner: %v", err) }})
	l.SetRules(&dnslearn.Rules{Matcher: m, Keys: []string{"k"}, Bounds: dnsname.Bounds{Min: 30 * time.Second, Max: time.Hour}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, conn) }()
	stop := func() {
		if ctx.Err() == nil {
			cancel()
			<-done
			conn.Close()
		}
	}
	t.Cleanup(stop)

	set := func() string { return e.tp.Host.Run(t, "nft", "list", "set", "inet", "learn", "s4") }
	ask := func(name string, qtype uint16, tcp bool) []netip.Addr {
		t.Helper()
		msg := new(dns.Msg)
		msg.SetQuestion(dns.Fqdn(name), qtype)
		msg.SetEdns0(4096, false)
		var in *dns.Msg
		c := &dns.Client{Timeout: 2 * time.Second}
		if tcp {
			c.Net = "tcp"
		}
		if err := e.tp.Ctr.Do(func() error {
			var err error
			in, _, err = c.Exchange(msg, srv.Addr)
			return err
		}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var out []netip.Addr
		for _, rr := range in.Answer {
			if a, ok := rr.(*dns.A); ok {
				ad, _ := netip.AddrFromSlice(a.A.To4())
				out = append(out, ad)
			}
		}
		return out
	}
	listed := func(listing string, a netip.Addr) bool {
		for _, f := range strings.FieldsFunc(listing, func(r rune) bool { return r == ' ' || r == ',' || r == '{' || r == '}' || r == '\n' || r == '\t' }) {
			if f == a.String() {
				return true
			}
		}
		return false
	}

	srv.Set("one.names.test", 5*time.Second, netip.MustParseAddr("203.0.113.41"))
	if got := ask("one.names.test", dns.TypeA, false); len(got) != 1 {
		t.Fatalf("one.names.test: %v", got)
	}
	s := set()
	if !listed(s, netip.MustParseAddr("203.0.113.41")) || !strings.Contains(s, "timeout 30s") {
		t.Errorf("the moment the answer came, the set was not holding 203.0.113.41 with the minimum timeout:\n%s", s)
	}

	// A CDN: 150 addresses, over UDP with EDNS0 (IPv4 fragments, which
	// conntrack reassembles before the forward hook) and over TCP.
	var many []netip.Addr
	for i := range 150 {
		many = append(many, netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 1)}))
	}
	srv.Set("a.cdn.names.test", time.Minute, many...)
	got := ask("a.cdn.names.test", dns.TypeA, false)
	s = set()
	in := 0
	for _, a := range many {
		if listed(s, a) {
			in++
		}
	}
	if len(got) != 150 || in != 150 {
		t.Errorf("a.cdn.names.test over UDP: %d addresses in the answer, %d in the set when it came; want 150 and 150", len(got), in)
	}
	t.Logf("a name answering 150 addresses over UDP (EDNS0): %d in the set when the answer came", in)

	// Over TCP the learner follows the stream from the server's SYN-ACK:
	// the segment that makes the answer whole is held until its
	// addresses are in the set.
	srv.Set("tcp.cdn.names.test", time.Minute, netip.MustParseAddr("203.0.113.44"))
	if got := ask("tcp.cdn.names.test", dns.TypeA, true); len(got) != 1 || !listed(set(), got[0]) {
		t.Errorf("tcp.cdn.names.test over TCP: %v; want the answer, and its address in the set when it came", got)
	}
	var big []netip.Addr
	for i := range 150 {
		big = append(big, netip.AddrFrom4([4]byte{198, 18, 2, byte(i + 1)}))
	}
	srv.Set("big.cdn.names.test", time.Minute, big...)
	got = ask("big.cdn.names.test", dns.TypeA, true)
	s = set()
	in = 0
	for _, a := range big {
		if listed(s, a) {
			in++
		}
	}
	t.Logf("a name answering 150 addresses over TCP: %d addresses in the answer, %d in the set when it came", len(got), in)
	if len(got) != 150 || in != 150 {
		t.Errorf("big.cdn.names.test over TCP: %d addresses in the answer, %d in the set when it came; want 150 and 150", len(got), in)
	}

	// A segment that starts inside a message teaches nothing: a server
	// of the client's own zone (here on another address of LAN's) answers
	// a TXT question with a record whose text is a whole answer for
	// one.names.test, its length before it, and sends the text as a
	// segment of its own. Read alone, that segment teaches 203.0.113.66.
	forgedMsg := new(dns.Msg)
	forgedMsg.SetQuestion("one.names.test.", dns.TypeA)
	forgedMsg.Response = true
	forgedMsg.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "one.names.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: []byte{203, 0, 113, 66}}}
	forged, err := forgedMsg.Pack()
	if err != nil {
		t.Fatal(err)
	}
	forged = append([]byte{byte(len(forged) >> 8), byte(len(forged))}, forged...)
	txt := new(dns.Msg)
	txt.SetQuestion("evil.names.test.", dns.TypeTXT)
	txt.Response = true
	txt.Answer = []dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: "evil.names.test.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{string(forged)}}}
	whole, err := txt.Pack()
	if err != nil {
		t.Fatal(err)
	}
	whole = append([]byte{byte(len(whole) >> 8), byte(len(whole))}, whole...)
	at := len(whole) - len(forged)
	if string(whole[at:]) != string(forged) {
		t.Fatal("the TXT record's text is not at the end of the message")
	}
	first := evilTCPAnswer(t, e, whole, at)
	if first != at {
		t.Errorf("the client's first read took %d bytes, want %d: the segment did not end where the text starts", first, at)
	}
	if listed(set(), netip.MustParseAddr("203.0.113.66")) {
		t.Error("a TXT record's text, sent as a segment of its own, taught 203.0.113.66 for one.names.test")
	}

	// A forged answer whose UDP checksum is wrong: the client's kernel
	// drops it, so it must teach nothing. The client asks one.names.test
	// of port 53 of an address of LAN's where no server listens; LAN
	// answers from it with a raw socket, once with the checksum off by
	// one, then right. Conntrack drops such a packet itself where it
	// checks checksums (nf_conntrack_checksum, on by default); with it
	// off, as some hosts run, the learner must.
	{
		e.tp.Host.Run(t, "sysctl", "-qw", "net.netfilter.nf_conntrack_checksum=0")
		// A socket that takes the query and answers nothing: no ICMP
		// port unreachable for it.
		var silent net.PacketConn
		if err := e.tp.LAN.Do(func() (err error) {
			silent, err = net.ListenPacket("udp4", net.JoinHostPort(topo.LANProxy4, "53"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		q := new(dns.Msg)
		q.SetQuestion("one.names.test.", dns.TypeA)
		qb, _ := q.Pack()
		var client *net.UDPConn
		if err := e.tp.Ctr.Do(func() error {
			var err error
			client, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(topo.CtrIP4), Port: 5455})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		if _, err := client.WriteTo(qb, &net.UDPAddr{IP: net.ParseIP(topo.LANProxy4), Port: 53}); err != nil {
			t.Fatal(err)
		}
		// The answers go out once the query has arrived: until the
		// learner has let it go on, its conntrack entry is not confirmed,
		// and an answer would start a connection of its own.
		silent.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := silent.ReadFrom(make([]byte, 512)); err != nil {
			t.Fatalf("the query did not arrive: %v", err)
		}
		received := func() int {
			n := 0
			buf := make([]byte, 1500)
			for {
				client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				if _, _, err := client.ReadFrom(buf); err != nil {
					return n
				}
				n++
			}
		}
		a := new(dns.Msg)
		a.SetReply(q)
		a.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "one.names.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: []byte{203, 0, 113, 67}}}
		ab, err := a.Pack()
		if err != nil {
			t.Fatal(err)
		}
		send := func(wrong bool) {
			t.Helper()
			if err := e.tp.LAN.Do(func() error {
				c, err := net.ListenPacket("ip4:udp", topo.LANProxy4)
				if err != nil {
					return err
				}
				defer c.Close()
				return sendUDPRaw(c, netip.MustParseAddr(topo.LANProxy4), netip.MustParseAddr(topo.CtrIP4), 53, 5455, ab, wrong)
			}); err != nil {
				t.Fatal(err)
			}
		}
		send(true)
		if n := received(); n != 0 {
			t.Errorf("the client took %d answers with a wrong checksum", n)
		}
		if listed(set(), netip.MustParseAddr("203.0.113.67")) {
			t.Error("an answer with a wrong UDP checksum, which the client drops, taught 203.0.113.67")
		}
		send(false)
		if n := received(); n != 1 {
			t.Errorf("the client took %d answers with the checksum right, want 1", n)
		}
		// (Polled: this checks what stopped the first, not the moment;
		// on a loaded machine the answer may pass at the bound.)
		learned := false
		for deadline := time.Now().Add(2 * time.Second); !learned && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			learned = listed(set(), netip.MustParseAddr("203.0.113.67"))
		}
		if !learned {
			t.Error("the same answer with its checksum right taught nothing: the wrong checksum was not what stopped it")
		}
	}

	// Not listed, and not DNS: pass, teach nothing.
	srv.Set("other.test", time.Minute, netip.MustParseAddr("203.0.113.42"))
	if got := ask("other.test", dns.TypeA, false); len(got) != 1 {
		t.Errorf("other.test: %v", got)
	}
	if listed(set(), netip.MustParseAddr("203.0.113.42")) {
		t.Error("an answer for a name not listed was learned")
	}
	ctrUDP := e.tp.Ctr.ListenUDP(t, topo.CtrIP4+":5353")
	// From port 53 of another address of LAN's (the DNS server has the
	// port on its own).
	c, err := e.tp.LAN.DialUDPFrom(topo.LANProxy4+":53", topo.CtrIP4+":5353")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		c.Write([]byte("not a DNS message"))
	}
	for deadline := time.Now().Add(2 * time.Second); ctrUDP.Received() < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	if n := ctrUDP.Received(); n != 3 {
		t.Errorf("%d of 3 datagrams from port 53 that are not DNS arrived", n)
	}

	// Without the learner: answers pass, nothing is learned.
	stop()
	srv.Set("one.names.test", 5*time.Second, netip.MustParseAddr("203.0.113.43"))
	if got := ask("one.names.test", dns.TypeA, false); len(got) != 1 || got[0] != netip.MustParseAddr("203.0.113.43") {
		t.Errorf("with the learner gone, one.names.test: %v; want the answer (bypass)", got)
	}
	if listed(set(), netip.MustParseAddr("203.0.113.43")) {
		t.Error("with the learner gone, an address was learned")
	}
}

// evilTCPAnswer plays a DNS server on port 53 of LANProxy4 that answers
// one TCP query with whole, in two segments (TCP_NODELAY, a pause
// between): whole[:at], then whole[at:]. A client in Ctr asks it, reads
// the answer whole, and evilTCPAnswer returns how many bytes its first
// read took.
func evilTCPAnswer(t *testing.T, e *env, whole []byte, at int) int {
	t.Helper()
	var ln net.Listener
	if err := e.tp.LAN.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(topo.LANProxy4, "53"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.(*net.TCPConn).SetNoDelay(true)
		q := make([]byte, 512)
		if _, err := c.Read(q); err != nil {
			served <- err
			return
		}
		if _, err := c.Write(whole[:at]); err != nil {
			served <- err
			return
		}
		time.Sleep(100 * time.Millisecond)
		_, err = c.Write(whole[at:])
		served <- err
	}()
	first := 0
	if err := e.tp.Ctr.Do(func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(topo.LANProxy4, "53"), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		q := new(dns.Msg)
		q.SetQuestion("evil.names.test.", dns.TypeTXT)
		b, _ := q.Pack()
		if _, err := c.Write(append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)); err != nil {
			return err
		}
		buf := make([]byte, len(whole))
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		first = n
		if _, err := io.ReadFull(c, buf[n:]); err != nil {
			return err
		}
		if string(buf) != string(whole) {
			return fmt.Errorf("the client read %d bytes unlike the answer sent", len(buf))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	return first
}

// sendUDPRaw sends payload in a UDP datagram from src:sport to dst:dport
// over c, a raw IPv4 socket of protocol UDP, with its checksum right, or
// off by one if wrong.
func sendUDPRaw(c net.PacketConn, src, dst netip.Addr, sport, dport uint16, payload []byte, wrong bool) error {
	seg := udpPacket(netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport), payload)[20:]
	if wrong {
		seg[7] ^= 1
	}
	_, err := c.WriteTo(seg, &net.IPAddr{IP: dst.AsSlice()})
	return err
}
