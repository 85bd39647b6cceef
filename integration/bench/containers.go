package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nft"
)

// The containers section measures the container layer (fence/containers.go)
// on the data path's topology (see datapath.go): the network br-test has N
// classified containers, containers that a container section matches. N-1
// of them are fake: the fake Docker API lists them with addresses in the
// network's subnet that no namespace uses. The Nth is Ctr, the client of
// iperf3 and of the request/response test, classified by a section that
// allows exactly the benchmark's traffic (and denies everything else), so
// that each measured packet goes from the network's chain to the container
// layer, is looked up by its source address among the N in the layer's map,
// and walks its container's chain to the allow.
//
// Fence time: dockerfence run follows the fake Docker API with N containers
// listed; one more container is added (a "network connect" event, as
// dockerd sends when a container starts) and the time is taken from the
// event until the kernel reports the transaction that put the container's
// address into the layer's map (nf_tables notifications, so that polling
// the table, which with 1,000 containers holds thousands of chains, does
// not slow the daemon or blur the figure). Each notification is checked
// with a read of the map; the container is then removed again.
//
// Data path: as the data path section, in alternating rounds, each run of
// the container layer with N containers between two runs of the baseline,
// which here is the same policy without its containers: section (the
// network layer alone, with the same conntrack), each applied with
// dockerfence apply from the fake Docker's list and deleted after the run.

const (
	// cbNetwork is the benchmark's Docker network, on br-test.
	cbNetwork = "bench"
	// cbFilterContainers is the filter of the container layer's runs (its
	// prefixes hold N); the baseline is dpFilterNone.
	cbFilterContainers = "containers"
	// cbProbe is an address on Inet (routed from Host) that the network
	// layer allows and the client's section denies: the sanity check.
	cbProbe = "10.0.0.1"
	// cbMap4 is the container layer's IPv4 map of br-test.
	cbMap4 = "fwdc_" + topo.BridgeName + "_4"
)

// cbSizes are the numbers of classified containers measured.
var cbSizes = []int{1, 100, 1000}

// cbPolicy returns the benchmark's policy: br-test fenced with egress
// allowed, and, if withContainers, the client's section (the benchmark's
// traffic to Inet allowed, nothing else) and the other containers' (their
// proxy allowed, nothing else).
func cbPolicy(withContainers bool) string {
	p := "version: 1\nnetworks:\n  - match: {subnet: 172.20.0.0/16}\n    egress_default: allow\n"
	if withContainers {
		p += fmt.Sprintf(`containers:
  - match: {label: "role=bench-client"}
    egress:
      - allow: %s
        proto: tcp
        ports: [%d, %d]
    egress_default: deny
  - match: {label: "role=worker"}
    egress:
      - allow: %s
        proto: tcp
        ports: [3128]
    egress_default: deny
`, topo.InetIP4, dpIperfPort, dpEchoPort, topo.LANProxy4)
	}
	return p
}

// cbContainers returns the n classified containers of the benchmark: the
// client Ctr (whose eth0 has clientMAC) and n-1 fake workers, 172.20.1.1
// upwards.
func cbContainers(n int, clientMAC string) []harness.Container {
	out := []harness.Container{{ID: strings.Repeat("c", 64), Name: "bench-client", Image: "iperf3",
		Labels: map[string]string{"role": "bench-client"}, Endpoints: []harness.Endpoint{{Network: cbNetwork, IPv4: topo.CtrIP4, MAC: clientMAC}}}}
	for i := range n - 1 {
		out = append(out, cbWorker(i, fmt.Sprintf("172.20.%d.%d", 1+i/250, 1+i%250)))
	}
	return out
}

// cbWorker returns fake worker i at addr.
func cbWorker(i int, addr string) harness.Container {
	return harness.Container{ID: fakeID(i), Name: fmt.Sprintf("worker%d", i), Image: "busybox",
		Labels: map[string]string{"role": "worker"}, Endpoints: []harness.Endpoint{{Network: cbNetwork, IPv4: addr}}}
}

// cbParams are the knobs of the section that -quick changes.
type cbParams struct {
	dp     dpParams
	trials int
}

