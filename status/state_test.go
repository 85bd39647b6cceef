package status

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/fake"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", file, diff)
	}
}

// appliedState is the state that a (fake) kernel reports once tbl is
// applied, with the given packet counters by chain and rule ID, given to
// the first kernel rule of that ID.
func appliedState(t *testing.T, tbl *nft.Table, packets map[string]uint64) *nft.State {
	t.Helper()
	k := fake.New()
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	st, err := k.Read(tbl.Name)
	if err != nil || st == nil {
		t.Fatalf("read back: %v, %v", st, err)
	}
	for i := range st.Chains {
		for j := range st.Chains[i].Rules {
			r := &st.Chains[i].Rules[j]
			key := st.Chains[i].Name + "/" + r.ID
			if p, ok := packets[key]; ok {
				r.Packets, r.Bytes = p, 100*p
				delete(packets, key)
			}
		}
	}
	if len(packets) > 0 {
		t.Fatalf("no rules for counters %v", packets)
	}
	return st
}

// TestState holds status's exit code to the table: 0 present and equal
// to the policy, 3 absent, 4 different; --json says the same.
func TestState(t *testing.T) {
	pol := load(t, "enforce")
	tbl := fence.Compile(pol, []policy.Network{app})
	changed := appliedState(t, tbl.Table, nil)
	changed.Chains[len(changed.Chains)-1].Rules = changed.Chains[len(changed.Chains)-1].Rules[1:]
	for _, tc := range []struct {
		name  string
		s     Status
		state string
		code  int
	}{
		{"in sync", Make(pol, tbl, appliedState(t, tbl.Table, nil), SourceDocker), StateInSync, ExitOK},
		{"absent", Make(pol, tbl, nil, SourceDocker), StateAbsent, ExitAbsent},
		{"differs", Make(pol, tbl, changed, SourceDocker), StateDiffers, ExitDiffers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.s.State != tc.state || tc.s.ExitCode != tc.code {
				t.Errorf("state %q exit code %d, want %q %d (drift %q)", tc.s.State, tc.s.ExitCode, tc.state, tc.code, tc.s.Table.Drift)
			}
			var b bytes.Buffer
			if err := WriteJSON(&b, tc.s); err != nil {
				t.Fatal(err)
			}
			var back struct {
				State    string `json:"state"`
				ExitCode *int   `json:"exit_code"`
			}
			if err := json.Unmarshal(b.Bytes(), &back); err != nil || back.State != tc.state || back.ExitCode == nil || *back.ExitCode != tc.code {
				t.Errorf("status --json says state %q exit code %v (%v), want %q %d:\n%s", back.State, back.ExitCode, err, tc.state, tc.code, b.String())
			}
		})
	}
	// A kept table (the daemon waits for Docker) is not known to be equal.
	kept := Status{Table: TableStatus{Present: true}}
	kept.SetState()
	if kept.State != StateDiffers || kept.ExitCode != ExitDiffers {
		t.Errorf("kept table: %q %d", kept.State, kept.ExitCode)
	}
}

// catchAllPolicy has the embedded default's shape: one {name: "*"}
// section, which also makes the catch-all.
const catchAllPolicy = `version: 1
networks:
  - match: {name: "*"}
    egress:
      - allow: self
      - deny: 192.168.0.0/16
        comment: private network
    egress_default: allow
`

