package policy

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestCovers checks which matches a section's match covers: every pair
// where it says true must hold for every network, and the pairs it cannot
// decide say false.
func TestCovers(t *testing.T) {
	sub := netip.MustParsePrefix
	tests := []struct {
		name string
		a, b Match
		want bool
	}{
		{"star covers a name", Match{Name: "*"}, Match{Name: "app"}, true},
		{"star covers a pattern", Match{Name: "*"}, Match{Name: "app_*"}, true},
		{"star covers name and label", Match{Name: "*"}, Match{Name: "app", HasLabel: true, LabelKey: "k"}, true},
		{"star does not cover a subnet match", Match{Name: "*"}, Match{Subnet: sub("172.20.0.0/16")}, false},
		{"star does not cover a bridge match", Match{Name: "*"}, Match{Bridge: "br-*"}, false},
		{"same name", Match{Name: "app"}, Match{Name: "app"}, true},
		{"other name", Match{Name: "app"}, Match{Name: "web"}, false},
		{"pattern covers a name", Match{Name: "app_*"}, Match{Name: "app_default"}, true},
		{"pattern misses a name", Match{Name: "app_*"}, Match{Name: "web_default"}, false},
		{"prefix pattern covers a longer one", Match{Name: "app*"}, Match{Name: "app_web*"}, true},
		{"prefix pattern and another prefix", Match{Name: "app_*"}, Match{Name: "ap*"}, false},
		{"unrelated patterns", Match{Name: "*_default"}, Match{Name: "app_*"}, false},
		{"name does not cover no name", Match{Name: "app"}, Match{Bridge: "br-app"}, false},
		{"less constrained covers more", Match{Name: "app"}, Match{Name: "app", Subnet: sub("172.20.0.0/16")}, true},
		{"more constrained does not cover less", Match{Name: "app", Subnet: sub("172.20.0.0/16")}, Match{Name: "app"}, false},
		{"larger subnet", Match{Subnet: sub("172.16.0.0/12")}, Match{Subnet: sub("172.20.0.0/16")}, true},
		{"smaller subnet", Match{Subnet: sub("172.20.0.0/16")}, Match{Subnet: sub("172.16.0.0/12")}, false},
		{"disjoint subnet", Match{Subnet: sub("10.0.0.0/8")}, Match{Subnet: sub("172.20.0.0/16")}, false},
		{"other family", Match{Subnet: sub("0.0.0.0/0")}, Match{Subnet: sub("fd00::/64")}, false},
		{"label key covers key and value", Match{HasLabel: true, LabelKey: "k"}, Match{HasLabel: true, LabelKey: "k", LabelHasValue: true, LabelValue: "v"}, true},
		{"label value does not cover key", Match{HasLabel: true, LabelKey: "k", LabelHasValue: true, LabelValue: "v"}, Match{HasLabel: true, LabelKey: "k"}, false},
		{"label other value", Match{HasLabel: true, LabelKey: "k", LabelHasValue: true, LabelValue: "v"}, Match{HasLabel: true, LabelKey: "k", LabelHasValue: true, LabelValue: "w"}, false},
		{"label same value", Match{HasLabel: true, LabelKey: "k", LabelHasValue: true, LabelValue: ""}, Match{HasLabel: true, LabelKey: "k", LabelHasValue: true, LabelValue: ""}, true},
		{"bridge pattern covers a bridge", Match{Bridge: "br-*"}, Match{Bridge: "br-app"}, true},
		{"bridge does not cover a name", Match{Bridge: "br-*"}, Match{Name: "app"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Covers(tt.b); got != tt.want {
				t.Errorf("%s.Covers(%s) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestCoversHoldsForNetworks checks, for every pair of matches of
// TestCovers' kinds that Covers says true of, that no network matches the
// second and not the first: the warning it gives has no false positive.
func TestCoversHoldsForNetworks(t *testing.T) {
	sub := netip.MustParsePrefix
	matches := []Match{
		{Name: "*"}, {Name: "app"}, {Name: "app_*"}, {Name: "app_web*"}, {Name: "app?default"}, {Name: "[a-c]pp_default"},
		{Bridge: "br-*"}, {Bridge: "br-app"}, {Name: "app", Bridge: "br-*"},
		{Subnet: sub("172.16.0.0/12")}, {Subnet: sub("172.20.0.0/16")}, {Subnet: sub("fd00::/8")},
		{HasLabel: true, LabelKey: "p"}, {HasLabel: true, LabelKey: "p", LabelHasValue: true, LabelValue: "app"},
		{Name: "app_*", HasLabel: true, LabelKey: "p"},
	}
	var nets []Network
	for _, name := range []string{"", "app", "app_default", "app_web_1", "appxdefault", "bpp_default", "web"} {
		for _, bridge := range []string{"", "br-app", "docker0"} {
			for _, driver := range []string{"", "bridge", "macvlan"} {
				for _, labels := range []map[string]string{nil, {"p": "app"}, {"p": "web"}} {
					for _, subnets := range [][]netip.Prefix{nil, {sub("172.20.0.0/16")}, {sub("172.16.0.0/12")}, {sub("fd00:1::/64")}} {
						nets = append(nets, Network{Name: name, Bridge: bridge, Driver: driver, Labels: labels, Subnets: subnets})
					}
				}
			}
		}
	}
	covered := 0
	for _, a := range matches {
		for _, b := range matches {
			if !a.Covers(b) {
				continue
			}
			covered++
			for _, n := range nets {
				if b.Matches(n) && !a.Matches(n) {
					t.Errorf("%s covers %s, but %+v matches only the latter", a, b, n)
				}
			}
		}
	}
	if covered <= len(matches) {
		t.Errorf("only %d pairs covered: the test checks little more than each match covering itself", covered)
	}
}

// TestShadowWarnings checks that check's policy warns of the sections an
// earlier one shadows, at the shadowed section's line, and of nothing else.
func TestShadowWarnings(t *testing.T) {
	head := "version: 1\nnetworks:\n"
	tests := []struct {
		name, sections string
		want           []string
	}{
		{"after the catch-all", `  - match: {name: "*"}
  - match: {name: app_default}
`, []string{`p.yaml:4:5: section 2 {name: "app_default"} never applies: section 1 {name: "*"} (line 3) comes first and matches every network; move section 2 above it, or remove it`}},
		{"same match twice", `  - match: {name: app_default}
  - match: {subnet: 10.0.0.0/8}
  - match: {name: app_default}
`, []string{`p.yaml:5:5: section 3 {name: "app_default"} never applies: section 1 {name: "app_default"} (line 3) comes first and matches every network it matches; move section 3 above it, or remove it`}},
		{"inside a larger subnet", `  - match: {subnet: 172.16.0.0/12}
  - match: {subnet: 172.20.0.0/16, name: app}
`, []string{`p.yaml:4:5: section 2 {name: "app", subnet: 172.20.0.0/16} never applies: section 1 {subnet: 172.16.0.0/12} (line 3) comes first and matches every network it matches; move section 2 above it, or remove it`}},
		{"specific first", `  - match: {name: app_default}
  - match: {name: "*"}
`, nil},
		{"overlapping but not covering", `  - match: {name: "app_*"}
  - match: {label: com.docker.compose.project=app}
  - match: {name: "*_default"}
`, nil},
		{"two catch-alls", `  - match: {name: "*"}
  - match: {name: "*"}
`, []string{`p.yaml:4:5: section 2 {name: "*"} never applies: section 1 {name: "*"} (line 3) comes first and matches every network; move section 2 above it, or remove it`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(head+tt.sections), Options{ResolvConf: filepath.Join(t.TempDir(), "resolv.conf")})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range p.Warnings {
				if !strings.HasPrefix(w, "@resolvers") {
					got = append(got, w)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestContainerCovers checks the container matches a container section's
// match covers, and that each pair it says true of holds for every
// container of a sample: no false positive.
func TestContainerCovers(t *testing.T) {
	label := func(kv string) ContainerMatch {
		k, v, has := strings.Cut(kv, "=")
		return ContainerMatch{HasLabel: true, LabelKey: k, LabelValue: v, LabelHasValue: has}
	}
	compose := func(p, s string) ContainerMatch {
		return ContainerMatch{HasCompose: true, ComposeProject: p, ComposeService: s}
	}
	tests := []struct {
		name string
		a, b ContainerMatch
		want bool
	}{
		{"star name", ContainerMatch{Name: "*"}, ContainerMatch{Name: "web-1"}, true},
		{"prefix name", ContainerMatch{Name: "web-*"}, ContainerMatch{Name: "web-1"}, true},
		{"other name", ContainerMatch{Name: "web-*"}, ContainerMatch{Name: "db-1"}, false},
		{"star image across slashes", ContainerMatch{Image: "*"}, ContainerMatch{Image: "registry.example/team/*"}, true},
		{"registry prefix", ContainerMatch{Image: "registry.example/*"}, ContainerMatch{Image: "registry.example/team/app:1"}, true},
		{"other registry", ContainerMatch{Image: "registry.example/*"}, ContainerMatch{Image: "docker.io/redis:7"}, false},
		{"label key", label("role"), label("role=worker"), true},
		{"label value", label("role=worker"), label("role"), false},
		{"compose project", compose("shop", "*"), compose("shop", "api"), true},
		{"compose service", compose("shop", "api"), compose("shop", "*"), false},
		{"compose is not a label", compose("shop", "*"), label("com.docker.compose.project=shop"), false},
		{"name does not cover image", ContainerMatch{Name: "*"}, ContainerMatch{Image: "redis:7"}, false},
		{"less constrained", label("role"), ContainerMatch{HasLabel: true, LabelKey: "role", Name: "w"}, true},
	}
	for _, tt := range tests {
		if got := tt.a.Covers(tt.b); got != tt.want {
			t.Errorf("%s: %s.Covers(%s) = %v, want %v", tt.name, tt.a, tt.b, got, tt.want)
		}
	}
	type ctr struct {
		name, image string
		labels      map[string]string
	}
	var ctrs []ctr
	for _, name := range []string{"", "web-1", "db-1", "w"} {
		for _, image := range []string{"", "redis:7", "registry.example/team/app:1", "docker.io/redis:7"} {
			for _, labels := range []map[string]string{nil, {"role": "worker"}, {"role": "web"}, {ComposeProjectLabel: "shop", ComposeServiceLabel: "api"}, {ComposeProjectLabel: "shop", ComposeServiceLabel: "db", "role": "worker"}} {
				ctrs = append(ctrs, ctr{name, image, labels})
			}
		}
	}
	covered := 0
	for _, a := range tests {
		for _, m := range []ContainerMatch{a.a, a.b} {
			for _, o := range tests {
				for _, n := range []ContainerMatch{o.a, o.b} {
					if !m.Covers(n) {
						continue
					}
					covered++
					for _, c := range ctrs {
						if n.Matches(c.name, c.image, c.labels) && !m.Matches(c.name, c.image, c.labels) {
							t.Errorf("%s covers %s, but %+v matches only the latter", m, n, c)
						}
					}
				}
			}
		}
	}
	if covered <= 2*len(tests) {
		t.Errorf("only %d pairs covered", covered)
	}
}

// TestContainerShadowWarnings checks the warning of a container section
// that an earlier one shadows.
func TestContainerShadowWarnings(t *testing.T) {
	src := `version: 1
networks:
  - match: {name: "*"}
containers:
  - match: {compose: "shop/*"}
  - match: {compose: "shop/api", image: "registry.example/*"}
  - match: {image: "registry.example/*"}
`
	p, err := Parse("p.yaml", []byte(src), Options{ResolvConf: filepath.Join(t.TempDir(), "resolv.conf")})
	if err != nil {
		t.Fatal(err)
	}
	want := `p.yaml:6:5: container section 2 {image: "registry.example/*", compose: "shop/api"} never applies: container section 1 {compose: "shop/*"} (line 5) comes first and matches every container it matches; move container section 2 above it, or remove it`
	var got []string
	for _, w := range p.Warnings {
		if strings.Contains(w, "never applies") {
			got = append(got, w)
		}
	}
	if diff := cmp.Diff([]string{want}, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}
