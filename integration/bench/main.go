// Command bench measures dockerfence against nft -f, iptables and no filter,
// side by side in one run, only inside network namespaces it creates:
//
//	go run ./integration/bench [-quick] -out FILE.json [-md BENCHMARKS.md -plots DIR]
//
// It needs root, nft, iptables (iptables-nft), iperf3 and ip. It measures
// apply latency (1k, 10k and 100k prefixes over 1 and 50 networks), the data
// path (TCP throughput and request/response latency through a fenced host,
// as ratios to no filter in the same run), the reaction time of
// dockerfence run (a bridge appearing, an external nft delete table), the
// daemon's memory and CPU, the container layer with 1, 100 and 1,000
// containers (the fence time of a new one, the data path), and the data
// path through a published port with 0, 1k and 100k ingress source
// prefixes, and the DNS query latency through a fenced network with and
// without names. See BENCHMARKS.md for the method.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Report is the JSON the benchmark writes. The fields the issue asks for
// come first; the others add detail.
type Report struct {
	Apply    []ApplyResult    `json:"apply"`
	Datapath []DatapathResult `json:"datapath"`
	Reaction Reaction         `json:"reaction_ms"`
	Daemon   Footprint        `json:"daemon"`
	// Containers is the container layer with 1, 100 and 1,000 classified
	// containers, after its baseline (Containers 0).
	Containers []ContainersResult `json:"containers,omitempty"`
	// Ingress is the data path through a published port, from outside
	// into a container: Filter is "none" (Docker's DNAT and filter only,
	// the baseline), "dockerfence, no ingress rules" or "dockerfence
	// ingress", whose Prefixes are the prefixes its allow rule lists
	// besides the client's address.
	Ingress []DatapathResult `json:"ingress,omitempty"`
	// Names is the DNS query latency through a fenced network with and
	// without names, and the answer of a CDN.
	Names   *NamesReport `json:"names,omitempty"`
	Machine Machine      `json:"machine"`
	Quick   bool         `json:"quick"`
	Started time.Time    `json:"started"`
	TookS   float64      `json:"took_s"`
	// Errors lists the sections that failed; their results are missing.
	Errors []string `json:"errors,omitempty"`
}

// ApplyResult is the apply latency of one tool for one size.
type ApplyResult struct {
	// Tool is "dockerfence", "nft -f", "iptables-restore" or
	// "iptables per rule".
	Tool     string  `json:"tool"`
	Prefixes int     `json:"prefixes"`
	Networks int     `json:"networks"`
	MedianMS float64 `json:"median_ms"`
	// RunsMS are the single runs; empty when Extrapolated.
	RunsMS []float64 `json:"runs_ms,omitempty"`
	// Extrapolated is set when MedianMS is extrapolated from smaller sizes
	// (iptables per rule beyond 1k rules), not measured.
	Extrapolated bool `json:"extrapolated,omitempty"`
	// Verified is set when probe packets showed the tool's ruleset denying
	// and allowing as the others do before it was timed.
	Verified bool `json:"verified"`
}

// DatapathResult is the data-path cost of one filter at one size.
type DatapathResult struct {
	// Filter is "none", "dockerfence" or "iptables linear".
	Filter   string  `json:"filter"`
	Prefixes int     `json:"prefixes"`
	Gbps     float64 `json:"gbps"`
	// Ratio is throughput relative to no filter in the same run: the median,
	// over the filter's runs, of each run's Gbps over the mean of the two
	// baseline runs (filter none) next to it, so that the machine's drift
	// cancels out.
	Ratio float64 `json:"ratio"`
	// RRP50US and RRP99US are request/response round-trip percentiles in
	// microseconds, RRRatio the p50 relative to the baseline's, paired the
	// same way (above 1 is slower).
	RRP50US float64 `json:"rr_p50_us"`
	RRP99US float64 `json:"rr_p99_us"`
	RRRatio float64 `json:"rr_ratio"`
}

