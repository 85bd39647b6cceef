// Package testpolicy holds what the compiler's and the nft package's tests
// share: policies loaded with a fixed resolv.conf, and the networks of a
// typical compose host.
package testpolicy

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/dockerfence/dockerfence/policy"
)

// Prefixes parses prefixes, panicking on a bad one.
func Prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Networks are the networks of a typical compose host.
var Networks = []policy.Network{
	{Name: "bridge", Bridge: "docker0", Subnets: Prefixes("172.17.0.0/16")},
	{Name: "app_default", Bridge: "br-0123456789ab", Labels: map[string]string{"com.docker.compose.project": "app"}, Subnets: Prefixes("172.20.0.0/16", "fd00:20::/64")},
}

// Load loads the policy file, or the embedded default for "", with
// @resolvers 192.168.100.2 and fd00:100::2.
func Load(t *testing.T, file string) *policy.Policy {
	t.Helper()
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(rc, []byte("nameserver 192.168.100.2\nnameserver fd00:100::2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := policy.Options{ResolvConf: rc}
	var p *policy.Policy
	var err error
	if file == "" {
		p, err = policy.Default(opts)
	} else {
		p, err = policy.Load(file, opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}
