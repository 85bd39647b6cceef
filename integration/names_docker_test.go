package integration

import (
	"bufio"
	be "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/integration/dockerd"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/status"
	"github.com/miekg/dns"
)

// Ports of the names tests: the rule's port, and another one the same
// servers listen on, which a name must not open.
const (
	namePort, otherPort = 443, 8443
)

// namesEnv is a dockerd in Host whose containers resolve through Docker's
// embedded resolver, which forwards to the test's own DNS server in LAN
// (dockerd --dns), and TCP servers in Inet on the addresses the test's
// names resolve to.
type namesEnv struct {
	*env
	d   *dockerd.Daemon
	dns *harness.DNSServer
	// bridge is the Linux bridge of the network "app".
	bridge string
	// next is the last octet of the next fresh target address.
	next int
}

// The network of the names tests, and the address of its container app1.
const (
	namesSubnet4 = "10.50.0.0/24"
	namesCtr4    = "10.50.0.10"
)

// newNamesEnv starts the DNS server in LAN, dockerd in Host (the engine of
// the suite, with --dns the DNS server), creates the network app and runs
// the container c on it.
func newNamesEnv(t *testing.T) *namesEnv {
	e := newEnv(t)
	x := &namesEnv{env: e, next: 100}
	x.dns = harness.StartDNS(t, e.tp.LAN, topo.LANDNS4)
	eng := engine(t).WithDNS(topo.LANDNS4)
	start := time.Now()
	x.d = dockerd.Start(t, e.tp.Host, eng)
	v, err := x.d.Client.ServerVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s dockerd %s (API %s) started with %q in %v", eng.Name, v.Version, v.APIVersion, eng.Args, time.Since(start).Round(time.Millisecond))
	_, x.bridge = x.d.CreateNetwork(t, "app", namesSubnet4, nil)
	x.d.Run(t, "app1", "app", dockerd.RunOptions{IPv4: namesCtr4})
	return x
}

// target adds a fresh address in Inet (203.0.113.N), serves namePort and
// otherPort on it until the whole test ends, and makes name resolve to it
// with the TTL ttl. It returns the address.
func (x *namesEnv) target(t *testing.T, name string, ttl time.Duration) netip.Addr {
	t.Helper()
	top := x.env.t // the servers outlive the subtest that adds them
	if x.next > 250 {
		t.Fatal("out of target addresses")
	}
	a := netip.AddrFrom4([4]byte{203, 0, 113, byte(x.next)})
	x.next++
	x.tp.Inet.Run(t, "ip", "addr", "add", a.String()+"/24", "dev", "eth0")
	x.tp.Inet.ListenTCP(top, hostPort(a.String(), namePort))
	x.tp.Inet.ListenTCP(top, hostPort(a.String(), otherPort))
	if name != "" {
		x.dns.Set(name, ttl, a)
	}
	return a
}

// lookupConnect runs, in one exec in the container, busybox nslookup of
// name through Docker's embedded resolver and, right after the answer, a
// TCP connection to the first IPv4 address it gave on port. It returns the
// address and "ok", "refused", "timeout", or what went wrong.
func (x *namesEnv) lookupConnect(t *testing.T, ctr, name string, port int) (string, string) {
	t.Helper()
	script := fmt.Sprintf(`a=$(nslookup -type=a %s 2>&1 | awk '/^Name:/{n=1} n && /^Address/{print $2; exit}')
[ -n "$a" ] || { echo "no address for %s"; exit 3; }
echo "$a"
nc -w 2 "$a" %d -e true`, name, name, port)
	code, out := x.d.Exec(t, ctr, "sh", "-c", script)
	addr, rest, _ := strings.Cut(out, "\n")
	if code == 3 {
		return "", strings.TrimSpace(out)
	}
	return addr, dockerd.ClassifyNC(code, rest)
}

