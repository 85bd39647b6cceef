package integration

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// These tests hold nft.Kernel's table ownership to the kernel (Linux 6.9 or
// later, with table flags owner and persist): an owned table refuses every
// other process, outlives its owner's death and is adopted by the next
// owner; an unowned one (OwnNever, as on older kernels) is repaired after
// every tampering that keeps dockerfence's labels; and with an owned table
// nft flush ruleset lets not one datagram through.

// ownedPolicy is seedPolicy with the database in a list, so that the table
// has a set whose elements can be tampered with.
const ownedPolicy = `version: 1
lists:
  db: [192.168.100.50, "fd00:100::50", 192.168.100.60]
networks:
  - match: {subnet: 172.20.0.0/16}
    egress:
      - allow: self
      - deny: "@db"
        comment: database
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

// ownedTable compiles src for the test topology's bridge.
func ownedTable(t *testing.T, src string) *nft.Table {
	t.Helper()
	tbl, err := compileFor(src)
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// compileFor compiles src for the test topology's bridge.
func compileFor(src string) (*nft.Table, error) {
	p, err := policy.Parse("owned.yaml", []byte(src), policy.Options{ResolvConf: "/nonexistent"})
	if err != nil {
		return nil, err
	}
	return fence.Compile(p, []policy.Network{{Name: "test", Bridge: topo.BridgeName, Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16"), netip.MustParsePrefix("fd00:20::/64")}}}).Table, nil
}

// dbSet returns the name of the set that holds the database's IPv4 address.
func dbSet(t *testing.T, tbl *nft.Table) string {
	t.Helper()
	db := netip.MustParseAddr(topo.LANDB4)
	for _, s := range tbl.Sets {
		for _, r := range s.Ranges {
			if r.Contains(db) {
				return s.Name
			}
		}
	}
	t.Fatal("no set holds the database")
	return ""
}

// openKernel opens a lasting Kernel in the Host namespace, closed at the
// end of the test.
func (e *env) openKernel(t *testing.T, own nft.Ownership) *nft.Kernel {
	t.Helper()
	k, err := nft.OpenKernel(nft.Options{NetNS: int(e.tp.Host.Handle()), Ownership: own})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// needOwned skips the test on a kernel without flags owner and persist.
func needOwned(t *testing.T, k *nft.Kernel) nft.Protection {
	t.Helper()
	p, err := k.Protection()
	if err != nil {
		t.Fatal(err)
	}
	if p.Flags != nft.FlagOwner|nft.FlagPersist {
		t.Skipf("no owned table on this kernel: %s", p)
	}
	return p
}

// inSync fails the test unless the kernel's table, every set read in
// full, is tbl.
func inSync(t *testing.T, k nft.Kernel, tbl *nft.Table) *nft.State {
	t.Helper()
	st, err := k.ReadAll(tbl.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st == nil {
		t.Fatal("no table")
	}
	if d := nft.Diff(tbl, st); len(d) != 0 {
		t.Errorf("the kernel's table differs:\n%s", strings.Join(d, "\n"))
	}
	return st
}

// (a) An owned table refuses every other process: nft flush ruleset skips
// it, and nft cannot delete it, add a rule to it or make it dormant.
func TestOwnedTableRefusesOthers(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	k := e.openKernel(t, nft.OwnAuto)
	p := needOwned(t, k)
	tbl := ownedTable(t, ownedPolicy)
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	st := inSync(t, *k, tbl)
	if st.Flags != nft.FlagOwner|nft.FlagPersist || st.Owner != p.Port {
		t.Fatalf("table flags %s, owner %d; want owner,persist by port %d", st.Flags, st.Owner, p.Port)
	}
	t.Log(st.Protection())
	before := e.table()
	if out, err := e.tp.Host.Try("nft", "flush", "ruleset"); err != nil {
		t.Errorf("nft flush ruleset: %v\n%s", err, out)
	}
	for _, args := range [][]string{
		{"delete", "table", "inet", "dockerfence"},
		{"add", "rule", "inet", "dockerfence", "forward", "accept"},
		{"insert", "rule", "inet", "dockerfence", "fwd_br-test", "accept"},
		{"flush", "chain", "inet", "dockerfence", "fwd_br-test"},
		{"add", "table", "inet", "dockerfence", "{ flags dormant; }"},
		{"delete", "element", "inet", "dockerfence", dbSet(t, tbl), "{ 192.168.100.50 }"},
	} {
		out, err := e.tp.Host.Try("nft", args...)
		if err == nil {
			t.Errorf("nft %s: accepted on an owned table", strings.Join(args, " "))
		} else if !strings.Contains(out, "Operation not permitted") {
			t.Errorf("nft %s: refused otherwise than EPERM:\n%s", strings.Join(args, " "), out)
		}
	}
	if after := e.table(); after != before {
		t.Errorf("the owned table changed:\n%s", after)
	}
	inSync(t, *k, tbl)
	e.expect(e.tp.Ctr, seedProbes)
	// A one-shot Kernel (another socket) cannot change it either, and
	// says who owns it.
	_, err := nft.Kernel{NetNS: int(e.tp.Host.Handle())}.Apply(ownedTable(t, seedPolicy))
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), fmt.Sprintf("port %d", p.Port)) {
		t.Errorf("one-shot apply to the owned table: %v", err)
	}
}

// ownerHelperEnv makes the test binary run ownerHelper instead of the tests
// (see TestMain): the process that owns the table and is killed.
const ownerHelperEnv = "DOCKERFENCE_OWNER_HELPER"

// ownerHelper opens a lasting Kernel in the network namespace whose path
// the environment names, applies ownedPolicy's table, prints "ready" and
// its socket's port, and waits to be killed.
func ownerHelper() int {
	f, err := os.Open(os.Getenv(ownerHelperEnv))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	k, err := nft.OpenKernel(nft.Options{NetNS: int(f.Fd())})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	p, err := k.Protection()
	tbl, cerr := compileFor(ownedPolicy)
	if err == nil && cerr == nil {
		_, err = k.Apply(tbl)
	}
	if err = errors.Join(err, cerr); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("ready", p.Port)
	select {}
}

// (b) The table outlives its owner's SIGKILL, orphaned: the fence holds;
// a one-shot apply changes it without taking it; a new lasting Kernel
// adopts it, changes it and owns it; and once that one is gone too, nft
// delete table removes it (the manual recovery).
func TestOwnedTableOutlivesItsOwner(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	needOwned(t, e.openKernel(t, nft.OwnAuto))
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), ownerHelperEnv+"="+e.tp.Host.Path())
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	var port uint32
	if _, err := fmt.Sscanf(line, "ready %d", &port); err != nil {
		t.Fatalf("helper: %q", line)
	}
	oneShot := nft.Kernel{NetNS: int(e.tp.Host.Handle())}
	st, err := oneShot.Read("dockerfence")
	if err != nil || st == nil || st.Owner != port {
		t.Fatalf("table of the helper: %+v, %v; want owned by port %d", st, err, port)
	}
	tbl := ownedTable(t, ownedPolicy)
	helper.Process.Signal(syscall.SIGKILL)
	helper.Wait()

	st = inSync(t, oneShot, tbl)
	if st.Flags != nft.FlagPersist || st.Owner != 0 {
		t.Errorf("after the owner's SIGKILL: flags %s, owner %d; want persist and no owner", st.Flags, st.Owner)
	}
	e.expect(e.tp.Ctr, seedProbes)

	// A one-shot apply changes the orphaned table and leaves it so.
	proxyDenied := ownedTable(t, strings.Replace(ownedPolicy, "      - allow: 192.168.100.1\n        comment: HTTP proxy\n", "", 1))
	if changed, err := oneShot.Apply(proxyDenied); err != nil || !changed {
		t.Fatalf("one-shot apply to the orphaned table = %v, %v", changed, err)
	}
	if st = inSync(t, oneShot, proxyDenied); st.Flags != nft.FlagPersist || st.Owner != 0 {
		t.Errorf("after a one-shot apply: flags %s, owner %d; want persist and no owner", st.Flags, st.Owner)
	}

	// A new lasting Kernel adopts it, and changes it back.
	k := e.openKernel(t, nft.OwnAuto)
	p, _ := k.Protection()
	if changed, err := k.Verify(tbl); err != nil || !changed {
		t.Fatalf("adopt = %v, %v", changed, err)
	}
	if st = inSync(t, *k, tbl); st.Flags != nft.FlagOwner|nft.FlagPersist || st.Owner != p.Port {
		t.Errorf("after adoption: flags %s, owner %d; want owner,persist by port %d", st.Flags, st.Owner, p.Port)
	}
	e.expect(e.tp.Ctr, seedProbes)
	if _, err := e.tp.Host.Try("nft", "delete", "table", "inet", "dockerfence"); err == nil {
		t.Error("nft deleted the adopted table")
	}

	// Manual recovery: once its owner is gone, nft can delete the table.
	k.Close()
	if out, err := e.tp.Host.Try("nft", "delete", "table", "inet", "dockerfence"); err != nil {
		t.Errorf("nft delete table of the orphaned table: %v\n%s", err, out)
	}
	if st, _ := oneShot.Read("dockerfence"); st != nil {
		t.Error("the table is still there")
	}
}

// (c) On an unowned table (OwnNever, as on kernels before 6.9), each
// tampering that keeps dockerfence's labels is reported by Diff and
// repaired by Verify: the dormant flag, an element deleted, a rule's
// expressions replaced under its user data, a base chain's priority and
// its policy changed.
func TestUnownedTamperingRepaired(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	k := e.openKernel(t, nft.OwnNever)
	tbl := ownedTable(t, ownedPolicy)
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	if st := inSync(t, *k, tbl); st.Flags != 0 {
		t.Fatalf("OwnNever: table flags %s, want none", st.Flags)
	}
	set := dbSet(t, tbl)
	base := "input"
	if tbl.Chain(base) == nil {
		base = "forward"
	}
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T)
		diff   string
	}{
		{"dormant", func(t *testing.T) {
			e.tp.Host.Run(t, "nft", "add", "table", "inet", "dockerfence", "{ flags dormant; }")
			if got := tcpOutcome(e.tp.Ctr, hostPort(topo.LANDB4, 5432)); got != "ok" {
				t.Errorf("the dormant table still refuses the database: %s", got)
			}
		}, "flag dormant"},
		{"element deleted", func(t *testing.T) {
			e.tp.Host.Run(t, "nft", "delete", "element", "inet", "dockerfence", set, "{ 192.168.100.50 }")
		}, "~ set " + set + ": 0 elements to delete, 2 to add"},
		{"rule replaced under its user data", func(t *testing.T) { replaceDenial(t, e) }, `holds "counter accept"`},
		{"base chain priority", func(t *testing.T) {
			e.tp.Host.Run(t, "sh", "-c", fmt.Sprintf("printf 'flush chain inet dockerfence %[1]s\\ndelete chain inet dockerfence %[1]s\\nadd chain inet dockerfence %[1]s { type filter hook %[1]s priority 10; policy accept; }\\n' | nft -f -", base))
		}, fmt.Sprintf("~ chain %[1]s: hook %[1]s priority 10, want hook %[1]s priority -10", base)},
		{"base chain policy", func(t *testing.T) {
			e.tp.Host.Run(t, "nft", "add", "chain", "inet", "dockerfence", "forward", "{ type filter hook forward priority -10; policy drop; }")
		}, "~ chain forward: policy drop, want policy accept"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.tamper(t)
			st, err := k.ReadAll(tbl.Name)
			if err != nil {
				t.Fatal(err)
			}
			if d := strings.Join(nft.Diff(tbl, st), "\n"); !strings.Contains(d, tc.diff) {
				t.Errorf("Diff does not say %q:\n%s", tc.diff, d)
			}
			if changed, err := k.Verify(tbl); err != nil || !changed {
				t.Fatalf("Verify = %v, %v", changed, err)
			}
			inSync(t, *k, tbl)
			e.expect(e.tp.Ctr, seedProbes)
		})
	}
}

// replaceDenial replaces, from a socket of its own, the expressions of
// the rule that denies the database list with "counter accept", keeping the
// rule's user data (dockerfence's label): google/nftables' ReplaceRule
// sends NEWRULE with NLM_F_REPLACE of the rule's handle.
func replaceDenial(t *testing.T, e *env) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(e.tp.Host.Handle())))
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Name: "dockerfence", Family: nftables.TableFamilyINet}
	ch := &nftables.Chain{Name: "fwd_br-test", Table: tbl}
	rules, err := c.GetRules(tbl, ch)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		if nft.RuleStateOf(r.UserData).Comment != "egress 2 deny: database" {
			continue
		}
		c.ReplaceRule(&nftables.Rule{Table: tbl, Chain: ch, Handle: r.Handle, UserData: r.UserData,
			Exprs: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept}}})
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		if got := tcpOutcome(e.tp.Ctr, hostPort(topo.LANDB4, 5432)); got != "ok" {
			t.Errorf("the replaced rule does not let the database through: %s", got)
		}
		return
	}
	t.Fatalf("no rule with the comment \"egress 2 deny: database\" in fwd_br-test")
}

// (d) With an owned table, 40 nft flush ruleset during a flood at the
// denied database let not one datagram through: the kernel never removes
// the table, so there is nothing to repair.
func TestOwnedTableFlushRulesetLeaksNothing(t *testing.T) {
	e := newEnv(t)
	k := e.openKernel(t, nft.OwnAuto)
	needOwned(t, k)
	e.leakBaseline(t, e.tp.Ctr)
	tbl := ownedTable(t, ownedPolicy)
	if _, err := k.Apply(tbl); err != nil {
		t.Fatal(err)
	}
	r := e.noLeak(t, "40 nft flush ruleset with an owned table", e.tp.Ctr, leakTarget(), leakPPS, func() {
		for range 40 {
			e.tp.Host.Run(t, "nft", "flush", "ruleset")
			time.Sleep(5 * time.Millisecond)
		}
	})
	t.Logf("40 flushes in %v: %d of %d datagrams leaked", r.disrupt.Round(time.Millisecond), r.leaked, r.sent)
	inSync(t, *k, tbl)
}
