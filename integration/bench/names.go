package main

import (
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/miekg/dns"
)

// The names section measures what egress by DNS name (issue 18) costs a
// DNS query: Ctr, the container behind br-test, asks the DNS server of the
// harness in LAN (192.168.100.2) over UDP, one query at a time, each for
// a fresh name that answers with a fresh address; every answer crosses
// Host's forward hook in the reply direction. Three configurations, in
// one run:
//
//   - none: no dockerfence;
//   - dockerfence, no names: "dockerfence run" fences br-test by its
//     subnet with an allow of the DNS server and egress_default allow, no
//     names in the policy (no answer is held);
//   - dockerfence names: the same plus a list of names, {names:
//     ["*.bench.test"]}, allowed on tcp/443: the kernel holds every answer
//     in the queue, the daemon parses it, adds its address to the list's
//     set (one transaction an answer, as every name is fresh) and only
//     then lets it go on. This is the worst case: no answer is for a name
//     seen before.
//
// The latency of a query is from the client's send to its receipt of the
// answer (miekg/dns's round-trip time). The configurations take turns,
// round by round, so that a drift of the machine hits them alike.
//
// Then, under the names configuration, a name that answers with nbCDN
// addresses (a CDN) is asked once with EDNS0 (a 4,096-byte buffer; the
// answer of some 2.5 kB crosses Host in IPv4 fragments, which conntrack
// reassembles before the forward hook): the moment the client has the
// answer, every one of its addresses must be in the table already, since
// the answer was held until their transaction was committed.

const (
	nbNone    = "none"
	nbNoNames = "dockerfence, no names"
	nbNames   = "dockerfence names"

	// nbCDN is how many addresses the CDN name answers with.
	nbCDN = 150
	// nbTTL is the TTL of the benchmark's names.
	nbTTL = 300 * time.Second
)

// NamesResult is the DNS query latency through one configuration.
type NamesResult struct {
	Filter  string  `json:"filter"`
	Queries int     `json:"queries"`
	P50US   float64 `json:"p50_us"`
	P99US   float64 `json:"p99_us"`
	MaxUS   float64 `json:"max_us"`
	// AddedP50US and AddedP99US are the percentiles' excess over the
	// baseline's (none) of the same run.
	AddedP50US float64 `json:"added_p50_us"`
	AddedP99US float64 `json:"added_p99_us"`
}

// NamesCDN is the answer of nbCDN addresses.
type NamesCDN struct {
	Addresses int `json:"addresses"`
	// InSet is how many of them the table held the moment the client had
	// the answer.
	InSet int `json:"in_set"`
	// LatencyUS is that query's round trip.
	LatencyUS float64 `json:"latency_us"`
}

// NamesReport is the names section.
type NamesReport struct {
	Results []NamesResult `json:"results"`
	CDN     NamesCDN      `json:"cdn"`
}

// nbPolicy returns the policy of a dockerfence configuration.
func nbPolicy(names bool) string {
	var b strings.Builder
	b.WriteString("version: 1\n")
	if names {
		b.WriteString("lists:\n  bench: {names: [\"*.bench.test\"]}\n")
	}
	fmt.Fprintf(&b, "networks:\n  - match: {subnet: 172.20.0.0/16}\n    egress:\n      - allow: %s\n        ports: [53]\n        comment: DNS\n", topo.LANDNS4)
	if names {
		b.WriteString("      - allow: \"@bench\"\n        proto: tcp\n        ports: [443]\n        comment: the benchmark's names\n")
	}
	b.WriteString("    egress_default: allow\n")
	return b.String()
}

// nbBench is the state of the names section.
type nbBench struct {
	tb  *benchTB
	e   *env
	tp  *topo.Topo
	dir string
	dns *harness.DNSServer
	// seq numbers the fresh names and addresses.
	seq int
}

