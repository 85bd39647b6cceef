package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// seedPolicy is the second field report's rules in dockerfence's format, plus
// the LAN's IPv6 prefix, so that the database is denied in both families.
const seedPolicy = `version: 1
networks:
  - match: {subnet: 172.20.0.0/16}
    egress:
      - allow: self
      - allow: 192.168.100.1
        comment: HTTP proxy
      - allow: 192.168.100.2
        proto: udp
        ports: [53]
        comment: DNS
      - deny: 192.168.0.0/16
        comment: private network
      - deny: "fd00:100::/64"
        comment: private network (IPv6)
    egress_default: allow
`

// lanServers starts the proxy, DNS and database of the LAN and the internet host.
func (e *env) lanServers() {
	for _, a := range []string{topo.LANProxy4, topo.LANDNS4, topo.LANDB4, topo.LANProxy6, topo.LANDNS6, topo.LANDB6} {
		e.tp.LAN.ListenTCP(e.t, hostPort(a, 5432))
		e.tp.LAN.ListenTCP(e.t, hostPort(a, 53))
		e.tp.LAN.ListenUDP(e.t, hostPort(a, 53))
		e.tp.LAN.ListenTCP(e.t, hostPort(a, 3128))
	}
	e.tp.Inet.ListenTCP(e.t, hostPort(topo.InetIP4, 80))
	e.tp.Inet.ListenTCP(e.t, hostPort(topo.InetIP6, 80))
	e.tp.Inet.ListenUDP(e.t, hostPort(topo.InetIP4, 9))
}

var seedProbes = []probe{
	{"proxy", "tcp", hostPort(topo.LANProxy4, 3128), "ok"},
	{"dns over udp", "udp", hostPort(topo.LANDNS4, 53), "ok"},
	{"dns over tcp", "tcp", hostPort(topo.LANDNS4, 53), "refused"},
	{"database v4", "tcp", hostPort(topo.LANDB4, 5432), "refused"},
	{"database v6", "tcp", hostPort(topo.LANDB6, 5432), "refused"},
	{"internet v4", "tcp", hostPort(topo.InetIP4, 80), "ok"},
	{"internet v6", "tcp", hostPort(topo.InetIP6, 80), "ok"},
}

func TestSeedPolicy(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	e.expect(e.tp.Ctr, []probe{{"database before apply", "tcp", hostPort(topo.LANDB4, 5432), "ok"}})
	pol := e.write("seed.yaml", seedPolicy)
	out := e.mustDF("apply", "-c", pol)
	if !strings.Contains(out, "1 networks fenced (br-test on br-test)") {
		t.Errorf("apply output: %s", out)
	}
	e.expect(e.tp.Ctr, seedProbes)

	t.Run("docker-style accepts above", func(t *testing.T) {
		// What Docker effectively does when it recreates a network.
		e.tp.Host.Run(t, "iptables", "-I", "FORWARD", "1", "-j", "ACCEPT")
		e.tp.Host.Run(t, "ip6tables", "-I", "FORWARD", "1", "-j", "ACCEPT")
		e.expect(e.tp.Ctr, seedProbes)
	})

	t.Run("status counts the denials", func(t *testing.T) {
		var s struct {
			Table struct {
				Present bool     `json:"present"`
				InSync  bool     `json:"in_sync"`
				Drift   []string `json:"drift"`
			} `json:"table"`
			Networks []struct {
				Bridge string
				Rules  []struct {
					ID      string
					Comment string
					Packets uint64
				}
			}
		}
		if err := json.Unmarshal([]byte(e.mustDF("status", "--json", "-c", pol)), &s); err != nil {
			t.Fatal(err)
		}
		if !s.Table.Present || !s.Table.InSync || len(s.Networks) != 1 {
			t.Fatalf("status: %+v", s)
		}
		counts := map[string]uint64{}
		for _, r := range s.Networks[0].Rules {
			counts[r.Comment] += r.Packets
		}
		if counts["private network"] == 0 || counts["private network (IPv6)"] == 0 || counts["HTTP proxy"] == 0 {
			t.Errorf("counters by comment: %v", counts)
		}
		human := e.mustDF("status", "-c", pol)
		for _, want := range []string{"br-test", "172.20.0.0/16,fd00:20::/64", "egress 4", "private network", "matches the policy"} {
			if !strings.Contains(human, want) {
				t.Errorf("status output lacks %q:\n%s", want, human)
			}
		}
	})

	t.Run("dry-run is valid nft syntax", func(t *testing.T) {
		text := e.write("dry.nft", e.mustDF("apply", "--dry-run", "-c", pol))
		// Checked in a namespace without dockerfence's table: the Host's
		// has flag persist, which nft 1.0.6 cannot keep (its table
		// command asks for no flags, and the kernel refuses).
		e.tp.LAN.Run(t, "nft", "-c", "-f", text)
	})

	t.Run("explain agrees", func(t *testing.T) {
		out := e.mustDF("explain", "-c", pol, "--network", "172.20.0.0/16", "--to", hostPort(topo.LANDB4, 5432))
		if !strings.Contains(out, `egress 4 "private network"`) || !strings.Contains(out, "verdict  deny (reject)") {
			t.Errorf("explain:\n%s", out)
		}
	})
}

func TestReapplyIdempotentAndBadPolicyChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	pol := e.write("seed.yaml", seedPolicy)
	e.mustDF("apply", "-c", pol)
	before := e.table()
	if before == "" {
		t.Fatal("no table after apply")
	}
	e.mustDF("apply", "-c", pol)
	if after := e.table(); after != before {
		t.Errorf("re-apply changed the table:\n%s\nvs\n%s", before, after)
	}
	if out := e.mustDF("plan", "-c", pol); !strings.Contains(out, "is up to date") {
		t.Errorf("plan after apply: %s", out)
	}
	bad := e.write("bad.yaml", strings.Replace(seedPolicy, "192.168.0.0/16", "192.168.0.0/33", 1))
	out, err := e.df("apply", "-c", bad)
	if err == nil || !strings.Contains(out, "bad.yaml:12:15:") || !strings.Contains(out, "nothing changed") {
		t.Errorf("bad policy: err=%v\n%s", err, out)
	}
	if after := e.table(); after != before {
		t.Errorf("a bad policy changed the table")
	}
	needsDocker := e.write("named.yaml", strings.Replace(seedPolicy, "{subnet: 172.20.0.0/16}", "{name: app_default}", 1))
	out, err = e.df("apply", "-c", needsDocker)
	if err == nil || !strings.Contains(out, "docker is not reachable") || !strings.Contains(out, "nothing changed") {
		t.Errorf("name match without Docker: err=%v\n%s", err, out)
	}
	if after := e.table(); after != before {
		t.Errorf("a failed Docker lookup changed the table")
	}
	e.expect(e.tp.Ctr, seedProbes)

	if out := e.mustDF("delete", "-c", pol); !strings.Contains(out, "deleted table inet dockerfence") {
		t.Errorf("delete: %s", out)
	}
	if e.table() != "" {
		t.Error("table still present after delete")
	}
	e.expect(e.tp.Ctr, []probe{{"database after delete", "tcp", hostPort(topo.LANDB4, 5432), "ok"}})
	if out := e.mustDF("delete", "-c", pol); !strings.Contains(out, "does not exist") {
		t.Errorf("second delete: %s", out)
	}
}

// TestKernelRefusalLeavesOldTable makes the kernel refuse a batch halfway
// (a jump to a chain that does not exist) and checks nothing changed.
func TestKernelRefusalLeavesOldTable(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	e.mustDF("apply", "-c", e.write("seed.yaml", seedPolicy))
	before := e.table()
	p, err := policy.Parse("p.yaml", []byte(strings.Replace(seedPolicy, "192.168.100.1", "192.168.100.9", 1)), policy.Options{ResolvConf: e.resolvConf})
	if err != nil {
		t.Fatal(err)
	}
	tbl := fence.Compile(p, []policy.Network{{Name: "x", Bridge: topo.BridgeName, Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}})
	c := tbl.Chain("fwd_br-test")
	c.Rules[len(c.Rules)-1].Verdict = nft.Verdict{Kind: nft.Goto, Target: "no-such-chain"}
	_, err = nft.Kernel{NetNS: int(e.tp.Host.Handle())}.Apply(tbl.Table)
	if err == nil || !strings.Contains(err.Error(), "previous table is unchanged") {
		t.Fatalf("apply of a broken table: %v", err)
	}
	if after := e.table(); after != before {
		t.Errorf("a refused transaction changed the table:\n%s", after)
	}
	e.expect(e.tp.Ctr, seedProbes)
}

