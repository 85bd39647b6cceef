package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Summary says in one line what the policy holds, as `dockerfence check`
// prints it: "2 sections, 5 rules, lists used: office, private" ("-" for
// no lists; "2 sections, 1 container sections, ..." with containers), with
// the file the built-in resolvers came from if it is used ("resolvers
// (from /etc/resolv.conf)"), and the DNS names rules use ("..., 3 names
// in 2 name lists").
func (p *Policy) Summary() string {
	rules := 0
	for _, s := range p.Sections {
		rules += s.RuleCount()
	}
	for _, s := range p.Containers {
		rules += len(s.Egress.Rules) + len(s.Ingress.Rules)
	}
	used := p.UsedLists()
	if from := p.ResolversFrom(); from != "" {
		for i, l := range used {
			if l == "resolvers" {
				used[i] += " (from " + from + ")"
			}
		}
	}
	lists := strings.Join(used, ", ")
	if lists == "" {
		lists = "-"
	}
	containers := ""
	if len(p.Containers) > 0 {
		containers = fmt.Sprintf(", %d container sections", len(p.Containers))
	}
	names := ""
	if n, k := p.namesUsed(); k > 0 {
		names = fmt.Sprintf(", %d names in %d name lists", n, k)
	}
	return fmt.Sprintf("%d sections%s, %d rules, lists used: %s%s", len(p.Sections), containers, rules, lists, names)
}

// namesUsed returns how many name patterns the lists of names that rules
// use hold, and how many such lists there are (inline ones included).
func (p *Policy) namesUsed() (patterns, lists int) {
	seen := map[string]bool{}
	p.eachRule(func(r *Rule) {
		for _, nl := range r.Addrs.Names {
			if !seen[nl.Name] {
				seen[nl.Name] = true
				patterns += len(nl.Patterns)
			}
		}
	})
	return patterns, len(seen)
}

// ResolversFrom returns the file that the built-in list @resolvers was read
// from, if a rule uses it; "" if none does or a user list overrides it.
func (p *Policy) ResolversFrom() string {
	l := p.Lists["resolvers"]
	if l == nil || !l.Builtin || !slices.Contains(p.UsedLists(), "resolvers") {
		return ""
	}
	return l.File
}
