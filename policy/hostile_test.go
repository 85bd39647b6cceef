package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/nft"
)

// hostileHead starts a policy whose first section's egress rules follow.
const hostileHead = "version: 1\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n"

// hostileList is a policy with one list "l" read from the file l.txt next to it.
const hostileList = "version: 1\nlists:\n  l: {file: l.txt}\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n      - deny: \"@l\"\n"

// writeMillionAndOne writes a list file of 1,000,001 distinct IPv4 host
// addresses, one more than a list file may hold.
func writeMillionAndOne(t *testing.T, file string) {
	t.Helper()
	b := make([]byte, 0, 16<<20)
	for i := 0; i <= 1_000_000; i++ {
		b = append(b, "10."...)
		b = strconv.AppendInt(b, int64(i>>16), 10)
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(i>>8&0xff), 10)
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(i&0xff), 10)
		b = append(b, '\n')
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHostileInput feeds broken and hostile policies and list files to
// Load. Each must be refused with one precise message: the file, line and
// column of the problem where it has one, what is wrong and what to do.
// DIR in a case's want stands for the directory of the policy (p.yaml).
func TestHostileInput(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	name300 := strings.Repeat("n", 300)
	tests := []struct {
		name string
		src  string // the policy, written to DIR/p.yaml unless setup makes p.yaml
		// files are written next to the policy before setup runs.
		files map[string]string
		setup func(t *testing.T, dir string)
		want  string
	}{
		// Malformed YAML.
		{name: "yaml unclosed flow list", src: "version: 1\nnetworks: [\n", want: "DIR/p.yaml:2:11: invalid YAML: the list that opens here is not closed; add ']'"},
		{name: "yaml tab indentation", src: "version: 1\n\tnetworks: []\n", want: "DIR/p.yaml:2:1: invalid YAML: a tab indents this line; YAML does not allow tabs for indentation; use spaces"},
		{name: "yaml unclosed quote", src: "version: 1\nnetworks:\n  - match: {name: \"app}\n", want: "DIR/p.yaml:3:19: invalid YAML: the quoted value that starts here is not closed; add the closing \""},
		{name: "yaml mapping in a scalar", src: "version: 1\nnetworks: a: b\n", want: "DIR/p.yaml:2:11: invalid YAML: an unquoted value cannot contain \": \"; quote it: networks: \"a: b\""},
		{name: "yaml unknown alias", src: "version: 1\nnetworks: *nets\n", want: "DIR/p.yaml:2:11: invalid YAML: an unquoted value cannot start with '*'; quote it: networks: \"*nets\""},
		{name: "yaml broken second document", src: "version: 1\nnetworks: [{match: {name: x}}]\n---\n[unclosed\n", want: "DIR/p.yaml:4:1: invalid YAML: the list that opens here is not closed; add ']'"},
		{name: "yaml second document", src: "version: 1\nnetworks: [{match: {name: x}}]\n---\nversion: 1\n", want: "DIR/p.yaml:3:1: a second YAML document; a policy is one document"},
		{name: "yaml too deep", src: "version: 1\nnetworks: " + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + "\n", want: "DIR/p.yaml:2:1: invalid YAML: exceeded max depth of 10000"},
		{name: "invalid UTF-8", src: "version: 1\nnetworks:\n  - match: {name: \"\xff\"}\n", want: "DIR/p.yaml:3:20: the policy contains the byte 0xff, which is not UTF-8; it must be UTF-8 text"},
		{name: "NUL in the policy", src: "version: 1\nnetworks:\n  - match: {name: a\x00}\n", want: "DIR/p.yaml:3:20: the policy contains a NUL byte; it must be UTF-8 text"},
		{name: "only comments", src: "# version: 1\n", want: "DIR/p.yaml:1:1: the policy has only comments; expected a mapping with version: 1 and networks"},
		{name: "byte order mark only", src: "\ufeff\n", want: "DIR/p.yaml:1:1: the policy is empty"},
		{name: "not a mapping", src: "- version: 1\n", want: "DIR/p.yaml:1:1: expected a mapping with version: 1 and networks, found a list"},

		// Unknown keys.
		{name: "unknown top key", src: "version: 1\nnetwork: []\n", want: "DIR/p.yaml:2:1: top level: unknown key \"network\"; expected one of containers, lists, networks, settings, version"},
		{name: "unknown setting", src: "version: 1\nsettings: {prio: -10}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:2:12: settings: unknown key \"prio\"; expected one of deny_action, dns_hold, dns_max_ttl, dns_min_ttl, identity_mark, log_denied, log_group, log_rate, mode, priority, table, tunnel_mark"},
		{name: "unknown section key", src: "version: 1\nnetworks:\n  - match: {name: x}\n    inbound: []\n", want: "DIR/p.yaml:4:5: networks[1]: unknown key \"inbound\"; expected one of egress, egress_default, host, host_default, ingress, ingress_default, match"},
		{name: "unknown match key", src: "version: 1\nnetworks:\n  - match: {network: x}\n", want: "DIR/p.yaml:3:13: networks[1].match: unknown key \"network\"; expected one of bridge, label, name, subnet"},
		{name: "unknown rule key", src: hostileHead + "      - allow: any\n        port: 53\n", want: "DIR/p.yaml:6:9: networks[1].egress[1]: unknown key \"port\"; expected one of allow, comment, deny, ports, proto"},
		{name: "unknown list file key", src: "version: 1\nlists:\n  l: {path: l.txt}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:3:7: lists.l: unknown key \"path\"; expected one of file"},
		{name: "list as a key", src: "version: 1\n[networks]: [{match: {name: x}}]\n", want: "DIR/p.yaml:2:1: top level: expected a name as key, found a list"},
		{name: "merge key", src: "version: 1\nnetworks:\n  - match: {name: x}\n    <<: {egress: []}\n", want: "DIR/p.yaml:4:5: networks[1]: unknown key \"<<\""},
		{name: "long unknown key is cut", src: "version: 1\n" + long[:1000] + ": 1\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:2:1: top level: unknown key \"" + strings.Repeat("x", 64) + "\"...; expected one of"},

		// Wrong types.
		{name: "version a mapping", src: "version: {v: 1}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:1:10: version: expected 1, found a mapping"},
		{name: "version empty", src: "version:\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:1:9: version: expected 1, found nothing"},
		{name: "version 2", src: "version: 2\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:1:10: unsupported version \"2\"; this dockerfence reads version: 1"},
		{name: "networks a mapping", src: "version: 1\nnetworks: {match: {name: x}}\n", want: "DIR/p.yaml:2:11: networks: expected a list of sections, each with match and rules, found a mapping"},
		{name: "section a string", src: "version: 1\nnetworks: [app]\n", want: "DIR/p.yaml:2:12: networks[1]: expected a mapping, found \"app\""},
		{name: "egress a mapping", src: "version: 1\nnetworks:\n  - match: {name: x}\n    egress: {allow: any}\n", want: "DIR/p.yaml:4:13: networks[1].egress: expected a list of rules, found a mapping"},
		{name: "allow a mapping", src: hostileHead + "      - allow: {cidr: 10.0.0.0/8}\n", want: "DIR/p.yaml:5:16: networks[1].egress[1].allow: expected an address, a CIDR, a list of them, @list, {names: [...]}, self or any, found a mapping"},
		{name: "ports a mapping", src: hostileHead + "      - allow: any\n        ports: {tcp: 53}\n", want: "DIR/p.yaml:6:16: networks[1].egress[1].ports: expected a list of ports and \"lo-hi\" ranges, found a mapping"},
		{name: "proto a list", src: hostileHead + "      - allow: any\n        proto: [tcp, udp]\n", want: "DIR/p.yaml:6:16: networks[1].egress[1].proto: expected a value, found a list"},
		{name: "priority a string", src: "version: 1\nsettings: {priority: \"-10\"}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:2:22: settings.priority: expected an integer, found \"-10\""},
		{name: "priority a float", src: "version: 1\nsettings: {priority: -10.5}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:2:22: settings.priority: expected an integer, found \"-10.5\""},
		{name: "log_denied yes", src: "version: 1\nsettings: {log_denied: yes}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:2:24: settings.log_denied: expected true or false, found \"yes\""},
		{name: "list of lists", src: "version: 1\nlists:\n  l: [[10.0.0.0/8]]\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:3:7: lists.l: expected a value, found a list"},
		{name: "comment too long in bytes", src: hostileHead + "      - allow: any\n        comment: " + strings.Repeat("データ", 12) + "\n", want: "DIR/p.yaml:6:18: networks[1].egress[1].comment: expected 1 to 100 bytes of printable text without double quotes, found 108 bytes; nft keeps 128 bytes of a rule's comment, the rule's ID included"},
		{name: "comment with a newline", src: hostileHead + "      - allow: any\n        comment: \"a\\nb\"\n", want: "DIR/p.yaml:6:18: networks[1].egress[1].comment: expected 1 to 100 bytes of printable text without double quotes, found 3 bytes with the unprintable character U+000A"},

		// Invalid CIDRs.
		{name: "prefix length 33", src: hostileHead + "      - deny: 10.0.0.0/33\n", want: "DIR/p.yaml:5:15: networks[1].egress[1].deny: \"10.0.0.0/33\" is not an address or CIDR prefix (e.g. 192.168.0.0/16, 2001:db8::/32)"},
		{name: "prefix length 129", src: hostileHead + "      - deny: \"2001:db8::/129\"\n", want: "DIR/p.yaml:5:15: networks[1].egress[1].deny: \"2001:db8::/129\" is not an address"},
		{name: "host bits", src: hostileHead + "      - deny: 10.0.0.1/8\n", want: "DIR/p.yaml:5:15: networks[1].egress[1].deny: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"},
		{name: "octal-looking octet", src: hostileHead + "      - deny: 010.0.0.1\n", want: "DIR/p.yaml:5:15: networks[1].egress[1].deny: \"010.0.0.1\" is not an address"},
		{name: "two prefix lengths", src: hostileHead + "      - deny: 10.0.0.0/8/16\n", want: "DIR/p.yaml:5:15: networks[1].egress[1].deny: \"10.0.0.0/8/16\" is not an address"},
		{name: "IPv4-mapped prefix", src: hostileHead + "      - deny: \"::ffff:10.0.0.0/104\"\n", want: "DIR/p.yaml:5:15: networks[1].egress[1].deny: \"::ffff:10.0.0.0/104\" is an IPv4-mapped IPv6 prefix; write the IPv4 prefix instead"},
		{name: "inline zone", src: hostileHead + "      - deny: \"fe80::1%eth0\"\n", want: "DIR/p.yaml:5:15: networks[1].egress[1].deny: \"fe80::1%eth0\" has an IPv6 zone; zones have no meaning in a firewall, drop the %…"},
		{name: "bad list item", src: "version: 1\nlists:\n  l: [10.0.0.0/8, 300.1.1.1]\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:3:19: lists.l: \"300.1.1.1\" is not an address"},
		{name: "bad match subnet", src: "version: 1\nnetworks:\n  - match: {subnet: 172.20.0.0/33}\n", want: "DIR/p.yaml:3:21: networks[1].match.subnet: \"172.20.0.0/33\" is not a CIDR prefix such as 172.20.0.0/16"},
		{name: "long address is cut", src: hostileHead + "      - deny: " + long[:100000] + "\n", want: "DIR/p.yaml:5:15: networks[1].egress[1].deny: \"" + strings.Repeat("x", 64) + "\"... is not an address"},

		// Ports.
		{name: "port 0", src: hostileHead + "      - allow: any\n        ports: [0]\n", want: "DIR/p.yaml:6:17: networks[1].egress[1].ports: port 0 is out of range; expected 1..65535"},
		{name: "port 65536", src: hostileHead + "      - allow: any\n        ports: [65536]\n", want: "DIR/p.yaml:6:17: networks[1].egress[1].ports: port 65536 is out of range; expected 1..65535"},
		{name: "port range to 65536", src: hostileHead + "      - allow: any\n        ports: [\"1-65536\"]\n", want: "DIR/p.yaml:6:17: networks[1].egress[1].ports: port 65536 is out of range; expected 1..65535"},
		{name: "port beyond int64", src: hostileHead + "      - allow: any\n        ports: [99999999999999999999]\n", want: "DIR/p.yaml:6:17: networks[1].egress[1].ports: port 99999999999999999999 is out of range; expected 1..65535"},
		{name: "negative port", src: hostileHead + "      - allow: any\n        ports: [-5]\n", want: "DIR/p.yaml:6:17: networks[1].egress[1].ports: \"-5\" is not a port; expected a number 1..65535 or a range \"lo-hi\""},
		{name: "port with a sign", src: hostileHead + "      - allow: any\n        ports: [\"+53\"]\n", want: "DIR/p.yaml:6:17: networks[1].egress[1].ports: \"+53\" is not a port; expected a number 1..65535 or a range \"lo-hi\""},
		{name: "three-part range", src: hostileHead + "      - allow: any\n        ports: [\"1-2-3\"]\n", want: "DIR/p.yaml:6:17: networks[1].egress[1].ports: \"1-2-3\" is not a port; expected a number 1..65535 or a range \"lo-hi\""},
		{name: "backwards range", src: hostileHead + "      - allow: any\n        ports: [\"90-80\"]\n", want: "DIR/p.yaml:6:17: networks[1].egress[1].ports: port range \"90-80\" runs backwards; write it low-high"},
		{name: "ports with icmp", src: hostileHead + "      - allow: any\n        proto: icmp\n        ports: [53]\n", want: "DIR/p.yaml:7:16: networks[1].egress[1].ports: protocol icmp has no ports; use tcp, udp or sctp, or drop ports"},
		{name: "ports with icmpv6", src: hostileHead + "      - allow: any\n        ports: [53]\n        proto: icmpv6\n", want: "DIR/p.yaml:6:16: networks[1].egress[1].ports: protocol icmpv6 has no ports; use tcp, udp or sctp, or drop ports"},

		// List files.
		{name: "missing list file", src: hostileList, want: "DIR/p.yaml:3:13: lists.l.file: cannot read list file DIR/l.txt: no such file or directory"},
		{name: "list file a directory", src: hostileList, setup: func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, "l.txt")) }, want: "DIR/p.yaml:3:13: lists.l.file: cannot read list file DIR/l.txt: is a directory, not a regular file"},
		{name: "list file a FIFO", src: hostileList, setup: func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, "l.txt")) }, want: "DIR/p.yaml:3:13: lists.l.file: cannot read list file DIR/l.txt: is a FIFO, not a regular file"},
		{name: "list file a device", src: "version: 1\nlists:\n  l: {file: /dev/zero}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:3:13: lists.l.file: cannot read list file /dev/zero: is a device, not a regular file"},
		{name: "list file a symlink loop", src: hostileList, setup: func(t *testing.T, dir string) { symlink(t, "l.txt", filepath.Join(dir, "l.txt")) }, want: "DIR/p.yaml:3:13: lists.l.file: cannot read list file DIR/l.txt: too many levels of symbolic links"},
		{name: "list file path empty", src: "version: 1\nlists:\n  l: {file: \"\"}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:3:13: lists.l.file: empty; expected the path of a list file"},
		{name: "list file path with NUL", src: "version: 1\nlists:\n  l: {file: \"l\\0.txt\"}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:3:13: lists.l.file: the path \"l\\x00.txt\" contains a NUL byte"},
		{name: "list file of 1,000,001 entries", src: hostileList, setup: func(t *testing.T, dir string) { writeMillionAndOne(t, filepath.Join(dir, "l.txt")) }, want: "DIR/l.txt:1000001:1: more than 1000000 entries, the most one list file may hold; aggregate prefixes (adjacent and overlapping ones merge anyway) or split the list into several files"},
		{name: "list file garbage", src: hostileList, files: map[string]string{"l.txt": "10.0.0.0/8\n  <html><body>\n"}, want: "DIR/l.txt:2:3: \"<html><body>\" is not an address or CIDR prefix (e.g. 192.168.0.0/16, 2001:db8::/32)"},
		{name: "list file of garbage stops early", src: hostileList, files: map[string]string{"l.txt": strings.Repeat("garbage\n", 100000)}, want: "DIR/l.txt:20:1: stopped reading after 19 bad entries; is this an address list?"},
		{name: "list file zone", src: hostileList, files: map[string]string{"l.txt": "# link-local\nfe80::1%br-app\n"}, want: "DIR/l.txt:2:1: \"fe80::1%br-app\" has an IPv6 zone; zones have no meaning in a firewall, drop the %…"},
		{name: "list file NUL", src: hostileList, files: map[string]string{"l.txt": "10.0.0.1\n\t10.0.\x000.2 # x\n"}, want: "DIR/l.txt:2:7: NUL byte in list entry; a list file is text"},
		{name: "list file line of 1 MiB", src: hostileList, files: map[string]string{"l.txt": "10.0.0.1\n" + long + "\n"}, want: "DIR/l.txt:2:1: cannot read: a line longer than 64 KiB; a list file holds one address or CIDR a line"},
		{name: "list file host bits", src: hostileList, files: map[string]string{"l.txt": "\ufeff10.0.0.1/8\n"}, want: "DIR/l.txt:1:1: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"},

		// The policy file itself.
		{name: "policy a symlink loop", setup: func(t *testing.T, dir string) { symlink(t, "p.yaml", filepath.Join(dir, "p.yaml")) }, want: "policy DIR/p.yaml: too many levels of symbolic links"},
		{name: "policy a directory", setup: func(t *testing.T, dir string) { mkdir(t, filepath.Join(dir, "p.yaml")) }, want: "policy DIR/p.yaml: is a directory, not a regular file; give the policy file itself"},
		{name: "policy a FIFO", setup: func(t *testing.T, dir string) { mkfifo(t, filepath.Join(dir, "p.yaml")) }, want: "policy DIR/p.yaml: is a FIFO, not a regular file; give the policy file itself"},
		{name: "policy a device", setup: func(t *testing.T, dir string) { symlink(t, "/dev/zero", filepath.Join(dir, "p.yaml")) }, want: "policy DIR/p.yaml: is a device, not a regular file; give the policy file itself"},
		{name: "policy missing", setup: func(*testing.T, string) {}, want: "policy DIR/p.yaml: no such file or directory"},
		{name: "policy over 4 MiB", src: "version: 1\n#" + strings.Repeat("x", 4<<20) + "\n", want: "policy DIR/p.yaml: 4194317 bytes is more than the 4194304 a policy may have; move long address lists to list files"},

		// Network names and bridge names.
		{name: "name pattern with a bad class", src: "version: 1\nnetworks:\n  - match: {name: \"app[\"}\n", want: "DIR/p.yaml:3:19: networks[1].match.name: \"app[\" is not a valid name pattern"},
		{name: "name pattern of 300 characters with a bad class", src: "version: 1\nnetworks:\n  - match: {name: \"" + name300 + "[\"}\n", want: "DIR/p.yaml:3:19: networks[1].match.name: \"" + strings.Repeat("n", 64) + "\"... is not a valid name pattern"},
		{name: "bridge of 16 bytes", src: "version: 1\nnetworks:\n  - match: {bridge: br-0123456789abc}\n", want: "DIR/p.yaml:3:21: networks[1].match.bridge: \"br-0123456789abc\" is not a bridge interface name or pattern: at most 15 bytes, without '/', ':' or white space"},
		{name: "bridge with a slash", src: "version: 1\nnetworks:\n  - match: {bridge: \"br/app\"}\n", want: "DIR/p.yaml:3:21: networks[1].match.bridge: \"br/app\" is not a bridge interface name or pattern"},
		{name: "bridge with a space", src: "version: 1\nnetworks:\n  - match: {bridge: \"br app\"}\n", want: "DIR/p.yaml:3:21: networks[1].match.bridge: \"br app\" is not a bridge interface name or pattern"},
		{name: "bridge dot-dot", src: "version: 1\nnetworks:\n  - match: {bridge: \"..\"}\n", want: "DIR/p.yaml:3:21: networks[1].match.bridge: \"..\" is not a bridge interface name or pattern"},

		// Priorities.
		{name: "priority -300", src: "version: 1\nsettings: {priority: -300}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:2:22: settings.priority: -300 is outside -199..-1; it must run after conntrack (-200) and before Docker's filter (0)"},
		{name: "priority 10", src: "version: 1\nsettings: {priority: 10}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:2:22: settings.priority: 10 is outside -199..-1; it must run after conntrack (-200) and before Docker's filter (0)"},
		{name: "priority -200", src: "version: 1\nsettings:\n  priority: -200\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:3:13: settings.priority: -200 is outside -199..-1"},
		{name: "priority 0", src: "version: 1\nsettings:\n  priority: 0\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:3:13: settings.priority: 0 is outside -199..-1"},
		{name: "priority beyond int64", src: "version: 1\nsettings: {priority: -99999999999999999999}\nnetworks: [{match: {name: x}}]\n", want: "DIR/p.yaml:2:22: settings.priority: expected an integer, found \"-99999999999999999999\""},

		// Many problems: the first 20 and how many more.
		{name: "many problems", src: hostileHead + strings.Repeat("      - deny: bad\n", 25), want: "DIR/p.yaml: 5 more problems not shown; fix these first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "p.yaml")
			for name, content := range tt.files {
				writeFile(t, filepath.Join(dir, name), content)
			}
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			if tt.src != "" {
				writeFile(t, file, tt.src)
			}
			want := strings.ReplaceAll(tt.want, "DIR", dir)
			// A FIFO or a device must not hang Load: it runs apart, and a
			// Load that takes 20 s fails the test (and leaks the goroutine).
			type result struct {
				p   *Policy
				err error
			}
			done := make(chan result, 1)
			opts := testOpts(t)
			go func() {
				p, err := Load(file, opts)
				done <- result{p, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(20 * time.Second):
				t.Fatalf("Load has not returned after 20 s; want the error %q", want)
			}
			p, err := r.p, r.err
			if err == nil {
				t.Fatalf("accepted (%d sections); want the error %q", len(p.Sections), want)
			}
			msg := err.Error()
			if !strings.Contains(msg, want) {
				t.Errorf("error:\n%s\nwant it to contain:\n%s", msg, want)
			}
			// The message names the problem once, on one line per problem,
			// without the megabyte-long values some cases hold.
			for _, line := range strings.Split(msg, "\n") {
				if len(line) > 400+len(dir) {
					t.Errorf("a line of %d bytes: %.200s...", len(line), line)
				}
			}
			var el ErrorList
			if errors.As(err, &el) {
				for _, e := range el {
					if e.Pos.File == "" || e.Pos.Line < 0 || e.Pos.Line > 0 && e.Pos.Column < 1 {
						t.Errorf("problem without a proper position: %+v", e)
					}
				}
			}
		})
	}
}

