package integration

import (
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/status"
)

// TestStatusScriptable holds status and plan --exit-code to the kernel's
// table, under the embedded default and without Docker or a daemon: absent
// (status 3, no rule tables; plan 2), applied (0; 0), a bridge created after
// the apply, which the catch-all fences (status 4, and the network shows
// the catch-all's denials; plan 2), changed by hand (4; 2), and deleted
// (3; 2). explain judges a subnet no network holds by the "*" section, as
// a new bridge.
func TestStatusScriptable(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	db := hostPort(topo.LANDB4, 5432)
	// statusIs runs status (text and JSON) and plan --exit-code, checks
	// their exit codes, and returns status's text.
	statusIs := func(t *testing.T, state string, code, plan int) string {
		t.Helper()
		out, stderr, got := e.dfExit(t, "", "status")
		t.Logf("status (exit %d):\n%s%s", got, out, stderr)
		if got != code {
			t.Errorf("status: exit %d, want %d:\n%s%s", got, code, out, stderr)
		}
		if strings.Contains(stderr, "Error") || strings.Contains(stderr, "exit code") {
			t.Errorf("status (exit %d) wrote an error: %q", got, stderr)
		}
		if s := e.statusJSON(); s.State != state || s.ExitCode != code {
			t.Errorf("status --json: state %q exit_code %d, want %q %d", s.State, s.ExitCode, state, code)
		}
		if _, stderr, got := e.dfExit(t, "", "plan", "--exit-code"); got != plan {
			t.Errorf("plan --exit-code: exit %d, want %d\n%s", got, plan, stderr)
		}
		if _, _, got := e.dfExit(t, "", "plan"); got != 0 {
			t.Errorf("plan without --exit-code: exit %d, want 0", got)
		}
		return out
	}
	noRules := func(t *testing.T, out string) {
		t.Helper()
		if !strings.Contains(out, "absent: nothing is fenced") || strings.Contains(out, "RULE") || strings.Contains(out, "catch-all:") {
			t.Errorf("status of an absent table shows rules:\n%s", out)
		}
	}

	noRules(t, statusIs(t, status.StateAbsent, status.ExitAbsent, status.ExitPending))

	e.mustDF("apply") // the embedded default: a catch-all for br-* bridges
	out := statusIs(t, status.StateInSync, status.ExitOK, status.ExitOK)
	if !strings.Contains(out, "matches the policy") || !strings.Contains(out, `catch-all: section 1 {name: "*"}`) || !strings.Contains(out, "none now") {
		t.Errorf("status after apply does not show the catch-all:\n%s", out)
	}

	// A network created after the apply, with no daemon to see it: the
	// catch-all fences it, and status counts its denials there.
	e.tp.AddBridge(t, "br-late", "172.21.0.1/16", "fd00:21::1/64")
	late := e.tp.AddContainerOn(t, "br-late", "late", "172.21.0.2/16", "fd00:21::2/64")
	e.expect(late, []probe{{"late: lan database", "tcp", db, "refused"}})
	out = statusIs(t, status.StateDiffers, status.ExitDiffers, status.ExitPending)
	if !strings.Contains(out, "(catch-all, shared)") || !strings.Contains(out, "now br-late") {
		t.Errorf("status does not attribute the catch-all's denials to br-late:\n%s", out)
	}
	s := e.statusJSON()
	found := false
	for _, n := range s.Networks {
		if n.Bridge == "br-late" {
			found = true
			if !n.CatchAll || n.Denied == 0 || s.CatchAll == nil || n.Denied != s.CatchAll.Denied {
				t.Errorf("br-late: catch_all %v, denied %d; catch-all %+v; want the catch-all's denials", n.CatchAll, n.Denied, s.CatchAll)
			}
		}
	}
	if !found {
		t.Errorf("status --json does not list br-late: %+v", s.Networks)
	}

	// explain judges a subnet no network holds as a new bridge would be.
	out = e.mustDF("explain", "--network", "172.29.0.0/16", "--to", db)
	for _, want := range []string{`no network holds 172.29.0.0/16; judged by section 1 {name: "*"} as a new bridge would be`, `section  1 {name: "*"}`, "verdict  deny (reject)"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lacks %q:\n%s", want, out)
		}
	}

	e.mustDF("apply")
	statusIs(t, status.StateInSync, status.ExitOK, status.ExitOK)

	// Changed by hand.
	e.tp.Host.Run(t, "nft", "flush", "chain", "inet", "dockerfence", "fwd_br-test")
	out = statusIs(t, status.StateDiffers, status.ExitDiffers, status.ExitPending)
	if !strings.Contains(out, "differs from the policy") {
		t.Errorf("status after a change by hand:\n%s", out)
	}

	e.mustDF("delete")
	noRules(t, statusIs(t, status.StateAbsent, status.ExitAbsent, status.ExitPending))
}
