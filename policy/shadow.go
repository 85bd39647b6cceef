package policy

import (
	"fmt"
	"path"
	"strings"
)

// Covers reports whether m matches every network that o matches, whatever
// the networks: then a section with match o placed after one with match m
// never applies. It errs on the side of false: a pair it cannot decide,
// such as two unrelated glob patterns, is not covered.
//
// Every constraint of m must follow from a constraint of o of the same
// kind: a name or bridge pattern from a pattern whose matches it matches
// (globCovers), a label from the same label key (and value, if m has one),
// a subnet from a subnet inside it.
func (m Match) Covers(o Match) bool {
	if m.Name != "" && (o.Name == "" || !globCovers(m.Name, o.Name)) {
		return false
	}
	if m.Bridge != "" && (o.Bridge == "" || !globCovers(m.Bridge, o.Bridge)) {
		return false
	}
	if m.HasLabel {
		if !o.HasLabel || o.LabelKey != m.LabelKey {
			return false
		}
		if m.LabelHasValue && (!o.LabelHasValue || o.LabelValue != m.LabelValue) {
			return false
		}
	}
	if m.Subnet.IsValid() {
		s := o.Subnet
		if !s.IsValid() || s.Addr().Is4() != m.Subnet.Addr().Is4() || s.Bits() < m.Subnet.Bits() || !m.Subnet.Contains(s.Addr()) {
			return false
		}
	}
	return true
}

// globMeta holds the characters that make a name a pattern (path.Match).
const globMeta = `*?[\`

// globCovers reports whether every name that pattern b matches, pattern a
// matches too. It knows four cases and says false for the rest: the same
// pattern; b a plain name that a matches; a "*", which matches every name
// without '/' (Docker's network and interface names have none); and a a
// plain prefix then "*" ("app_*") with b starting with that prefix
// ("app_web*").
func globCovers(a, b string) bool {
	switch {
	case a == b:
		return true
	case !strings.ContainsAny(b, globMeta):
		ok, _ := path.Match(a, b)
		return ok
	case a == "*":
		return !strings.Contains(b, "/")
	}
	prefix, ok := strings.CutSuffix(a, "*")
	if !ok || strings.ContainsAny(prefix, globMeta) {
		return false
	}
	i := strings.IndexAny(b, globMeta)
	return strings.HasPrefix(b[:i], prefix) && !strings.Contains(b, "/")
}

// Covers reports whether m matches every container that o matches,
// whatever the containers, as Match.Covers does for networks: each
// constraint of m must follow from one of o of the same kind. Image
// patterns match across '/', and a compose match is implied only by a
// compose match.
func (m ContainerMatch) Covers(o ContainerMatch) bool {
	if m.Name != "" && (o.Name == "" || !globCovers(m.Name, o.Name)) {
		return false
	}
	if m.Image != "" && (o.Image == "" || !globCovers(acrossSlashes(m.Image), acrossSlashes(o.Image))) {
		return false
	}
	if m.HasLabel {
		if !o.HasLabel || o.LabelKey != m.LabelKey {
			return false
		}
		if m.LabelHasValue && (!o.LabelHasValue || o.LabelValue != m.LabelValue) {
			return false
		}
	}
	if m.HasCompose && (!o.HasCompose || !globCovers(m.ComposeProject, o.ComposeProject) || !globCovers(m.ComposeService, o.ComposeService)) {
		return false
	}
	return true
}

// acrossSlashes turns an image pattern into one that globCovers reads as
// globAcrossSlashes matches it: '/' an ordinary character.
func acrossSlashes(pattern string) string { return strings.ReplaceAll(pattern, "/", "\x00") }

// ShadowedBy returns the first section before s whose match covers s's:
// s then never applies to any network. It returns nil if there is none.
func (p *Policy) ShadowedBy(s *Section) *Section {
	for _, e := range p.Sections {
		if e == s {
			return nil
		}
		if e.Match.Covers(s.Match) {
			return e
		}
	}
	return nil
}

// shadowWarnings returns a warning for each section that an earlier one
// shadows, at the later section's position.
func (p *Policy) shadowWarnings() []string {
	var out []string
	for _, s := range p.Sections {
		e := p.ShadowedBy(s)
		if e == nil {
			continue
		}
		why := "matches every network it matches"
		if e.Match.CatchAll() {
			why = "matches every network"
		}
		out = append(out, fmt.Sprintf("%s: section %d %s never applies: section %d %s (line %d) comes first and %s; move section %d above it, or remove it",
			s.Pos, s.Index, s.Match, e.Index, e.Match, e.Pos.Line, why, s.Index))
	}
	for i, s := range p.Containers {
		for _, e := range p.Containers[:i] {
			if e.Match.Covers(s.Match) {
				out = append(out, fmt.Sprintf("%s: container section %d %s never applies: container section %d %s (line %d) comes first and matches every container it matches; move container section %d above it, or remove it",
					s.Pos, s.Index, s.Match, e.Index, e.Match, e.Pos.Line, s.Index))
				break
			}
		}
	}
	return out
}