// Reaction is how fast dockerfence run follows, in milliseconds.
type Reaction struct {
	BridgeP50 float64 `json:"bridge_p50"`
	BridgeP99 float64 `json:"bridge_p99"`
	HealP50   float64 `json:"heal_p50"`
	HealP99   float64 `json:"heal_p99"`
	// DeleteRefused is set when the kernel refused to delete the table
	// (EPERM): the daemon owns it (Linux 6.9+), so there is nothing to
	// heal, and HealP50/HealP99 are not measured.
	DeleteRefused bool `json:"delete_refused,omitempty"`
	Trials        int  `json:"trials"`
}

// ContainersResult is the container layer with a number of classified
// containers on the network: the fence time of one more, and the data path
// against the same network without container rules. Containers 0 is that
// baseline (the policy without its containers: section), which has no
// fence time, and whose ratios are 1.
type ContainersResult struct {
	Containers int `json:"containers"`
	// FenceP50MS and FenceP99MS are the time from a new container's
	// "network connect" event until its address is in the container
	// layer's map in the kernel, over FenceTrials trials.
	FenceP50MS  float64 `json:"fence_p50_ms,omitempty"`
	FenceP99MS  float64 `json:"fence_p99_ms,omitempty"`
	FenceTrials int     `json:"fence_trials,omitempty"`
	// SyncP50MS and SyncP99MS are the daemon's own time for the syncs of
	// those trials (adding and removing the container), as it logs them
	// ("table applied ... took="): the fence time without the debounce
	// and the event's way to the daemon.
	SyncP50MS float64 `json:"sync_p50_ms,omitempty"`
	SyncP99MS float64 `json:"sync_p99_ms,omitempty"`
	// Gbps, Ratio, RRP50US, RRP99US and RRRatio are as in DatapathResult,
	// the ratios to the baseline runs next to each run.
	Gbps    float64 `json:"gbps"`
	Ratio   float64 `json:"ratio"`
	RRP50US float64 `json:"rr_p50_us"`
	RRP99US float64 `json:"rr_p99_us"`
	RRRatio float64 `json:"rr_ratio"`
}

// Footprint is the daemon's memory and CPU.
type Footprint struct {
	IdleRSSMB   float64 `json:"idle_rss_mb"`
	BurstRSSMB  float64 `json:"burst_rss_mb"`
	IdleCPUPct  float64 `json:"idle_cpu_pct"`
	BurstCPUPct float64 `json:"burst_cpu_pct"`
	BurstEvents int     `json:"burst_events"`
	BurstS      float64 `json:"burst_s"`
}

// Machine describes where the numbers come from.
type Machine struct {
	Kernel   string `json:"kernel"`
	CPU      string `json:"cpu"`
	CPUs     int    `json:"cpus"`
	Go       string `json:"go"`
	Nft      string `json:"nft"`
	Iptables string `json:"iptables"`
	Iperf3   string `json:"iperf3"`
}

// env is what every section needs.
type env struct {
	// binary is the dockerfence binary built for this run; baseline, if
	// set, another one timed beside it.
	binary, baseline string
	quick            bool
	// runs is how many times each apply is timed (at least 5).
	runs int
	dir  string
}

