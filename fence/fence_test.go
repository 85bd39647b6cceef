package fence

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/internal/testpolicy"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// prefixes, testNetworks and loadPolicy are the shared test policy helpers.
var (
	prefixes     = testpolicy.Prefixes
	testNetworks = testpolicy.Networks
	loadPolicy   = testpolicy.Load
)

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./fence -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from the rendered table (-golden +got); if the change is intended run go test ./fence -update:\n%s", file, diff)
	}
}

func TestGolden(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.txt")
	var b strings.Builder
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&b, "10.%d.%d.0/24\n", i/256, i%256)
	}
	b.WriteString("10.0.0.0/16\n") // overlaps the first 256 entries: merged, never a kernel error
	os.WriteFile(big, []byte(b.String()), 0o644)
	bigPolicy := filepath.Join(t.TempDir(), "big.yaml")
	os.WriteFile(bigPolicy, []byte("version: 1\nlists:\n  big: {file: "+big+"}\nnetworks:\n  - match: {name: app_default}\n    egress:\n      - deny: \"@big\"\n"), 0o644)

	tests := []struct {
		name, policy string
		networks     []policy.Network
	}{
		{"default", "", testNetworks},
		{"default-no-networks", "", nil},
		{"seed", "testdata/seed.yaml", testNetworks},
		{"ipv6", "testdata/ipv6.yaml", testNetworks},
		{"audit", "testdata/audit.yaml", testNetworks},
		{"list10k", bigPolicy, testNetworks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := compileTable(loadPolicy(t, tt.policy), tt.networks)
			checkGolden(t, tt.name, tbl.Text())
		})
	}
}

func TestBuildFacts(t *testing.T) {
	tbl := compileTable(loadPolicy(t, "testdata/seed.yaml"), testNetworks)
	if len(tbl.Fenced) != 1 || tbl.Fenced[0].Network.Name != "app_default" || tbl.Fenced[0].Chains[policy.Egress] != "fwd_br-0123456789ab" {
		t.Errorf("fenced = %+v", tbl.Fenced)
	}
	if len(tbl.Unfenced) != 1 || tbl.Unfenced[0].Name != "bridge" {
		t.Errorf("unfenced = %+v", tbl.Unfenced)
	}
	if tbl.CatchAll != nil {
		t.Error("the seed policy has no catch-all section")
	}
	def := compileTable(loadPolicy(t, ""), testNetworks)
	if def.CatchAll == nil || def.Chain("fwd_unknown") == nil || def.Chain("in_unknown") == nil {
		t.Error("the default policy must fence bridges not known yet")
	}
}

func TestBuildSkipsBadBridges(t *testing.T) {
	nets := []policy.Network{
		{Name: "a", Bridge: "br-a", Subnets: prefixes("172.21.0.0/16")},
		{Name: "dup", Bridge: "br-a", Subnets: prefixes("172.22.0.0/16")},
		{Name: "long", Bridge: strings.Repeat("x", 300), Subnets: prefixes("172.23.0.0/16")},
		{Name: "odd", Bridge: "br+odd@", Subnets: prefixes("172.24.0.0/16")},
	}
	tbl := compileTable(loadPolicy(t, ""), nets)
	if len(tbl.Warnings) != 2 {
		t.Errorf("warnings = %q, want 2 (duplicate bridge, bad name)", tbl.Warnings)
	}
	if len(tbl.Fenced) != 2 || tbl.Fenced[0].Chains[policy.Egress] != "fwd_br_odd_" {
		t.Errorf("fenced = %+v", tbl.Fenced)
	}
}

