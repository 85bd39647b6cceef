package status

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/google/go-cmp/cmp"
)

const seed = `version: 1
settings: {mode: MODE}
networks:
  - match: {subnet: 172.20.0.0/16}
    egress:
      - allow: self
      - deny: 192.168.0.0/16
        comment: private network
    egress_default: allow
`

func load(t *testing.T, mode string) *policy.Policy {
	t.Helper()
	src := []byte(seed[:len("version: 1\nsettings: {mode: ")] + mode + seed[len("version: 1\nsettings: {mode: MODE"):])
	p, err := policy.Parse("seed.yaml", src, policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var app = policy.Network{Name: "app_default", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}

// kernelState is the state the kernel would report for t, with the given
// packet counters by chain and rule ID, given to the first kernel rule of
// that ID (a policy rule may become one per address family).
func kernelState(t *nft.Table, packets map[string]uint64) *nft.State {
	st := &nft.State{}
	for _, c := range t.Chains {
		cs := nft.ChainState{Name: c.Name}
		for _, r := range c.Rules {
			p := packets[c.Name+"/"+r.ID]
			delete(packets, c.Name+"/"+r.ID)
			cs.Rules = append(cs.Rules, nft.RuleState{ID: r.ID, Packets: p, Bytes: 100 * p})
		}
		st.Chains = append(st.Chains, cs)
	}
	for _, set := range t.Sets {
		if set.Map {
			st.Sets = append(st.Sets, nft.SetState{Name: set.Name, VMap: set.VMap})
		}
	}
	return st
}

func TestMakeCounters(t *testing.T) {
	for _, tc := range []struct{ mode, deny string }{{"enforce", "deny"}, {"audit", "would deny"}} {
		t.Run(tc.mode, func(t *testing.T) {
			pol := load(t, tc.mode)
			tbl := fence.Compile(pol, []policy.Network{app})
			st := kernelState(tbl.Table, map[string]uint64{"fwd_br-app/egress 2": 7, "fwd_br-app/egress 1": 3, "fwd_br-app/spoof": 1, "fwd_br-app/default": 5})
			s := Make(pol, tbl, st, SourceDocker)
			if s.Mode != tc.mode || !s.Table.Present || !s.Docker || len(s.Networks) != 1 {
				t.Fatalf("status = %+v", s)
			}
			n := s.Networks[0]
			var egress []RuleStatus
			for _, r := range n.Rules {
				if r.Hook == "egress" {
					egress = append(egress, r)
				}
			}
			want := []RuleStatus{
				{ID: "anti-spoofing", Hook: "egress", Verdict: tc.deny, Match: "source not in subnets", Packets: 1, Bytes: 100},
				{ID: "egress 1", Hook: "egress", Index: 1, Verdict: "allow", Match: "self", Packets: 3, Bytes: 300},
				{ID: "egress 2", Hook: "egress", Index: 2, Verdict: tc.deny, Match: "192.168.0.0/16", Comment: "private network", Packets: 7, Bytes: 700},
				{ID: "egress_default", Hook: "egress", Verdict: "allow", Match: "anything else", Packets: 5, Bytes: 500},
			}
			if diff := cmp.Diff(want, egress); diff != "" {
				t.Errorf("egress rules (-want +got):\n%s", diff)
			}
			if n.Denied != 8 {
				t.Errorf("Denied = %d, want 8 (7 by the rule, 1 spoofed)", n.Denied)
			}
		})
	}
}

func TestMakeAbsent(t *testing.T) {
	pol := load(t, "enforce")
	s := Make(pol, fence.Compile(pol, []policy.Network{app}), nil, SourceNetlink)
	if s.Table.Present || s.Table.InSync || s.Docker || s.Networks[0].Denied != 0 {
		t.Errorf("status of an absent table = %+v", s)
	}
}

func TestLastApply(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if a, err := LoadLastApply(dir, "dockerfence"); a != nil || err != nil {
		t.Fatalf("LoadLastApply before any = %v, %v", a, err)
	}
	want := Apply{Time: time.Date(2026, 11, 21, 12, 4, 5, 0, time.UTC), By: "apply", Result: "applied", TookMS: 1.5, Table: "dockerfence"}
	if err := SaveLastApply(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadLastApply(dir, "dockerfence")
	if err != nil || got == nil {
		t.Fatalf("LoadLastApply = %v, %v", got, err)
	}
	if diff := cmp.Diff(want, *got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if a, _ := LoadLastApply(dir, "other"); a != nil {
		t.Errorf("LoadLastApply of another table = %+v, want nil", a)
	}
	fi, err := os.Stat(filepath.Join(dir, lastApplyFile))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("record file: %v, %v", fi, err)
	}
}

func TestMakeWarningsAndTunnel(t *testing.T) {
	src := "version: 1\nnetworks:\n  - match: {subnet: 172.20.0.0/16}\n    host:\n      - allow: any\n        proto: udp\n        ports: [4789]\n"
	pol, err := policy.Parse("p.yaml", []byte(src), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	tbl := fence.Compile(pol, []policy.Network{app})
	st := kernelState(tbl.Table, map[string]uint64{"fwd.network/tunnel": 4, "in.network/tunnel": 2})
	s := Make(pol, tbl, st, SourceNetlink)
	want := []string{"network app_default (section 1): host 1 allows udp/4789 (VXLAN) to this host explicitly, so what a tunnel endpoint there decapsulates from the containers' packets is not fenced; the tunnel fence covers only what host_default allows"}
	// The policy's own warnings first: its @resolvers file is missing.
	if diff := cmp.Diff(append(append([]string{}, pol.Warnings...), want...), s.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if s.TunnelDenied != 6 {
		t.Errorf("TunnelDenied = %d, want 6", s.TunnelDenied)
	}
	var text strings.Builder
	WriteText(&text, s)
	for _, line := range []string{"warning:    " + want[0] + "\n", "tunnels:    6 packets decapsulated on this host from containers' packets denied\n"} {
		if !strings.Contains(text.String(), line) {
			t.Errorf("status text lacks %q:\n%s", line, text.String())
		}
	}
	seed := load(t, "enforce")
	if s := Make(seed, fence.Compile(seed, []policy.Network{app}), nil, SourceNetlink); s.Warnings == nil || len(s.Warnings) != len(seed.Warnings) {
		t.Errorf("warnings of the seed policy = %#v, want the policy's alone", s.Warnings)
	}
}

// WriteJSON prints the schema indented by two spaces, one object.
func TestWriteJSON(t *testing.T) {
	s := Status{Policy: "p.yaml", Mode: "enforce", Source: SourceDocker, Table: TableStatus{Name: "dockerfence", Present: true, Priority: -10}}
	var b strings.Builder
	if err := WriteJSON(&b, s); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "{\n  \"") || !strings.HasSuffix(b.String(), "\n}\n") || !strings.Contains(b.String(), "\n  \"table\": {\n    \"name\": \"dockerfence\",") {
		t.Errorf("WriteJSON wrote:\n%s\nwant an object indented by two spaces", b.String())
	}
	var back Status
	if err := json.Unmarshal([]byte(b.String()), &back); err != nil || back.Policy != "p.yaml" || !cmp.Equal(back.Table, s.Table) {
		t.Errorf("WriteJSON's output reads back as %+v, %v", back, err)
	}
}

func TestRecordApply(t *testing.T) {
	dir := t.TempDir()
	if err := RecordApply(dir, Apply{By: "apply", Table: "dockerfence"}, false, nil); err != nil {
		t.Fatal(err)
	}
	if a, err := LoadLastApply(dir, "dockerfence"); err != nil || a != nil {
		t.Fatalf("an apply that sent nothing was recorded: %+v, %v", a, err)
	}
	if err := RecordApply(dir, Apply{By: "apply", Table: "dockerfence"}, false, errors.New("EPERM")); err != nil {
		t.Fatal(err)
	}
	if a, err := LoadLastApply(dir, "dockerfence"); err != nil || a == nil || a.Result != "failed" || a.Error != "EPERM" {
		t.Fatalf("failed apply recorded as %+v, %v", a, err)
	}
}

// Networks of other drivers than bridge are listed as not fenceable, with
// the reason, in JSON and in text, never as fenced, even when a section
// matches them.
func TestMakeNotFenceable(t *testing.T) {
	pol := load(t, "enforce")
	lan := policy.Network{ID: "m1", Name: "lan", Driver: "macvlan", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.99.0/24")}}
	host := policy.Network{ID: "h1", Name: "host", Driver: "host"}
	tbl := fence.Compile(pol, []policy.Network{app, lan, host})
	s := Make(pol, tbl, kernelState(tbl.Table, nil), SourceDocker)
	if len(s.Networks) != 1 || s.Networks[0].Name != "app_default" || len(s.Unfenced) != 0 {
		t.Fatalf("networks %+v, unfenced %+v; want app_default fenced, nothing unfenced", s.Networks, s.Unfenced)
	}
	want := []NotFenceableStatus{
		{Name: "host", ID: "h1", Driver: "host", Subnets: []string{}, Reason: "host: containers share the host's network stack: their traffic is the host's own"},
		{Name: "lan", ID: "m1", Driver: "macvlan", Subnets: []string{"172.20.99.0/24"}, Section: 1, Match: "{subnet: 172.20.0.0/16}",
			Reason: "macvlan: containers talk to the LAN directly through the parent interface, not through a bridge on this host: dockerfence cannot see their packets"},
	}
	if diff := cmp.Diff(want, s.NotFenceable); diff != "" {
		t.Errorf("not fenceable (-want +got):\n%s", diff)
	}
	var b strings.Builder
	if err := WriteJSON(&b, s); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"not_fenceable": [`, `"driver": "macvlan"`, `"reason": "macvlan: containers talk to the LAN directly`} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("status --json lacks %s:\n%s", w, b.String())
		}
	}
	b.Reset()
	WriteText(&b, s)
	for _, w := range []string{
		"host         -       -               not fenceable: host        -",
		"lan          -       172.20.99.0/24  not fenceable: macvlan     -",
		"not fenceable: Docker networks without a bridge on this host, which dockerfence cannot fence:\n" +
			"  host  host: containers share the host's network stack: their traffic is the host's own\n" +
			"  lan   macvlan: containers talk to the LAN directly through the parent interface, not through a bridge on this host: dockerfence cannot see their packets; section 1 {subnet: 172.20.0.0/16} matches it but cannot fence it\n",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("status lacks %q:\n%s", w, b.String())
		}
	}
	// Without any, the list is empty, not null, and the text says nothing.
	s = Make(pol, fence.Compile(pol, []policy.Network{app}), nil, SourceDocker)
	b.Reset()
	WriteJSON(&b, s)
	if !strings.Contains(b.String(), `"not_fenceable": []`) {
		t.Errorf("status --json without such networks:\n%s", b.String())
	}
	b.Reset()
	WriteText(&b, s)
	if strings.Contains(b.String(), "fenceable") {
		t.Errorf("status without such networks mentions them:\n%s", b.String())
	}
}