// benchNames runs the names section; see the comment at the top of this
// file.
func benchNames(tb *benchTB, e *env) (*NamesReport, error) {
	b := &nbBench{tb: tb, e: e, tp: topo.New(tb), dir: tb.TempDir()}
	b.dns = harness.StartDNS(tb, b.tp.LAN, topo.LANDNS4)
	resolv := filepath.Join(b.dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+topo.LANDNS4+"\n"), 0o644); err != nil {
		return nil, err
	}
	queries, rounds := 1000, 3
	if e.quick {
		rounds = 1
	}
	per := queries / rounds
	lat := map[string][]float64{}
	configs := []string{nbNone, nbNoNames, nbNames}
	for r := range rounds {
		for _, c := range configs {
			n := per
			if r == rounds-1 {
				n = queries - per*(rounds-1)
			}
			xs, err := b.run(c, n, resolv, r == 0)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c, err)
			}
			lat[c] = append(lat[c], xs...)
		}
	}
	rep := &NamesReport{}
	base := lat[nbNone]
	for _, c := range configs {
		xs := lat[c]
		res := NamesResult{Filter: c, Queries: len(xs), P50US: percentile(xs, 50), P99US: percentile(xs, 99), MaxUS: percentile(xs, 100)}
		res.AddedP50US = res.P50US - percentile(base, 50)
		res.AddedP99US = res.P99US - percentile(base, 99)
		rep.Results = append(rep.Results, res)
		log.Printf("names: %s: %d queries, p50 %.0f µs, p99 %.0f µs, max %.0f µs (added p50 %+.0f µs, p99 %+.0f µs)",
			c, res.Queries, res.P50US, res.P99US, res.MaxUS, res.AddedP50US, res.AddedP99US)
	}
	cdn, err := b.cdn(resolv)
	if err != nil {
		return rep, fmt.Errorf("cdn: %w", err)
	}
	rep.CDN = cdn
	return rep, nil
}

// fresh makes a new name answer with a new address in 198.18.0.0/15 and
// returns the name and the address.
func (b *nbBench) fresh() (string, netip.Addr) {
	b.seq++
	name := fmt.Sprintf("q%06d.bench.test", b.seq)
	a := netip.AddrFrom4([4]byte{198, 18 + byte(b.seq>>16&1), byte(b.seq >> 8), byte(b.seq)})
	b.dns.Set(name, nbTTL, a)
	return name, a
}

// df runs the dockerfence binary in Host, without Docker.
func (b *nbBench) df(limit time.Duration, resolv string, args ...string) (string, error) {
	full := append([]string{"--docker-host", "unix://" + filepath.Join(b.dir, "no-docker.sock"),
		"--socket", filepath.Join(b.dir, "df.sock"), "--resolv-conf", resolv}, args...)
	return b.tp.Host.TryWithin(limit, b.e.binary, full...)
}

// daemon starts "dockerfence run" with the policy of c, waits until the
// table is in, and returns the function that stops it and deletes the
// table.
func (b *nbBench) daemon(c, resolv string) (func() error, error) {
	pol := filepath.Join(b.dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(nbPolicy(c == nbNames)), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(b.dir, "daemon.log"))
	if err != nil {
		return nil, err
	}
	cmd := b.tp.Host.Command(b.e.binary, "--docker-host", "unix://"+filepath.Join(b.dir, "no-docker.sock"),
		"--socket", filepath.Join(b.dir, "df.sock"), "--resolv-conf", resolv, "run", "--no-docker", "-c", pol)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }() //nolint:errcheck // stopped by stop
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // it may have exited
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill() //nolint:errcheck // it may have exited
				<-done
			}
			if out, err := b.df(time.Minute, resolv, "delete"); err != nil {
				stopErr = fmt.Errorf("delete: %w: %s", err, out)
			}
		})
		return stopErr
	}
	b.tb.Cleanup(func() { stop() }) //nolint:errcheck // a second stop finds it stopped
	if _, err := waitForEvery(15*time.Second, 20*time.Millisecond, func() bool {
		out, _ := b.tp.Host.Try("nft", "-t", "list", "table", "inet", "dockerfence")
		return strings.Contains(out, "fwd_"+topo.BridgeName)
	}); err != nil {
		stop() //nolint:errcheck // reported below
		data, _ := os.ReadFile(filepath.Join(b.dir, "daemon.log"))
		return nil, fmt.Errorf("the daemon did not fence %s: %v\n%s", topo.BridgeName, err, data)
	}
	return stop, nil
}

