package main

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/integration/topo"
)

// iperfSample is the end of iperf3 3.12's -J output of a real run (one
// stream, over loopback), intervals and start trimmed.
const iperfSample = `{
	"start": {"version": "iperf 3.12"},
	"intervals": [],
	"end": {
		"streams": [{
			"sender": {"socket": 5, "start": 0, "end": 1.000713, "seconds": 1.000713, "bytes": 4611112960,
				"bits_per_second": 36862620631.489746, "retransmits": 19, "sender": true},
			"receiver": {"socket": 5, "start": 0, "end": 1.003404, "seconds": 1.000713, "bytes": 4609802240,
				"bits_per_second": 36753309653.938, "sender": true}
		}],
		"sum_sent": {"start": 0, "end": 1.000713, "seconds": 1.000713, "bytes": 4611112960,
			"bits_per_second": 36862620631.489746, "retransmits": 19, "sender": true},
		"sum_received": {"start": 0, "end": 1.003404, "seconds": 1.003404, "bytes": 4609802240,
			"bits_per_second": 36753309653.938, "sender": true},
		"cpu_utilization_percent": {"host_total": 83.8, "remote_total": 75.1},
		"sender_tcp_congestion": "bbr",
		"receiver_tcp_congestion": "bbr"
	}
}`

// iperfRefused is what iperf3 3.12 -J prints (with exit status 0) when the
// server is not there.
const iperfRefused = `{
	"start":	{
		"connected":	[],
		"version":	"iperf 3.12",
		"system_info":	"Linux vm 6.18.44 #1 SMP PREEMPT_DYNAMIC @0 x86_64"
	},
	"intervals":	[],
	"end":	{
	},
	"error":	"unable to connect to server: Connection refused"
}`

func TestParseIperf(t *testing.T) {
	gbps, retr, err := parseIperf([]byte(iperfSample))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(gbps-36.753309653938) > 1e-9 || retr != 19 {
		t.Errorf("parseIperf = %v Gbps, %d retransmits; want the receiver's 36.7533 Gbps and 19", gbps, retr)
	}
	for name, in := range map[string]string{
		"refused":   iperfRefused,
		"not JSON":  "iperf3: error - unable to connect to server",
		"empty":     "",
		"no result": `{"end": {"sum_received": {"seconds": 0, "bits_per_second": 0}}}`,
	} {
		if _, _, err := parseIperf([]byte(in)); err == nil {
			t.Errorf("%s: parseIperf succeeded", name)
		} else if name == "refused" && !strings.Contains(err.Error(), "Connection refused") {
			t.Errorf("refused: the error does not carry iperf3's: %v", err)
		}
	}
}

func TestDPPrefixes(t *testing.T) {
	ps := dpPrefixes(100000)
	if len(ps) != 100000 {
		t.Fatalf("%d prefixes, want 100000", len(ps))
	}
	if got := ps[0].String(); got != "10.0.0.0/26" {
		t.Errorf("first prefix %s, want 10.0.0.0/26", got)
	}
	if got := ps[1].String(); got != "10.0.0.128/26" {
		t.Errorf("second prefix %s, want 10.0.0.128/26", got)
	}
	ten := netip.MustParsePrefix("10.0.0.0/8")
	traffic := []netip.Addr{netip.MustParseAddr(topo.InetIP4), netip.MustParseAddr(topo.CtrIP4),
		netip.MustParseAddr(topo.LANDB4), netip.MustParseAddr(topo.HostWAN4)}
	for i, p := range ps {
		if p.Bits() != 26 || p.Masked() != p || !ten.Contains(p.Addr()) {
			t.Fatalf("prefix %d is %s: want a masked /26 in 10.0.0.0/8", i, p)
		}
		if i > 0 {
			// Sorted, with a gap of at least one address: no overlap, no merge.
			prev := ps[i-1]
			last := prev.Addr().As4()
			last[3] |= 63
			if !netip.AddrFrom4(last).Next().Less(p.Addr()) {
				t.Fatalf("prefixes %s and %s overlap or are adjacent", prev, p)
			}
		}
		for _, a := range traffic {
			if p.Contains(a) {
				t.Fatalf("prefix %s covers %s, which carries the measured traffic", p, a)
			}
		}
	}
	if n := len(dpPrefixes(dpMaxPrefixes)); n != dpMaxPrefixes {
		t.Errorf("dpPrefixes(max) = %d prefixes", n)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("dpPrefixes(dpMaxPrefixes+1) did not panic")
			}
		}()
		dpPrefixes(dpMaxPrefixes + 1)
	}()
}

func TestDPProbeAddr(t *testing.T) {
	for _, n := range []int{1, 1000, 10000, 100000} {
		a := dpProbeAddr(n)
		ps := dpPrefixes(n)
		if !ps[n-1].Contains(a) || a == ps[n-1].Addr() {
			t.Errorf("dpProbeAddr(%d) = %s: want a host address in the last prefix %s", n, a, ps[n-1])
		}
		if n > 1 && ps[n-2].Contains(a) {
			t.Errorf("dpProbeAddr(%d) = %s is in an earlier prefix", n, a)
		}
	}
	if got := dpProbeAddr(1000).String(); got != "10.1.243.129" {
		t.Errorf("dpProbeAddr(1000) = %s, want 10.1.243.129", got)
	}
}

