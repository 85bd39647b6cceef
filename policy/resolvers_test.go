package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestResolvers checks that @resolvers holds what Docker hands
// containers: systemd-resolved's upstream servers when the host's
// resolv.conf names only its stub, else the host's resolv.conf.
func TestResolvers(t *testing.T) {
	const stub = "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"
	const upstream = "# This is /run/systemd/resolve/resolv.conf managed by man:systemd-resolved(8).\nnameserver 192.168.1.1\nnameserver fd00:1::1\nsearch lan\n"
	tests := []struct {
		name, resolvConf, resolved string // "" resolved: the file is absent
		wantFile                   string
		want                       []string
		warning                    string
	}{
		{"systemd-resolved", stub, upstream, "resolved", []string{"192.168.1.1/32", "fd00:1::1/128"}, ""},
		{"plain resolv.conf", "nameserver 10.0.0.2\n", upstream, "resolv.conf", []string{"10.0.0.2/32"}, ""},
		{"stub and another server", "nameserver 127.0.0.53\nnameserver 10.0.0.2\n", upstream, "resolv.conf", []string{"127.0.0.53/32", "10.0.0.2/32"}, ""},
		{"another loopback server", "nameserver 127.0.0.1\n", upstream, "resolv.conf", []string{"127.0.0.1/32"}, ""},
		{"stub without upstream file", stub, "", "resolv.conf", []string{"127.0.0.53/32"},
			"@resolvers is systemd-resolved's stub 127.0.0.53 of DIR/resolv.conf, which containers cannot reach, and its upstream servers are unknown: DIR/resolved: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{ResolvConf: filepath.Join(dir, "resolv.conf"), ResolvedConf: filepath.Join(dir, "resolved")}
			if err := os.WriteFile(opts.ResolvConf, []byte(tt.resolvConf), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.resolved != "" {
				if err := os.WriteFile(opts.ResolvedConf, []byte(tt.resolved), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p, err := Default(opts)
			if err != nil {
				t.Fatal(err)
			}
			l := p.Lists["resolvers"]
			var got []string
			for _, pfx := range l.Prefixes {
				got = append(got, pfx.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("@resolvers (-want +got):\n%s", diff)
			}
			if want := filepath.Join(dir, tt.wantFile); l.File != want || p.ResolversFrom() != want {
				t.Errorf("@resolvers read from %s (ResolversFrom %s), want %s", l.File, p.ResolversFrom(), want)
			}
			var warnings []string
			if tt.warning != "" {
				warnings = []string{strings.ReplaceAll(tt.warning, "DIR", dir)}
			}
			if diff := cmp.Diff(warnings, p.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