// TestCatchAll: a network created after the last apply, which the kernel's
// table judges by the catch-all, shows the catch-all's counters (shared),
// not 0 denied; the catch-all is shown with its own counters; with the
// table absent no rule table is shown.
func TestCatchAll(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(catchAllPolicy), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	pol.Warnings = nil // the missing resolv.conf's, which name a temporary path
	late := policy.Network{Name: "late", Bridge: "br-late", Subnets: []netip.Prefix{netip.MustParsePrefix("172.21.0.0/16")}}
	applied := fence.Compile(pol, []policy.Network{app})
	st := appliedState(t, applied.Table, map[string]uint64{
		"fwd_br-app/egress 2": 2, "fwd_unknown/egress 2": 5, "fwd_unknown/spoof": 1, "fwd_unknown/egress 1": 9, "in_unknown/default": 4,
	})
	now := fence.Compile(pol, []policy.Network{app, late})
	s := Make(pol, now, st, SourceDocker)

	if s.State != StateDiffers {
		t.Errorf("state %q, want differs: the late network has no chain of its own", s.State)
	}
	if len(s.Networks) != 2 || s.Networks[0].CatchAll || s.Networks[0].Denied != 2 || !s.Networks[1].CatchAll || s.Networks[1].Denied != 6 || s.Networks[1].Rules != nil {
		t.Errorf("networks %+v; want app_default with 2 denied, late under the catch-all with its 6 denied and no rules of its own", s.Networks)
	}
	if ca := s.CatchAll; ca == nil || ca.Section != 1 || ca.Denied != 6 || !cmp.Equal(ca.Bridges, []string{"br-late"}) {
		t.Errorf("catch-all %+v", ca)
	}
	var text, js bytes.Buffer
	WriteText(&text, s)
	golden(t, "catchall.txt", text.String())
	if err := WriteJSON(&js, s); err != nil {
		t.Fatal(err)
	}
	golden(t, "catchall.json", js.String())

	// In sync: the catch-all is shown, with no bridge under it.
	s = Make(pol, applied, st, SourceDocker)
	if s.State != StateInSync || s.CatchAll == nil || len(s.CatchAll.Bridges) != 0 || s.CatchAll.Denied != 6 || s.Networks[0].CatchAll {
		t.Errorf("in sync: state %q catch-all %+v networks %+v", s.State, s.CatchAll, s.Networks)
	}

	// Absent: no rules, no catch-all, no rule table in the text.
	s = Make(pol, now, nil, SourceDocker)
	if s.CatchAll != nil || s.Networks[0].Rules != nil || s.Networks[1].Rules != nil || s.Networks[1].CatchAll {
		t.Errorf("absent: catch-all %+v networks %+v", s.CatchAll, s.Networks)
	}
	text.Reset()
	WriteText(&text, s)
	golden(t, "absent.txt", text.String())
	if strings.Contains(text.String(), "RULE") || strings.Contains(text.String(), "catch-all") {
		t.Errorf("status of an absent table shows rules:\n%s", text.String())
	}
	js.Reset()
	WriteJSON(&js, s)
	if strings.Contains(js.String(), `"rules"`) || !strings.Contains(js.String(), `"catch_all": null`) {
		t.Errorf("status --json of an absent table:\n%s", js.String())
	}
}

// TestUnjudged: a network that the policy fences but the kernel's table
// judges by nothing (no chain of its own, no catch-all) shows no rules and
// says so, rather than rules that count 0.
func TestUnjudged(t *testing.T) {
	pol := load(t, "enforce")
	applied := fence.Compile(pol, []policy.Network{app})
	st := appliedState(t, applied.Table, map[string]uint64{"fwd_br-app/egress 2": 2})
	late := policy.Network{Name: "late", Bridge: "br-late", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.9.0/24")}}
	s := Make(pol, fence.Compile(pol, []policy.Network{app, late}), st, SourceDocker)
	if len(s.Networks) != 2 || s.Networks[0].Unjudged || s.Networks[0].Denied != 2 || !s.Networks[1].Unjudged || s.Networks[1].CatchAll || s.Networks[1].Rules != nil || s.CatchAll != nil {
		t.Fatalf("networks %+v, catch-all %+v; want br-late unjudged, without rules", s.Networks, s.CatchAll)
	}
	var text bytes.Buffer
	WriteText(&text, s)
	for _, want := range []string{
		"late         br-late  172.20.9.0/24  1 {subnet: 172.20.0.0/16}  - (not in the table)\n",
		"late (br-late): not in the kernel's table, and no catch-all covers its bridge: not fenced until dockerfence apply\n",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, text.String())
		}
	}
}
