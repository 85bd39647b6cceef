package policy

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// The YAML decoder names the line where the construct around a syntax
// error starts, often a line or more before the mistake, in the words of
// the YAML grammar. diagnoseYAML reads the source itself to point at the
// mistake and say how to fix it: a tab in the indentation, a value that
// starts with a character YAML reserves, a line indented off the list or
// mapping above, a bracket or quote left open. It knows only the usual
// block style of a policy; what it cannot explain is left to the decoder's
// message.

// yamlLevel is one open block collection: a mapping or a list whose keys or
// entries ("- ") start at column indent (0-based).
type yamlLevel struct {
	indent int
	list   bool
	line   int
	// indentless is a list whose entries start at the column of the key
	// that holds it, which YAML allows.
	indentless bool
}

// what names the level for a message.
func (l yamlLevel) what() string {
	if l.list {
		return "list"
	}
	return "mapping"
}

// yamlScan is the state of one diagnoseYAML.
type yamlScan struct {
	file    string
	lines   []string
	stack   []yamlLevel
	anchors map[string]bool
	// opens is the indent of the node whose value the previous line left
	// empty, which the next line may start (more indented), or -1.
	opens     int
	opensList bool // ... and whether that node is a key (an indentless list may follow)
	// plain is set when the previous line ended in a plain value, which
	// a more indented line may continue.
	plain bool
	found *Error
	// indentless is set when the list entry that follows starts an
	// indentless list.
	indentless bool
	// giveUp stops the scan at YAML it does not follow.
	giveUp bool
}

// diagnoseYAML returns the mistake in data that the decoder's error is
// about, as best it can tell, or nil.
func diagnoseYAML(file string, data []byte) *Error {
	text := strings.TrimPrefix(string(data), "\ufeff")
	s := &yamlScan{file: file, lines: strings.Split(text, "\n"), anchors: map[string]bool{}, opens: -1}
	for i := 0; i < len(s.lines) && s.found == nil && !s.giveUp; i++ {
		i = s.line(i)
	}
	return s.found
}

// fail records the first mistake, at byte offset off of line i (0-based).
func (s *yamlScan) fail(i, off int, format string, args ...any) {
	if s.found != nil {
		return
	}
	l := s.lines[i]
	if off > len(l) {
		off = len(l)
	}
	col := 1 + utf8.RuneCountInString(l[:off])
	s.found = &Error{Pos: Pos{File: s.file, Line: i + 1, Column: col}, Msg: "invalid YAML: " + fmt.Sprintf(format, args...)}
}

// lineText returns line i without its carriage return.
func (s *yamlScan) lineText(i int) string { return strings.TrimSuffix(s.lines[i], "\r") }

// indentOf returns the number of spaces that start l and whether the line
// is blank or a comment.
func indentOf(l string) (int, bool) {
	n := len(l) - len(strings.TrimLeft(l, " "))
	rest := strings.TrimLeft(l, " \t")
	return n, rest == "" || rest[0] == '#'
}

// line reads line i and returns the last line it consumed.
func (s *yamlScan) line(i int) int {
	l := s.lineText(i)
	ind, blank := indentOf(l)
	if blank {
		return i
	}
	if l[ind] == '\t' {
		s.fail(i, ind, "a tab indents this line; YAML does not allow tabs for indentation; use spaces")
		return i
	}
	if ind == 0 && (l == "---" || l == "..." || strings.HasPrefix(l, "--- ") || l[0] == '%') {
		s.stack, s.opens, s.plain = nil, -1, false
		return i
	}
	if (l[ind] == '?' || l[ind] == ':') && (ind+1 == len(l) || l[ind+1] == ' ') {
		s.giveUp = true // explicit keys, which a policy has no use for
		return i
	}
	list := isDash(l, ind)
	key := !list && findColon(l, ind) >= 0
	if !key && s.plain && (len(s.stack) == 0 || ind > s.stack[len(s.stack)-1].indent) {
		return i // a plain value continued
	}
	if !s.place(i, ind, list) {
		return i
	}
	return s.node(i, ind)
}

