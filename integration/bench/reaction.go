package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nft"
	"golang.org/x/sys/unix"
)

// reactionPolicy fences the benchmark's networks by name, with no "*"
// section: a new bridge is fenced only once the daemon has heard of it.
const reactionPolicy = `version: 1
networks:
  - match: {name: "bench*"}
    egress:
      - allow: self
      - deny: 192.168.0.0/16
        comment: LAN
    egress_default: allow
`

// reactionTrials is how many times each reaction is timed.
const reactionTrials = 30

// benchReaction starts dockerfence run in a namespace, following a fake
// Docker API, and times (1) a bridge appearing with Docker's "network
// create" event until the bridge has its own chain in the kernel and (2) an
// external deletion of the table until the table is back. It then measures
// the daemon's memory and CPU at idle and during a burst of 100 network
// events.
func benchReaction(tb *benchTB, e *env) (Reaction, Footprint, error) {
	var r Reaction
	var fp Footprint
	tp := topo.New(tb)
	dir := tb.TempDir()
	sock := filepath.Join(dir, "docker.sock")
	fake := harness.StartDocker(tb, sock)
	pol := filepath.Join(dir, "policy.yaml")
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(pol, []byte(reactionPolicy), 0o644); err != nil {
		return r, fp, err
	}
	if err := os.WriteFile(resolv, nil, 0o644); err != nil {
		return r, fp, err
	}
	cmd := tp.Host.Command(e.binary, "run", "-c", pol, "--resolv-conf", resolv,
		"--docker-host", "unix://"+sock, "--socket", filepath.Join(dir, "df.sock"), "--log-level", "warn")
	logf, err := os.Create(filepath.Join(dir, "run.log"))
	if err != nil {
		return r, fp, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return r, fp, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // nsenter execs: this is the daemon's pid
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	k := nft.Kernel{NetNS: int(tp.Host.Handle())}
	if _, err := waitFor(10*time.Second, func() bool { st, _ := k.Read("dockerfence"); return st != nil }); err != nil {
		return r, fp, fmt.Errorf("dockerfence run did not apply its table: %w", logTail(dir))
	}

	// The daemon's footprint at idle, before any trial.
	time.Sleep(2 * time.Second)
	idleCPU, idleRSS, err := sample(cmd.Process.Pid, 5*time.Second, nil)
	if err != nil {
		return r, fp, err
	}
	fp.IdleCPUPct, fp.IdleRSSMB = idleCPU, idleRSS

	var bridge []float64
	for i := range reactionTrials {
		name, br := fmt.Sprintf("bench%d", i), fmt.Sprintf("br-r%d", i)
		start := time.Now()
		if err := harness.AddBridge(tp.Host, br, fmt.Sprintf("10.%d.%d.1/24", 100+i/250, i%250)); err != nil {
			return r, fp, err
		}
		fake.Add(harness.Network{Name: name, Bridge: br, Subnets: []string{fmt.Sprintf("10.%d.%d.0/24", 100+i/250, i%250)}})
		if _, err := waitFor(5*time.Second, func() bool { return harness.Mapped(k, br) }); err != nil {
			return r, fp, fmt.Errorf("bridge %s not fenced: %w (%v)", br, err, logTail(dir))
		}
		bridge = append(bridge, ms(time.Since(start)))
		time.Sleep(100 * time.Millisecond) // let the daemon settle between trials
	}
	r.BridgeP50, r.BridgeP99 = percentile(bridge, 50), percentile(bridge, 99)
	log.Printf("reaction: bridge appears -> own chain in the kernel: p50 %.1f ms, p99 %.1f ms (%d trials)", r.BridgeP50, r.BridgeP99, len(bridge))

	var heal []float64
	for range reactionTrials {
		start := time.Now()
		if _, err := k.Delete("dockerfence"); errors.Is(err, unix.EPERM) {
			// The daemon owns the table: the kernel refuses every
			// other process's delete, so there is nothing to heal.
			r.DeleteRefused = true
			log.Printf("reaction: nft delete table -> refused by the kernel (the daemon owns the table): %v", err)
			break
		} else if err != nil {
			return r, fp, err
		}
		if _, err := waitFor(5*time.Second, func() bool { return harness.Mapped(k, "br-r0") }); err != nil {
			return r, fp, fmt.Errorf("table not healed: %w (%v)", err, logTail(dir))
		}
		heal = append(heal, ms(time.Since(start)))
		time.Sleep(100 * time.Millisecond)
	}
	r.Trials = reactionTrials
	if !r.DeleteRefused {
		r.HealP50, r.HealP99 = percentile(heal, 50), percentile(heal, 99)
		log.Printf("reaction: nft delete table -> table back: p50 %.1f ms, p99 %.1f ms (%d trials)", r.HealP50, r.HealP99, len(heal))
	}

	// A burst of 100 network events: 50 networks created, then removed.
	burstStart := time.Now()
	cpu, rss, err := sample(cmd.Process.Pid, 0, func() error {
		for i := range 50 {
			br := fmt.Sprintf("br-b%d", i)
			if err := harness.AddBridge(tp.Host, br, fmt.Sprintf("10.200.%d.1/24", i)); err != nil {
				return err
			}
			fake.Add(harness.Network{Name: fmt.Sprintf("benchburst%d", i), Bridge: br, Subnets: []string{fmt.Sprintf("10.200.%d.0/24", i)}})
		}
		if _, err := waitFor(10*time.Second, func() bool { return harness.Mapped(k, "br-b49") }); err != nil {
			return fmt.Errorf("burst: br-b49 not fenced: %w", err)
		}
		for i := range 50 {
			fake.Remove(fmt.Sprintf("benchburst%d", i))
			if err := harness.DelBridge(tp.Host, fmt.Sprintf("br-b%d", i)); err != nil {
				return err
			}
		}
		_, err := waitFor(10*time.Second, func() bool { return !harness.Mapped(k, "br-b0") && !harness.Mapped(k, "br-b49") })
		return err
	})
	if err != nil {
		return r, fp, err
	}
	fp.BurstCPUPct, fp.BurstRSSMB, fp.BurstEvents, fp.BurstS = cpu, rss, 100, time.Since(burstStart).Seconds()
	log.Printf("daemon: idle %.1f MB RSS, %.2f%% CPU; burst of 100 events: %.1f MB RSS at most, %.1f%% CPU over %.2f s",
		fp.IdleRSSMB, fp.IdleCPUPct, fp.BurstRSSMB, fp.BurstCPUPct, fp.BurstS)
	return r, fp, nil
}

// waitFor polls cond every 2 ms and returns how long it took to hold. (A
// dump of the table takes the nf_tables lock, so polling much faster would
// slow down the daemon it measures.)
func waitFor(limit time.Duration, cond func() bool) (time.Duration, error) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("not within %v", limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sample measures a process's CPU (percent of one core) and its largest
// RSS (MB, sampled every 10 ms) over d, or while work runs if work is not
// nil.
func sample(pid int, d time.Duration, work func() error) (cpuPct, maxRSSMB float64, err error) {
	t0, start := cpuTicks(pid), time.Now()
	done := make(chan error, 1)
	if work != nil {
		go func() { done <- work() }()
	} else {
		go func() { time.Sleep(d); done <- nil }()
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if r := rssMB(pid); r > maxRSSMB {
			maxRSSMB = r
		}
		select {
		case err := <-done:
			if err != nil {
				return 0, 0, err
			}
			elapsed := time.Since(start).Seconds()
			return float64(cpuTicks(pid)-t0) / clockTicks / elapsed * 100, maxRSSMB, nil
		case <-tick.C:
		}
	}
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times.
const clockTicks = 100

// cpuTicks returns the user plus system time of a process, in clock ticks.
func cpuTicks(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields count from after its ')'.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return u + sy
}

// rssMB returns a process's resident set size in MB.
func rssMB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// logTail returns the end of the daemon's log as an error, for messages.
func logTail(dir string) error {
	data, _ := os.ReadFile(filepath.Join(dir, "run.log"))
	s := string(data)
	if len(s) > 2000 {
		s = s[len(s)-2000:]
	}
	return fmt.Errorf("daemon log: %s", strings.TrimSpace(s))
}
