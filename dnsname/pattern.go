// Package dnsname matches DNS names against the name patterns of a policy
// and learns, from the DNS answers that containers get, which addresses
// those names have.
//
// The package is pure: it parses name patterns, DNS messages (with
// github.com/miekg/dns) and the IP packets that carry them, and does no
// I/O. Nothing in it panics on hostile input: a malformed packet or
// message is an error.
package dnsname

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Limits of a DNS name in presentation form, without the trailing dot
// (RFC 1035 2.3.4: 63 bytes a label, 255 bytes on the wire, which is 253
// characters written out).
const (
	MaxLabel = 63
	MaxName  = 253
)

// Pattern is a validated name pattern in canonical form: a name such as
// "example.com" (that name only), or "*.example.com" (every name strictly
// below example.com, not example.com itself). It is lower case and has no
// trailing dot.
type Pattern string

// Wildcard reports whether the pattern is "*." and a name.
func (p Pattern) Wildcard() bool { return strings.HasPrefix(string(p), "*.") }

// Base returns the name of the pattern: the pattern itself, or for
// "*.example.com" the name "example.com" that the matches are below.
func (p Pattern) Base() string { return strings.TrimPrefix(string(p), "*.") }

// String returns the pattern as the policy writes it.
func (p Pattern) String() string { return string(p) }

// ParsePattern validates s, a DNS name or "*." and a name, and returns it
// in canonical form: lower case, without the trailing dot it may have.
//
// A name is labels of 1 to 63 letters, digits, hyphens and underscores,
// joined by dots, 253 bytes at most; a label neither starts nor ends with
// a hyphen. The underscore is tolerated because real names carry it
// (_dmarc.example.com, service names, some internal hosts), although a
// host name has none. "*" is allowed only as the whole first label of a
// pattern with at least one label after it. A name with characters beyond
// ASCII (an internationalized name) must be given in its xn-- form, as it
// travels in DNS; the error says what that form is. An address, or a name
// whose last label is all digits, is refused: it belongs in an address
// list.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return "", fmt.Errorf("empty name; expected a DNS name such as example.com or *.example.com")
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%q is not UTF-8 text", s)
	}
	for _, r := range s {
		if r >= utf8.RuneSelf {
			return "", nonASCII(s)
		}
	}
	_, errAddr := netip.ParseAddr(s)
	_, errPrefix := netip.ParsePrefix(s)
	if errAddr == nil || errPrefix == nil {
		return "", fmt.Errorf("%s is an address, not a name; put addresses in an address list (a list holds names or addresses, not both)", quote(s))
	}
	name := strings.ToLower(s)
	if strings.HasSuffix(name, ".") && name != "." {
		name = name[:len(name)-1]
	}
	wild := false
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		wild, name = true, rest
	}
	if name == "" || name == "." || name == "*" {
		if wild || name == "*" {
			return "", fmt.Errorf("%s matches every name; a wildcard needs a name after \"*.\", such as *.example.com (for every address, use any)", quote(s))
		}
		return "", fmt.Errorf("%s is not a name; expected a DNS name such as example.com or *.example.com", quote(s))
	}
	if len(name) > MaxName {
		return "", fmt.Errorf("%s is %d bytes long; a DNS name has at most %d", quote(s), len(name), MaxName)
	}
	labels := strings.Split(name, ".")
	for i, l := range labels {
		if err := checkLabel(s, l, i); err != nil {
			return "", err
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		return "", fmt.Errorf("%s ends in the all-digit label %q, which no top-level domain is; an address belongs in an address list", quote(s), last)
	}
	if wild {
		return Pattern("*." + name), nil
	}
	return Pattern(name), nil
}

// checkLabel checks label l, the i-th (from 0, after a leading "*.") of
// the name written as s.
func checkLabel(s, l string, i int) error {
	switch {
	case l == "":
		return fmt.Errorf("%s has an empty label (two dots in a row, or a leading dot)", quote(s))
	case l == "*" || strings.Contains(l, "*"):
		if i == 0 && l != "*" {
			return fmt.Errorf("%s has a partial wildcard %q; \"*\" is allowed only as the whole first label (*.example.com)", quote(s), l)
		}
		return fmt.Errorf("%s has \"*\" in the middle; \"*\" is allowed only as the whole first label (*.example.com)", quote(s))
	case len(l) > MaxLabel:
		return fmt.Errorf("%s has a label of %d bytes; a label has 1 to %d", quote(s), len(l), MaxLabel)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("%s has the label %q, which starts or ends with a hyphen", quote(s), l)
	}
	for j := 0; j < len(l); j++ {
		if !nameByte(l[j]) {
			return fmt.Errorf("%s has the character %q; a name holds letters, digits, '-', '_' and dots", quote(s), l[j])
		}
	}
	return nil
}

// nameByte reports whether c may be in a label of a canonical name.
func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// nonASCII is the error for a name with characters beyond ASCII: it says
// the xn-- form when it can compute it.
func nonASCII(s string) error {
	wild, rest := "", s
	if r, ok := strings.CutPrefix(s, "*."); ok {
		wild, rest = "*.", r
	}
	if a, err := idna.Lookup.ToASCII(strings.TrimSuffix(rest, ".")); err == nil && a != "" {
		return fmt.Errorf("%s is not ASCII; give an internationalized name in its xn-- form, as DNS carries it: %s", quote(s), wild+a)
	}
	return fmt.Errorf("%s is not ASCII; give an internationalized name in its xn-- form (punycode), as DNS carries it", quote(s))
}

// maxQuoted bounds how much of a value a message quotes.
const maxQuoted = 64

// quote quotes s for a message, cut to maxQuoted bytes.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return fmt.Sprintf("%q", s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%q...", s[:cut])
}

// Canonical returns name, a name as a DNS message carries it in
// presentation form ("WWW.Example.COM."), in the canonical form that
// patterns have: lower case, without the trailing dot. ok is false for a
// name that no pattern can match: the root, an empty label, or a byte
// that a pattern has none of (miekg/dns writes such bytes as \DDD or \.
// escapes, which must not be read as label boundaries).
func Canonical(name string) (canon string, ok bool) {
	name = strings.TrimSuffix(name, ".")
	if name == "" || len(name) > MaxName {
		return "", false
	}
	var b []byte
	labelLen := 0
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			if b == nil {
				b = []byte(name)
			}
			c += 'a' - 'A'
			b[i] = c
		}
		switch {
		case c == '.':
			if labelLen == 0 {
				return "", false
			}
			labelLen = 0
		case nameByte(c):
			labelLen++
			if labelLen > MaxLabel {
				return "", false
			}
		default:
			return "", false
		}
	}
	if labelLen == 0 {
		return "", false
	}
	if b == nil {
		return name, true
	}
	return string(b), true
}
