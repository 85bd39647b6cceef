package integration

import (
	"context"
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
// a real queue in Host, without the daemon and the policy: an iptables
// NFQUEUE rule (with bypass) holds the DNS answers that Host forwards to
// Ctr from the DNS server in LAN. The moment Ctr has an answer for a
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

	// Over TCP nothing is learned (README: names, limits): a segment's
	// place in its stream is not known. The answers pass.
	srv.Set("tcp.cdn.names.test", time.Minute, netip.MustParseAddr("203.0.113.44"))
	if got := ask("tcp.cdn.names.test", dns.TypeA, true); len(got) != 1 || listed(set(), got[0]) {
		t.Errorf("tcp.cdn.names.test over TCP: %v; want the answer, and its address not in the set", got)
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
	if len(got) != 150 {
		t.Errorf("big.cdn.names.test over TCP: %d addresses, want 150: the answer must pass", len(got))
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