// query asks for name from Ctr over UDP and returns the round trip and
// the answer's addresses.
func (b *nbBench) query(name string, edns bool) (time.Duration, []netip.Addr, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	if edns {
		m.SetEdns0(4096, false)
	}
	var in *dns.Msg
	var rtt time.Duration
	err := b.tp.Ctr.Do(func() error {
		var err error
		in, rtt, err = (&dns.Client{Net: "udp", Timeout: 2 * time.Second, UDPSize: 4096}).Exchange(m, b.dns.Addr)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if in.Truncated {
		return rtt, nil, fmt.Errorf("%s: the answer is truncated", name)
	}
	var addrs []netip.Addr
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok {
			ad, _ := netip.AddrFromSlice(a.A.To4())
			addrs = append(addrs, ad)
		}
	}
	return rtt, addrs, nil
}

// nbPace is the time between the starts of two timed queries.
const nbPace = 2 * time.Millisecond

// run measures n queries of fresh names through configuration c. check
// makes it verify, on the first and last query, that the names
// configuration learned the answer's address before the client had it,
// and that the others did not hold it.
func (b *nbBench) run(c string, n int, resolv string, check bool) ([]float64, error) {
	stop := func() error { return nil }
	if c != nbNone {
		var err error
		if stop, err = b.daemon(c, resolv); err != nil {
			return nil, err
		}
	} else if out, _ := b.tp.Host.Try("nft", "list", "ruleset"); strings.TrimSpace(out) != "" {
		return nil, fmt.Errorf("the baseline needs an empty ruleset in Host:\n%s", out)
	}
	// Warm up: the first query after a change pays for ARP and caches.
	for range 5 {
		name, _ := b.fresh()
		if _, _, err := b.query(name, false); err != nil {
			stop() //nolint:errcheck // the query's error is the one to report
			return nil, err
		}
	}
	var xs []float64
	next := time.Now()
	for i := range n {
		// One query every 2 ms (500 a second), in every configuration:
		// under the rate per source that the query rules hold (1,000 a
		// second), beyond which a source's answers teach nothing.
		time.Sleep(time.Until(next))
		next = time.Now().Add(nbPace)
		name, a := b.fresh()
		rtt, addrs, err := b.query(name, false)
		if err != nil {
			stop() //nolint:errcheck // the query's error is the one to report
			return nil, err
		}
		if len(addrs) != 1 || addrs[0] != a {
			stop() //nolint:errcheck // the wrong answer is the one to report
			return nil, fmt.Errorf("%s: answer %v, want %s", name, addrs, a)
		}
		if check && (i == 0 || i == n-1) {
			in := b.inTable(a)
			if in != (c == nbNames) {
				stop() //nolint:errcheck // reported below
				return nil, fmt.Errorf("%s: %s in the table when the answer came: %v, want %v", name, a, in, c == nbNames)
			}
		}
		xs = append(xs, float64(rtt.Microseconds()))
	}
	return xs, stop()
}

// inTable reports whether a is among the elements of Host's dockerfence
// table.
func (b *nbBench) inTable(a netip.Addr) bool {
	out, _ := b.tp.Host.Try("nft", "list", "table", "inet", "dockerfence")
	return listsAddr(out, a)
}

// listsAddr reports whether the nft listing lists the address a.
func listsAddr(listing string, a netip.Addr) bool {
	return regexp.MustCompile(`(^|[\s{,])` + regexp.QuoteMeta(a.String()) + `([\s,}]|$)`).MatchString(listing)
}

// cdn asks, under the names configuration, for a name that answers with
// nbCDN addresses and counts how many of them the table held the moment
// the client had the answer.
func (b *nbBench) cdn(resolv string) (NamesCDN, error) {
	var addrs []netip.Addr
	for i := range nbCDN {
		addrs = append(addrs, netip.AddrFrom4([4]byte{198, 19, 200 + byte(i/250), byte(i%250 + 1)}))
	}
	b.dns.Set("cdn.bench.test", nbTTL, addrs...)
	stop, err := b.daemon(nbNames, resolv)
	if err != nil {
		return NamesCDN{}, err
	}
	rtt, got, err := b.query("cdn.bench.test", true)
	if err != nil {
		stop() //nolint:errcheck // the query's error is the one to report
		return NamesCDN{}, err
	}
	out, _ := b.tp.Host.Try("nft", "list", "table", "inet", "dockerfence")
	r := NamesCDN{Addresses: len(got), LatencyUS: float64(rtt.Microseconds())}
	for _, a := range got {
		if listsAddr(out, a) {
			r.InSet++
		}
	}
	log.Printf("names: cdn.bench.test answered %d addresses in %.0f µs; %d of them were in the table when the answer came", r.Addresses, r.LatencyUS, r.InSet)
	if err := stop(); err != nil {
		return r, err
	}
	if r.Addresses != nbCDN || r.InSet != nbCDN {
		return r, fmt.Errorf("the CDN's answer: %d addresses, %d in the table when it came; want %d and %d", r.Addresses, r.InSet, nbCDN, nbCDN)
	}
	return r, nil
}
