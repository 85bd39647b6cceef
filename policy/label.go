package policy

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// maxLabelRules bounds the rules one container label may hold, and
// maxLabelBytes its length: a label is the container owner's input, and
// each rule becomes kernel rules.
const (
	maxLabelRules = 256
	maxLabelBytes = 64 << 10
)

// LabelRules reads the egress rules a container carries in its label
// EgressLabel: a YAML list of rules in the form of a section's egress,
// block or flow style ("[{deny: 192.168.100.1, comment: no proxy}]"),
// which may name the policy's lists. Errors are an ErrorList whose
// positions are in the label's text (file "label dockerfence.egress"); the
// caller adds the container's name. The policy is only read: LabelRules
// is safe for concurrent use.
func (pol *Policy) LabelRules(value string) ([]*Rule, error) {
	p := &parser{file: "label " + EgressLabel}
	rules := p.labelRules([]byte(value), pol)
	if len(p.errs) > 0 {
		if p.dropped > 0 {
			p.errs = append(p.errs, &Error{Pos: Pos{File: p.file}, Msg: fmt.Sprintf("%d more problems not shown; fix these first", p.dropped)})
		}
		return nil, p.errs
	}
	return rules, nil
}

func (p *parser) labelRules(data []byte, pol *Policy) []*Rule {
	if len(data) > maxLabelBytes {
		p.errAt(Pos{File: p.file}, "%d bytes; a label holds at most %d", len(data), maxLabelBytes)
		return nil
	}
	root := p.document(data, document{
		subject:  "the label",
		expected: "expected a list of rules, e.g. [{deny: 192.168.100.1}]",
		one:      "the label is one list of rules",
	})
	if root == nil {
		return nil
	}
	if root.Kind == yaml.SequenceNode && len(root.Content) > maxLabelRules {
		p.errorf(root, "%d rules; a label holds at most %d", len(root.Content), maxLabelRules)
		return nil
	}
	if root.Kind == yaml.AliasNode || hasAlias(root) {
		p.errorf(root, "YAML aliases are not allowed in a label")
		return nil
	}
	return p.rules(root, "rules", Egress, pol)
}

// hasAlias reports whether the tree under n holds an alias: a label is
// untrusted, and aliases can make a small text a huge tree.
func hasAlias(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		return true
	}
	for _, c := range n.Content {
		if hasAlias(c) {
			return true
		}
	}
	return false
}