// TestHostileInputAccepted holds the inputs that look hostile but are fine:
// they must load, and mean what they say.
func TestHostileInputAccepted(t *testing.T) {
	name300 := strings.Repeat("n", 300)
	special := `a"b;c{d}$e@f#g'h\i` + "\tj"
	src := fmt.Sprintf(`version: 1
lists:
  overlap: [10.0.0.0/8, 10.1.0.0/16, 10.0.0.0/8, 11.0.0.0/8, 255.255.255.255, "::/0", "2001:db8::1"]
  file: {file: l.txt}
networks:
  - match: {name: %q}
    egress:
      - deny: ["@overlap", "@file", 10.2.3.0/24, self]
  - match: {name: %q} # a name pattern: \ escapes
    egress:
      - deny: "@file"
  - match: {bridge: "br-x;{}"}
  - match: {label: %q}
`, name300, strings.ReplaceAll(special, `\`, `\\`), special+"="+special)
	dir := t.TempDir()
	// A byte order mark, CRLF line ends, comments and overlaps.
	writeFile(t, filepath.Join(dir, "l.txt"), "\ufeff# blocklist\r\n10.0.0.0/9\r\n10.128.0.0/9 # the other half\r\n\r\n10.5.5.5\r\n")
	file := filepath.Join(dir, "p.yaml")
	writeFile(t, file, src)
	p, err := Load(file, testOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Lists["file"].Prefixes); got != 3 {
		t.Errorf("list file entries = %d, want 3", got)
	}
	n300 := Network{Name: name300, Bridge: "br-1", Subnets: mustPrefixes("10.0.0.0/24")}
	nSpecial := Network{Name: special, Bridge: "br-2", Labels: map[string]string{special: special}}
	if s := p.SectionFor(n300); s == nil || s.Index != 1 {
		t.Errorf("the network named with 300 characters falls to section %v, want 1", s)
	}
	if s := p.SectionFor(nSpecial); s == nil || s.Index != 2 {
		t.Errorf("the network named %q falls to section %v, want 2", special, s)
	}
	if s := p.SectionFor(Network{Name: "other", Bridge: "br-x;{}"}); s == nil || s.Index != 3 {
		t.Errorf("bridge br-x;{} falls to section %v, want 3", s)
	}
	if s := p.SectionFor(Network{Name: "other", Bridge: "br-3", Labels: map[string]string{special: special}}); s == nil || s.Index != 4 {
		t.Errorf("the label with special characters falls to section %v, want 4", s)
	}
	// Overlapping and repeated prefixes merge into disjoint ranges, as an
	// interval set needs; the file's two halves join into 10.0.0.0/8.
	r := p.Sections[0].Rules(Egress)[0]
	got := nft.Ranges(p.Resolve(r.Addrs, n300))
	want := []nft.Range{
		{From: netip.MustParseAddr("10.0.0.0"), To: netip.MustParseAddr("11.255.255.255")},
		{From: netip.MustParseAddr("255.255.255.255"), To: netip.MustParseAddr("255.255.255.255")},
		{From: netip.MustParseAddr("::"), To: netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ranges:\n got %v\nwant %v", got, want)
	}
}

func writeFile(t *testing.T, file, content string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, file string) {
	t.Helper()
	if err := syscall.Mkfifo(file, 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestListFileLimit holds the limit on list file entries to its word: max
// entries load, one more is refused at the entry that is one too many,
// whatever comments and blank lines come between; and the default is
// 1,000,000 (TestHostileInput refuses 1,000,001).
func TestListFileLimit(t *testing.T) {
	file := filepath.Join(t.TempDir(), "l.txt")
	writeFile(t, file, "# ten entries\n"+strings.Repeat("10.0.0.1\n\n# comment\n", 10))
	if got, errs := ReadListFile(file, 10); len(errs) != 0 || len(got) != 10 {
		t.Errorf("10 entries with a limit of 10: %d read, errors %v", len(got), errs)
	}
	writeFile(t, file, "# eleven entries\n"+strings.Repeat("10.0.0.1\n\n# comment\n", 11))
	_, errs := ReadListFile(file, 10)
	want := file + ":32:1: more than 10 entries, the most one list file may hold"
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), want) {
		t.Errorf("11 entries with a limit of 10: %v; want one error starting %q", errs, want)
	}
	if defaultMaxListEntries != 1_000_000 {
		t.Errorf("the default limit is %d, want 1,000,000", defaultMaxListEntries)
	}
}
