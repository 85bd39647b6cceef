package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Target is one of the benchmark's goals and whether the run met it.
type Target struct {
	Goal  string
	Value string
	Met   bool
}

// find returns the apply result of a tool at a size, nil if none.
func find(r *Report, tool string, prefixes, networks int) *ApplyResult {
	for i := range r.Apply {
		a := &r.Apply[i]
		if a.Tool == tool && a.Prefixes == prefixes && a.Networks == networks {
			return a
		}
	}
	return nil
}

// targets checks the run against the goals of the benchmark.
func targets(r *Report) []Target {
	var out []Target
	sizes := map[[2]int]bool{}
	for _, a := range r.Apply {
		sizes[[2]int{a.Prefixes, a.Networks}] = true
	}
	keys := make([][2]int, 0, len(sizes))
	for k := range sizes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][1] != keys[j][1] {
			return keys[i][1] < keys[j][1]
		}
		return keys[i][0] < keys[j][0]
	})
	for _, k := range keys {
		df, nf := find(r, "dockerfence", k[0], k[1]), find(r, "nft -f", k[0], k[1])
		if df != nil && nf != nil {
			out = append(out, Target{
				Goal:  fmt.Sprintf("dockerfence apply no slower than nft -f (%d prefixes, %d network%s)", k[0], k[1], plural(k[1])),
				Value: fmt.Sprintf("%.1f ms vs %.1f ms: nft -f takes %.2f× as long", df.MedianMS, nf.MedianMS, nf.MedianMS/df.MedianMS),
				Met:   df.MedianMS <= nf.MedianMS,
			})
		}
	}
	for _, k := range keys {
		df, base := find(r, toolDockerfence, k[0], k[1]), find(r, toolBaseline, k[0], k[1])
		if df != nil && base != nil {
			out = append(out, Target{
				Goal:  fmt.Sprintf("dockerfence apply no slower than the baseline binary (%d prefixes, %d network%s)", k[0], k[1], plural(k[1])),
				Value: fmt.Sprintf("%.1f ms vs %.1f ms: the baseline takes %.2f× as long", df.MedianMS, base.MedianMS, base.MedianMS/df.MedianMS),
				Met:   df.MedianMS <= base.MedianMS,
			})
		}
	}
	for _, n := range []int{1, 50} {
		df, pr := find(r, "dockerfence", 1000, n), find(r, "iptables per rule", 1000, n)
		if df != nil && pr != nil {
			out = append(out, Target{
				Goal:  fmt.Sprintf("at least 50× faster than per-rule iptables at 1k rules (%d network%s)", n, plural(n)),
				Value: fmt.Sprintf("%.0f×", pr.MedianMS/df.MedianMS),
				Met:   pr.MedianMS/df.MedianMS >= 50,
			})
		}
	}
	for _, n := range []int{1, 50} {
		if df := find(r, "dockerfence", 100000, n); df != nil {
			out = append(out, Target{Goal: fmt.Sprintf("100k prefixes applied in under 1 s (%d network%s)", n, plural(n)),
				Value: fmt.Sprintf("%.0f ms", df.MedianMS), Met: df.MedianMS < 1000})
		}
	}
	for _, d := range r.Datapath {
		if d.Filter == "dockerfence" && d.Prefixes == 100000 {
			out = append(out, Target{Goal: "data path at 100k prefixes at least 95 % of baseline throughput",
				Value: fmt.Sprintf("%.1f %%", 100*d.Ratio), Met: d.Ratio >= 0.95})
		}
	}
	for _, c := range r.Containers {
		if c.Containers == 0 {
			continue
		}
		if c.FenceTrials > 0 {
			out = append(out, Target{Goal: fmt.Sprintf("fence time of a new container p99 under 200 ms (%d container%s on the network)", c.Containers, plural(c.Containers)),
				Value: fmt.Sprintf("%.1f ms", c.FenceP99MS), Met: c.FenceP99MS < 200})
		}
		if c.Ratio > 0 {
			whose := "container's"
			if c.Containers != 1 {
				whose = "containers'"
			}
			out = append(out, Target{Goal: fmt.Sprintf("data path with %d %s rules at least 95 %% of the network layer's throughput", c.Containers, whose),
				Value: fmt.Sprintf("%.1f %%", 100*c.Ratio), Met: c.Ratio >= 0.95})
		}
	}
	for _, d := range r.Ingress {
		if d.Filter == ibFilterIngress && d.Prefixes == 100000 && d.Ratio > 0 {
			out = append(out, Target{Goal: "data path through a published port with 100k ingress source prefixes at least 95 % of Docker's rules alone",
				Value: fmt.Sprintf("%.1f %%", 100*d.Ratio), Met: d.Ratio >= 0.95})
		}
	}
	if n := r.Names; n != nil {
		for _, res := range n.Results {
			if res.Filter == nbNames {
				out = append(out,
					Target{Goal: "DNS query latency added by names under 1 ms at p50", Value: fmt.Sprintf("%.0f µs", res.AddedP50US), Met: res.AddedP50US < 1000},
					Target{Goal: "DNS query latency added by names under 10 ms at p99", Value: fmt.Sprintf("%.0f µs", res.AddedP99US), Met: res.AddedP99US < 10000})
			}
		}
		if n.CDN.Addresses > 0 {
			out = append(out, Target{Goal: fmt.Sprintf("a name answering %d addresses learns them all before the answer arrives", nbCDN),
				Value: fmt.Sprintf("%d of %d", n.CDN.InSet, n.CDN.Addresses), Met: n.CDN.InSet == nbCDN && n.CDN.Addresses == nbCDN})
		}
	}
	if r.Reaction.Trials > 0 {
		out = append(out,
			Target{Goal: "reaction p99 under 200 ms: bridge appears", Value: fmt.Sprintf("%.1f ms", r.Reaction.BridgeP99), Met: r.Reaction.BridgeP99 < 200},
			healTarget(r.Reaction),
			Target{Goal: "daemon idle RSS under 30 MB", Value: fmt.Sprintf("%.1f MB", r.Daemon.IdleRSSMB), Met: r.Daemon.IdleRSSMB > 0 && r.Daemon.IdleRSSMB < 30})
	}
	return out
}

