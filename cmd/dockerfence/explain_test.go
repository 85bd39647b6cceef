package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/discover"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
)

func TestParseProbe(t *testing.T) {
	tests := []struct {
		in      string
		want    fence.Probe
		wantErr string
	}{
		{in: "192.168.1.5:5432", want: fence.Probe{Dst: netip.MustParseAddr("192.168.1.5"), Port: 5432, Proto: policy.ProtoTCP}},
		{in: "192.168.1.5:53/udp", want: fence.Probe{Dst: netip.MustParseAddr("192.168.1.5"), Port: 53, Proto: policy.ProtoUDP}},
		{in: "10.0.0.1", want: fence.Probe{Dst: netip.MustParseAddr("10.0.0.1"), Proto: policy.ProtoAny}},
		{in: "10.0.0.1/icmp", want: fence.Probe{Dst: netip.MustParseAddr("10.0.0.1"), Proto: policy.ProtoICMP}},
		{in: "[2001:db8::1]:443", want: fence.Probe{Dst: netip.MustParseAddr("2001:db8::1"), Port: 443, Proto: policy.ProtoTCP}},
		{in: "[2001:db8::1]:9/sctp", want: fence.Probe{Dst: netip.MustParseAddr("2001:db8::1"), Port: 9, Proto: policy.ProtoSCTP}},
		{in: "[2001:db8::1]/icmpv6", want: fence.Probe{Dst: netip.MustParseAddr("2001:db8::1"), Proto: policy.ProtoICMPv6}},
		{in: "2001:db8::1", want: fence.Probe{Dst: netip.MustParseAddr("2001:db8::1"), Proto: policy.ProtoAny}},
		{in: "::ffff:10.0.0.1", want: fence.Probe{Dst: netip.MustParseAddr("10.0.0.1"), Proto: policy.ProtoAny}},
		// The kernel's rules never see a zone: fe80::1%eth0 is fe80::1.
		{in: "[fe80::1%eth0]:22", want: fence.Probe{Dst: netip.MustParseAddr("fe80::1"), Port: 22, Proto: policy.ProtoTCP}},
		{in: "fe80::1%br-test/icmpv6", want: fence.Probe{Dst: netip.MustParseAddr("fe80::1"), Proto: policy.ProtoICMPv6}},
		{in: "10.0.0.1:0", wantErr: "port \"0\" is not 1..65535"},
		{in: "10.0.0.1:", wantErr: "no port after :"},
		{in: "[2001:db8::1]:", wantErr: "no port after :"},
		{in: "[2001:db8::1]443", wantErr: "\"443\" after ] is not :PORT"},
		{in: "10.0.0.1:53/gre", wantErr: "unknown protocol \"gre\""},
		{in: "10.0.0.1:53/icmp", wantErr: "icmp has no ports"},
		{in: "10.0.0.1/icmpv6", wantErr: "icmpv6 does not go to IPv4 addresses; use icmp"},
		{in: "2001:db8::1/icmp", wantErr: "icmp does not go to IPv6 addresses; use icmpv6"},
		{in: "db.example:5432", wantErr: "\"db.example\" is not an address"},
		{in: "[2001:db8::1:443", wantErr: "missing ]"},
	}
	for _, tt := range tests {
		got, err := parseProbe(tt.in)
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseProbe(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("parseProbe(%q): %v", tt.in, err)
		case got != tt.want:
			t.Errorf("parseProbe(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestRuleMatch(t *testing.T) {
	p, err := policy.Load("../../policy/testdata/seed.yaml", policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, r := range p.Sections[0].Rules(policy.Egress) {
		got = append(got, fence.RuleMatch(r))
	}
	want := "self|192.168.100.1|192.168.100.2 udp/53|192.168.0.0/16"
	if strings.Join(got, "|") != want {
		t.Errorf("ruleMatch = %q, want %q", strings.Join(got, "|"), want)
	}
}

func pfxs(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// The host of TestResolveNetwork: Docker knows app_default on br-app and
// db on a bridge of its own name; br-late and lxcbr0 are bridges Docker
// does not report.
var (
	testBridges = []bridge.Bridge{
		{Name: "br-app", Subnets: pfxs("172.20.0.0/16", "fd00:20::/64")},
		{Name: "br-late", Subnets: pfxs("172.21.0.0/16")},
		{Name: "br-web", Subnets: pfxs("172.22.0.0/16", "fd00:22::/64")},
		{Name: "dbbr", Subnets: pfxs("10.77.0.0/24", "fd00:77::/64")},
		{Name: "lxcbr0", Subnets: pfxs("10.0.3.0/24")},
	}
	testDocker = []docker.Network{
		{ID: "a1", Name: "app_default", Bridge: "br-app", Labels: map[string]string{"com.docker.compose.project": "app"}, Subnets: pfxs("172.20.0.0/16", "fd00:20::/64")},
		// No IPAM subnets: those of its bridge count.
		{ID: "d1", Name: "db", Bridge: "dbbr"},
		// IPv6 not enabled in Docker, though the bridge has an IPv6 subnet.
		{ID: "w1", Name: "web", Bridge: "br-web", Subnets: pfxs("172.22.0.0/16")},
		// Networks of other drivers: no bridge, not fenceable.
		{ID: "m1", Name: "lan", Driver: "macvlan", Subnets: pfxs("192.168.1.0/24")},
		{ID: "h1", Name: "host", Driver: "host"},
	}
	errNoDocker = errors.New("docker is not reachable at unix:///nowhere")
)

// resolveNetwork resolves arg as explain does, in the inventory of
// Docker's networks dn (unless derr says Docker did not answer) and the
// bridges (unless berr says they could not be listed).
func resolveNetwork(arg string, dn []docker.Network, derr error, bridges []bridge.Bridge, berr error) resolvedNetwork {
	d := &discover.Discoverer{
		Docker:  fakeDocker{nets: dn, err: derr},
		Bridges: bridge.ListerFunc(func() ([]bridge.Bridge, error) { return bridges, berr }),
	}
	inv, _ := d.Discover(context.Background())
	return resolveNetworkIn(inv, arg)
}

// fakeDocker answers with networks and containers, or fails with err.
type fakeDocker struct {
	nets []docker.Network
	ctrs []docker.Container
	err  error
}

func (f fakeDocker) Networks(context.Context) ([]docker.Network, error)     { return f.nets, f.err }
func (f fakeDocker) Containers(context.Context) ([]docker.Container, error) { return f.ctrs, f.err }
func (f fakeDocker) Host() string                                           { return "unix:///nowhere" }

func TestResolveNetwork(t *testing.T) {
	app := policy.Network{ID: "a1", Name: "app_default", Bridge: "br-app", Labels: map[string]string{"com.docker.compose.project": "app"}, Subnets: pfxs("172.20.0.0/16", "fd00:20::/64")}
	db := policy.Network{ID: "d1", Name: "db", Bridge: "dbbr", Subnets: pfxs("10.77.0.0/24", "fd00:77::/64")}
	tests := []struct {
		name       string
		arg        string
		dockerDown bool
		bridgeErr  error
		want       policy.Network
		source     string
		catchAll   bool
		unfenced   bool
		note       string
	}{
		{name: "docker: by name", arg: "app_default", want: app, source: sourceDocker, note: "Docker's network app_default (bridge br-app)"},
		{name: "docker: by bridge", arg: "br-app", want: app, source: sourceDocker},
		{name: "docker: subnet stands for the whole network", arg: "fd00:20::/64", want: app, source: sourceDocker, note: "which holds fd00:20::/64"},
		{name: "docker: subnet with host bits", arg: "172.20.9.9/16", want: app, source: sourceDocker},
		{name: "docker: part of a subnet", arg: "172.20.5.0/24", want: app, source: sourceDocker, note: "whose subnet 172.20.0.0/16 contains 172.20.5.0/24"},
		{name: "docker: subnets from the bridge", arg: "db", want: db, source: sourceDocker},
		{name: "docker: a subnet of the bridge that Docker does not list", arg: "fd00:22::/64", want: policy.Network{ID: "w1", Name: "web", Bridge: "br-web", Subnets: pfxs("172.22.0.0/16")}, source: sourceDocker, note: "though Docker does not list that subnet"},
		{name: "docker: macvlan by name", arg: "lan", want: policy.Network{ID: "m1", Name: "lan", Driver: "macvlan", Subnets: pfxs("192.168.1.0/24")}, source: sourceDocker, note: "Docker's network lan (driver macvlan)"},
		{name: "docker: macvlan by subnet", arg: "192.168.1.7/32", want: policy.Network{ID: "m1", Name: "lan", Driver: "macvlan", Subnets: pfxs("192.168.1.0/24")}, source: sourceDocker, note: "Docker's network lan (driver macvlan), whose subnet 192.168.1.0/24 contains 192.168.1.7/32"},
		{name: "docker: host", arg: "host", want: policy.Network{ID: "h1", Name: "host", Driver: "host"}, source: sourceDocker, note: "Docker's network host (driver host)"},
		{name: "docker: unknown br-* bridge", arg: "br-late", want: policy.Network{Name: "br-late", Bridge: "br-late", Subnets: pfxs("172.21.0.0/16")}, source: sourceNetlink, catchAll: true, note: "rules for bridges not known yet"},
		{name: "docker: unknown br-* bridge by subnet", arg: "172.21.0.0/16", want: policy.Network{Name: "br-late", Bridge: "br-late", Subnets: pfxs("172.21.0.0/16")}, source: sourceNetlink, catchAll: true},
		{name: "docker: unknown other bridge", arg: "lxcbr0", want: policy.Network{Bridge: "lxcbr0", Subnets: pfxs("10.0.3.0/24")}, source: sourceNetlink, unfenced: true, note: "apply does not fence it"},
		{name: "docker: no such name", arg: "nope", want: policy.Network{Name: "nope"}, source: sourceArgument, note: "judged by name alone"},
		{name: "docker: no such subnet", arg: "192.0.2.0/24", want: policy.Network{Subnets: pfxs("192.0.2.0/24")}, source: sourceArgument, note: "judged by the subnet alone"},
		{name: "docker: a subnet wider than any network's", arg: "172.16.0.0/12", want: policy.Network{Subnets: pfxs("172.16.0.0/12")}, source: sourceArgument},
		{name: "netlink: br-* bridge by name", arg: "br-app", dockerDown: true, want: policy.Network{Name: "br-app", Bridge: "br-app", Subnets: pfxs("172.20.0.0/16", "fd00:20::/64")}, source: sourceNetlink, note: "docker is not reachable at unix:///nowhere; bridge br-app found over netlink"},
		{name: "netlink: subnet stands for the whole bridge", arg: "172.20.0.0/16", dockerDown: true, want: policy.Network{Name: "br-app", Bridge: "br-app", Subnets: pfxs("172.20.0.0/16", "fd00:20::/64")}, source: sourceNetlink},
		{name: "netlink: other bridge has no name", arg: "dbbr", dockerDown: true, want: policy.Network{Bridge: "dbbr", Subnets: pfxs("10.77.0.0/24", "fd00:77::/64")}, source: sourceNetlink, note: "no name that name matches could fit"},
		{name: "netlink: Docker's name is unknown", arg: "app_default", dockerDown: true, want: policy.Network{Name: "app_default"}, source: sourceArgument, note: "no bridge has that name"},
		{name: "netlink: no such subnet", arg: "192.0.2.0/24", dockerDown: true, want: policy.Network{Subnets: pfxs("192.0.2.0/24")}, source: sourceArgument, note: "no bridge holds this subnet"},
		{name: "neither", arg: "br-app", dockerDown: true, bridgeErr: errors.New("netlink: permission denied"), want: policy.Network{Name: "br-app"}, source: sourceArgument, note: "bridges not listed: netlink: permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dn, derr := testDocker, error(nil)
			if tt.dockerDown {
				dn, derr = nil, errNoDocker
			}
			bs := testBridges
			if tt.bridgeErr != nil {
				bs = nil
			}
			got := resolveNetwork(tt.arg, dn, derr, bs, tt.bridgeErr)
			if !reflect.DeepEqual(got.Network, tt.want) {
				t.Errorf("network = %+v, want %+v", got.Network, tt.want)
			}
			if got.DockerAnswered == tt.dockerDown {
				t.Errorf("DockerAnswered = %v with Docker down: %v", got.DockerAnswered, tt.dockerDown)
			}
			if got.Source != tt.source || got.CatchAllOnly != tt.catchAll || got.Unfenced != tt.unfenced {
				t.Errorf("source, catch-all only, unfenced = %s, %v, %v; want %s, %v, %v", got.Source, got.CatchAllOnly, got.Unfenced, tt.source, tt.catchAll, tt.unfenced)
			}
			if !strings.Contains(got.Note, tt.note) {
				t.Errorf("note = %q, want it to contain %q", got.Note, tt.note)
			}
		})
	}
}

// explainPolicy has a bridge section before the catch-all, so that the
// tests see which of the two judges a bridge Docker does not report.
const explainPolicy = `version: 1
settings: {deny_action: drop}
lists:
  lan: [192.168.100.0/24, "fd00:100::/64"]
networks:
  - match: {bridge: "br-*"}
    egress:
      - allow: self
      - deny: "@lan"
        proto: tcp
        ports: [5432, "8000-8080"]
        comment: databases
    host:
      - allow: self
        proto: icmpv6
    host_default: deny
  - match: {name: "*"}
    egress:
      - deny: any
`

func loadTestPolicy(t *testing.T, text string) (*policy.Policy, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(file, policy.Options{ResolvConf: filepath.Join(dir, "no-resolv.conf")})
	if err != nil {
		t.Fatal(err)
	}
	return pol, file
}

func TestExplanation(t *testing.T) {
	pol, _ := loadTestPolicy(t, explainPolicy)
	audit, _ := loadTestPolicy(t, strings.Replace(explainPolicy, "{deny_action: drop}", "{mode: audit}", 1))
	app := resolveNetwork("app_default", testDocker, nil, testBridges, nil)
	late := resolveNetwork("br-late", testDocker, nil, testBridges, nil)
	lxc := resolveNetwork("lxcbr0", testDocker, nil, testBridges, nil)
	probe := func(to, from string, host bool) fence.Probe {
		pr, err := parseProbe(to)
		if err != nil {
			t.Fatal(err)
		}
		if from != "" {
			pr.Src = netip.MustParseAddr(from)
		}
		if host {
			pr.Hook = policy.Host
		}
		return pr
	}
	tests := []struct {
		name string
		pol  *policy.Policy
		rn   resolvedNetwork
		pr   fence.Probe
		want status.Explanation
	}{
		{
			name: "rule denies",
			pol:  pol, rn: app, pr: probe("192.168.100.50:5432", "", false),
			want: status.Explanation{Section: 1, Match: `{bridge: "br-*"}`, Rule: "egress 2", RuleMatch: "@lan tcp/5432,8000-8080", Comment: "databases", DecidedBy: "rule", Verdict: "deny", DenyAction: "drop"},
		},
		{
			name: "port outside the rule's: egress_default",
			pol:  pol, rn: app, pr: probe("[fd00:100::50]:8081", "", false),
			want: status.Explanation{Section: 1, Match: `{bridge: "br-*"}`, DecidedBy: "default", Verdict: "allow", Passes: true},
		},
		{
			name: "audit mode passes a denial",
			pol:  audit, rn: app, pr: probe("192.168.100.50:8000", "", false),
			want: status.Explanation{Section: 1, Match: `{bridge: "br-*"}`, Rule: "egress 2", RuleMatch: "@lan tcp/5432,8000-8080", Comment: "databases", DecidedBy: "rule", Verdict: "deny", Audit: true, Passes: true},
		},
		{
			name: "self in the host hook holds both families",
			pol:  pol, rn: app, pr: probe("fd00:20::1/icmpv6", "", true),
			want: status.Explanation{Section: 1, Match: `{bridge: "br-*"}`, Rule: "host 1", RuleMatch: "self icmpv6", DecidedBy: "rule", Verdict: "allow", Passes: true},
		},
		{
			name: "spoofed source",
			pol:  pol, rn: app, pr: probe("203.0.113.10:443", "10.9.9.9", false),
			want: status.Explanation{Section: 1, Match: `{bridge: "br-*"}`, DecidedBy: "anti-spoofing", Spoofed: true, Verdict: "deny", DenyAction: "drop"},
		},
		{
			name: "link-local source to the host",
			pol:  pol, rn: app, pr: probe("fe80::1:22", "fe80::2", true),
			want: status.Explanation{Section: 1, Match: `{bridge: "br-*"}`, DecidedBy: "default", Verdict: "deny", DenyAction: "drop"},
		},
		{
			name: "bridge Docker does not report: the catch-all judges, not the first match",
			pol:  pol, rn: late, pr: probe("203.0.113.10:443", "", false),
			want: status.Explanation{Section: 2, Match: `{name: "*"}`, Rule: "egress 1", RuleMatch: "any", DecidedBy: "rule", Verdict: "deny", DenyAction: "drop", CatchAll: true},
		},
		{
			name: "macvlan: not fenceable, though the catch-all matches it",
			pol:  pol, rn: resolveNetwork("lan", testDocker, nil, testBridges, nil), pr: probe("203.0.113.10:443", "", false),
			want: status.Explanation{DecidedBy: "not fenceable", Verdict: "allow", Passes: true},
		},
		{
			name: "host network: not fenceable",
			pol:  pol, rn: resolveNetwork("host", testDocker, nil, testBridges, nil), pr: probe("192.168.1.1:22", "", true),
			want: status.Explanation{DecidedBy: "not fenceable", Verdict: "allow", Passes: true},
		},
		{
			name: "bridge that is not Docker's and Docker does not report: not fenced",
			pol:  pol, rn: lxc, pr: probe("203.0.113.10:443", "", false),
			want: status.Explanation{DecidedBy: "unfenced", Verdict: "allow", Passes: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := tt.rn.evaluate(tt.pol, tt.pr, tt.pr.Src.IsValid())
			if err != nil {
				t.Fatal(err)
			}
			x := &status.Explain{Network: tt.rn.Network, Source: tt.rn.Source, Note: tt.rn.Note, Probe: tt.pr, Decision: d}
			got := x.Explanation()
			got.Network, got.Note, got.Packet = status.ExplainedNetwork{}, "", status.ExplainedPacket{}
			// The section's rules that decided are the probe's direction's:
			// none of these packets goes into another network.
			if got.Section != 0 && got.SectionHook != tt.pr.Hook.String() {
				t.Errorf("section_hook %q; want the probe's, %q", got.SectionHook, tt.pr.Hook)
			}
			got.SectionHook = ""
			if len(got.Layers) == 0 {
				got.Layers = nil // a network's packet passes no container layer
			}
			// What the table does: the deny action, or allow.
			if tt.want.Action = "allow"; tt.want.DenyAction != "" {
				tt.want.Action = tt.want.DenyAction
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("explanation =\n%+v, want\n%+v", got, tt.want)
			}
		})
	}

	t.Run("catch-all only without a catch-all: not fenced", func(t *testing.T) {
		noCatchAll, _ := loadTestPolicy(t, explainPolicy[:strings.Index(explainPolicy, "  - match: {name")])
		d, err := late.evaluate(noCatchAll, probe("203.0.113.10:443", "", false), false)
		if err != nil || d.Section != nil || !d.Passes {
			t.Errorf("decision = %+v, want no section and a pass", d)
		}
	})
}

// runExplain runs the explain command with Docker unreachable and returns
// its output.
func runExplain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"explain", "--resolv-conf", filepath.Join(dir, "resolv.conf"), "--docker-host", "unix://" + filepath.Join(dir, "no-docker.sock")}, args...))
	err := root.Execute()
	return out.String(), err
}

