package dnsname

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/miekg/dns"
)

// Errors of Learn. A message that Learn refuses teaches nothing; the
// caller passes it on unchanged either way.
var (
	// ErrMalformed is wrapped by the errors for a message that does not
	// parse: truncated, cut inside a record, or garbage.
	ErrMalformed = errors.New("malformed DNS message")
	// ErrIgnored is wrapped by the errors for a well-formed message that
	// is not an answer Learn learns from: a query, an error, another
	// opcode, not exactly one question, a question of another class or
	// type than IN A, AAAA or ANY.
	ErrIgnored = errors.New("DNS message not learned from")
)

// MaxChain bounds how many CNAME records Learn follows from the question's
// name: resolvers give up on longer chains too.
const MaxChain = 16

// Bounds bounds the lifetime of a learned address: a record's TTL below
// Min is raised to Min, one above Max lowered to Max (Max 0: no upper
// bound).
type Bounds struct {
	Min, Max time.Duration
}

// clamp returns the TTL of ttl seconds within the bounds.
func (b Bounds) clamp(ttl uint32) time.Duration {
	d := time.Duration(ttl) * time.Second
	if d < b.Min {
		d = b.Min
	}
	if b.Max > 0 && d > b.Max {
		d = b.Max
	}
	return d
}

// Addr is an address learned from an answer and how long it stays.
type Addr struct {
	Addr netip.Addr
	TTL  time.Duration
}

// Learned is what an answer teaches.
type Learned struct {
	// Question is the question's name in canonical form (lower case, no
	// trailing dot); QType its type (dns.TypeA, TypeAAAA or TypeANY).
	Question string
	QType    uint16
	// Keys are the keys of the Matcher that the question's name matches,
	// sorted; none for a name that no pattern matches, which then teaches
	// nothing.
	Keys []string
	// Chain is the names whose records count: the question's, then the
	// targets of the CNAME chain that the answer section gives from it,
	// in canonical form.
	Chain []string
	// Addrs are the A and AAAA addresses of the names of Chain (IPv4
	// addresses unmapped), each once with the longest TTL the answer
	// gives it, clamped to the Bounds; nil if Keys is empty. The
	// unspecified addresses (0.0.0.0, ::), which DNS filters answer for
	// blocked names, are left out.
	Addrs []Addr
	// Truncated is set if the answer had the TC bit: it holds only the
	// records that fit, and Addrs are those (a client that does not
	// retry over TCP, such as older musl, uses them).
	Truncated bool
}