// place matches the first node of line i, at column ind, against the open
// levels; it reports and returns false if the line's indentation is off.
func (s *yamlScan) place(i, ind int, list bool) bool {
	opens, opensKey := s.opens, !s.opensList
	s.opens, s.plain = -1, false
	if len(s.stack) == 0 || opens >= 0 && ind > opens {
		return true // a new level; node pushes it
	}
	if opens >= 0 && opensKey && list && ind == opens {
		s.indentless = true // node pushes it
		return true
	}
	var popped *yamlLevel
	for len(s.stack) > 0 && s.stack[len(s.stack)-1].indent > ind {
		p := s.stack[len(s.stack)-1]
		popped = &p
		s.stack = s.stack[:len(s.stack)-1]
	}
	if n := len(s.stack); n > 0 && s.stack[n-1].indentless && s.stack[n-1].indent == ind && !list {
		s.stack = s.stack[:n-1]
	}
	n := len(s.stack)
	if n > 0 && s.stack[n-1].indent == ind {
		top := s.stack[n-1]
		switch {
		case top.list != list && popped != nil && popped.list == list:
			s.fail(i, ind, "this line is indented %s where the %s at line %d has %d; check the indentation of this line against the list or mapping above", spaces(ind), popped.what(), popped.line, popped.indent)
			return false
		case top.list && !list:
			hint := ""
			if popped != nil && !popped.list {
				hint = fmt.Sprintf("; to belong to the entry at line %d, indent it %d spaces", top.line, popped.indent)
			}
			s.fail(i, ind, "a key where the list at line %d expects an entry (\"- \")%s; check the indentation of this line against the list or mapping above", top.line, hint)
			return false
		case !top.list && list:
			s.fail(i, ind, "a list entry where the mapping at line %d expects a key; check the indentation of this line against the list or mapping above", top.line)
			return false
		}
		s.indentless = top.indentless
		s.stack = s.stack[:n-1] // node pushes it again
		return true
	}
	// Between two levels, or deeper than the level above allows.
	if n == 0 {
		return true // left of the first line: the decoder says better
	}
	want := popped
	if want == nil || want.list != list && s.stack[n-1].list == list {
		want = &s.stack[n-1]
	}
	s.fail(i, ind, "this line is indented %s where the %s at line %d has %d; check the indentation of this line against the list or mapping above", spaces(ind), want.what(), want.line, want.indent)
	return false
}

// isDash reports whether a list entry starts at offset o of l.
func isDash(l string, o int) bool {
	return o < len(l) && l[o] == '-' && (o+1 == len(l) || l[o+1] == ' ' || l[o+1] == '\t')
}

// findColon returns the offset of the colon that ends a block key starting
// at offset o of l, or -1: outside quotes, followed by a space or the end,
// before any comment.
func findColon(l string, o int) int {
	if o < len(l) && (l[o] == '[' || l[o] == '{') {
		return -1
	}
	j := o
	if j < len(l) && (l[j] == '"' || l[j] == '\'') {
		e := closeQuote(l, j)
		if e < 0 {
			return -1
		}
		j = e + 1
	}
	for ; j < len(l); j++ {
		switch {
		case l[j] == '#' && j > o && (l[j-1] == ' ' || l[j-1] == '\t'):
			return -1
		case l[j] == ':' && (j+1 == len(l) || l[j+1] == ' ' || l[j+1] == '\t'):
			return j
		}
	}
	return -1
}

// closeQuote returns the offset of the quote that closes the one at offset
// o of l, or -1.
func closeQuote(l string, o int) int {
	q := l[o]
	for j := o + 1; j < len(l); j++ {
		switch {
		case q == '"' && l[j] == '\\':
			j++
		case l[j] == q && q == '\'' && j+1 < len(l) && l[j+1] == '\'':
			j++
		case l[j] == q:
			return j
		}
	}
	return -1
}

// skipSpace returns the offset of the first byte at or after o of l that
// is not a space or tab.
func skipSpace(l string, o int) int {
	for o < len(l) && (l[o] == ' ' || l[o] == '\t') {
		o++
	}
	return o
}