func TestTighterPolicyCutsOpenFlow(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	e.mustDF("apply", "-c", e.write("open.yaml", "version: 1\nnetworks:\n  - match: {subnet: 172.20.0.0/16}\n    egress: [{allow: any}]\n"))
	conn, err := e.tp.Ctr.DialTCP(hostPort(topo.LANDB4, 5432), dialTimeout)
	if err != nil {
		t.Fatalf("open policy: %v", err)
	}
	defer conn.Close()
	buf := make([]byte, 128)
	conn.SetReadDeadline(time.Now().Add(dialTimeout))
	if _, err := conn.Read(buf); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	e.mustDF("apply", "-c", e.write("seed.yaml", seedPolicy))
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("still there?\n")); err == nil {
		if n, err := conn.Read(buf); err == nil {
			t.Fatalf("the open flow still works after tightening: read %q", buf[:n])
		}
	}
}

func TestForgedSourceDropped(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	// A second address outside the network lets the container forge its source.
	e.tp.Ctr.Run(t, "ip", "addr", "add", "10.99.0.2/32", "dev", "eth0")
	srv := e.tp.Inet.ListenUDP(t, hostPort(topo.InetIP4, 7))
	send := func(src string, n int) {
		t.Helper()
		c, err := e.tp.Ctr.DialUDPFrom(src, hostPort(topo.InetIP4, 7))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			c.Write([]byte("forged"))
		}
		c.Close()
		time.Sleep(300 * time.Millisecond)
	}
	// A datagram from the real address first resolves the gateway's MAC: an
	// ARP request sent from the forged address would be dropped by the
	// host's reverse-path check, and the forged datagrams with it.
	send("", 1)
	legit := srv.Received()
	send("10.99.0.2", 5)
	if legit == 0 || srv.Received() == legit {
		t.Fatalf("without the fence, %d real and %d forged datagrams arrived; the test proves nothing", legit, srv.Received()-legit)
	}
	e.mustDF("apply", "-c", e.write("seed.yaml", seedPolicy))
	got := srv.Received()
	send("10.99.0.2", 20)
	if n := srv.Received() - got; n != 0 {
		t.Errorf("%d forged datagrams arrived through the fence", n)
	}
	if !strings.Contains(e.tp.Host.Run(t, "nft", "list", "chain", "inet", "dockerfence", "fwd_br-test"), "anti-spoofing") {
		t.Error("no anti-spoofing rule")
	}
}

func TestHostSectionGuardsInput(t *testing.T) {
	e := newEnv(t)
	e.tp.Host.ListenTCP(t, hostPort(topo.HostBridge4, 22))
	e.tp.Host.ListenUDP(t, hostPort(topo.HostBridge4, 53))
	e.tp.Host.ListenTCP(t, hostPort(topo.HostBridge6, 22))
	e.expect(e.tp.Ctr, []probe{{"host ssh before", "tcp", hostPort(topo.HostBridge4, 22), "ok"}})
	e.mustDF("apply", "-c", e.write("host.yaml", `version: 1
networks:
  - match: {bridge: br-test}
    host:
      - allow: any
        proto: udp
        ports: [53]
    host_default: deny
`))
	e.expect(e.tp.Ctr, []probe{
		{"host dns", "udp", hostPort(topo.HostBridge4, 53), "ok"},
		{"host ssh v4", "tcp", hostPort(topo.HostBridge4, 22), "refused"},
		{"host ssh v6 (neighbour discovery still works)", "tcp", hostPort(topo.HostBridge6, 22), "refused"},
	})
}

