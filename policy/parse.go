package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
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

// maxQuoted bounds how much of a value a message quotes.
const maxQuoted = 64

// clip cuts s to maxQuoted bytes, on a character boundary, marked with "...".
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// quote quotes a value of the policy or a list file for a message, cut to
// maxQuoted bytes (on a character boundary, marked with "...") so that a
// hostile megabyte-long value makes a short message.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	return strconv.Quote(strings.TrimSuffix(clip(s), "...")) + "..."
}

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

// Load reads and validates the policy file at path. The file must be a
// regular file: a FIFO would block the reader and a device such as
// /dev/zero would never end.
func Load(file string, opts Options) (*Policy, error) {
	f, err := openRegular(file)
	if errors.Is(err, errNotRegular) {
		return nil, fmt.Errorf("policy %s: %w; give the policy file itself", file, err)
	}
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, unwrapPathError(err))
	}
	if st.Size() > maxPolicySize {
		return nil, fmt.Errorf("policy %s: %d bytes is more than the %d a policy may have; move long address lists to list files", file, st.Size(), maxPolicySize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, unwrapPathError(err))
	}
	if len(data) > maxPolicySize {
		return nil, fmt.Errorf("policy %s: more than the %d bytes a policy may have (it grew while being read); move long address lists to list files", file, maxPolicySize)
	}
	return Parse(file, data, opts)
}