// Learn parses msg, a DNS message, and returns what it teaches: for an
// answer (QR set, opcode QUERY, RCODE NOERROR) to one question of class
// IN and type A, AAAA or ANY, the keys of m that the question's name
// matches and, if it matches some, the A and AAAA addresses of the
// question's name and of the names its CNAME chain leads to. The chain is
// followed in the answer section only, at most MaxChain links, and stops
// at a loop. A record whose owner is not on the chain is ignored, however
// the answer presents it: an answer for evil.example carrying an A record
// for github.com teaches nothing about github.com. Records of other
// classes than IN are ignored.
//
// The error wraps ErrMalformed for a message that does not parse and
// ErrIgnored for one that is not such an answer. Learn does not panic,
// whatever msg holds.
func Learn(msg []byte, m *Matcher, b Bounds) (*Learned, error) {
	var d dns.Msg
	if err := d.Unpack(msg); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// miekg/dns stops without an error where a message ends on a record's
	// boundary: a message cut there holds fewer records than its header
	// counts.
	if len(msg) >= 12 {
		counts := [4]int{len(d.Question), len(d.Answer), len(d.Ns), len(d.Extra)}
		for i, what := range [4]string{"questions", "answers", "authority records", "additional records"} {
			if want := int(binary.BigEndian.Uint16(msg[4+2*i:])); counts[i] != want {
				return nil, fmt.Errorf("%w: %d %s where the header counts %d; the message is cut short", ErrMalformed, counts[i], what, want)
			}
		}
	}
	switch {
	case !d.Response:
		return nil, fmt.Errorf("%w: a query, not a response", ErrIgnored)
	case d.Opcode != dns.OpcodeQuery:
		return nil, fmt.Errorf("%w: opcode %s", ErrIgnored, opcodeName(d.Opcode))
	case d.Rcode != dns.RcodeSuccess:
		return nil, fmt.Errorf("%w: rcode %s", ErrIgnored, rcodeName(d.Rcode))
	case len(d.Question) != 1:
		return nil, fmt.Errorf("%w: %d questions; an answer has one", ErrIgnored, len(d.Question))
	}
	q := d.Question[0]
	switch {
	case q.Qclass != dns.ClassINET:
		return nil, fmt.Errorf("%w: question of class %s", ErrIgnored, className(q.Qclass))
	case q.Qtype != dns.TypeA && q.Qtype != dns.TypeAAAA && q.Qtype != dns.TypeANY:
		return nil, fmt.Errorf("%w: question of type %s", ErrIgnored, typeName(q.Qtype))
	}
	qname, ok := Canonical(q.Name)
	if !ok {
		return nil, fmt.Errorf("%w: question name %s is not a host name", ErrIgnored, quote(q.Name))
	}
	l := &Learned{Question: qname, QType: q.Qtype, Truncated: d.Truncated, Keys: m.match(qname)}
	l.Chain = chain(qname, d.Answer)
	if len(l.Keys) == 0 {
		return l, nil
	}
	on := make(map[string]bool, len(l.Chain))
	for _, n := range l.Chain {
		on[n] = true
	}
	ttls := map[netip.Addr]uint32{}
	var order []netip.Addr
	for _, rr := range d.Answer {
		h := rr.Header()
		if h.Class != dns.ClassINET {
			continue
		}
		var a netip.Addr
		switch r := rr.(type) {
		case *dns.A:
			a, ok = netip.AddrFromSlice(r.A)
		case *dns.AAAA:
			a, ok = netip.AddrFromSlice(r.AAAA)
		default:
			continue
		}
		if !ok {
			continue
		}
		a = a.Unmap()
		if a.IsUnspecified() {
			continue
		}
		if owner, ok := Canonical(h.Name); !ok || !on[owner] {
			continue
		}
		if ttl, seen := ttls[a]; !seen {
			order = append(order, a)
			ttls[a] = h.Ttl
		} else if h.Ttl > ttl {
			ttls[a] = h.Ttl
		}
	}
	for _, a := range order {
		l.Addrs = append(l.Addrs, Addr{Addr: a, TTL: b.clamp(ttls[a])})
	}
	return l, nil
}

// chain returns qname and the names the CNAME records of answer lead to
// from it, in order: at most MaxChain links, stopping before a name seen
// already. Of several CNAME records of one owner (which DNS forbids), the
// first counts.
func chain(qname string, answer []dns.RR) []string {
	next := map[string]string{}
	for _, rr := range answer {
		c, ok := rr.(*dns.CNAME)
		if !ok || c.Hdr.Class != dns.ClassINET {
			continue
		}
		owner, ok1 := Canonical(c.Hdr.Name)
		target, ok2 := Canonical(c.Target)
		if !ok1 || !ok2 {
			continue
		}
		if _, dup := next[owner]; !dup {
			next[owner] = target
		}
	}
	out := []string{qname}
	for cur := qname; len(out) <= MaxChain; {
		t, ok := next[cur]
		if !ok || slices.Contains(out, t) {
			break
		}
		out = append(out, t)
		cur = t
	}
	return out
}

// opcodeName names an opcode for a message.
func opcodeName(o int) string {
	if s, ok := dns.OpcodeToString[o]; ok {
		return s
	}
	return fmt.Sprint(o)
}

// rcodeName names a response code for a message.
func rcodeName(r int) string {
	if s, ok := dns.RcodeToString[r]; ok {
		return s
	}
	return fmt.Sprint(r)
}

// className names a class for a message.
func className(c uint16) string {
	if s, ok := dns.ClassToString[c]; ok {
		return s
	}
	return fmt.Sprint(c)
}

// typeName names a record type for a message.
func typeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprint(t)
}
