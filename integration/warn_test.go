package integration

import (
	"strings"
	"syscall"
	"testing"
)

// TestSectionWarnings runs the binary on a policy with a section that no
// network matches and one that an earlier section shadows: check warns of
// the shadowed one without looking at networks; apply, plan and status
// warn of both, by themselves and through the daemon, whose log says each
// once however often it syncs and loads the policy.
func TestSectionWarnings(t *testing.T) {
	e := newEnv(t)
	pol := e.write("p.yaml", `version: 1
networks:
  - match: {subnet: 172.20.0.0/16}
    egress:
      - deny: 192.168.0.0/16
  - match: {bridge: br-tset}
  - match: {subnet: 172.20.0.0/24}
`)
	shadowed := pol + `:7:5: section 3 {subnet: 172.20.0.0/24} never applies: section 1 {subnet: 172.20.0.0/16} (line 3) comes first and matches every network it matches; move section 3 above it, or remove it`
	unmatched := pol + `:6:5: section 2 {bridge: \"br-tset\"} matches no network; did you mean bridge br-test?`
	has := func(what, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s does not say %s:\n%s", what, w, out)
			}
		}
	}

	stdout, stderr, err := e.dfStdout("check", pol)
	if err != nil || !strings.Contains(stdout, ": OK: ") {
		t.Fatalf("check: %v\n%s%s", err, stdout, stderr)
	}
	has("check", stderr, shadowed)
	if strings.Contains(stderr, "matches no network") {
		t.Errorf("check looked at networks:\n%s", stderr)
	}
	for _, args := range [][]string{{"apply", "-c", pol}, {"plan", "-c", pol}} {
		stdout, stderr, err := e.dfStdout(args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s%s", args[0], err, stdout, stderr)
		}
		has(args[0], stderr, shadowed, unmatched)
	}
	has("status", e.mustDF("status", "-c", pol), strings.ReplaceAll(shadowed, `\"`, `"`), strings.ReplaceAll(unmatched, `\"`, `"`))

	p := startProc(t, e.dfCmd("run", "--no-docker", "-c", pol))
	p.waitLog(t, "table applied")
	for range 3 { // every reload syncs
		before := p.countLog(`msg="policy reloaded"`)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		p.waitCount(t, before, `msg="policy reloaded"`)
	}
	// The daemon's loop serves a request once the syncs before it are
	// done, and apply syncs too.
	for _, cmd := range []string{"apply", "plan"} {
		stdout, stderr, err := e.dfStdout(cmd, "-c", pol)
		if err != nil || !strings.Contains(stdout, "dockerfence run") && !strings.Contains(stdout, "up to date") {
			t.Fatalf("%s through the daemon: %v\n%s%s", cmd, err, stdout, stderr)
		}
		has(cmd+" through the daemon", stderr, shadowed, unmatched)
	}
	for what, part := range map[string]string{"matches no network": "matches no network", "an earlier section shadows": "never applies"} {
		if n := p.countLog(part); n != 1 {
			t.Errorf("the daemon logged the section that %s %d times over its syncs and loads (start, monitor, 3 reloads, apply, plan), want once:\n%s", what, n, p.log.String())
		}
	}
}
