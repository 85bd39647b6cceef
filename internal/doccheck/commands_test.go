package doccheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fakeHelp is the --help output of a small command tree, in cobra's form.
var fakeHelp = map[string]string{
	"": `Usage:
  tool [command]

Available Commands:
  apply       Apply it
  completion  Generate the autocompletion script for the specified shell
  help        Help about any command

Flags:
  -c, --config string   policy file
  -h, --help            help for tool
  -v, --version         version for tool

Use "tool [command] --help" for more information about a command.
`,
	"apply": `Usage:
  tool apply [--dry-run] [flags]

Flags:
      --dry-run   print it, see --json of status
  -h, --help      help for apply
      --json      print JSON

Global Flags:
  -c, --config string   policy file
`,
	"completion": `Usage:
  tool completion [command]

Available Commands:
  bash        Generate the autocompletion script for bash
  zsh         Generate the autocompletion script for zsh

Flags:
  -h, --help   help for completion
`,
	"completion bash": `Usage:
  tool completion bash

Flags:
  -h, --help              help for bash
      --no-descriptions   disable completion descriptions
`,
	"completion zsh": `Usage:
  tool completion zsh

Flags:
  -h, --help              help for zsh
      --no-descriptions   disable completion descriptions
`,
}

func fake(path []string) (string, error) {
	out, ok := fakeHelp[strings.Join(path, " ")]
	if !ok {
		return "", fmt.Errorf("unknown command %q", path)
	}
	return out, nil
}

func TestParseHelp(t *testing.T) {
	got := ParseHelp(fakeHelp["apply"])
	if d := cmp.Diff(Help{Flags: []string{"dry-run", "json"}}, got); d != "" {
		t.Errorf("apply (-want +got):\n%s", d)
	}
	got = ParseHelp(fakeHelp[""])
	if d := cmp.Diff(Help{Commands: []string{"apply", "completion"}, Flags: []string{"config", "version"}}, got); d != "" {
		t.Errorf("root (-want +got):\n%s", d)
	}
}

func TestCheckCommands(t *testing.T) {
	table := func(rows ...string) []Row {
		md := "# x\n## Commands\n\n| command | what |\n|---|---|\n" + strings.Join(rows, "\n") + "\n\nmore\n## Next\n"
		r, err := CommandsTable([]byte(md))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	complete := []string{
		"| `dockerfence apply [--dry-run] [--json] [-c FILE]` | applies |",
		"| `dockerfence completion bash\\|zsh [--no-descriptions]` | the script |",
	}
	global, errs := CheckCommands(table(complete...), fake)
	if len(errs) > 0 {
		t.Errorf("a complete table: %v", errs)
	}
	if !slices.Equal(global, []string{"config", "version"}) {
		t.Errorf("global flags %v, want config, version", global)
	}

	_, errs = CheckCommands(table(
		"| `dockerfence apply [--dry-run] [--force]` | applies |",
		"| `dockerfence completion bash` | the script |",
		"| `dockerfence delete` | deletes |",
	), fake)
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		"line 6: dockerfence apply: its flag --json is not in the row",
		"line 6: dockerfence apply has no flag --force",
		"line 7: dockerfence completion bash: its flag --no-descriptions is not in the row",
		"dockerfence completion zsh: no row of the commands table",
		"line 8: dockerfence delete is no command of dockerfence --help",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("an incomplete table (-want +got):\n%s", d)
	}
}

// binOnce builds cmd/dockerfence once for the tests that run it.
var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// dockerfence builds the binary of this tree, once, and returns the
// --help output of a command path.
func dockerfence(t *testing.T) func(path []string) (string, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds cmd/dockerfence; -short skips it")
	}
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "doccheck"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "dockerfence")
		build := exec.Command("go", "build", "-o", binPath, "./cmd/dockerfence")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/dockerfence: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return func(path []string) (string, error) {
		out, err := exec.Command(binPath, append(path, "--help")...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("dockerfence %s --help: %v\n%s", strings.Join(path, " "), err, out)
		}
		return string(out), nil
	}
}