func TestNewBridgeFencedByCatchAll(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	out := e.mustDF("apply") // the embedded default policy
	if !strings.Contains(out, "new docker0/br-* bridges fenced by section 1") {
		t.Errorf("apply: %s", out)
	}
	// A network created after apply, with nothing running to see it.
	e.tp.AddBridge(t, "br-late", "172.21.0.1/16", "fd00:21::1/64")
	late := e.tp.AddContainerOn(t, "br-late", "late", "172.21.0.2/16", "fd00:21::2/64")
	e.expect(late, []probe{
		{"late: lan database", "tcp", hostPort(topo.LANDB4, 5432), "refused"},
		{"late: lan database v6", "tcp", hostPort(topo.LANDB6, 5432), "refused"},
		{"late: resolver", "udp", hostPort(topo.LANDNS4, 53), "ok"},
		{"late: internet", "tcp", hostPort(topo.InetIP4, 80), "ok"},
		{"late: internet v6", "tcp", hostPort(topo.InetIP6, 80), "ok"},
	})
	e.expect(e.tp.Ctr, []probe{{"known bridge: lan database", "tcp", hostPort(topo.LANDB4, 5432), "refused"}})
}

// TestSetEditedInPlace changes a list and checks that the kernel's set
// then holds exactly the new list, that the denials follow it, and that an
// unchanged chain kept its counters (it was not rewritten).
func TestSetEditedInPlace(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	pol := func(entries string) string {
		return e.write("p.yaml", strings.Replace(seedPolicy, "deny: 192.168.0.0/16", "deny: \"@lan\"", 1)+
			"lists:\n  lan: ["+entries+"]\n")
	}
	e.mustDF("apply", "-c", pol("192.168.100.50/32, 10.0.0.0/8"))
	e.expect(e.tp.Ctr, []probe{
		{"database denied", "tcp", hostPort(topo.LANDB4, 5432), "refused"},
		{"internet allowed", "tcp", hostPort(topo.InetIP4, 80), "ok"},
	})
	replies := func() string {
		out := e.tp.Host.Run(t, "nft", "list", "chain", "inet", "dockerfence", "forward")
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "ct direction reply") {
				return strings.TrimSpace(l)
			}
		}
		t.Fatalf("no reply rule in forward:\n%s", out)
		return ""
	}
	before := replies()
	if strings.Contains(before, "packets 0 ") {
		t.Fatalf("the reply rule counted nothing; the counter check proves nothing: %s", before)
	}
	// The database leaves the list, the internet host joins it.
	out := e.mustDF("apply", "-c", pol("203.0.113.0/24, 10.0.0.0/8"))
	if !strings.HasPrefix(out, "applied") {
		t.Fatalf("apply: %s", out)
	}
	got := e.tp.Host.Run(t, "nft", "list", "set", "inet", "dockerfence", "l_lan_4")
	if !strings.Contains(got, "elements = { 10.0.0.0/8, 203.0.113.0/24 }") {
		t.Errorf("set after the edit:\n%s", got)
	}
	if after := replies(); after != before {
		t.Errorf("the unchanged forward chain was rewritten: counter %q became %q", before, after)
	}
	e.expect(e.tp.Ctr, []probe{
		{"database allowed", "tcp", hostPort(topo.LANDB4, 5432), "ok"},
		{"internet denied", "tcp", hostPort(topo.InetIP4, 80), "refused"},
	})
	if out := e.mustDF("plan", "-c", pol("203.0.113.0/24, 10.0.0.0/8")); !strings.Contains(out, "is up to date") {
		t.Errorf("plan after the edit: %s", out)
	}
	if out := e.mustDF("apply", "-c", pol("203.0.113.0/24, 10.0.0.0/8")); !strings.Contains(out, "already up to date") {
		t.Errorf("second apply: %s", out)
	}

	// Many intervals leave at once, in both families (the kernel refused
	// the deletion of two or more intervals in the order a dump lists
	// them, which the differential explain test found).
	var many, half []string
	for i := 0; i < 200; i++ {
		p4, p6 := fmt.Sprintf("10.%d.%d.0/24", i/100, 2*(i%100)), fmt.Sprintf("\"fd00:%x::/48\"", 2*i+0x100)
		many = append(many, p4, p6)
		if i%2 == 0 {
			half = append(half, p4, p6)
		}
	}
	for _, step := range []struct {
		name    string
		entries []string
	}{{"200+200 intervals", many}, {"every second one removed", half}, {"four left, all others removed", half[:4]}} {
		out := e.mustDF("apply", "-c", pol("203.0.113.0/24, "+strings.Join(step.entries, ", ")))
		if !strings.HasPrefix(out, "applied") {
			t.Fatalf("%s: %s", step.name, out)
		}
		if out := e.mustDF("plan", "-c", pol("203.0.113.0/24, "+strings.Join(step.entries, ", "))); !strings.Contains(out, "is up to date") {
			t.Errorf("%s: plan after apply: %s", step.name, out)
		}
		e.expect(e.tp.Ctr, []probe{{"internet denied", "tcp", hostPort(topo.InetIP4, 80), "refused"}})
	}
	if got := e.tp.Host.Run(t, "nft", "list", "set", "inet", "dockerfence", "l_lan_6"); !strings.Contains(got, "fd00:100::/48") || !strings.Contains(got, "fd00:104::/48") || strings.Count(got, "::/48") != 2 {
		t.Errorf("IPv6 set after removing all but two intervals:\n%s", got)
	}
}

