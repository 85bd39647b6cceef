package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dockerfence/dockerfence/dnsname"
	"go.yaml.in/yaml/v3"
)

// Parse validates the policy in data; file names it in errors and anchors
// relative list file paths.
func Parse(file string, data []byte, opts Options) (*Policy, error) {
	p := &parser{file: file, opts: opts}
	pol := p.parse(data)
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool {
			a, b := p.errs[i].Pos, p.errs[j].Pos
			if a.File != b.File {
				return a.File == file
			}
			return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
		})
		if p.dropped > 0 {
			p.errs = append(p.errs, &Error{Pos: Pos{File: file}, Msg: fmt.Sprintf("%d more problems not shown; fix these first", p.dropped)})
		}
		return nil, p.errs
	}
	pol.Warnings = append(pol.Warnings, pol.shadowWarnings()...)
	return pol, nil
}

// parser is the state of one Parse: the policy file, the options and the
// problems found so far.
type parser struct {
	file string
	opts Options
	errs ErrorList
	// dropped counts the problems found beyond maxErrors.
	dropped int
}

// parse checks that data is one UTF-8 YAML document holding a mapping, and
// reads the policy from it.
func (p *parser) parse(data []byte) *Policy {
	root := p.document(data, document{
		subject:  "the policy",
		expected: "expected a mapping with version: 1 and networks (see 'dockerfence policy default')",
		one:      "a policy is one document",
	})
	if root == nil {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "expected a mapping with version: 1 and networks, found %s", kindName(root))
		return nil
	}
	lists, warning := builtinLists(p.opts)
	pol := &Policy{Source: p.file, Settings: DefaultSettings(), Lists: lists, resolvFiles: []string{p.opts.resolvConf(), p.opts.resolvedConf()}}
	if warning != "" {
		pol.Warnings = append(pol.Warnings, warning)
	}
	var versionNode, networksNode, containersNode *yaml.Node
	p.mapping(root, "top level", map[string]func(k, v *yaml.Node){
		"version":  func(_, v *yaml.Node) { versionNode = v },
		"settings": func(_, v *yaml.Node) { p.settings(v, &pol.Settings) },
		"lists":    func(_, v *yaml.Node) { p.lists(v, pol) },
		"networks": func(_, v *yaml.Node) { networksNode = v },
		// After lists, whatever the order in the file: rules name them.
		"containers": func(_, v *yaml.Node) { containersNode = v },
	})
	switch {
	case versionNode == nil:
		p.errorf(root, "missing version; add 'version: 1' at the top")
	case versionNode.Kind != yaml.ScalarNode || versionNode.Tag == "!!null":
		p.errorf(versionNode, "version: expected 1, found %s", kindName(versionNode))
	case versionNode.Value != "1":
		p.errorf(versionNode, "unsupported version %s; this dockerfence reads version: 1", quote(versionNode.Value))
	default:
		pol.Version = 1
	}
	if networksNode == nil {
		p.errorf(root, "missing networks; add at least one section, e.g. '- match: {name: \"*\"}'")
	} else {
		p.networks(networksNode, pol)
	}
	if containersNode != nil {
		p.containers(containersNode, pol)
	}
	return pol
}

// document says what a YAML text is, for the messages of parser.document.
type document struct {
	// subject names the text ("the policy"), expected says what it should
	// hold, and one that it is one YAML document.
	subject, expected, one string
}

