package dnsname

import (
	"errors"
	"testing"

	"github.com/miekg/dns"
)

// TestReadHeader reads the ID, the QR bit and the question of queries and
// answers, and refuses what is not one question.
func TestReadHeader(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("API.GitHub.com.", dns.TypeAAAA)
	m.Id = 0xbeef
	q, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	h, err := ReadHeader(q)
	if err != nil || h != (Header{ID: 0xbeef, Name: "api.github.com.", Type: dns.TypeAAAA, Class: dns.ClassINET}) {
		t.Errorf("query: %+v, %v", h, err)
	}
	m.Response = true
	a, _ := m.Pack()
	if h, err := ReadHeader(a); err != nil || !h.Response || h.ID != 0xbeef || h.Name != "api.github.com." {
		t.Errorf("answer: %+v, %v", h, err)
	}
	m.Question = append(m.Question, m.Question[0])
	two, _ := m.Pack()
	for _, c := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"short", q[:11], ErrMalformed},
		{"question cut", q[:len(q)-1], ErrMalformed},
		{"name cut", q[:14], ErrMalformed},
		{"two questions", two, ErrIgnored},
	} {
		if _, err := ReadHeader(c.msg); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
