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

func TestIBList(t *testing.T) {
	client := netip.MustParseAddr(topo.InetIP4)
	for _, n := range ibSizes {
		lines := strings.Split(strings.TrimSuffix(ibList(n), "\n"), "\n")
		if len(lines) != n+1 {
			t.Fatalf("ibList(%d) has %d lines, want %d", n, len(lines), n+1)
		}
		if lines[n] != topo.InetIP4+"/32" {
			t.Errorf("ibList(%d) ends with %q, want the client's address", n, lines[n])
		}
		for _, l := range lines[:n] {
			p := netip.MustParsePrefix(l)
			if p.Contains(client) || p.Contains(netip.MustParseAddr(topo.LANProxy4)) {
				t.Fatalf("ibList(%d): %s covers the client or the stranger", n, p)
			}
		}
	}
}

func TestIBPolicy(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "sources.txt")
	if err := os.WriteFile(list, []byte(ibList(1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"", list} {
		p, err := policy.Parse(filepath.Join(dir, "bench.yaml"), []byte(ibPolicy(l)), policy.Options{})
		if err != nil {
			t.Fatalf("ibPolicy(%q) does not parse: %v\n%s", l, err, ibPolicy(l))
		}
		if len(p.Sections) != 1 {
			t.Fatalf("ibPolicy(%q): %d network sections", l, len(p.Sections))
		}
		s := p.Sections[0]
		if l == "" {
			if s.Given(policy.Ingress) {
				t.Errorf("ibPolicy without a list has ingress keys: %+v", s.ByHook[policy.Ingress])
			}
			continue
		}
		rules := s.Rules(policy.Ingress)
		if len(rules) != 1 || rules[0].Verdict != policy.Allow || s.Default(policy.Ingress) != policy.Deny {
			t.Fatalf("ibPolicy(%q): ingress %+v, want the one allow and the default deny", l, s.ByHook[policy.Ingress])
		}
		if got := len(p.Lists["bench"].Prefixes); got != 1001 {
			t.Errorf("ibPolicy(%q): the list holds %d prefixes, want 1001", l, got)
		}
	}
	pol := ibPolicy(list)
	for _, want := range []string{`allow: "@bench"`, "ports: [15201, 17007]", "comment: benchmark sources", "ingress_default: deny"} {
		if !strings.Contains(pol, want) {
			t.Errorf("ibPolicy lacks %q:\n%s", want, pol)
		}
	}
	if !strings.HasSuffix(ibAllowComment, ": benchmark sources") {
		t.Errorf("ibAllowComment %q does not end with the policy's comment", ibAllowComment)
	}
}

func TestIBDockerRules(t *testing.T) {
	r := ibDockerRules()
	for _, want := range []string{
		"table ip docker-bridges {",
		`iifname != "br-test" tcp dport 15201 counter dnat to 172.20.0.2:5201 comment "DNAT"`,
		`iifname != "br-test" tcp dport 17007 counter dnat to 172.20.0.2:7007 comment "DNAT"`,
		"ip daddr 172.20.0.2 tcp dport 5201 counter accept",
		"ip daddr 172.20.0.2 tcp dport 7007 counter accept",
		"type nat hook prerouting priority dstnat; policy accept;",
		`elements = { "br-test" : jump filter-forward-in__br-test }`,
	} {
		if !strings.Contains(r, want) {
			t.Errorf("ibDockerRules lacks %q:\n%s", want, r)
		}
	}
	if strings.Contains(r, "%!") {
		t.Errorf("ibDockerRules has a formatting error:\n%s", r)
	}
}

func TestIBConfigs(t *testing.T) {
	cs := ibConfigs()
	want := []dpConfig{{dpFilterNone, 0}, {ibFilterNoIngress, 0}, {ibFilterIngress, 0}, {ibFilterIngress, 1000}, {ibFilterIngress, 100000}}
	if len(cs) != len(want) {
		t.Fatalf("ibConfigs = %v, want %v", cs, want)
	}
	for i := range want {
		if cs[i] != want[i] {
			t.Errorf("ibConfigs[%d] = %v, want %v", i, cs[i], want[i])
		}
	}
	// Every configuration but the baseline sits between two baseline runs.
	order := dpRoundOrder(cs, 1)
	for i, c := range order {
		if (i%2 == 0) != (c.filter == dpFilterNone) {
			t.Fatalf("round order %v does not alternate with the baseline", order)
		}
	}
}

func TestIBAllowCount(t *testing.T) {
	chain := `table inet dockerfence {
	chain ing_br-test {
		iifname "br-test" counter packets 3 bytes 180 return comment "between containers of the network: their egress judges them"
		ip saddr @ing_br-test.i1.4 meta l4proto tcp ct original proto-dst { 15201, 17007 } counter packets 35474 bytes 9000000 return comment "ingress 1 allow: benchmark sources"
		ip6 saddr @ing_br-test.i1.6 meta l4proto tcp ct original proto-dst { 15201, 17007 } counter packets 2 bytes 100 return comment "ingress 1 allow: benchmark sources"
		counter packets 7 bytes 420 goto ing_br-test.d comment "ingress_default deny"
	}
}
`
	n, err := ibAllowCount(chain)
	if err != nil || n != 35476 {
		t.Errorf("ibAllowCount = %d, %v; want 35476 (both families, not the other rules)", n, err)
	}
	if _, err := ibAllowCount(strings.ReplaceAll(chain, "benchmark sources", "other")); err == nil {
		t.Error("ibAllowCount found a count without the allow rule")
	}
}

func ingressReport() *Report {
	r := sampleReport()
	r.Ingress = []DatapathResult{
		{Filter: dpFilterNone, Gbps: 10, Ratio: 1, RRP50US: 21, RRP99US: 50, RRRatio: 1},
		{Filter: ibFilterNoIngress, Gbps: 9.9, Ratio: 0.99, RRP50US: 21.2, RRP99US: 51, RRRatio: 1.01},
		{Filter: ibFilterIngress, Prefixes: 0, Gbps: 9.8, Ratio: 0.98, RRP50US: 21.5, RRP99US: 52, RRRatio: 1.02},
		{Filter: ibFilterIngress, Prefixes: 1000, Gbps: 9.6, Ratio: 0.96, RRP50US: 22, RRP99US: 60, RRRatio: 1.05},
		{Filter: ibFilterIngress, Prefixes: 100000, Gbps: 9.2, Ratio: 0.92, RRP50US: 22.4, RRP99US: 70, RRRatio: 1.07},
	}
	return r
}

func TestIngressTargets(t *testing.T) {
	const goal = "data path through a published port with 100k ingress source prefixes at least 95 % of Docker's rules alone"
	find := func(r *Report) *Target {
		for _, tg := range targets(r) {
			if tg.Goal == goal {
				return &tg
			}
		}
		return nil
	}
	r := ingressReport()
	if tg := find(r); tg == nil || tg.Met || tg.Value != "92.0 %" {
		t.Errorf("target at 92 %%: %+v, want present, not met, 92.0 %%", tg)
	}
	r.Ingress[4].Ratio = 0.97
	if tg := find(r); tg == nil || !tg.Met {
		t.Errorf("target at 97 %%: %+v, want met", tg)
	}
	if tg := find(sampleReport()); tg != nil {
		t.Errorf("a report without ingress results has the target %+v", tg)
	}
}

func TestWriteReportIngress(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeReport(ingressReport(), md, filepath.Join(dir, "docs", "bench")); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## Published ports (ingress)\n",
		"| filter | source prefixes listed | Gbit/s | throughput ratio | RR p50 (µs) | RR p99 (µs) | RR p50 ratio |",
		"| none (Docker's rules only) | – | 10.00 | 1.000 | 21.0 | 50.0 | 1.00 |",
		"| dockerfence, no ingress rules | – | 9.90 | 0.990 | 21.2 | 51.0 | 1.01 |",
		"| dockerfence ingress | 0 + the client | 9.80 | 0.980 | 21.5 | 52.0 | 1.02 |",
		"| dockerfence ingress | 1000 + the client | 9.60 | 0.960 | 22.0 | 60.0 | 1.05 |",
		"| dockerfence ingress | 100000 + the client | 9.20 | 0.920 | 22.4 | 70.0 | 1.07 |",
		"| data path through a published port with 100k ingress source prefixes at least 95 % of Docker's rules alone | 92.0 % | **no** |",
		"`ingress_default: deny`",
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, text)
		}
	}
	// The section comes after the data path's and before the reaction's.
	s := string(text)
	if i, j, k := strings.Index(s, "## Data path"), strings.Index(s, "## Published ports"), strings.Index(s, "## Reaction time"); !(i < j && j < k) {
		t.Errorf("sections out of order: data path at %d, ingress at %d, reaction at %d", i, j, k)
	}
	if err := writeReport(sampleReport(), md, filepath.Join(dir, "docs", "bench")); err != nil {
		t.Fatal(err)
	}
	if text, _ := os.ReadFile(md); strings.Contains(string(text), "## Published ports") {
		t.Error("a report without ingress results has an ingress section")
	}
}

func TestIBAllowMatch(t *testing.T) {
	// The lines are those of dockerfence apply --dry-run with the
	// benchmark's policy and a list of one and of three.
	one := `ip saddr 203.0.113.10 meta l4proto tcp ct original proto-dst @ing_br-test.i1.ports counter return comment "ingress 1 allow: benchmark sources"`
	many := `ip saddr @l_bench_4 meta l4proto tcp ct original proto-dst @ing_br-test.i1.ports counter return comment "ingress 1 allow: benchmark sources"`
	if !strings.Contains(one, ibAllowMatch(0)) || strings.Contains(many, ibAllowMatch(0)) {
		t.Errorf("ibAllowMatch(0) = %q", ibAllowMatch(0))
	}
	if !strings.Contains(many, ibAllowMatch(1000)) || strings.Contains(one, ibAllowMatch(1000)) {
		t.Errorf("ibAllowMatch(1000) = %q", ibAllowMatch(1000))
	}
}