// openRegular opens file for reading if it is a regular file. It refuses
// directories, FIFOs, sockets and devices without blocking on them: the
// type is checked before opening, and again on the open file, which is
// opened non-blocking so that a FIFO swapped in between cannot hang.
func openRegular(file string) (*os.File, error) {
	st, err := os.Stat(file)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if err := checkRegular(st); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(file, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if st, err = f.Stat(); err != nil {
		f.Close()
		return nil, unwrapPathError(err)
	}
	if err := checkRegular(st); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// errNotRegular is wrapped by the errors of files that exist but are not
// regular files.
var errNotRegular = errors.New("not a regular file")

// checkRegular says what a file that is not a regular file is instead.
func checkRegular(st os.FileInfo) error {
	m := st.Mode()
	what := "an irregular file"
	switch {
	case m.IsRegular():
		return nil
	case m.IsDir():
		return fmt.Errorf("is a directory, %w", errNotRegular)
	case m&os.ModeNamedPipe != 0:
		what = "a FIFO"
	case m&os.ModeSocket != 0:
		what = "a socket"
	case m&os.ModeDevice != 0:
		what = "a device"
	}
	return fmt.Errorf("is %s, %w", what, errNotRegular)
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
		if p.dropped > 0 {
			p.errs = append(p.errs, &Error{Pos: Pos{File: file}, Msg: fmt.Sprintf("%d more problems not shown; fix these first", p.dropped)})
		}
		return nil, p.errs
	}
	return pol, nil
}

type parser struct {
	file string
	opts Options
	errs ErrorList
	// dropped counts the problems found beyond maxErrors.
	dropped int
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
	} else {
		p.dropped++
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError reports an error of the YAML decoder at the line it names.
func (p *parser) yamlError(err error) {
	msg := err.Error()
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	p.errAt(Pos{File: p.file, Line: line, Column: 1}, "invalid YAML: %s", msg)
}

// textPos returns the position of byte offset off in data.
func textPos(file string, data []byte, off int) Pos {
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	start := bytes.LastIndexByte(data[:off], '\n') + 1
	return Pos{File: file, Line: line, Column: 1 + utf8.RuneCount(data[start:off])}
}

// invalidUTF8 returns the offset of the first byte of data that is not
// part of valid UTF-8, or -1.
func invalidUTF8(data []byte) int {
	for off := 0; off < len(data); {
		r, n := utf8.DecodeRune(data[off:])
		if r == utf8.RuneError && n == 1 {
			return off
		}
		off += n
	}
	return -1
}

func (p *parser) parse(data []byte) *Policy {
	if len(bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\ufeff")))) == 0 {
		p.errAt(Pos{File: p.file, Line: 1, Column: 1}, "the policy is empty; expected a mapping with version: 1 and networks (see 'dockerfence policy default')")
		return nil
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		p.errAt(textPos(p.file, data, i), "the policy contains a NUL byte; it must be UTF-8 text")
		return nil
	}
	if i := invalidUTF8(data); i >= 0 {
		p.errAt(textPos(p.file, data, i), "the policy contains the byte 0x%02x, which is not UTF-8; it must be UTF-8 text", data[i])
		return nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		p.errAt(Pos{File: p.file, Line: 1, Column: 1}, "the policy has only comments; expected a mapping with version: 1 and networks (see 'dockerfence policy default')")
		return nil
	} else if err != nil {
		p.yamlError(err)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		p.errorf(&extra, "a second YAML document; a policy is one document")
		return nil
	case !errors.Is(err, io.EOF):
		p.yamlError(err)
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
		return quote(n.Value)
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
		if !p.key(k, what) {
			continue
		}
		h, ok := handlers[k.Value]
		if !ok {
			p.errorf(k, "%s: unknown key %s; expected one of %s", what, quote(k.Value), keyList(handlers))
			continue
		}
		if seen[k.Value] {
			p.errorf(k, "%s: %s given twice", what, quote(k.Value))
			continue
		}
		seen[k.Value] = true
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		h(k, v)
	}
}

// key reports whether k is a plain scalar key, and reports it if not: a
// list, a mapping or an alias as a key is never a name.
func (p *parser) key(k *yaml.Node, what string) bool {
	if k.Kind == yaml.ScalarNode && k.Tag != "!!null" {
		return true
	}
	p.errorf(k, "%s: expected a name as key, found %s", what, kindName(k))
	return false
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
		p.errorf(n, "%s: expected an integer, found %s", what, quote(s))
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
	p.errorf(n, "%s: expected true or false, found %s", what, quote(s))
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
	p.errorf(n, "%s: expected %s, found %s", what, strings.Join(choices, " or "), quote(s))
	return "", false
}

var tableNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,31}$`)

func (p *parser) settings(n *yaml.Node, s *Settings) {
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
			if s, ok := p.scalar(v, what+".label"); ok {
				key, val, hasVal := strings.Cut(s, "=")
				if key == "" {
					p.errorf(v, "%s.label: expected KEY=VALUE or KEY, found %s", what, quote(s))
					return
				}
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

// maxComment bounds a rule's comment in bytes: nft keeps at most 128 bytes
// of a rule's comment, and dockerfence puts the rule's ID (such as
// "egress 12 allow: ") in front of it.
const maxComment = 100

// validComment reports whether s is 1 to maxComment bytes of UTF-8 letters,
// digits, punctuation, symbols and spaces, without double quotes (nft quotes
// comments with them). A regexp of the Unicode classes would cost every run
// of the binary some milliseconds to compile.
func validComment(s string) bool {
	if len(s) == 0 || len(s) > maxComment || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '"' || r != ' ' && !unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S) {
			return false
		}
	}
	return true
}

// commentFlaw names what makes a comment of the right length invalid.
func commentFlaw(s string) string {
	for i, r := range s {
		_, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return " with a byte that is not UTF-8"
		case r == '"':
			return " with a double quote"
		case r != ' ' && !unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S):
			return fmt.Sprintf(" with the unprintable character %U", r)
		}
	}
	return ""
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
						p.errorf(v, "%s.comment: expected 1 to %d bytes of printable text without double quotes, found %d bytes%s; nft keeps 128 bytes of a rule's comment, the rule's ID included", rw, maxComment, len(s), commentFlaw(s))
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
				p.errorf(it, "%s: unknown list %s; define it under lists: or use @private, @metadata or @resolvers", what, quote(s))
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
	first, err := parsePort(lo, s)
	if err != nil {
		return PortRange{}, err
	}
	last := first
	if isRange {
		if last, err = parsePort(hi, s); err != nil {
			return PortRange{}, err
		}
		if last < first {
			return PortRange{}, fmt.Errorf("port range %s runs backwards; write it low-high", quote(s))
		}
	}
	return PortRange{First: first, Last: last}, nil
}

// parsePort parses one port of whole, which messages quote.
func parsePort(s, whole string) (uint16, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%s is not a port; expected a number 1..65535 or a range \"lo-hi\"", quote(whole))
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 || v > 65535 { // only digits: an error means too large
		return 0, fmt.Errorf("port %s is out of range; expected 1..65535", clip(s))
	}
	return uint16(v), nil
}

// ParsePrefix parses an IP address (as a host prefix) or a CIDR prefix.
// Zones, host bits and anything else are errors that say what was expected.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("%s has an IPv6 zone; zones have no meaning in a firewall, drop the %%…", quote(s))
	}
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%s is not an address or CIDR prefix (e.g. 192.168.0.0/16, 2001:db8::/32)", quote(s))
		}
		if pfx.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("%s is an IPv4-mapped IPv6 prefix; write the IPv4 prefix instead", quote(s))
		}
		if pfx.Masked() != pfx {
			return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s?", s, pfx.Masked())
		}
		return pfx, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s is not an address or CIDR prefix (e.g. 192.168.0.0/16, 2001:db8::/32)", quote(s))
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
