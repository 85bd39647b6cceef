package policy

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/dockerfence/dockerfence/dnsname"
)

// FuzzParse feeds arbitrary bytes to the parser: it must never panic, and
// every error it returns must carry a file:line:column position. What it
// accepts must be what the kernel and nft accept: ports 1..65535 in order,
// comments nft can hold, a priority between conntrack and Docker.
func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile("testdata/seed.yaml")
	f.Add(seed)
	f.Add(DefaultYAML)
	f.Add([]byte("version: 1\nlists:\n  a: [10.0.0.0/8, \"::/0\"]\nnetworks:\n  - match: {label: a=b, subnet: 10.0.0.0/8}\n    host: [{allow: '@a', ports: ['1-2', 3]}]\n"))
	f.Add([]byte("version: 1\nnetworks: [{match: {name: x}, egress: [{deny: [self, '@private'], proto: icmpv6}]}]"))
	f.Add([]byte("version: 1\nsettings: {priority: -300, table: x, log_group: 65535}\nnetworks: [{match: {bridge: 'br-x;{}'}, egress: [{allow: any, ports: [0, 65536, '1-2-3'], comment: \"データ\"}]}]\n---\n[\n"))
	f.Add([]byte("version: 1\nlists: {l: {file: testdata/blocklist.txt}, m: &m [10.0.0.0/8]}\nnetworks: [{match: {name: \"a\\x00\"}, egress: [{deny: *m}, {deny: '@l', proto: icmp}]}]\n"))
	// Found by hand, not by the fuzzer: 36 characters, 108 bytes, which nft
	// refused as a rule comment before comments were bounded in bytes.
	f.Add([]byte("version: 1\nnetworks: [{match: {name: x}, egress: [{deny: any, comment: " + strings.Repeat("データ", 12) + "}]}]\n"))
	f.Add([]byte("version: 1\nsettings: {dns_min_ttl: 30s, dns_hold: 1ms}\nlists: {g: {names: [Github.com., '*.github.com']}}\nnetworks: [{match: {name: x}, egress: [{allow: ['@g', {names: [a.b]}, 10.0.0.1]}], ingress: [{deny: {names: [x.y]}}]}]\n"))
	f.Add([]byte("version: 1\ncontainers: [{match: {name: w}, egress: [{allow: {names: ['a.*.b', b\u00fc.de]}}]}]\nnetworks: [{match: {name: x}}]\n"))
	opts := Options{ResolvConf: filepath.Join(f.TempDir(), "none")}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.yaml", data, opts)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.yaml:") && !strings.Contains(line, "list file") {
					t.Fatalf("error without position: %q", line)
				}
			}
			return
		}
		if p.Version != 1 || len(p.Sections) == 0 {
			t.Fatalf("accepted a policy without version or sections: %+v", p)
		}
		if s := p.Settings; s.Priority <= -200 || s.Priority >= 0 || !tableNameRE.MatchString(s.Table) || s.LogRate < 1 {
			t.Fatalf("accepted settings %+v", s)
		}
		for _, s := range p.Sections {
			for _, h := range []Hook{Egress, Host} {
				for _, r := range s.Rules(h) {
					if len(r.Ports) > 0 && !r.Proto.HasPorts() {
						t.Fatalf("accepted ports with %s", r.Proto)
					}
					for _, pr := range r.Ports {
						if pr.First < 1 || pr.First > pr.Last {
							t.Fatalf("accepted the port range %+v", pr)
						}
					}
					if r.Comment != "" && (len(r.Comment) > maxComment || !utf8.ValidString(r.Comment) || strings.ContainsAny(r.Comment, "\"\x00\n")) {
						t.Fatalf("accepted the comment %q", r.Comment)
					}
					checkPrefixes(t, r.Addrs.Prefixes)
				}
			}
		}
		for _, l := range p.Lists {
			checkPrefixes(t, l.Prefixes)
			if l.Names != nil && len(l.Prefixes) > 0 {
				t.Fatalf("list %s holds names and addresses", l.Name)
			}
		}
		if s := p.Settings; s.DNSMinTTL < minDNSTTL || s.DNSMinTTL > s.DNSMaxTTL || s.DNSMaxTTL > maxDNSTTL || s.DNSHold < minDNSHold || s.DNSHold > maxDNSHold {
			t.Fatalf("accepted the settings of names %+v", s)
		}
		p.eachRule(func(r *Rule) {
			if len(r.Addrs.Names) > 0 && r.Hook != Egress {
				t.Fatalf("accepted names in %s rule %+v", r.Hook, r)
			}
		})
		for _, l := range p.NameLists() {
			if len(l.Patterns) == 0 {
				t.Fatalf("accepted the empty list of names %s", l.Name)
			}
			for _, pat := range l.Patterns {
				if back, err := dnsname.ParsePattern(string(pat)); err != nil || back != pat {
					t.Fatalf("accepted the pattern %q, which parses as %q, %v", pat, back, err)
				}
			}
		}
	})
}

