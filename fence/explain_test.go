package fence

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// parsePolicy parses a policy text with the test's resolvers.
func parsePolicy(t *testing.T, text string) *policy.Policy {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(rc, []byte("nameserver 192.168.100.2\nnameserver fd00:100::2\n"), 0o644)
	p, err := policy.Parse("test.yaml", []byte(text), policy.Options{ResolvConf: rc})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestExplain holds the cases of the policy evaluator that explain had
// before it traced the table: the same probes, the same verdicts.
func TestExplain(t *testing.T) {
	seed := loadPolicy(t, "testdata/seed.yaml")
	def := loadPolicy(t, "")
	hostPol := parsePolicy(t, `version: 1
settings: {mode: audit}
networks:
  - match: {label: "com.docker.compose.project=app"}
    host:
      - allow: any
        proto: udp
        ports: [53]
      - allow: self
        proto: icmp
    host_default: deny
`)
	app := policy.Network{Name: "app_default", Bridge: "br-1", Subnets: prefixes("172.20.0.0/16", "fd00:20::/64"), Labels: map[string]string{"com.docker.compose.project": "app"}}
	other := policy.Network{Name: "other", Bridge: "br-2", Subnets: prefixes("172.30.0.0/16")}
	inventory := []policy.Network{app, other}
	a := netip.MustParseAddr
	const (
		tcp, udp, icmp = policy.ProtoTCP, policy.ProtoUDP, policy.ProtoICMP
		egress, host   = policy.Egress, policy.Host
	)
	tests := []struct {
		name    string
		pol     *policy.Policy
		net     policy.Network
		probe   Probe
		rule    string // "" for none
		verdict policy.Verdict
		spoofed bool
		passes  bool
	}{
		{"proxy", seed, app, Probe{Dst: a("192.168.100.1"), Proto: tcp, Port: 3128}, "egress 2", policy.Allow, false, true},
		{"dns udp", seed, app, Probe{Dst: a("192.168.100.2"), Proto: udp, Port: 53}, "egress 3", policy.Allow, false, true},
		{"dns tcp", seed, app, Probe{Dst: a("192.168.100.2"), Proto: tcp, Port: 53}, "egress 4", policy.Deny, false, false},
		{"database", seed, app, Probe{Dst: a("192.168.100.50"), Proto: tcp, Port: 5432}, "egress 4", policy.Deny, false, false},
		{"self", seed, app, Probe{Dst: a("172.20.0.3"), Proto: tcp, Port: 80}, "egress 1", policy.Allow, false, true},
		{"internet", seed, app, Probe{Dst: a("203.0.113.10"), Proto: tcp, Port: 80}, "", policy.Allow, false, true},
		{"spoofed", seed, app, Probe{Src: a("10.9.9.9"), Dst: a("203.0.113.10"), Proto: tcp, Port: 80}, "", policy.Deny, true, false},
		{"unfenced", seed, other, Probe{Dst: a("192.168.100.50"), Proto: tcp, Port: 5432}, "", policy.Allow, false, true},
		{"default resolvers", def, other, Probe{Dst: a("192.168.100.2"), Proto: udp, Port: 53}, "egress 2", policy.Allow, false, true},
		{"default resolvers tcp", def, other, Probe{Dst: a("fd00:100::2"), Proto: tcp, Port: 53}, "egress 2", policy.Allow, false, true},
		{"default resolvers other port", def, other, Probe{Dst: a("192.168.100.2"), Proto: tcp, Port: 80}, "egress 4", policy.Deny, false, false},
		{"default metadata", def, other, Probe{Dst: a("169.254.169.254"), Proto: tcp, Port: 80}, "egress 3", policy.Deny, false, false},
		{"default private v6", def, app, Probe{Dst: a("fd00:100::50"), Proto: tcp, Port: 5432}, "egress 4", policy.Deny, false, false},
		{"default self v6", def, app, Probe{Dst: a("fd00:20::9"), Proto: udp, Port: 9}, "egress 1", policy.Allow, false, true},
		{"default open proto", def, app, Probe{Dst: a("192.168.1.1")}, "egress 4", policy.Deny, false, false},
		{"host dns", hostPol, app, Probe{Hook: host, Dst: a("172.20.0.1"), Proto: udp, Port: 53}, "host 1", policy.Allow, false, true},
		{"host ssh audit", hostPol, app, Probe{Hook: host, Dst: a("172.20.0.1"), Proto: tcp, Port: 22}, "", policy.Deny, false, true},
		{"host ping", hostPol, app, Probe{Hook: host, Dst: a("172.20.0.1"), Proto: icmp}, "host 2", policy.Allow, false, true},
		{"host ping6 is not icmp", hostPol, app, Probe{Hook: host, Dst: a("fd00:20::1"), Proto: icmp}, "", policy.Deny, false, true},
		{"host link-local source", hostPol, app, Probe{Hook: host, Src: a("fe80::1"), Dst: a("fd00:20::1"), Proto: udp, Port: 53}, "host 1", policy.Allow, false, true},
		{"egress link-local source is spoofed", seed, app, Probe{Src: a("fe80::1"), Dst: a("2001:db8::1"), Proto: udp, Port: 53}, "", policy.Deny, true, false},

		// Beyond the evaluator's cases.
		{"egress link-local source to a link-local address is judged", seed, app, Probe{Src: a("fe80::1"), Dst: a("fe80::2"), Proto: udp, Port: 53}, "", policy.Allow, false, true},
		{"egress link-local source to the network is judged", def, app, Probe{Src: a("fe80::1"), Dst: a("fd00:20::9"), Proto: udp, Port: 9}, "egress 1", policy.Allow, false, true},
		{"egress link-local IPv4 source is spoofed", def, app, Probe{Src: a("169.254.0.1"), Dst: a("172.20.0.9"), Proto: udp, Port: 9}, "", policy.Deny, true, false},
		{"host link-local IPv4 source", hostPol, app, Probe{Hook: host, Src: a("169.254.0.1"), Dst: a("172.20.0.1"), Proto: icmp}, "host 2", policy.Allow, false, true},
		{"host spoofed, audit", hostPol, app, Probe{Hook: host, Src: a("10.9.9.9"), Dst: a("172.20.0.1"), Proto: icmp}, "", policy.Deny, true, true},
		{"tcp without a port does not match ports", def, app, Probe{Dst: a("192.168.100.2"), Proto: tcp}, "egress 4", policy.Deny, false, false},
		{"sctp is not tcp+udp", def, app, Probe{Dst: a("192.168.100.2"), Proto: policy.ProtoSCTP, Port: 53}, "egress 4", policy.Deny, false, false},
		{"open protocol to the internet", def, app, Probe{Dst: a("203.0.113.1"), Proto: policy.ProtoAny}, "", policy.Allow, false, true},
		{"host icmp of the default: host_default", def, app, Probe{Hook: host, Dst: a("172.20.0.1"), Proto: icmp}, "", policy.Allow, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.probe.Hook != egress && tt.probe.Hook != host {
				t.Fatal("bad hook")
			}
			d, err := Explain(tt.pol, inventory, tt.net, tt.probe)
			if err != nil {
				t.Fatal(err)
			}
			rule := ""
			if d.Rule != nil {
				rule = d.Rule.ID()
			}
			if rule != tt.rule || d.Verdict != tt.verdict || d.Spoofed != tt.spoofed || d.Passes != tt.passes {
				t.Errorf("got rule %q verdict %v spoofed %v passes %v; want %q %v %v %v\n%s", rule, d.Verdict, d.Spoofed, d.Passes, tt.rule, tt.verdict, tt.spoofed, tt.passes, d.Trace)
			}
			if (d.Section == nil) != (tt.name == "unfenced") {
				t.Errorf("section %v", d.Section)
			}
			// Forged sources are dropped whatever deny_action says.
			if want := tt.pol.Settings.DenyAction; d.Spoofed && d.DenyAction != policy.Drop || !d.Spoofed && d.DenyAction != want {
				t.Errorf("deny action %s, want %s (spoofed %v)", d.DenyAction, want, d.Spoofed)
			}
			// (An IPv6 link-local source the table lets pass: the kernel
			// never routes it.)
			if d.Spoofed && d.Trace.Verdict != nft.Accept && d.Trace.Verdict != nft.Drop {
				t.Errorf("a spoofed packet's trace ends in %v, want drop:\n%s", d.Trace.Verdict, d.Trace)
			}
		})
	}
}

