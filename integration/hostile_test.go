package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// dfExit runs the dockerfence binary inside Host like df, against the
// Docker API at dockerHost ("" for none), and returns its standard output,
// its standard error and its exit code. A run that takes 30 s is killed
// and fails t: a FIFO must not hang dockerfence.
func (e *env) dfExit(t *testing.T, dockerHost string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if dockerHost == "" {
		dockerHost = "unix://" + filepath.Join(e.dir, "no-docker.sock")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{"--net=" + e.tp.Host.Path(), binary, "--resolv-conf", e.resolvConf, "--socket", e.socket(), "--docker-host", dockerHost}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", full...)
	cmd.WaitDelay = time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Errorf("dockerfence %s did not return within 30 s; killed", strings.Join(args, " "))
		code = -1
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("dockerfence %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// tableWithHandles lists the table in Host with rule and set handles and
// without counters: a table that was replaced, or one rule of it, lists
// differently even when its rules read the same.
func (e *env) tableWithHandles() string {
	e.t.Helper()
	return withoutMeters(e.tp.Host.Run(e.t, "nft", "-a", "-s", "list", "table", "inet", "dockerfence"))
}

// nftMonitor records the nf_tables events of Host until stop is called.
// stop proves that the monitor sees events, by adding and deleting a table
// of its own, and returns the events other than those.
func (e *env) nftMonitor() (stop func() string) {
	e.t.Helper()
	cmd := exec.Command("nsenter", "--net="+e.tp.Host.Path(), "nft", "monitor")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let it subscribe
	return func() string {
		e.tp.Host.Run(e.t, "nft", "add", "table", "inet", "df_monitor_probe")
		e.tp.Host.Run(e.t, "nft", "delete", "table", "inet", "df_monitor_probe")
		time.Sleep(200 * time.Millisecond) // let the events arrive
		cmd.Process.Kill()
		cmd.Wait()
		var other []string
		probed := false
		for _, l := range strings.Split(out.String(), "\n") {
			switch {
			case strings.Contains(l, "df_monitor_probe"):
				probed = true
			case strings.HasPrefix(l, "# new generation") && strings.HasSuffix(l, "(nft)"):
				// the probe's transactions; dockerfence's would end "(dockerfence)"
			case strings.TrimSpace(l) != "":
				other = append(other, l)
			}
		}
		if !probed {
			e.t.Fatalf("nft monitor did not see a table added and deleted; its output:\n%s", out.String())
		}
		return strings.Join(other, "\n")
	}
}

// TestHostileInputLeavesTableAlone applies the seed policy, then runs
// "dockerfence apply -c BAD" for broken and hostile policies and list files
// of every kind. Each must exit 1 with the problem on one line of stderr
// (file:line:column where it is in a file), and must not touch the table:
// its listing with handles is byte for byte what it was, and nft monitor
// sees no change at all.
func TestHostileInputLeavesTableAlone(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	e.mustDF("apply", "-c", e.write("seed.yaml", seedPolicy))
	before := e.tableWithHandles()
	if !strings.Contains(before, "192.168.0.0/16") {
		t.Fatalf("the seed table lacks its rules:\n%s", before)
	}
	head := "version: 1\nnetworks:\n  - match: {subnet: 172.20.0.0/16}\n    egress:\n"
	withList := "version: 1\nlists:\n  l: {file: l.txt}\nnetworks:\n  - match: {subnet: 172.20.0.0/16}\n    egress:\n      - deny: \"@l\"\n"
	// Each case writes its files into its own directory DIR and returns the
	// policy to apply; want is one whole line of stderr.
	policy := func(src string) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string { return writeIn(t, dir, "p.yaml", src) }
	}
	listed := func(list string) func(t *testing.T, dir string) string {
		return func(t *testing.T, dir string) string {
			writeIn(t, dir, "l.txt", list)
			return writeIn(t, dir, "p.yaml", withList)
		}
	}
	tests := []struct {
		name  string
		input func(t *testing.T, dir string) string
		want  string
	}{
		{"malformed YAML", policy("version: 1\nnetworks: [\n"), "DIR/p.yaml:2:11: invalid YAML: the list that opens here is not closed; add ']'"},
		{"broken second document", policy(seedPolicy + "---\n[unclosed\n"), "DIR/p.yaml:18:1: invalid YAML: the list that opens here is not closed; add ']'"},
		{"invalid UTF-8", policy(head + "      - deny: 10.0.0.0/8\n        comment: \"\xc3\"\n"), "DIR/p.yaml:6:19: the policy contains the byte 0xc3, which is not UTF-8; it must be UTF-8 text"},
		{"unknown key", policy(head + "      - deny: 10.0.0.0/8\n        port: 53\n"), "DIR/p.yaml:6:9: networks[1].egress[1]: unknown key \"port\"; expected one of allow, comment, deny, ports, proto"},
		{"wrong type", policy("version: {v: 1}\nnetworks: [{match: {name: \"*\"}}]\n"), "DIR/p.yaml:1:10: version: expected 1, found a mapping"},
		{"comment nft cannot hold", policy(head + "      - deny: 10.0.0.0/8\n        comment: " + strings.Repeat("データ", 12) + "\n"), "DIR/p.yaml:6:18: networks[1].egress[1].comment: expected 1 to 100 bytes of printable text without double quotes, found 108 bytes; nft keeps 128 bytes of a rule's comment, the rule's ID included"},
		{"invalid CIDR", policy(head + "      - deny: 10.0.0.0/33\n"), "DIR/p.yaml:5:15: networks[1].egress[1].deny: \"10.0.0.0/33\" is not an address or CIDR prefix (e.g. 192.168.0.0/16, 2001:db8::/32)"},
		{"host bits", policy(head + "      - deny: 192.168.1.1/16\n"), "DIR/p.yaml:5:15: networks[1].egress[1].deny: 192.168.1.1/16 has host bits set; did you mean 192.168.0.0/16?"},
		{"port 0", policy(head + "      - deny: any\n        ports: [0]\n"), "DIR/p.yaml:6:17: networks[1].egress[1].ports: port 0 is out of range; expected 1..65535"},
		{"port 65536", policy(head + "      - deny: any\n        ports: [\"1-65536\"]\n"), "DIR/p.yaml:6:17: networks[1].egress[1].ports: port 65536 is out of range; expected 1..65535"},
		{"ports with icmp", policy(head + "      - deny: any\n        proto: icmp\n        ports: [7]\n"), "DIR/p.yaml:7:16: networks[1].egress[1].ports: protocol icmp has no ports; use tcp, udp or sctp, or drop ports"},
		{"missing list file", policy(withList), "DIR/p.yaml:3:13: lists.l.file: cannot read list file DIR/l.txt: no such file or directory"},
		{"list file of 1,000,001 entries", func(t *testing.T, dir string) string {
			b := make([]byte, 0, 16<<20)
			for i := 0; i <= 1_000_000; i++ {
				b = fmt.Appendf(b, "10.%d.%d.%d\n", i>>16, i>>8&0xff, i&0xff)
			}
			writeIn(t, dir, "l.txt", string(b))
			return writeIn(t, dir, "p.yaml", withList)
		}, "DIR/l.txt:1000001:1: more than 1000000 entries, the most one list file may hold; aggregate prefixes (adjacent and overlapping ones merge anyway) or split the list into several files"},
		{"list file garbage", listed("10.0.0.0/8\n<html>\n"), "DIR/l.txt:2:1: \"<html>\" is not an address or CIDR prefix (e.g. 192.168.0.0/16, 2001:db8::/32)"},
		{"list file IPv6 zone", listed("fd00:100::50\n  fe80::1%eth0\n"), "DIR/l.txt:2:3: \"fe80::1%eth0\" has an IPv6 zone; zones have no meaning in a firewall, drop the %…"},
		{"list file NUL", listed("192.168.100.50\x00\n"), "DIR/l.txt:1:15: NUL byte in list entry; a list file is text"},
		{"list file FIFO", func(t *testing.T, dir string) string {
			if err := syscall.Mkfifo(filepath.Join(dir, "l.txt"), 0o644); err != nil {
				t.Fatal(err)
			}
			return writeIn(t, dir, "p.yaml", withList)
		}, "DIR/p.yaml:3:13: lists.l.file: cannot read list file DIR/l.txt: is a FIFO, not a regular file"},
		{"policy symlink loop", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "p.yaml")
			if err := os.Symlink("p.yaml", p); err != nil {
				t.Fatal(err)
			}
			return p
		}, "dockerfence: policy DIR/p.yaml: too many levels of symbolic links"},
		{"policy a directory", func(t *testing.T, dir string) string { return dir }, "dockerfence: policy DIR: is a directory, not a regular file; give the policy file itself"},
		{"policy a FIFO", func(t *testing.T, dir string) string {
			p := filepath.Join(dir, "p.yaml")
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, "dockerfence: policy DIR/p.yaml: is a FIFO, not a regular file; give the policy file itself"},
		{"policy a device", func(t *testing.T, dir string) string { return "/dev/null" }, "dockerfence: policy /dev/null: is a device, not a regular file; give the policy file itself"},
		{"bridge name no interface can have", policy("version: 1\nnetworks:\n  - match: {bridge: \"br/" + strings.Repeat("x", 300) + "\"}\n"), "DIR/p.yaml:3:21: networks[1].match.bridge: \"br/" + strings.Repeat("x", 61) + "\"... is not a bridge interface name or pattern: at most 15 bytes, without '/', ':' or white space"},
		{"name pattern of 300 characters, broken", policy("version: 1\nnetworks:\n  - match: {name: \"[" + strings.Repeat("n", 300) + "\"}\n"), "DIR/p.yaml:3:19: networks[1].match.name: \"[" + strings.Repeat("n", 63) + "\"... is not a valid name pattern"},
		{"priority -300", policy("version: 1\nsettings: {priority: -300}\nnetworks: [{match: {name: \"*\"}}]\n"), "DIR/p.yaml:2:22: settings.priority: -300 is outside -199..-1; it must run after conntrack (-200) and before Docker's filter (0)"},
		{"priority 10", policy("version: 1\nsettings: {priority: 10}\nnetworks: [{match: {name: \"*\"}}]\n"), "DIR/p.yaml:2:22: settings.priority: 10 is outside -199..-1; it must run after conntrack (-200) and before Docker's filter (0)"},
	}
	stop := e.nftMonitor()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(e.dir, "case"+strconv.Itoa(i))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			file := tt.input(t, dir)
			want := strings.ReplaceAll(tt.want, "DIR", dir)
			start := time.Now()
			stdout, stderr, code := e.dfExit(t, "", "apply", "-c", file)
			took := time.Since(start)
			if code != 1 {
				t.Errorf("exit code %d, want 1; stdout:\n%s", code, stdout)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			found := false
			for _, l := range lines {
				found = found || l == want
			}
			if !found {
				t.Errorf("stderr:\n%s\nwant the line:\n%s", stderr, want)
			}
			if len(lines) > 2 {
				t.Errorf("stderr has %d lines, want the problem alone:\n%s", len(lines), stderr)
			}
			if strings.Contains(stderr, "kernel") {
				t.Errorf("the kernel saw the input:\n%s", stderr)
			}
			if took > 10*time.Second {
				t.Errorf("refusing took %v", took)
			}
			if after := e.tableWithHandles(); after != before {
				t.Errorf("the table changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	if events := stop(); strings.TrimSpace(events) != "" {
		t.Errorf("nft monitor saw changes during the refused applies:\n%s", events)
	}
	t.Logf("%d bad inputs tried; the table and its handles stayed as they were, nft monitor saw no event", len(tests))
	e.expect(e.tp.Ctr, []probe{
		{"proxy still allowed", "tcp", hostPort(topo.LANProxy4, 3128), "ok"},
		{"database still refused", "tcp", hostPort(topo.LANDB4, 5432), "refused"},
	})
}

// writeIn writes content to the file name in dir and returns its path.
func writeIn(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHostileNetworkNames fences Docker networks whose names are 300
// characters long or full of characters that mean something to nft, on
// bridges whose names do too (Docker takes any interface name in
// com.docker.network.bridge.name). The names reach the policy's match
// patterns, and bridge names reach the table as map keys and, sanitized,
// chain and set names. apply must succeed without a kernel error, the table
// must list and its --dry-run text load in nft, and the container behind
// the strangest bridge must be fenced by the section of its 300-character
// network name.
func TestHostileNetworkNames(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	weird := `br-a;b{c}$@#` // a valid interface name, full of nft syntax
	e.tp.Host.Run(t, "ip", "link", "set", topo.BridgeName, "down")
	e.tp.Host.Run(t, "ip", "link", "set", topo.BridgeName, "name", weird)
	e.tp.Host.Run(t, "ip", "link", "set", weird, "up")
	// Down dropped the bridge's IPv6 address, the containers' gateway.
	e.tp.Host.Run(t, "ip", "-6", "addr", "replace", topo.HostBridge6+"/64", "dev", weird, "nodad")
	// Bridges with names the kernel takes and nft's syntax does not.
	others := []string{`br-"q`, `br-\x`, `br-*x`, "br-é", "br-x[1]", "br-'{}';"}
	for i, b := range others {
		e.tp.Host.Run(t, "ip", "link", "add", b, "type", "bridge")
		e.tp.Host.Run(t, "ip", "addr", "add", fmt.Sprintf("10.9%d.0.1/24", i), "dev", b)
		e.tp.Host.Run(t, "ip", "link", "set", b, "up")
	}
	name300 := strings.Repeat("n", 299) + "x"
	special := `q"uote;semi{brace}$dollar@at#hash'apos%p` + "\ttab"
	nets := []harness.Network{{Name: name300, Bridge: weird, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}}
	for i, b := range others {
		nets = append(nets, harness.Network{Name: []string{special, "new\nline", "glob*?[x]", "é" + name300, "-", ""}[i], Bridge: b, Subnets: []string{fmt.Sprintf("10.9%d.0.0/24", i)},
			Labels: map[string]string{special: special}})
	}
	f := harness.StartDocker(t, filepath.Join(e.dir, "docker.sock"))
	f.Set(nets)
	pol := e.write("names.yaml", strings.Replace(seedPolicy, "  - match: {subnet: 172.20.0.0/16}", "  - match: {name: \""+name300+"\"}", 1)+
		"  - match: {name: "+strconv.Quote(special)+"}\n    egress_default: deny\n"+
		"  - match: {label: "+strconv.Quote(special+"="+special)+"}\n    egress_default: deny\n"+
		"  - match: {name: \"*\"}\n    egress:\n      - deny: \"@private\"\n")
	stdout, stderr, code := e.dfExit(t, f.URL, "apply", "-c", pol)
	t.Logf("apply: exit %d\n%s%s", code, stdout, stderr)
	if code != 0 || strings.Contains(stderr, "kernel") {
		t.Fatalf("apply failed with exit code %d:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, name300+" on "+weird) {
		t.Errorf("apply does not report the 300-character network on %s:\n%s", weird, stdout)
	}
	table := e.table()
	if !strings.Contains(table, `"`+weird+`" : goto fwd_`) {
		t.Errorf("the table does not dispatch %s:\n%s", weird, table)
	}
	dry, stderr, code := e.dfExit(t, f.URL, "apply", "--dry-run", "-c", pol)
	if code != 0 {
		t.Fatalf("apply --dry-run: exit %d:\n%s", code, stderr)
	}
	// Checked in a namespace without the table, which has flag persist
	// in Host (see TestSeedPolicy).
	e.tp.LAN.Run(t, "nft", "-c", "-f", e.write("names.nft", dry))
	if out, stderr, code := e.dfExit(t, f.URL, "plan", "-c", pol); code != 0 || !strings.Contains(out, "is up to date") {
		t.Errorf("plan after apply: exit %d:\n%s%s", code, out, stderr)
	}
	if out, stderr, code := e.dfExit(t, f.URL, "status", "-c", pol); code != 0 {
		t.Errorf("status: exit %d:\n%s%s", code, out, stderr)
	}
	e.expect(e.tp.Ctr, seedProbes)
}

// TestOverlappingPrefixesApply applies lists and rules whose prefixes
// overlap, repeat, touch and reach the end of the address space. The
// kernel's interval sets take no overlaps: the sets must hold them merged,
// apply must succeed, and a second apply must find nothing to change.
func TestOverlappingPrefixesApply(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	list := e.write("overlap.txt", "# overlapping, repeated, adjacent and top-of-space entries\n"+
		"192.168.0.0/16\n192.168.100.0/24\n192.168.100.50\n192.168.100.50/32\n192.168.100.0/24\n"+
		"10.0.0.0/9\n10.128.0.0/9\n255.255.255.255\n255.255.255.0/24\n"+
		"fd00:100::/64\nfd00:100::50\nfd00::/8\nffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\nffff::/16\n")
	pol := e.write("overlap.yaml", `version: 1
lists:
  overlap: {file: `+list+`}
networks:
  - match: {subnet: 172.20.0.0/16}
    egress:
      - allow: [self, 172.20.0.0/16, 172.20.5.0/24, 192.168.100.1, 192.168.100.1/32]
      - deny: ["@overlap", 192.168.100.0/25, "@private", 192.168.100.50]
`)
	out := e.mustDF("apply", "-c", pol)
	t.Logf("apply: %s", strings.TrimSpace(out))
	set := e.tp.Host.Run(t, "nft", "list", "set", "inet", "dockerfence", "fwd_br-test.e2_4")
	for _, want := range []string{"10.0.0.0/8", "192.168.0.0/16", "255.255.255.0/24"} {
		if !strings.Contains(set, want) {
			t.Errorf("set fwd_br-test.e2_4 lacks the merged %s:\n%s", want, set)
		}
	}
	for _, inside := range []string{"10.0.0.0/9", "192.168.100.0/24", "192.168.100.50", "255.255.255.255"} {
		if strings.Contains(set, inside) {
			t.Errorf("set fwd_br-test.e2_4 holds %s, which is inside another of its prefixes:\n%s", inside, set)
		}
	}
	set6 := e.tp.Host.Run(t, "nft", "list", "set", "inet", "dockerfence", "fwd_br-test.e2_6")
	for _, want := range []string{"fc00::/7", "fe80::/10", "ffff::/16"} {
		if !strings.Contains(set6, want) {
			t.Errorf("set fwd_br-test.e2_6 lacks the merged %s:\n%s", want, set6)
		}
	}
	if out := e.mustDF("plan", "-c", pol); !strings.Contains(out, "is up to date") {
		t.Errorf("plan after apply: %s", out)
	}
	e.expect(e.tp.Ctr, []probe{
		{"proxy", "tcp", hostPort(topo.LANProxy4, 3128), "ok"},
		{"database v4", "tcp", hostPort(topo.LANDB4, 5432), "refused"},
		{"database v6", "tcp", hostPort(topo.LANDB6, 5432), "refused"},
		{"internet", "tcp", hostPort(topo.InetIP4, 80), "ok"},
	})
}
