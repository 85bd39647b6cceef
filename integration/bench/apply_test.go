package main

import (
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// topoAddrs are the addresses of the topology that generated prefixes must
// not cover.
var topoAddrs = []string{
	topo.HostBridge4, topo.CtrIP4, topo.HostLAN4, topo.LANProxy4, topo.LANDNS4, topo.LANDB4,
	topo.HostWAN4, topo.InetIP4, "172.30.0.1", "172.30.0.2", "172.30.49.1", "172.30.49.2",
}

func TestBenchPrefixesDistinctAndUnmergeable(t *testing.T) {
	const n = 100000
	ps := make([]netip.Prefix, n)
	ten := netip.MustParsePrefix("10.0.0.0/8")
	for i := range ps {
		ps[i] = benchPrefix(i)
		if !ten.Contains(ps[i].Addr()) || ps[i].Bits() != 30 || ps[i].Masked() != ps[i] {
			t.Fatalf("benchPrefix(%d) = %s, want a /30 in 10.0.0.0/8", i, ps[i])
		}
	}
	if got := len(nft.Ranges(ps)); got != n {
		t.Errorf("nft.Ranges merges %d prefixes into %d ranges, want no merging", n, got)
	}
	for _, a := range topoAddrs {
		if policy.Contains(ps, netip.MustParseAddr(a)) {
			t.Errorf("the generated prefixes cover the topology's address %s", a)
		}
	}
	if got := benchPrefix(1).String(); got != "10.0.0.8/30" {
		t.Errorf("benchPrefix(1) = %s, want 10.0.0.8/30", got)
	}
}

func TestNetworkPrefixes(t *testing.T) {
	for _, sz := range []applySize{{1000, 1}, {1000, 50}, {10000, 50}, {100000, 1}, {100000, 50}} {
		nets := networkPrefixes(sz.prefixes, sz.networks)
		if len(nets) != sz.networks {
			t.Fatalf("%v: %d networks", sz, len(nets))
		}
		var all []netip.Prefix
		for k, ps := range nets {
			if len(ps) != sz.prefixes/sz.networks {
				t.Errorf("%v: network %d has %d prefixes, want %d", sz, k, len(ps), sz.prefixes/sz.networks)
			}
			probed := slices.Contains(probedNetworks(), k)
			if probed && ps[len(ps)-1] != deniedPrefix {
				t.Errorf("%v: probed network %d ends with %s, want %s", sz, k, ps[len(ps)-1], deniedPrefix)
			}
			if !probed && slices.Contains(ps, deniedPrefix) {
				t.Errorf("%v: network %d, not probed, denies %s", sz, k, deniedPrefix)
			}
			if got := len(nft.Ranges(ps)); got != len(ps) {
				t.Errorf("%v: network %d: %d prefixes merge into %d ranges", sz, k, len(ps), got)
			}
			all = append(all, ps...)
		}
		if len(all) != sz.prefixes {
			t.Errorf("%v: %d prefixes in total", sz, len(all))
		}
		// Apart from the denied target, which two probed networks may share,
		// no prefix appears twice.
		seen := map[netip.Prefix]bool{}
		for _, p := range all {
			if seen[p] && p != deniedPrefix {
				t.Errorf("%v: %s appears twice", sz, p)
			}
			seen[p] = true
		}
		for _, a := range topoAddrs {
			if want := a == topo.LANDB4; policy.Contains(all, netip.MustParseAddr(a)) != want {
				t.Errorf("%v: lists cover %s: %v, want %v", sz, a, !want, want)
			}
		}
	}
}

func TestApplySizes(t *testing.T) {
	if got := len(applySizes(false)); got != 6 {
		t.Errorf("full: %d sizes, want 6", got)
	}
	quick := applySizes(true)
	if len(quick) != 4 {
		t.Errorf("quick: %d sizes, want 4", len(quick))
	}
	for _, sz := range quick {
		if sz.prefixes > 10000 {
			t.Errorf("quick has %v", sz)
		}
	}
	for _, q := range [][]applySize{quick, applySizes(false)} {
		// The per-rule measurement at perRuleMax must come before the
		// sizes extrapolated from it.
		if q[0].prefixes != perRuleMax {
			t.Errorf("first size %v, want %d prefixes", q[0], perRuleMax)
		}
	}
}

// TestRenderPolicyParses checks that the generated policy is valid and
// denies what the lists say.
func TestRenderPolicyParses(t *testing.T) {
	dir := t.TempDir()
	nets := networkPrefixes(1000, 50)
	var files []string
	for k, ps := range nets {
		f := filepath.Join(dir, listName(k)+".txt")
		if err := os.WriteFile(f, []byte(renderList(ps)), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	text := renderPolicy(files)
	pol, err := policy.Parse("policy.yaml", []byte(text), policy.Options{ResolvConf: filepath.Join(dir, "none")})
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if pol.Settings.DenyAction != policy.Reject || pol.Settings.LogDenied {
		t.Errorf("settings %+v, want reject without logging", pol.Settings)
	}
	if len(pol.Sections) != 50 {
		t.Fatalf("%d sections, want 50", len(pol.Sections))
	}
	for k, ps := range nets {
		l := pol.Lists[listName(k)]
		if l == nil || !slices.Equal(l.Prefixes, ps) {
			t.Errorf("list %s does not hold network %d's prefixes", listName(k), k)
		}
	}
	for _, want := range []string{"- match: {bridge: br-b00}", "- match: {bridge: br-b49}", `- deny: "@l49"`, "egress_default: allow"} {
		if !strings.Contains(text, want) {
			t.Errorf("policy lacks %q:\n%s", want, text)
		}
	}
}

func TestRenderRestore(t *testing.T) {
	nets := [][]netip.Prefix{
		{benchPrefix(0), deniedPrefix},
		{benchPrefix(2), benchPrefix(3)},
	}
	want := `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DF-REJECT - [0:0]
:DF-br-b00 - [0:0]
:DF-br-b01 - [0:0]
-A FORWARD -i br-b00 -j DF-br-b00
-A FORWARD -i br-b01 -j DF-br-b01
-A DF-br-b00 -d 10.0.0.0/30 -j DF-REJECT
-A DF-br-b00 -d 192.168.100.50/32 -j DF-REJECT
-A DF-br-b01 -d 10.0.0.16/30 -j DF-REJECT
-A DF-br-b01 -d 10.0.0.24/30 -j DF-REJECT
-A DF-REJECT -p tcp -j REJECT --reject-with tcp-reset
-A DF-REJECT -j REJECT --reject-with icmp-admin-prohibited
COMMIT
`
	if got := renderRestore(nets); got != want {
		t.Errorf("renderRestore:\n%s\nwant:\n%s", got, want)
	}
}

func TestRenderPerRule(t *testing.T) {
	nets := networkPrefixes(1000, 50)
	script := renderPerRule(nets)
	lines := strings.Split(strings.TrimSuffix(script, "\n"), "\n")
	if lines[0] != "#!/bin/sh" || lines[1] != "set -e" {
		t.Errorf("script starts %q", lines[:2])
	}
	cmds := lines[2:]
	if len(cmds) != perRuleCommands(1000, 50) {
		t.Errorf("%d commands, perRuleCommands says %d", len(cmds), perRuleCommands(1000, 50))
	}
	// Chains are created before any rule, and every rule of the restore
	// file is added, in the same order.
	var restored []string
	for _, l := range strings.Split(renderRestore(nets), "\n") {
		if r, ok := strings.CutPrefix(l, "-A "); ok {
			restored = append(restored, "iptables -A "+r)
		}
	}
	nChains := len(iptablesChains(50))
	for _, c := range cmds[:nChains] {
		if !strings.HasPrefix(c, "iptables -N DF-") {
			t.Errorf("chain command %q", c)
		}
	}
	if !slices.Equal(cmds[nChains:], restored) {
		t.Errorf("the script's rules differ from the restore file's")
	}
}

func TestExtrapolate(t *testing.T) {
	m := applySize{1000, 1}
	if got := extrapolate(1000, m, m); got != 1000 {
		t.Errorf("same size: %v", got)
	}
	got := extrapolate(1004, m, applySize{10000, 1})
	want := 1004.0 / float64(perRuleCommands(1000, 1)) * float64(perRuleCommands(10000, 1))
	if math.Abs(got-want) > 1e-9 || got < 9900 || got > 10100 {
		t.Errorf("extrapolate to 10k = %v, want %v (about ten times)", got, want)
	}
}

func TestSortApplyResults(t *testing.T) {
	rs := []ApplyResult{
		{Tool: toolPerRule, Prefixes: 1000, Networks: 50},
		{Tool: toolNft, Prefixes: 10000, Networks: 1},
		{Tool: toolDockerfence, Prefixes: 10000, Networks: 1},
		{Tool: toolRestore, Prefixes: 1000, Networks: 1},
		{Tool: toolDockerfence, Prefixes: 1000, Networks: 50},
	}
	sortApplyResults(rs)
	var got []string
	for _, r := range rs {
		got = append(got, fmt.Sprintf("%s/%d/%d", r.Tool, r.Prefixes, r.Networks))
	}
	want := []string{"iptables-restore/1000/1", "dockerfence/10000/1", "nft -f/10000/1", "dockerfence/1000/50", "iptables per rule/1000/50"}
	if !slices.Equal(got, want) {
		t.Errorf("sorted %q, want %q", got, want)
	}
}
