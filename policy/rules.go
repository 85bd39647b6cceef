package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dockerfence/dockerfence/dnsname"
	"go.yaml.in/yaml/v3"
)

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

// rules reads the rules of one hook of a section. A rule is allow: or deny:
// with addresses, and optionally proto, ports and comment.
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
		switch {
		case len(r.Addrs.Names) > 0 && hook != Egress:
			p.errorf(addrNode, "%s.%s: names (%s) are not for %s rules; names are learned from the DNS answers containers get and match the destinations of egress rules only: %s", rw, r.Verdict, r.Addrs.Names[0].Text(), hook, namesElsewhere[hook])
		case len(r.Addrs.Names) > 0 && r.Verdict == Deny:
			p.errorf(addrNode, "%s.deny: names (%s) can only be allowed: a deny by name would deny only the addresses learned from the answers containers got so far, not one hard-coded or resolved another way (DNS over HTTPS); deny the addresses or a CIDR, or allow only the names a container may use and deny the rest (egress_default: deny)", rw, r.Addrs.Names[0].Text())
		}
		if portsNode != nil && !r.Proto.HasPorts() {
			p.errorf(portsNode, "%s.ports: protocol %s has no ports; use tcp, udp or sctp, or drop ports", rw, r.Proto)
		}
		if r.Proto == ProtoICMP || r.Proto == ProtoICMPv6 {
			if !r.Addrs.Any && !r.Addrs.Self && len(r.Addrs.Lists) == 0 && len(r.Addrs.Names) == 0 && len(r.Addrs.Prefixes) > 0 {
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

// namesElsewhere says, for the hooks other than egress, why their rules
// have no names.
var namesElsewhere = map[Hook]string{
	Host:    "a host rule's addresses are the host's own, which no DNS answer to a container gives",
	Ingress: "an ingress rule's addresses are the sources of connections into containers, which no DNS answer to them tells",
}

// familyName names the IPv4 or IPv6 address family.
func familyName(v4 bool) string {
	if v4 {
		return "IPv4"
	}
	return "IPv6"
}

// addrSpec reads what a rule allows or denies: an address, a CIDR, @list,
// self or any, or a list of them.
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
	case yaml.MappingNode:
		items = []*yaml.Node{n}
	default:
		p.errorf(n, "%s: expected an address, a CIDR, a list of them, @list, {names: [...]}, self or any, found %s", what, kindName(n))
		return a
	}
	var text []string
	addNames := func(nl *NameList) {
		for _, have := range a.Names {
			if have.Name == nl.Name {
				return
			}
		}
		a.Names = append(a.Names, nl)
	}
	for _, it := range items {
		if it.Kind == yaml.AliasNode {
			it = it.Alias
		}
		if it.Kind == yaml.MappingNode {
			if nl := p.inlineNames(it, what); nl != nil {
				addNames(nl)
				text = append(text, nl.Text())
			}
			continue
		}
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
			l, ok := pol.Lists[name]
			if !ok {
				p.errorf(it, "%s: unknown list %s; define it under lists: or use @private, @metadata or @resolvers", what, quote(s))
				continue
			}
			if l.Names != nil {
				addNames(l.Names)
				continue
			}
			a.Lists = append(a.Lists, name)
		default:
			pfx, err := ParsePrefix(s)
			if err != nil {
				if _, nerr := dnsname.ParsePattern(s); nerr == nil && strings.Contains(s, ".") {
					p.errorf(it, "%s: %s is a DNS name; names are written {names: [%s]}, or kept in a list of names named as @LIST", what, quote(s), s)
					continue
				}
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

// inlineNames reads an inline list of names, {names: [...]}, as an
// address spec or an item of one; nil after reporting a problem.
func (p *parser) inlineNames(n *yaml.Node, what string) *NameList {
	hasNames := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		hasNames = hasNames || n.Content[i].Value == "names"
	}
	if !hasNames {
		p.errorf(n, "%s: expected an address, a CIDR, a list of them, @list, {names: [...]}, self or any, found a mapping without names", what)
		return nil
	}
	var pats []dnsname.Pattern
	ok := false
	p.mapping(n, what, map[string]func(k, v *yaml.Node){
		"names": func(_, v *yaml.Node) { pats, ok = p.names(v, what+".names") },
	})
	if !ok {
		return nil
	}
	return &NameList{Name: inlineName(pats), Inline: true, Pos: p.pos(n), Patterns: pats}
}

// ports reads a port, a "lo-hi" range, or a list of them.
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