// TestNoLeakDuringReapplies streams UDP at a denied address while the
// policy is re-applied 200 times, for every kind of change an apply makes
// while the address stays denied: a rule changes; the deny moves from an
// inline prefix to a named set and back; the set's elements change; and a
// second network's bridge comes and goes, so that its chains and
// verdict-map elements are added and deleted next to ours.
func TestNoLeakDuringReapplies(t *testing.T) {
	other := "\n  - match: {subnet: 172.21.0.0/16}\n    egress_default: deny\n"
	inline := seedPolicy + other
	list := func(entries string) string {
		return strings.Replace(seedPolicy, "deny: 192.168.0.0/16", "deny: \"@lan\"", 1) + other +
			"lists:\n  lan: [" + entries + "]\n"
	}
	for _, tc := range []struct {
		name     string
		policies []string
		bridge   bool
	}{
		{"rule changes", []string{inline, strings.Replace(inline, "192.168.100.1\n", "192.168.100.3\n", 1)}, false},
		{"inline prefix and set", []string{inline, list("192.168.0.0/16, 10.0.0.0/8")}, false},
		// The interval holding the target keeps its start and moves its end.
		{"set elements change", []string{list("192.168.0.0/17, 10.0.0.0/8"), list("192.168.0.0/16, 172.16.0.0/12")}, false},
		{"another network comes and goes", []string{inline}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var files []string
			for i, p := range tc.policies {
				files = append(files, e.write(fmt.Sprintf("p%d.yaml", i), p))
			}
			var steps []func()
			for _, f := range files {
				steps = append(steps, func() { e.mustDF("apply", "-c", f) })
			}
			if tc.bridge {
				steps = []func(){
					func() {
						e.tp.Host.Run(t, "ip", "link", "add", "br-other", "type", "bridge")
						e.tp.Host.Run(t, "ip", "addr", "add", "172.21.0.1/16", "dev", "br-other")
						e.tp.Host.Run(t, "ip", "link", "set", "br-other", "up")
						e.mustDF("apply", "-c", files[0])
					},
					func() {
						e.tp.Host.Run(t, "ip", "link", "del", "br-other")
						e.mustDF("apply", "-c", files[0])
					},
				}
			}
			noLeak(t, e, files[0], steps)
		})
	}
}

// noLeakPPS is the rate of noLeak's flood: well above the 1000 datagrams a
// second the leak tests promise.
const noLeakPPS = 4000

