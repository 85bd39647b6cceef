package doccheck

import (
	"regexp"
	"strings"
)

var (
	// linkRE finds a Markdown link's target.
	linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	// codeRE finds an inline code span.
	codeRE = regexp.MustCompile("`([^`\n]+)`")
	// pathRE is a relative path of two or more parts, such as
	// integration/apply_test.go or docs/bench/.
	pathRE = regexp.MustCompile(`^[a-z0-9_.-]+(/[A-Za-z0-9_.-]+)+/?$`)
)

// Ref is a file a Markdown file refers to, at a line.
type Ref struct {
	Line int
	Path string
	// Link is true for a link's target (relative to the Markdown file),
	// false for a path in a code span (relative to the repository).
	Link bool
}

// Refs returns the relative link targets of a Markdown text, without
// their #fragments, and the paths its inline code spans name, outside
// code blocks.
func Refs(md []byte) []Ref {
	var out []Ref
	fence := ""
	for i, line := range strings.Split(string(md), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "```") {
			ticks := t[:len(t)-len(strings.TrimLeft(t, "`"))]
			switch {
			case fence == "":
				fence = ticks
			case ticks == fence && strings.TrimLeft(t, "`") == "":
				fence = ""
			}
			continue
		}
		if fence != "" {
			continue
		}
		for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, ":") {
				continue // an anchor of the same file, or a URL
			}
			out = append(out, Ref{Line: i + 1, Path: target, Link: true})
		}
		for _, m := range codeRE.FindAllStringSubmatch(line, -1) {
			if pathRE.MatchString(m[1]) {
				out = append(out, Ref{Line: i + 1, Path: m[1]})
			}
		}
	}
	return out
}
