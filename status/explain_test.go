package status

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/policy"
)

// TestExplainREADME holds the explain outputs that the README pastes to
// what explain prints.
func TestExplainREADME(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The README runs explain from the repository's top directory.
	data, err := os.ReadFile("../examples/field-report.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("examples/field-report.yaml", data, policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	n := policy.Network{Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}
	note := "docker is not reachable at unix:///nonexistent, and no bridge holds this subnet: judged by the subnet alone, so name, bridge and label matches cannot hold"
	for _, tc := range []struct {
		cmd   string
		probe fence.Probe
		// lines is how many of the output's last lines the README shows.
		lines int
	}{
		{"--to 192.168.100.50:5432", fence.Probe{Dst: netip.MustParseAddr("192.168.100.50"), Proto: policy.ProtoTCP, Port: 5432}, 6},
		{"--to 192.168.100.2:53/udp", fence.Probe{Dst: netip.MustParseAddr("192.168.100.2"), Proto: policy.ProtoUDP, Port: 53}, 2},
	} {
		d, err := fence.Explain(pol, nil, n, tc.probe)
		if err != nil {
			t.Fatal(err)
		}
		x := &Explain{Network: n, Source: "argument", Note: note, Probe: tc.probe, Decision: d}
		lines := strings.SplitAfter(x.Text(), "\n")
		lines = lines[:len(lines)-1]
		want := "explain --network 172.20.0.0/16 " + tc.cmd + "\n"
		if tc.lines < len(lines) {
			want += "...\n"
		}
		want += strings.Join(lines[len(lines)-tc.lines:], "")
		if !strings.Contains(string(readme), want) {
			t.Errorf("the README does not show explain's output:\n%s", want)
		}
	}
}

// hostAddrs is a fence.HostAddrs of the addresses given.
type hostAddrs []netip.Addr

func (h hostAddrs) Holds(_ string, dst netip.Addr) bool {
	for _, a := range h {
		if a == dst {
			return true
		}
	}
	return false
}

// TestExplainREADMEMore holds the README's outputs of explain for a
// destination that is one of the host's addresses, for a network that
// cannot be fenced, and for a subnet nothing holds under the embedded
// default, to what explain prints.
func TestExplainREADMEMore(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	load := func(name, text string) *policy.Policy {
		pol, err := policy.Parse(name, []byte(text), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
		if err != nil {
			t.Fatal(err)
		}
		return pol
	}
	seed, err := os.ReadFile("../examples/field-report.yaml")
	if err != nil {
		t.Fatal(err)
	}
	br := policy.Network{Name: "br-test", Bridge: "br-test", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16"), netip.MustParsePrefix("fd00:20::/64")}}
	pr, hostNote := fence.ToHost(br, fence.Probe{Dst: netip.MustParseAddr("192.168.100.254"), Proto: policy.ProtoTCP, Port: 22}, hostAddrs{netip.MustParseAddr("192.168.100.254")}, nil)
	lan := policy.Network{ID: "m1", Name: "lan", Driver: "macvlan", Subnets: []netip.Prefix{netip.MustParsePrefix("192.168.100.0/24")}}
	for _, tc := range []struct {
		cmd, note string
		pol       *policy.Policy
		n         policy.Network
		pr        fence.Probe
	}{
		{"--docker-host unix:///nonexistent -c examples/field-report.yaml explain --network br-test --to 192.168.100.254:22",
			"docker is not reachable at unix:///nonexistent; bridge br-test found over netlink, as apply fences it without Docker (no labels); " + hostNote,
			load("examples/field-report.yaml", string(seed)), br, pr},
		{"-c policy.yaml explain --network lan --to 192.168.100.50:5432", "Docker's network lan (driver macvlan)",
			load("policy.yaml", "version: 1\nnetworks:\n  - match: {name: lan}\n    egress:\n      - deny: any\n    egress_default: deny\n  - match: {name: \"*\"}\n    egress:\n      - allow: self\n      - deny: \"@private\"\n"),
			lan, fence.Probe{Dst: netip.MustParseAddr("192.168.100.50"), Proto: policy.ProtoTCP, Port: 5432}},
		{"--docker-host unix:///nonexistent explain --network 172.20.0.0/16 --to 192.168.100.50:5432",
			`no network holds 172.20.0.0/16; judged by section 1 {name: "*"} as a new bridge would be: by the catch-all, the rules for docker0 and br-* bridges that appear after apply (docker is not reachable at unix:///nonexistent)`,
			load(policy.DefaultName, string(policy.DefaultYAML)), policy.Network{Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}},
			fence.Probe{Dst: netip.MustParseAddr("192.168.100.50"), Proto: policy.ProtoTCP, Port: 5432}},
	} {
		inv := []policy.Network{tc.n}
		if tc.n.Bridge == "" && tc.n.Driver == "" {
			inv = nil // a network nothing holds
		}
		d, err := fence.Explain(tc.pol, inv, tc.n, tc.pr)
		if err != nil {
			t.Fatal(err)
		}
		x := &Explain{Network: tc.n, Source: "docker", Note: tc.note, Probe: tc.pr, Decision: d}
		want := "$ dockerfence " + tc.cmd + "\n" + x.Text() + "```"
		if !strings.Contains(string(readme), want) {
			t.Errorf("the README does not show explain's output:\n%s", want)
		}
	}
}

// TestExplanationJSON: every field is there, unfenced or not.
func TestExplanationJSON(t *testing.T) {
	pol := load(t, "audit")
	pr := fence.Probe{Src: netip.MustParseAddr("10.9.9.9"), Dst: netip.MustParseAddr("192.168.1.1"), Proto: policy.ProtoTCP, Port: 80}
	d, err := fence.Explain(pol, []policy.Network{app}, app, pr)
	if err != nil {
		t.Fatal(err)
	}
	x := &Explain{Network: app, Source: "docker", Probe: pr, Decision: d}
	b, err := json.Marshal(x.Explanation())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"network":{"name":"app_default","bridge":"br-app","driver":"","subnets":["172.20.0.0/16"],"source":"docker"},"note":"","packet":{"hook":"egress","src":"10.9.9.9","dst":"192.168.1.1","port":80,"proto":"tcp"},"section":1,"match":"{subnet: 172.20.0.0/16}","section_hook":"egress","rule":"","rule_match":"","comment":"","decided_by":"anti-spoofing","spoofed":true,"verdict":"deny","deny_action":"","audit":true,"passes":true,"action":"allow","catch_all":false,"container":{"name":"","id":""},"layers":[],"out":""}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
	if got := x.Text(); !strings.Contains(got, "rule     anti-spoofing: source 10.9.9.9 is outside the network's subnets\nverdict  allow (audit mode: would deny, logged and counted)\n") {
		t.Errorf("text:\n%s", got)
	}
}

// A network that cannot be fenced gets "not fenced" and why, instead of a
// verdict; a section whose match fits it is named, not made its judge.
func TestExplanationNotFenceable(t *testing.T) {
	pol := load(t, "enforce")
	lan := policy.Network{ID: "m1", Name: "lan", Driver: "macvlan", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.99.0/24")}}
	pr := fence.Probe{Dst: netip.MustParseAddr("192.168.1.1"), Proto: policy.ProtoTCP, Port: 22}
	d, err := fence.Explain(pol, []policy.Network{app, lan}, lan, pr)
	if err != nil {
		t.Fatal(err)
	}
	x := &Explain{Network: lan, Source: "docker", Note: "Docker's network lan (driver macvlan)", Probe: pr, Decision: d}
	b, err := json.Marshal(x.Explanation())
	if err != nil {
		t.Fatal(err)
	}
	const why = "macvlan: containers talk to the LAN directly through the parent interface, not through a bridge on this host: dockerfence cannot see their packets"
	want := `{"network":{"name":"lan","bridge":"","driver":"macvlan","subnets":["172.20.99.0/24"],"source":"docker"},` +
		`"note":"Docker's network lan (driver macvlan); not fenced: ` + why + `; section 1 {subnet: 172.20.0.0/16} matches it but cannot fence it",` +
		`"packet":{"hook":"egress","src":"","dst":"192.168.1.1","port":22,"proto":"tcp"},"section":0,"match":"","section_hook":"","rule":"","rule_match":"","comment":"",` +
		`"decided_by":"not fenceable","spoofed":false,"verdict":"allow","deny_action":"","audit":false,"passes":true,"action":"allow","catch_all":false,"container":{"name":"","id":""},"layers":[],"out":""}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
	wantText := "network  lan (driver macvlan, subnets 172.20.99.0/24)\n" +
		"note     Docker's network lan (driver macvlan)\n" +
		"packet   egress to 192.168.1.1:22, tcp\n" +
		"section  none: 1 {subnet: 172.20.0.0/16} (seed.yaml:4:5) matches this network but cannot fence it\n" +
		"verdict  not fenced: " + why + "\n"
	if got := x.Text(); got != wantText {
		t.Errorf("text:\n%s\nwant\n%s", got, wantText)
	}
}

// TestExplainIngressText renders explain --ingress for a container whose
// section judges the connection, and for one without ingress keys.
func TestExplainIngressText(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(`version: 1
networks:
  - match: {name: "*"}
    ingress_default: allow
containers:
  - match: {label: "tier=db"}
    ingress:
      - allow: 198.51.100.20
        proto: tcp
        ports: [5432]
    ingress_default: deny
`), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	n := policy.Network{ID: "4e5f", Name: "app", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}
	ctrs := []fence.Container{
		{ID: "dbdbdbdbdbdb1111", Name: "db", Labels: map[string]string{"tier": "db"}, Endpoints: []fence.Endpoint{{NetworkID: "4e5f", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.2")}}}},
		{ID: "cccccccccccc2222", Name: "web", Endpoints: []fence.Endpoint{{NetworkID: "4e5f", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.3")}}}},
	}
	for _, tc := range []struct {
		dst  string
		want []string
	}{
		{"172.20.0.2", []string{
			"packet   ingress from 192.0.2.1 to 172.20.0.2:5432, tcp (published port 5432",
			"rule     none matches: ingress_default",
			"container db (dbdbdbdbdbdb)",
			"layer    container section 1 {label: \"tier=db\"} (p.yaml:6:5): none matches: ingress_default deny",
			"verdict  deny (reject)",
		}},
		{"172.20.0.3", []string{
			"container web (cccccccccccc)",
			"layer    none of its own: no container section with ingress keys matches it",
			"verdict  allow",
		}},
	} {
		pr := fence.Probe{Hook: policy.Ingress, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr(tc.dst), Proto: policy.ProtoTCP, Port: 5432}
		d, err := fence.ExplainContainer(pol, []policy.Network{n}, ctrs, n, pr)
		if err != nil {
			t.Fatal(err)
		}
		text := (&Explain{Network: n, Probe: pr, Decision: d}).Text()
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("explain of %s lacks %q:\n%s", tc.dst, w, text)
			}
		}
	}
}

// TestExplainIntoAnotherNetworkText renders an egress packet to a
// container of another network: the receiving network's ingress_default
// denies it, or the receiving container's section does.
func TestExplainIntoAnotherNetworkText(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(`version: 1
networks:
  - match: {name: "app"}
    ingress_default: allow
  - match: {name: "*"}
    ingress_default: deny
containers:
  - match: {label: "tier=db"}
    ingress_default: deny
`), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	app := policy.Network{ID: "4e5f", Name: "app", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}
	other := policy.Network{ID: "9a9a", Name: "other", Bridge: "br-other", Subnets: []netip.Prefix{netip.MustParsePrefix("172.21.0.0/16")}}
	nets := []policy.Network{app, other}
	ctrs := []fence.Container{
		{ID: "dbdbdbdbdbdb1111", Name: "db", Labels: map[string]string{"tier": "db"}, Endpoints: []fence.Endpoint{{NetworkID: "4e5f", Port: "vethdb", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.2")}}}},
		{ID: "cccccccccccc2222", Name: "web", Endpoints: []fence.Endpoint{{NetworkID: "9a9a", Port: "vethweb", Addrs: []netip.Addr{netip.MustParseAddr("172.21.0.3")}}}},
	}
	for _, tc := range []struct {
		from      policy.Network
		src, dst  string
		want      []string
		hook, out string
	}{
		{app, "172.20.0.2", "172.21.0.3", []string{
			`section  2 {name: "*"} (p.yaml:5:5), the section of the network at 172.21.0.3, by its ingress rules`,
			"rule     none matches: ingress_default",
			"verdict  deny (reject)",
		}, "ingress", "br-other"},
		{other, "172.21.0.3", "172.20.0.2", []string{
			"container web (cccccccccccc)",
			"layer    of the container at 172.20.0.2 (ingress): container section 1 {label: \"tier=db\"} (p.yaml:8:5): none matches: ingress_default deny",
			"verdict  deny (reject)",
		}, "egress", "br-app"},
	} {
		pr := fence.Probe{Hook: policy.Egress, Src: netip.MustParseAddr(tc.src), Dst: netip.MustParseAddr(tc.dst), Proto: policy.ProtoTCP, Port: 80}
		pr, _ = fence.RoutedOut(tc.from, pr, nets)
		d, err := fence.ExplainContainer(pol, nets, ctrs, tc.from, pr)
		if err != nil {
			t.Fatal(err)
		}
		x := &Explain{Network: tc.from, Probe: pr, Decision: d}
		text := x.Text()
		for _, w := range tc.want {
			if !strings.Contains(text, w) {
				t.Errorf("explain of %s to %s lacks %q:\n%s", tc.src, tc.dst, w, text)
			}
		}
		if e := x.Explanation(); e.SectionHook != tc.hook || e.Out != tc.out || e.Passes {
			t.Errorf("explain --json of %s to %s: section_hook %q, out %q, passes %v; want %q, %q, false", tc.src, tc.dst, e.SectionHook, e.Out, e.Passes, tc.hook, tc.out)
		}
	}
}