// node reads the node at offset o of line i: list entries and keys open
// levels, values are checked.
// It returns the last line it consumed.
func (s *yamlScan) node(i, o int) int {
	l := s.lineText(i)
	for isDash(l, o) {
		s.stack = append(s.stack, yamlLevel{indent: o, list: true, line: i + 1, indentless: s.indentless})
		s.indentless = false
		v := skipSpace(l, o+1)
		if v >= len(l) || l[v] == '#' {
			s.opens, s.opensList = o, true
			return i
		}
		o = v
	}
	if c := findColon(l, o); c >= 0 {
		s.stack = append(s.stack, yamlLevel{indent: o, line: i + 1})
		v := skipSpace(l, c+1)
		if v >= len(l) || l[v] == '#' {
			s.opens, s.opensList = o, false
			return i
		}
		return s.value(i, v, l[o:c]+": ", s.stack[len(s.stack)-1].indent)
	}
	prefix := ""
	if o >= 2 && l[o-2] == '-' {
		prefix = "- "
	}
	parent := -1
	if n := len(s.stack); n > 0 {
		parent = s.stack[n-1].indent
	}
	return s.value(i, o, prefix, parent)
}

// value checks the block value at offset o of line i; prefix is what
// precedes it ("key: " or "- ") for the hint, parent the indent of the
// node it belongs to. It returns the last line it consumed.
func (s *yamlScan) value(i, o int, prefix string, parent int) int {
	l := s.lineText(i)
	o, ok := s.props(i, o, prefix, false)
	if !ok || o >= len(l) || l[o] == '#' {
		return i
	}
	if isDash(l, o) {
		s.fail(i, o, "a list entry cannot start on the line of its key; start it on the next line, indented")
		return i
	}
	switch l[o] {
	case '[', '{':
		return s.flow(i, o, parent)
	case '"', '\'':
		if closeQuote(l, o) >= 0 {
			return i
		}
		for j := i + 1; j < len(s.lines); j++ {
			m := s.lineText(j)
			ind, blank := indentOf(m)
			if strings.ContainsRune(m, rune(l[o])) {
				return j
			}
			if !blank && ind <= parent && (isDash(m, ind) || findColon(m, ind) >= 0) {
				break // the block structure goes on
			}
		}
		s.fail(i, o, "the quoted value that starts here is not closed; add the closing %c", l[o])
		return i
	case '|', '>':
		h := strings.TrimRight(l[o+1:], " \t")
		if k := strings.IndexByte(h, '#'); k >= 0 {
			h = strings.TrimRight(h[:k], " \t")
		}
		if strings.Trim(h, "-+0123456789") == "" {
			for j := i + 1; j < len(s.lines); j++ {
				if ind, blank := indentOf(s.lineText(j)); !blank && ind <= parent {
					return j - 1
				}
			}
			return len(s.lines) - 1
		}
	}
	if s.reserved(i, o, prefix, false) {
		return i
	}
	if c := findColon(l, o); c >= 0 {
		e := len(l)
		if k := strings.Index(l[o:], " #"); k >= 0 {
			e = o + k
		}
		s.fail(i, o, "an unquoted value cannot contain \": \"; quote it: %s%s", prefix, quote(strings.TrimRight(l[o:e], " \t")))
		return i
	}
	s.plain = true
	return i
}

// props skips the anchor and tag at offset o of line i, recording the
// anchor, and reports an empty one.
func (s *yamlScan) props(i, o int, prefix string, inFlow bool) (int, bool) {
	l := s.lineText(i)
	for o < len(l) && (l[o] == '&' || l[o] == '!') {
		e := o + 1
		for e < len(l) && !strings.ContainsRune(" \t,[]{}", rune(l[e])) {
			e++
		}
		if e == o+1 && l[o] == '&' {
			s.hint(i, o, prefix, inFlow)
			return o, false
		}
		if l[o] == '&' {
			s.anchors[l[o+1:e]] = true
		}
		o = skipSpace(l, e)
	}
	return o, true
}

