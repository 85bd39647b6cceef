package policy

import (
	_ "embed"
)

// DefaultYAML is the embedded default policy: it stops lateral movement and
// leaves the internet reachable.
//
//go:embed default.yaml
var DefaultYAML []byte

// DefaultName is how errors and status name the embedded default policy.
const DefaultName = "(embedded default)"

// Default parses the embedded default policy.
func Default(opts Options) (*Policy, error) { return Parse(DefaultName, DefaultYAML, opts) }