func TestExplainJSON(t *testing.T) {
	_, file := loadTestPolicy(t, explainPolicy)
	// 198.51.100.0/24 is documentation space: no bridge of the test
	// machine holds it, so it is judged as a new bridge, by the catch-all.
	out, err := runExplain(t, "-c", file, "--network", "198.51.100.0/24", "--to", "192.168.100.50:5432", "--json")
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(out), &fields); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	// The schema is stable: every field is always there.
	wantKeys := []string{"action", "audit", "catch_all", "comment", "container", "decided_by", "deny_action", "layers", "match", "network", "note", "out", "packet", "passes", "rule", "rule_match", "section", "section_hook", "spoofed", "verdict"}
	if got := keys(fields); !slices.Equal(got, wantKeys) {
		t.Errorf("keys = %v, want %v", got, wantKeys)
	}
	if got := keys(fields["network"].(map[string]any)); !slices.Equal(got, []string{"bridge", "driver", "name", "source", "subnets"}) {
		t.Errorf("network keys = %v", got)
	}
	if got := keys(fields["packet"].(map[string]any)); !slices.Equal(got, []string{"dst", "hook", "port", "proto", "src"}) {
		t.Errorf("packet keys = %v", got)
	}
	var e status.Explanation
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.Note, `no network holds 198.51.100.0/24; judged by section 2 {name: "*"} as a new bridge would be: by the catch-all`) {
		t.Errorf("note %q", e.Note)
	}
	e.Note = ""
	if len(e.Layers) == 0 {
		e.Layers = nil // a network's packet passes no container layer
	}
	want := status.Explanation{
		Network: status.ExplainedNetwork{Subnets: []string{"198.51.100.0/24"}, Source: sourceArgument},
		Packet:  status.ExplainedPacket{Hook: "egress", Dst: "192.168.100.50", Port: 5432, Proto: "tcp"},
		Section: 2, Match: `{name: "*"}`, SectionHook: "egress", Rule: "egress 1", RuleMatch: "any", DecidedBy: "rule", Verdict: "deny", DenyAction: "drop", Action: "drop", CatchAll: true,
	}
	if !reflect.DeepEqual(e, want) {
		t.Errorf("explain --json =\n%+v, want\n%+v", e, want)
	}

	// A name nothing has: judged by name alone, with an empty list of
	// subnets, not null.
	out, err = runExplain(t, "-c", file, "--network", "no-such-network", "--to", "10.1.2.3/icmp", "--host", "--json")
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	for _, want := range []string{`"subnets": []`, `"section": 2`, `"match": "{name: \"*\"}"`, `"decided_by": "default"`, `"passes": true`} {
		if !strings.Contains(out, want) {
			t.Errorf("explain --json for a name no bridge has lacks %s:\n%s", want, out)
		}
	}
}

