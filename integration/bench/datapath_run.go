package main

import (
	"errors"
	"fmt"
	"log"
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

// This file runs the data path section, whose method the comment at the
// top of datapath.go describes: the topology and its servers, and each
// configuration's filter set up, checked, measured and removed again.

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
	// ends are where the servers run and where the clients connect from
	// and to; the zero value is the data path's (see dpEnds.or).
	ends dpEnds
}

// dpEnds are the two ends of the measured traffic: the namespace whose
// iperf3 server (bound to bind, port dpIperfPort) and echo server (port
// dpEchoPort, every address) are measured, and the namespace whose clients
// connect to them at dial, on iperfPort and echoPort, which may be other
// ports than the servers' (a published port that Host DNATs).
type dpEnds struct {
	server, client      *topo.NS
	bind, dial          string
	iperfPort, echoPort int
}

// or returns e, or, if e is the zero value, the data path section's ends:
// the servers in Inet and the clients in Ctr.
func (e dpEnds) or(tp *topo.Topo) dpEnds {
	if e.server != nil {
		return e
	}
	return dpEnds{server: tp.Inet, client: tp.Ctr, bind: topo.InetIP4, dial: topo.InetIP4, iperfPort: dpIperfPort, echoPort: dpEchoPort}
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

// startIperf starts "iperf3 -s" in the server's namespace (Inet in the
// data path section) and stops it, by its pid, at cleanup.
func (b *dpBench) startIperf() error {
	ends := b.ends.or(b.tp)
	logf, err := os.Create(filepath.Join(b.dir, "iperf3-server.log"))
	if err != nil {
		return err
	}
	// nsenter execs iperf3 in place, so the child's pid is iperf3's.
	cmd := ends.server.Command("iperf3", "-s", "-B", ends.bind, "-p", strconv.Itoa(dpIperfPort))
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
	want := fmt.Sprintf("%s:%d", ends.bind, dpIperfPort)
	for start := time.Now(); time.Since(start) < 5*time.Second; time.Sleep(50 * time.Millisecond) {
		select {
		case <-done:
			out, _ := os.ReadFile(logf.Name())
			return fmt.Errorf("iperf3 -s exited: %s", out)
		default:
		}
		if out, err := ends.server.Try("ss", "-Hltn"); err == nil && strings.Contains(out, want) {
			return nil
		}
	}
	return errors.New("iperf3 -s does not listen after 5 s")
}

// startEcho starts the echo server of the request/response test in the
// server's namespace (Inet in the data path section), listening on every
// address, and stops it at cleanup. It serves one
// connection at a time with blocking system calls on a thread of its own,
// pinned to b.cpu like the client, so that no Go scheduler or netpoller
// hop is part of a round trip.
func (b *dpBench) startEcho() error {
	var lfd int
	if err := b.ends.or(b.tp).server.Do(func() error {
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
		return fmt.Errorf("echo server: %w", err)
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

// throughput runs one iperf3 test from the client's namespace to the
// server's (Ctr to Inet in the data path section) and returns the
// receiver's Gbit/s and the sender's retransmissions. No interval is
// omitted for slow start: with a round trip of some 20 µs, TCP is at full
// speed within milliseconds.
func (b *dpBench) throughput() (float64, int, error) {
	ends := b.ends.or(b.tp)
	out, err := ends.client.TryWithin(time.Duration(b.p.seconds+60)*time.Second, "iperf3", "-c", ends.dial,
		"-p", strconv.Itoa(ends.iperfPort), "-t", strconv.Itoa(b.p.seconds),
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