// reserved reports a plain value at offset o of line i that starts with a
// character YAML reserves, and returns whether it did.
func (s *yamlScan) reserved(i, o int, prefix string, inFlow bool) bool {
	l := s.lineText(i)
	switch l[o] {
	case '@', '`', '%', '|', '>':
	case '*':
		e := o + 1
		for e < len(l) && !strings.ContainsRune(" \t,[]{}", rune(l[e])) {
			e++
		}
		if e > o+1 && s.anchors[l[o+1:e]] {
			return false
		}
	default:
		return false
	}
	s.hint(i, o, prefix, inFlow)
	return true
}

// hint reports the unquoted value at offset o of line i.
func (s *yamlScan) hint(i, o int, prefix string, inFlow bool) {
	l := s.lineText(i)
	e := len(l)
	if k := strings.Index(l[o:], " #"); k >= 0 {
		e = o + k
	}
	if inFlow {
		if k := strings.IndexAny(l[o:e], ",]}"); k >= 0 {
			e = o + k
		}
	}
	v := strings.TrimRight(l[o:e], " \t")
	s.fail(i, o, "an unquoted value cannot start with %q; quote it: %s%s", l[o], prefix, quote(v))
}

// flow checks the flow list or mapping that opens at offset o of line i,
// which belongs to a node indented parent, and returns the last line it
// consumed.
func (s *yamlScan) flow(i, o, parent int) int {
	type open struct{ line, off int }
	var opens []open
	var quoted *open
	for j := i; j < len(s.lines); j++ {
		l := s.lineText(j)
		start := 0
		if j == i {
			start = o
		} else if ind, blank := indentOf(l); !blank && ind <= parent && quoted == nil && (isDash(l, ind) || findColon(l, ind) >= 0) {
			break // the block structure goes on
		} else if !blank && ind <= parent && quoted != nil {
			s.fail(quoted.line, quoted.off, "the quoted value that starts here is not closed; add the closing %c", s.lineText(quoted.line)[quoted.off])
			return j
		}
		expect := true // a value may start here
		for k := start; k < len(l); k++ {
			c := l[k]
			if quoted != nil {
				switch {
				case c == '\\' && s.lineText(quoted.line)[quoted.off] == '"':
					k++
				case c == s.lineText(quoted.line)[quoted.off]:
					quoted = nil
				}
				continue
			}
			switch {
			case c == ' ' || c == '\t':
				continue
			case c == '#' && (k == 0 || l[k-1] == ' ' || l[k-1] == '\t'):
				k = len(l)
				continue
			case c == '[' || c == '{':
				opens = append(opens, open{j, k})
				expect = true
				continue
			case c == ']' || c == '}':
				if len(opens) > 0 {
					opens = opens[:len(opens)-1]
				}
				if len(opens) == 0 {
					return j
				}
				expect = false
				continue
			case c == ',' || c == ':' && k+1 < len(l) && (l[k+1] == ' ' || l[k+1] == ','):
				expect = true
				continue
			}
			if !expect {
				continue
			}
			expect = false
			if c == '"' || c == '\'' {
				quoted = &open{j, k}
				continue
			}
			k2, ok := s.props(j, k, "", true)
			if !ok {
				return j
			}
			if k2 < len(l) && k2 != k {
				k = k2 - 1
				expect = true
				continue
			}
			if s.reserved(j, k, "", true) {
				return j
			}
		}
	}
	if quoted != nil {
		s.fail(quoted.line, quoted.off, "the quoted value that starts here is not closed; add the closing %c", s.lineText(quoted.line)[quoted.off])
		return i
	}
	if len(opens) > 0 {
		op := opens[len(opens)-1]
		what, closer := "list", ']'
		if s.lineText(op.line)[op.off] == '{' {
			what, closer = "mapping", '}'
		}
		s.fail(op.line, op.off, "the %s that opens here is not closed; add '%c'", what, closer)
	}
	return i
}

// spaces says n spaces.
func spaces(n int) string {
	if n == 1 {
		return "1 space"
	}
	return fmt.Sprintf("%d spaces", n)
}
