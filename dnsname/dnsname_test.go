package dnsname

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

func TestParsePattern(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "example.com", want: "example.com"},
		{in: "Example.COM.", want: "example.com"},
		{in: "*.Example.com.", want: "*.example.com"},
		{in: "*.com", want: "*.com"},
		{in: "localhost", want: "localhost"},
		{in: "_dmarc.example.com", want: "_dmarc.example.com"},
		{in: "xn--mnchen-3ya.de", want: "xn--mnchen-3ya.de"},
		{in: "a-b.c-d.example", want: "a-b.c-d.example"},
		{in: "1password.com", want: "1password.com"},
		{in: strings.Repeat("a", 63) + ".com", want: strings.Repeat("a", 63) + ".com"},
		{in: "", err: "empty name"},
		{in: ".", err: `"." is not a name`},
		{in: "*", err: "matches every name"},
		{in: "*.", err: "matches every name"},
		{in: "example..com", err: "empty label"},
		{in: ".example.com", err: "empty label"},
		{in: "example.com..", err: "empty label"},
		{in: "a.*.example.com", err: `"*" in the middle`},
		{in: "*.*.example.com", err: `"*" in the middle`},
		{in: "a*.example.com", err: `partial wildcard "a*"`},
		{in: "*a.example.com", err: `partial wildcard "*a"`},
		{in: "example.*", err: `"*" in the middle`},
		{in: strings.Repeat("a", 64) + ".com", err: "a label of 64 bytes; a label has 1 to 63"},
		{in: strings.Repeat("abcdefghi.", 26) + "com", err: "is 263 bytes long; a DNS name has at most 253"},
		{in: "-a.example.com", err: `the label "-a", which starts or ends with a hyphen`},
		{in: "a-.example.com", err: `"a-", which starts or ends`},
		{in: "exa mple.com", err: `the character ' '`},
		{in: "example.com/path", err: `the character '/'`},
		{in: "https://example.com", err: `the character ':'`},
		{in: "münchen.de", err: `is not ASCII; give an internationalized name in its xn-- form, as DNS carries it: xn--mnchen-3ya.de`},
		{in: "*.münchen.de", err: `xn-- form, as DNS carries it: *.xn--mnchen-3ya.de`},
		{in: "192.0.2.1", err: "is an address, not a name"},
		{in: "2001:db8::1", err: "is an address, not a name"},
		{in: "10.0.0.0/8", err: "is an address, not a name"},
		{in: "1.2.3.256", err: `all-digit label "256"`},
		{in: "\xff.com", err: "not UTF-8"},
	} {
		got, err := ParsePattern(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParsePattern(%q): %v", tc.in, err)
		case tc.err == "" && string(got) != tc.want:
			t.Errorf("ParsePattern(%q) = %q, want %q", tc.in, got, tc.want)
		case tc.err != "" && err == nil:
			t.Errorf("ParsePattern(%q) = %q, want an error with %q", tc.in, got, tc.err)
		case tc.err != "" && !strings.Contains(err.Error(), tc.err):
			t.Errorf("ParsePattern(%q): %v\nwant it to contain %q", tc.in, err, tc.err)
		}
	}
	// 253 bytes is the most a name may have.
	long := strings.Repeat("abcdefgh.", 27) + "abcdefghij" // 243 + 10
	long = long[:253-4] + ".com"
	if len(long) != 253 {
		t.Fatalf("test name has %d bytes", len(long))
	}
	if _, err := ParsePattern(long); err != nil {
		t.Errorf("a name of 253 bytes: %v", err)
	}
	if _, err := ParsePattern("a" + long); err == nil {
		t.Error("a name of 254 bytes: no error")
	}
}

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"WWW.Example.COM.": "www.example.com",
		"a.b":              "a.b",
		"a_b.c":            "a_b.c",
	} {
		if got, ok := Canonical(in); !ok || got != want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", ".", "a..b", `evil\.example.com.`, `a\032b.example.com.`, "a b.com", strings.Repeat("a", 64) + ".com", strings.Repeat("a.", 127) + "aa"} {
		if got, ok := Canonical(in); ok {
			t.Errorf("Canonical(%q) = %q, ok; want refused", in, got)
		}
	}
}

