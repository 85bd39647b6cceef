package policy

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is a problem at a position of a policy or list file.
type Error struct {
	Pos Pos
	Msg string
}

// Error formats the error as file:line:column: message.
func (e *Error) Error() string {
	if e.Pos.Line == 0 {
		return e.Pos.File + ": " + e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// ErrorList is every problem found in one policy, in file order.
type ErrorList []*Error

// Error joins the errors one a line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// maxErrors bounds how many problems one load reports.
const maxErrors = 20

// maxQuoted bounds how much of a value a message quotes.
const maxQuoted = 64

// clip cuts s to maxQuoted bytes, on a character boundary, marked with "...".
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// quote quotes a value of the policy or a list file for a message, cut to
// maxQuoted bytes (on a character boundary, marked with "...") so that a
// hostile megabyte-long value makes a short message.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(strings.TrimSuffix(clip(s), "...")) + "..."
}

// yamlLineRE splits an error of the YAML decoder into its line and message.
var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError reports an error of the YAML decoder: at the mistake in data
// with a hint if diagnoseYAML finds it, else at the line the decoder names.
func (p *parser) yamlError(err error, data []byte) {
	if e := diagnoseYAML(p.file, data); e != nil {
		p.errAt(e.Pos, "%s", e.Msg)
		return
	}
	msg := err.Error()
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	p.errAt(Pos{File: p.file, Line: line, Column: 1}, "invalid YAML: %s", msg)
}

// textPos returns the position of byte offset off in data.
func textPos(file string, data []byte, off int) Pos {
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	start := bytes.LastIndexByte(data[:off], '\n') + 1
	return Pos{File: file, Line: line, Column: 1 + utf8.RuneCount(data[start:off])}
}

// invalidUTF8 returns the offset of the first byte of data that is not
// part of valid UTF-8, or -1.
func invalidUTF8(data []byte) int {
	for off := 0; off < len(data); {
		r, n := utf8.DecodeRune(data[off:])
		if r == utf8.RuneError && n == 1 {
			return off
		}
		off += n
	}
	return -1
}
