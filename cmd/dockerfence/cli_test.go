package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// execute runs the root command with args, as main does, and returns its
// standard output and the exit message ("" on success).
func execute(t *testing.T, args ...string) (stdout, msg string) {
	t.Helper()
	_, stdout, msg = run(t, args...)
	return stdout, msg
}

// run runs the root command with args, as main does, and returns its exit
// code, standard output and exit message ("" for none).
func run(t *testing.T, args ...string) (code int, stdout, msg string) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root.SetArgs(append([]string{"--resolv-conf", resolv}, args...))
	code, msg = exit(root.Execute())
	if errOut.Len() > 0 && args[0] != "__complete" {
		t.Errorf("stderr written directly: %q", errOut.String())
	}
	return code, out.String(), msg
}

// writePolicy writes src to a policy file in a new directory and returns
// its path.
func writePolicy(t *testing.T, src string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestCheckFile(t *testing.T) {
	good := writePolicy(t, "version: 1\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n      - deny: \"@private\"\n")
	bad := writePolicy(t, "version: 1\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n      - allow: @private\n")
	other := writePolicy(t, "version: 1\n")
	tests := []struct {
		name    string
		args    []string
		wantOut string // a prefix of stdout
		wantMsg string // the exit message, whole
	}{
		{name: "FILE", args: []string{"check", good}, wantOut: good + ": OK: "},
		{name: "-c FILE", args: []string{"check", "-c", good}, wantOut: good + ": OK: "},
		{name: "both, the same", args: []string{"-c", good, "check", good}, wantOut: good + ": OK: "},
		{name: "both, different", args: []string{"check", "-c", other, good}, wantMsg: "dockerfence: check " + good + " -c " + other + ": give the policy file once"},
		{name: "none", args: []string{"check"}, wantMsg: "dockerfence: check needs the policy file: dockerfence check FILE"},
		{name: "two files", args: []string{"check", good, other}, wantMsg: "dockerfence: accepts at most 1 arg(s), received 2"},
		{name: "invalid", args: []string{"check", bad}, wantMsg: bad + ": invalid:\n" + bad + ":5:16: invalid YAML: an unquoted value cannot start with '@'; quote it: allow: \"@private\""},
		{name: "invalid with -c", args: []string{"check", "-c", bad}, wantMsg: bad + ": invalid:\n" + bad + ":5:16: invalid YAML: an unquoted value cannot start with '@'; quote it: allow: \"@private\""},
		{name: "missing", args: []string{"check", bad + ".none"}, wantMsg: "dockerfence: policy " + bad + ".none: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, msg := execute(t, tt.args...)
			if !strings.HasPrefix(out, tt.wantOut) || tt.wantOut == "" && out != "" {
				t.Errorf("stdout %q, want it to start with %q", out, tt.wantOut)
			}
			if msg != tt.wantMsg {
				t.Errorf("exit message:\n%s\nwant:\n%s", msg, tt.wantMsg)
			}
		})
	}
}

// TestNotLoadedElsewhere checks that the commands other than check keep
// saying that the policy was not loaded and nothing changed.
func TestNotLoadedElsewhere(t *testing.T) {
	bad := writePolicy(t, "version: 1\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n\t- deny: any\n")
	_, msg := execute(t, "explain", "-c", bad, "--network", "n", "--to", "10.0.0.1")
	want := "dockerfence: policy not loaded, nothing changed:\n" + bad + ":5:1: invalid YAML: a tab indents this line; YAML does not allow tabs for indentation; use spaces"
	if msg != want {
		t.Errorf("exit message:\n%s\nwant:\n%s", msg, want)
	}
}

func TestVersionFlag(t *testing.T) {
	out, msg := execute(t, "--version")
	if msg != "" || out != "dockerfence dev (commit -)\n" {
		t.Errorf("--version: stdout %q, exit message %q", out, msg)
	}
	full, _ := execute(t, "version", "--docker-host", "unix://"+filepath.Join(t.TempDir(), "none.sock"))
	if first, _, _ := strings.Cut(full, "\n"); first+"\n" != out {
		t.Errorf("--version says %q, the first line of version %q", out, first)
	}
}

func TestSuggestions(t *testing.T) {
	for _, tt := range []struct{ typo, want string }{
		{"stauts", "status"},
		{"chekc", "check"},
		{"aply", "apply"},
		{"explian", "explain"},
	} {
		_, msg := execute(t, tt.typo)
		want := "dockerfence: unknown command \"" + tt.typo + "\" for \"dockerfence\"\n\nDid you mean this?\n\t" + tt.want
		if msg != want {
			t.Errorf("exit message:\n%s\nwant:\n%s", msg, want)
		}
	}
}

func TestCompletionHelp(t *testing.T) {
	help, msg := execute(t, "--help")
	if msg != "" || !strings.Contains(help, "\n  completion  ") {
		t.Errorf("--help does not list completion:\n%s", help)
	}
	help, _ = execute(t, "completion", "--help")
	for _, want := range []string{"bash: dockerfence completion bash > /etc/bash_completion.d/dockerfence", "zsh:", "fish:"} {
		if !strings.Contains(help, want) {
			t.Errorf("completion --help lacks %q:\n%s", want, help)
		}
	}
	// The shell asks for check's FILE; it completes policy files.
	out, msg := execute(t, "__complete", "check", "")
	if msg != "" || !strings.HasPrefix(out, "yaml\nyml\n:8\n") {
		t.Errorf("completing check's FILE: exit message %q, stdout:\n%s", msg, out)
	}
}

// TestGenDocs checks that the hidden gen-docs writes a man page for the
// command and each subcommand, and the three completion scripts, and that
// --help does not list it.
func TestGenDocs(t *testing.T) {
	dir := t.TempDir()
	man, compl := filepath.Join(dir, "man"), filepath.Join(dir, "completions")
	if out, msg := execute(t, "gen-docs", "--man", man, "--completions", compl); msg != "" || out != "" {
		t.Fatalf("gen-docs: stdout %q, exit message %q", out, msg)
	}
	for _, page := range []string{"dockerfence.8", "dockerfence-apply.8", "dockerfence-run.8", "dockerfence-plan.8",
		"dockerfence-status.8", "dockerfence-logs.8", "dockerfence-check.8", "dockerfence-explain.8", "dockerfence-delete.8",
		"dockerfence-policy.8", "dockerfence-policy-default.8", "dockerfence-version.8", "dockerfence-completion.8"} {
		if _, err := os.Stat(filepath.Join(man, page)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(man, "dockerfence-gen-docs.8")); err == nil {
		t.Error("the hidden gen-docs has a man page")
	}
	for _, f := range []string{"dockerfence", "_dockerfence", "dockerfence.fish"} {
		if _, err := os.Stat(filepath.Join(compl, f)); err != nil {
			t.Error(err)
		}
	}
	if help, _ := execute(t, "--help"); strings.Contains(help, "gen-docs") {
		t.Errorf("--help lists gen-docs:\n%s", help)
	}
	if _, msg := execute(t, "gen-docs"); msg != "dockerfence: gen-docs: give --man DIR, --completions DIR or both" {
		t.Errorf("gen-docs without a directory: exit message %q", msg)
	}
}