func newMatcher(t testing.TB, lists map[string][]string) *Matcher {
	t.Helper()
	m := NewMatcher()
	for key, pats := range lists {
		for _, s := range pats {
			p, err := ParsePattern(s)
			if err != nil {
				t.Fatal(err)
			}
			m.Add(p, key)
		}
	}
	return m
}

func TestMatcher(t *testing.T) {
	m := newMatcher(t, map[string][]string{
		"github": {"github.com", "*.github.com", "*.githubusercontent.com"},
		"s3":     {"*.s3.amazonaws.com"},
		"apex":   {"example.org"},
		"both":   {"github.com", "*.s3.amazonaws.com", "*.s3.amazonaws.com"},
	})
	if m.Len() != 5 {
		t.Errorf("Len = %d, want 5 distinct patterns", m.Len())
	}
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"github.com", []string{"both", "github"}},
		{"GitHub.COM.", []string{"both", "github"}},
		{"api.github.com", []string{"github"}},
		{"a.b.c.github.com.", []string{"github"}},
		{"githubusercontent.com", nil}, // the apex of a wildcard is not below it
		{"raw.githubusercontent.com", []string{"github"}},
		{"bucket.s3.amazonaws.com", []string{"both", "s3"}},
		{"s3.amazonaws.com", nil},
		{"amazonaws.com", nil},
		{"example.org", []string{"apex"}},
		{"www.example.org", nil}, // an exact name does not cover its subdomains
		{"notgithub.com", nil},
		{"github.com.evil.net", nil},
		{"evilgithub.com", nil},
		{`evil\.github.com.`, nil}, // one label "evil.github" under com
		{"", nil},
		{".", nil},
	} {
		if got := m.Match(tc.name); !cmp.Equal(got, tc.want) {
			t.Errorf("Match(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMatcherMany checks that thousands of patterns match as a few do.
func TestMatcherMany(t *testing.T) {
	m := NewMatcher()
	for i := range 20000 {
		m.Add(Pattern(fmt.Sprintf("*.s%d.example.com", i)), fmt.Sprintf("l%d", i%7))
		m.Add(Pattern(fmt.Sprintf("h%d.example.net", i)), "net")
	}
	if got := m.Match("x.y.s19999.example.com"); !cmp.Equal(got, []string{"l0"}) { // 19999 % 7 == 0
		t.Errorf("Match = %v", got)
	}
	if got := m.Match("h123.example.net"); !cmp.Equal(got, []string{"net"}) {
		t.Errorf("Match = %v", got)
	}
	allocs := testing.AllocsPerRun(100, func() { m.Match("nothing.here.example.org") })
	if allocs > 0 {
		t.Errorf("a miss allocates %v times", allocs)
	}
}

func BenchmarkMatch(b *testing.B) {
	m := NewMatcher()
	for i := range 10000 {
		m.Add(Pattern(fmt.Sprintf("*.s%d.example.com", i)), "k")
	}
	for b.Loop() {
		m.Match("a.b.c.s5000.example.com.")
	}
}

// answer builds a DNS response to a question of qtype for qname holding
// the records rrs (in zone-file form).
func answer(t testing.TB, qname string, qtype uint16, rrs ...string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.Response = true
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		m.Answer = append(m.Answer, rr)
	}
	return m
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addrs(pairs ...any) []Addr {
	var out []Addr
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, Addr{Addr: netip.MustParseAddr(pairs[i].(string)), TTL: pairs[i+1].(time.Duration)})
	}
	return out
}

func TestLearn(t *testing.T) {
	m := newMatcher(t, map[string][]string{
		"github": {"github.com", "*.github.com"},
		"s3":     {"*.s3.amazonaws.com"},
	})
	bounds := Bounds{Min: 60 * time.Second, Max: 24 * time.Hour}
	const min, hour, day = 60 * time.Second, time.Hour, 24 * time.Hour
	tests := []struct {
		name  string
		msg   *dns.Msg
		keys  []string
		chain []string
		addrs []Addr
		err   error
	}{{
		name:  "A",
		msg:   answer(t, "github.com.", dns.TypeA, "github.com. 3600 IN A 140.82.121.4"),
		keys:  []string{"github"},
		chain: []string{"github.com"},
		addrs: addrs("140.82.121.4", hour),
	}, {
		name:  "AAAA and case",
		msg:   answer(t, "API.GitHub.com.", dns.TypeAAAA, "api.github.COM. 300 IN AAAA 2606:50c0:8000::154", "Api.Github.Com. 300 IN AAAA 2606:50c0:8001::154"),
		keys:  []string{"github"},
		chain: []string{"api.github.com"},
		addrs: addrs("2606:50c0:8000::154", 300*time.Second, "2606:50c0:8001::154", 300*time.Second),
	}, {
		name:  "TTL raised to the minimum",
		msg:   answer(t, "github.com.", dns.TypeA, "github.com. 5 IN A 140.82.121.4", "github.com. 0 IN A 140.82.121.5"),
		keys:  []string{"github"},
		chain: []string{"github.com"},
		addrs: addrs("140.82.121.4", min, "140.82.121.5", min),
	}, {
		name:  "TTL lowered to the maximum",
		msg:   answer(t, "github.com.", dns.TypeA, "github.com. 2147483647 IN A 140.82.121.4"),
		keys:  []string{"github"},
		chain: []string{"github.com"},
		addrs: addrs("140.82.121.4", day),
	}, {
		name:  "an address given twice keeps its longest TTL",
		msg:   answer(t, "github.com.", dns.TypeA, "github.com. 100 IN A 140.82.121.4", "github.com. 900 IN A 140.82.121.4", "github.com. 200 IN A 140.82.121.4"),
		keys:  []string{"github"},
		chain: []string{"github.com"},
		addrs: addrs("140.82.121.4", 900*time.Second),
	}, {
		name: "CNAME chain out of the question's tree, in any order",
		msg: answer(t, "bucket.s3.amazonaws.com.", dns.TypeA,
			"s3-1-w.amazonaws.com. 5 IN A 52.216.1.1",
			"bucket.s3.amazonaws.com. 300 IN CNAME s3-1-w.amazonaws.com.",
			"s3-1-w.amazonaws.com. 5 IN A 52.216.1.2"),
		keys:  []string{"s3"},
		chain: []string{"bucket.s3.amazonaws.com", "s3-1-w.amazonaws.com"},
		addrs: addrs("52.216.1.1", min, "52.216.1.2", min),
	}, {
		name: "CNAME chain of three",
		msg: answer(t, "www.github.com.", dns.TypeA,
			"www.github.com. 60 IN CNAME github.map.fastly.net.",
			"github.map.fastly.net. 60 IN CNAME n.sni.global.fastly.net.",
			"n.sni.global.fastly.net. 120 IN A 151.101.1.194",
			"N.SNI.global.fastly.net. 120 IN AAAA 2a04:4e42::194"),
		keys:  []string{"github"},
		chain: []string{"www.github.com", "github.map.fastly.net", "n.sni.global.fastly.net"},
		addrs: addrs("151.101.1.194", 120*time.Second, "2a04:4e42::194", 120*time.Second),
	}, {
		name: "CNAME loop",
		msg: answer(t, "a.github.com.", dns.TypeA,
			"a.github.com. 60 IN CNAME b.example.net.",
			"b.example.net. 60 IN CNAME a.github.com.",
			"b.example.net. 60 IN A 192.0.2.7"),
		keys:  []string{"github"},
		chain: []string{"a.github.com", "b.example.net"},
		addrs: addrs("192.0.2.7", min),
	}, {
		name:  "CNAME to itself",
		msg:   answer(t, "a.github.com.", dns.TypeA, "a.github.com. 60 IN CNAME A.github.com.", "a.github.com. 60 IN A 192.0.2.8"),
		keys:  []string{"github"},
		chain: []string{"a.github.com"},
		addrs: addrs("192.0.2.8", min),
	}, {
		// The poisoning attempt: an answer for a name that is not listed
		// carries records for one that is. Nothing is learned.
		name: "records of a listed name in the answer for another",
		msg: answer(t, "evil.example.", dns.TypeA,
			"evil.example. 60 IN A 203.0.113.66",
			"github.com. 86400 IN A 203.0.113.66",
			"api.github.com. 86400 IN CNAME evil.example."),
		keys:  nil,
		chain: []string{"evil.example"},
	}, {
		// The same in an answer for a listed name: records whose owner is
		// off the chain (here, github.com's records in api.github.com's
		// answer, and a dangling CNAME) teach nothing.
		name: "records off the chain in the answer for a listed name",
		msg: answer(t, "api.github.com.", dns.TypeA,
			"api.github.com. 60 IN A 140.82.112.5",
			"other.github.com. 60 IN A 203.0.113.1",
			"github.com. 60 IN A 203.0.113.2",
			"evil.example. 60 IN CNAME api.github.com.",
			"evil.example. 60 IN A 203.0.113.3"),
		keys:  []string{"github"},
		chain: []string{"api.github.com"},
		addrs: addrs("140.82.112.5", min),
	}, {
		name:  "a name below an apex that is listed only exactly",
		msg:   answer(t, "s3.amazonaws.com.", dns.TypeA, "s3.amazonaws.com. 60 IN A 52.216.0.1"),
		chain: []string{"s3.amazonaws.com"},
	}, {
		name:  "ANY",
		msg:   answer(t, "github.com.", dns.TypeANY, "github.com. 60 IN A 140.82.121.4", "github.com. 60 IN MX 10 mx.github.com.", "github.com. 60 IN TXT \"v=spf1\""),
		keys:  []string{"github"},
		chain: []string{"github.com"},
		addrs: addrs("140.82.121.4", min),
	}, {
		name:  "unspecified and mapped addresses",
		msg:   answer(t, "github.com.", dns.TypeAAAA, "github.com. 60 IN AAAA ::", "github.com. 60 IN A 0.0.0.0", "github.com. 60 IN AAAA ::ffff:140.82.121.4"),
		keys:  []string{"github"},
		chain: []string{"github.com"},
		addrs: addrs("140.82.121.4", min),
	}, {
		name:  "records of another class",
		msg:   answer(t, "github.com.", dns.TypeA, "github.com. 60 CH A 192.0.2.1", "github.com. 60 IN A 140.82.121.4"),
		keys:  []string{"github"},
		chain: []string{"github.com"},
		addrs: addrs("140.82.121.4", min),
	}, {
		name: "a question of class CH",
		msg: func() *dns.Msg {
			m := answer(t, "github.com.", dns.TypeA, "github.com. 60 IN A 140.82.121.4")
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}(),
		err:   ErrIgnored,
		chain: nil,
	}, {
		name: "a question of type TXT",
		msg:  answer(t, "github.com.", dns.TypeTXT, "github.com. 60 IN A 140.82.121.4"),
		err:  ErrIgnored,
	}, {
		name: "a query",
		msg: func() *dns.Msg {
			m := answer(t, "github.com.", dns.TypeA, "github.com. 60 IN A 140.82.121.4")
			m.Response = false
			return m
		}(),
		err: ErrIgnored,
	}, {
		name: "NXDOMAIN",
		msg: func() *dns.Msg {
			m := answer(t, "github.com.", dns.TypeA, "github.com. 60 IN A 140.82.121.4")
			m.Rcode = dns.RcodeNameError
			return m
		}(),
		err: ErrIgnored,
	}, {
		name: "an UPDATE",
		msg: func() *dns.Msg {
			m := answer(t, "github.com.", dns.TypeA, "github.com. 60 IN A 140.82.121.4")
			m.Opcode = dns.OpcodeUpdate
			return m
		}(),
		err: ErrIgnored,
	}, {
		name: "two questions",
		msg: func() *dns.Msg {
			m := answer(t, "github.com.", dns.TypeA, "github.com. 60 IN A 140.82.121.4")
			m.Question = append(m.Question, m.Question[0])
			return m
		}(),
		err: ErrIgnored,
	}, {
		name: "no question",
		msg: func() *dns.Msg {
			m := answer(t, "github.com.", dns.TypeA, "github.com. 60 IN A 140.82.121.4")
			m.Question = nil
			return m
		}(),
		err: ErrIgnored,
	}, {
		name: "a question name with an escaped dot",
		msg:  answer(t, `evil\.github.com.`, dns.TypeA, `evil\.github.com. 60 IN A 203.0.113.9`),
		err:  ErrIgnored,
	}, {
		// A truncated answer holds whole records: those are learned, as
		// a client that does not retry over TCP uses them.
		name: "TC bit with whole records",
		msg: func() *dns.Msg {
			m := answer(t, "github.com.", dns.TypeA, "github.com. 60 IN A 140.82.121.4")
			m.Truncated = true
			return m
		}(),
		keys:  []string{"github"},
		chain: []string{"github.com"},
		addrs: addrs("140.82.121.4", min),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Learn(pack(t, tc.msg), m, bounds)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Learn = %+v, %v; want %v", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !cmp.Equal(got.Keys, tc.keys) || !cmp.Equal(got.Chain, tc.chain) {
				t.Errorf("keys %v chain %v; want %v %v", got.Keys, got.Chain, tc.keys, tc.chain)
			}
			if diff := cmp.Diff(tc.addrs, got.Addrs, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("addrs (-want +got):\n%s", diff)
			}
			if got.Truncated != tc.msg.Truncated {
				t.Errorf("Truncated = %v", got.Truncated)
			}
		})
	}
}