func TestExplainHuman(t *testing.T) {
	_, file := loadTestPolicy(t, explainPolicy)
	_, noCatchAll := loadTestPolicy(t, explainPolicy[:strings.Index(explainPolicy, "  - match: {name")])
	out, err := runExplain(t, "-c", noCatchAll, "--network", "198.51.100.0/24", "--to", "[2001:db8::5]:22", "--from", "2001:db8::9", "--host")
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	for _, want := range []string{
		"network  (by subnet) (bridge -, subnets 198.51.100.0/24)",
		"note     docker is not reachable",
		"packet   host from 2001:db8::9 to [2001:db8::5]:22, tcp",
		"section  none matches this network",
		"verdict  allow: the network is not fenced",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// With a {name: "*"} section, a subnet no network holds is judged as
	// a new bridge would be, by the catch-all: the form of explain's own
	// example.
	out, err = runExplain(t, "-c", file, "--network", "198.51.100.0/24", "--to", "192.168.100.50:5432")
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	for _, want := range []string{
		"network  (by subnet) (bridge -, subnets 198.51.100.0/24)",
		`note     no network holds 198.51.100.0/24; judged by section 2 {name: "*"} as a new bridge would be: by the catch-all, the rules for docker0 and br-* bridges that appear after apply (docker is not reachable`,
		`section  2 {name: "*"} (`,
		"rule     egress 1: deny any (",
		"verdict  deny (drop)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A name no network has, likewise.
	out, err = runExplain(t, "-c", file, "--network", "web_default", "--to", "192.168.100.50:5432")
	if want := `note     no network or bridge is named web_default; judged by section 2 {name: "*"} as a new bridge would be`; err != nil || !strings.Contains(out, want) {
		t.Errorf("explain of a name nothing has: %v; output lacks %q:\n%s", err, want, out)
	}
	// Without Docker, a policy that matches by name still gets an answer,
	// with a warning that apply would refuse it.
	_, byName := loadTestPolicy(t, strings.Replace(explainPolicy, `{bridge: "br-*"}`, `{name: "app_*"}`, 1))
	out, err = runExplain(t, "-c", byName, "--network", "app_default", "--to", "10.0.0.1:80")
	if err != nil || !strings.Contains(out, "apply refuses this policy while Docker is not reachable") {
		t.Errorf("explain of a name-matching policy without Docker: %v\n%s", err, out)
	}
	if _, err := runExplain(t, "-c", file, "--network", "x", "--to", "10.0.0.1", "--from", "nope"); err == nil || !strings.Contains(err.Error(), `--from "nope": not an address`) {
		t.Errorf("bad --from: %v", err)
	}
}

// TestExplainNetworkContainerLayer judges probes of explain --network from
// a given source as the kernel does with Docker's containers: an address
// that no container holds is held by the container layer, a container's
// address is judged by its section too; without --from, the network's
// layer alone judges (the made-up source is no container's).
func TestExplainNetworkContainerLayer(t *testing.T) {
	pol, _ := loadTestPolicy(t, `version: 1
networks:
  - match: {name: "*"}
    egress_default: allow
containers:
  - match: {label: "role=worker"}
    egress_default: deny
`)
	worker := docker.Container{ID: strings.Repeat("a", 64), Name: "worker", Image: "busybox", Labels: map[string]string{"role": "worker"},
		Endpoints: []docker.Endpoint{{Network: "app_default", NetworkID: "a1", IPv4: netip.MustParseAddr("172.20.0.2"), MAC: "02:42:ac:14:00:02"}}}
	// A second worker that is starting: its bridge port is not found yet.
	starting := worker
	starting.ID, starting.Name = strings.Repeat("b", 64), "starting"
	starting.Endpoints = []docker.Endpoint{{Network: "app_default", NetworkID: "a1", IPv4: netip.MustParseAddr("172.20.0.3"), MAC: "02:42:ac:14:00:03"}}
	mac, _ := net.ParseMAC("02:42:ac:14:00:02")
	d := &discover.Discoverer{
		Docker:  fakeDocker{nets: testDocker, ctrs: []docker.Container{worker, starting}},
		Bridges: bridge.ListerFunc(func() ([]bridge.Bridge, error) { return testBridges, nil }),
		Ports: func(string) ([]bridge.Port, error) {
			return []bridge.Port{{Name: "vethw0", Index: 7, PeerMAC: mac}}, nil
		},
		ListContainers: true,
	}
	inv, _ := d.Discover(context.Background())
	rn := resolveNetworkIn(inv, "app_default")
	if !rn.hasContainerLayer(pol) {
		t.Errorf("hasContainerLayer = false for a policy with container sections and Docker's containers")
	}
	pr, err := parseProbe("203.0.113.10:443")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		from      string
		decidedBy string
		passes    bool
	}{
		{"", "default", true},
		{"172.20.0.9", "held", false},
		{"172.20.0.2", "container section", false},
		// From its bridge port, not checked yet: held.
		{"172.20.0.3", "held", false},
	} {
		p := pr
		if tt.from != "" {
			p.Src = netip.MustParseAddr(tt.from)
		}
		dec, err := rn.evaluate(pol, p, tt.from != "")
		if err != nil {
			t.Fatal(err)
		}
		x := (&status.Explain{Network: rn.Network, Source: rn.Source, Probe: p, Decision: dec}).Explanation()
		if x.DecidedBy != tt.decidedBy || x.Passes != tt.passes {
			t.Errorf("--from %q: decided by %q, passes %v; want %q, %v", tt.from, x.DecidedBy, x.Passes, tt.decidedBy, tt.passes)
		}
	}
}

// TestExplainIngress runs explain --ingress: a connection from --from to
// the published port --to-port, judged by the ingress rules of the
// section that covers the network, in words and in JSON.
func TestExplainIngress(t *testing.T) {
	_, file := loadTestPolicy(t, `version: 1
settings: {deny_action: reject}
lists:
  office: [198.51.100.0/24, "2001:db8:1::/48"]
networks:
  - match: {subnet: 203.0.113.0/24}
    ingress:
      - allow: "@office"
        proto: tcp
        ports: [8080]
        comment: admin UI from the office only
      - deny: any
        ports: [8080]
    ingress_default: allow
`)
	out, err := runExplain(t, "-c", file, "--network", "203.0.113.0/24", "--ingress", "--from", "192.0.2.1", "--to-port", "8080")
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	for _, want := range []string{
		"packet   ingress from 192.0.2.1 to 203.0.113.1:8080, tcp (published port 8080",
		"section  1 {subnet: 203.0.113.0/24} (",
		"rule     ingress 2: deny any (",
		"verdict  deny (reject)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = runExplain(t, "-c", file, "--network", "203.0.113.0/24", "--ingress", "--from", "2001:db8:1::7", "--to", "203.0.113.9", "--to-port", "8080/tcp", "--json")
	if err == nil {
		t.Errorf("--from IPv6 with --to IPv4: no error\n%s", out)
	}
	out, err = runExplain(t, "-c", file, "--network", "203.0.113.0/24", "--ingress", "--from", "198.51.100.7", "--to", "203.0.113.9", "--to-port", "8080", "--json")
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	var e status.Explanation
	if err := json.Unmarshal([]byte(out), &e); err != nil {
		t.Fatal(err)
	}
	if e.Packet.Hook != "ingress" || e.Packet.Src != "198.51.100.7" || e.Packet.Dst != "203.0.113.9" || e.Packet.Port != 8080 || e.Rule != "ingress 1" || e.Comment != "admin UI from the office only" || e.Action != "allow" || !e.Passes {
		t.Errorf("explain --ingress --json = %+v", e)
	}
	for _, args := range [][]string{
		{"--ingress", "--to-port", "8080"},
		{"--ingress", "--from", "192.0.2.1"},
		{"--ingress", "--from", "192.0.2.1", "--to-port", "8080/icmp"},
		{"--ingress", "--from", "192.0.2.1", "--to-port", "0"},
		{"--to", "203.0.113.9", "--to-port", "8080"},
		{"--ingress", "--host", "--from", "192.0.2.1", "--to-port", "8080"},
	} {
		if out, err := runExplain(t, append([]string{"-c", file, "--network", "203.0.113.0/24"}, args...)...); err == nil {
			t.Errorf("explain %v: no error\n%s", args, out)
		}
	}
}