// explainPolicy has a bridge section before the catch-all, so that the
// tests see which of the two judges a bridge not in the inventory.
const explainPolicy = `version: 1
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
      - allow: self
      - deny: any
    host:
      - allow: self
        proto: tcp
        ports: [22]
    host_default: deny
`

// TestExplainNetworks covers the kinds of networks Explain judges: in the
// inventory, bridges not in it, and networks without a bridge.
func TestExplainNetworks(t *testing.T) {
	pol := parsePolicy(t, explainPolicy)
	noCatchAll := parsePolicy(t, explainPolicy[:strings.Index(explainPolicy, "  - match: {name")])
	app := policy.Network{Name: "app_default", Bridge: "br-app", Subnets: prefixes("172.20.0.0/16", "fd00:20::/64")}
	inventory := []policy.Network{app, {Name: "dfexplain", Bridge: "dfexplain", Subnets: prefixes("10.99.0.0/24")}}
	late := policy.Network{Name: "br-late", Bridge: "br-late", Subnets: prefixes("172.21.0.0/16")}
	lxc := policy.Network{Bridge: "lxcbr0", Subnets: prefixes("10.0.3.0/24")}
	a := netip.MustParseAddr
	tests := []struct {
		name    string
		pol     *policy.Policy
		net     policy.Network
		probe   Probe
		section int // 0 for none
		rule    string
		verdict policy.Verdict
		spoofed bool
		// chain is a chain the trace must pass.
		chain string
		// newBridge: judged as a new bridge, by the catch-all.
		newBridge bool
	}{
		{name: "in the inventory", pol: pol, net: app, probe: Probe{Dst: a("192.168.100.5"), Proto: policy.ProtoTCP, Port: 8080},
			section: 1, rule: "egress 2", verdict: policy.Deny, chain: "fwd_br-app"},
		{name: "a bridge not in the inventory: the catch-all, not the first match", pol: pol, net: late, probe: Probe{Dst: a("203.0.113.1"), Proto: policy.ProtoUDP, Port: 53},
			section: 2, rule: "egress 2", verdict: policy.Deny, chain: "fwd_unknown"},
		{name: "a bridge not in the inventory: self by its routes", pol: pol, net: late, probe: Probe{Dst: a("172.21.0.7"), Proto: policy.ProtoUDP, Port: 53},
			section: 2, rule: "egress 1", verdict: policy.Allow, chain: "fwd_unknown"},
		{name: "a bridge not in the inventory: self is its link-local route too", pol: pol, net: late, probe: Probe{Src: a("fe80::5"), Dst: a("fe80::7"), Proto: policy.ProtoUDP, Port: 53},
			section: 2, rule: "egress 1", verdict: policy.Allow, chain: "fwd_unknown"},
		{name: "a bridge not in the inventory: a source it does not route is spoofed", pol: pol, net: late, probe: Probe{Src: a("10.9.9.9"), Dst: a("172.21.0.7"), Proto: policy.ProtoUDP, Port: 53},
			section: 2, verdict: policy.Deny, spoofed: true, chain: "fwd_unknown"},
		{name: "a bridge not in the inventory: host self is the host's address on it", pol: pol, net: late, probe: Probe{Hook: policy.Host, Dst: a("172.21.0.1"), Proto: policy.ProtoTCP, Port: 22},
			section: 2, rule: "host 1", verdict: policy.Allow, chain: "in_unknown"},
		{name: "a bridge not in the inventory: host self holds its link-local address", pol: pol, net: late, probe: Probe{Hook: policy.Host, Src: a("fe80::5"), Dst: a("fe80::1"), Proto: policy.ProtoTCP, Port: 22},
			section: 2, rule: "host 1", verdict: policy.Allow, chain: "in_unknown"},
		{name: "a bridge not in the inventory, no catch-all: not fenced", pol: noCatchAll, net: late, probe: Probe{Dst: a("203.0.113.1"), Proto: policy.ProtoUDP, Port: 53}},
		{name: "a bridge that is not Docker's: not fenced", pol: pol, net: lxc, probe: Probe{Dst: a("203.0.113.1"), Proto: policy.ProtoUDP, Port: 53}},
		{name: "by subnet alone: judged as a new bridge, by the catch-all", pol: pol, net: policy.Network{Subnets: prefixes("198.51.100.0/24")}, probe: Probe{Dst: a("198.51.100.9"), Proto: policy.ProtoUDP, Port: 53},
			section: 2, rule: "egress 1", verdict: policy.Allow, chain: "fwd_unknown", newBridge: true},
		{name: "by subnet alone: the catch-all denies", pol: pol, net: policy.Network{Subnets: prefixes("198.51.100.0/24")}, probe: Probe{Dst: a("192.168.100.50"), Proto: policy.ProtoTCP, Port: 5432},
			section: 2, rule: "egress 2", verdict: policy.Deny, chain: "fwd_unknown", newBridge: true},
		{name: "by subnet alone, no catch-all: a bridge of its own, which bridge matches do not fit", pol: noCatchAll, net: policy.Network{Subnets: prefixes("198.51.100.0/24")}, probe: Probe{Dst: a("192.168.100.50"), Proto: policy.ProtoTCP, Port: 5432}},
		{name: "by name alone: a stand-in source passes anti-spoofing", pol: pol, net: policy.Network{Name: "nope"}, probe: Probe{Dst: a("203.0.113.1"), Proto: policy.ProtoUDP, Port: 53},
			section: 2, rule: "egress 2", verdict: policy.Deny, chain: "fwd_unknown", newBridge: true},
		{name: "by name alone: self holds nothing", pol: pol, net: policy.Network{Name: "nope"}, probe: Probe{Dst: a("192.0.0.8"), Proto: policy.ProtoUDP, Port: 53},
			section: 2, rule: "egress 2", verdict: policy.Deny, chain: "fwd_unknown", newBridge: true},
		{name: "by name alone, IPv6", pol: pol, net: policy.Network{Name: "nope"}, probe: Probe{Hook: policy.Host, Dst: a("2001:db8::1"), Proto: policy.ProtoTCP, Port: 22},
			section: 2, verdict: policy.Deny, chain: "in_unknown", newBridge: true},
		{name: "by name alone, with a source", pol: pol, net: policy.Network{Name: "nope"}, probe: Probe{Src: a("10.1.1.1"), Dst: a("203.0.113.1"), Proto: policy.ProtoUDP, Port: 53},
			section: 2, verdict: policy.Deny, spoofed: true, chain: "fwd_unknown", newBridge: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Explain(tt.pol, inventory, tt.net, tt.probe)
			if err != nil {
				t.Fatal(err)
			}
			section, rule := 0, ""
			if d.Section != nil {
				section = d.Section.Index
			}
			if d.Rule != nil {
				rule = d.Rule.ID()
			}
			if section != tt.section || rule != tt.rule || d.Verdict != tt.verdict || d.Spoofed != tt.spoofed || d.Passes != (tt.verdict == policy.Allow) {
				t.Errorf("section %d rule %q verdict %v spoofed %v passes %v; want %d %q %v %v\n%s", section, rule, d.Verdict, d.Spoofed, d.Passes, tt.section, tt.rule, tt.verdict, tt.spoofed, d.Trace)
			}
			if tt.chain != "" && !strings.Contains(d.Trace.String(), "\n"+tt.chain+" ") {
				t.Errorf("the trace does not pass %s:\n%s", tt.chain, d.Trace)
			}
			if d.NewBridge != tt.newBridge || d.CatchAll != strings.HasSuffix(tt.chain, "_unknown") {
				t.Errorf("NewBridge %v CatchAll %v; want %v %v", d.NewBridge, d.CatchAll, tt.newBridge, strings.HasSuffix(tt.chain, "_unknown"))
			}
		})
	}

	if _, err := Explain(pol, inventory, app, Probe{Src: a("10.0.0.1"), Dst: a("2001:db8::1"), Proto: policy.ProtoTCP, Port: 1}); err == nil || !strings.Contains(err.Error(), "not addresses of one family") {
		t.Errorf("two families: %v", err)
	}
	if _, err := Explain(pol, inventory, app, Probe{Dst: a("10.0.0.1"), Proto: "gre"}); err == nil || !strings.Contains(err.Error(), `unknown protocol "gre"`) {
		t.Errorf("unknown protocol: %v", err)
	}
}