// baseline checks, without dockerfence, that the container resolves
// through Docker's embedded resolver and the test's DNS server, and
// reaches the address on both ports.
func (x *namesEnv) baseline(t *testing.T) {
	t.Helper()
	if tables := x.tp.Host.Run(t, "nft", "list", "tables"); strings.Contains(tables, "dockerfence") {
		t.Fatalf("the baseline needs the host without dockerfence's table:\n%s", tables)
	}
	_, resolv := x.d.Exec(t, "app1", "cat", "/etc/resolv.conf")
	if !strings.Contains(resolv, "nameserver 127.0.0.11") {
		t.Fatalf("the container does not resolve through Docker's embedded resolver:\n%s", resolv)
	}
	a := x.target(t, "baseline.names.test", time.Minute)
	before := x.dns.Queries("baseline.names.test")
	for _, port := range []int{namePort, otherPort} {
		addr, got := x.lookupConnect(t, "app1", "baseline.names.test", port)
		if addr != a.String() || got != "ok" {
			t.Errorf("without dockerfence: nslookup baseline.names.test and connect to port %d: %q, %s; want %s, ok", port, addr, got, a)
		}
	}
	if n := x.dns.Queries("baseline.names.test") - before; n < 2 {
		t.Errorf("the DNS server answered %d queries for baseline.names.test, want the container's 2 (through Docker's resolver)", n)
	}
	// Docker's resolver forwards from inside the container's namespace:
	// the answers arrive at the container's address from the DNS server
	// (through the host's forward hook; the server sees the host's
	// address, Docker masquerades the network's egress).
	answers := dnsAnswers(t, x.dockerNS(t, x.d, "app1"), namesCtr4)
	if _, got := x.lookupConnect(t, "app1", "baseline.names.test", namePort); got != "ok" {
		t.Errorf("without dockerfence: nslookup baseline.names.test and connect: %s", got)
	}
	if n := answers.Load(); n == 0 {
		t.Errorf("no DNS answer from %s arrived at the container's address %s: Docker's resolver does not forward from the container's namespace", topo.LANDNS4, namesCtr4)
	}
	t.Logf("without dockerfence: the DNS server's clients %v; UDP answers from %s:53 at %s: %d", x.dns.Clients(), topo.LANDNS4, namesCtr4, answers.Load())
}

// dnsAnswers counts the UDP datagrams from the DNS server's port 53 that
// arrive at addr in ns (a raw socket sees them after the input hook), until
// the test ends.
func dnsAnswers(t *testing.T, ns harness.Doer, addr string) *atomic.Int64 {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("ip4:udp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	dns := netip.MustParseAddr(topo.LANDNS4)
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			m, from, err := pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if a, ok := from.(*net.IPAddr); ok && m >= 8 && a.IP.Equal(dns.AsSlice()) && be.BigEndian.Uint16(buf) == 53 {
				n.Add(1)
			}
		}
	}()
	return &n
}

// namesMinTTL is the policy's minimum of a learned address's timeout in
// the names test: short, so that the test sees an address expire.
const namesMinTTL = 3 * time.Second

// namesPolicy fences the network app: DNS to the test's server, the
// names of the list "allowed" on namePort, nothing else.
func namesPolicy(names []string) string {
	return fmt.Sprintf(`version: 1
settings:
  dns_min_ttl: %s
lists:
  allowed: {names: [%s]}
networks:
  - match: {name: app}
    egress:
      - allow: %s
        ports: [53]
        comment: the DNS server Docker forwards to
      - allow: "@allowed"
        proto: tcp
        ports: [%d]
        comment: the allowed names
    egress_default: deny
`, namesMinTTL, strings.Join(names, ", "), topo.LANDNS4, namePort)
}

// holdOpen connects from the container's namespace to addr and checks the
// server's greeting; the connection is closed at the end of the test.
func holdOpen(t *testing.T, ns harness.Doer, addr string) *open {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, dialTimeout)
		return err
	}); err != nil {
		t.Fatalf("container -> %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	o := &open{c: c, r: bufio.NewReader(c)}
	if got, err := o.echo("before"); err != nil || !strings.HasPrefix(got, "hello from ") || !strings.HasSuffix(got, "before\n") {
		t.Fatalf("container -> %s: the server said %q (%v), want its greeting and the echo", addr, got, err)
	}
	return o
}

// nameElements returns the addresses in the table's sets whose names say
// they hold learned names, as nft lists them (for failure messages and
// to wait for an expiry).
func (x *namesEnv) nameElements() string {
	out, _ := x.tp.Host.Try("nft", "list", "table", "inet", "dockerfence")
	var sets []string
	in := false
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "\tset ") {
			in = strings.Contains(l, "name")
		}
		if in {
			sets = append(sets, l)
		}
	}
	return strings.Join(sets, "\n")
}

