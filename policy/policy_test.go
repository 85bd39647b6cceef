package policy

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testOpts(t testing.TB) Options {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("# test\nnameserver 192.168.100.2\nnameserver fd00:100::2\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return Options{ResolvConf: rc}
}

func TestDefaultPolicy(t *testing.T) {
	p, err := Default(testOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sections) != 1 || !p.Sections[0].Match.CatchAll() {
		t.Fatalf("default policy must have one catch-all section, got %+v", p.Sections)
	}
	if got := p.UsedLists(); !cmp.Equal(got, []string{"metadata", "private", "resolvers"}) {
		t.Errorf("UsedLists = %v", got)
	}
	if p.NeedsDocker() {
		t.Error("the default policy must apply without Docker")
	}
	want := mustPrefixes("192.168.100.2/32", "fd00:100::2/128")
	if got := p.Lists["resolvers"].Prefixes; !cmp.Equal(got, want, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })) {
		t.Errorf("@resolvers = %v, want %v", got, want)
	}
}

func TestSeedPolicy(t *testing.T) {
	p, err := Load("testdata/seed.yaml", testOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	s := p.Sections[0]
	if s.Match.Subnet != netip.MustParsePrefix("172.20.0.0/16") {
		t.Errorf("match subnet = %v", s.Match.Subnet)
	}
	if len(s.Rules(Egress)) != 4 {
		t.Fatalf("egress rules = %d, want 4", len(s.Rules(Egress)))
	}
	dns := s.Rules(Egress)[2]
	if dns.Proto != ProtoUDP || !cmp.Equal(dns.Ports, []PortRange{{53, 53}}) || dns.Comment != "DNS" || dns.ID() != "egress 3" {
		t.Errorf("DNS rule = %+v", dns)
	}
	if dns.Pos.Line != 8 || dns.Pos.Column != 9 {
		t.Errorf("DNS rule position = %v, want line 8 column 9", dns.Pos)
	}
	if p.Settings != DefaultSettings() {
		t.Errorf("settings = %+v, want defaults", p.Settings)
	}
}

func TestListFile(t *testing.T) {
	dir := t.TempDir()
	data, _ := os.ReadFile("testdata/blocklist.txt")
	os.WriteFile(filepath.Join(dir, "block.txt"), data, 0o644)
	src := "version: 1\nlists:\n  bad: {file: block.txt}\n  office: [192.168.10.0/24, \"2001:db8:10::/48\"]\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n      - deny: [\"@bad\", \"@office\"]\n"
	file := filepath.Join(dir, "policy.yaml")
	os.WriteFile(file, []byte(src), 0o644)
	p, err := Load(file, testOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	got := p.Lists["bad"].Prefixes
	want := mustPrefixes("203.0.113.0/24", "2001:db8:bad::/48", "198.51.100.7/32")
	if !cmp.Equal(got, want, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })) {
		t.Errorf("bad = %v, want %v", got, want)
	}
	if r := p.Sections[0].Rules(Egress)[0]; !cmp.Equal(r.Addrs.Lists, []string{"bad", "office"}) {
		t.Errorf("lists = %v", r.Addrs.Lists)
	}
}