// writeReport writes BENCHMARKS.md and its plots.
func writeReport(r *Report, md, plotDir string) error {
	if err := os.MkdirAll(plotDir, 0o755); err != nil {
		return err
	}
	plots, err := writePlots(r, plotDir)
	if err != nil {
		return err
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	mode := "full"
	if r.Quick {
		mode = "quick (-quick)"
	}
	w("# dockerfence benchmarks\n\n")
	w("Generated by `make bench` (`go run ./integration/bench -out bench.json -md BENCHMARKS.md`) on %s, a %s run that took %.0f s. ",
		r.Started.UTC().Format("2006-01-02 15:04 UTC"), mode, r.TookS)
	w("Every number below comes from that one run: the tools are measured side by side, and the data path as ratios to no filter in the same run, because these machines are shared and noisy. Re-run `make bench` to regenerate this file, the JSON and the plots.\n\n")
	w("**Machine:** %s, %d CPUs; kernel %s; %s; %s; %s; %s.\n\n", orUnknown(r.Machine.CPU), r.Machine.CPUs, r.Machine.Kernel, r.Machine.Go, r.Machine.Nft, r.Machine.Iptables, r.Machine.Iperf3)
	if len(r.Errors) > 0 {
		w("**Sections that failed in this run:** %s\n\n", strings.Join(r.Errors, "; "))
	}

	w("## Targets\n\n| goal | this run | met |\n|---|---|---|\n")
	for _, t := range targets(r) {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		w("| %s | %s | %s |\n", t.Goal, t.Value, met)
	}
	w("\n")

	if len(r.Apply) > 0 {
		w("## Apply latency\n\n")
		w("Median of %d runs, in milliseconds, each from an empty ruleset in a namespace of its own. ", 5)
		w("`dockerfence` is the binary (`dockerfence apply -c FILE`, Docker unreachable, bridges over netlink), including parsing the policy and its list files; ")
		w("`nft -f` loads the same ruleset, taken from `dockerfence apply --dry-run`; `iptables-restore` loads an equivalent linear iptables-nft chain per network (one rule per prefix); ")
		w("`iptables per rule` runs one `iptables -A` process per rule, as the field reports' scripts do, up to 1k rules, and is extrapolated linearly beyond (marked *). ")
		w("With 50 networks the prefixes are spread over them: each network denies its own share. Before timing, probe packets checked that each tool's ruleset denies and allows the same addresses. ")
		w("The per-rule extrapolation is a lower bound: each `iptables` process reads the chain it appends to, so the cost per rule grows with the chain (by hand: 1k rules 0.73 s, 10k rules 11.3 s against 7.3 s extrapolated).\n\n")
		w("| prefixes | networks | dockerfence | nft -f | iptables-restore | iptables per rule | nft -f / dockerfence | per rule / dockerfence |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		seen := map[[2]int]bool{}
		var keys [][2]int
		for _, a := range r.Apply {
			k := [2]int{a.Prefixes, a.Networks}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i][1] != keys[j][1] {
				return keys[i][1] < keys[j][1]
			}
			return keys[i][0] < keys[j][0]
		})
		cell := func(a *ApplyResult) string {
			if a == nil {
				return "–"
			}
			s := fmtMS(a.MedianMS)
			if a.Extrapolated {
				s += "*"
			}
			return s
		}
		ratio := func(a, b *ApplyResult) string {
			if a == nil || b == nil || b.MedianMS == 0 {
				return "–"
			}
			return fmt.Sprintf("%.1f×", a.MedianMS/b.MedianMS)
		}
		for _, k := range keys {
			df := find(r, "dockerfence", k[0], k[1])
			nf := find(r, "nft -f", k[0], k[1])
			ir := find(r, "iptables-restore", k[0], k[1])
			pr := find(r, "iptables per rule", k[0], k[1])
			w("| %d | %d | %s | %s | %s | %s | %s | %s |\n", k[0], k[1], cell(df), cell(nf), cell(ir), cell(pr), ratio(nf, df), ratio(pr, df))
		}
		w("\n")
	}

	if len(r.Datapath) > 0 {
		w("## Data path\n\n")
		w("A container namespace sends through the fenced host namespace (a bridge, then routing) to an upstream namespace running `iperf3 -s`. ")
		w("The deny prefixes never match the traffic, so every packet is judged against all of them: dockerfence looks the destination up in an interval set per packet; `iptables linear` walks one rule per prefix in FORWARD. ")
		w("Throughput is a single TCP stream (`iperf3 -J`, 2 s a run in -quick, 3 s otherwise), latency 1-byte request/response exchanges on one TCP connection; client and server are pinned to one CPU. ")
		w("Each filter run sits between two baseline runs (`none`), and a ratio is the median over the filter's runs of the run against the mean of its two baseline neighbours, so that the machine's drift cancels out; Gbit/s and the percentiles are as measured. ")
		w("The baseline host has no conntrack; dockerfence's table (its `ct direction` rule) turns conntrack on, which a real Docker host always has for its NAT, and which accounts for part of the cost at 0 prefixes.\n\n")
		w("| filter | prefixes | Gbit/s | throughput ratio | RR p50 (µs) | RR p99 (µs) | RR p50 ratio |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, d := range r.Datapath {
			w("| %s | %d | %.2f | %.3f | %.1f | %.1f | %.2f |\n", d.Filter, d.Prefixes, d.Gbps, d.Ratio, d.RRP50US, d.RRP99US, d.RRRatio)
		}
		w("\n")
	}

	if len(r.Containers) > 0 {
		writeContainers(w, r.Containers)
	}

	if len(r.Ingress) > 0 {
		writeIngress(w, r.Ingress)
	}

	if r.Names != nil {
		writeNames(w, r.Names)
	}

	if r.Reaction.Trials > 0 {
		w("## Reaction time and footprint of `dockerfence run`\n\n")
		w("`dockerfence run` follows a fake Docker Engine API (so that dockerd's own time is not counted) in a namespace of its own, with its default 50 ms debounce. ")
		w("A bridge appearing: the bridge is created over netlink and the `network create` event sent, as Docker does; timed until the bridge has its own chain in the table's verdict map. ")
		w("A heal: the table is deleted over netlink (as `nft delete table` does); timed until it is back. %d trials each.\n\n", r.Reaction.Trials)
		w("| reaction | p50 (ms) | p99 (ms) |\n|---|---:|---:|\n")
		w("| bridge appears → fenced by its own chain | %.1f | %.1f |\n", r.Reaction.BridgeP50, r.Reaction.BridgeP99)
		if r.Reaction.DeleteRefused {
			w("| table deleted → table back | refused: the daemon owns the table, the kernel refuses the delete (EPERM) | |\n\n")
		} else {
			w("| table deleted → table back | %.1f | %.1f |\n\n", r.Reaction.HealP50, r.Reaction.HealP99)
		}
		w("| daemon | RSS (MB) | CPU (%% of one core) |\n|---|---:|---:|\n")
		w("| idle (5 s) | %.1f | %.2f |\n", r.Daemon.IdleRSSMB, r.Daemon.IdleCPUPct)
		w("| burst of %d network events (%.2f s) | %.1f (largest) | %.1f |\n\n", r.Daemon.BurstEvents, r.Daemon.BurstS, r.Daemon.BurstRSSMB, r.Daemon.BurstCPUPct)
	}

	if len(plots) > 0 {
		w("## Plots\n\n")
		dir := filepath.Dir(md)
		for _, p := range plots {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				rel = p
			}
			w("![%s](%s)\n\n", strings.TrimSuffix(filepath.Base(p), ".png"), filepath.ToSlash(rel))
		}
	}
	return os.WriteFile(md, []byte(b.String()), 0o644)
}

