package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
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
	if c.filter == dpFilterNone || c.filter == ibFilterNoIngress {
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