// TestNamesAgainstDocker proves egress by DNS name against a real dockerd
// (Debian's, or Docker 29), with containers resolving through Docker's
// embedded resolver and the test's own DNS server: for 20 fresh names, the
// container's first connection right after its own nslookup succeeds every
// time; an address reached without a lookup, the address of a name not in
// the list, and an allowed name's other port are refused; after the TTL
// and the minimum a new connection is refused while an open one goes on;
// with the daemon SIGKILLed, DNS still answers and nothing new is learned.
func TestNamesAgainstDocker(t *testing.T) {
	x := newNamesEnv(t)
	t.Run("without dockerfence", x.baseline)

	const fresh = 20
	var names []string
	for i := range fresh {
		names = append(names, fmt.Sprintf("n%02d.names.test", i))
	}
	allowed := append(append([]string{}, names...), `"*.wild.names.test"`, "unlooked.names.test", "short.names.test", "late.names.test")
	pol := x.write("policy.yaml", namesPolicy(allowed))
	df := x.startDaemonArgs(x.d, pol, "--metrics-addr", metricsAddr)
	df.waitLog(t, "table applied")
	x.waitFenced(x.bridge, time.Now())
	ctrNS := x.dockerNS(t, x.d, "app1")

	t.Run("20 fresh names: the first connection after the lookup succeeds", func(t *testing.T) {
		var addrs []netip.Addr
		for _, n := range names {
			addrs = append(addrs, x.target(t, n, time.Minute))
		}
		ok := 0
		var took []time.Duration
		for i, n := range names {
			t0 := time.Now()
			addr, got := x.lookupConnect(t, "app1", n, namePort)
			took = append(took, time.Since(t0))
			if addr != addrs[i].String() || got != "ok" {
				t.Errorf("nslookup %s, then connect to its address on %d: %q, %s; want %s, ok", n, namePort, addr, got, addrs[i])
				continue
			}
			ok++
		}
		t.Logf("first connections right after the lookup: %d of %d succeeded (nslookup + nc in one docker exec: %v)", ok, fresh, took)
		if ok != fresh {
			t.Errorf("%d of %d first connections succeeded, want all\nthe learned sets:\n%s", ok, fresh, x.nameElements())
		}
		body := x.scrape()
		t.Logf("metrics after the 20 names:\n%s", grepLines(body, "dockerfence_dns_"))
		if v := metricValue(t, body, "dockerfence_dns_elements_learned_total"); v < fresh {
			t.Errorf("elements learned: %v, want at least %d", v, fresh)
		}
		if v := metricValueOr(body, "dockerfence_dns_answers_over_bound_total"); v != 0 {
			t.Errorf("%v answers passed at the bound, before their addresses were learned", v)
		}
	})

	t.Run("a wildcard name opens its address", func(t *testing.T) {
		a := x.target(t, "api.wild.names.test", time.Minute)
		if addr, got := x.lookupConnect(t, "app1", "api.wild.names.test", namePort); addr != a.String() || got != "ok" {
			t.Errorf("nslookup api.wild.names.test, then connect: %q, %s; want %s, ok", addr, got, a)
		}
	})

	t.Run("an answer over TCP teaches all of its 100 addresses", func(t *testing.T) {
		// Docker's embedded resolver forwards a query that came over TCP
		// over TCP: the answer crosses the forward hook as a TCP stream,
		// in segments.
		a := x.target(t, "", 0)
		addrs := []netip.Addr{a}
		for i := range 99 {
			addrs = append(addrs, netip.AddrFrom4([4]byte{198, 18, 7, byte(i + 1)}))
		}
		x.dns.Set("big.wild.names.test", time.Minute, addrs...)
		var in *dns.Msg
		if err := ctrNS.Do(func() error {
			m := new(dns.Msg)
			m.SetQuestion("big.wild.names.test.", dns.TypeA)
			var err error
			in, _, err = (&dns.Client{Net: "tcp", Timeout: 3 * time.Second}).Exchange(m, "127.0.0.11:53")
			return err
		}); err != nil {
			t.Fatalf("big.wild.names.test over TCP through Docker's resolver: %v", err)
		}
		elems := x.nameElements()
		answered, learned := 0, 0
		for _, rr := range in.Answer {
			if r, ok := rr.(*dns.A); ok {
				answered++
				if ad, ok := netip.AddrFromSlice(r.A.To4()); ok && (strings.Contains(elems, ad.String()+" ") || strings.Contains(elems, ad.String()+",")) {
					learned++
				}
			}
		}
		t.Logf("over TCP: %d addresses in the answer, %d in the set when the answer came", answered, learned)
		if n := x.dns.TCPQueries("big.wild.names.test"); n != 1 {
			t.Errorf("the DNS server had %d queries for big.wild.names.test over TCP, want 1: Docker's resolver did not forward over TCP", n)
		}
		if answered != 100 || learned != 100 {
			t.Errorf("big.wild.names.test over TCP: %d addresses in the answer, %d of them in the set when it came; want 100 and 100\n%s", answered, learned, elems)
		}
		if got := x.d.TCP(t, "app1", hostPort(a.String(), namePort), dialTimeout); got != "ok" {
			t.Errorf("connect to big.wild.names.test's %s after the lookup over TCP: %s, want ok", a, got)
		}
		body := x.scrape()
		t.Logf("metrics:\n%s", grepLines(body, "dockerfence_dns_messages_not_learned"))
	})

	t.Run("an address reached without a lookup is refused", func(t *testing.T) {
		a := x.target(t, "unlooked.names.test", time.Minute)
		if got := x.d.TCP(t, "app1", hostPort(a.String(), namePort), dialTimeout); got != "refused" {
			t.Errorf("connect to %s (unlooked.names.test's, not looked up): %s, want refused", a, got)
		}
	})

	t.Run("a name not in the list does not open its address", func(t *testing.T) {
		a := x.target(t, "stranger.other.test", time.Minute)
		addr, got := x.lookupConnect(t, "app1", "stranger.other.test", namePort)
		if addr != a.String() || got != "refused" {
			t.Errorf("nslookup stranger.other.test, then connect: %q, %s; want %s, refused", addr, got, a)
		}
		// Nor does a CNAME of an unlisted name to an allowed one's target:
		// the question's name is what must match.
		b := x.target(t, "cname-target.other.test", time.Minute)
		x.dns.SetCNAME("alias2.other.test", "cname-target.other.test", time.Minute)
		if addr, got := x.lookupConnect(t, "app1", "alias2.other.test", namePort); addr != b.String() || got != "refused" {
			t.Errorf("nslookup alias2.other.test (a CNAME of an unlisted name), then connect: %q, %s; want %s, refused", addr, got, b)
		}
	})

	t.Run("an allowed name opens only the rule's port", func(t *testing.T) {
		a := x.target(t, "only443.wild.names.test", time.Minute)
		if addr, got := x.lookupConnect(t, "app1", "only443.wild.names.test", otherPort); addr != a.String() || got != "refused" {
			t.Errorf("nslookup only443.wild.names.test, then connect to %d: %q, %s; want %s, refused", otherPort, addr, got, a)
		}
		if got := x.d.TCP(t, "app1", hostPort(a.String(), namePort), dialTimeout); got != "ok" {
			t.Errorf("and then to %d: %s, want ok", namePort, got)
		}
	})

	t.Run("after the TTL and the minimum, new connections are refused and open ones go on", func(t *testing.T) {
		a := x.target(t, "short.names.test", time.Second)
		learned := time.Now()
		if addr, got := x.lookupConnect(t, "app1", "short.names.test", namePort); addr != a.String() || got != "ok" {
			t.Fatalf("nslookup short.names.test, then connect: %q, %s; want %s, ok", addr, got, a)
		}
		held := holdOpen(t, ctrNS, hostPort(a.String(), namePort))
		// The element stays for max(TTL 1s, minimum) after the lookup.
		time.Sleep(time.Until(learned.Add(namesMinTTL + 1500*time.Millisecond)))
		if got := x.d.TCP(t, "app1", hostPort(a.String(), namePort), dialTimeout); got != "refused" {
			t.Errorf("a new connection to %s %v after its lookup (TTL 1s, minimum %v): %s, want refused\n%s", a, time.Since(learned).Round(time.Millisecond), namesMinTTL, got, x.nameElements())
		}
		// logs names the DNS name behind the denied address.
		var named *denylog.Event
		var lines string
		for deadline := time.Now().Add(5 * time.Second); named == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			lines = x.mustDFDocker(x.d, "logs", "--json")
			for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
				var ev denylog.Event
				if json.Unmarshal([]byte(l), &ev) == nil && ev.Dst == a.String() && ev.Name != "" {
					named = &ev
				}
			}
		}
		if named == nil || named.Name != "short.names.test" || named.NameExpired.IsZero() {
			t.Errorf("logs --json has no denial of %s naming short.names.test:\n%s", a, lines)
		} else {
			t.Logf("logs: %s", named.Line())
		}
		// The other names' addresses stay.
		for _, n := range []string{names[0], names[fresh-1], "only443.wild.names.test"} {
			if got := x.d.TCP(t, "app1", hostPort(x.mustLookup(t, n), namePort), dialTimeout); got != "ok" {
				t.Errorf("%s (%s), learned a minute ago, after another address expired: %s, want ok", n, x.mustLookup(t, n), got)
			}
		}
		// The connection opened before the expiry goes on: the names rule
		// marked it (conntrack mark), and its twin allows it.
		denied := x.defaultDenied(t)
		if got, err := held.echo("after"); err != nil || got != "after\n" {
			t.Errorf("the connection opened before the expiry: %q, %v; want the echo (egress_default denied %d packets meanwhile)", got, err, x.defaultDenied(t)-denied)
		}

	})

	t.Run("status lists the names learned; explain --to NAME", func(t *testing.T) {
		out := x.mustDFDocker(x.d, "status", "--json")
		var st status.Status
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		var list *status.NameListStatus
		for i := range st.Names {
			if st.Names[i].List == "allowed" {
				list = &st.Names[i]
			}
		}
		if list == nil {
			t.Fatalf("status --json has no names list allowed:\n%s", out)
		}
		found := false
		for _, l := range list.Learned {
			if l.Name == names[0] {
				found = l.Addr == x.mustLookup(t, names[0]) && l.InKernel && l.TTLLeft > 0 && l.TTLLeft <= 60
				t.Logf("status: %s learned for %s, %.0fs left, in the kernel: %v", l.Addr, l.Name, l.TTLLeft, l.InKernel)
			}
		}
		if !found || list.Hits == 0 || len(list.Learned) < fresh {
			t.Errorf("status: names list allowed: %d learned, hits %d; want %s's address in the kernel with its TTL left, at least %d learned and hits:\n%s", len(list.Learned), list.Hits, names[0], fresh, out)
		}
		if text := x.mustDFDocker(x.d, "status"); !strings.Contains(text, "names list allowed [") || !strings.Contains(text, names[0]) {
			t.Errorf("status does not show the names list allowed with %s:\n%s", names[0], text)
		}

		explain := func(to string) nameExplanation {
			t.Helper()
			out, stderr, err := x.dfStdout("--docker-host", "unix://"+x.d.Sock, "explain", "-c", pol, "--network", "app", "--to", to, "--json")
			var ex nameExplanation
			if err != nil || json.Unmarshal([]byte(out), &ex) != nil || len(ex.Explanations) == 0 {
				t.Fatalf("explain --to %s: %v\n%s%s", to, err, out, stderr)
			}
			return ex
		}
		if ex := explain(names[1] + ":443"); fmt.Sprint(ex.Lists) != "[allowed]" || !ex.Explanations[0].Passes || ex.Explanations[0].Packet.Dst != x.mustLookup(t, names[1]) {
			t.Errorf("explain --to %s:443: lists %v, %+v; want allowed, passes, to its address", names[1], ex.Lists, ex.Explanations[0])
		}
		if ex := explain(names[1] + ":8443"); ex.Explanations[0].Passes {
			t.Errorf("explain --to %s:8443 passes; want denied (another port)", names[1])
		}
		if ex := explain("stranger.other.test:443"); len(ex.Lists) != 0 || ex.Explanations[0].Passes {
			t.Errorf("explain --to stranger.other.test:443: lists %v, passes %v; want none, denied", ex.Lists, ex.Explanations[0].Passes)
		}
	})

	t.Run("the daemon SIGKILLed: DNS answers, nothing new is learned", func(t *testing.T) {
		a := x.target(t, "late.names.test", time.Minute)
		if err := df.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-df.exited
		before := x.dns.Queries("late.names.test")
		addr, got := x.lookupConnect(t, "app1", "late.names.test", namePort)
		if addr != a.String() {
			t.Errorf("nslookup late.names.test with the daemon killed: %q (%s), want %s: DNS must keep working", addr, got, a)
		}
		if got != "refused" {
			t.Errorf("connect to late.names.test's %s with the daemon killed: %s, want refused (nothing is learned)", a, got)
		}
		if n := x.dns.Queries("late.names.test") - before; n == 0 {
			t.Error("the DNS server saw no query for late.names.test")
		}
		// A one-shot apply resolves the names once and fills the sets.
		out := x.mustDFDocker(x.d, "apply", "-c", pol)
		if !strings.Contains(out, "names list allowed resolved once through the host's resolver") || !strings.Contains(out, "only dockerfence run keeps names current") ||
			!strings.Contains(out, "*.wild.names.test") {
			t.Errorf("apply with names says:\n%s", out)
		}
		t.Logf("one-shot apply:\n%s", out)
		if got := x.d.TCP(t, "app1", hostPort(a.String(), namePort), dialTimeout); got != "ok" {
			t.Errorf("late.names.test's %s after a one-shot apply resolved it: %s, want ok", a, got)
		}
		// What was learned before stays until it expires.
		if got := x.d.TCP(t, "app1", hostPort(x.mustLookup(t, names[0]), namePort), dialTimeout); got != "ok" {
			out, _ := x.tp.Host.Try("nft", "list", "table", "inet", "dockerfence")
			t.Errorf("%s (%s), learned before the kill: %s, want ok until it expires\n%s", names[0], x.mustLookup(t, names[0]), got, out)
		}
	})

	t.Run("a daemon started again takes the sets as they are, and renews them as refreshes", func(t *testing.T) {
		a := x.mustLookup(t, "late.names.test")
		df2 := x.startDaemonArgs(x.d, pol)
		df2.waitLog(t, "table applied")
		df2.waitLog(t, "addresses in the sets from before the daemon started")
		learned := func() (status.LearnedAddr, bool) {
			t.Helper()
			out := x.mustDFDocker(x.d, "status", "--json")
			var st status.Status
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				t.Fatalf("status --json: %v\n%s", err, out)
			}
			for _, n := range st.Names {
				for _, l := range n.Learned {
					if l.Addr == a {
						return l, true
					}
				}
			}
			return status.LearnedAddr{}, false
		}
		// The one-shot apply put it in for dns_max_ttl (24h).
		if l, ok := learned(); !ok || !l.Inherited || !l.InKernel || l.TTLLeft < 23*3600 {
			t.Errorf("status after the restart: %s: %+v (found %v); want it inherited, in the kernel, with about 24h left", a, l, ok)
		}
		if addr, got := x.lookupConnect(t, "app1", "late.names.test", namePort); addr != a || got != "ok" {
			t.Errorf("nslookup late.names.test, then connect: %q, %s; want %s, ok", addr, got, a)
		}
		// Its answer (TTL 60s) renews it as a refresh, never shorter.
		if l, ok := learned(); !ok || l.Inherited || l.Name != "late.names.test" || l.TTLLeft < 23*3600 {
			t.Errorf("status after the lookup: %+v (found %v); want late.names.test's, with about 24h left", l, ok)
		}
		elems := x.nameElements()
		t.Logf("the set after the lookup:\n%s", elems)
	})
}

// defaultDenied returns the packets counted by app's egress_default.
func (x *namesEnv) defaultDenied(t *testing.T) int {
	t.Helper()
	out := x.tp.Host.Run(t, "nft", "list", "chain", "inet", "dockerfence", "fwd_"+x.bridge)
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, `comment "egress_default deny"`) {
			var n int
			if i := strings.Index(l, "counter packets "); i >= 0 {
				fmt.Sscan(l[i+len("counter packets "):], &n)
			}
			return n
		}
	}
	t.Fatalf("no egress_default rule in:\n%s", out)
	return 0
}

// nameExplanation is what explain --to NAME --json prints.
type nameExplanation struct {
	Name         string               `json:"name"`
	Lists        []string             `json:"lists"`
	Explanations []status.Explanation `json:"explanations"`
}

// mustLookup returns the address the DNS server gives name (asked from
// LAN, without the container).
func (x *namesEnv) mustLookup(t *testing.T, name string) string {
	t.Helper()
	addrs, err := harness.Lookup(x.tp.LAN, x.dns.Addr, name, dns.TypeA, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0].String()
}