// TestExplainNewBridge: a network that nothing holds is judged as a new
// bridge, by the catch-all, only where the {name: "*"} section is the one
// that would fence it; a name that an earlier section fits keeps that
// section, on a chain of its own.
func TestExplainNewBridge(t *testing.T) {
	pol := parsePolicy(t, `version: 1
networks:
  - match: {name: "app_*"}
    egress:
      - deny: any
  - match: {name: "*"}
    egress:
      - allow: self
      - deny: 192.168.0.0/16
`)
	a := netip.MustParseAddr
	pr := Probe{Dst: a("192.168.100.50"), Proto: policy.ProtoTCP, Port: 5432}
	for _, tt := range []struct {
		name      string
		net       policy.Network
		section   int
		rule      string
		newBridge bool
	}{
		{"a name the first section fits", policy.Network{Name: "app_x"}, 1, "egress 1", false},
		{"a name only the catch-all fits", policy.Network{Name: "web"}, 2, "egress 2", true},
		{"a subnet", policy.Network{Subnets: prefixes("172.20.0.0/16")}, 2, "egress 2", true},
		{"a subnet, IPv6", policy.Network{Subnets: prefixes("fd00:20::/64")}, 2, "egress 1", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := pr
			if tt.net.Subnets != nil && tt.net.Subnets[0].Addr().Is6() {
				p.Dst = a("fd00:20::9") // self
			}
			d, err := Explain(pol, nil, tt.net, p)
			if err != nil {
				t.Fatal(err)
			}
			if d.Section == nil || d.Section.Index != tt.section || d.Rule == nil || d.Rule.ID() != tt.rule || d.NewBridge != tt.newBridge || d.CatchAll != tt.newBridge {
				t.Errorf("section %v rule %v new bridge %v catch-all %v; want %d %q %v\n%s", d.Section, d.Rule, d.NewBridge, d.CatchAll, tt.section, tt.rule, tt.newBridge, d.Trace)
			}
		})
	}
}

