package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// The four ways of loading a deny list that the apply section compares,
// named as they appear in the report.
const (
	toolDockerfence = "dockerfence"
	// toolBaseline is another dockerfence binary (-baseline), such as one
	// built from the commit before a change, timed beside this one.
	toolBaseline = "dockerfence (baseline)"
	toolNft      = "nft -f"
	toolRestore  = "iptables-restore"
	toolPerRule  = "iptables per rule"
)

// applyTools lists the tools in the order they are measured and reported.
var applyTools = []string{toolDockerfence, toolBaseline, toolNft, toolRestore, toolPerRule}

const (
	// applyBridges is how many bridges the section's host has: the most
	// networks a policy is spread over.
	applyBridges = 50
	// perRuleMax is the largest number of prefixes for which "iptables per
	// rule" is measured; larger sizes are extrapolated from it.
	perRuleMax = 1000
	// rejectChain is the iptables chain that refuses a packet the way
	// dockerfence's deny_action reject does.
	rejectChain = "DF-REJECT"
	// probeTimeout bounds one probe connection. Denials answer with a TCP
	// reset, allowed connections within milliseconds.
	probeTimeout = 2 * time.Second
)

// The probe targets in the LAN namespace: deniedPort on topo.LANDB4 is in
// the deny list of the probed networks, allowedPort on topo.LANProxy4 is in
// no list.
const (
	deniedPort  = 5432
	allowedPort = 3128
)

// applySize is one size of the apply benchmark: prefixes in total, spread
// evenly over networks.
type applySize struct {
	prefixes, networks int
}

// applySizes returns the sizes measured, smallest first: 1k, 10k and (not
// with quick) 100k prefixes, each over 1 and over 50 networks.
func applySizes(quick bool) []applySize {
	counts := []int{1000, 10000, 100000}
	if quick {
		counts = counts[:2]
	}
	var out []applySize
	for _, nets := range []int{1, applyBridges} {
		for _, n := range counts {
			out = append(out, applySize{n, nets})
		}
	}
	return out
}

// bridgeName is the name of the i-th bridge of the section's host.
func bridgeName(i int) string { return fmt.Sprintf("br-b%02d", i) }

// bridgeGateway is the i-th bridge's address, in prefix notation; its
// network is 172.30.i.0/24.
func bridgeGateway(i int) string { return fmt.Sprintf("172.30.%d.1/24", i) }

// bridgeChain is the iptables chain that judges packets from the i-th bridge.
func bridgeChain(i int) string { return "DF-" + bridgeName(i) }

// benchPrefix returns the i-th generated prefix: the /30s 10.0.0.0/30,
// 10.0.0.8/30, 10.0.0.16/30 and so on. Consecutive prefixes leave a gap of
// four addresses, so no two of them overlap or touch and nft.Ranges
// cannot merge them; the first 2,097,152 stay inside 10.0.0.0/8, away from
// every address of the topology.
func benchPrefix(i int) netip.Prefix {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], 10<<24+uint32(i)*8)
	return netip.PrefixFrom(netip.AddrFrom4(a), 30)
}

// deniedPrefix is the one real destination in the deny lists: the LAN's
// database, whose refusal the probes check.
var deniedPrefix = netip.PrefixFrom(netip.MustParseAddr(topo.LANDB4), 32)

// probedNetworks returns the indexes of the networks whose containers are
// probed: the first and the last bridge.
func probedNetworks() []int { return []int{0, applyBridges - 1} }

// networkPrefixes spreads n prefixes over nets networks: network k denies
// the generated prefixes k*n/nets up to (k+1)*n/nets, except that the last
// prefix of each probed network that is fenced is replaced by deniedPrefix.
// The total stays n, and the denied target comes last, so a linear chain
// has to walk its whole network's list before it matches.
func networkPrefixes(n, nets int) [][]netip.Prefix {
	out := make([][]netip.Prefix, nets)
	for k := range nets {
		lo, hi := k*n/nets, (k+1)*n/nets
		ps := make([]netip.Prefix, 0, hi-lo)
		for i := lo; i < hi; i++ {
			ps = append(ps, benchPrefix(i))
		}
		out[k] = ps
	}
	for _, k := range probedNetworks() {
		if k < nets && len(out[k]) > 0 {
			out[k][len(out[k])-1] = deniedPrefix
		}
	}
	return out
}

// listName is the name of the policy list that network k denies.
func listName(k int) string { return fmt.Sprintf("l%02d", k) }

