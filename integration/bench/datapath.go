package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"golang.org/x/sys/unix"
)

// The data path section sends traffic from the container namespace Ctr over
// br-test into Host, which routes it out of wan0 to the upstream namespace
// Inet. Host is the fenced Docker host: it runs no filter (the baseline),
// dockerfence's table, or an iptables linear chain. Inet runs Debian's
// iperf3 server and an echo server of the benchmark's own.
//
// Throughput is one TCP stream, iperf3 -c from Ctr, so every data packet
// crosses Host's forward hook in the original direction, where dockerfence
// judges each packet. The veths keep their default offloads: TCP in Ctr
// hands the veth segments of up to 64 KiB (TSO/GSO), which the bridge and
// the router forward whole, so the filter runs once per super-packet, not
// once per 1500-byte frame. Client and server are pinned to one CPU (the
// last), which then also does all the forwarding (veth transmits are
// processed in softirq on the sending CPU). Throughput is then the inverse
// of the CPU time per byte of sender, router and receiver together, so a
// filter's cost shows as its share of it, and the run does not depend on
// how the scheduler places the two ends, which on 2 cores swings a single
// stream by a third and makes the receiver drop.
//
// Request/response latency is many 1-byte exchanges on one TCP connection
// (TCP_NODELAY), from a client in Ctr to the echo server in Inet, both
// with blocking system calls on threads pinned to the same CPU. One
// connection keeps connection setup and conntrack's new-entry path out of
// it: each request is one small packet judged by the whole chain, which is
// the per-packet cost the number of prefixes could change (the replies are
// in the reply direction, which no filter here judges).
//
// Each filter denies N distinct IPv4 /26 prefixes in 10.0.0.0/8 (one every
// 128 addresses, so no two are adjacent and none merge), none of which
// covers Inet. The configurations are measured in rounds, forward and
// backward in turn, with a baseline run before and after each of them
// (the iptables chain only in the first rounds: see dpParams). On
// a shared or virtual machine the speed of a core shifts by 10-20% for
// tens of seconds at a time, more than the effect being measured, so a
// filter is compared with the baseline runs next to it: each run's ratio
// is its value over the mean of the two baseline runs around it, and the
// reported ratio is the median of those ratios over the rounds. Gbps is
// the median of a configuration's runs and the latency percentiles are
// over the exchanges of all its runs; they are shown as measured, so Gbps
// over the baseline's Gbps need not equal the ratio.

const (
	// dpFilterNone, dpFilterDockerfence and dpFilterIptables are the
	// filter names of DatapathResult.
	dpFilterNone        = "none"
	dpFilterDockerfence = "dockerfence"
	dpFilterIptables    = "iptables linear"

	// dpIperfPort and dpEchoPort are where Inet's servers listen.
	dpIperfPort = 5201
	dpEchoPort  = 7007

	// dpChain is the iptables chain of the linear filter.
	dpChain = "DFBENCH"

	// dpMaxPrefixes is how many /26 prefixes, one every 128 addresses,
	// fit into 10.0.0.0/8.
	dpMaxPrefixes = 1 << 17
)

// dpConfig is one filter with one number of deny prefixes.
type dpConfig struct {
	filter   string
	prefixes int
}

// String returns the filter and its number of prefixes, as the log shows
// them.
func (c dpConfig) String() string {
	if c.filter == dpFilterNone {
		return c.filter
	}
	return fmt.Sprintf("%s %d", c.filter, c.prefixes)
}

// dpParams are the knobs that -quick changes.
type dpParams struct {
	rounds int
	// iptablesRounds is how many of the rounds, the first ones, include the
	// iptables linear chain: its cost is so large that few runs tell it,
	// and its runs of 100,000 rules take long (above all removing the
	// rules), time better spent on more runs of dockerfence, whose cost is
	// within the machine's noise.
	iptablesRounds int
	// seconds is iperf3's -t.
	seconds int
	// exchanges is how many request/response round trips are timed per
	// run, unless rrLimit runs out first.
	exchanges int
	rrLimit   time.Duration
}

// dpParamsFor returns the parameters of a quick or a full run. A quick run
// takes some 2.5 minutes on 2 cores, a full one some 7.
func dpParamsFor(quick bool) dpParams {
	if quick {
		return dpParams{rounds: 7, iptablesRounds: 1, seconds: 2, exchanges: 5000, rrLimit: 2 * time.Second}
	}
	return dpParams{rounds: 11, iptablesRounds: 3, seconds: 3, exchanges: 20000, rrLimit: 5 * time.Second}
}

