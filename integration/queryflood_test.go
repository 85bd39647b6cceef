package integration

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/miekg/dns"
)

// TestQueryFloodSparesNeighbours: a container that floods its resolver's
// port 53, with datagrams too short to be a query and with queries beyond
// its rate, does not cost its neighbour on the same bridge its learning:
// each of the neighbour's 20 lookups of allowed names is answered, learned
// and followed by a connection that gets through. The query rules queue
// no short datagram and only up to their rate of the flooder's queries
// (their counters say so), and the flooder's queries beyond the rate pass
// unqueued: of its own lookups of allowed names, made amid the flood,
// most teach nothing (a token bucket lets one through now and then).
func TestQueryFloodSparesNeighbours(t *testing.T) {
	e := newEnv(t)
	const n = 20
	addrOf := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(101 + i)}) }
	srv := harness.StartDNS(t, e.tp.LAN, topo.LANDNS4)
	for i := range n {
		e.tp.Inet.Run(t, "ip", "addr", "add", addrOf(i).String()+"/24", "dev", "eth0")
		e.tp.Inet.ListenTCP(t, hostPort(addrOf(i).String(), forgePort))
		srv.Set(fmt.Sprintf("n%d.allowed.names.test", i), time.Hour, addrOf(i))
	}
	pol := e.write("policy.yaml", fmt.Sprintf(`version: 1
lists:
  allowed: {names: ["*.allowed.names.test"]}
networks:
  - match: {bridge: %s}
    egress:
      - allow: %s
        ports: [53]
      - allow: "@allowed"
        proto: tcp
        ports: [%d]
    egress_default: deny
`, topo.BridgeName, topo.LANDNS4, forgePort))
	const flooderIP = "172.20.0.3"
	flooder := e.tp.AddContainerOn(t, topo.BridgeName, "ctr2", flooderIP, "fd00:20::3")
	started := time.Now()
	p := startProc(t, e.dfCmd("run", "--no-docker", "-c", pol, "--metrics-addr", metricsAddr))
	p.waitLog(t, "table applied")
	p.waitLog(t, "learning names from DNS answers")
	learned := func(a netip.Addr) bool {
		out := e.tp.Host.Run(t, "nft", "list", "set", "inet", "dockerfence", "names_allowed_4")
		return strings.Contains(out, a.String()+",") || strings.Contains(out, a.String()+" ") || strings.Contains(out, a.String()+"}")
	}
	if got := tcpOutcome(e.tp.Ctr, hostPort(addrOf(0).String(), forgePort)); got == "ok" {
		t.Fatalf("%s reached before any lookup: the fence does not hold", addrOf(0))
	}

	// The flood: one socket sends 4 bytes (no DNS header), another
	// DNS messages with the QR bit set (which the server ignores, so no
	// answers come back) as fast as they can. Right after one of those
	// now and then, a third socket of the flooder looks up an allowed
	// name: beyond its rate, that query passes unqueued.
	dial := func() *net.UDPConn {
		var c *net.UDPConn
		if err := flooder.Do(func() (err error) {
			c, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(topo.LANDNS4), Port: 53})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	junk, fakes, own := dial(), dial(), dial()
	// The server (in this process) would lose most of its own queries
	// reading the flood, which has done its part once it has crossed
	// the host: LAN drops it on arrival, by the flooding sockets' ports.
	// The flooder's own lookups, from another port, still get there.
	e.tp.LAN.Run(t, "nft", "add table inet floodsink")
	e.tp.LAN.Run(t, "nft", "add chain inet floodsink pre { type filter hook prerouting priority raw; }")
	e.tp.LAN.Run(t, "nft", fmt.Sprintf("add rule inet floodsink pre ip saddr %s udp sport { %d, %d } counter drop", flooderIP, junk.LocalAddr().(*net.UDPAddr).Port, fakes.LocalAddr().(*net.UDPAddr).Port))
	fake := new(dns.Msg)
	fake.SetQuestion("flood.example.", dns.TypeA)
	fake.Response = true
	// The flooder's own lookups: own<k>, each of an address of its own.
	const maxOwn = 200
	ownName := func(k int) string { return fmt.Sprintf("own%d.allowed.names.test", k) }
	for k := range maxOwn {
		srv.Set(ownName(k), time.Hour, netip.AddrFrom4([4]byte{198, 18, 1, byte(k)}))
	}
	ownB := make([][]byte, maxOwn)
	for k := range ownB {
		m := new(dns.Msg)
		m.SetQuestion(ownName(k)+".", dns.TypeA)
		ownB[k] = pack(m)
	}
	fakeB := pack(fake)
	var stop atomic.Bool
	var sentJunk, sentFakes, sentOwn atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			if _, err := junk.Write([]byte{byte(i), 0, 0, 0}); err == nil {
				sentJunk.Add(1)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			fakeB[0], fakeB[1] = byte(i>>8), byte(i)
			if i%20000 == 19999 {
				// Its burst emptied at once, whatever the pace before.
				for range 1200 {
					if _, err := fakes.Write(fakeB); err == nil {
						sentFakes.Add(1)
					}
				}
			}
			if _, err := fakes.Write(fakeB); err == nil {
				sentFakes.Add(1)
			}
			if k := int(sentOwn.Load()); i%20000 == 19999 && k < maxOwn {
				// The 1,200 messages just before it, sent in far less
				// than a fifth of a second, have emptied its burst of
				// 1,000.
				if _, err := own.Write(ownB[k]); err == nil {
					sentOwn.Add(1)
				}
			}
		}
	}()
	stopFlood := sync.OnceFunc(func() { stop.Store(true); wg.Wait() })
	t.Cleanup(stopFlood)
	floodStart := time.Now()
	time.Sleep(300 * time.Millisecond)

	// The victim: 20 lookups, each followed by a connection. A lookup
	// that gets no answer is asked again, as resolvers' clients do, four
	// times at most.
	cl := newDNSClient(t, e.tp.Ctr)
	var answered, learnedN, connected, retries int
	for i := range n {
		name := fmt.Sprintf("n%d.allowed.names.test", i)
		ok := false
		for try := range 5 {
			if try > 0 {
				retries++
			}
			id := uint16(0x100 + 5*i + try)
			cl.ask(t, name, id)
			for {
				addrs, gotID, got := cl.read(2 * time.Second)
				if !got {
					break
				}
				if gotID == id && len(addrs) == 1 && addrs[0] == addrOf(i) {
					ok = true
					break
				}
			}
			if ok {
				break
			}
		}
		if !ok {
			t.Errorf("lookup %d (%s): no answer in 5 tries", i, name)
			continue
		}
		answered++
		if learned(addrOf(i)) {
			learnedN++
		} else {
			t.Errorf("lookup %d (%s): answered, %s not learned", i, name, addrOf(i))
		}
		if got := tcpOutcome(e.tp.Ctr, hostPort(addrOf(i).String(), forgePort)); got == "ok" {
			connected++
		} else {
			t.Errorf("lookup %d (%s): the connection to %s: %s", i, name, addrOf(i), got)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The flood lasts 3 seconds at least, as the reviewer's did.
	time.Sleep(time.Until(floodStart.Add(3 * time.Second)))
	stopFlood()
	time.Sleep(200 * time.Millisecond)
	ownAsked := 0
	for k := range int(sentOwn.Load()) {
		ownAsked += srv.Queries(ownName(k))
	}
	ownLearned := strings.Count(e.tp.Host.Run(t, "nft", "list", "set", "inet", "dockerfence", "names_allowed_4"), "198.18.1.")

	// What the query rules queued, per rule, from their counters.
	chain := e.tp.Host.Run(t, "nft", "list", "chain", "inet", "dockerfence", "dnsq_forward")
	queued := int64(0)
	for _, l := range strings.Split(chain, "\n") {
		if f := strings.Fields(l); strings.Contains(l, "counter packets") {
			for j := range f {
				if f[j] == "packets" && j+1 < len(f) {
					v, _ := strconv.ParseInt(f[j+1], 10, 64)
					queued += v
				}
			}
		}
	}
	body := e.scrape()
	t.Logf("flood from %s: %d datagrams of 4 bytes, %d DNS messages with QR set, %d lookups of its own (%d reached the server); the query rules matched %d (their counters count before the meter)", flooderIP, sentJunk.Load(), sentFakes.Load(), sentOwn.Load(), ownAsked, queued)
	t.Logf("victim: %d/%d answered (%d retries), %d learned, %d connected; flooder's own lookups learned: %d of %d answered", answered, n, retries, learnedN, connected, ownLearned, ownAsked)
	t.Logf("metrics:\n%s", grepLines(body, "dockerfence_dns_"))
	if sentJunk.Load() < 50000 || sentFakes.Load() < 50000 || ownAsked == 0 {
		t.Errorf("the flood was too weak to prove anything: %d datagrams, %d messages, %d own lookups answered", sentJunk.Load(), sentFakes.Load(), ownAsked)
	}
	// The short datagrams are not queued at all: the rules matched
	// none of them, only the messages.
	if queued > sentFakes.Load()+sentOwn.Load()+3*n {
		t.Errorf("the query rules matched %d datagrams, more than the %d messages and lookups sent: short ones among them", queued, sentFakes.Load()+sentOwn.Load()+3*n)
	}
	if answered != n || learnedN != n || connected != n {
		t.Errorf("under a neighbour's flood: %d/%d answered, %d learned, %d connected; want all", answered, n, learnedN, connected)
	}
	// Beyond its burst the flooder queues 1,000 a second: the messages
	// queued (none a query) stay far below what it sent.
	notQuery := metricValue(t, body, `dockerfence_dns_messages_not_learned_total{reason="not-a-query"}`)
	if limit := 1000 * (time.Since(started).Seconds() + 1); notQuery == 0 || notQuery > limit {
		t.Errorf("%v of the flooder's messages queued (not-a-query), want some and at most %v by its rate", notQuery, limit)
	}
	if held := metricValue(t, body, "dockerfence_dns_answers_held_total"); held > 5*n+float64(sentOwn.Load()) {
		t.Errorf("%v answers held, want the victim's %d (and retries) at most: the flooder's messages counted as answers", held, n)
	}
	if ownLearned*2 > ownAsked {
		t.Errorf("%d of the flooder's %d own lookups answered beyond its rate taught their addresses, want at most half", ownLearned, ownAsked)
	}
}