// document checks that data is UTF-8 text holding one YAML document, and
// returns the document's root node; nil after reporting what is wrong.
func (p *parser) document(data []byte, d document) *yaml.Node {
	start := Pos{File: p.file, Line: 1, Column: 1}
	if len(bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\ufeff")))) == 0 {
		p.errAt(start, "%s is empty; %s", d.subject, d.expected)
		return nil
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		p.errAt(textPos(p.file, data, i), "%s contains a NUL byte; it must be UTF-8 text", d.subject)
		return nil
	}
	if i := invalidUTF8(data); i >= 0 {
		p.errAt(textPos(p.file, data, i), "%s contains the byte 0x%02x, which is not UTF-8; it must be UTF-8 text", d.subject, data[i])
		return nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		p.errAt(start, "%s has only comments; %s", d.subject, d.expected)
		return nil
	} else if err != nil {
		p.yamlError(err, data)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.errorf(&extra, "a second YAML document; %s", d.one)
		return nil
	case !errors.Is(err, io.EOF):
		p.yamlError(err, data)
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return root
}

// labelMatch reads a label match, "KEY=VALUE" or "KEY"; ok is false after
// reporting a problem.
func (p *parser) labelMatch(v *yaml.Node, what string) (key, val string, hasVal, ok bool) {
	s, ok := p.scalar(v, what)
	if !ok {
		return "", "", false, false
	}
	key, val, hasVal = strings.Cut(s, "=")
	if key == "" {
		p.errorf(v, "%s: expected KEY=VALUE or KEY, found %s", what, quote(s))
		return "", "", false, false
	}
	return key, val, hasVal, true
}

// tableNameRE matches the names settings.table accepts.
var tableNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,31}$`)

// settings reads the settings mapping into s, which holds the defaults.
func (p *parser) settings(n *yaml.Node, s *Settings) {
	var tunnelNode, identityNode, minTTLNode, maxTTLNode *yaml.Node
	defer func() {
		if s.DNSMinTTL > s.DNSMaxTTL {
			at := minTTLNode
			if at == nil {
				at = maxTTLNode
			}
			p.errorf(at, "settings: dns_min_ttl %s is above dns_max_ttl %s; a learned address would stay longer than the most it may", fmtDuration(s.DNSMinTTL), fmtDuration(s.DNSMaxTTL))
		}
		if s.TunnelMark != 0 && s.TunnelMark == s.IdentityMark {
			at := identityNode
			if at == nil {
				at = tunnelNode
			}
			p.errorf(at, "settings: tunnel_mark and identity_mark are the same bit 0x%08x; give them different bits", s.TunnelMark)
		}
	}()
	p.mapping(n, "settings", map[string]func(k, v *yaml.Node){
		"table": func(_, v *yaml.Node) {
			if t, ok := p.scalar(v, "settings.table"); ok {
				if !tableNameRE.MatchString(t) {
					p.errorf(v, "settings.table: %s is not a table name; use a letter then up to 31 letters, digits, '_' or '-'", quote(t))
					return
				}
				s.Table = t
			}
		},
		"priority": func(_, v *yaml.Node) {
			if pr, ok := p.integer(v, "settings.priority"); ok {
				if pr <= -200 || pr >= 0 {
					p.errorf(v, "settings.priority: %d is outside -199..-1; it must run after conntrack (-200) and before Docker's filter (0)", pr)
					return
				}
				s.Priority = pr
			}
		},
		"deny_action": func(_, v *yaml.Node) {
			if a, ok := p.oneOf(v, "settings.deny_action", "reject", "drop"); ok {
				s.DenyAction = DenyAction(a)
			}
		},
		"log_denied": func(_, v *yaml.Node) {
			if b, ok := p.boolean(v, "settings.log_denied"); ok {
				s.LogDenied = b
			}
		},
		"log_group": func(_, v *yaml.Node) {
			if g, ok := p.integer(v, "settings.log_group"); ok {
				if g < 0 || g > 65535 {
					p.errorf(v, "settings.log_group: %d is not an NFLOG group; expected 0..65535", g)
					return
				}
				s.LogGroup = uint16(g)
			}
		},
		"log_rate": func(_, v *yaml.Node) {
			if r, ok := p.integer(v, "settings.log_rate"); ok {
				if r < 1 || r > 100000 {
					p.errorf(v, "settings.log_rate: %d is out of range; expected 1..100000 denials logged a second per source address", r)
					return
				}
				s.LogRate = r
			}
		},
		"tunnel_mark": func(_, v *yaml.Node) {
			if m, ok := p.markBit(v, "settings.tunnel_mark", "0x10000000", "to leave tunnels unfenced"); ok {
				s.TunnelMark, tunnelNode = m, v
			}
		},
		"identity_mark": func(_, v *yaml.Node) {
			if m, ok := p.markBit(v, "settings.identity_mark", "0x20000000", "to judge a container's packets by their source before its bridge port is checked"); ok {
				s.IdentityMark, identityNode = m, v
			}
		},
		"dns_min_ttl": func(_, v *yaml.Node) {
			if d, ok := p.duration(v, "settings.dns_min_ttl", minDNSTTL, maxDNSTTL, "60s", "the least time a learned address stays"); ok {
				s.DNSMinTTL, minTTLNode = d, v
			}
		},
		"dns_max_ttl": func(_, v *yaml.Node) {
			if d, ok := p.duration(v, "settings.dns_max_ttl", minDNSTTL, maxDNSTTL, "24h", "the most time a learned address stays"); ok {
				s.DNSMaxTTL, maxTTLNode = d, v
			}
		},
		"dns_hold": func(_, v *yaml.Node) {
			if d, ok := p.duration(v, "settings.dns_hold", minDNSHold, maxDNSHold, "250ms", "the longest a DNS answer is held while its addresses are learned"); ok {
				s.DNSHold = d
			}
		},
		"mode": func(_, v *yaml.Node) {
			if m, ok := p.oneOf(v, "settings.mode", "enforce", "audit"); ok {
				s.Mode = Mode(m)
			}
		},
	})
}

// duration reads v, the setting what, as a duration such as example
// ("60s", "250ms", "24h") within lo..hi; about says what it is.
func (p *parser) duration(v *yaml.Node, what string, lo, hi time.Duration, example, about string) (time.Duration, bool) {
	t, ok := p.scalar(v, what)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(t)
	if err != nil || v.Tag != "!!str" {
		p.errorf(v, "%s: %s is not a duration; expected a number and a unit, such as %s (%s)", what, quote(t), example, about)
		return 0, false
	}
	if d < lo || d > hi {
		p.errorf(v, "%s: %s is out of range; expected %s to %s (%s)", what, t, fmtDuration(lo), fmtDuration(hi), about)
		return 0, false
	}
	return d, true
}

// fmtDuration renders d as a policy writes it: "1ms", "2s", "168h".
func fmtDuration(d time.Duration) string {
	s := d.String()
	for _, zero := range []string{"0s", "0m"} {
		if strings.HasSuffix(s, "m"+zero) || strings.HasSuffix(s, "h"+zero) {
			s = strings.TrimSuffix(s, zero)
		}
	}
	return s
}

// markBit reads v, the setting what, as one bit of the packet mark, or 0
// (which off says what it does); example is a valid bit.
func (p *parser) markBit(v *yaml.Node, what, example, off string) (uint32, bool) {
	t, ok := p.scalar(v, what)
	if !ok {
		return 0, false
	}
	m, err := strconv.ParseUint(t, 0, 32)
	if err != nil || v.Tag != "!!int" || m&(m-1) != 0 {
		p.errorf(v, "%s: %s is not one bit of the packet mark; expected a power of two such as %s, or 0 %s", what, quote(t), example, off)
		return 0, false
	}
	return uint32(m), true
}

// listNameRE matches the names of the lists a policy defines.
var listNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,31}$`)

