package policy

import (
	"fmt"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Compose's labels, which name the project and the service that made a
// container.
const (
	ComposeProjectLabel = "com.docker.compose.project"
	ComposeServiceLabel = "com.docker.compose.service"
)

// EgressLabel is the container label that carries the container's own
// egress rules: a YAML list of rules in the form of a section's egress.
const EgressLabel = "dockerfence.egress"

// IngressLabel is the container label that DESIGN.md reserves for a
// container's own ingress rules. It is not read yet: a container that
// carries it is warned of, its rules not enforced.
const IngressLabel = "dockerfence.ingress"

// ContainerSection is one entry of containers: a match and the rules of the
// containers it matches, judged after their network's section (a layer of
// its own: it can narrow what the network allows, never open it).
type ContainerSection struct {
	// Index is the 1-based position of the section in containers.
	Index int
	Pos   Pos
	Match ContainerMatch
	// Egress holds the rules and the default of traffic the containers
	// send; the default is allow when the section does not say.
	Egress HookRules
	// Ingress holds the rules and the default of connections from outside
	// into the containers; Ingress.Given is set when the section has
	// ingress or ingress_default, else it adds nothing.
	Ingress HookRules
}

// Hook returns the section's rules and default of hook h (Egress or
// Ingress; nothing for the others, which container sections do not have).
func (s *ContainerSection) Hook(h Hook) HookRules {
	switch h {
	case Egress:
		return s.Egress
	case Ingress:
		return s.Ingress
	}
	return HookRules{}
}

// ContainerIngress reports whether a container section has ingress keys.
func (p *Policy) ContainerIngress() bool {
	for _, s := range p.Containers {
		if s.Ingress.Given {
			return true
		}
	}
	return false
}

// ContainerMatch selects containers. Every field that is set must hold.
type ContainerMatch struct {
	// Name is a glob on the container's name (without Docker's leading
	// slash).
	Name string
	// Image is a glob on the image reference as docker inspect reports it
	// (Config.Image: "redis:7", "registry.example/team/app:1.2"); "*"
	// matches "/" too.
	Image         string
	LabelKey      string
	LabelValue    string
	HasLabel      bool
	LabelHasValue bool
	// ComposeProject and ComposeService are globs on the Compose project
	// and service labels; HasCompose is set when the match has compose.
	ComposeProject, ComposeService string
	HasCompose                     bool
}

// String renders the match as in the policy file.
func (m ContainerMatch) String() string {
	var parts []string
	if m.Name != "" {
		parts = append(parts, fmt.Sprintf("name: %q", m.Name))
	}
	if m.Image != "" {
		parts = append(parts, fmt.Sprintf("image: %q", m.Image))
	}
	if m.HasLabel {
		l := m.LabelKey
		if m.LabelHasValue {
			l += "=" + m.LabelValue
		}
		parts = append(parts, fmt.Sprintf("label: %q", l))
	}
	if m.HasCompose {
		parts = append(parts, fmt.Sprintf("compose: %q", m.ComposeProject+"/"+m.ComposeService))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Matches reports whether a container of that name, image and labels fits
// the match.
func (m ContainerMatch) Matches(name, image string, labels map[string]string) bool {
	if m.Name != "" {
		if ok, _ := path.Match(m.Name, name); !ok || name == "" {
			return false
		}
	}
	if m.Image != "" && !globAcrossSlashes(m.Image, image) {
		return false
	}
	if m.HasLabel {
		v, ok := labels[m.LabelKey]
		if !ok || m.LabelHasValue && v != m.LabelValue {
			return false
		}
	}
	if m.HasCompose {
		p, okP := labels[ComposeProjectLabel]
		s, okS := labels[ComposeServiceLabel]
		if !okP || !okS {
			return false
		}
		if ok, _ := path.Match(m.ComposeProject, p); !ok {
			return false
		}
		if ok, _ := path.Match(m.ComposeService, s); !ok {
			return false
		}
	}
	return true
}

// globAcrossSlashes is path.Match with "/" an ordinary character, so that
// "*" in an image pattern also matches a registry or a namespace.
func globAcrossSlashes(pattern, s string) bool {
	const sep = "\x00"
	ok, _ := path.Match(strings.ReplaceAll(pattern, "/", sep), strings.ReplaceAll(s, "/", sep))
	return ok
}

// ContainerSectionFor returns the first container section whose match fits
// the container, or nil.
func (p *Policy) ContainerSectionFor(name, image string, labels map[string]string) *ContainerSection {
	for _, s := range p.Containers {
		if s.Match.Matches(name, image, labels) {
			return s
		}
	}
	return nil
}

// containers reads the containers list.
func (p *parser) containers(n *yaml.Node, pol *Policy) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errorf(n, "containers: expected a list of sections, each with match and rules, found %s", kindName(n))
		return
	}
	for i, sn := range n.Content {
		sec := &ContainerSection{Index: i + 1, Pos: p.pos(sn)}
		what := fmt.Sprintf("containers[%d]", i+1)
		var matchNode *yaml.Node
		keys := map[string]func(k, v *yaml.Node){
			"match": func(_, v *yaml.Node) { matchNode = v; sec.Match = p.containerMatch(v, what+".match") },
		}
		p.hookKeys(keys, &sec.Egress, what, Egress, pol)
		p.hookKeys(keys, &sec.Ingress, what, Ingress, pol)
		p.mapping(sn, what, keys)
		if matchNode == nil && sn.Kind == yaml.MappingNode {
			p.errorf(sn, "%s: missing match; e.g. match: {compose: \"shop/api\"} or {label: \"role=worker\"}", what)
		}
		pol.Containers = append(pol.Containers, sec)
	}
}

// containerMatch reads the match mapping of a container section.
func (p *parser) containerMatch(n *yaml.Node, what string) ContainerMatch {
	var m ContainerMatch
	glob := func(v *yaml.Node, key string) (string, bool) {
		s, ok := p.scalar(v, what+"."+key)
		if !ok {
			return "", false
		}
		if _, err := path.Match(s, ""); err != nil || s == "" {
			p.errorf(v, "%s.%s: %s is not a valid %s pattern", what, key, quote(s), key)
			return "", false
		}
		return s, true
	}
	p.mapping(n, what, map[string]func(k, v *yaml.Node){
		"name": func(_, v *yaml.Node) {
			if s, ok := glob(v, "name"); ok {
				m.Name = strings.TrimPrefix(s, "/")
			}
		},
		"image": func(_, v *yaml.Node) {
			if s, ok := glob(v, "image"); ok {
				m.Image = s
			}
		},
		"label": func(_, v *yaml.Node) {
			if key, val, hasVal, ok := p.labelMatch(v, what+".label"); ok {
				m.HasLabel, m.LabelKey, m.LabelValue, m.LabelHasValue = true, key, val, hasVal
			}
		},
		"compose": func(_, v *yaml.Node) {
			s, ok := glob(v, "compose")
			if !ok {
				return
			}
			project, service, found := strings.Cut(s, "/")
			if !found || project == "" || service == "" || strings.Contains(service, "/") {
				p.errorf(v, "%s.compose: expected PROJECT/SERVICE (the labels %s and %s; \"shop/*\" for every service of shop), found %s", what, ComposeProjectLabel, ComposeServiceLabel, quote(s))
				return
			}
			m.HasCompose, m.ComposeProject, m.ComposeService = true, project, service
		},
	})
	if n.Kind == yaml.MappingNode && len(n.Content) == 0 {
		p.errorf(n, "%s: empty; give name, image, label or compose", what)
	}
	return m
}