func TestDPPolicy(t *testing.T) {
	with := dpPolicy("/tmp/x/prefixes-1000.txt")
	for _, want := range []string{
		"version: 1\n",
		"  bench: {file: \"/tmp/x/prefixes-1000.txt\"}\n",
		"  - match: {subnet: 172.20.0.0/16}\n",
		"      - deny: \"@bench\"\n",
		"    egress_default: allow\n",
	} {
		if !strings.Contains(with, want) {
			t.Errorf("policy with a list lacks %q:\n%s", want, with)
		}
	}
	without := dpPolicy("")
	if strings.Contains(without, "deny") || strings.Contains(without, "lists") || !strings.Contains(without, "egress_default: allow") {
		t.Errorf("policy without a list:\n%s", without)
	}
}

func TestDPIptablesRules(t *testing.T) {
	got := dpIptablesRules("br-test", dpPrefixes(2))
	want := "*filter\n:DFBENCH - [0:0]\n" +
		"-A DFBENCH -d 10.0.0.0/26 -j DROP\n" +
		"-A DFBENCH -d 10.0.0.128/26 -j DROP\n" +
		"-A FORWARD -i br-test -j DFBENCH\nCOMMIT\n"
	if got != want {
		t.Errorf("dpIptablesRules:\n%s\nwant:\n%s", got, want)
	}
}

func TestDPRoundOrder(t *testing.T) {
	cs := dpConfigs()
	if len(cs) != 8 || cs[0] != (dpConfig{dpFilterNone, 0}) {
		t.Fatalf("dpConfigs() = %v", cs)
	}
	base := cs[0]
	want := []dpConfig{base}
	for _, c := range cs[1:] {
		want = append(want, c, base)
	}
	r0, r1, r2 := dpRoundOrder(cs, 0), dpRoundOrder(cs, 1), dpRoundOrder(cs, 2)
	if !slices.Equal(r0, want) || !slices.Equal(r2, want) {
		t.Errorf("round 0 %v, round 2 %v: want %v", r0, r2, want)
	}
	slices.Reverse(want)
	if !slices.Equal(r1, want) {
		t.Errorf("round 1 %v: want %v", r1, want)
	}
	if cs[0] != base || len(cs) != 8 {
		t.Error("dpRoundOrder changed its argument")
	}
}

func TestDPResults(t *testing.T) {
	none := dpConfig{dpFilterNone, 0}
	df := dpConfig{dpFilterDockerfence, 100000}
	ipt := dpConfig{dpFilterIptables, 100000}
	missing := dpConfig{dpFilterIptables, 1000}
	run := func(c dpConfig, gbps float64, rr ...float64) dpMeasurement { return dpMeasurement{c, gbps, rr} }
	// The machine is twice as fast in the second round: only the ratios to
	// the neighbouring baseline runs show the filters' cost.
	runs := []dpMeasurement{
		run(none, 20, 10), run(df, 19, 11), run(none, 20, 10), run(ipt, 2, 100), run(none, 20, 10),
		run(none, 40, 5), run(ipt, 4, 50), run(none, 40, 5), run(df, 38, 5.5), run(none, 40, 5),
		// A third round that lost its baselines but one: the filter runs
		// are compared with the one there is.
		run(none, 30, 6), run(df, 28.5, 6.6), run(ipt, 3, 60),
	}
	res := dpResults([]dpConfig{none, df, ipt, missing}, runs)
	want := []DatapathResult{
		{Filter: "none", Prefixes: 0, Gbps: 30, Ratio: 1, RRP50US: 6, RRP99US: 10, RRRatio: 1},
		{Filter: "dockerfence", Prefixes: 100000, Gbps: 28.5, Ratio: 0.95, RRP50US: 6.6, RRP99US: 11, RRRatio: 1.1},
		{Filter: "iptables linear", Prefixes: 100000, Gbps: 3, Ratio: 0.1, RRP50US: 60, RRP99US: 100, RRRatio: 10},
		{Filter: "iptables linear", Prefixes: 1000},
	}
	if len(res) != len(want) {
		t.Fatalf("%d results, want %d", len(res), len(want))
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	for i := range want {
		g, w := res[i], want[i]
		if g.Filter != w.Filter || g.Prefixes != w.Prefixes || !near(g.Gbps, w.Gbps) || !near(g.Ratio, w.Ratio) ||
			!near(g.RRP50US, w.RRP50US) || !near(g.RRP99US, w.RRP99US) || !near(g.RRRatio, w.RRRatio) {
			t.Errorf("result %d = %+v, want %+v", i, g, w)
		}
	}
	// With no baseline, ratios are 0, never NaN or Inf (JSON cannot hold them).
	for _, r := range dpResults([]dpConfig{none, df}, []dpMeasurement{run(df, 10, 1)}) {
		for _, x := range []float64{r.Gbps, r.Ratio, r.RRP50US, r.RRP99US, r.RRRatio} {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				t.Errorf("%+v holds a NaN or Inf", r)
			}
		}
		if r.Ratio != 0 || r.RRRatio != 0 {
			t.Errorf("%+v: ratios without a baseline must be 0", r)
		}
	}
}