// lists reads the lists mapping into pol.Lists: each list is addresses or
// {file: PATH}, a list file relative to the policy's directory.
func (p *parser) lists(n *yaml.Node, pol *Policy) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "lists: expected a mapping of list names to addresses, found %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !p.key(k, "lists") {
			continue
		}
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		name := k.Value
		what := "lists." + name
		if !listNameRE.MatchString(name) {
			p.errorf(k, "lists: %s is not a list name; use a letter then up to 31 letters, digits, '_' or '-'", quote(name))
			continue
		}
		if seen[name] {
			p.errorf(k, "lists: %s given twice", quote(name))
			continue
		}
		seen[name] = true
		l := &List{Name: name, Pos: p.pos(k)}
		switch v.Kind {
		case yaml.SequenceNode:
			for _, item := range v.Content {
				s, ok := p.scalar(item, what)
				if !ok {
					continue
				}
				if pfx, err := ParsePrefix(s); err != nil {
					if _, nerr := dnsname.ParsePattern(s); nerr == nil && strings.Contains(s, ".") {
						p.errorf(item, "%s: %s is a DNS name; a list of names is written %s: {names: [%s]}, and holds names only", what, quote(s), name, s)
						continue
					}
					p.errorf(item, "%s: %v", what, err)
				} else {
					l.Prefixes = append(l.Prefixes, pfx)
				}
			}
		case yaml.MappingNode:
			var file string
			var fileNode, namesKey *yaml.Node
			var names *NameList
			p.mapping(v, what, map[string]func(k, v *yaml.Node){
				"names": func(nk, nv *yaml.Node) {
					namesKey = nk
					// With errors reported, the list still exists: rules
					// that name it are not reported as well.
					pats, _ := p.names(nv, what+".names")
					names = &NameList{Name: name, Pos: l.Pos, Patterns: pats}
				},
				"file": func(_, fv *yaml.Node) {
					f, ok := p.scalar(fv, what+".file")
					switch {
					case !ok:
					case f == "":
						p.errorf(fv, "%s.file: empty; expected the path of a list file", what)
					case strings.IndexByte(f, 0) >= 0:
						p.errorf(fv, "%s.file: the path %s contains a NUL byte", what, quote(f))
					default:
						file, fileNode = f, fv
					}
				},
			})
			if namesKey != nil {
				if fileNode != nil {
					p.errorf(namesKey, "%s: a list holds addresses (file) or names, not both: the addresses of names are learned from DNS answers and expire, a set of their own; make two lists and name both in the rule, [\"@%s\", \"@%s_names\"]", what, name, name)
					continue
				}
				l.Names = names
				pol.Lists[name] = l
				continue
			}
			if fileNode == nil {
				if len(v.Content) == 0 {
					p.errorf(v, "%s: expected a list of addresses, {file: PATH} or {names: [NAME, ...]}", what)
				}
				continue
			}
			if !filepath.IsAbs(file) {
				file = filepath.Join(filepath.Dir(p.file), file)
			}
			prefixes, errs := ReadListFile(file, p.opts.MaxListEntries)
			for _, e := range errs {
				if e.Pos.File == "" {
					e.Pos = p.pos(fileNode)
					e.Msg = what + ".file: " + e.Msg
				}
				p.errAt(e.Pos, "%s", e.Msg)
			}
			l.Prefixes, l.File = prefixes, file
		default:
			p.errorf(v, "%s: expected a list of addresses, {file: PATH} or {names: [NAME, ...]}, found %s", what, kindName(v))
			continue
		}
		pol.Lists[name] = l
	}
}

