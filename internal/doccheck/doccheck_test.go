package doccheck

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBlocks(t *testing.T) {
	md := "# title\n" + // 1
		"```sh\n" + // 2
		"make demo\n" + // 3
		"```\n" + // 4
		"<!-- check: invalid -->\n" + // 5
		"\n" + // 6
		"```yaml\n" + // 7
		"version: 2\n" + // 8
		"```\n" + // 9
		"- a list item:\n" + // 10
		"  <!-- check: file=examples/x.yaml -->\n" + // 11
		"  ```yaml title\n" + // 12
		"  version: 1\n" + // 13
		"    indented: more\n" + // 14
		"  ```\n" + // 15
		"<!-- check: skip: a compose file -->\n" + // 16
		"````yaml\n" + // 17
		"```\n" + // 18: a shorter fence does not close it
		"````\n" + // 19
		"```\n" + // 20
		"plain\n" + // 21
		"```\n" // 22
	got, err := Blocks([]byte(md))
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{
		{Lang: "sh", Line: 2, Text: "make demo\n"},
		{Lang: "yaml", Line: 7, Text: "version: 2\n", Check: "invalid"},
		{Lang: "yaml", Line: 12, Text: "version: 1\n  indented: more\n", Check: "file", Arg: "examples/x.yaml"},
		{Lang: "yaml", Line: 17, Text: "```\n", Check: "skip", Arg: "a compose file"},
		{Line: 20, Text: "plain\n"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Blocks (-want +got):\n%s", d)
	}
	if p := string(got[1].Padded()); p != strings.Repeat("\n", 7)+"version: 2\n" {
		t.Errorf("Padded = %q: the block's first line must be line 8", p)
	}
}

func TestBlocksErrors(t *testing.T) {
	for _, tc := range []struct{ md, want string }{
		{"text\n```yaml\nversion: 1\n", "line 2: code block not closed"},
		{"<!-- check: invalid -->\nsome text\n```yaml\n```\n", "line 2: the check marker of line 1 is not followed by a code block"},
		{"<!-- check: invalid -->\n", "line 1: the check marker is not followed by a code block"},
		{"<!-- check: valid -->\n```yaml\n```\n", `line 1: "<!-- check: valid -->" is not a check marker`},
		{"<!-- check: file -->\n```yaml\n```\n", "line 1: check: file needs =PATH"},
		{"<!-- check: skip -->\n```yaml\n```\n", "line 1: check: skip needs : REASON"},
		{"<!-- check: invalid=x -->\n```yaml\n```\n", "line 1: check: invalid takes no argument"},
		{"<!-- check: invalid -->\n<!-- check: invalid -->\n```yaml\n```\n", "line 2: a second check marker"},
	} {
		_, err := Blocks([]byte(tc.md))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Blocks(%q) = %v, want an error starting %q", tc.md, err, tc.want)
		}
	}
}