// noLeak floods the denied database with UDP from the container while it
// runs 200 steps (cycling through steps), after applying first, and fails
// if a single datagram arrives.
func noLeak(t *testing.T, e *env, first string, steps []func()) {
	target := hostPort(topo.LANDB4, 9999)
	srv := e.tp.LAN.ListenUDP(t, target)
	// Without the fence, the harness sees the datagrams.
	// A new namespace may take a moment (neighbour resolution) before the
	// first datagram arrives: wait up to 3 s for it.
	probe := harness.StartUDPFlood(t, e.tp.Ctr, target, "", noLeakPPS)
	for deadline := time.Now().Add(3 * time.Second); srv.Received() == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	probe.Halt()
	time.Sleep(100 * time.Millisecond)
	if srv.Received() == 0 {
		t.Fatal("the flood does not arrive without the fence; the harness proves nothing")
	}
	e.mustDF("apply", "-c", first)
	base := srv.Received()
	flood := harness.StartUDPFlood(t, e.tp.Ctr, target, "", noLeakPPS)
	start := time.Now()
	for i := 0; i < 200; i++ {
		steps[i%len(steps)]()
	}
	elapsed := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	flood.Halt()
	time.Sleep(100 * time.Millisecond)
	leaked := srv.Received() - base
	sent := flood.Sent()
	t.Logf("200 re-applies in %v; %d datagrams sent to the denied address, %d arrived", elapsed.Round(time.Millisecond), sent, leaked)
	if sent < int64(elapsed.Seconds()*1000) {
		t.Errorf("the sender managed only %d datagrams in %v (< 1000 pps)", sent, elapsed)
	}
	if leaked != 0 {
		t.Errorf("%d datagrams leaked through during re-applies", leaked)
	}
}

// Test100kPrefixes applies one list of 100,000 prefixes (half IPv4, half
// IPv6) with default socket sysctls, and checks a listed and an unlisted address.
func Test100kPrefixes(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	var b strings.Builder
	for i := 0; i < 50000; i++ {
		fmt.Fprintf(&b, "10.%d.%d.0/25\n", i/256, i%256) // halves: no two prefixes merge
		fmt.Fprintf(&b, "2001:db8:%x::/49\n", i)
	}
	b.WriteString(topo.LANDB4 + "\n" + topo.LANDB6 + "\n")
	list := e.write("big.txt", b.String())
	pol := e.write("big.yaml", "version: 1\nlists:\n  big: {file: "+list+"}\nnetworks:\n  - match: {subnet: 172.20.0.0/16}\n    egress:\n      - deny: \"@big\"\n")
	for _, s := range []string{"net.core.rmem_max", "net.core.wmem_max"} {
		if v, _ := os.ReadFile("/proc/sys/" + strings.ReplaceAll(s, ".", "/")); len(v) == 0 {
			t.Fatalf("cannot read %s", s)
		}
	}
	start := time.Now()
	out := e.mustDF("apply", "-c", pol)
	t.Logf("apply of 100,002 prefixes (binary, incl. parsing the list): %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	e.expect(e.tp.Ctr, []probe{
		{"listed database v4", "tcp", hostPort(topo.LANDB4, 5432), "refused"},
		{"listed database v6", "tcp", hostPort(topo.LANDB6, 5432), "refused"},
		{"unlisted proxy", "tcp", hostPort(topo.LANProxy4, 3128), "ok"},
		{"unlisted internet", "tcp", hostPort(topo.InetIP4, 80), "ok"},
	})
	if out := e.mustDF("plan", "-c", pol); !strings.Contains(out, "is up to date") {
		t.Errorf("plan after a 100k apply: %s", out)
	}
	n4 := strings.Count(e.tp.Host.Run(t, "nft", "list", "set", "inet", "dockerfence", "l_big_4"), "/25")
	if n4 != 50000 {
		t.Errorf("set l_big_4 holds %d /25 prefixes, want 50000", n4)
	}
	// Editing the list changes the sets in place: the database leaves it.
	os.WriteFile(list, []byte(strings.Replace(b.String(), topo.LANDB4+"\n", "", 1)), 0o644)
	start = time.Now()
	out = e.mustDF("apply", "-c", pol)
	t.Logf("apply after removing one of 100,002 prefixes: %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	e.expect(e.tp.Ctr, []probe{
		{"unlisted database v4", "tcp", hostPort(topo.LANDB4, 5432), "ok"},
		{"listed database v6", "tcp", hostPort(topo.LANDB6, 5432), "refused"},
	})
	if out := e.mustDF("plan", "-c", pol); !strings.Contains(out, "is up to date") {
		t.Errorf("plan after editing the 100k list: %s", out)
	}
}