// TestDenials checks that every deny chain's log prefix leads back to the
// network, section and rule it stands for.
func TestDenials(t *testing.T) {
	pol := loadPolicy(t, "testdata/seed.yaml")
	nets := []policy.Network{{Name: "app_default", Bridge: "br-0123456789ab", Subnets: prefixes("172.20.0.0/16", "fd00:20::/64")}}
	tbl := compileTable(pol, nets)
	type got struct {
		Chain, Network, RuleID, Comment, Reason string
		Audit                                   bool
	}
	var all []got
	for _, c := range tbl.Chains {
		for _, r := range c.Rules {
			if r.Log == nil {
				continue
			}
			d := tbl.Denial(r.Log.Prefix)
			if d == nil {
				t.Fatalf("log prefix %q of chain %s has no denial", r.Log.Prefix, c.Name)
			}
			network := "(none)"
			if d.Network != nil {
				network = d.Network.Name
			}
			all = append(all, got{d.Chain, network, d.RuleID(), d.Comment(), d.Reason.String(), d.Audit})
			break // a chain's log rules (one per family) share its prefix
		}
	}
	want := []got{
		{"fwd_br-0123456789ab.spoof", "app_default", "anti-spoofing", "source outside the network", "spoof", false},
		{"fwd_br-0123456789ab.e4", "app_default", "egress 4", "private network", "rule", false},
		{"in_br-0123456789ab.spoof", "app_default", "anti-spoofing", "source outside the network", "spoof", false},
		{"in_br-0123456789ab.tunnel-endpoint", "app_default", "tunnel endpoint", "to a tunnel endpoint on the host (tunnel protocol or UDP port), which host_default does not cover", "tunnel-endpoint", false},
		{"fwd.tunnel", "(none)", "tunnel", "decapsulated on the host from a container's packet", "tunnel", false},
		{"in.tunnel", "(none)", "tunnel", "decapsulated on the host from a container's packet", "tunnel", false},
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("denials (-want +got):\n%s", diff)
	}
	for _, p := range []string{"", "df ", "df nope ", "xx fwd_br-0123456789ab.e4 "} {
		if d := tbl.Denial(p); d != nil {
			t.Errorf("Denial(%q) = %s, want nil", p, d.Chain)
		}
	}
	audit := loadPolicy(t, "testdata/audit.yaml")
	at := compileTable(audit, nets)
	d := at.Denial("df-audit fwd_br-0123456789ab.e1 ")
	if d == nil || !d.Audit || d.RuleID() != "egress 1" || d.Comment() != "cloud metadata" {
		t.Errorf("audit denial = %+v", d)
	}
}

// TestCatchAllHostSelf checks how "self" is rendered for bridges not known
// yet: in the forward hook, addresses routed via the input interface; in
// the input hook, the host's own addresses (a route lookup of a local
// address has no output interface).
func TestCatchAllHostSelf(t *testing.T) {
	src := "version: 1\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n      - deny: self\n    host:\n      - deny: self\n        proto: icmp\n"
	pol, err := policy.Parse("p.yaml", []byte(src), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	tbl := compileTable(pol, nil)
	text := func(chain string) string {
		c := tbl.Chain(chain)
		if c == nil {
			t.Fatalf("no chain %s", chain)
		}
		var out []string
		for _, r := range c.Rules {
			out = append(out, r.Text())
		}
		return strings.Join(out, "\n")
	}
	if fwd := text("fwd_unknown"); !strings.Contains(fwd, `fib daddr . iif oif != 0 counter goto fwd_unknown.e1 comment "egress 1 deny"`) {
		t.Errorf("fwd_unknown:\n%s", fwd)
	}
	if in := text("in_unknown"); !strings.Contains(in, `fib daddr . iif type local meta l4proto icmp counter goto in_unknown.h1 comment "host 1 deny"`) {
		t.Errorf("in_unknown:\n%s", in)
	}
}

// compileTable compiles the policy for the networks.
func compileTable(pol *policy.Policy, nets []policy.Network) *Result { return Compile(pol, nets) }

// TestEverySetIsUsed: the table holds no set that no rule refers to (plan
// and status would report such a set as drift forever).
func TestEverySetIsUsed(t *testing.T) {
	pol := parsePolicy(t, `version: 1
lists:
  mixed: [192.168.100.0/24, "fd00:100::/64"]
networks:
  - match: {name: "*"}
    egress:
      - allow: ["@mixed", 10.1.0.0/16, "fd00:1::/64"]
        proto: icmp
      - deny: ["@mixed", 10.2.0.0/16, "fd00:2::/64"]
        proto: icmpv6
      - deny: "@mixed"
        proto: icmp
    host:
      - allow: [self, "@mixed"]
        proto: icmpv6
`)
	for _, tbl := range []*Result{Compile(pol, testNetworks), Compile(loadPolicy(t, "testdata/ipv6.yaml"), testNetworks), Compile(loadPolicy(t, ""), testNetworks)} {
		used := map[string]bool{}
		for _, c := range tbl.Chains {
			for _, r := range c.Rules {
				if r.Verdict.Kind == nft.VMap {
					used[r.Verdict.Target] = true
				}
				if r.Meter != nil {
					used[r.Meter.Set] = true
				}
				for _, m := range r.Matches {
					switch m := m.(type) {
					case nft.Addr:
						used[m.Set] = true
					case nft.DPort:
						used[m.Set] = true
					}
				}
			}
		}
		for _, s := range tbl.Sets {
			if !used[s.Name] {
				t.Errorf("no rule refers to set %s", s.Name)
			}
		}
	}
}
