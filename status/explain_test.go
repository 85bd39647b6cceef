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
	data, err := os.ReadFile("../policy/testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse("/tmp/seed.yaml", data, policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
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
	want := `{"network":{"name":"app_default","bridge":"br-app","subnets":["172.20.0.0/16"],"source":"docker"},"note":"","packet":{"hook":"egress","src":"10.9.9.9","dst":"192.168.1.1","port":80,"proto":"tcp"},"section":1,"match":"{subnet: 172.20.0.0/16}","rule":"","rule_match":"","comment":"","decided_by":"anti-spoofing","spoofed":true,"verdict":"deny","deny_action":"","audit":true,"passes":true}`
	if string(b) != want {
		t.Errorf("JSON\n%s\nwant\n%s", b, want)
	}
	if got := x.Text(); !strings.Contains(got, "rule     anti-spoofing: source 10.9.9.9 is outside the network's subnets\nverdict  allow (audit mode: would deny, logged and counted)\n") {
		t.Errorf("text:\n%s", got)
	}
}
