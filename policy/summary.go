package policy

import (
	"fmt"
	"strings"
)

// Summary says in one line what the policy holds, as `dockerfence check`
// prints it: "2 sections, 5 rules, lists used: @private, office" ("-" for
// no lists).
func (p *Policy) Summary() string {
	rules := 0
	for _, s := range p.Sections {
		rules += s.RuleCount()
	}
	lists := strings.Join(p.UsedLists(), ", ")
	if lists == "" {
		lists = "-"
	}
	return fmt.Sprintf("%d sections, %d rules, lists used: %s", len(p.Sections), rules, lists)
}
