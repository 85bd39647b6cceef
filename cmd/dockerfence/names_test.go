package main

import (
	"net/netip"
	"testing"
)

func TestNameDestination(t *testing.T) {
	for _, tc := range []struct{ to, name, v4, v6 string }{
		{"api.github.com", "api.github.com", "140.82.121.3", "2001:db8::3"},
		{"API.GitHub.com.:443", "api.github.com", "140.82.121.3:443", "[2001:db8::3]:443"},
		{"pypi.org:53/udp", "pypi.org", "140.82.121.3:53/udp", "[2001:db8::3]:53/udp"},
		{"pypi.org/icmp", "pypi.org", "140.82.121.3/icmp", "2001:db8::3/icmp"},
	} {
		name, to, ok := nameDestination(tc.to)
		if !ok || name != tc.name {
			t.Errorf("nameDestination(%q) = %q, %v", tc.to, name, ok)
			continue
		}
		if got := to(netip.MustParseAddr("140.82.121.3")); got != tc.v4 {
			t.Errorf("%q for IPv4: %q, want %q", tc.to, got, tc.v4)
		}
		if got := to(netip.MustParseAddr("2001:db8::3")); got != tc.v6 {
			t.Errorf("%q for IPv6: %q, want %q", tc.to, got, tc.v6)
		}
	}
	for _, to := range []string{"192.168.1.5:5432/tcp", "[2001:db8::1]:443", "2001:db8::1", "localhost", "bad_name!:80", "10.0.0.1"} {
		if name, _, ok := nameDestination(to); ok {
			t.Errorf("nameDestination(%q) = %q, want no name", to, name)
		}
	}
}