// names reads the patterns of a list of names: a name, or a list of
// them, each a DNS name or "*." and one (dnsname.ParsePattern). A pattern
// given twice counts once. ok is false if nothing valid was read.
func (p *parser) names(n *yaml.Node, what string) ([]dnsname.Pattern, bool) {
	var items []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		items = []*yaml.Node{n}
	case yaml.SequenceNode:
		items = n.Content
		if len(items) == 0 {
			p.errorf(n, "%s: empty list; give at least one name, such as example.com or \"*.example.com\"", what)
			return nil, false
		}
	default:
		p.errorf(n, "%s: expected a list of DNS names, such as [example.com, \"*.example.com\"], found %s", what, kindName(n))
		return nil, false
	}
	var out []dnsname.Pattern
	bad := false
	for _, it := range items {
		s, ok := p.scalar(it, what)
		if !ok {
			bad = true
			continue
		}
		pat, err := dnsname.ParsePattern(s)
		if err != nil {
			p.errorf(it, "%s: %v", what, err)
			bad = true
			continue
		}
		if !slices.Contains(out, pat) {
			out = append(out, pat)
		}
	}
	return out, !bad && len(out) > 0
}

// networks reads the sections of the networks list into pol.Sections.
func (p *parser) networks(n *yaml.Node, pol *Policy) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errorf(n, "networks: expected a list of sections, each with match and rules, found %s", kindName(n))
		return
	}
	for i, sn := range n.Content {
		sec := &Section{Index: i + 1, Pos: p.pos(sn)}
		what := fmt.Sprintf("networks[%d]", i+1)
		var matchNode *yaml.Node
		keys := map[string]func(k, v *yaml.Node){
			"match": func(_, v *yaml.Node) { matchNode = v; sec.Match = p.match(v, what+".match") },
		}
		for _, h := range Hooks {
			p.hookKeys(keys, &sec.ByHook[h], what, h, pol)
		}
		p.mapping(sn, what, keys)
		if matchNode == nil && sn.Kind == yaml.MappingNode {
			p.errorf(sn, "%s: missing match; e.g. match: {name: app_default}", what)
		}
		pol.Sections = append(pol.Sections, sec)
	}
}

