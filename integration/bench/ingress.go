package main

import (
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// The ingress section measures the data path through a published port
// (issue 17): the direction the data path section does not take. Inet is
// the outside client; Host publishes its ports ibIperfPort and ibEchoPort
// as Docker does, a DNAT to Ctr's ports dpIperfPort and dpEchoPort; Ctr,
// the container behind br-test, runs the iperf3 server and the echo
// server. Every data packet and every request then crosses Host's forward
// hook in the original direction of a connection into the fenced bridge,
// where dockerfence's ingress chain judges each packet (not only the
// first), by its source address and the connection's original destination
// port (the published one).
//
// Host holds Docker's own rules in every configuration, the baseline
// included, written with nft in the shape of Docker 29's nftables backend
// (table ip docker-bridges; Docker 20.10 with iptables-nft writes the same
// DNAT and accepts into ip nat and ip filter): the DNAT of the published
// ports for local destinations, a forward chain per bridge that accepts
// established connections and the published ports and drops the rest, and
// the masquerade of the containers' own connections. So the baseline has
// conntrack and NAT, as every Docker host does, and the ratios are the cost
// of dockerfence alone.
//
// The configurations: no dockerfence (none); dockerfence fencing br-test
// with egress rules only (no ingress keys: the network section adds nothing
// to the ingress path, which is the cost of the table's forward chain on
// inbound packets); and dockerfence with one ingress rule that allows a
// list of the published ports' sources, ingress_default deny. The list
// holds the client's address and N other prefixes, N = 0, 1k and 100k,
// the data path section's /26 prefixes in 10.0.0.0/8, none of which covers
// the client: every packet is looked up by its source in the list's
// interval set of N+1 elements (a compare with the client's address when N
// is 0, as dockerfence writes a list of one) and matches the one allow.
// The measurements, rounds and ratios are the data path section's
// (datapath.go): each run between two baseline runs, a ratio the median
// over the rounds of a run over the mean of its two baseline neighbours.
//
// Before its first run, each configuration is checked with real
// connections: the client reaches the published port; a stranger (LAN's
// address) is refused under the ingress rule and reaches the port
// without it; a source inside the last listed prefix (an address added to
// LAN) is let through. After that run, the allow rule's counter must have
// counted at least one packet per timed request: the packets were judged
// by the rule, not accepted before it.

const (
	// ibFilterNoIngress and ibFilterIngress are the filter names of the
	// ingress section's results besides dpFilterNone.
	ibFilterNoIngress = "dockerfence, no ingress rules"
	ibFilterIngress   = "dockerfence ingress"

	// ibIperfPort and ibEchoPort are Host's published ports, DNAT'ed to
	// Ctr's dpIperfPort and dpEchoPort.
	ibIperfPort = 15201
	ibEchoPort  = 17007

	// ibDockerTable is the table of Docker's own rules in Host.
	ibDockerTable = "docker-bridges"

	// ibAllowComment is the comment of the ingress rule that allows the
	// benchmark's sources, as dockerfence writes it into the kernel.
	ibAllowComment = "ingress 1 allow: benchmark sources"
)

// ibSizes are the numbers of listed prefixes other than the client's.
var ibSizes = []int{0, 1000, 100000}

// ibConfigs returns the baseline, dockerfence without ingress rules, and
// dockerfence's ingress rule with each of ibSizes.
func ibConfigs() []dpConfig {
	cs := []dpConfig{{dpFilterNone, 0}, {ibFilterNoIngress, 0}}
	for _, n := range ibSizes {
		cs = append(cs, dpConfig{ibFilterIngress, n})
	}
	return cs
}

// ibDockerRules returns Docker's rules for Ctr's published ports, in the
// shape Docker 29's nftables backend writes them.
func ibDockerRules() string {
	return fmt.Sprintf(`table ip %[1]s {
	map filter-forward-in-jumps {
		type ifname : verdict
		elements = { "%[2]s" : jump filter-forward-in__%[2]s }
	}
	map filter-forward-out-jumps {
		type ifname : verdict
		elements = { "%[2]s" : jump filter-forward-out__%[2]s }
	}
	chain filter-FORWARD {
		type filter hook forward priority filter; policy accept;
		oifname vmap @filter-forward-in-jumps
		iifname vmap @filter-forward-out-jumps
	}
	chain filter-forward-in__%[2]s {
		ct state established,related counter accept
		iifname "%[2]s" counter accept comment "ICC"
		ip daddr %[3]s tcp dport %[4]d counter accept
		ip daddr %[3]s tcp dport %[5]d counter accept
		counter drop comment "UNPUBLISHED PORT DROP"
	}
	chain filter-forward-out__%[2]s {
		ct state established,related counter accept
		counter accept comment "OUTGOING"
	}
	chain nat-PREROUTING {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local counter jump nat-prerouting-and-output
	}
	chain nat-prerouting-and-output {
		iifname != "%[2]s" tcp dport %[6]d counter dnat to %[3]s:%[4]d comment "DNAT"
		iifname != "%[2]s" tcp dport %[7]d counter dnat to %[3]s:%[5]d comment "DNAT"
	}
	chain nat-POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 172.20.0.0/16 oifname != "%[2]s" counter masquerade
	}
}
`, ibDockerTable, topo.BridgeName, topo.CtrIP4, dpIperfPort, dpEchoPort, ibIperfPort, ibEchoPort)
}

// ibList returns the prefix list of the ingress rule with n other prefixes:
// the data path section's n prefixes and the client's address, one a line.
func ibList(n int) string {
	var b strings.Builder
	b.Grow((n + 1) * 16)
	for _, p := range dpPrefixes(n) {
		b.WriteString(p.String() + "\n")
	}
	b.WriteString(topo.InetIP4 + "/32\n")
	return b.String()
}

// ibPolicy returns the policy of a dockerfence configuration: br-test
// fenced with egress allowed and, if list is not empty, the ingress rule
// that allows the sources in the file list on the published ports, every
// other source denied.
func ibPolicy(list string) string {
	var b strings.Builder
	b.WriteString("version: 1\n")
	if list != "" {
		fmt.Fprintf(&b, "lists:\n  bench: {file: %q}\n", list)
	}
	b.WriteString("networks:\n  - match: {subnet: 172.20.0.0/16}\n    egress_default: allow\n")
	if list != "" {
		fmt.Fprintf(&b, "    ingress:\n      - allow: \"@bench\"\n        proto: tcp\n        ports: [%d, %d]\n        comment: benchmark sources\n    ingress_default: deny\n",
			ibIperfPort, ibEchoPort)
	}
	return b.String()
}

// ibBench is the state of one ingress run.
type ibBench struct {
	*dpBench
	// dockerRules is the file of Docker's rules, loaded into Host.
	dockerRules string
}

// benchIngress measures TCP throughput and request/response latency
// through a published port of Host with Docker's rules alone, with
// dockerfence without ingress rules, and with its ingress rule over 0, 1k
// and 100k other prefixes, each as a ratio to the baseline of the same
// run; see the comment at the top of this file.
func benchIngress(tb *benchTB, e *env) ([]DatapathResult, error) {
	b := &ibBench{dpBench: &dpBench{tb: tb, e: e, tp: topo.New(tb), dir: tb.TempDir(), p: dpParamsFor(e.quick),
		cpu: dpLastCPU(), lists: map[int]string{}}}
	b.ends = dpEnds{server: b.tp.Ctr, client: b.tp.Inet, bind: topo.CtrIP4, dial: topo.HostWAN4,
		iperfPort: ibIperfPort, echoPort: ibEchoPort}
	cs := ibConfigs()
	if err := b.prepare(); err != nil {
		return nil, err
	}
	log.Printf("ingress: Inet %s -> %s:%d/%d (DNAT) -> Host (forwarding) -> %s -> Ctr %s:%d/%d; %d rounds of iperf3 -t %d (one stream) and %d 1-byte TCP exchanges (at most %v) per run, all on CPU %d; a baseline run before and after each filter",
		topo.InetIP4, topo.HostWAN4, ibIperfPort, ibEchoPort, topo.BridgeName, topo.CtrIP4, dpIperfPort, dpEchoPort,
		b.p.rounds, b.p.seconds, b.p.exchanges, b.p.rrLimit, b.cpu)

	var runs []dpMeasurement
	var errs []error
	checked := map[dpConfig]bool{}
	for r := range b.p.rounds {
		for _, c := range dpRoundOrder(cs, r) {
			if c.filter == dpFilterNone && len(runs) > 0 && runs[len(runs)-1].c == c {
				continue // the previous round ended with a baseline run
			}
			m, err := b.measure(c, r, !checked[c])
			if err != nil {
				log.Printf("ingress: %s: %v", c, err)
				errs = append(errs, fmt.Errorf("%s: %w", c, err))
				// Leave no filter behind for the next configuration.
				if err := b.teardown(); err != nil {
					return dpResults(cs, runs), errors.Join(append(errs, err)...)
				}
				continue
			}
			checked[c] = true
			runs = append(runs, m)
		}
	}
	res := dpResults(cs, runs)
	for i, x := range res {
		var gbps []float64
		for _, m := range runs {
			if m.c == cs[i] {
				gbps = append(gbps, m.gbps)
			}
		}
		ratios, rrRatios := dpRatios(runs, cs[i])
		log.Printf("ingress: %-34s %6.2f Gbps  ratio %.3f   rr p50 %6.1f µs  p99 %7.1f µs  ratio %.3f   (Gbps %s; ratios %s; rr ratios %s)",
			cs[i], x.Gbps, x.Ratio, x.RRP50US, x.RRP99US, x.RRRatio, fmtList(gbps, 1), fmtList(ratios, 2), fmtList(rrRatios, 2))
	}
	return res, errors.Join(errs...)
}

// prepare writes the lists, loads Docker's rules into Host, routes
// 10.0.0.0/8 from Host to LAN (where the sanity probes' sources are),
// and starts the servers in Ctr. The first baseline run checks that
// without dockerfence the client and the stranger both reach the
// published port.
func (b *ibBench) prepare() error {
	b.resolv = filepath.Join(b.dir, "resolv.conf")
	if err := os.WriteFile(b.resolv, []byte("nameserver "+topo.LANDNS4+"\n"), 0o644); err != nil {
		return err
	}
	for _, n := range ibSizes {
		b.lists[n] = filepath.Join(b.dir, fmt.Sprintf("sources-%d.txt", n))
		if err := os.WriteFile(b.lists[n], []byte(ibList(n)), 0o644); err != nil {
			return err
		}
		if n > 0 {
			b.tp.LAN.Run(b.tb, "ip", "addr", "add", dpProbeAddr(n).String()+"/32", "dev", "eth0")
		}
	}
	b.tp.Host.Run(b.tb, "ip", "route", "add", "10.0.0.0/8", "via", topo.LANProxy4, "dev", topo.LANIf)
	b.dockerRules = filepath.Join(b.dir, "docker.nft")
	if err := os.WriteFile(b.dockerRules, []byte(ibDockerRules()), 0o644); err != nil {
		return err
	}
	if out, err := b.tp.Host.Try("nft", "-f", b.dockerRules); err != nil {
		return fmt.Errorf("load Docker's rules: %w: %s", err, out)
	}
	if err := b.startIperf(); err != nil {
		return err
	}
	if err := b.startEcho(); err != nil {
		return err
	}
	return b.onlyDocker()
}

// published returns the address and published echo port on Host that ns
// connects to: Host's address on ns's link.
func (b *ibBench) published(ns *topo.NS) string {
	host := topo.HostWAN4
	if ns == b.tp.LAN {
		host = topo.HostLAN4
	}
	return net.JoinHostPort(host, strconv.Itoa(ibEchoPort))
}

// probe checks c with real connections to the published echo port: the
// client always gets through; the stranger (LAN's own address) is refused
// by the ingress rule and reaches the port without it; a source in the last
// listed prefix gets through.
func (b *ibBench) probe(c dpConfig) error {
	if got := harness.DialOutcome(b.tp.Inet, b.published(b.tp.Inet), 2*time.Second); got != "ok" {
		return fmt.Errorf("the client to %s: %s, want ok", b.published(b.tp.Inet), got)
	}
	want, also := "ok", ""
	if c.filter == ibFilterIngress {
		want = "refused" // ingress_default deny, deny_action reject: a reset
	}
	if got := harness.DialOutcome(b.tp.LAN, b.published(b.tp.LAN), 1500*time.Millisecond); got != want {
		return fmt.Errorf("the stranger %s to %s: %s, want %s", topo.LANProxy4, b.published(b.tp.LAN), got, want)
	}
	if c.filter == ibFilterIngress && c.prefixes > 0 {
		src := dpProbeAddr(c.prefixes).String()
		if got := ibDialFrom(b.tp.LAN, src, b.published(b.tp.LAN), 2*time.Second); got != "ok" {
			return fmt.Errorf("%s (in the last listed prefix) to %s: %s, want ok", src, b.published(b.tp.LAN), got)
		}
		also = ", " + src + " (in the last listed prefix) reaches " + b.published(b.tp.LAN)
	}
	log.Printf("ingress: %s: checked: the client reaches %s, the stranger %s is %s%s", c, b.published(b.tp.Inet), topo.LANProxy4, want, also)
	return nil
}

// ibDialFrom connects over TCP from the address src in ns to addr and
// reports the harness.Outcome.
func ibDialFrom(ns *topo.NS, src, addr string, timeout time.Duration) string {
	var c net.Conn
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		var err error
		c, err = d.Dial("tcp", addr)
		return err
	})
	if err == nil {
		c.Close()
	}
	return harness.Outcome(err)
}