// TestCommandsTableComplete holds the README's commands table to the
// --help of every command of the dockerfence binary built from this tree.
func TestCommandsTableComplete(t *testing.T) {
	help := dockerfence(t)
	md, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := CommandsTable(md)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	global, errs := CheckCommands(rows, help)
	for _, err := range errs {
		t.Errorf("README.md: %v", err)
	}
	// The global flags are said once, in the section of the table.
	sec := string(md)[strings.Index(string(md), "\n## Commands\n"):]
	sec = sec[:strings.Index(sec[1:], "\n## ")+1]
	for _, f := range global {
		if !strings.Contains(sec, "--"+f) {
			t.Errorf("README.md: the global flag --%s is not in the section Commands", f)
		}
	}
	if len(rows) < 10 || len(global) < 4 {
		t.Errorf("%d rows and %d global flags: the table or the help was not read", len(rows), len(global))
	}
}

func TestCheckLine(t *testing.T) {
	cli, err := ReadCLI(fake)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ line, err string }{
		{"tool apply", ""},
		{"$ sudo tool -c x.yaml apply --dry-run | nft -f -", ""},
		{"DOCKER_HOST=unix:///x tool apply --config=x.yaml --json", ""},
		{"/usr/local/bin/tool completion zsh --no-descriptions > _tool", ""},
		{"tool --version", ""},
		{"tool apply --help", ""},
		{"systemctl reload tool", ""},
		{"go build -o /usr/local/bin/tool ./cmd/tool", ""},
		{"tool apply --force", "tool apply has no flag --force"},
		{"tool -x apply", "tool has no flag -x"},
		{"tool aply", `tool has no command "aply"`},
		{"tool completion tcsh", `tool completion has no command "tcsh"`},
		{"sudo tool apply --dry-run=true --nope=1", "tool apply has no flag --nope"},
		{"tool apply # --force, in a comment", ""},
		{"tool apply --dry-run >/dev/null; [ $? -eq 2 ] && tool apply", ""},
		{"tool apply --dry-run; test -x /bin/sh", ""},
		{"tool apply --nope; true", "tool apply has no flag --nope"},
		{"tool apply 2>/dev/null --not-a-flag-of-tool", ""},
	} {
		err := cli.CheckLine("tool", tc.line)
		if got := fmt.Sprint(err); tc.err == "" && err != nil || tc.err != "" && got != tc.err {
			t.Errorf("CheckLine(%q) = %v, want %q", tc.line, err, tc.err)
		}
	}
}

func TestShellLines(t *testing.T) {
	md := "```sh\nmake demo\n  sudo dockerfence apply\n```\n```\n$ dockerfence status\ndockerfence 1.0: an output line\n```\n```yaml\n$ not a command\n```\n"
	got, err := ShellLines([]byte(md))
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{{2, "make demo"}, {3, "  sudo dockerfence apply"}, {6, "$ dockerfence status"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ShellLines (-want +got):\n%s", d)
	}
	yaml := "# A policy.\n#\n#   dockerfence check x.yaml\n# dockerfence's prose\nversion: 1\n"
	if d := cmp.Diff([]Line{{3, "dockerfence check x.yaml"}}, CommentLines([]byte(yaml))); d != "" {
		t.Errorf("CommentLines (-want +got):\n%s", d)
	}
}

// TestDocCommands runs every dockerfence command line of the README,
// docs/*.md and the comments of examples/*.yaml against the binary's
// commands and flags.
func TestDocCommands(t *testing.T) {
	cli, err := ReadCLI(dockerfence(t))
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	examples, _ := filepath.Glob(filepath.Join(root, "examples", "*.yaml"))
	checked := 0
	check := func(file string, lines []Line) {
		for _, l := range lines {
			if err := cli.CheckLine("dockerfence", l.Text); err != nil {
				t.Errorf("%s:%d: %v: %s", file, l.N, err, strings.TrimSpace(l.Text))
			} else if strings.Contains(l.Text, "dockerfence ") {
				checked++
			}
		}
	}
	for _, f := range append([]string{filepath.Join(root, "README.md")}, docs...) {
		md, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines, err := ShellLines(md)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		check(f, lines)
	}
	for _, f := range examples {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		check(f, CommentLines(data))
	}
	if checked < 30 {
		t.Errorf("%d command lines checked: the documentation was not read", checked)
	}
}