// writeContainers writes the container layer's section.
func writeContainers(w func(string, ...any), cs []ContainersResult) {
	w("## Containers\n\n")
	w("The data path's topology, with the container layer: the network has N classified containers (a container section matches each), N-1 of them listed by a fake Docker Engine API with addresses no namespace uses, ")
	w("the Nth the client namespace, whose section allows the benchmark's traffic to the upstream namespace and denies the rest, so that every measured packet is looked up by its source address among the N in the layer's map and walks its container's chain. ")
	w("Fence time: `dockerfence run` (50 ms debounce) follows the fake API with N containers; one more is listed and its `network connect` event sent, and the time is taken until the kernel reports (an nf_tables notification, checked by a read of the map) the transaction that put its address into the layer's map; the container is then removed again. `daemon sync` is the daemon's own time for those syncs (adding and removing), as it logs it, without the debounce. ")
	w("Data path: as in the data path section, in alternating rounds, each run with the N containers' rules between two runs of the same policy without its `containers:` section (`network layer only`, the baseline; both apply with `dockerfence apply` from the fake API's list), and a ratio is the median over the runs of the run against its two baseline neighbours.\n\n")
	w("| containers | fence p50 (ms) | fence p99 (ms) | daemon sync p50 / p99 (ms) | Gbit/s | throughput ratio | RR p50 (µs) | RR p99 (µs) | RR p50 ratio |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range cs {
		name, p50, p99, sync := "network layer only", "–", "–", "–"
		if c.Containers > 0 {
			name = fmt.Sprintf("%d", c.Containers)
		}
		if c.FenceTrials > 0 {
			p50, p99 = fmt.Sprintf("%.1f", c.FenceP50MS), fmt.Sprintf("%.1f", c.FenceP99MS)
		}
		if c.SyncP50MS > 0 {
			sync = fmt.Sprintf("%.1f / %.1f", c.SyncP50MS, c.SyncP99MS)
		}
		w("| %s | %s | %s | %s | %.2f | %.3f | %.1f | %.1f | %.2f |\n", name, p50, p99, sync, c.Gbps, c.Ratio, c.RRP50US, c.RRP99US, c.RRRatio)
	}
	if n := cs[len(cs)-1].FenceTrials; n > 0 {
		w("\nFence times over %d trials each.\n", n)
	}
	w("\n")
}