func main() {
	quick := flag.Bool("quick", false, "smaller sizes and shorter runs (under 10 minutes on 2 cores)")
	out := flag.String("out", "", "write the JSON report to this file (required)")
	md := flag.String("md", "", "also write a Markdown report (BENCHMARKS.md) to this file")
	plots := flag.String("plots", "", "directory for the PNG plots (default: next to -md)")
	only := flag.String("only", "", "comma-separated sections to run: apply, datapath, containers, ingress, names, reaction (default all)")
	baseline := flag.String("baseline", "", "also time this dockerfence binary in the apply section, beside the one built now (e.g. one built from the commit before a change)")
	from := flag.String("from", "", "measure nothing: write -md and the plots from this JSON report of an earlier run")
	flag.Parse()
	log.SetFlags(log.Ltime)
	if *from != "" {
		if err := rewrite(*from, *md, *plots); err != nil {
			log.Fatal(err)
		}
		return
	}
	if *out == "" {
		log.Fatal("-out FILE.json is required")
	}
	if os.Geteuid() != 0 {
		log.Fatal("the benchmark needs root: it creates network namespaces (and only changes firewalls inside them)")
	}
	for _, tool := range []string{"ip", "nsenter", "nft", "iptables", "iptables-restore", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			log.Fatalf("%s is needed (apt-get install iproute2 util-linux nftables iptables iperf3): %v", tool, err)
		}
	}
	r := &Report{Quick: *quick, Started: time.Now(), Machine: machine()}
	dir, err := os.MkdirTemp("", "dfbench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	e := &env{binary: filepath.Join(dir, "dockerfence"), baseline: *baseline, quick: *quick, runs: 5, dir: dir}
	log.Printf("building dockerfence")
	if out, err := exec.Command("go", "build", "-o", e.binary, "./cmd/dockerfence").CombinedOutput(); err != nil {
		log.Fatalf("build dockerfence (run from the repository root): %v\n%s", err, out)
	}
	want := func(s string) bool { return *only == "" || strings.Contains(","+*only+",", ","+s+",") }
	if want("apply") {
		section(r, "apply", func(tb *benchTB) error {
			res, err := benchApply(tb, e)
			r.Apply = res
			return err
		})
	}
	if want("datapath") {
		section(r, "datapath", func(tb *benchTB) error {
			res, err := benchDatapath(tb, e)
			r.Datapath = res
			return err
		})
	}
	if want("containers") {
		section(r, "containers", func(tb *benchTB) error {
			res, err := benchContainers(tb, e)
			r.Containers = res
			return err
		})
	}
	if want("ingress") {
		section(r, "ingress", func(tb *benchTB) error {
			res, err := benchIngress(tb, e)
			r.Ingress = res
			return err
		})
	}
	if want("names") {
		section(r, "names", func(tb *benchTB) error {
			res, err := benchNames(tb, e)
			r.Names = res
			return err
		})
	}
	if want("reaction") {
		section(r, "reaction", func(tb *benchTB) error {
			var err error
			r.Reaction, r.Daemon, err = benchReaction(tb, e)
			return err
		})
	}
	r.TookS = time.Since(r.Started).Seconds()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s (%.0f s)", *out, r.TookS)
	if *md != "" {
		if err := writeReport(r, *md, plotDir(*md, *plots)); err != nil {
			log.Fatal(err)
		}
		log.Printf("wrote %s and the plots in %s", *md, plotDir(*md, *plots))
	}
	if len(r.Errors) > 0 {
		log.Printf("sections failed: %s", strings.Join(r.Errors, "; "))
		os.Exit(1)
	}
}

// section runs one part of the benchmark with its own namespaces, which are
// removed whatever happens.
func section(r *Report, name string, f func(tb *benchTB) error) {
	start := time.Now()
	log.Printf("== %s", name)
	tb := &benchTB{}
	err := func() (err error) {
		defer func() {
			if v := recover(); v != nil {
				var fe fatalError
				if e, ok := v.(fatalError); ok {
					fe = e
				} else {
					panic(v)
				}
				err = fe
			}
		}()
		return f(tb)
	}()
	tb.RunCleanups()
	if err == nil && tb.Failed() {
		err = errors.New("errors were logged")
	}
	if err != nil {
		log.Printf("%s failed: %v", name, err)
		r.Errors = append(r.Errors, fmt.Sprintf("%s: %v", name, err))
		return
	}
	log.Printf("== %s done in %s", name, time.Since(start).Round(time.Second))
}

// machine reads the kernel, CPU and tool versions.
func machine() Machine {
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	m := Machine{Kernel: first("uname", "-r"), CPUs: runtime.NumCPU(), Go: runtime.Version(),
		Nft: first("nft", "--version"), Iptables: first("iptables", "--version"), Iperf3: first("iperf3", "--version")}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// plotDir is -plots, or docs/bench next to the Markdown report.
func plotDir(md, plots string) string {
	if plots != "" {
		return plots
	}
	return filepath.Join(filepath.Dir(md), "docs", "bench")
}

// rewrite writes the Markdown report and the plots of an earlier run's JSON.
func rewrite(from, md, plots string) error {
	if md == "" {
		return errors.New("-from needs -md FILE")
	}
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	return writeReport(&r, md, plotDir(md, plots))
}
