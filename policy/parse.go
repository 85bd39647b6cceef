package policy

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Error is a problem at a position of a policy or list file.
type Error struct {
	Pos Pos
	Msg string
}

// Error formats the error as file:line:column: message.
func (e *Error) Error() string {
	if e.Pos.Line == 0 {
		return e.Pos.File + ": " + e.Msg
	}
	return e.Pos.String() + ": " + e.Msg
}

// ErrorList is every problem found in one policy, in file order.
type ErrorList []*Error

// Error joins the errors one a line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// maxErrors bounds how many problems one load reports.
const maxErrors = 20

// Options tunes loading.
type Options struct {
	// ResolvConf is the file @resolvers comes from; empty means /etc/resolv.conf.
	ResolvConf string
	// MaxListEntries bounds the entries of one list file; 0 means 1,000,000.
	MaxListEntries int
}

func (o Options) resolvConf() string {
	if o.ResolvConf == "" {
		return "/etc/resolv.conf"
	}
	return o.ResolvConf
}

// maxPolicySize bounds the policy file itself.
const maxPolicySize = 4 << 20

// Load reads and validates the policy file at path.
func Load(file string, opts Options) (*Policy, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, unwrapPathError(err))
	}
	if st.IsDir() {
		return nil, fmt.Errorf("policy %s: is a directory; give the policy file itself", file)
	}
	if st.Size() > maxPolicySize {
		return nil, fmt.Errorf("policy %s: %d bytes is more than the %d a policy may have; move long address lists to list files", file, st.Size(), maxPolicySize)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, unwrapPathError(err))
	}
	return Parse(file, data, opts)
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

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
		return nil, p.errs
	}
	return pol, nil
}

type parser struct {
	file string
	opts Options
	errs ErrorList
}

func (p *parser) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: p.file}
	}
	return Pos{File: p.file, Line: n.Line, Column: n.Column}
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errAt(p.pos(n), format, args...)
}

func (p *parser) errAt(pos Pos, format string, args ...any) {
	if len(p.errs) < maxErrors {
		p.errs = append(p.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) parse(data []byte) *Policy {
	if len(bytes.TrimSpace(data)) == 0 {
		p.errAt(Pos{File: p.file, Line: 1, Column: 1}, "the policy is empty; expected a mapping with version: 1 and networks (see 'dockerfence policy default')")
		return nil
	}
	if bytes.IndexByte(data, 0) >= 0 {
		p.errAt(Pos{File: p.file, Line: 1 + bytes.Count(data[:bytes.IndexByte(data, 0)], []byte("\n")), Column: 1}, "the policy contains a NUL byte; it must be UTF-8 text")
		return nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		msg := err.Error()
		line := 1
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		} else {
			msg = strings.TrimPrefix(msg, "yaml: ")
		}
		p.errAt(Pos{File: p.file, Line: line, Column: 1}, "invalid YAML: %s", msg)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(&extra, "a second YAML document; a policy is one document")
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "expected a mapping with version: 1 and networks, found %s", kindName(root))
		return nil
	}
	lists, warning := builtinLists(p.opts.resolvConf())
	pol := &Policy{Source: p.file, Settings: DefaultSettings(), Lists: lists}
	if warning != "" {
		pol.Warnings = append(pol.Warnings, warning)
	}
	var versionNode, networksNode *yaml.Node
	p.mapping(root, "top level", map[string]func(k, v *yaml.Node){
		"version":  func(_, v *yaml.Node) { versionNode = v },
		"settings": func(_, v *yaml.Node) { p.settings(v, &pol.Settings) },
		"lists":    func(_, v *yaml.Node) { p.lists(v, pol) },
		"networks": func(_, v *yaml.Node) { networksNode = v },
	})
	switch {
	case versionNode == nil:
		p.errorf(root, "missing version; add 'version: 1' at the top")
	case versionNode.Kind != yaml.ScalarNode || versionNode.Value != "1":
		p.errorf(versionNode, "unsupported version %q; this dockerfence reads version: 1", versionNode.Value)
	default:
		pol.Version = 1
	}
	if networksNode == nil {
		p.errorf(root, "missing networks; add at least one section, e.g. '- match: {name: \"*\"}'")
	} else {
		p.networks(networksNode, pol)
	}
	return pol
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// mapping walks a mapping node, calling the handler of each known key and
// reporting unknown and repeated keys.
func (p *parser) mapping(n *yaml.Node, what string, handlers map[string]func(k, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: expected a mapping, found %s", what, kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		h, ok := handlers[k.Value]
		if !ok {
			p.errorf(k, "%s: unknown key %q; expected one of %s", what, k.Value, keyList(handlers))
			continue
		}
		if seen[k.Value] {
			p.errorf(k, "%s: %q given twice", what, k.Value)
			continue
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		h(k, v)
	}
}

func keyList(h map[string]func(k, v *yaml.Node)) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func (p *parser) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s: expected a value, found %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) integer(n *yaml.Node, what string) (int, bool) {
	s, ok := p.scalar(n, what)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || n.Tag != "!!int" {
		p.errorf(n, "%s: expected an integer, found %q", what, s)
		return 0, false
	}
	return v, true
}

func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	s, ok := p.scalar(n, what)
	if !ok {
		return false, false
	}
	switch s {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	p.errorf(n, "%s: expected true or false, found %q", what, s)
	return false, false
}

func (p *parser) oneOf(n *yaml.Node, what string, choices ...string) (string, bool) {
	s, ok := p.scalar(n, what)
	if !ok {
		return "", false
	}
	for _, c := range choices {
		if s == c {
			return s, true
		}
	}
	p.errorf(n, "%s: expected %s, found %q", what, strings.Join(choices, " or "), s)
	return "", false
}

var tableNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,31}$`)

func (p *parser) settings(n *yaml.Node, s *Settings) {
	p.mapping(n, "settings", map[string]func(k, v *yaml.Node){
		"table": func(_, v *yaml.Node) {
			if t, ok := p.scalar(v, "settings.table"); ok {
				if !tableNameRE.MatchString(t) {
					p.errorf(v, "settings.table: %q is not a table name; use a letter then up to 31 letters, digits, '_' or '-'", t)
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
					p.errorf(v, "settings.log_rate: %d is out of range; expected 1..100000 denials logged a second per rule", r)
					return
				}
				s.LogRate = r
			}
		},
		"mode": func(_, v *yaml.Node) {
			if m, ok := p.oneOf(v, "settings.mode", "enforce", "audit"); ok {
				s.Mode = Mode(m)
			}
		},
	})
}

var listNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,31}$`)

