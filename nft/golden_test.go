package nft

import (
	"flag"
	"fmt"
	"github.com/google/nftables/userdata"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dockerfence/dockerfence/policy"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// testNetworks are the networks of a typical compose host.
var testNetworks = []policy.Network{
	{Name: "bridge", Bridge: "docker0", Subnets: prefixes("172.17.0.0/16")},
	{Name: "app_default", Bridge: "br-0123456789ab", Labels: map[string]string{"com.docker.compose.project": "app"}, Subnets: prefixes("172.20.0.0/16", "fd00:20::/64")},
}

func loadPolicy(t *testing.T, file string) *policy.Policy {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(rc, []byte("nameserver 192.168.100.2\nnameserver fd00:100::2\n"), 0o644)
	opts := policy.Options{ResolvConf: rc}
	if file == "" {
		p, err := policy.Default(opts)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, err := policy.Load(file, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

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
		t.Fatalf("%v (run go test ./nft -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs from the rendered table (-golden +got); if the change is intended run go test ./nft -update:\n%s", file, diff)
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
			tbl := Build(loadPolicy(t, tt.policy), tt.networks)
			checkGolden(t, tt.name, tbl.Text())
		})
	}
}

func TestBuildFacts(t *testing.T) {
	tbl := Build(loadPolicy(t, "testdata/seed.yaml"), testNetworks)
	if len(tbl.Fenced) != 1 || tbl.Fenced[0].Network.Name != "app_default" || tbl.Fenced[0].Forward != "fwd_br-0123456789ab" {
		t.Errorf("fenced = %+v", tbl.Fenced)
	}
	if len(tbl.Unfenced) != 1 || tbl.Unfenced[0].Name != "bridge" {
		t.Errorf("unfenced = %+v", tbl.Unfenced)
	}
	if tbl.CatchAll != nil {
		t.Error("the seed policy has no catch-all section")
	}
	def := Build(loadPolicy(t, ""), testNetworks)
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
	tbl := Build(loadPolicy(t, ""), nets)
	if len(tbl.Warnings) != 2 {
		t.Errorf("warnings = %q, want 2 (duplicate bridge, bad name)", tbl.Warnings)
	}
	if len(tbl.Fenced) != 2 || tbl.Fenced[0].Forward != "fwd_br_odd_" {
		t.Errorf("fenced = %+v", tbl.Fenced)
	}
}

func TestDiff(t *testing.T) {
	tbl := Build(loadPolicy(t, "testdata/seed.yaml"), testNetworks)
	if got := Diff(tbl, nil); len(got) != 1 || !strings.HasPrefix(got[0], "+ table inet dockerfence") {
		t.Errorf("Diff(nil) = %q", got)
	}
	st := stateOf(tbl)
	if got := Diff(tbl, st); len(got) != 0 {
		t.Errorf("Diff(own state) = %q, want none", got)
	}
	// Someone inserts an accept at the top of a network chain and empties a set.
	c := &st.Chains[0]
	for i := range st.Chains {
		if st.Chains[i].Name == "fwd_br-0123456789ab" {
			c = &st.Chains[i]
		}
	}
	c.Rules = append([]RuleState{{Handle: 99}}, c.Rules...)
	st.Chains = append(st.Chains, ChainState{Name: "extra"})
	// It also points a map element elsewhere and empties a map.
	for i := range st.Sets {
		switch s := &st.Sets[i]; s.Name {
		case "fwd_if":
			s.VMap[0].Chain = "extra"
		case "in_if":
			s.VMap = nil
		}
	}
	got := Diff(tbl, st)
	want := []string{
		"- chain fwd_br-0123456789ab: rule handle 99 (a rule dockerfence did not write)",
		"- chain extra (0 rules)",
		`- map fwd_if: "br-0123456789ab" : goto extra`,
		`+ map fwd_if: "br-0123456789ab" : goto fwd_br-0123456789ab`,
		`+ map in_if: "br-0123456789ab" : goto in_br-0123456789ab`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Diff (-want +got):\n%s", diff)
	}
}

// stateOf returns the state the kernel would report right after applying t.
// Plain sets are not dumped, as in Read.
func stateOf(t *Table) *State {
	st := &State{Name: t.Name}
	digests := t.setDigests()
	for _, c := range t.Chains {
		cs := ChainState{Name: c.Name, Hook: c.Hook}
		if c.Hook != "" {
			cs.Priority = t.Priority
		}
		for i, r := range c.Rules {
			cs.Rules = append(cs.Rules, RuleState{Handle: uint64(i + 1), ID: r.ID, Digest: r.Digest(), Comment: r.Comment, Sets: parseSetRefs(setRefs(r, digests))})
		}
		st.Chains = append(st.Chains, cs)
	}
	for _, s := range t.Sets {
		ns, _ := kernelSet(nil, s)
		ss := SetState{Name: s.Name, Comment: ns.Comment, KeyType: ns.KeyType.GetNFTMagic(), Digest: digests[s.Name]}
		if ns.Interval {
			ss.Flags |= unix.NFT_SET_INTERVAL
		}
		if ns.IsMap {
			ss.Flags |= unix.NFT_SET_MAP
			ss.DataType = unix.NFT_DATA_VERDICT
			ss.VMap = append([]VMapElem(nil), s.VMap...)
		}
		st.Sets = append(st.Sets, ss)
	}
	return st
}

