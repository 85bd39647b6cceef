package integration

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/miekg/dns"
)

// keepPolicy is forgedPolicy at hook priority prio.
func keepPolicy(prio int) string {
	return fmt.Sprintf("settings:\n  priority: %d\n", prio) + strings.TrimPrefix(forgedPolicy(), "version: 1\n")
}

// TestReplacementKeepsLearned: the daemon learns an address from a
// container's lookup; a reload whose priority changes makes it replace
// the whole table (base chains cannot be re-hooked); the new table's
// names set holds the address still, with the time it had left, so the
// container's new connection to it succeeds with no new lookup (the DNS
// server is gone by then), and status lists it as in the kernel.
func TestReplacementKeepsLearned(t *testing.T) {
	e := newEnv(t)
	real := netip.MustParseAddr(topo.InetIP4)
	e.tp.Inet.ListenTCP(t, hostPort(real.String(), forgePort))
	srv := harness.StartDNS(t, e.tp.LAN, topo.LANDNS4)
	srv.Set("allowed.names.test", 10*time.Minute, real)
	pol := e.write("policy.yaml", "version: 1\n"+keepPolicy(-10))
	p := startProc(t, e.dfCmd("run", "--no-docker", "-c", pol))
	p.waitLog(t, "table applied")
	p.waitLog(t, "learning names from DNS answers")
	connect := func() string { return tcpOutcome(e.tp.Ctr, hostPort(real.String(), forgePort)) }
	set := func() string { return e.tp.Host.Run(t, "nft", "list", "set", "inet", "dockerfence", "names_allowed_4") }
	if got := connect(); got == "ok" {
		t.Fatalf("%s:%d reached before any lookup: the fence does not hold", real, forgePort)
	}
	got, err := harness.Lookup(e.tp.Ctr, hostPort(topo.LANDNS4, 53), "allowed.names.test", dns.TypeA, 2*time.Second)
	if err != nil || len(got) != 1 || got[0] != real {
		t.Fatalf("lookup: %v, %v", got, err)
	}
	if got := connect(); got != "ok" {
		t.Fatalf("after the lookup: %s; want ok\n%s", got, set())
	}
	srv.Close() // no lookup can teach anything from here on
	before := set()
	time.Sleep(1100 * time.Millisecond)

	if err := os.WriteFile(pol, []byte("version: 1\n"+keepPolicy(-20)), 0o644); err != nil {
		t.Fatal(err)
	}
	n := p.countLog(`msg="table applied"`, `reason="policy reload"`)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitCount(t, n, `msg="table applied"`, `reason="policy reload"`)
	st, err := e.kernel().Read("dockerfence")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Chains {
		if c.Name == "forward" && c.Priority != -20 {
			t.Fatalf("forward chain at priority %d after the reload, want -20: the table was not replaced", c.Priority)
		}
	}
	after := set()
	t.Logf("names set before the replacement:\n%s\nafter it:\n%s", before, after)
	timeout, left, ok := timeoutOf(t, after, real.String())
	if !ok {
		t.Fatalf("%s is gone from the names set after the table was replaced:\n%s", real, after)
	}
	if timeout >= 10*time.Minute-time.Second || left > timeout || left < 9*time.Minute {
		t.Errorf("%s: timeout %v expires %v after the replacement; want the about 9m58s it had left", real, timeout, left)
	}
	if got := connect(); got != "ok" {
		t.Errorf("a new connection to %s after the replacement, with no lookup: %s; want ok", real, got)
	}
	s := e.statusJSON()
	found := false
	for _, l := range s.Names {
		for _, a := range l.Learned {
			if l.List == "allowed" && a.Addr == real.String() {
				found = true
				if !a.InKernel || a.TTLLeft < 9*60 {
					t.Errorf("status after the replacement: %+v; want in the kernel, about 9m58s left", a)
				}
			}
		}
	}
	if !found {
		t.Errorf("status after the replacement does not list %s: %+v", real, s.Names)
	}
}

// timeoutOf returns the timeout and the time left of addr in an nft
// listing of a set, and whether it is there with a timeout.
func timeoutOf(t *testing.T, listing, addr string) (timeout, left time.Duration, ok bool) {
	t.Helper()
	m := regexp.MustCompile(`(?:^|[ {,\t])` + regexp.QuoteMeta(addr) + ` timeout ([0-9a-z]+) expires ([0-9a-z]+)`).FindStringSubmatch(listing)
	if m == nil {
		return 0, 0, false
	}
	parse := func(s string) time.Duration {
		d, err := time.ParseDuration(s) // nft writes 9m58s900ms: Go's syntax, but for days
		if err != nil {
			t.Fatalf("nft's duration %q: %v", s, err)
		}
		return d
	}
	return parse(m[1]), parse(m[2]), true
}

// TestEditedListRevokesOldNames: a container learns an address by looking
// up a listed name; the operator takes the name out of the list and
// reloads: the container's new connection to the address is refused at
// once (the list's sets are created anew), and status no longer lists it.
// An open connection goes on (the rule's twin keeps it, as for an
// expired address).
func TestEditedListRevokesOldNames(t *testing.T) {
	e := newEnv(t)
	real := netip.MustParseAddr(topo.InetIP4)
	e.tp.Inet.ListenTCP(t, hostPort(real.String(), forgePort))
	srv := harness.StartDNS(t, e.tp.LAN, topo.LANDNS4)
	srv.Set("allowed.names.test", 10*time.Minute, real)
	pol := e.write("policy.yaml", forgedPolicy())
	p := startProc(t, e.dfCmd("run", "--no-docker", "-c", pol))
	p.waitLog(t, "table applied")
	p.waitLog(t, "learning names from DNS answers")
	connect := func() string { return tcpOutcome(e.tp.Ctr, hostPort(real.String(), forgePort)) }
	if _, err := harness.Lookup(e.tp.Ctr, hostPort(topo.LANDNS4, 53), "allowed.names.test", dns.TypeA, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := connect(); got != "ok" {
		t.Fatalf("after the lookup: %s; want ok", got)
	}
	edited := strings.Replace(forgedPolicy(), "allowed: {names: [allowed.names.test]}", "allowed: {names: [other.names.test]}", 1)
	if edited == forgedPolicy() {
		t.Fatal("the policy has no list to edit")
	}
	if err := os.WriteFile(pol, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	n := p.countLog(`msg="table applied"`, `reason="policy reload"`)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitCount(t, n, `msg="table applied"`, `reason="policy reload"`)
	if got := connect(); got != "refused" {
		t.Errorf("after allowed.names.test left the list: a new connection to its %s: %s, want refused\n%s", real, got,
			e.tp.Host.Run(t, "nft", "list", "set", "inet", "dockerfence", "names_allowed_4"))
	}
	for _, l := range e.statusJSON().Names {
		for _, a := range l.Learned {
			if a.Addr == real.String() {
				t.Errorf("status still lists %s under %s: %+v", real, l.List, a)
			}
		}
	}
}