// cbParamsFor returns the parameters of a quick run (some 1.5 minutes on 2
// cores) or a full one: the data path section's, with fewer rounds when
// quick, and the fence time trials per size.
func cbParamsFor(quick bool) cbParams {
	p := cbParams{dp: dpParamsFor(quick), trials: 20}
	if quick {
		p.dp.rounds, p.trials = 5, 8
	}
	return p
}

// cbBench is the state of one containers run.
type cbBench struct {
	*dpBench
	fake *harness.Docker
	k    nft.Kernel
	// pols are the policy files with and without the containers: section.
	with, without string
	trials        int
	// clientMAC is the MAC of the client's eth0, which the fake Docker
	// reports: by it dockerfence finds the client's bridge port, without
	// which the client's packets are held.
	clientMAC string
}

// benchContainers measures fence time and the data path with 1, 100 and
// 1,000 classified containers; see the comment at the top of this file.
func benchContainers(tb *benchTB, e *env) ([]ContainersResult, error) {
	p := cbParamsFor(e.quick)
	b := &cbBench{dpBench: &dpBench{tb: tb, e: e, tp: topo.New(tb), dir: tb.TempDir(), p: p.dp, cpu: dpLastCPU()}, trials: p.trials}
	b.k = nft.Kernel{NetNS: int(b.tp.Host.Handle())}
	if err := b.prepare(); err != nil {
		return nil, err
	}
	var errs []error
	fence, syncs := map[int][]float64{}, map[int][]float64{}
	for _, n := range cbSizes {
		ms, sy, err := b.fenceTimes(n)
		if err != nil {
			log.Printf("containers: fence time with %d containers: %v", n, err)
			errs = append(errs, fmt.Errorf("fence time with %d containers: %w", n, err))
			if err := b.teardown(); err != nil {
				return nil, errors.Join(append(errs, err)...)
			}
			continue
		}
		fence[n], syncs[n] = ms, sy
		log.Printf("containers: %s on the network: fence time of a new one p50 %.1f ms, p99 %.1f ms (%d trials: %s)",
			cbName(dpConfig{cbFilterContainers, n}), percentile(ms, 50), percentile(ms, 99), len(ms), fmtList(ms, 1))
	}

	cs := []dpConfig{{dpFilterNone, 0}}
	for _, n := range cbSizes {
		cs = append(cs, dpConfig{cbFilterContainers, n})
	}
	log.Printf("containers: data path %s -> %s -> Host -> Inet %s; %d rounds of iperf3 -t %d and %d 1-byte TCP exchanges (at most %v) per run, on CPU %d; a run of the network layer alone before and after each",
		topo.CtrIP4, topo.BridgeName, topo.InetIP4, b.p.rounds, b.p.seconds, b.p.exchanges, b.p.rrLimit, b.cpu)
	var runs []dpMeasurement
	checked := map[dpConfig]bool{}
	for r := range b.p.rounds {
		for _, c := range dpRoundOrder(cs, r) {
			if c.filter == dpFilterNone && len(runs) > 0 && runs[len(runs)-1].c == c {
				continue // the previous round ended with a baseline run
			}
			m, err := b.measureRun(c, r, !checked[c])
			if err != nil {
				log.Printf("containers: %s: %v", cbName(c), err)
				errs = append(errs, fmt.Errorf("%s: %w", cbName(c), err))
				if err := b.teardown(); err != nil {
					return nil, errors.Join(append(errs, err)...)
				}
				continue
			}
			checked[c] = true
			runs = append(runs, m)
		}
	}
	res := cbResults(cs, runs, fence, syncs)
	for i, x := range res {
		ratios, rrRatios := dpRatios(runs, cs[i])
		log.Printf("containers: %-26s %6.2f Gbps  ratio %.3f   rr p50 %6.1f µs  p99 %7.1f µs  ratio %.3f   (ratios %s; rr ratios %s)",
			cbName(cs[i]), x.Gbps, x.Ratio, x.RRP50US, x.RRP99US, x.RRRatio, fmtList(ratios, 2), fmtList(rrRatios, 2))
	}
	return res, errors.Join(errs...)
}

