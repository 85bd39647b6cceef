package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the parser: it must never panic, and
// every error it returns must carry a file:line:column position.
func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile("testdata/seed.yaml")
	f.Add(seed)
	f.Add(DefaultYAML)
	f.Add([]byte("version: 1\nlists:\n  a: [10.0.0.0/8, \"::/0\"]\nnetworks:\n  - match: {label: a=b, subnet: 10.0.0.0/8}\n    host: [{allow: '@a', ports: ['1-2', 3]}]\n"))
	f.Add([]byte("version: 1\nnetworks: [{match: {name: x}, egress: [{deny: [self, '@private'], proto: icmpv6}]}]"))
	opts := Options{ResolvConf: filepath.Join(f.TempDir(), "none")}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data, opts)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml:") && !strings.Contains(line, "list file") {
					t.Fatalf("error without position: %q", line)
				}
			}
			return
		}
		if p.Version != 1 || len(p.Sections) == 0 {
			t.Fatalf("accepted a policy without version or sections: %+v", p)
		}
		for _, s := range p.Sections {
			for _, h := range []Hook{Egress, Host} {
				for _, r := range s.Rules(h) {
					if len(r.Ports) > 0 && !r.Proto.HasPorts() {
						t.Fatalf("accepted ports with %s", r.Proto)
					}
				}
			}
		}
	})
}