// TestErrors checks that each kind of mistake is reported at its position
// with a message that says what was expected.
func TestErrors(t *testing.T) {
	head := "version: 1\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n"
	ingress := "version: 1\nnetworks:\n  - match: {name: \"*\"}\n    ingress:\n"
	tests := []struct {
		name, src, want string
	}{
		{"empty", "", "policy.yaml:1:1: the policy is empty"},
		{"blank", "\n\n  \n", "policy.yaml:1:1: the policy is empty"},
		{"not a mapping", "- a\n- b\n", "policy.yaml:1:1: expected a mapping"},
		{"bad yaml", "version: 1\nnetworks: [\n", "policy.yaml:2:11: invalid YAML: the list that opens here is not closed; add ']'"},
		{"tab yaml", "version: 1\n\tnetworks: []\n", "policy.yaml:2:1: invalid YAML"},
		{"missing version", "networks:\n  - match: {name: x}\n", "policy.yaml:1:1: missing version"},
		{"wrong version", "version: 2\nnetworks:\n  - match: {name: x}\n", "policy.yaml:1:10: unsupported version \"2\""},
		{"unknown top key", "version: 1\nnetwork: []\n", "policy.yaml:2:1: top level: unknown key \"network\"; expected one of containers, lists, networks, settings, version"},
		{"missing networks", "version: 1\n", "policy.yaml:1:1: missing networks"},
		{"empty networks", "version: 1\nnetworks: []\n", "policy.yaml:2:11: networks: expected a list of sections"},
		{"unknown setting", "version: 1\nsettings: {tabel: x}\nnetworks:\n  - match: {name: x}\n", "policy.yaml:2:12: settings: unknown key \"tabel\""},
		{"priority low", "version: 1\nsettings: {priority: -300}\nnetworks:\n  - match: {name: x}\n", "policy.yaml:2:22: settings.priority: -300 is outside -199..-1"},
		{"priority -200", "version: 1\nsettings: {priority: -200}\nnetworks:\n  - match: {name: x}\n", "settings.priority: -200 is outside"},
		{"priority high", "version: 1\nsettings: {priority: 10}\nnetworks:\n  - match: {name: x}\n", "policy.yaml:2:22: settings.priority: 10 is outside"},
		{"priority 0", "version: 1\nsettings: {priority: 0}\nnetworks:\n  - match: {name: x}\n", "settings.priority: 0 is outside"},
		{"priority string", "version: 1\nsettings: {priority: low}\nnetworks:\n  - match: {name: x}\n", "settings.priority: expected an integer, found \"low\""},
		{"deny action", "version: 1\nsettings: {deny_action: kill}\nnetworks:\n  - match: {name: x}\n", "settings.deny_action: expected reject or drop, found \"kill\""},
		{"mode", "version: 1\nsettings: {mode: log}\nnetworks:\n  - match: {name: x}\n", "settings.mode: expected enforce or audit"},
		{"table name", "version: 1\nsettings: {table: \"a b\"}\nnetworks:\n  - match: {name: x}\n", "settings.table: \"a b\" is not a table name"},
		{"tunnel mark two bits", "version: 1\nsettings: {tunnel_mark: 3}\nnetworks:\n  - match: {name: x}\n", "policy.yaml:2:25: settings.tunnel_mark: \"3\" is not one bit of the packet mark; expected a power of two such as 0x10000000, or 0 to leave tunnels unfenced"},
		{"identity mark two bits", "version: 1\nsettings: {identity_mark: 6}\nnetworks:\n  - match: {name: x}\n", "policy.yaml:2:27: settings.identity_mark: \"6\" is not one bit of the packet mark; expected a power of two such as 0x20000000, or 0 to judge a container's packets by their source before its bridge port is checked"},
		{"identity mark is the tunnel mark", "version: 1\nsettings: {identity_mark: 0x10000000}\nnetworks:\n  - match: {name: x}\n", "policy.yaml:2:27: settings: tunnel_mark and identity_mark are the same bit 0x10000000; give them different bits"},
		{"tunnel mark is the identity mark", "version: 1\nsettings: {tunnel_mark: 0x20000000}\nnetworks:\n  - match: {name: x}\n", "policy.yaml:2:25: settings: tunnel_mark and identity_mark are the same bit 0x20000000; give them different bits"},
		{"tunnel mark negative", "version: 1\nsettings: {tunnel_mark: -1}\nnetworks:\n  - match: {name: x}\n", "settings.tunnel_mark: \"-1\" is not one bit"},
		{"tunnel mark 33 bits", "version: 1\nsettings: {tunnel_mark: 0x100000000}\nnetworks:\n  - match: {name: x}\n", "settings.tunnel_mark: \"0x100000000\" is not one bit"},
		{"tunnel mark string", "version: 1\nsettings: {tunnel_mark: \"0x10\"}\nnetworks:\n  - match: {name: x}\n", "settings.tunnel_mark: \"0x10\" is not one bit"},
		{"missing match", "version: 1\nnetworks:\n  - egress: []\n", "policy.yaml:3:5: networks[1]: missing match"},
		{"unknown match key", "version: 1\nnetworks:\n  - match: {nam: x}\n", "policy.yaml:3:13: networks[1].match: unknown key \"nam\""},
		{"bad subnet", "version: 1\nnetworks:\n  - match: {subnet: 172.20.0.0/33}\n", "policy.yaml:3:21: networks[1].match.subnet: \"172.20.0.0/33\" is not a CIDR"},
		{"subnet host bits", "version: 1\nnetworks:\n  - match: {subnet: 172.20.0.1/16}\n", "did you mean 172.20.0.0/16?"},
		{"unknown rule key", head + "      - allow: any\n        port: 53\n", "policy.yaml:6:9: networks[1].egress[1]: unknown key \"port\"; expected one of allow, comment, deny, ports, proto"},
		{"allow and deny", head + "      - {allow: any, deny: any}\n", "policy.yaml:5:9: networks[1].egress[1]: a rule has exactly one of allow: and deny:"},
		{"no verdict", head + "      - {proto: tcp}\n", "policy.yaml:5:9: networks[1].egress[1]: a rule needs allow: or deny:"},
		{"bad address", head + "      - allow: 192.168.1.300\n", "policy.yaml:5:16: networks[1].egress[1].allow: \"192.168.1.300\" is not an address or CIDR prefix"},
		{"bad prefix", head + "      - deny: 10.0.0.0/40\n", "policy.yaml:5:15: networks[1].egress[1].deny: \"10.0.0.0/40\" is not an address"},
		{"zone", head + "      - deny: \"fe80::1%eth0\"\n", "has an IPv6 zone"},
		{"unknown list", head + "      - deny: \"@lan\"\n", "policy.yaml:5:15: networks[1].egress[1].deny: unknown list \"@lan\""},
		{"any with more", head + "      - deny: [any, 10.0.0.1]\n", "any stands alone"},
		{"port 0", head + "      - allow: any\n        ports: [0]\n", "policy.yaml:6:17: networks[1].egress[1].ports: port 0 is out of range; expected 1..65535"},
		{"port 65536", head + "      - allow: any\n        ports: [65536]\n", "policy.yaml:6:17: networks[1].egress[1].ports: port 65536 is out of range"},
		{"port backwards", head + "      - allow: any\n        ports: [\"90-80\"]\n", "runs backwards"},
		{"port word", head + "      - allow: any\n        ports: [http]\n", "\"http\" is not a port"},
		{"ports with icmp", head + "      - allow: any\n        proto: icmp\n        ports: [53]\n", "policy.yaml:7:16: networks[1].egress[1].ports: protocol icmp has no ports"},
		{"unknown proto", head + "      - allow: any\n        proto: gre\n", "policy.yaml:6:16: networks[1].egress[1].proto: expected tcp or udp or sctp or icmp or icmpv6 or any, found \"gre\""},
		{"icmp v6 only", head + "      - allow: \"2001:db8::1\"\n        proto: icmp\n", "proto: icmp never reaches the IPv6 addresses of this rule; use icmpv6"},
		{"bad default", "version: 1\nnetworks:\n  - match: {name: x}\n    egress_default: reject\n", "policy.yaml:4:21: networks[1].egress_default: expected allow or deny, found \"reject\""},
		{"list item", "version: 1\nlists:\n  lan: [10.0.0.0/8, nope]\nnetworks:\n  - match: {name: x}\n", "policy.yaml:3:21: lists.lan: \"nope\" is not an address"},
		{"list file missing", "version: 1\nlists:\n  lan: {file: /nonexistent/list.txt}\nnetworks:\n  - match: {name: x}\n", "policy.yaml:3:15: lists.lan.file: cannot read list file /nonexistent/list.txt: no such file or directory"},
		{"list name", "version: 1\nlists:\n  \"a b\": [10.0.0.0/8]\nnetworks:\n  - match: {name: x}\n", "lists: \"a b\" is not a list name"},
		{"comment quote", head + "      - allow: any\n        comment: 'say \"hi\"'\n", "policy.yaml:6:18: networks[1].egress[1].comment: expected 1 to 100 bytes of printable text without double quotes, found 8 bytes with a double quote"},
		{"two documents", "version: 1\nnetworks:\n  - match: {name: x}\n---\nversion: 1\n", "a second YAML document"},
		{"nul", "version: 1\x00\n", "policy.yaml:1:11: the policy contains a NUL byte"},
		// Ingress rules are read by the same code as egress: their
		// addresses are sources, their ports published ports.
		{"ingress bad source", ingress + "      - allow: 198.51.100.300\n", "policy.yaml:5:16: networks[1].ingress[1].allow: \"198.51.100.300\" is not an address or CIDR prefix"},
		{"ingress port 0", ingress + "      - allow: any\n        ports: [0]\n", "policy.yaml:6:17: networks[1].ingress[1].ports: port 0 is out of range; expected 1..65535"},
		{"ingress ports with icmp", ingress + "      - deny: any\n        proto: icmp\n        ports: [8080]\n", "policy.yaml:7:16: networks[1].ingress[1].ports: protocol icmp has no ports"},
		{"ingress unknown list", ingress + "      - allow: \"@office\"\n", "policy.yaml:5:16: networks[1].ingress[1].allow: unknown list \"@office\""},
		{"ingress a mapping", "version: 1\nnetworks:\n  - match: {name: x}\n    ingress: {allow: any}\n", "policy.yaml:4:14: networks[1].ingress: expected a list of rules, found a mapping"},
		{"ingress default", "version: 1\nnetworks:\n  - match: {name: x}\n    ingress_default: reject\n", "policy.yaml:4:22: networks[1].ingress_default: expected allow or deny, found \"reject\""},
		{"container ingress default", "version: 1\nnetworks:\n  - match: {name: x}\ncontainers:\n  - match: {name: web}\n    ingress_default: nope\n", "policy.yaml:6:22: containers[1].ingress_default: expected allow or deny, found \"nope\""},
		{"duplicate key", "version: 1\nversion: 1\nnetworks:\n  - match: {name: x}\n", "policy.yaml:2:1: top level: \"version\" given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("policy.yaml", []byte(tt.src), testOpts(t))
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			var el ErrorList
			if !errors.As(err, &el) {
				t.Fatalf("error is %T, want ErrorList: %v", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tt.want)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir, testOpts(t)); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), testOpts(t)); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing: %v", err)
	}
	loop := filepath.Join(dir, "loop.yaml")
	os.Symlink(loop, loop)
	if _, err := Load(loop, testOpts(t)); err == nil || !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Errorf("symlink loop: %v", err)
	}
}

func TestListFileErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "l.txt")
	os.WriteFile(file, []byte("10.0.0.0/8\n  garbage here\nfe80::1%eth0\n1.2.3.4\x00\n"), 0o644)
	_, errs := ReadListFile(file, 0)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		file + `:2:3: "garbage here" is not an address or CIDR prefix (e.g. 192.168.0.0/16, 2001:db8::/32)`,
		file + `:3:1: "fe80::1%eth0" has an IPv6 zone; zones have no meaning in a firewall, drop the %…`,
		file + `:4:8: NUL byte in list entry; a list file is text`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	os.WriteFile(file, []byte(strings.Repeat("10.0.0.1\n", 11)), 0o644)
	if _, errs := ReadListFile(file, 10); len(errs) != 1 || !strings.Contains(errs[0].Msg, "more than 10 entries") {
		t.Errorf("limit: %v", errs)
	}
}

func TestMatch(t *testing.T) {
	n := Network{Name: "app_default", Bridge: "br-abc", Labels: map[string]string{"k": "v"}, Subnets: mustPrefixes("172.20.1.0/24")}
	tests := []struct {
		m    Match
		want bool
	}{
		{Match{Name: "app_*"}, true},
		{Match{Name: "web_*"}, false},
		{Match{Bridge: "br-*"}, true},
		{Match{HasLabel: true, LabelKey: "k"}, true},
		{Match{HasLabel: true, LabelKey: "k", LabelValue: "w", LabelHasValue: true}, false},
		{Match{Subnet: netip.MustParsePrefix("172.20.0.0/16")}, true},
		{Match{Subnet: netip.MustParsePrefix("172.20.1.0/25")}, false},
		{Match{Name: "app_*", Subnet: netip.MustParsePrefix("10.0.0.0/8")}, false},
	}
	for _, tt := range tests {
		if got := tt.m.Matches(n); got != tt.want {
			t.Errorf("%v.Matches = %v, want %v", tt.m, got, tt.want)
		}
	}
	// A network of another driver has no bridge: no bridge pattern fits it,
	// not even "*"; names, labels and subnets still do.
	lan := Network{Name: "lan", Driver: "macvlan", Labels: map[string]string{"k": "v"}, Subnets: mustPrefixes("192.168.1.0/24")}
	for _, tt := range []struct {
		m    Match
		want bool
	}{
		{Match{Bridge: "*"}, false},
		{Match{Name: "*"}, true},
		{Match{HasLabel: true, LabelKey: "k"}, true},
		{Match{Subnet: netip.MustParsePrefix("192.168.0.0/16")}, true},
	} {
		if got := tt.m.Matches(lan); got != tt.want {
			t.Errorf("%v.Matches(macvlan network) = %v, want %v", tt.m, got, tt.want)
		}
	}
	if lan.IsBridge() || !n.IsBridge() || !(Network{Driver: "bridge"}).IsBridge() {
		t.Error("IsBridge: want false for macvlan, true for no driver and for bridge")
	}
}