func (p *parser) lists(n *yaml.Node, pol *Policy) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "lists: expected a mapping of list names to addresses, found %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		what := "lists." + name
		if !listNameRE.MatchString(name) {
			p.errorf(k, "lists: %q is not a list name; use a letter then up to 31 letters, digits, '_' or '-'", name)
			continue
		}
		if seen[name] {
			p.errorf(k, "lists: %q given twice", name)
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
					p.errorf(item, "%s: %v", what, err)
				} else {
					l.Prefixes = append(l.Prefixes, pfx)
				}
			}
		case yaml.MappingNode:
			var file string
			var fileNode *yaml.Node
			p.mapping(v, what, map[string]func(k, v *yaml.Node){
				"file": func(_, fv *yaml.Node) {
					if f, ok := p.scalar(fv, what+".file"); ok {
						file, fileNode = f, fv
					}
				},
			})
			if fileNode == nil {
				if len(v.Content) == 0 {
					p.errorf(v, "%s: expected a list of addresses or {file: PATH}", what)
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
			l.Prefixes = prefixes
		default:
			p.errorf(v, "%s: expected a list of addresses or {file: PATH}, found %s", what, kindName(v))
			continue
		}
		pol.Lists[name] = l
	}
}

func (p *parser) networks(n *yaml.Node, pol *Policy) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errorf(n, "networks: expected a list of sections, each with match and rules, found %s", kindName(n))
		return
	}
	for i, sn := range n.Content {
		sec := &Section{Index: i + 1, Pos: p.pos(sn)}
		what := fmt.Sprintf("networks[%d]", i+1)
		var matchNode *yaml.Node
		p.mapping(sn, what, map[string]func(k, v *yaml.Node){
			"match":          func(_, v *yaml.Node) { matchNode = v; sec.Match = p.match(v, what+".match") },
			"egress":         func(_, v *yaml.Node) { sec.Egress = p.rules(v, what+".egress", Egress, pol) },
			"egress_default": func(_, v *yaml.Node) { sec.EgressDefault = p.verdict(v, what+".egress_default") },
			"host":           func(_, v *yaml.Node) { sec.Host = p.rules(v, what+".host", Host, pol) },
			"host_default":   func(_, v *yaml.Node) { sec.HostDefault = p.verdict(v, what+".host_default") },
		})
		if matchNode == nil && sn.Kind == yaml.MappingNode {
			p.errorf(sn, "%s: missing match; e.g. match: {name: app_default}", what)
		}
		pol.Sections = append(pol.Sections, sec)
	}
}

