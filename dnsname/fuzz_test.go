package dnsname

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fuzzMatcher is the Matcher the fuzz targets learn with.
func fuzzMatcher(t testing.TB) *Matcher {
	return newMatcher(t, map[string][]string{"github": {"github.com", "*.github.com"}, "any": {"*.com", "*.net", "*.example"}})
}

// seedAnswers are well-formed answers the fuzzers start from.
func seedAnswers(t testing.TB) [][]byte {
	return [][]byte{
		pack(t, answer(t, "github.com.", dns.TypeA, "github.com. 60 IN A 140.82.121.4")),
		pack(t, answer(t, "www.github.com.", dns.TypeAAAA, "www.github.com. 60 IN CNAME a.b.net.", "a.b.net. 30 IN CNAME www.github.com.", "a.b.net. 60 IN AAAA 2001:db8::1")),
		pack(t, answer(t, "x.example.", dns.TypeANY, "x.example. 60 IN A 192.0.2.1", "x.example. 60 IN TXT \"hello\"", "x.example. 60 IN MX 10 mail.x.example.")),
	}
}

// checkLearned checks the invariants of what Learn returns.
func checkLearned(t *testing.T, l *Learned, err error, b Bounds) {
	if err != nil {
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrIgnored) {
			t.Fatalf("error %v is neither ErrMalformed nor ErrIgnored", err)
		}
		if l != nil {
			t.Fatalf("an error and a result: %+v", l)
		}
		return
	}
	if len(l.Chain) == 0 || l.Chain[0] != l.Question || len(l.Chain) > MaxChain+1 {
		t.Fatalf("chain %v for question %q", l.Chain, l.Question)
	}
	if len(l.Keys) == 0 && len(l.Addrs) > 0 {
		t.Fatalf("addresses learned for a name no pattern matches: %+v", l)
	}
	seen := map[string]bool{}
	for _, a := range l.Addrs {
		if a.TTL < b.Min || a.TTL > b.Max || !a.Addr.IsValid() || a.Addr.IsUnspecified() || a.Addr.Is4In6() || seen[a.Addr.String()] {
			t.Fatalf("learned %+v", a)
		}
		seen[a.Addr.String()] = true
	}
	if !slices.IsSorted(l.Keys) {
		t.Fatalf("keys not sorted: %v", l.Keys)
	}
}

// FuzzLearn feeds Learn arbitrary bytes: it must not panic, and what it
// returns must keep its invariants.
func FuzzLearn(f *testing.F) {
	for _, s := range seedAnswers(f) {
		f.Add(s)
	}
	m := fuzzMatcher(f)
	b := Bounds{Min: time.Minute, Max: 24 * time.Hour}
	f.Fuzz(func(t *testing.T, msg []byte) {
		l, err := Learn(msg, m, b)
		checkLearned(t, l, err, b)
	})
}

// FuzzParsePacket feeds ParsePacket arbitrary bytes, and Learn the
// messages it finds.
func FuzzParsePacket(f *testing.F) {
	for _, s := range seedAnswers(f) {
		f.Add(ipv4(protoUDP, "192.0.2.53", "172.20.0.2", udp(53, 40000, s)))
		f.Add(ipv6(protoTCP, "2001:db8::53", "fd00:20::2", tcp(53, 40000, framed(s, s))))
		f.Add(ipv6(protoUDP, "2001:db8::53", "fd00:20::2", udp(53, 40000, s), make([]byte, 8)))
	}
	m := fuzzMatcher(f)
	b := Bounds{Min: time.Minute, Max: 24 * time.Hour}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		// As it came, and with its checksum made right, so that mutations
		// reach past the checksum.
		for _, pkt := range [][]byte{pkt, checksummed(append([]byte(nil), pkt...))} {
			p, err := ParsePacket(pkt)
			if err != nil {
				if !errors.Is(err, ErrPacket) && !errors.Is(err, ErrChecksum) || p != nil {
					t.Fatalf("ParsePacket = %v, %v", p, err)
				}
				continue
			}
			total := len(p.Data)
			for _, msg := range p.Msgs {
				total += len(msg)
				l, err := Learn(msg, m, b)
				checkLearned(t, l, err, b)
			}
			if total > len(pkt) {
				t.Fatalf("messages and data of %d bytes in a packet of %d", total, len(pkt))
			}
		}
	})
}

// FuzzPattern feeds ParsePattern arbitrary text: a pattern it accepts is
// canonical (parsing it again gives it back), and the names it stands for
// match it.
func FuzzPattern(f *testing.F) {
	for _, s := range []string{"example.com", "*.Example.COM.", "a.*.b", "münchen.de", "-a.b", "1.2.3.4", "a..b", "_x.y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			return
		}
		if again, err := ParsePattern(string(p)); err != nil || again != p {
			t.Fatalf("ParsePattern(%q) = %q, then %q, %v", s, p, again, err)
		}
		m := NewMatcher()
		m.Add(p, "k")
		name := string(p)
		if p.Wildcard() {
			if m.Match(p.Base()) != nil {
				t.Fatalf("%s matches its apex", p)
			}
			name = "x." + p.Base()
			if len(name) > MaxName {
				return
			}
		}
		if got := m.Match(name + "."); !slices.Equal(got, []string{"k"}) {
			t.Fatalf("%s does not match %q: %v", p, name, got)
		}
	})
}