// renderList renders prefixes as a dockerfence list file, one a line.
func renderList(ps []netip.Prefix) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// renderPolicy renders the dockerfence policy: one section per network,
// matched by its bridge, that denies the list in listFiles[k] and allows
// everything else. Denials reject (a TCP reset for TCP, ICMP
// admin-prohibited otherwise) and are not logged, as the iptables chains do.
func renderPolicy(listFiles []string) string {
	var b strings.Builder
	b.WriteString("version: 1\nsettings:\n  deny_action: reject\n  log_denied: false\nlists:\n")
	for k, f := range listFiles {
		fmt.Fprintf(&b, "  %s: {file: %s}\n", listName(k), strconv.Quote(f))
	}
	b.WriteString("networks:\n")
	for k := range listFiles {
		fmt.Fprintf(&b, "  - match: {bridge: %s}\n    egress:\n      - deny: \"@%s\"\n    egress_default: allow\n", bridgeName(k), listName(k))
	}
	return b.String()
}

// rejectRules are the rules of rejectChain, in iptables syntax after the
// chain name: the same verdicts as dockerfence's deny chains.
var rejectRules = []string{
	"-p tcp -j REJECT --reject-with tcp-reset",
	"-j REJECT --reject-with icmp-admin-prohibited",
}

// iptablesRules returns the iptables rules equivalent to the policy for
// nets, as arguments after "-A": the jump from FORWARD to each network's
// chain on its bridge, then each network's chain with one rule per prefix,
// then rejectChain. Chains must exist first (see iptablesChains).
func iptablesRules(nets [][]netip.Prefix) []string {
	var rules []string
	for k := range nets {
		rules = append(rules, fmt.Sprintf("FORWARD -i %s -j %s", bridgeName(k), bridgeChain(k)))
	}
	for k, ps := range nets {
		for _, p := range ps {
			rules = append(rules, fmt.Sprintf("%s -d %s -j %s", bridgeChain(k), p, rejectChain))
		}
	}
	for _, r := range rejectRules {
		rules = append(rules, rejectChain+" "+r)
	}
	return rules
}

// iptablesChains returns the user chains iptablesRules needs.
func iptablesChains(nets int) []string {
	chains := []string{rejectChain}
	for k := range nets {
		chains = append(chains, bridgeChain(k))
	}
	return chains
}