// hookKeys adds to keys the keys of hook h ("ingress", "ingress_default"),
// which read into hr: network and container sections read their rules so.
func (p *parser) hookKeys(keys map[string]func(k, v *yaml.Node), hr *HookRules, what string, h Hook, pol *Policy) {
	name := h.String()
	keys[name] = func(_, v *yaml.Node) { hr.Given = true; hr.Rules = p.rules(v, what+"."+name, h, pol) }
	keys[name+"_default"] = func(_, v *yaml.Node) { hr.Given = true; hr.Default = p.verdict(v, what+"."+name+"_default") }
}

// verdict reads allow or deny; a problem reads as Allow, reported.
func (p *parser) verdict(n *yaml.Node, what string) Verdict {
	if v, ok := p.oneOf(n, what, "allow", "deny"); ok && v == "deny" {
		return Deny
	}
	return Allow
}

// match reads the match mapping of a section.
func (p *parser) match(n *yaml.Node, what string) Match {
	var m Match
	p.mapping(n, what, map[string]func(k, v *yaml.Node){
		"name": func(_, v *yaml.Node) {
			if s, ok := p.scalar(v, what+".name"); ok {
				if _, err := path.Match(s, ""); err != nil || s == "" {
					p.errorf(v, "%s.name: %s is not a valid name pattern", what, quote(s))
					return
				}
				m.Name = s
			}
		},
		"bridge": func(_, v *yaml.Node) {
			if s, ok := p.scalar(v, what+".bridge"); ok {
				if _, err := path.Match(s, ""); err != nil || s == "" || s == "." || s == ".." ||
					strings.ContainsAny(s, "/: \t\n\v\f\r\x00") || len(s) > 15 && !strings.ContainsAny(s, "*?[") {
					p.errorf(v, "%s.bridge: %s is not a bridge interface name or pattern: at most 15 bytes, without '/', ':' or white space", what, quote(s))
					return
				}
				m.Bridge = s
			}
		},
		"label": func(_, v *yaml.Node) {
			if key, val, hasVal, ok := p.labelMatch(v, what+".label"); ok {
				m.HasLabel, m.LabelKey, m.LabelValue, m.LabelHasValue = true, key, val, hasVal
			}
		},
		"subnet": func(_, v *yaml.Node) {
			if s, ok := p.scalar(v, what+".subnet"); ok {
				pfx, err := netip.ParsePrefix(s)
				if err != nil {
					p.errorf(v, "%s.subnet: %s is not a CIDR prefix such as 172.20.0.0/16", what, quote(s))
					return
				}
				if pfx.Masked() != pfx {
					p.errorf(v, "%s.subnet: %s has host bits set; did you mean %s?", what, s, pfx.Masked())
					return
				}
				m.Subnet = pfx
			}
		},
	})
	if n.Kind == yaml.MappingNode && len(n.Content) == 0 {
		p.errorf(n, "%s: empty; give name, label, subnet or bridge", what)
	}
	return m
}