// TestExplainAudit: in audit mode a denial passes, the deny chain returns,
// and the decision is still the rule that would deny.
func TestExplainAudit(t *testing.T) {
	pol := parsePolicy(t, strings.Replace(explainPolicy, "version: 1\n", "version: 1\nsettings: {mode: audit}\n", 1))
	app := policy.Network{Name: "app_default", Bridge: "br-app", Subnets: prefixes("172.20.0.0/16")}
	d, err := Explain(pol, []policy.Network{app}, app, Probe{Dst: netip.MustParseAddr("192.168.100.5"), Proto: policy.ProtoTCP, Port: 5432})
	if err != nil {
		t.Fatal(err)
	}
	if d.Rule == nil || d.Rule.ID() != "egress 2" || d.Verdict != policy.Deny || !d.Audit || !d.Passes || d.Trace.Verdict != nft.Accept {
		t.Errorf("decision %+v\n%s", d, d.Trace)
	}
	// The deny chain logs (one meter rule per family), then returns.
	if !strings.Contains(d.Trace.String(), "fwd_br-app.e2 0 yes\nfwd_br-app.e2 1 no\nfwd_br-app.e2 2 yes return") {
		t.Errorf("the trace does not return from the deny chain:\n%s", d.Trace)
	}
}

func TestDefaultSource(t *testing.T) {
	v4only := policy.Network{Bridge: "br-x", Subnets: prefixes("10.88.0.0/24")}
	a := netip.MustParseAddr
	tests := []struct {
		name    string
		n       policy.Network
		pr      Probe
		want    string
		hasNote bool
	}{
		{name: "family of the network", n: v4only, pr: Probe{Dst: a("192.168.1.1"), Proto: policy.ProtoTCP, Port: 80}},
		{name: "other family: link-local", n: v4only, pr: Probe{Dst: a("2001:db8::1"), Proto: policy.ProtoTCP, Port: 80}, want: "fe80::1", hasNote: true},
		{name: "given source stays", n: v4only, pr: Probe{Src: a("2001:db8::9"), Dst: a("2001:db8::1"), Proto: policy.ProtoTCP, Port: 80}, want: "2001:db8::9"},
		{name: "no subnets known", n: policy.Network{Name: "x"}, pr: Probe{Dst: a("2001:db8::1"), Proto: policy.ProtoTCP, Port: 80}},
		{name: "IPv6-only network", n: policy.Network{Subnets: prefixes("fd00::/64")}, pr: Probe{Dst: a("10.0.0.1"), Proto: policy.ProtoICMP}, want: "169.254.0.1", hasNote: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, note := DefaultSource(tt.n, tt.pr)
			gotSrc := ""
			if got.Src.IsValid() {
				gotSrc = got.Src.String()
			}
			if gotSrc != tt.want || (note != "") != tt.hasNote {
				t.Errorf("source %q, note %q; want %q, a note: %v", gotSrc, note, tt.want, tt.hasNote)
			}
		})
	}
	// Egress, such a source is spoofed, as in the kernel, where the network's
	// chain sends every packet of a family without subnets to anti-spoofing.
	pol := parsePolicy(t, explainPolicy)
	n := policy.Network{Name: "br-x", Bridge: "br-x", Subnets: v4only.Subnets}
	pr, _ := DefaultSource(v4only, Probe{Dst: a("2001:db8::1"), Proto: policy.ProtoTCP, Port: 80})
	if d, err := Explain(pol, []policy.Network{n}, n, pr); err != nil || !d.Spoofed || d.Passes {
		t.Errorf("egress from a network without IPv6 subnets: %+v, %v, want spoofed", d, err)
	}
	// Towards the host, it passes anti-spoofing.
	pr.Hook = policy.Host
	if d, err := Explain(pol, []policy.Network{n}, n, pr); err != nil || d.Spoofed || d.Verdict != policy.Deny || d.Rule != nil {
		t.Errorf("host from a network without IPv6 subnets: %+v, %v, want host_default", d, err)
	}
}