// renderRestore renders the iptables-restore file of the linear chains:
// the whole filter table, so that a restore replaces it.
func renderRestore(nets [][]netip.Prefix) string {
	var b strings.Builder
	b.WriteString("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for _, c := range iptablesChains(len(nets)) {
		fmt.Fprintf(&b, ":%s - [0:0]\n", c)
	}
	for _, r := range iptablesRules(nets) {
		fmt.Fprintf(&b, "-A %s\n", r)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// renderPerRule renders the seed's method as a shell script: one iptables
// process per chain and per rule, stopping at the first failure.
func renderPerRule(nets [][]netip.Prefix) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\nset -e\n")
	for _, c := range iptablesChains(len(nets)) {
		fmt.Fprintf(&b, "iptables -N %s\n", c)
	}
	for _, r := range iptablesRules(nets) {
		fmt.Fprintf(&b, "iptables -A %s\n", r)
	}
	return b.String()
}

// perRuleCommands is how many iptables processes renderPerRule starts for
// n prefixes over nets networks: one per chain, per jump, per prefix and
// per rule of rejectChain.
func perRuleCommands(n, nets int) int { return (1 + nets) + nets + n + len(rejectRules) }

// extrapolate scales a measured per-rule time linearly from the command
// count of the measured size to that of the wanted one.
func extrapolate(measuredMS float64, measured, wanted applySize) float64 {
	return measuredMS / float64(perRuleCommands(measured.prefixes, measured.networks)) *
		float64(perRuleCommands(wanted.prefixes, wanted.networks))
}

// sortApplyResults sorts by networks, then prefixes, then tool in the order
// of applyTools.
func sortApplyResults(rs []ApplyResult) {
	slices.SortStableFunc(rs, func(a, b ApplyResult) int {
		if a.Networks != b.Networks {
			return a.Networks - b.Networks
		}
		if a.Prefixes != b.Prefixes {
			return a.Prefixes - b.Prefixes
		}
		return slices.Index(applyTools, a.Tool) - slices.Index(applyTools, b.Tool)
	})
}

// applyBench is the state of the apply section: its host, its probes and
// its files.
type applyBench struct {
	e      *env
	host   *topo.NS
	ctrs   map[int]*topo.NS // probed containers by network index
	dir    string
	resolv string
}

// benchApply times loading a deny list into the kernel, for each size of
// applySizes and each of the four tools:
//
//   - "dockerfence": the dockerfence binary (e.binary), "dockerfence apply
//     -c POLICY", so the time includes starting the process, parsing the
//     policy and its list files, finding the bridges over netlink (Docker is
//     never reachable: --docker-host points at a socket that does not
//     exist) and the one netlink transaction.
//   - "nft -f": "nft -f" of the ruleset "dockerfence apply --dry-run" prints
//     for the same policy (the same table, as nft text).
//   - "iptables-restore": an equivalent linear iptables-nft filter table
//     (a chain per network jumped to from FORWARD on its bridge, one rule
//     per prefix going to a chain that rejects like dockerfence), loaded by
//     one full "iptables-restore FILE".
//   - "iptables per rule": the same rules added by one iptables process
//     each ("iptables -N" per chain, "iptables -A" per rule) from a shell
//     script, the seed's method. It is measured up to perRuleMax prefixes;
//     beyond, MedianMS is extrapolated linearly from the per-process cost at
//     perRuleMax prefixes over the same number of networks, and marked so.
//     The extrapolation is a lower bound: each iptables-nft process reads
//     the chain it appends to, so a process costs more as the chain grows
//     (on the 2-core test VM, adding 200 rules to a 10k-rule chain took 1.5
//     ms a process against 0.7 ms a process for the first 1k).
//
// Every command runs in the section's host namespace through "nsenter
// --net=PATH" (never in the benchmark's own namespace), and its time is
// the wall time of that process, nsenter included, for every tool alike.
// Every timed run starts from an empty ruleset: "nft flush ruleset" in the
// host namespace (which also removes iptables-nft's tables) runs before
// each, untimed. So the figures are the cost of a first apply of the whole
// policy; dockerfence's in-place update of an existing table is not
// measured here.
//
// Before a tool is timed at a size, its ruleset is loaded once and probed
// from a container on the first and on the last bridge: the LAN database
// (in the probed networks' lists) must be refused with a TCP reset and the
// LAN proxy (in no list) must answer; with one network, the last bridge is
// not fenced and must reach both. Verified is set when that held; when it
// did not, benchApply returns an error naming the tool and size.
func benchApply(tb *benchTB, e *env) ([]ApplyResult, error) {
	start := time.Now()
	b, err := newApplyBench(tb, e)
	if err != nil {
		return nil, err
	}
	for _, tool := range []string{"iptables", "iptables-restore"} {
		out, err := b.host.Try(tool, "-V")
		if err != nil {
			return nil, err
		}
		if !strings.Contains(out, "nf_tables") {
			return nil, fmt.Errorf("%s is not iptables-nft (%s): the legacy backend is not compared here, and the flush between runs would not reset it", tool, strings.TrimSpace(out))
		}
	}

	var res []ApplyResult
	measuredPerRule := map[int]ApplyResult{} // by networks, at perRuleMax prefixes
	for _, sz := range applySizes(e.quick) {
		files, err := b.prepare(sz)
		if err != nil {
			return nil, err
		}
		for _, tool := range applyTools {
			if tool == toolPerRule && sz.prefixes > perRuleMax || tool == toolBaseline {
				continue
			}
			tools := []string{tool}
			if tool == toolDockerfence && b.e.baseline != "" {
				// The two binaries take turns, run by run, so that the
				// machine's drift weighs on both alike.
				tools = append(tools, toolBaseline)
			}
			rs, err := b.measure(sz, files, tools...)
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				log.Printf("apply %-17s %6d prefixes over %2d networks: median %9.1f ms (runs %s)",
					r.Tool, sz.prefixes, sz.networks, r.MedianMS, formatRuns(r.RunsMS))
				res = append(res, r)
			}
			if tool == toolPerRule && sz.prefixes == perRuleMax {
				measuredPerRule[sz.networks] = rs[0]
			}
		}
		if err := os.RemoveAll(files.dir); err != nil {
			return nil, err
		}
	}
	for _, sz := range applySizes(e.quick) {
		m, ok := measuredPerRule[sz.networks]
		if sz.prefixes <= perRuleMax || !ok {
			continue
		}
		r := ApplyResult{Tool: toolPerRule, Prefixes: sz.prefixes, Networks: sz.networks, Extrapolated: true,
			MedianMS: extrapolate(m.MedianMS, applySize{m.Prefixes, m.Networks}, sz)}
		log.Printf("apply %-17s %6d prefixes over %2d networks: median %9.1f ms (extrapolated linearly from %d prefixes, %d processes instead of %d: a lower bound)",
			toolPerRule, sz.prefixes, sz.networks, r.MedianMS, m.Prefixes,
			perRuleCommands(sz.prefixes, sz.networks), perRuleCommands(m.Prefixes, m.Networks))
		res = append(res, r)
	}
	sortApplyResults(res)
	log.Printf("apply: %d results in %s", len(res), time.Since(start).Round(time.Second))
	return res, nil
}

