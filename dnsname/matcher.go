package dnsname

import (
	"slices"
	"strings"
)

// Matcher tells which keys (the names of the policy's name lists) a DNS
// name matches. Patterns are added with a key; a name matches a key if it
// equals one of the key's exact patterns or lies strictly below the name
// of one of its wildcard patterns. Lookups are map lookups, one for the
// name and one for each name above it, so thousands of patterns cost no
// more than a few: no pattern is scanned.
//
// A Matcher is built with Add and then only read: Match is safe for
// concurrent use once the last Add has returned.
type Matcher struct {
	// exact holds, by name, the keys of the exact patterns; below holds,
	// by base name, the keys of the wildcard patterns "*." + base.
	exact, below map[string][]string
	patterns     int
}

// NewMatcher returns an empty Matcher.
func NewMatcher() *Matcher {
	return &Matcher{exact: map[string][]string{}, below: map[string][]string{}}
}

// Add adds the pattern p with key. Adding the same pattern and key again
// changes nothing.
func (m *Matcher) Add(p Pattern, key string) {
	tbl, name := m.exact, string(p)
	if p.Wildcard() {
		tbl, name = m.below, p.Base()
	}
	if slices.Contains(tbl[name], key) {
		return
	}
	if len(tbl[name]) == 0 {
		m.patterns++
	}
	tbl[name] = append(tbl[name], key)
}

// Len returns how many distinct patterns the Matcher holds.
func (m *Matcher) Len() int { return m.patterns }

// Match returns the keys that name matches, sorted, or nil. name may be
// in any case and have a trailing dot, as DNS messages carry it; a name
// that Canonical refuses matches nothing.
func (m *Matcher) Match(name string) []string {
	canon, ok := Canonical(name)
	if !ok {
		return nil
	}
	return m.match(canon)
}

// match is Match of a canonical name.
func (m *Matcher) match(name string) []string {
	var out []string
	out = append(out, m.exact[name]...)
	// Every name strictly above name: "b.c" and "c" for "a.b.c".
	for rest := name; ; {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		out = append(out, m.below[rest]...)
	}
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}
