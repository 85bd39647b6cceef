package fence

import (
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/policy"
	"github.com/google/go-cmp/cmp"
)

// TestUnusedSectionWarnings checks the warnings of sections that apply to
// no network: each names the section, where it is, and the closest
// existing name.
func TestUnusedSectionWarnings(t *testing.T) {
	compose := []policy.Network{
		{ID: "1", Name: "app_default", Bridge: "br-1", Driver: "bridge", Labels: map[string]string{"com.docker.compose.project": "app"}, Subnets: prefixes("172.20.0.0/16")},
		{ID: "2", Name: "bridge", Bridge: "docker0", Driver: "bridge", Subnets: prefixes("172.17.0.0/16")},
		{ID: "3", Name: "host", Driver: "host"},
	}
	netlink := []policy.Network{{Bridge: "br-1", Subnets: prefixes("172.20.0.0/16")}}
	head := "version: 1\nnetworks:\n"
	tests := []struct {
		name, sections string
		nets           []policy.Network
		want           []string
	}{
		{"compose project name", "  - match: {name: app}\n", compose, []string{
			`p.yaml:3:5: section 1 {name: "app"} matches no network; did you mean app_default?`,
		}},
		{"typo", "  - match: {name: app_defualt}\n", compose, []string{
			`p.yaml:3:5: section 1 {name: "app_defualt"} matches no network; did you mean app_default?`,
		}},
		{"pattern", "  - match: {name: \"app-*\"}\n", compose, []string{
			`p.yaml:3:5: section 1 {name: "app-*"} matches no network; did you mean app_default?`,
		}},
		{"nothing close", "  - match: {name: database}\n", compose, []string{
			`p.yaml:3:5: section 1 {name: "database"} matches no network`,
		}},
		{"label value", "  - match: {label: com.docker.compose.project=ap}\n", compose, []string{
			`p.yaml:3:5: section 1 {label: "com.docker.compose.project=ap"} matches no network; did you mean label com.docker.compose.project=app?`,
		}},
		{"bridge", "  - match: {bridge: br-2}\n", compose, []string{
			`p.yaml:3:5: section 1 {bridge: "br-2"} matches no network; did you mean bridge br-1?`,
		}},
		{"subnet too small", "  - match: {subnet: 172.20.0.0/24}\n", compose, []string{
			`p.yaml:3:5: section 1 {subnet: 172.20.0.0/24} matches no network; did you mean subnet 172.20.0.0/16 (network app_default)? a network's subnets must lie inside the match's`,
		}},
		{"fields apart", "  - match: {name: app_default, subnet: 172.17.0.0/16}\n", compose, []string{
			`p.yaml:3:5: section 1 {name: "app_default", subnet: 172.17.0.0/16} matches no network; no network has all of it at once`,
		}},
		{"without Docker", "  - match: {name: app_default}\n", netlink, []string{
			`p.yaml:3:5: section 1 {name: "app_default"} matches no network; the networks were found without Docker, and have no names or labels`,
		}},
		{"no networks", "  - match: {subnet: 10.0.0.0/8}\n", nil, []string{
			`p.yaml:3:5: section 1 {subnet: 10.0.0.0/8} matches no network; there is no network`,
		}},
		{"taken by an earlier section", "  - match: {label: com.docker.compose.project}\n  - match: {name: \"*_default\"}\n", compose, []string{
			`p.yaml:4:5: section 2 {name: "*_default"} applies to no network: an earlier section takes each network it matches (app_default by section 1)`,
		}},
		{"the catch-all never warns", "  - match: {name: app_default}\n  - match: {name: \"*\"}\n", compose[:1], nil},
		{"every section used", "  - match: {name: app_default}\n  - match: {bridge: docker0}\n", compose, nil},
		{"shadowed: the policy warns", "  - match: {name: \"*\"}\n  - match: {name: nothing}\n", compose, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := compileSource(t, head+tt.sections, tt.nets)
			var got []string
			for _, w := range r.Warnings {
				if strings.Contains(w, "section") && strings.HasPrefix(w, "p.yaml:") {
					got = append(got, w)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestClosest checks the choice of the name a warning suggests.
func TestClosest(t *testing.T) {
	names := []string{"app_default", "app_backend", "web_default", "bridge", "host", "none"}
	for word, want := range map[string]string{
		"app":         "app_backend", // both start with it; the shorter, then the first in order
		"APP_DEF":     "app_default",
		"default":     "app_default", // held in both: the first in order
		"web":         "web_default",
		"brigde":      "bridge",
		"hots":        "host",
		"xyz":         "",
		"*":           "",
		"web_defaulr": "web_default",
	} {
		if got := closest(word, names); got != want {
			t.Errorf("closest(%q) = %q, want %q", word, got, want)
		}
	}
	if got := didYouMean("", "app", []string{"app\nwarning: forged"}); got != `; did you mean "app\nwarning: forged"?` {
		t.Errorf("a hostile name is not quoted: %s", got)
	}
}