// newApplyBench builds the section's topology: topo's host, LAN and
// internet, applyBridges bridges in the host with a container on the first
// and on the last, and TCP listeners on the two probe targets. It checks
// that with no ruleset every probe gets through, so a refusal later is the
// ruleset's doing.
func newApplyBench(tb *benchTB, e *env) (*applyBench, error) {
	tp := topo.New(tb)
	b := &applyBench{e: e, host: tp.Host, ctrs: map[int]*topo.NS{}, dir: tb.TempDir()}
	for i := range applyBridges {
		tp.AddBridge(tb, bridgeName(i), bridgeGateway(i), "")
	}
	for _, k := range probedNetworks() {
		b.ctrs[k] = tp.AddContainerOn(tb, bridgeName(k), fmt.Sprintf("c%02d", k), fmt.Sprintf("172.30.%d.2", k), "")
	}
	tp.LAN.ListenTCP(tb, probeAddr(topo.LANDB4, deniedPort))
	tp.LAN.ListenTCP(tb, probeAddr(topo.LANProxy4, allowedPort))
	b.resolv = filepath.Join(b.dir, "resolv.conf")
	if err := os.WriteFile(b.resolv, []byte("nameserver "+topo.LANDNS4+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := b.reset(); err != nil {
		return nil, err
	}
	if err := b.probe(0); err != nil {
		return nil, fmt.Errorf("apply: without any ruleset: %w", err)
	}
	return b, nil
}

// probeAddr joins an address and a port.
func probeAddr(addr string, port int) string { return net.JoinHostPort(addr, strconv.Itoa(port)) }

// applyFiles are the inputs of every tool for one size.
type applyFiles struct {
	dir, policy, nft, restore, perRule string
}

// prepare writes the list files and the policy of sz, the nft ruleset that
// "dockerfence apply --dry-run" prints for it, the iptables-restore file and,
// up to perRuleMax prefixes, the per-rule script.
func (b *applyBench) prepare(sz applySize) (applyFiles, error) {
	f := applyFiles{dir: filepath.Join(b.dir, fmt.Sprintf("%d-%d", sz.prefixes, sz.networks))}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return f, err
	}
	nets := networkPrefixes(sz.prefixes, sz.networks)
	var lists []string
	for k, ps := range nets {
		p := filepath.Join(f.dir, listName(k)+".txt")
		if err := os.WriteFile(p, []byte(renderList(ps)), 0o644); err != nil {
			return f, err
		}
		lists = append(lists, p)
	}
	write := func(name, content string) (string, error) {
		p := filepath.Join(f.dir, name)
		return p, os.WriteFile(p, []byte(content), 0o644)
	}
	var err error
	if f.policy, err = write("policy.yaml", renderPolicy(lists)); err != nil {
		return f, err
	}
	if f.restore, err = write("iptables.rules", renderRestore(nets)); err != nil {
		return f, err
	}
	if sz.prefixes <= perRuleMax {
		if f.perRule, err = write("per-rule.sh", renderPerRule(nets)); err != nil {
			return f, err
		}
	}
	var out, stderr bytes.Buffer
	args := b.dockerfence(b.e.binary, "apply", "--dry-run", "-c", f.policy)
	cmd := b.host.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return f, fmt.Errorf("dockerfence apply --dry-run (%d prefixes, %d networks): %v: %s", sz.prefixes, sz.networks, err, stderr.Bytes())
	}
	// The text first creates and deletes the table, so that loading it
	// replaces any table of that name in one transaction.
	if head := "table inet dockerfence\ndelete table inet dockerfence\n"; !bytes.HasPrefix(out.Bytes(), []byte(head)) {
		return f, fmt.Errorf("dockerfence apply --dry-run does not begin with %q", head)
	}
	if f.nft, err = write("ruleset.nft", out.String()); err != nil {
		return f, err
	}
	return f, nil
}