func (p *parser) verdict(n *yaml.Node, what string) Verdict {
	if v, ok := p.oneOf(n, what, "allow", "deny"); ok && v == "deny" {
		return Deny
	}
	return Allow
}

func (p *parser) match(n *yaml.Node, what string) Match {
	var m Match
	p.mapping(n, what, map[string]func(k, v *yaml.Node){
		"name": func(_, v *yaml.Node) {
			if s, ok := p.scalar(v, what+".name"); ok {
				if _, err := path.Match(s, ""); err != nil || s == "" {
					p.errorf(v, "%s.name: %q is not a valid name pattern", what, s)
					return
				}
				m.Name = s
			}
		},
		"bridge": func(_, v *yaml.Node) {
			if s, ok := p.scalar(v, what+".bridge"); ok {
				if _, err := path.Match(s, ""); err != nil || s == "" || len(s) > 15 && !strings.ContainsAny(s, "*?[") {
					p.errorf(v, "%s.bridge: %q is not a bridge interface name or pattern (at most 15 characters)", what, s)
					return
				}
				m.Bridge = s
			}
		},
		"label": func(_, v *yaml.Node) {
			if s, ok := p.scalar(v, what+".label"); ok {
				key, val, hasVal := strings.Cut(s, "=")
				if key == "" {
					p.errorf(v, "%s.label: expected KEY=VALUE or KEY, found %q", what, s)
					return
				}
				m.HasLabel, m.LabelKey, m.LabelValue, m.LabelHasValue = true, key, val, hasVal
			}
		},
		"subnet": func(_, v *yaml.Node) {
			if s, ok := p.scalar(v, what+".subnet"); ok {
				pfx, err := netip.ParsePrefix(s)
				if err != nil {
					p.errorf(v, "%s.subnet: %q is not a CIDR prefix such as 172.20.0.0/16", what, s)
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

// validComment reports whether s is 1 to 100 letters, digits, punctuation,
// symbols and spaces, without double quotes (nft quotes comments with them).
// A regexp of the Unicode classes would cost every run of the binary some
// milliseconds to compile.
func validComment(s string) bool {
	n := 0
	for _, r := range s {
		n++
		if r == '"' || n > 100 || r != ' ' && !unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S) {
			return false
		}
	}
	return n > 0 && utf8.ValidString(s)
}

func (p *parser) rules(n *yaml.Node, what string, hook Hook, pol *Policy) []*Rule {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s: expected a list of rules, found %s", what, kindName(n))
		return nil
	}
	var out []*Rule
	for i, rn := range n.Content {
		r := &Rule{Index: i + 1, Hook: hook, Pos: p.pos(rn), Proto: ProtoAny}
		rw := fmt.Sprintf("%s[%d]", what, i+1)
		var addrNode, portsNode, protoNode *yaml.Node
		set := 0
		p.mapping(rn, rw, map[string]func(k, v *yaml.Node){
			"allow": func(_, v *yaml.Node) { set++; r.Verdict = Allow; addrNode = v },
			"deny":  func(_, v *yaml.Node) { set++; r.Verdict = Deny; addrNode = v },
			"proto": func(_, v *yaml.Node) {
				protoNode = v
				if s, ok := p.oneOf(v, rw+".proto", "tcp", "udp", "sctp", "icmp", "icmpv6", "any"); ok {
					r.Proto = Proto(s)
				}
			},
			"ports": func(_, v *yaml.Node) { portsNode = v; r.Ports = p.ports(v, rw+".ports") },
			"comment": func(_, v *yaml.Node) {
				if s, ok := p.scalar(v, rw+".comment"); ok {
					if !validComment(s) {
						p.errorf(v, "%s.comment: expected 1 to 100 printable characters without double quotes", rw)
						return
					}
					r.Comment = s
				}
			},
		})
		if rn.Kind != yaml.MappingNode {
			continue
		}
		switch {
		case set == 0:
			p.errorf(rn, "%s: a rule needs allow: or deny: with an address, a CIDR, a list of them, @list, self or any", rw)
			continue
		case set > 1:
			p.errorf(rn, "%s: a rule has exactly one of allow: and deny:", rw)
			continue
		}
		r.Addrs = p.addrSpec(addrNode, rw+"."+r.Verdict.String(), pol)
		if portsNode != nil && !r.Proto.HasPorts() {
			p.errorf(portsNode, "%s.ports: protocol %s has no ports; use tcp, udp or sctp, or drop ports", rw, r.Proto)
		}
		if r.Proto == ProtoICMP || r.Proto == ProtoICMPv6 {
			if !r.Addrs.Any && !r.Addrs.Self && len(r.Addrs.Lists) == 0 && len(r.Addrs.Prefixes) > 0 {
				want4 := r.Proto == ProtoICMP
				fits := false
				for _, pfx := range r.Addrs.Prefixes {
					fits = fits || pfx.Addr().Is4() == want4
				}
				if !fits {
					p.errorf(protoNode, "%s.proto: %s never reaches the %s addresses of this rule; use %s", rw, r.Proto, familyName(!want4), map[bool]string{true: "icmpv6", false: "icmp"}[want4])
				}
			}
		}
		out = append(out, r)
	}
	return out
}

func familyName(v4 bool) string {
	if v4 {
		return "IPv4"
	}
	return "IPv6"
}

func (p *parser) addrSpec(n *yaml.Node, what string, pol *Policy) AddrSpec {
	var a AddrSpec
	var items []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		items = []*yaml.Node{n}
	case yaml.SequenceNode:
		items = n.Content
		if len(items) == 0 {
			p.errorf(n, "%s: empty list; give at least one address", what)
		}
	default:
		p.errorf(n, "%s: expected an address, a CIDR, a list of them, @list, self or any, found %s", what, kindName(n))
		return a
	}
	var text []string
	for _, it := range items {
		s, ok := p.scalar(it, what)
		if !ok {
			continue
		}
		text = append(text, s)
		switch {
		case s == "any":
			if len(items) > 1 {
				p.errorf(it, "%s: any stands alone; it already covers every address", what)
			}
			a.Any = true
		case s == "self":
			a.Self = true
		case strings.HasPrefix(s, "@"):
			name := s[1:]
			if _, ok := pol.Lists[name]; !ok {
				p.errorf(it, "%s: unknown list %q; define it under lists: or use @private, @metadata or @resolvers", what, s)
				continue
			}
			a.Lists = append(a.Lists, name)
		default:
			pfx, err := ParsePrefix(s)
			if err != nil {
				p.errorf(it, "%s: %v", what, err)
				continue
			}
			a.Prefixes = append(a.Prefixes, pfx)
		}
	}
	a.Text = strings.Join(text, ", ")
	if len(text) > 1 {
		a.Text = "[" + a.Text + "]"
	}
	return a
}

func (p *parser) ports(n *yaml.Node, what string) []PortRange {
	var items []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		items = []*yaml.Node{n}
	case yaml.SequenceNode:
		items = n.Content
		if len(items) == 0 {
			p.errorf(n, "%s: empty list; give ports such as [53] or [\"8000-8080\"]", what)
		}
	default:
		p.errorf(n, "%s: expected a list of ports and \"lo-hi\" ranges, found %s", what, kindName(n))
		return nil
	}
	var out []PortRange
	for _, it := range items {
		s, ok := p.scalar(it, what)
		if !ok {
			continue
		}
		r, err := ParsePortRange(s)
		if err != nil {
			p.errorf(it, "%s: %v", what, err)
			continue
		}
		out = append(out, r)
	}
	return out
}

// ParsePortRange parses "53" or "8000-8080".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	first, err := parsePort(lo)
	if err != nil {
		return PortRange{}, err
	}
	last := first
	if isRange {
		if last, err = parsePort(hi); err != nil {
			return PortRange{}, err
		}
		if last < first {
			return PortRange{}, fmt.Errorf("port range %q runs backwards; write it low-high", s)
		}
	}
	return PortRange{First: first, Last: last}, nil
}

func parsePort(s string) (uint16, error) {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a port; expected a number 1..65535 or a range \"lo-hi\"", s)
	}
	if v < 1 || v > 65535 {
		return 0, fmt.Errorf("port %d is out of range; expected 1..65535", v)
	}
	return uint16(v), nil
}

// ParsePrefix parses an IP address (as a host prefix) or a CIDR prefix.
// Zones, host bits and anything else are errors that say what was expected.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("%q has an IPv6 zone; zones have no meaning in a firewall, drop the %%…", s)
	}
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix (e.g. 192.168.0.0/16, 2001:db8::/32)", s)
		}
		if pfx.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix; write the IPv4 prefix instead", s)
		}
		if pfx.Masked() != pfx {
			return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s?", s, pfx.Masked())
		}
		return pfx, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix (e.g. 192.168.0.0/16, 2001:db8::/32)", s)
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
