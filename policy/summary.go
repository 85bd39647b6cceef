package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Summary says in one line what the policy holds, as `dockerfence check`
// prints it: "2 sections, 5 rules, lists used: office, private" ("-" for
// no lists), with the file the built-in resolvers came from if it is used
// ("resolvers (from /etc/resolv.conf)").
func (p *Policy) Summary() string {
	rules := 0
	for _, s := range p.Sections {
		rules += s.RuleCount()
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
	return fmt.Sprintf("%d sections, %d rules, lists used: %s", len(p.Sections), rules, lists)
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