// measure sets up c's filter, checks it if check is set, measures
// throughput and request/response latency, checks after a checked run that
// the allow rule counted the requests, and removes the filter again.
func (b *ibBench) measure(c dpConfig, round int, check bool) (dpMeasurement, error) {
	m := dpMeasurement{c: c}
	start := time.Now()
	if err := b.setup(c); err != nil {
		return m, err
	}
	setupTook := time.Since(start)
	if check {
		if err := b.probe(c); err != nil {
			return m, err
		}
	}
	gbps, retr, err := b.throughput()
	if err != nil {
		return m, err
	}
	rr, err := b.requestResponse()
	if err != nil {
		return m, err
	}
	if check && c.filter == ibFilterIngress {
		n, err := b.allowCount()
		if err != nil {
			return m, err
		}
		if n < len(rr) {
			return m, fmt.Errorf("the allow rule counted %d packets, fewer than the %d timed requests", n, len(rr))
		}
		log.Printf("ingress: %s: the allow rule counted %d packets (%d timed requests)", c, n, len(rr))
	}
	teardownStart := time.Now()
	if err := b.teardown(); err != nil {
		return m, err
	}
	m.gbps, m.rrUS = gbps, rr
	log.Printf("ingress: round %d/%d %-34s %8.2f Gbps (%d retransmits)  rr p50 %6.1f µs  p99 %7.1f µs (%d exchanges)  set up %v, removed %v",
		round+1, b.p.rounds, c, gbps, retr, percentile(rr, 50), percentile(rr, 99), len(rr),
		setupTook.Round(time.Millisecond), time.Since(teardownStart).Round(time.Millisecond))
	return m, nil
}

