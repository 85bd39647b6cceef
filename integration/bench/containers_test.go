package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/policy"
)

func TestCBPolicy(t *testing.T) {
	for _, with := range []bool{false, true} {
		p, err := policy.Parse("bench.yaml", []byte(cbPolicy(with)), policy.Options{})
		if err != nil {
			t.Fatalf("cbPolicy(%v) does not parse: %v\n%s", with, err, cbPolicy(with))
		}
		if got := len(p.Containers); (got > 0) != with {
			t.Errorf("cbPolicy(%v) has %d container sections", with, got)
		}
	}
	if !strings.HasPrefix(cbPolicy(true), cbPolicy(false)) {
		t.Error("the policy with containers is not the network layer's plus a containers: section")
	}
}

func TestCBContainers(t *testing.T) {
	cs := cbContainers(1000, "")
	if len(cs) != 1000 {
		t.Fatalf("%d containers, want 1000", len(cs))
	}
	subnet := netip.MustParsePrefix("172.20.0.0/16")
	ids, addrs := map[string]bool{}, map[string]bool{}
	for i, c := range cs {
		a := netip.MustParseAddr(c.Endpoints[0].IPv4)
		if !subnet.Contains(a) || ids[c.ID] || addrs[a.String()] || len(c.ID) != 64 {
			t.Fatalf("container %d: %+v: want a unique 64-digit ID and a unique address in %s", i, c, subnet)
		}
		ids[c.ID], addrs[a.String()] = true, true
		if (i == 0) != (a.String() == topo.CtrIP4) || (i == 0) != (c.Labels["role"] == "bench-client") {
			t.Errorf("container %d: %+v: only the first is the client, at %s", i, c, topo.CtrIP4)
		}
	}
	if a := cs[999].Endpoints[0].IPv4; a != "172.20.4.249" {
		t.Errorf("the last fake is at %s", a)
	}
	if len(cbContainers(1, "")) != 1 {
		t.Error(`cbContainers(1, "") is not the client alone`)
	}
}

func TestCBResults(t *testing.T) {
	base, c1 := dpConfig{dpFilterNone, 0}, dpConfig{cbFilterContainers, 1000}
	runs := []dpMeasurement{
		{c: base, gbps: 10, rrUS: []float64{50}},
		{c: c1, gbps: 9, rrUS: []float64{60}},
		{c: base, gbps: 10, rrUS: []float64{50}},
	}
	got := cbResults([]dpConfig{base, c1}, runs, map[int][]float64{1000: {80, 60, 100}}, map[int][]float64{1000: {30, 20, 10}})
	if len(got) != 2 || got[0].Containers != 0 || got[0].Ratio != 1 || got[0].FenceTrials != 0 {
		t.Fatalf("baseline: %+v", got)
	}
	want := ContainersResult{Containers: 1000, FenceP50MS: 80, FenceP99MS: 100, FenceTrials: 3, SyncP50MS: 20, SyncP99MS: 30, Gbps: 9, Ratio: 0.9, RRP50US: 60, RRP99US: 60, RRRatio: 1.2}
	if g := got[1]; g.Containers != want.Containers || g.FenceP50MS != want.FenceP50MS || g.FenceP99MS != want.FenceP99MS ||
		g.FenceTrials != want.FenceTrials || g.SyncP50MS != want.SyncP50MS || g.SyncP99MS != want.SyncP99MS || g.Gbps != want.Gbps || abs(g.Ratio-want.Ratio) > 1e-9 || abs(g.RRRatio-want.RRRatio) > 1e-9 {
		t.Errorf("cbResults = %+v, want %+v", g, want)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func containersReport() *Report {
	r := sampleReport()
	r.Containers = []ContainersResult{
		{Gbps: 20, Ratio: 1, RRP50US: 50, RRP99US: 80, RRRatio: 1},
		{Containers: 1, FenceP50MS: 55, FenceP99MS: 60, FenceTrials: 20, SyncP50MS: 3, SyncP99MS: 5, Gbps: 19.8, Ratio: 0.99, RRP50US: 51, RRP99US: 81, RRRatio: 1.02},
		{Containers: 1000, FenceP50MS: 150, FenceP99MS: 240, FenceTrials: 20, SyncP50MS: 100, SyncP99MS: 180, Gbps: 18, Ratio: 0.9, RRP50US: 60, RRP99US: 90, RRRatio: 1.2},
	}
	return r
}

func TestContainersTargets(t *testing.T) {
	got := map[string]bool{}
	for _, tg := range targets(containersReport()) {
		got[tg.Goal] = tg.Met
	}
	for goal, met := range map[string]bool{
		"fence time of a new container p99 under 200 ms (1 container on the network)":           true,
		"fence time of a new container p99 under 200 ms (1000 containers on the network)":       false,
		"data path with 1 container's rules at least 95 % of the network layer's throughput":    true,
		"data path with 1000 containers' rules at least 95 % of the network layer's throughput": false,
	} {
		if g, ok := got[goal]; !ok || g != met {
			t.Errorf("target %q: met %v (present %v), want %v", goal, g, ok, met)
		}
	}
	for goal := range got {
		if strings.Contains(goal, "(0 ") || strings.Contains(goal, "with 0 ") {
			t.Errorf("a target for the baseline: %q", goal)
		}
	}
}

func TestWriteReportContainers(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeReport(containersReport(), md, filepath.Join(dir, "docs", "bench")); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## Containers\n",
		"| containers | fence p50 (ms) | fence p99 (ms) | daemon sync p50 / p99 (ms) | Gbit/s | throughput ratio | RR p50 (µs) | RR p99 (µs) | RR p50 ratio |",
		"| network layer only | – | – | – | 20.00 | 1.000 | 50.0 | 80.0 | 1.00 |",
		"| 1 | 55.0 | 60.0 | 3.0 / 5.0 | 19.80 | 0.990 | 51.0 | 81.0 | 1.02 |",
		"| 1000 | 150.0 | 240.0 | 100.0 / 180.0 | 18.00 | 0.900 | 60.0 | 90.0 | 1.20 |",
		"Fence times over 20 trials each.",
		"| fence time of a new container p99 under 200 ms (1000 containers on the network) | 240.0 ms | **no** |",
		"| data path with 1000 containers' rules at least 95 % of the network layer's throughput | 90.0 % | **no** |",
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, text)
		}
	}
	// Without the section's results, the report has no such section.
	if err := writeReport(sampleReport(), md, filepath.Join(dir, "docs", "bench")); err != nil {
		t.Fatal(err)
	}
	if text, _ := os.ReadFile(md); strings.Contains(string(text), "## Containers") {
		t.Error("a report without container results has a Containers section")
	}
}