// cbResults puts the data path results of cs and the fence times of each
// size with the daemon's sync times, together, the baseline (Containers 0)
// first.
func cbResults(cs []dpConfig, runs []dpMeasurement, fence, syncs map[int][]float64) []ContainersResult {
	var out []ContainersResult
	for i, d := range dpResults(cs, runs) {
		x := ContainersResult{Gbps: d.Gbps, Ratio: d.Ratio, RRP50US: d.RRP50US, RRP99US: d.RRP99US, RRRatio: d.RRRatio}
		if cs[i].filter == cbFilterContainers {
			x.Containers = cs[i].prefixes
			if ms := fence[x.Containers]; len(ms) > 0 {
				x.FenceP50MS, x.FenceP99MS, x.FenceTrials = percentile(ms, 50), percentile(ms, 99), len(ms)
			}
			if sy := syncs[x.Containers]; len(sy) > 0 {
				x.SyncP50MS, x.SyncP99MS = percentile(sy, 50), percentile(sy, 99)
			}
		}
		out = append(out, x)
	}
	return out
}

// cbName names a configuration in the log.
func cbName(c dpConfig) string {
	if c.filter == dpFilterNone {
		return "network layer only"
	}
	if c.prefixes == 1 {
		return "1 container"
	}
	return fmt.Sprintf("%d containers", c.prefixes)
}

func fmtList(xs []float64, prec int) string {
	var ss []string
	for _, x := range xs {
		ss = append(ss, fmt.Sprintf("%.*f", prec, x))
	}
	return strings.Join(ss, " ")
}

// prepare writes the policies, starts the fake Docker API with the
// network, routes 10.0.0.0/8 from Host to Inet with the probe address on
// Inet, starts the servers, and checks that Host has no ruleset.
func (b *cbBench) prepare() error {
	b.resolv = filepath.Join(b.dir, "resolv.conf")
	b.with, b.without = filepath.Join(b.dir, "containers.yaml"), filepath.Join(b.dir, "network.yaml")
	for f, text := range map[string]string{b.resolv: "nameserver " + topo.LANDNS4 + "\n", b.with: cbPolicy(true), b.without: cbPolicy(false)} {
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			return err
		}
	}
	b.fake = harness.StartDocker(b.tb, filepath.Join(b.dir, "docker.sock"))
	b.fake.Set([]harness.Network{{Name: cbNetwork, Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}})
	b.tp.Host.Run(b.tb, "ip", "route", "add", "10.0.0.0/8", "via", topo.InetIP4, "dev", topo.WANIf)
	b.tp.Inet.Run(b.tb, "ip", "addr", "add", cbProbe+"/32", "dev", "lo")
	f := strings.Fields(b.tp.Ctr.Run(b.tb, "ip", "-o", "link", "show", "eth0"))
	if i := slices.Index(f, "link/ether"); i >= 0 && i+1 < len(f) {
		b.clientMAC = f[i+1]
	} else {
		return fmt.Errorf("no MAC of the client's eth0 in %q", f)
	}
	if err := b.startIperf(); err != nil {
		return err
	}
	if err := b.startEcho(); err != nil {
		return err
	}
	return b.emptyRuleset()
}

// df runs the dockerfence binary in Host, against the fake Docker API.
func (b *cbBench) df(limit time.Duration, args ...string) (string, error) {
	full := append([]string{"--docker-host", b.fake.URL,
		"--socket", filepath.Join(b.dir, "df.sock"), "--resolv-conf", b.resolv}, args...)
	return b.tp.Host.TryWithin(limit, b.e.binary, full...)
}

// teardown deletes the table, if there is one, and checks that Host has no
// ruleset left.
func (b *cbBench) teardown() error {
	if strings.Contains(b.ruleset(), "table inet dockerfence") {
		if out, err := b.df(time.Minute, "delete"); err != nil {
			return fmt.Errorf("delete: %w: %s", err, out)
		}
	}
	return b.emptyRuleset()
}