// setup applies c's policy in Host, if c is dockerfence's, and checks that
// the table has the ingress chain exactly when c has ingress rules.
func (b *ibBench) setup(c dpConfig) error {
	if c.filter == dpFilterNone {
		return nil
	}
	list, name := "", "policy-no-ingress.yaml"
	if c.filter == ibFilterIngress {
		list, name = b.lists[c.prefixes], fmt.Sprintf("policy-ingress-%d.yaml", c.prefixes)
	}
	pol := filepath.Join(b.dir, name)
	if err := os.WriteFile(pol, []byte(ibPolicy(list)), 0o644); err != nil {
		return err
	}
	if out, err := b.df(2*time.Minute, "apply", "-c", pol); err != nil {
		return fmt.Errorf("apply: %w: %s", err, out)
	}
	out, err := b.tp.Host.Try("nft", "-t", "list", "table", "inet", "dockerfence")
	if err != nil {
		return fmt.Errorf("after apply: %w", err)
	}
	if !strings.Contains(out, "chain fwd_"+topo.BridgeName) {
		return fmt.Errorf("after apply, the table has no chain fwd_%s:\n%s", topo.BridgeName, out)
	}
	hasIngress := strings.Contains(out, "chain ing_"+topo.BridgeName) && strings.Contains(out, ibAllowComment)
	if hasIngress != (c.filter == ibFilterIngress) {
		return fmt.Errorf("after apply, the ingress chain with its allow rule is there: %v, want %v:\n%s", hasIngress, !hasIngress, out)
	}
	if hasIngress {
		if want := ibAllowMatch(c.prefixes); !regexp.MustCompile(regexp.QuoteMeta(want) + `.*comment "` + regexp.QuoteMeta(ibAllowComment)).MatchString(out) {
			return fmt.Errorf("after apply, the allow rule does not match the source with %q:\n%s", want, out)
		}
	}
	return nil
}