// TestLearnChainBound checks that a chain longer than MaxChain is followed
// MaxChain links and no further.
func TestLearnChainBound(t *testing.T) {
	m := newMatcher(t, map[string][]string{"l": {"start.example"}})
	var rrs []string
	prev := "start.example."
	for i := range MaxChain + 5 {
		next := fmt.Sprintf("c%d.example.", i)
		rrs = append(rrs, prev+" 60 IN CNAME "+next, fmt.Sprintf("%s 60 IN A 192.0.2.%d", next, i+1))
		prev = next
	}
	got, err := Learn(pack(t, answer(t, "start.example.", dns.TypeA, rrs...)), m, Bounds{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Chain) != MaxChain+1 || len(got.Addrs) != MaxChain {
		t.Errorf("chain of %d names, %d addresses; want %d and %d", len(got.Chain), len(got.Addrs), MaxChain+1, MaxChain)
	}
	if got.Addrs[0].TTL != 60*time.Second {
		t.Errorf("TTL with zero bounds = %v, want the record's", got.Addrs[0].TTL)
	}
}

// TestLearnCDN learns the 200 addresses of one answer.
func TestLearnCDN(t *testing.T) {
	m := newMatcher(t, map[string][]string{"cdn": {"*.cdn.example"}})
	rrs := []string{"www.cdn.example. 60 IN CNAME edge.cdn.example."}
	for i := range 200 {
		rrs = append(rrs, fmt.Sprintf("edge.cdn.example. 60 IN A 198.18.%d.%d", i/250, i%250+1))
	}
	msg := answer(t, "www.cdn.example.", dns.TypeA, rrs...)
	got, err := Learn(pack(t, msg), m, Bounds{Min: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Addrs) != 200 {
		t.Errorf("%d addresses, want 200", len(got.Addrs))
	}
}

// TestLearnMalformed checks that a message cut anywhere, and garbage, is
// ErrMalformed, on a record's boundary too (miekg/dns alone takes that for
// a message with fewer records).
func TestLearnMalformed(t *testing.T) {
	m := newMatcher(t, map[string][]string{"github": {"github.com"}})
	full := pack(t, answer(t, "github.com.", dns.TypeA, "github.com. 60 IN A 140.82.121.4", "github.com. 60 IN A 140.82.121.5"))
	for n := range len(full) {
		got, err := Learn(full[:n], m, Bounds{})
		if err == nil {
			t.Errorf("cut to %d of %d bytes: learned %+v, want an error", n, len(full), got)
			continue
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("cut to %d bytes: %v, want ErrMalformed", n, err)
		}
	}
	for _, b := range [][]byte{nil, {0}, []byte("garbage that is not DNS at all")} {
		if _, err := Learn(b, m, Bounds{}); !errors.Is(err, ErrMalformed) {
			t.Errorf("Learn(%q) = %v, want ErrMalformed", b, err)
		}
	}
}

func BenchmarkLearn(b *testing.B) {
	m := newMatcher(b, map[string][]string{"github": {"github.com", "*.github.com"}})
	msg := pack(b, answer(b, "www.github.com.", dns.TypeA,
		"www.github.com. 60 IN CNAME github.map.fastly.net.",
		"github.map.fastly.net. 60 IN A 151.101.1.194",
		"github.map.fastly.net. 60 IN A 151.101.65.194"))
	for b.Loop() {
		if _, err := Learn(msg, m, Bounds{Min: time.Minute}); err != nil {
			b.Fatal(err)
		}
	}
}
