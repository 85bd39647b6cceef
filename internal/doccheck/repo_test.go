package doccheck

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/policy"
)

// root is the repository, from this package's directory.
const root = "../.."

// testOpts gives @resolvers a resolv.conf of its own, so that the
// policies load the same on every machine.
func testOpts(t *testing.T) policy.Options {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return policy.Options{ResolvConf: rc}
}

func TestCheckMarkdownGood(t *testing.T) {
	n, errs := CheckMarkdown("testdata/good.md", testOpts(t))
	for _, err := range errs {
		t.Error(err)
	}
	if n != 4 {
		t.Errorf("checked %d yaml blocks, want 4", n)
	}
}

func TestCheckMarkdownBad(t *testing.T) {
	_, errs := CheckMarkdown("testdata/bad.md", testOpts(t))
	var got []string
	for _, err := range errs {
		got = append(got, err.Error())
	}
	want := []string{
		// The policy's own error, at the line of the Markdown file.
		`testdata/bad.md:3: the yaml block does not load (mark a counter-example <!-- check: invalid -->): testdata/bad.md:8:15: `,
		`testdata/bad.md:12: the yaml block marked invalid loads as a policy`,
		`testdata/bad.md:21: the yaml block differs from ok.yaml, which it is to show`,
		`testdata/bad.md:27: the yaml block is to be missing.yaml: open testdata/missing.yaml: no such file or directory`,
		`testdata/bad.md:31: the yaml block does not load (mark a counter-example <!-- check: invalid -->): testdata/bad.md:34:15: lists.bad.file: cannot read list file testdata/no-such-list.txt`,
		`testdata/bad.md:42: a check marker before a "sh" block; only yaml blocks are checked`,
	}
	if len(got) != len(want) {
		t.Fatalf("%d errors, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
}

// TestExamples loads every policy of examples/ as dockerfence check does.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(root, "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
		if err := Load(f, testOpts(t)); err != nil {
			t.Error(err)
		}
	}
	for _, want := range []string{"field-report.yaml", "compose.yaml", "rollout-audit.yaml", "rollout-enforce.yaml", "full-format.yaml"} {
		if !slices.Contains(names, want) {
			t.Errorf("examples/%s is missing (the README and docs/compose.md refer to it)", want)
		}
	}
}

// TestMarkdownPolicies loads every yaml block of the README and docs/*.md.
func TestMarkdownPolicies(t *testing.T) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append([]string{filepath.Join(root, "README.md")}, docs...)
	counts := map[string]int{}
	for _, d := range docs {
		n, errs := CheckMarkdown(d, testOpts(t))
		for _, err := range errs {
			t.Error(err)
		}
		counts[filepath.ToSlash(strings.TrimPrefix(d, root+"/"))] = n
	}
	// The README shows at least the field report's filter, the full format
	// and the embedded default; docs/compose.md its quick start.
	for doc, least := range map[string]int{"README.md": 3, "docs/compose.md": 3} {
		if counts[doc] < least {
			t.Errorf("%s: %d yaml blocks checked, want at least %d", doc, counts[doc], least)
		}
	}
}

// TestRolloutDiffersOnlyInMode holds the two steps of the audit-first
// rollout to what their comments promise: the same policy, but for mode.
func TestRolloutDiffersOnlyInMode(t *testing.T) {
	audit := policyLines(t, filepath.Join(root, "examples", "rollout-audit.yaml"))
	enforce := policyLines(t, filepath.Join(root, "examples", "rollout-enforce.yaml"))
	if len(audit) != len(enforce) {
		t.Fatalf("rollout-audit.yaml has %d lines of policy, rollout-enforce.yaml %d", len(audit), len(enforce))
	}
	modes := 0
	for i := range audit {
		if audit[i] == enforce[i] {
			continue
		}
		if audit[i] == "  mode: audit" && enforce[i] == "  mode: enforce" {
			modes++
			continue
		}
		t.Errorf("the rollout steps differ beyond mode:\n audit:   %q\n enforce: %q", audit[i], enforce[i])
	}
	if modes != 1 {
		t.Errorf("%d mode lines differ (audit, enforce), want 1", modes)
	}
}

// TestComposeStepOneIsRolloutAudit: docs/compose.md says that its first
// policy is examples/rollout-audit.yaml with fewer comments.
func TestComposeStepOneIsRolloutAudit(t *testing.T) {
	md, err := os.ReadFile(filepath.Join(root, "docs", "compose.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := Blocks(md)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(blocks, func(b Block) bool { return b.Lang == "yaml" && b.Check == "" })
	if i < 0 {
		t.Fatal("docs/compose.md has no policy")
	}
	file := filepath.Join(t.TempDir(), "step1.yaml")
	if err := os.WriteFile(file, []byte(blocks[i].Text), 0o644); err != nil {
		t.Fatal(err)
	}
	got, want := policyLines(t, file), policyLines(t, filepath.Join(root, "examples", "rollout-audit.yaml"))
	if !slices.Equal(got, want) {
		t.Errorf("the policy of docs/compose.md:%d is not examples/rollout-audit.yaml:\n%s\n---\n%s", blocks[i].Line, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// trailingComment is a comment after a YAML value.
var trailingComment = regexp.MustCompile(`\s+#.*$`)

// policyLines returns the lines of a policy file without comments and
// blank lines.
func policyLines(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if l = trailingComment.ReplaceAllString(l, ""); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestRefs(t *testing.T) {
	md := "See [the guide](docs/compose.md#audit), [a site](https://example.com) and [here](#top).\n" +
		"Read `integration/apply_test.go`, `10.0.0.0/8`, `/etc/dockerfence/policy.yaml`, `policy/`, `nft`.\n" +
		"```sh\nls `not/a/ref`\n```\n" +
		"And `fence/testdata/seed.golden`.\n"
	got := Refs([]byte(md))
	want := []Ref{
		{Line: 1, Path: "docs/compose.md", Link: true},
		{Line: 2, Path: "integration/apply_test.go"},
		{Line: 2, Path: "10.0.0.0/8"}, // TestDocRefs skips it: 10.0.0.0 is no directory
		{Line: 6, Path: "fence/testdata/seed.golden"},
	}
	if len(got) != len(want) {
		t.Fatalf("Refs = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Refs[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestDocRefs: every file the README and docs/*.md link to or name in
// code is in the repository (../shared/seeds, say, is not). A code span counts as a path of the
// repository when its first part is a directory there (so 10.0.0.0/8 and
// /etc/... do not); bin/ is what make build writes.
func TestDocRefs(t *testing.T) {
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	n := 0
	for _, d := range append([]string{filepath.Join(root, "README.md")}, docs...) {
		md, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range Refs(md) {
			p := filepath.Join(root, r.Path)
			if r.Link {
				p = filepath.Join(filepath.Dir(d), r.Path)
			} else if top, _, _ := strings.Cut(r.Path, "/"); top == "bin" {
				continue
			} else if st, err := os.Stat(filepath.Join(root, top)); err != nil || !st.IsDir() {
				continue
			}
			n++
			if rel, err := filepath.Rel(root, p); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s:%d: %s is outside the repository", d, r.Line, r.Path)
			} else if _, err := os.Stat(p); err != nil {
				t.Errorf("%s:%d: %s is not in the repository", d, r.Line, r.Path)
			}
		}
	}
	if n < 30 {
		t.Errorf("%d references checked: the documentation was not read", n)
	}
}
