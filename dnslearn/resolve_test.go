package dnslearn

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/dnsname"
)

type fakeLookuper map[string][]string

func (f fakeLookuper) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if network != "ip" {
		return nil, errors.New("network " + network)
	}
	// Asked fully qualified only: a name without its dot would go through
	// the host's search domains.
	as, ok := f[strings.TrimSuffix(host, ".")]
	if !ok || !strings.HasSuffix(host, ".") {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range as {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

// TestResolveOnce: names resolve to elements of their list's key, each
// address once, mapped IPv4 unmapped; wildcards are reported, not looked
// up; a name that does not resolve is reported.
func TestResolveOnce(t *testing.T) {
	pat := func(s string) dnsname.Pattern {
		p, err := dnsname.ParsePattern(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	r := fakeLookuper{"a.example": {"203.0.113.1", "2001:db8::1", "::ffff:203.0.113.1"}, "b.example": {"0.0.0.0", "203.0.113.2"}}
	got, err := ResolveOnce(context.Background(), r, map[string][]dnsname.Pattern{
		"k2": {pat("b.example"), pat("*.example"), pat("gone.example")},
		"k1": {pat("a.example")},
	}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "k1" || got[1].Key != "k2" {
		t.Fatalf("ResolveOnce = %+v", got)
	}
	if e := got[0].Elements; len(e) != 2 || e[0] != (Element{Key: "k1", Addr: netip.MustParseAddr("203.0.113.1"), Timeout: time.Hour}) || e[1].Addr != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("k1: %+v", e)
	}
	if e := got[1].Elements; len(e) != 1 || e[0].Addr != netip.MustParseAddr("203.0.113.2") {
		t.Errorf("k2: %+v", e)
	}
	if w := got[1].Wildcards; len(w) != 1 || w[0] != "*.example" {
		t.Errorf("k2 wildcards: %v", w)
	}
	if err := got[1].Failed["gone.example"]; err == nil || err.Error() != "no such name" {
		t.Errorf("k2 failed: %v", got[1].Failed)
	}
}