// dump fills in the elements of st's plain sets as t has them, as Apply's
// dumpSets would read them from the kernel.
func dump(st *State, t *Table, names []string) {
	for _, name := range names {
		for i := range st.Sets {
			if st.Sets[i].Name == name {
				_, st.Sets[i].Elems = kernelSet(nil, t.Set(name))
				st.Sets[i].Dumped = true
			}
		}
	}
}

// TestDenials checks that every deny chain's log prefix leads back to the
// network, section and rule it stands for.
func TestDenials(t *testing.T) {
	pol := loadPolicy(t, "testdata/seed.yaml")
	nets := []policy.Network{{Name: "app_default", Bridge: "br-0123456789ab", Subnets: prefixes("172.20.0.0/16", "fd00:20::/64")}}
	tbl := Build(pol, nets)
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
			all = append(all, got{d.Chain, d.Network.Name, d.RuleID(), d.Comment(), d.Reason, d.Audit})
		}
	}
	want := []got{
		{"fwd_br-0123456789ab.spoof", "app_default", "anti-spoofing", "source outside the network", "spoof", false},
		{"fwd_br-0123456789ab.e4", "app_default", "egress 4", "private network", "rule", false},
		{"in_br-0123456789ab.spoof", "app_default", "anti-spoofing", "source outside the network", "spoof", false},
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
	at := Build(audit, nets)
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
	tbl := Build(pol, nil)
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
	if fwd := text("fwd_unknown"); !strings.Contains(fwd, `fib daddr . iif oif exists counter goto fwd_unknown.e1 comment "egress 1 deny"`) {
		t.Errorf("fwd_unknown:\n%s", fwd)
	}
	if in := text("in_unknown"); !strings.Contains(in, `fib daddr . iif type local meta l4proto icmp counter goto in_unknown.h1 comment "host 1 deny"`) {
		t.Errorf("in_unknown:\n%s", in)
	}
}

// TestRuleUserDataFitsTheKernel checks that a rule's user data stays within
// the kernel's 256 bytes however long its comment, list names and ID are,
// keeping the tags whole and cutting the comment on a character boundary.
func TestRuleUserDataFitsTheKernel(t *testing.T) {
	long := strings.Repeat("l", 32)
	src := "version: 1\nlists:\n  " + long + ": [10.0.0.0/8, 192.168.0.0/16]\nnetworks:\n  - match: {bridge: br-0123456789a}\n    egress:\n" +
		strings.Repeat("      - allow: 10.9.9.9\n", 119) +
		"      - deny: \"@" + long + "\"\n        ports: [1, 3]\n        comment: \"" + strings.Repeat("é", 50) + "\"\n"
	pol, err := policy.Parse("p.yaml", []byte(src), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	tbl := Build(pol, []policy.Network{{Bridge: "br-0123456789a", Subnets: prefixes("172.20.0.0/16")}})
	digests := tbl.setDigests()
	checked := 0
	for _, c := range tbl.Chains {
		for _, r := range c.Rules {
			ud := ruleUserData(r, digests)
			if len(ud) > maxUserData {
				t.Errorf("%s %q: %d bytes of user data, the kernel takes %d", c.Name, r.ID, len(ud), maxUserData)
			}
			if id, _ := userdata.GetString(ud, udataID); id != r.ID {
				t.Errorf("%s: the ID tag %q was lost", c.Name, id)
			}
			if d, _ := userdata.GetString(ud, udataDigest); d != r.Digest() {
				t.Errorf("%s %q: the digest tag was lost", c.Name, r.ID)
			}
			if cm, _ := userdata.GetString(ud, udataComment); !utf8.ValidString(cm) || !strings.HasPrefix(r.Comment, cm) {
				t.Errorf("%s %q: comment %q is not a whole-character prefix of %q", c.Name, r.ID, cm, r.Comment)
			}
			if r.ID == "egress 120" {
				checked++
			}
		}
	}
	if checked == 0 {
		t.Fatal("the rule with the long comment was not built; the test proves nothing")
	}
	if got := truncateUTF8("aé", 2); got != "a" {
		t.Errorf("truncateUTF8 split a character: %q", got)
	}
}