// ibAllowMatch returns how the allow rule with n other prefixes matches
// the source: a compare with the client's address when the list holds it
// alone, else a lookup in the list's set.
func ibAllowMatch(n int) string {
	if n == 0 {
		return "ip saddr " + topo.InetIP4 + " "
	}
	return "ip saddr @"
}

// ibCounter finds the packet counter of the benchmark's allow rule.
var ibCounter = regexp.MustCompile(`counter packets (\d+) bytes \d+ .*comment "` + regexp.QuoteMeta(ibAllowComment))

// allowCount returns the packets the allow rule of br-test's ingress chain
// counted.
func (b *ibBench) allowCount() (int, error) {
	out, err := b.tp.Host.Try("nft", "list", "chain", "inet", "dockerfence", "ing_"+topo.BridgeName)
	if err != nil {
		return 0, err
	}
	return ibAllowCount(out)
}

// ibAllowCount returns the packets counted by the benchmark's allow rule in
// the listing of a chain: the sum over its lines (one per family).
func ibAllowCount(chain string) (int, error) {
	ms := ibCounter.FindAllStringSubmatch(chain, -1)
	if len(ms) == 0 {
		return 0, fmt.Errorf("no counted rule %q in:\n%s", ibAllowComment, chain)
	}
	n := 0
	for _, m := range ms {
		v, err := strconv.Atoi(m[1])
		if err != nil {
			return 0, err
		}
		n += v
	}
	return n, nil
}

// teardown deletes dockerfence's table, if there is one, and checks that
// Host has Docker's rules left and nothing else.
func (b *ibBench) teardown() error {
	if strings.Contains(b.ruleset(), "table inet dockerfence") {
		if out, err := b.df(time.Minute, "delete"); err != nil {
			return fmt.Errorf("delete: %w: %s", err, out)
		}
	}
	return b.onlyDocker()
}

// onlyDocker fails unless Host's only table is Docker's.
func (b *ibBench) onlyDocker() error {
	out, err := b.tp.Host.Try("nft", "list", "tables")
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(out); got != "table ip "+ibDockerTable {
		return fmt.Errorf("the tables in Host are not Docker's alone:\n%s", out)
	}
	return nil
}
