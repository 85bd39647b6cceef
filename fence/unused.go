package fence

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/dockerfence/dockerfence/policy"
)

// unusedWarnings warns of each section that applies to none of the
// networks: one that no network matches, named with the closest existing
// name (a compose user's {name: app} for the network app_default), and
// one whose networks earlier sections take. The "*" section never warns,
// since it fences bridges not known yet, nor does a section that an
// earlier one always shadows: the policy warns of that already.
func (b *builder) unusedWarnings(networks []policy.Network) {
	for _, s := range b.pol.Sections {
		if s.Match.CatchAll() || b.pol.ShadowedBy(s) != nil {
			continue
		}
		var matched []policy.Network
		for _, n := range networks {
			if s.Match.Matches(n) {
				matched = append(matched, n)
			}
		}
		head := fmt.Sprintf("%s: section %d %s", s.Pos, s.Index, s.Match)
		if len(matched) == 0 {
			b.r.Warnings = append(b.r.Warnings, head+" matches no network"+noMatchHint(s.Match, networks))
			continue
		}
		var taken []string
		for _, n := range matched {
			e := b.sectionFor(n)
			if e == s {
				taken = nil
				break
			}
			if e != nil {
				taken = append(taken, fmt.Sprintf("%s by section %d", networkName(n), e.Index))
			}
		}
		if len(taken) > 0 {
			b.r.Warnings = append(b.r.Warnings, fmt.Sprintf("%s applies to no network: an earlier section takes each network it matches (%s)", head, strings.Join(taken, ", ")))
		}
	}
}

// noMatchHint says why a match fits none of the networks, starting with
// "; ": the existing value closest to that of the first of its fields that
// no network has, or that no network has all of its fields at once. It is
// "" when there is nothing to say.
func noMatchHint(m policy.Match, networks []policy.Network) string {
	if len(networks) == 0 {
		return "; there is no network"
	}
	named := slices.ContainsFunc(networks, func(n policy.Network) bool { return n.Name != "" })
	if m.NeedsDocker() && !named {
		return "; the networks were found without Docker, and have no names or labels"
	}
	var names, bridges, labels []string
	var subnets []subnetOf
	for _, n := range networks {
		if n.Name != "" {
			names = append(names, n.Name)
		}
		if n.Bridge != "" && n.IsBridge() {
			bridges = append(bridges, n.Bridge)
		}
		for k, v := range n.Labels {
			if m.LabelHasValue {
				labels = append(labels, k+"="+v)
			} else {
				labels = append(labels, k)
			}
		}
		for _, p := range n.Subnets {
			subnets = append(subnets, subnetOf{p, n})
		}
	}
	fits := func(f policy.Match) bool {
		return slices.ContainsFunc(networks, f.Matches)
	}
	switch {
	case m.Name != "" && !fits(policy.Match{Name: m.Name}):
		return didYouMean("", m.Name, names)
	case m.HasLabel && !fits(policy.Match{HasLabel: true, LabelKey: m.LabelKey, LabelValue: m.LabelValue, LabelHasValue: m.LabelHasValue}):
		label := m.LabelKey
		if m.LabelHasValue {
			label += "=" + m.LabelValue
		}
		return didYouMean("label ", label, labels)
	case m.Bridge != "" && !fits(policy.Match{Bridge: m.Bridge}):
		return didYouMean("bridge ", m.Bridge, bridges)
	case m.Subnet.IsValid() && !fits(policy.Match{Subnet: m.Subnet}):
		for _, s := range subnets {
			if s.p.Overlaps(m.Subnet) {
				return fmt.Sprintf("; did you mean subnet %s (network %s)? a network's subnets must lie inside the match's", s.p.Masked(), networkName(s.n))
			}
		}
		return ""
	}
	return "; no network has all of it at once"
}

// subnetOf is a subnet and its network.
type subnetOf struct {
	p netip.Prefix
	n policy.Network
}

// didYouMean returns "; did you mean KIND VALUE?" with the candidate
// closest to word, or "" if none is close.
func didYouMean(kind, word string, candidates []string) string {
	c := closest(word, candidates)
	if c == "" {
		return ""
	}
	return "; did you mean " + kind + quoteName(c) + "?"
}

// closest returns the candidate closest to word, or "" if none is close:
// best one that starts with word (less the pattern characters *?[]),
// then one that holds it or that it holds, then the one at the least edit
// distance, if that is at most a third of word's length (and at least 2),
// then one that starts with a near miss of word (at most a quarter of its
// length, and at least 1, edits: "app-" for "app_default"). Ties go to
// the shorter candidate, then the first in sort order. Case does not
// count.
func closest(word string, candidates []string) string {
	w := strings.ToLower(strings.Map(func(r rune) rune {
		if strings.ContainsRune(`*?[]\`, r) {
			return -1
		}
		return r
	}, word))
	if w == "" {
		return ""
	}
	best, bestRank := "", 0
	for _, c := range candidates {
		lc := strings.ToLower(c)
		var rank int
		switch d := editDistance(w, lc); {
		case strings.HasPrefix(lc, w):
			rank = 0
		case strings.Contains(lc, w) || strings.Contains(w, lc):
			rank = 1
		case d <= max(2, len(w)/3):
			rank = 1 + d
		case len(lc) > len(w) && editDistance(w, lc[:len(w)]) <= max(1, len(w)/4):
			rank = 2 + editDistance(w, lc[:len(w)])
		default:
			continue
		}
		if best == "" || rank < bestRank || rank == bestRank && (len(c) < len(best) || len(c) == len(best) && c < best) {
			best, bestRank = c, rank
		}
	}
	return best
}

// editDistance returns the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// quoteName returns s as it is if it holds only letters, digits and
// "_.-=", else quoted, so that a hostile name cannot pass for a part of a
// message.
func quoteName(s string) string {
	if s == "" || strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' || r == '=')
	}) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