// dockerfence returns the command line of the dockerfence binary with
// args, set up so that it never reaches Docker, the host's resolv.conf or
// /run/dockerfence.
func (b *applyBench) dockerfence(binary string, args ...string) []string {
	return append([]string{binary,
		"--docker-host", "unix://" + filepath.Join(b.dir, "no-docker.sock"),
		"--socket", filepath.Join(b.e.dir, "x.sock"),
		"--resolv-conf", b.resolv,
	}, args...)
}

// command returns the command line that loads the ruleset of tool from
// files.
func (b *applyBench) command(tool string, f applyFiles) []string {
	switch tool {
	case toolDockerfence:
		return b.dockerfence(b.e.binary, "apply", "-c", f.policy)
	case toolBaseline:
		return b.dockerfence(b.e.baseline, "apply", "-c", f.policy)
	case toolNft:
		return []string{"nft", "-f", f.nft}
	case toolRestore:
		return []string{"iptables-restore", f.restore}
	case toolPerRule:
		return []string{"sh", f.perRule}
	}
	panic("apply: unknown tool " + tool)
}

// run runs args in the host namespace and returns its wall time, nsenter
// included.
func (b *applyBench) run(args []string) (time.Duration, error) {
	cmd := b.host.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		msg := out.String()
		if len(msg) > 2000 {
			msg = msg[:2000] + "..."
		}
		return took, fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, msg)
	}
	return took, nil
}

// reset empties the host namespace's ruleset: dockerfence's table and
// iptables-nft's tables alike.
func (b *applyBench) reset() error {
	_, err := b.host.Try("nft", "flush", "ruleset")
	return err
}

// measure verifies each tool's ruleset for sz with probes and then times
// e.runs loads of each, from an empty ruleset each time; with several tools
// they take turns, run by run.
func (b *applyBench) measure(sz applySize, f applyFiles, tools ...string) ([]ApplyResult, error) {
	rs := make([]ApplyResult, len(tools))
	fail := func(tool string, err error) ([]ApplyResult, error) {
		return nil, fmt.Errorf("apply %s, %d prefixes over %d networks: %w", tool, sz.prefixes, sz.networks, err)
	}
	for i, tool := range tools {
		rs[i] = ApplyResult{Tool: tool, Prefixes: sz.prefixes, Networks: sz.networks}
		if err := b.reset(); err != nil {
			return fail(tool, err)
		}
		if _, err := b.run(b.command(tool, f)); err != nil {
			return fail(tool, err)
		}
		if err := b.probe(sz.networks); err != nil {
			return fail(tool, err)
		}
		rs[i].Verified = true
	}
	for range b.e.runs {
		for i, tool := range tools {
			if err := b.reset(); err != nil {
				return fail(tool, err)
			}
			took, err := b.run(b.command(tool, f))
			if err != nil {
				return fail(tool, err)
			}
			rs[i].RunsMS = append(rs[i].RunsMS, ms(took))
		}
	}
	for i := range rs {
		rs[i].MedianMS = median(rs[i].RunsMS)
	}
	return rs, b.reset()
}

// probe checks what the probed containers reach when the first fenced
// networks are fenced (none for 0): from a fenced network the database is
// refused and the proxy answers; from one that is not, both answer.
func (b *applyBench) probe(fenced int) error {
	var errs []string
	for _, k := range probedNetworks() {
		ctr := b.ctrs[k]
		want := "ok"
		if k < fenced {
			want = "refused"
		}
		for _, p := range []struct{ addr, want string }{
			{probeAddr(topo.LANDB4, deniedPort), want},
			{probeAddr(topo.LANProxy4, allowedPort), "ok"},
		} {
			if got := harness.TCPOutcome(ctr, p.addr, probeTimeout); got != p.want {
				errs = append(errs, fmt.Sprintf("from %s to %s: got %s, want %s", bridgeName(k), p.addr, got, p.want))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("probes failed: %s", strings.Join(errs, "; "))
	}
	return nil
}

// formatRuns formats single runs for the log.
func formatRuns(runs []float64) string {
	s := make([]string, len(runs))
	for i, r := range runs {
		s[i] = strconv.FormatFloat(r, 'f', 1, 64)
	}
	return strings.Join(s, " ")
}