// dpConfigs returns the baseline, dockerfence at 0, 1k, 10k and 100k
// prefixes, and the iptables linear chain at 1k, 10k and 100k.
func dpConfigs() []dpConfig {
	cs := []dpConfig{{dpFilterNone, 0}}
	for _, n := range []int{0, 1000, 10000, 100000} {
		cs = append(cs, dpConfig{dpFilterDockerfence, n})
	}
	for _, n := range []int{1000, 10000, 100000} {
		cs = append(cs, dpConfig{dpFilterIptables, n})
	}
	return cs
}

// dpRoundOrder returns the runs of round r: the configurations other than
// the baseline, each between two baseline runs, as given in even rounds
// and reversed in odd ones.
func dpRoundOrder(cs []dpConfig, r int) []dpConfig {
	base := dpConfig{dpFilterNone, 0}
	out := []dpConfig{base}
	for _, c := range cs {
		if c != base {
			out = append(out, c, base)
		}
	}
	if r%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// dpPrefixes returns n distinct IPv4 /26 prefixes in 10.0.0.0/8, one every
// 128 addresses, so that no two are adjacent or overlap (no set or
// optimiser can merge them). n must not exceed dpMaxPrefixes.
func dpPrefixes(n int) []netip.Prefix {
	if n < 0 || n > dpMaxPrefixes {
		panic(fmt.Sprintf("dpPrefixes(%d): at most %d fit into 10.0.0.0/8", n, dpMaxPrefixes))
	}
	out := make([]netip.Prefix, n)
	for i := range out {
		v := uint32(10)<<24 | uint32(i)*128
		a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		out[i] = netip.PrefixFrom(a, 26)
	}
	return out
}

// dpProbeAddr returns the address inside the last of n prefixes that the
// sanity check expects the filter to refuse: the prefix's first address
// plus one.
func dpProbeAddr(n int) netip.Addr {
	return dpPrefixes(n)[n-1].Addr().Next()
}

// dpPolicy returns a dockerfence policy that fences br-test by its subnet
// and, if list is not empty, denies the prefixes in the file list.
func dpPolicy(list string) string {
	var b strings.Builder
	b.WriteString("version: 1\n")
	if list != "" {
		fmt.Fprintf(&b, "lists:\n  bench: {file: %q}\n", list)
	}
	b.WriteString("networks:\n  - match: {subnet: 172.20.0.0/16}\n")
	if list != "" {
		b.WriteString("    egress:\n      - deny: \"@bench\"\n        comment: benchmark prefixes\n")
	}
	b.WriteString("    egress_default: allow\n")
	return b.String()
}

// dpIptablesRules returns iptables-restore input (for --noflush) that
// creates the chain dpChain with one DROP rule per prefix and jumps to it
// from FORWARD for packets entering from bridge.
func dpIptablesRules(bridge string, prefixes []netip.Prefix) string {
	var b strings.Builder
	b.Grow(len(prefixes) * 40)
	b.WriteString("*filter\n:" + dpChain + " - [0:0]\n")
	for _, p := range prefixes {
		b.WriteString("-A " + dpChain + " -d " + p.String() + " -j DROP\n")
	}
	b.WriteString("-A FORWARD -i " + bridge + " -j " + dpChain + "\nCOMMIT\n")
	return b.String()
}

// iperfResult is the part of iperf3's -J output the benchmark reads.
type iperfResult struct {
	End struct {
		SumSent struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int     `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Seconds       float64 `json:"seconds"`
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// parseIperf returns the receiver's throughput in Gbit/s and the sender's
// retransmissions from iperf3 -J output.
func parseIperf(data []byte) (gbps float64, retransmits int, err error) {
	var r iperfResult
	if err := json.Unmarshal(data, &r); err != nil {
		return 0, 0, fmt.Errorf("iperf3 output is not JSON: %w", err)
	}
	if r.Error != "" {
		return 0, 0, fmt.Errorf("iperf3: %s", r.Error)
	}
	bps := r.End.SumReceived.BitsPerSecond
	if bps <= 0 || math.IsNaN(bps) || math.IsInf(bps, 0) || r.End.SumReceived.Seconds <= 0 {
		return 0, 0, errors.New("iperf3 output has no end.sum_received.bits_per_second")
	}
	return bps / 1e9, r.End.SumSent.Retransmits, nil
}

// dpMeasurement is one run of one configuration.
type dpMeasurement struct {
	c    dpConfig
	gbps float64
	// rrUS are the round-trip times of the run, in microseconds.
	rrUS []float64
}

// dpRatios returns the ratios of c's runs to the baseline runs around
// them: each run's Gbps and p50 round trip over the mean of the nearest
// baseline runs before and after it that measured them (or the one there
// is). It returns nothing for the baseline itself.
func dpRatios(runs []dpMeasurement, c dpConfig) (gbps, rr []float64) {
	if c.filter == dpFilterNone {
		return nil, nil
	}
	p50 := func(m dpMeasurement) float64 {
		if len(m.rrUS) == 0 {
			return 0
		}
		return percentile(m.rrUS, 50)
	}
	mean := func(xs []float64) float64 {
		sum := 0.0
		for _, x := range xs {
			sum += x
		}
		return sum / float64(len(xs))
	}
	for i, m := range runs {
		if m.c != c {
			continue
		}
		var bg, br []float64
		for _, step := range []int{-1, 1} {
			for j := i + step; j >= 0 && j < len(runs); j += step {
				if runs[j].c.filter == dpFilterNone {
					if runs[j].gbps > 0 {
						bg = append(bg, runs[j].gbps)
					}
					if x := p50(runs[j]); x > 0 {
						br = append(br, x)
					}
					break
				}
			}
		}
		if len(bg) > 0 && m.gbps > 0 {
			gbps = append(gbps, m.gbps/mean(bg))
		}
		if x := p50(m); len(br) > 0 && x > 0 {
			rr = append(rr, x/mean(br))
		}
	}
	return gbps, rr
}

// dpResults turns the runs, in the order they were made, into one result
// per configuration of cs, in that order. Ratio and RRRatio are the medians
// of dpRatios; see the comment at the top of this file. Values that could
// not be measured are 0 (JSON has no NaN).
func dpResults(cs []dpConfig, runs []dpMeasurement) []DatapathResult {
	finite := func(x float64) float64 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0
		}
		return x
	}
	var out []DatapathResult
	for _, c := range cs {
		var gbps, rr []float64
		for _, m := range runs {
			if m.c == c {
				gbps = append(gbps, m.gbps)
				rr = append(rr, m.rrUS...)
			}
		}
		ratios, rrRatios := dpRatios(runs, c)
		res := DatapathResult{Filter: c.filter, Prefixes: c.prefixes,
			Gbps: finite(median(gbps)), RRP50US: finite(percentile(rr, 50)), RRP99US: finite(percentile(rr, 99)),
			Ratio: finite(median(ratios)), RRRatio: finite(median(rrRatios))}
		if c.filter == dpFilterNone {
			if res.Gbps > 0 {
				res.Ratio = 1
			}
			if res.RRP50US > 0 {
				res.RRRatio = 1
			}
		}
		out = append(out, res)
	}
	return out
}

// dpBench is the state of one data path run.
type dpBench struct {
	tb     *benchTB
	e      *env
	tp     *topo.Topo
	dir    string
	resolv string
	p      dpParams
	// cpu is the one CPU that iperf3's client and server and the
	// request/response client and server run on.
	cpu int
	// lists holds the prefix list file of each size (dockerfence) and the
	// iptables-restore file of each size.
	lists, rules map[int]string
}

// benchDatapath measures TCP throughput and request/response latency
// through the fenced Host with no filter, with dockerfence at 0, 1k, 10k
// and 100k deny prefixes and with an iptables linear chain of the same
// prefixes, each as a ratio to the baseline of the same run.
func benchDatapath(tb *benchTB, e *env) ([]DatapathResult, error) {
	b := &dpBench{tb: tb, e: e, tp: topo.New(tb), dir: tb.TempDir(), p: dpParamsFor(e.quick),
		cpu:   dpLastCPU(),
		lists: map[int]string{}, rules: map[int]string{}}
	cs := dpConfigs()
	if err := b.prepare(cs); err != nil {
		return nil, err
	}
	log.Printf("datapath: %s -> %s -> Host (forwarding) -> %s -> Inet %s; %d rounds (iptables in the first %d) of iperf3 -t %d (one stream) and %d 1-byte TCP exchanges (at most %v) per run, all on CPU %d; a baseline run before and after each filter",
		topo.CtrIP4, topo.BridgeName, topo.WANIf, topo.InetIP4, b.p.rounds, b.p.iptablesRounds, b.p.seconds, b.p.exchanges, b.p.rrLimit, b.cpu)

	var runs []dpMeasurement
	var errs []error
	checked := map[dpConfig]bool{}
	for r := range b.p.rounds {
		round := cs
		if r >= b.p.iptablesRounds {
			round = slices.DeleteFunc(slices.Clone(cs), func(c dpConfig) bool { return c.filter == dpFilterIptables })
		}
		for _, c := range dpRoundOrder(round, r) {
			if c.filter == dpFilterNone && len(runs) > 0 && runs[len(runs)-1].c == c {
				continue // the previous round ended with a baseline run
			}
			m, err := b.measure(c, r, !checked[c])
			if err != nil {
				log.Printf("datapath: %s: %v", c, err)
				errs = append(errs, fmt.Errorf("%s: %w", c, err))
				// Leave no filter behind for the next configuration.
				if err := b.teardown(c); err != nil {
					return dpResults(cs, runs), errors.Join(append(errs, err)...)
				}
				continue
			}
			checked[c] = true
			runs = append(runs, m)
		}
	}
	res := dpResults(cs, runs)
	list := func(xs []float64, prec int) string {
		var ss []string
		for _, x := range xs {
			ss = append(ss, strconv.FormatFloat(x, 'f', prec, 64))
		}
		return strings.Join(ss, " ")
	}
	for _, x := range res {
		c := dpConfig{x.Filter, x.Prefixes}
		var gbps []float64
		for _, m := range runs {
			if m.c == c {
				gbps = append(gbps, m.gbps)
			}
		}
		ratios, rrRatios := dpRatios(runs, c)
		log.Printf("datapath: %-22s %6.2f Gbps  ratio %.3f   rr p50 %6.1f µs  p99 %7.1f µs  ratio %.3f   (Gbps %s; ratios %s; rr ratios %s)",
			c, x.Gbps, x.Ratio, x.RRP50US, x.RRP99US, x.RRRatio, list(gbps, 1), list(ratios, 2), list(rrRatios, 2))
	}
	return res, errors.Join(errs...)
}

// prepare writes the lists, routes 10.0.0.0/8 from Host to Inet, gives
// Inet one address in the last prefix of each size (the sanity probes),
// starts the servers in Inet, and checks that Host has no ruleset and that
// every probe address answers while nothing filters.
func (b *dpBench) prepare(cs []dpConfig) error {
	b.resolv = filepath.Join(b.dir, "resolv.conf")
	if err := os.WriteFile(b.resolv, []byte("nameserver "+topo.LANDNS4+"\n"), 0o644); err != nil {
		return err
	}
	sizes := map[int]bool{}
	for _, c := range cs {
		if c.prefixes > 0 {
			sizes[c.prefixes] = true
		}
	}
	var probes []string
	for n := range sizes {
		ps := dpPrefixes(n)
		var list strings.Builder
		for _, p := range ps {
			list.WriteString(p.String() + "\n")
		}
		b.lists[n] = filepath.Join(b.dir, fmt.Sprintf("prefixes-%d.txt", n))
		b.rules[n] = filepath.Join(b.dir, fmt.Sprintf("iptables-%d.rules", n))
		if err := os.WriteFile(b.lists[n], []byte(list.String()), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(b.rules[n], []byte(dpIptablesRules(topo.BridgeName, ps)), 0o644); err != nil {
			return err
		}
		probes = append(probes, dpProbeAddr(n).String())
	}
	b.tp.Host.Run(b.tb, "ip", "route", "add", "10.0.0.0/8", "via", topo.InetIP4, "dev", topo.WANIf)
	for _, a := range probes {
		b.tp.Inet.Run(b.tb, "ip", "addr", "add", a+"/32", "dev", "lo")
	}
	if err := b.startIperf(); err != nil {
		return err
	}
	if err := b.startEcho(); err != nil {
		return err
	}
	if err := b.emptyRuleset(); err != nil {
		return err
	}
	for _, a := range append([]string{topo.InetIP4}, probes...) {
		if got := harness.DialOutcome(b.tp.Ctr, netip.AddrPortFrom(netip.MustParseAddr(a), dpEchoPort).String(), 2*time.Second); got != "ok" {
			return fmt.Errorf("without a filter, %s:%d from Ctr: %s, want ok", a, dpEchoPort, got)
		}
	}
	return nil
}

// startIperf starts "iperf3 -s" in Inet and stops it, by its pid, at cleanup.
func (b *dpBench) startIperf() error {
	logf, err := os.Create(filepath.Join(b.dir, "iperf3-server.log"))
	if err != nil {
		return err
	}
	// nsenter execs iperf3 in place, so the child's pid is iperf3's.
	cmd := b.tp.Inet.Command("iperf3", "-s", "-B", topo.InetIP4, "-p", strconv.Itoa(dpIperfPort))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start iperf3 -s: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }() //nolint:errcheck // killed at cleanup
	b.tb.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // it may have exited
		<-done
	})
	want := fmt.Sprintf("%s:%d", topo.InetIP4, dpIperfPort)
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(50 * time.Millisecond) {
		select {
		case <-done:
			out, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("iperf3 -s exited: %s", out)
		default:
		}
		if out, err := b.tp.Inet.Try("ss", "-Hltn"); err == nil && strings.Contains(out, want) {
			return nil
		}
	}
	return errors.New("iperf3 -s does not listen after 5 s")
}

// startEcho starts the echo server of the request/response test in Inet,
// listening on every address, and stops it at cleanup. It serves one
// connection at a time with blocking system calls on a thread of its own,
// pinned to b.cpu like the client, so that no Go scheduler or netpoller
// hop is part of a round trip.
func (b *dpBench) startEcho() error {
	var lfd int
	if err := b.tp.Inet.Do(func() error {
		var err error
		if lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		if err := unix.Bind(lfd, &unix.SockaddrInet4{Port: dpEchoPort}); err != nil {
			unix.Close(lfd)
			return err
		}
		return unix.Listen(lfd, 64)
	}); err != nil {
		return fmt.Errorf("echo server in Inet: %w", err)
	}
	var (
		mu      sync.Mutex
		conn    = -1
		stopped bool
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread stays locked: it is pinned, and ends with the goroutine.
		runtime.LockOSThread()
		if err := dpPin(b.cpu); err != nil {
			log.Printf("datapath: echo server: %v", err)
		}
		buf := make([]byte, 64)
		for {
			fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
			if err == unix.EINTR || err == unix.ECONNABORTED {
				continue
			}
			if err != nil {
				return // shut down at cleanup
			}
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) //nolint:errcheck // best effort
			mu.Lock()
			if stopped {
				mu.Unlock()
				unix.Close(fd)
				return
			}
			conn = fd
			mu.Unlock()
			for {
				n, err := unix.Read(fd, buf)
				if err == unix.EINTR {
					continue
				}
				if err != nil || n <= 0 {
					break
				}
				if _, err := unix.Write(fd, buf[:n]); err != nil {
					break
				}
			}
			mu.Lock()
			conn = -1
			unix.Close(fd)
			mu.Unlock()
		}
	}()
	b.tb.Cleanup(func() {
		mu.Lock()
		stopped = true
		unix.Shutdown(lfd, unix.SHUT_RDWR) //nolint:errcheck // wakes Accept
		if conn >= 0 {
			unix.Shutdown(conn, unix.SHUT_RDWR) //nolint:errcheck // wakes Read
		}
		mu.Unlock()
		<-done
		unix.Close(lfd)
	})
	return nil
}

// measure sets up c's filter, checks it if check is set, measures
// throughput and request/response latency, and removes the filter again.
func (b *dpBench) measure(c dpConfig, round int, check bool) (dpMeasurement, error) {
	m := dpMeasurement{c: c}
	setupTook, err := b.setup(c)
	if err != nil {
		return m, err
	}
	if check {
		if err := b.sanity(c); err != nil {
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
	teardownStart := time.Now()
	if err := b.teardown(c); err != nil {
		return m, err
	}
	m.gbps, m.rrUS = gbps, rr
	log.Printf("datapath: round %d/%d %-22s %8.2f Gbps (%d retransmits)  rr p50 %6.1f µs  p99 %7.1f µs (%d exchanges)  set up %v, removed %v",
		round+1, b.p.rounds, c, gbps, retr, percentile(rr, 50), percentile(rr, 99), len(rr),
		setupTook.Round(time.Millisecond), time.Since(teardownStart).Round(time.Millisecond))
	return m, nil
}

// setup installs c's filter in Host and checks that it is there.
func (b *dpBench) setup(c dpConfig) (time.Duration, error) {
	start := time.Now()
	switch c.filter {
	case dpFilterNone:
		return 0, nil
	case dpFilterDockerfence:
		list := ""
		if c.prefixes > 0 {
			list = b.lists[c.prefixes]
		}
		pol := filepath.Join(b.dir, fmt.Sprintf("policy-%d.yaml", c.prefixes))
		if err := os.WriteFile(pol, []byte(dpPolicy(list)), 0o644); err != nil {
			return 0, err
		}
		if _, err := b.df(2*time.Minute, "apply", "-c", pol); err != nil {
			return 0, err
		}
		took := time.Since(start)
		out, err := b.tp.Host.Try("nft", "-t", "list", "table", "inet", "dockerfence")
		if err != nil {
			return 0, fmt.Errorf("after apply: %w", err)
		}
		if !strings.Contains(out, "chain fwd_"+topo.BridgeName) {
			return 0, fmt.Errorf("after apply, the table has no chain fwd_%s:\n%s", topo.BridgeName, out)
		}
		if c.prefixes > 0 && !strings.Contains(out, "benchmark prefixes") {
			return 0, fmt.Errorf("after apply, the table has no deny rule for the prefixes:\n%s", out)
		}
		return took, nil
	case dpFilterIptables:
		if _, err := b.tp.Host.TryWithin(5*time.Minute, "iptables-restore", "--noflush", b.rules[c.prefixes]); err != nil {
			return 0, err
		}
		took := time.Since(start)
		out, err := b.tp.Host.Try("iptables", "-S", "FORWARD")
		if err != nil {
			return 0, err
		}
		if !strings.Contains(out, "-A FORWARD -i "+topo.BridgeName+" -j "+dpChain) {
			return 0, fmt.Errorf("after iptables-restore, FORWARD does not jump to %s:\n%s", dpChain, out)
		}
		return took, nil
	}
	return 0, fmt.Errorf("unknown filter %q", c.filter)
}

// sanity checks with a real connection that c's filter refuses the last of
// its prefixes, while the measured traffic still flows.
func (b *dpBench) sanity(c dpConfig) error {
	echo := fmt.Sprintf("%s:%d", topo.InetIP4, dpEchoPort)
	if got := harness.DialOutcome(b.tp.Ctr, echo, 2*time.Second); got != "ok" {
		return fmt.Errorf("sanity: %s from Ctr: %s, want ok", echo, got)
	}
	if c.prefixes == 0 {
		return nil
	}
	want := "refused" // dockerfence's deny_action reject: a TCP reset
	if c.filter == dpFilterIptables {
		want = "timeout" // -j DROP
	}
	probe := netip.AddrPortFrom(dpProbeAddr(c.prefixes), dpEchoPort).String()
	if got := harness.DialOutcome(b.tp.Ctr, probe, 1500*time.Millisecond); got != want {
		return fmt.Errorf("sanity: %s (in the last listed prefix) from Ctr: %s, want %s", probe, got, want)
	}
	log.Printf("datapath: %s: checked: %s is %s, %s answers", c, probe, want, echo)
	return nil
}

// teardown removes c's filter from Host and checks that Host has no
// ruleset left, so that the next configuration starts from the baseline.
func (b *dpBench) teardown(c dpConfig) error {
	switch c.filter {
	case dpFilterDockerfence:
		if strings.Contains(b.ruleset(), "table inet dockerfence") {
			if _, err := b.df(time.Minute, "delete"); err != nil {
				return err
			}
		}
	case dpFilterIptables:
		// iptables-nft made table ip filter; removing it whole also removes
		// its base chains, which would cost every later packet a little.
		if strings.Contains(b.ruleset(), "table ip filter") {
			if _, err := b.tp.Host.TryWithin(5*time.Minute, "nft", "delete", "table", "ip", "filter"); err != nil {
				return err
			}
		}
	}
	return b.emptyRuleset()
}

// ruleset returns Host's ruleset without set elements ("" if it cannot be read).
func (b *dpBench) ruleset() string {
	out, _ := b.tp.Host.Try("nft", "-t", "list", "ruleset")
	return out
}

// emptyRuleset fails unless Host's nftables ruleset is empty.
func (b *dpBench) emptyRuleset() error {
	out, err := b.tp.Host.Try("nft", "-t", "list", "ruleset")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		return fmt.Errorf("the ruleset in Host is not empty:\n%s", out)
	}
	return nil
}

// df runs the dockerfence binary in Host, without Docker.
func (b *dpBench) df(limit time.Duration, args ...string) (string, error) {
	full := append([]string{"--docker-host", "unix://" + filepath.Join(b.dir, "no-docker.sock"),
		"--socket", filepath.Join(b.dir, "dp.sock"), "--resolv-conf", b.resolv}, args...)
	return b.tp.Host.TryWithin(limit, b.e.binary, full...)
}

// throughput runs one iperf3 test from Ctr to Inet and returns the
// receiver's Gbit/s and the sender's retransmissions. No interval is
// omitted for slow start: with a round trip of some 20 µs, TCP is at full
// speed within milliseconds.
func (b *dpBench) throughput() (float64, int, error) {
	out, err := b.tp.Ctr.TryWithin(time.Duration(b.p.seconds+60)*time.Second, "iperf3", "-c", topo.InetIP4,
		"-p", strconv.Itoa(dpIperfPort), "-t", strconv.Itoa(b.p.seconds),
		"-A", fmt.Sprintf("%d,%d", b.cpu, b.cpu), "-J")
	if err != nil {
		// iperf3 -J reports its error in the JSON it prints.
		if _, _, perr := parseIperf([]byte(out)); perr != nil {
			return 0, 0, perr
		}
		return 0, 0, err
	}
	return parseIperf([]byte(out))
}

// requestResponse times 1-byte exchanges on one TCP connection from Ctr to
// Inet's echo server, after 100 untimed ones, and returns the round trips
// in microseconds. The client uses blocking system calls on a thread pinned
// to b.cpu, like the server.
func (b *dpBench) requestResponse() ([]float64, error) {
	var fd int
	if err := b.tp.Ctr.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		return err
	}); err != nil {
		return nil, fmt.Errorf("request/response: socket in Ctr: %w", err)
	}
	defer unix.Close(fd)
	// No call blocks for longer than 5 s, whatever the filter does.
	tv := unix.NsecToTimeval((5 * time.Second).Nanoseconds())
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			return nil, err
		}
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return nil, err
	}
	dst := &unix.SockaddrInet4{Port: dpEchoPort, Addr: netip.MustParseAddr(topo.InetIP4).As4()}
	if err := unix.Connect(fd, dst); err != nil {
		return nil, fmt.Errorf("request/response: connect: %w", err)
	}
	type result struct {
		rtts []float64
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread stays locked: it is pinned, and ends with the goroutine.
		runtime.LockOSThread()
		if err := dpPin(b.cpu); err != nil {
			ch <- result{err: err}
			return
		}
		rtts, err := dpExchanges(fd, b.p.exchanges, b.p.rrLimit)
		ch <- result{rtts, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("request/response: %w", r.err)
	}
	return r.rtts, nil
}

// dpExchanges sends one byte on fd and reads one back, 100 times untimed
// and then up to n times or until limit has passed, and returns the timed
// round trips in microseconds.
func dpExchanges(fd, n int, limit time.Duration) ([]float64, error) {
	buf := []byte{'x'}
	rtts := make([]float64, 0, n)
	stop := time.Now().Add(limit)
	for i := -100; i < n; i++ {
		t0 := time.Now()
		if _, err := unix.Write(fd, buf); err != nil {
			return nil, fmt.Errorf("write: %w", err)
		}
		for {
			m, err := unix.Read(fd, buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read: %w", err)
			}
			if m != 1 {
				return nil, errors.New("read: the echo server closed the connection")
			}
			break
		}
		if i < 0 {
			continue
		}
		now := time.Now()
		rtts = append(rtts, float64(now.Sub(t0).Nanoseconds())/1e3)
		if now.After(stop) {
			break
		}
	}
	return rtts, nil
}

// dpPin pins the calling thread to cpu.
func dpPin(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("pin the thread to CPU %d: %w", cpu, err)
	}
	return nil
}

// dpLastCPU returns the highest CPU this process may run on.
func dpLastCPU() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0
	}
	last := 0
	for c := range 1024 {
		if set.IsSet(c) {
			last = c
		}
	}
	return last
}