// mapped returns the addresses in the container layer's IPv4 map of
// br-test, nil if there is no such map.
func (b *cbBench) mapped() (map[netip.Addr]bool, error) {
	st, err := b.k.Read("dockerfence")
	if err != nil || st == nil {
		return nil, err
	}
	for _, s := range st.Sets {
		if s.Name == cbMap4 {
			out := map[netip.Addr]bool{}
			for _, el := range s.VMap {
				out[el.Addr] = true
			}
			return out, nil
		}
	}
	return nil, nil
}

// stamped is a table change and when the benchmark heard of it.
type stamped struct {
	at time.Time
	ch nft.Change
}

// fenceTimes runs dockerfence run with n containers listed and times,
// trial after trial, how long a new container takes from its event to its
// address in the container layer's map, and returns those times and the
// daemon's own time for each sync of the trials, in milliseconds.
func (b *cbBench) fenceTimes(n int) (fence, syncs []float64, err error) {
	ctrs := cbContainers(n, b.clientMAC)
	b.fake.SetContainers(ctrs)
	logf, err := os.Create(filepath.Join(b.dir, "run.log"))
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	cmd := b.tp.Host.Command(b.e.binary, "run", "-c", b.with, "--resolv-conf", b.resolv,
		"--docker-host", b.fake.URL, "--socket", filepath.Join(b.dir, "df.sock"), "--log-level", "info")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck // stopped below
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // nsenter execs: this is the daemon's pid
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill() //nolint:errcheck // it may have exited
			<-exited
		}
		if err := b.teardown(); err != nil {
			log.Printf("containers: after the daemon: %v", err)
		}
	}()
	settled := func(want int) func() bool {
		return func() bool { m, _ := b.mapped(); return len(m) == want }
	}
	if _, err := waitForEvery(60*time.Second, 50*time.Millisecond, settled(n)); err != nil {
		return nil, nil, fmt.Errorf("the daemon did not map %d containers: %w (%v)", n, err, logTail(b.dir))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	raw, changes := make(chan nft.Change, 1024), make(chan stamped, 1024)
	ready, watched := make(chan struct{}), make(chan error, 1)
	go func() { watched <- b.k.Watch(ctx, "dockerfence", raw, func() { close(ready) }); close(raw) }()
	go func() {
		for c := range raw {
			changes <- stamped{time.Now(), c}
		}
	}()
	select {
	case <-ready:
	case err := <-watched:
		return nil, nil, fmt.Errorf("watch the table: %v", err)
	}
	time.Sleep(time.Second) // let the daemon settle
	before := len(cbSyncTimes(b.dir))
	for i := range b.trials {
		addr := netip.AddrFrom4([4]byte{172, 20, 200, byte(1 + i%250)})
		for len(changes) > 0 {
			<-changes
		}
		start := time.Now()
		b.fake.SetContainers(append(ctrs[:n:n], cbWorker(100000+i, addr.String())))
		took, err := b.awaitMapped(changes, addr, start)
		if err != nil {
			return nil, nil, fmt.Errorf("trial %d: %w (%v)", i+1, err, logTail(b.dir))
		}
		fence = append(fence, ms(took))
		b.fake.SetContainers(ctrs)
		if _, err := waitForEvery(10*time.Second, 20*time.Millisecond, settled(n)); err != nil {
			return nil, nil, fmt.Errorf("trial %d: the container did not leave the map: %w", i+1, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if all := cbSyncTimes(b.dir); len(all) > before {
		syncs = all[before:]
		log.Printf("containers: %s on the network: the daemon's syncs during the trials (adding and removing, debounce not included) took p50 %.1f ms, p99 %.1f ms (%d)",
			cbName(dpConfig{cbFilterContainers, n}), percentile(syncs, 50), percentile(syncs, 99), len(syncs))
	}
	return fence, syncs, nil
}

// cbSyncTimes returns how long each sync the daemon logged took ("table
// applied ... took=D"), in milliseconds.
func cbSyncTimes(dir string) []float64 {
	data, _ := os.ReadFile(filepath.Join(dir, "run.log"))
	var out []float64
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.Contains(l, `msg="table applied"`) {
			continue
		}
		_, v, ok := strings.Cut(l, " took=")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, " ")
		if d, err := time.ParseDuration(v); err == nil {
			out = append(out, ms(d))
		}
	}
	return out
}

// awaitMapped waits for the table changes after start until a read of the
// map holds addr, and returns the time from start to that change.
func (b *cbBench) awaitMapped(changes <-chan stamped, addr netip.Addr, start time.Time) (time.Duration, error) {
	limit := time.After(10 * time.Second)
	for {
		select {
		case c, ok := <-changes:
			if !ok {
				return 0, errors.New("the watch of the table ended")
			}
			m, err := b.mapped()
			if err != nil {
				return 0, err
			}
			if m[addr] {
				return c.at.Sub(start), nil
			}
		case <-limit:
			return 0, fmt.Errorf("%s not in %s within 10 s", addr, cbMap4)
		}
	}
}

// waitForEvery polls cond every step until it holds or limit has passed.
func waitForEvery(limit, step time.Duration, cond func() bool) (time.Duration, error) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("not within %v", limit)
		}
		time.Sleep(step)
	}
}