func TestValidComment(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"private network", true},
		{"DNS (udp/53) → resolver #1, 50% ✓", true},
		{"データベース", true},
		{strings.Repeat("x", 100), true},
		{strings.Repeat("é", 50), true},
		{strings.Repeat("é", 51), false}, // 102 bytes: nft would refuse the rule's comment
		{strings.Repeat("データ", 11), true},
		{strings.Repeat("データ", 12), false},
		{strings.Repeat("x", 101), false},
		{"", false},
		{"say \"hi\"", false},
		{"tab\there", false},
		{"new\nline", false},
		{"nul\x00", false},
		{"bad \xff utf8", false},
	} {
		if got := validComment(tc.s); got != tc.want {
			t.Errorf("validComment(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestTunnelMark(t *testing.T) {
	for src, want := range map[string]uint32{
		"":                                 DefaultTunnelMark,
		"settings: {tunnel_mark: 0x200}\n": 0x200,
		"settings: {tunnel_mark: 1024}\n":  1024,
		"settings: {tunnel_mark: 0}\n":     0,
	} {
		p, err := Parse("policy.yaml", []byte("version: 1\n"+src+"networks:\n  - match: {name: x}\n"), testOpts(t))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if p.Settings.TunnelMark != want {
			t.Errorf("%q: tunnel_mark %#x, want %#x", src, p.Settings.TunnelMark, want)
		}
	}
}

// TestNetworkIngress reads ingress and ingress_default in a network
// section: the rules in the form of egress, the hook Ingress, positions, and
// Given only where the section has a key of ingress.
func TestNetworkIngress(t *testing.T) {
	src := `version: 1
lists:
  office: [198.51.100.0/24, "2001:db8:1::/48"]
networks:
  - match: {name: app}
    ingress:
      - allow: "@office"
        proto: tcp
        ports: [8080, "9000-9100"]
        comment: admin UI from the office only
      - deny: any
        ports: [8080]
    ingress_default: deny
  - match: {name: "*"}
    egress_default: allow
`
	pol, err := Parse("p.yaml", []byte(src), testOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	app, all := pol.Sections[0], pol.Sections[1]
	if !app.Given(Ingress) || app.Default(Ingress) != Deny || len(app.Rules(Ingress)) != 2 {
		t.Fatalf("app's ingress = %+v", app.ByHook[Ingress])
	}
	r := app.Rules(Ingress)[0]
	if r.Hook != Ingress || r.ID() != "ingress 1" || r.Pos.String() != "p.yaml:7:9" || r.Addrs.Text != "@office" || r.Proto != ProtoTCP || len(r.Ports) != 2 || r.Ports[1] != (PortRange{9000, 9100}) {
		t.Errorf("ingress 1 = %+v", r)
	}
	if app.Given(Egress) || all.Given(Ingress) || !all.Given(Egress) {
		t.Errorf("Given: app egress %v, * ingress %v, * egress %v; want false, false, true", app.Given(Egress), all.Given(Ingress), all.Given(Egress))
	}
	if got := strings.Join(pol.UsedLists(), ","); !strings.Contains(got, "office") {
		t.Errorf("UsedLists = %s; want office in it", got)
	}
}
