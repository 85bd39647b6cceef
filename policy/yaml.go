package policy

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// pos returns the position of n in the policy file, or the file alone if
// n is nil.
func (p *parser) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: p.file}
	}
	return Pos{File: p.file, Line: n.Line, Column: n.Column}
}

// errorf reports a problem at n.
func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errAt(p.pos(n), format, args...)
}

// errAt reports a problem at pos, or counts it if maxErrors are reported
// already.
func (p *parser) errAt(pos Pos, format string, args ...any) {
	if len(p.errs) < maxErrors {
		p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	} else {
		p.dropped++
	}
}

// kindName says what n is, for a message: a mapping, a list, nothing, an
// alias, or the quoted value of a scalar.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// mapping walks a mapping node, calling the handler of each known key and
// reporting unknown and repeated keys.
func (p *parser) mapping(n *yaml.Node, what string, handlers map[string]func(k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: expected a mapping, found %s", what, kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !p.key(k, what) {
			continue
		}
		h, ok := handlers[k.Value]
		if !ok {
			p.errorf(k, "%s: unknown key %s; expected one of %s", what, quote(k.Value), keyList(handlers))
			continue
		}
		if seen[k.Value] {
			p.errorf(k, "%s: %s given twice", what, quote(k.Value))
			continue
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		h(k, v)
	}
}

// key reports whether k is a plain scalar key, and reports it if not: a
// list, a mapping or an alias as a key is never a name.
func (p *parser) key(k *yaml.Node, what string) bool {
	if k.Kind == yaml.ScalarNode && k.Tag != "!!null" {
		return true
	}
	p.errorf(k, "%s: expected a name as key, found %s", what, kindName(k))
	return false
}

// keyList returns the keys of h, sorted and joined by commas.
func keyList(h map[string]func(k, v *yaml.Node)) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// scalar returns the value of n, or reports that n is not a value.
func (p *parser) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s: expected a value, found %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

// integer returns the integer n holds, or reports that it holds none.
func (p *parser) integer(n *yaml.Node, what string) (int, bool) {
	s, ok := p.scalar(n, what)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || n.Tag != "!!int" {
		p.errorf(n, "%s: expected an integer, found %s", what, quote(s))
		return 0, false
	}
	return v, true
}

// boolean returns the true or false n holds, or reports that it holds
// neither.
func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	s, ok := p.scalar(n, what)
	if !ok {
		return false, false
	}
	switch s {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	p.errorf(n, "%s: expected true or false, found %s", what, quote(s))
	return false, false
}

// oneOf returns the value of n if it is one of choices, or reports it.
func (p *parser) oneOf(n *yaml.Node, what string, choices ...string) (string, bool) {
	s, ok := p.scalar(n, what)
	if !ok {
		return "", false
	}
	for _, c := range choices {
		if s == c {
			return s, true
		}
	}
	p.errorf(n, "%s: expected %s, found %s", what, strings.Join(choices, " or "), quote(s))
	return "", false
}