// FuzzListFile feeds arbitrary bytes as a list file to ReadListFile, alone
// and through a policy that uses it. It must never panic; every error must
// point into the list file at a line and column that exist (or just past
// the last line); what it accepts must be masked prefixes that print and
// parse back to themselves; and the policy must hold exactly what
// ReadListFile read, or fail with the same problems.
func FuzzListFile(f *testing.F) {
	blocklist, _ := os.ReadFile("testdata/blocklist.txt")
	f.Add(blocklist)
	f.Add([]byte("10.0.0.0/8\n  garbage here\nfe80::1%eth0\n1.2.3.4\x00\n"))
	f.Add([]byte("\ufeff# bom\r\n10.0.0.0/9\r\n10.128.0.0/9 # half\r\n::ffff:1.2.3.4\r\n"))
	f.Add([]byte("10.0.0.1/8\n2001:db8::/129\n010.0.0.1\n::ffff:10.0.0.0/104\n255.255.255.255\n"))
	f.Add([]byte(strings.Repeat("10.0.0.1\n", 9)))
	// No seed of a line over 64 KiB: minimizing its mutants stalls the
	// fuzzer for minutes; TestHostileInput has that case.
	dir := f.TempDir()
	list := filepath.Join(dir, "l.txt")
	policyFile := filepath.Join(dir, "p.yaml")
	const max = 8 // small, so that the limit is reached too
	src := []byte("version: 1\nlists:\n  l: {file: l.txt}\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n      - deny: \"@l\"\n")
	opts := Options{ResolvConf: filepath.Join(dir, "none"), MaxListEntries: max}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(list, data, 0o644); err != nil {
			t.Fatal(err)
		}
		prefixes, errs := ReadListFile(list, max)
		lines := bytes.Split(data, []byte("\n"))
		for _, e := range errs {
			if e.Pos.File != list || e.Pos.Line < 1 || e.Pos.Line > len(lines)+1 || e.Pos.Column < 1 {
				t.Fatalf("error at a position outside the file: %v", e)
			}
			if e.Pos.Line <= len(lines) && e.Pos.Column > utf8.RuneCount(lines[e.Pos.Line-1])+1 {
				t.Fatalf("error past the end of its line %q: %v", lines[e.Pos.Line-1], e)
			}
			if len(e.Error()) > len(list)+400 {
				t.Fatalf("error of %d bytes: %.200s", len(e.Error()), e.Error())
			}
		}
		if len(errs) > maxErrors {
			t.Fatalf("%d errors, more than %d", len(errs), maxErrors)
		}
		if len(errs) == 0 {
			if len(prefixes) > max {
				t.Fatalf("%d entries accepted, more than the limit of %d", len(prefixes), max)
			}
			checkPrefixes(t, prefixes)
		}
		p, err := Parse(policyFile, src, opts)
		switch {
		case len(errs) > 0 && err == nil:
			t.Fatalf("the policy accepted a list file with errors: %v", errs)
		case len(errs) == 0 && err != nil:
			t.Fatalf("the policy refused a list file without errors: %v", err)
		case err != nil:
			for _, e := range errs {
				if !strings.Contains(err.Error(), e.Error()) {
					t.Fatalf("the policy's errors\n%v\nlack the list file's\n%v", err, e)
				}
			}
		case len(p.Lists["l"].Prefixes) != len(prefixes):
			t.Fatalf("the policy holds %d prefixes, the list file %d", len(p.Lists["l"].Prefixes), len(prefixes))
		}
	})
}

// checkPrefixes fails t unless every prefix is valid, masked, not an
// IPv4-mapped IPv6 prefix, and prints as text that parses back to it.
func checkPrefixes(t *testing.T, prefixes []netip.Prefix) {
	t.Helper()
	for _, pfx := range prefixes {
		if !pfx.IsValid() || pfx.Masked() != pfx || pfx.Addr().Is4In6() || pfx.Addr().Zone() != "" {
			t.Fatalf("accepted the prefix %v", pfx)
		}
		back, err := ParsePrefix(pfx.String())
		if err != nil || back != pfx {
			t.Fatalf("%v prints as %q, which parses as %v, %v", pfx, pfx.String(), back, err)
		}
	}
}
