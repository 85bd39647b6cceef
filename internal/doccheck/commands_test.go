package doccheck

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
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

// TestCommandsTableComplete holds the README's commands table to the
// --help of every command of the dockerfence binary built from this tree.
func TestCommandsTableComplete(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/dockerfence; -short skips it")
	}
	bin := filepath.Join(t.TempDir(), "dockerfence")
	build := exec.Command("go", "build", "-o", bin, "./cmd/dockerfence")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/dockerfence: %v\n%s", err, out)
	}
	md, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := CommandsTable(md)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	help := func(path []string) (string, error) {
		out, err := exec.Command(bin, append(path, "--help")...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("dockerfence %s --help: %v\n%s", strings.Join(path, " "), err, out)
		}
		return string(out), nil
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