// writeIngress writes the section of the data path through a published
// port.
func writeIngress(w func(string, ...any), ds []DatapathResult) {
	w("## Published ports (ingress)\n\n")
	w("The data path in the other direction, from outside into a container through a published port. An outside namespace (the client) connects to ports that the host namespace publishes as Docker does, and the container namespace behind the bridge runs `iperf3 -s` and the echo server. ")
	w("Docker's own rules are in the host in every configuration, the baseline `none` included, written with `nft` in the shape of Docker 29's nftables backend (no dockerd): the DNAT of the published ports to the container for local destinations, a forward chain per bridge that accepts established connections and the published ports, and the masquerade of the containers' own connections. So the baseline has conntrack and NAT, as a Docker host has, and a ratio is the cost of dockerfence alone. ")
	w("Every data packet and every request crosses the host's forward hook in the original direction of a connection into the fenced bridge, where dockerfence judges each packet, not only the first. ")
	w("`dockerfence, no ingress rules` fences the network with egress rules only: a section without ingress keys adds nothing to the ingress path, so this is the cost of the table's forward chain for inbound packets. ")
	w("`dockerfence ingress` has one rule that allows a list of sources on the published ports, with `ingress_default: deny`; the list holds the client's address and 0, 1k or 100k other prefixes (the data path section's /26 prefixes in 10.0.0.0/8, none of which covers the client), so every packet is looked up by its source in the list's interval set of all of them (with 0, dockerfence writes a compare with the client's address instead) and matched on the connection's original destination port (the published one, before the DNAT). ")
	w("Before its first run each configuration was checked with real connections: the client gets through; a stranger is refused under the ingress rule and reaches the port without it; a source in the last listed prefix gets through. After that run, the allow rule's counter held at least one packet per timed request. ")
	w("Throughput, request/response latency, rounds and ratios as in the data path section: each run between two baseline runs, a ratio the median over the rounds of a run against the mean of its two baseline neighbours.\n\n")
	w("| filter | source prefixes listed | Gbit/s | throughput ratio | RR p50 (µs) | RR p99 (µs) | RR p50 ratio |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, d := range ds {
		name, listed := d.Filter, "–"
		switch d.Filter {
		case dpFilterNone:
			name = "none (Docker's rules only)"
		case ibFilterIngress:
			listed = fmt.Sprintf("%d + the client", d.Prefixes)
		}
		w("| %s | %s | %.2f | %.3f | %.1f | %.1f | %.2f |\n", name, listed, d.Gbps, d.Ratio, d.RRP50US, d.RRP99US, d.RRRatio)
	}
	w("\n")
}

