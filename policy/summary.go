package policy

import (
	"fmt"
	"strings"
)

// Summary says in one line what the policy holds, as `dockerfence check`
// prints it: "2 sections, 5 rules, lists used: @private, office" ("-" for
// no lists; "2 sections, 1 container sections, ..." with containers).
func (p *Policy) Summary() string {
	rules := 0
	for _, s := range p.Sections {
		rules += s.RuleCount()
	}
	for _, s := range p.Containers {
		rules += len(s.Egress.Rules) + len(s.Ingress.Rules)
	}
	lists := strings.Join(p.UsedLists(), ", ")
	if lists == "" {
		lists = "-"
	}
	containers := ""
	if len(p.Containers) > 0 {
		containers = fmt.Sprintf(", %d container sections", len(p.Containers))
	}
	return fmt.Sprintf("%d sections%s, %d rules, lists used: %s", len(p.Sections), containers, rules, lists)
}
