package policy

import (
	"strings"
	"testing"
)

const containersPolicy = `version: 1
lists:
  proxy: [192.168.100.1]
networks:
  - match: {name: "*"}
    egress:
      - deny: "@private"
containers:
  - match: {label: "role=worker"}
    egress:
      - allow: "@proxy"
        proto: tcp
        ports: [3128]
    egress_default: deny
  - match: {compose: "shop/api", image: "registry.example/*"}
    egress:
      - deny: 192.168.100.60
        comment: payment database
  - match: {name: "web-*"}
    ingress:
      - allow: 198.51.100.0/24
        ports: [8080]
    ingress_default: deny
`

// TestContainerSections reads container sections and matches containers
// with them: first match wins, every key of a match must hold, image globs
// cross "/", compose reads Compose's labels.
func TestContainerSections(t *testing.T) {
	pol, err := Parse("p.yaml", []byte(containersPolicy), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pol.Containers) != 3 {
		t.Fatalf("%d container sections; want 3", len(pol.Containers))
	}
	w := pol.Containers[0]
	if w.Egress.Default != Deny || len(w.Egress.Rules) != 1 || w.Egress.Rules[0].Addrs.Text != "@proxy" || w.Pos.Line != 9 {
		t.Errorf("worker section = %+v", w)
	}
	if got := pol.Containers[1].Match.String(); got != `{image: "registry.example/*", compose: "shop/api"}` {
		t.Errorf("match = %s", got)
	}
	if !strings.Contains(strings.Join(pol.UsedLists(), ","), "proxy") {
		t.Errorf("UsedLists %v lack proxy", pol.UsedLists())
	}
	if web := pol.Containers[2]; !web.Ingress.Given || web.Ingress.Default != Deny || len(web.Ingress.Rules) != 1 || web.Ingress.Rules[0].Hook != Ingress || web.Ingress.Rules[0].Pos.Line != 21 {
		t.Errorf("web section's ingress = %+v", web.Ingress)
	}
	if pol.Containers[0].Ingress.Given {
		t.Errorf("worker section has ingress given; it has no ingress key")
	}
	compose := map[string]string{ComposeProjectLabel: "shop", ComposeServiceLabel: "api"}
	for _, tc := range []struct {
		name, image string
		labels      map[string]string
		want        int // section index, 0 for none
	}{
		{"w1", "busybox", map[string]string{"role": "worker"}, 1},
		{"shop-api-1", "registry.example/shop/api:2", compose, 2},
		{"shop-api-1", "other/api:2", compose, 0},
		{"shop-api-1", "registry.example/shop/api:2", map[string]string{ComposeProjectLabel: "shop"}, 0},
		{"web-1", "nginx", nil, 3},
		{"web-1", "nginx", map[string]string{"role": "worker"}, 1},
		{"", "nginx", nil, 0},
	} {
		got := 0
		if s := pol.ContainerSectionFor(tc.name, tc.image, tc.labels); s != nil {
			got = s.Index
		}
		if got != tc.want {
			t.Errorf("container %q (%s, %v): section %d; want %d", tc.name, tc.image, tc.labels, got, tc.want)
		}
	}
}

// TestContainerSectionErrors requires file:line:column errors for bad
// container sections.
func TestContainerSectionErrors(t *testing.T) {
	head := "version: 1\nnetworks:\n  - match: {name: \"*\"}\ncontainers:\n"
	for _, tc := range []struct{ body, want string }{
		{"  - egress: []\n", "p.yaml:5:5: containers[1]: missing match"},
		{"  - match: {compose: shop}\n", `p.yaml:5:22: containers[1].match.compose: expected PROJECT/SERVICE`},
		{"  - match: {}\n", "p.yaml:5:12: containers[1].match: empty; give name, image, label or compose"},
		{"  - match: {subnet: 10.0.0.0/8}\n", `p.yaml:5:13: containers[1].match: unknown key "subnet"`},
		{"  - match: {name: a}\n    host: []\n", `p.yaml:6:5: containers[1]: unknown key "host"`},
		{"  - match: {name: a}\n    egress:\n      - deny: \"@nope\"\n", `p.yaml:7:15: containers[1].egress[1].deny: unknown list "@nope"`},
		{"  - match: {label: \"=x\"}\n", "p.yaml:5:20: containers[1].match.label: expected KEY=VALUE or KEY"},
		{"  - match: {image: \"[\"}\n", "p.yaml:5:20: containers[1].match.image"},
		{"  {}\n", "p.yaml:5:3: containers: expected a list of sections"},
	} {
		_, err := Parse("p.yaml", []byte(head+tc.body), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v; want %q", tc.body, err, tc.want)
		}
	}
}
