package docgen

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// tree is a small command tree: tool, tool run, tool policy default, and a
// hidden tool secret.
func tree() *cobra.Command {
	run := func(*cobra.Command, []string) error { return nil }
	root := &cobra.Command{Use: "tool", Short: "A tool", RunE: run}
	policy := &cobra.Command{Use: "policy", Short: "Policy helpers"}
	policy.AddCommand(&cobra.Command{Use: "default", Short: "Print the default", RunE: run})
	root.AddCommand(
		&cobra.Command{Use: "run", Short: "Run the daemon", RunE: run,
			Long: "Run the daemon. The {name: \"*\"} section fences docker0 and br-*.\n\n    code: keeps *this* as it is\n"},
		policy,
		&cobra.Command{Use: "secret", Short: "Not for users", Hidden: true, RunE: run},
	)
	return root
}

func TestMan(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000") // November 2023
	dir := filepath.Join(t.TempDir(), "man8")
	if err := Man(tree(), dir, "tool 1.2.3"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"tool-policy-default.8", "tool-policy.8", "tool-run.8", "tool.8"}
	if !slices.Equal(names, want) {
		t.Errorf("pages %q, want %q (no page for the hidden command)", names, want)
	}
	page, err := os.ReadFile(filepath.Join(dir, "tool-run.8"))
	if err != nil {
		t.Fatal(err)
	}
	th := `.TH "TOOL-RUN" "8" "Nov 2023" "tool 1.2.3" "System Manager's Manual"`
	if !strings.Contains(string(page), th+"\n") {
		t.Errorf("tool-run.8 lacks the header %s:\n%s", th, page)
	}
	if strings.Contains(string(page), "Auto generated") {
		t.Errorf("tool-run.8 has cobra's dated tag:\n%s", page)
	}
	for _, want := range []string{`The {name: "*"} section fences docker0 and br-*`, "code: keeps *this* as it is"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("tool-run.8 lacks %q:\n%s", want, page)
		}
	}
}

func TestCompletions(t *testing.T) {
	dir := t.TempDir()
	if err := Completions(tree(), dir); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"tool":      "complete -o default -F __start_tool tool",
		"_tool":     "#compdef tool",
		"tool.fish": "complete -c tool ",
	} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q", file, want)
		}
	}
}
