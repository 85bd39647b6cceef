package fence

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// TestForgedSourcesDropped checks that the anti-spoofing and tunnel deny
// chains log and then drop, whatever deny_action says, while the chains of deny rules
// reject as it says; in audit mode all of them log and return.
func TestForgedSourcesDropped(t *testing.T) {
	for _, settings := range []string{"", "settings: {deny_action: drop}\n", "settings: {mode: audit}\n"} {
		src := "version: 1\n" + settings + "networks:\n  - match: {name: \"*\"}\n    egress:\n      - deny: \"@private\"\n"
		pol, err := policy.Parse("p.yaml", []byte(src), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
		if err != nil {
			t.Fatal(err)
		}
		r := Compile(pol, testNetworks)
		spoofs := 0
		for name, d := range r.Denials {
			c := r.Chain(name)
			var verdicts []string
			for _, rule := range c.Rules {
				switch rule.Verdict.Kind {
				case nft.Drop:
					verdicts = append(verdicts, "drop")
				case nft.Return:
					verdicts = append(verdicts, "return")
				case nft.RejectTCPReset, nft.RejectAdminProhibited:
					verdicts = append(verdicts, "reject")
				}
			}
			want := "reject,reject"
			switch {
			case pol.Settings.Mode == policy.Audit:
				want = "return"
			case d.Reason == ReasonSpoof, d.Reason == ReasonTunnel, pol.Settings.DenyAction == policy.Drop:
				want = "drop"
			}
			if got := strings.Join(verdicts, ","); got != want {
				t.Errorf("%q: chain %s (%s) ends in %s, want %s", settings, name, d.Reason, got, want)
			}
			if c.Rules[0].Log == nil {
				t.Errorf("%q: chain %s does not log first", settings, name)
			}
			if d.Reason == ReasonSpoof {
				spoofs++
			}
		}
		// docker0, app_default and bridges not known yet, in two hooks.
		if spoofs != 6 {
			t.Errorf("%q: %d anti-spoofing chains, want 6", settings, spoofs)
		}
	}
}