// hostAddrs is a HostAddrs of the addresses given, on any interface.
type hostAddrs []netip.Addr

func (h hostAddrs) Holds(_ string, dst netip.Addr) bool { return slices.Contains(h, dst) }

func TestToHost(t *testing.T) {
	a := netip.MustParseAddr
	n := policy.Network{Name: "app", Bridge: "br-app", Subnets: prefixes("172.20.0.0/16")}
	local := hostAddrs{a("172.20.0.1"), a("192.168.1.10")}
	tests := []struct {
		name     string
		hook     policy.Hook
		dst      string
		err      error
		want     policy.Hook
		wantNote string
	}{
		{name: "gateway", dst: "172.20.0.1", want: policy.Host, wantNote: "172.20.0.1 is one of this host's own addresses: the kernel delivers the packet to the host (input hook)"},
		{name: "another interface's address", dst: "192.168.1.10", want: policy.Host, wantNote: "one of this host's own addresses"},
		{name: "elsewhere", dst: "192.168.1.11", want: policy.Egress},
		{name: "with --host", hook: policy.Host, dst: "172.20.0.1", want: policy.Host},
		{name: "with --host, elsewhere", hook: policy.Host, dst: "10.0.0.1", want: policy.Host, wantNote: "10.0.0.1 is not one of this host's own addresses: judged as traffic to the host all the same, as --host asks"},
		{name: "addresses unknown", dst: "172.20.0.1", err: errors.New("netlink: permission denied"), want: policy.Egress, wantNote: "the host's own addresses are not known (netlink: permission denied): 172.20.0.1 is judged as egress; if it is one of this host's addresses, --host judges it"},
		{name: "addresses unknown, --host", hook: policy.Host, dst: "172.20.0.1", err: errors.New("no"), want: policy.Host},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr, note := ToHost(n, Probe{Hook: tt.hook, Dst: a(tt.dst), Proto: policy.ProtoTCP, Port: 53}, local, tt.err)
			if pr.Hook != tt.want || !strings.Contains(note, tt.wantNote) || (tt.wantNote == "") != (note == "") {
				t.Errorf("hook %v, note %q; want %v, a note with %q", pr.Hook, note, tt.want, tt.wantNote)
			}
		})
	}
	// The host rules judge it: the gateway's DNS is allowed, what else the
	// host serves is not.
	pol := parsePolicy(t, `version: 1
networks:
  - match: {name: "*"}
    egress:
      - deny: 172.16.0.0/12
    host:
      - allow: self
        ports: [53]
    host_default: deny
`)
	for _, tc := range []struct {
		port   uint16
		passes bool
		rule   string
	}{{53, true, "host 1"}, {22, false, ""}} {
		pr, _ := ToHost(n, Probe{Dst: a("172.20.0.1"), Proto: policy.ProtoTCP, Port: tc.port}, local, nil)
		d, err := Explain(pol, []policy.Network{n}, n, pr)
		rule := ""
		if d.Rule != nil {
			rule = d.Rule.ID()
		}
		if err != nil || d.Passes != tc.passes || rule != tc.rule || len(d.Trace.Steps) == 0 || d.Trace.Steps[0].Chain != "input" {
			t.Errorf("to the gateway, port %d: %+v, %v; want passes %v by %q in the input hook", tc.port, d, err, tc.passes, tc.rule)
		}
	}
}