func fmtMS(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown CPU"
	}
	return s
}

// healTarget is the target of the heal: met at once when the kernel
// refuses the delete, as the daemon owns the table.
func healTarget(r Reaction) Target {
	if r.DeleteRefused {
		return Target{Goal: "reaction p99 under 200 ms: table deleted", Value: "the kernel refuses the delete (owned table)", Met: true}
	}
	return Target{Goal: "reaction p99 under 200 ms: table deleted", Value: fmt.Sprintf("%.1f ms", r.HealP99), Met: r.HealP99 < 200}
}

// writeNames writes the section of DNS names.
func writeNames(w func(string, ...any), n *NamesReport) {
	w("## Names (DNS answers held until learned)\n\n")
	w("A container namespace asks the benchmark's own DNS server (miekg/dns) behind the host for fresh names over UDP, one query at a time, one every 2 ms (under the 1,000 a second per source that the query rules queue), each answering a fresh address; every query and answer crosses the host's forward hook. ")
	w("`none`: no dockerfence. `dockerfence, no names`: `dockerfence run` fences the bridge with an allow of the DNS server and no names (no answer is held). ")
	w("`dockerfence names`: the same with a list `{names: [\"*.bench.test\"]}` allowed on tcp/443, so the kernel holds every query in the queue until the daemon has recorded it (an answer must match one), and every answer until the daemon has parsed it and committed its address into the list's set, the worst case (no name was seen before: one transaction an answer). ")
	w("Latency is the client's round trip of a query; the configurations take turns in rounds; added is the excess over `none` of the same run. ")
	w("On the first and last timed query of the first round, the answer's address was checked to be in the table the moment the client had it under `names`, and not under the others.\n\n")
	w("| configuration | queries | p50 (µs) | p99 (µs) | max (µs) | added p50 (µs) | added p99 (µs) |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range n.Results {
		w("| %s | %d | %.0f | %.0f | %.0f | %+.0f | %+.0f |\n", r.Filter, r.Queries, r.P50US, r.P99US, r.MaxUS, r.AddedP50US, r.AddedP99US)
	}
	if n.CDN.Addresses > 0 {
		w("\nA name answering %d addresses (a CDN; EDNS0, the 2.5 kB answer in IPv4 fragments that conntrack reassembles before the forward hook): round trip %.0f µs; %d of the %d addresses were in the table the moment the client had the answer (one transaction).\n", nbCDN, n.CDN.LatencyUS, n.CDN.InSet, n.CDN.Addresses)
	}
	w("\n")
}
