// Package doccheck reads the fenced code blocks of the Markdown
// documentation, so that its tests can load every policy the README,
// docs/*.md and examples/ show with the loader dockerfence check uses, and
// hold the README's commands table to the commands themselves.
//
// A block's meaning for the tests can be given by an HTML comment on the
// line before its opening fence (blank lines between are allowed):
//
//	<!-- check: invalid -->           the block must fail to load (a counter-example)
//	<!-- check: file=PATH -->         the block must equal PATH (relative to the Markdown file), which is loaded instead
//	<!-- check: skip: REASON -->      the block is not a policy (a docker-compose.yml, say); REASON is required
//
// A yaml block without a marker must load as a policy, with its list files
// relative to the Markdown file.
package doccheck

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/dockerfence/dockerfence/policy"
)

// Block is one fenced code block of a Markdown file.
type Block struct {
	// Lang is the info string's first word ("yaml", "sh", or "").
	Lang string
	// Line is the line of the opening fence (1-based); the block's first
	// line of text is Line+1.
	Line int
	// Text is the block's content, without the fences, each line with the
	// opening fence's indentation removed.
	Text string
	// Check is the marker before the block: "" (none), "invalid", "file"
	// or "skip".
	Check string
	// Arg is the marker's argument: the path of "file", the reason of
	// "skip".
	Arg string
}

// markerRE matches a check marker; group 1 is the keyword, group 3 its
// argument.
var markerRE = regexp.MustCompile(`^<!--\s*check:\s*(invalid|file|skip)\s*([=:]\s*(.*?))?\s*-->$`)

// Blocks returns the fenced code blocks of a Markdown text, in order. It
// fails on a block that is not closed and on a malformed marker, each at
// its line.
func Blocks(md []byte) ([]Block, error) {
	var (
		out     []Block
		cur     *Block
		fence   string // the opening fence ("```" or longer), while in a block
		indent  int    // the opening fence's indentation
		body    strings.Builder
		pending *Block // a marker waiting for its block
		pendAt  int
	)
	sc := bufio.NewScanner(bytes.NewReader(md))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if cur != nil {
			if strings.HasPrefix(trimmed, fence) && strings.TrimSpace(strings.TrimLeft(trimmed, "`")) == "" {
				cur.Text = body.String()
				out = append(out, *cur)
				cur = nil
				continue
			}
			// Remove up to indent spaces, as CommonMark does.
			i := 0
			for i < indent && i < len(line) && line[i] == ' ' {
				i++
			}
			body.WriteString(line[i:])
			body.WriteByte('\n')
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			ticks := len(trimmed) - len(strings.TrimLeft(trimmed, "`"))
			fence = trimmed[:ticks]
			indent = len(line) - len(trimmed)
			info := strings.Fields(trimmed[ticks:])
			cur = &Block{Line: n}
			if len(info) > 0 {
				cur.Lang = info[0]
			}
			if pending != nil {
				cur.Check, cur.Arg = pending.Check, pending.Arg
				pending = nil
			}
			body.Reset()
			continue
		}
		if strings.HasPrefix(trimmed, "<!--") && strings.Contains(trimmed, "check:") {
			m := markerRE.FindStringSubmatch(strings.TrimSpace(trimmed))
			if m == nil {
				return nil, fmt.Errorf("line %d: %q is not a check marker: use <!-- check: invalid -->, <!-- check: file=PATH --> or <!-- check: skip: REASON -->", n, strings.TrimSpace(trimmed))
			}
			if pending != nil {
				return nil, fmt.Errorf("line %d: a second check marker; the one of line %d has no block", n, pendAt)
			}
			b := &Block{Check: m[1], Arg: m[3]}
			switch {
			case b.Check == "invalid" && b.Arg != "":
				return nil, fmt.Errorf("line %d: check: invalid takes no argument", n)
			case b.Check != "invalid" && b.Arg == "":
				return nil, fmt.Errorf("line %d: check: %s needs %s", n, b.Check, map[string]string{"file": "=PATH", "skip": ": REASON"}[b.Check])
			}
			pending, pendAt = b, n
			continue
		}
		if pending != nil && strings.TrimSpace(line) != "" {
			return nil, fmt.Errorf("line %d: the check marker of line %d is not followed by a code block", n, pendAt)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: code block not closed", cur.Line)
	}
	if pending != nil {
		return nil, fmt.Errorf("line %d: the check marker is not followed by a code block", pendAt)
	}
	return out, nil
}

// Padded returns the block's text preceded by as many empty lines as come
// before it in its file, so that a parser's line numbers are the Markdown
// file's.
func (b Block) Padded() []byte {
	return []byte(strings.Repeat("\n", b.Line) + b.Text)
}

// Load loads the policy file at path as dockerfence check does, and fails
// on its warnings too: an example must load cleanly.
func Load(path string, opts policy.Options) error {
	p, err := policy.Load(path, opts)
	if err != nil {
		return err
	}
	if len(p.Warnings) > 0 {
		return fmt.Errorf("%s: loads with warnings: %s", path, strings.Join(p.Warnings, "; "))
	}
	return nil
}

// CheckMarkdown loads every yaml block of the Markdown file at path as
// its marker says (see the package comment), and returns one error a block
// that fails, each naming path and the block's line. It also reports how
// many yaml blocks it checked.
func CheckMarkdown(path string, opts policy.Options) (int, []error) {
	md, err := os.ReadFile(path)
	if err != nil {
		return 0, []error{err}
	}
	blocks, err := Blocks(md)
	if err != nil {
		return 0, []error{fmt.Errorf("%s: %w", path, err)}
	}
	var errs []error
	n := 0
	for _, b := range blocks {
		if b.Lang != "yaml" && b.Lang != "yml" {
			if b.Check != "" {
				errs = append(errs, fmt.Errorf("%s:%d: a check marker before a %q block; only yaml blocks are checked", path, b.Line, b.Lang))
			}
			continue
		}
		n++
		at := fmt.Sprintf("%s:%d", path, b.Line)
		switch b.Check {
		case "skip":
		case "invalid":
			if _, err := policy.Parse(path, b.Padded(), opts); err == nil {
				errs = append(errs, fmt.Errorf("%s: the yaml block marked invalid loads as a policy", at))
			}
		case "file":
			file := filepath.Join(filepath.Dir(path), b.Arg)
			data, err := os.ReadFile(file)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("%s: the yaml block is to be %s: %w", at, b.Arg, err))
			case string(data) != b.Text:
				errs = append(errs, fmt.Errorf("%s: the yaml block differs from %s, which it is to show", at, b.Arg))
			default:
				if err := Load(file, opts); err != nil {
					errs = append(errs, fmt.Errorf("%s: the yaml block (%s) does not load: %w", at, b.Arg, err))
				}
			}
		default:
			p, err := policy.Parse(path, b.Padded(), opts)
			if err == nil && len(p.Warnings) > 0 {
				err = fmt.Errorf("loads with warnings: %s", strings.Join(p.Warnings, "; "))
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: the yaml block does not load (mark a counter-example <!-- check: invalid -->): %w", at, err))
			}
		}
	}
	return n, errs
}