// TestExplainTunnelEndpoint judges packets from a container to the host's
// tunnel endpoints: under the embedded default (host_default allow) the
// tunnel fence denies the UDP ports of tunnels, WireGuard's included,
// which clears the packet mark; a host rule that allows the port comes
// first; other ports and host_default deny are left as they were.
func TestExplainTunnelEndpoint(t *testing.T) {
	def := loadPolicy(t, "")
	allowWG := parsePolicy(t, `version: 1
networks:
  - match: {name: "*"}
    host:
      - allow: any
        proto: udp
        ports: [51820]
`)
	off := parsePolicy(t, `version: 1
settings: {tunnel_mark: 0}
networks:
  - match: {name: "*"}
    egress_default: allow
`)
	app := policy.Network{Name: "app_default", Bridge: "br-1", Subnets: prefixes("172.20.0.0/16", "fd00:20::/64")}
	a := netip.MustParseAddr
	for _, tt := range []struct {
		name   string
		pol    *policy.Policy
		probe  Probe
		tunnel bool
		rule   string
	}{
		{"wireguard", def, Probe{Hook: policy.Host, Dst: a("172.20.0.1"), Proto: policy.ProtoUDP, Port: 51820}, true, ""},
		{"vxlan over IPv6", def, Probe{Hook: policy.Host, Dst: a("fd00:20::1"), Proto: policy.ProtoUDP, Port: 4789}, true, ""},
		{"geneve", def, Probe{Hook: policy.Host, Dst: a("172.20.0.1"), Proto: policy.ProtoUDP, Port: 6081}, true, ""},
		{"tcp on a tunnel's port", def, Probe{Hook: policy.Host, Dst: a("172.20.0.1"), Proto: policy.ProtoTCP, Port: 4789}, false, ""},
		{"another udp port", def, Probe{Hook: policy.Host, Dst: a("172.20.0.1"), Proto: policy.ProtoUDP, Port: 4790}, false, ""},
		{"allowed explicitly", allowWG, Probe{Hook: policy.Host, Dst: a("172.20.0.1"), Proto: policy.ProtoUDP, Port: 51820}, false, "host 1"},
		{"tunnel fence off", off, Probe{Hook: policy.Host, Dst: a("172.20.0.1"), Proto: policy.ProtoUDP, Port: 51820}, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Explain(tt.pol, []policy.Network{app}, app, tt.probe)
			if err != nil {
				t.Fatal(err)
			}
			rule := ""
			if d.Rule != nil {
				rule = d.Rule.ID()
			}
			want := policy.Allow
			if tt.tunnel {
				want = policy.Deny
			}
			if d.TunnelEndpoint != tt.tunnel || d.Verdict != want || d.Passes == tt.tunnel || rule != tt.rule {
				t.Errorf("tunnel endpoint %v, verdict %v, passes %v, rule %q; want %v, %v, %v, %q\n%s", d.TunnelEndpoint, d.Verdict, d.Passes, rule, tt.tunnel, want, !tt.tunnel, tt.rule, d.Trace)
			}
		})
	}
}