// measureRun applies c's policy from the fake Docker's list, checks it if
// check is set, measures throughput and request/response latency, and
// deletes the table again.
func (b *cbBench) measureRun(c dpConfig, round int, check bool) (dpMeasurement, error) {
	m := dpMeasurement{c: c}
	n, pol := 1000, b.without // the baseline: the same containers, no sections
	if c.filter == cbFilterContainers {
		n, pol = c.prefixes, b.with
	}
	b.fake.SetContainers(cbContainers(n, b.clientMAC))
	start := time.Now()
	if out, err := b.df(2*time.Minute, "apply", "-c", pol); err != nil {
		return m, fmt.Errorf("apply: %w: %s", err, out)
	}
	setupTook := time.Since(start)
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
	if err := b.teardown(); err != nil {
		return m, err
	}
	m.gbps, m.rrUS = gbps, rr
	log.Printf("containers: round %d/%d %-22s %8.2f Gbps (%d retransmits)  rr p50 %6.1f µs  p99 %7.1f µs (%d exchanges)  applied in %v",
		round+1, b.p.rounds, cbName(c), gbps, retr, percentile(rr, 50), percentile(rr, 99), len(rr), setupTook.Round(time.Millisecond))
	return m, nil
}

// sanity checks that c's table is what it should be: with containers, the
// map holds the n containers, the benchmark's traffic flows and the probe,
// which the client's section does not allow, is refused; without, there
// is no container layer and the probe answers.
func (b *cbBench) sanity(c dpConfig) error {
	m, err := b.mapped()
	if err != nil {
		return err
	}
	want, wantMapped := "ok", 0
	if c.filter == cbFilterContainers {
		want, wantMapped = "refused", c.prefixes
		if len(m) != wantMapped || !m[netip.MustParseAddr(topo.CtrIP4)] {
			return fmt.Errorf("sanity: %s holds %d addresses (the client's: %v), want %d", cbMap4, len(m), m[netip.MustParseAddr(topo.CtrIP4)], wantMapped)
		}
	} else if m != nil {
		return fmt.Errorf("sanity: the network layer alone has a container map %s of %d addresses", cbMap4, len(m))
	}
	echo := fmt.Sprintf("%s:%d", topo.InetIP4, dpEchoPort)
	if got := harness.DialOutcome(b.tp.Ctr, echo, 2*time.Second); got != "ok" {
		return fmt.Errorf("sanity: %s from Ctr: %s, want ok", echo, got)
	}
	probe := fmt.Sprintf("%s:%d", cbProbe, dpEchoPort)
	if got := harness.DialOutcome(b.tp.Ctr, probe, 1500*time.Millisecond); got != want {
		return fmt.Errorf("sanity: %s from Ctr: %s, want %s", probe, got, want)
	}
	log.Printf("containers: %s: checked: %d addresses mapped, %s answers, %s is %s", cbName(c), len(m), echo, probe, want)
	return nil
}

// fakeID is a container ID as Docker makes them: 64 hex digits that look
// random, so that no two share their first 12 (the short ID).
func fakeID(i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprint("bench-container-", i)))
	return hex.EncodeToString(sum[:])
}
