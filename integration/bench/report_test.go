package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	return &Report{
		Apply: []ApplyResult{
			{Tool: "dockerfence", Prefixes: 1000, Networks: 1, MedianMS: 10},
			{Tool: "nft -f", Prefixes: 1000, Networks: 1, MedianMS: 12},
			{Tool: "iptables-restore", Prefixes: 1000, Networks: 1, MedianMS: 30},
			{Tool: "iptables per rule", Prefixes: 1000, Networks: 1, MedianMS: 9000},
			{Tool: "dockerfence", Prefixes: 100000, Networks: 1, MedianMS: 1200},
			{Tool: "nft -f", Prefixes: 100000, Networks: 1, MedianMS: 1100},
			{Tool: "iptables per rule", Prefixes: 100000, Networks: 1, MedianMS: 900000, Extrapolated: true},
		},
		Datapath: []DatapathResult{
			{Filter: "none", Gbps: 20, Ratio: 1},
			{Filter: "dockerfence", Prefixes: 100000, Gbps: 19.5, Ratio: 0.975},
			{Filter: "iptables linear", Prefixes: 100000, Gbps: 0.5, Ratio: 0.025},
		},
		Reaction: Reaction{BridgeP50: 70, BridgeP99: 250, HealP50: 20, HealP99: 40, Trials: 30},
		Daemon:   Footprint{IdleRSSMB: 18},
		Started:  time.Date(2026, 11, 21, 19, 0, 0, 0, time.UTC),
	}
}

func TestTargets(t *testing.T) {
	got := map[string]bool{}
	for _, tg := range targets(sampleReport()) {
		got[tg.Goal] = tg.Met
	}
	want := map[string]bool{
		"dockerfence apply no slower than nft -f (1000 prefixes, 1 network)":   true,
		"dockerfence apply no slower than nft -f (100000 prefixes, 1 network)": false,
		"at least 50× faster than per-rule iptables at 1k rules (1 network)":   true,
		"100k prefixes applied in under 1 s (1 network)":                       false,
		"data path at 100k prefixes at least 95 % of baseline throughput":      true,
		"reaction p99 under 200 ms: bridge appears":                            false,
		"reaction p99 under 200 ms: table deleted":                             true,
		"daemon idle RSS under 30 MB":                                          true,
	}
	for goal, met := range want {
		if g, ok := got[goal]; !ok || g != met {
			t.Errorf("target %q: met %v (present %v), want %v", goal, g, ok, met)
		}
	}
	if len(got) != len(want) {
		t.Errorf("targets: %v", got)
	}
}

func TestWriteReport(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeReport(sampleReport(), md, filepath.Join(dir, "docs", "bench")); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| 1000 | 1 | 10.0 | 12.0 | 30.0 | 9000 | 1.2× | 900.0× |",
		"| 100000 | 1 | 1200 | 1100 | – | 900000* | 0.9× | 750.0× |",
		"| dockerfence | 100000 | 19.50 | 0.975 |",
		"![apply](docs/bench/apply.png)",
		"![datapath](docs/bench/datapath.png)",
		"| reaction p99 under 200 ms: bridge appears | 250.0 ms | **no** |",
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, text)
		}
	}
	for _, png := range []string{"apply.png", "datapath.png"} {
		fi, err := os.Stat(filepath.Join(dir, "docs", "bench", png))
		if err != nil || fi.Size() < 1000 {
			t.Errorf("%s: %v %v", png, fi, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	if m := median(xs); m != 3 {
		t.Errorf("median = %v", m)
	}
	if p := percentile(xs, 99); p != 5 {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(xs, 0); p != 1 {
		t.Errorf("p0 = %v", p)
	}
	if xs[0] != 5 {
		t.Error("percentile sorted its input")
	}
}
