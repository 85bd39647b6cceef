package main

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/status"
)

func TestExit(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
		msg  string
	}{
		{nil, 0, ""},
		{exitCode(3), 3, ""},
		{exitCode(2), 2, ""},
		{errors.New("no table\nmore"), 1, "dockerfence: no table"},
	} {
		if code, msg := exit(tt.err); code != tt.code || msg != tt.msg {
			t.Errorf("exit(%v) = %d %q, want %d %q", tt.err, code, msg, tt.code, tt.msg)
		}
	}
}

// fakeDaemon serves the daemon's status and plan on a unix socket: the
// status s, and a plan whose pending header is pending ("" for none). It
// returns the socket's path.
func fakeDaemon(t *testing.T, s status.Status, pending string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "df.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+daemon.StatusPath, func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(s)
	})
	mux.HandleFunc("POST "+daemon.PlanPath, func(w http.ResponseWriter, _ *http.Request) {
		if pending != "" {
			w.Header().Set(daemon.PendingHeader, pending)
		}
		w.Write([]byte("plan of the daemon\n"))
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// status exits 0 only with the table present and in sync, 3 absent, 4
// different, with or without --json, and prints no "Error:" for them;
// --json says the same state and code.
func TestStatusExitCodes(t *testing.T) {
	for _, tt := range []struct {
		name  string
		table status.TableStatus
		code  int
		state string
	}{
		{"in sync", status.TableStatus{Name: "dockerfence", Present: true, InSync: true}, 0, "in_sync"},
		{"absent", status.TableStatus{Name: "dockerfence"}, 3, "absent"},
		{"differs", status.TableStatus{Name: "dockerfence", Present: true, Drift: []string{"- chain x"}}, 4, "differs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The daemon's status as an older daemon sends it: no state.
			sock := fakeDaemon(t, status.Status{Table: tt.table, Policy: "p.yaml", Mode: "enforce", Daemon: &status.Daemon{PID: 1}}, "")
			code, out, msg := run(t, "--socket", sock, "status")
			if code != tt.code || msg != "" || !strings.HasPrefix(out, "table inet dockerfence: ") {
				t.Errorf("status: exit %d, message %q, stdout:\n%s\nwant exit %d, no message", code, msg, out, tt.code)
			}
			if tt.state == "absent" && strings.Contains(out, "RULE") {
				t.Errorf("status of an absent table shows rules:\n%s", out)
			}
			code, out, msg = run(t, "--socket", sock, "status", "--json")
			var s status.Status
			if err := json.Unmarshal([]byte(out), &s); err != nil || code != tt.code || msg != "" || s.State != tt.state || s.ExitCode != tt.code {
				t.Errorf("status --json: exit %d, message %q, state %q exit_code %d (%v); want %d %q", code, msg, s.State, s.ExitCode, err, tt.code, tt.state)
			}
		})
	}
}

// plan exits 0 without --exit-code, whatever is pending; with it, 0 up to
// date, 2 pending, 1 when it cannot tell.
func TestPlanExitCode(t *testing.T) {
	for _, tt := range []struct {
		name, pending string
		args          []string
		code          int
		msg           string
	}{
		{"up to date", "false", []string{"--exit-code"}, 0, ""},
		{"pending", "true", []string{"--exit-code"}, 2, ""},
		{"pending, no flag", "true", nil, 0, ""},
		{"daemon does not say", "", []string{"--exit-code"}, 1, "did not say whether changes are pending"},
		{"daemon does not say, no flag", "", nil, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sock := fakeDaemon(t, status.Status{}, tt.pending)
			code, out, msg := run(t, append([]string{"--socket", sock, "plan"}, tt.args...)...)
			if code != tt.code || out != "plan of the daemon\n" || tt.msg == "" && msg != "" || !strings.Contains(msg, tt.msg) {
				t.Errorf("plan %v: exit %d, message %q, stdout %q; want exit %d, message with %q", tt.args, code, msg, out, tt.code, tt.msg)
			}
		})
	}
}

// The exit codes are documented in the commands' help.
func TestExitCodesInHelp(t *testing.T) {
	for cmd, wants := range map[string][]string{
		"status": {"Exit codes, for scripts:", "  0  the table is present and equal to the policy", "  3  the table is absent", "  4  the table is present but differs"},
		"plan":   {"--exit-code", "  0  the table is up to date", "  2  changes are pending"},
	} {
		help, msg := execute(t, cmd, "--help")
		for _, want := range wants {
			if msg != "" || !strings.Contains(help, want) {
				t.Errorf("%s --help lacks %q (%q):\n%s", cmd, want, msg, help)
			}
		}
	}
}
