package integration

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/dockerd"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// This file is the leak harness: a sender streams UDP at a fixed rate to an
// address the fence denies and, from the same socket, to an address it
// allows (the control); receivers in the destination namespaces count what
// arrives (harness.UDPFlood and harness.UDPCounter). measureLeak wraps a disruption in such a stream and noLeak fails
// if a single datagram reached the denied address. The control, the
// sender's own count and a run without the fence (leakBaseline) show that
// the harness sees datagrams when they pass, so that zero means zero.

// leakPPS is the rate of every flood, in datagrams a second to each
// address: twice the 1000 the fence's leak checks promise.
const leakPPS = 2000

// Ports of the leak receivers: the LAN's database is denied by every policy
// used here, and the internet host is allowed by all of them.
const (
	leakDenyPort  = 9999
	leakAllowPort = 9998
)

// Timing of a leak check.
const (
	leakWarmup = 200 * time.Millisecond // flood before the disruption
	leakAfter  = 300 * time.Millisecond // flood after it
	leakDrain  = 100 * time.Millisecond // wait for datagrams in flight
)

// leakSpec describes a leak check.
type leakSpec struct {
	// name names the disruption in the report.
	name string
	// from is the sender's namespace.
	from harness.Doer
	// deny and allow are the denied address and the control address
	// (ip:port), received in denyNS and allowNS.
	deny, allow     string
	denyNS, allowNS *topo.NS
	// pps is the rate to each address; at least 1000.
	pps int
	// gaps says the sender may lose its route during the disruption (a
	// recreated container), so fewer datagrams than the rate promises
	// are sent; the report gives the count.
	gaps bool
}

// leakLive lets a disruption read the counts while it runs.
type leakLive struct {
	deny, allow *harness.UDPCounter
	flood       *harness.UDPFlood
}

// leaked is the number of datagrams that reached the denied address so far.
func (l *leakLive) leaked() int64 { return l.deny.Count() }

// leakRun is what a leak check measured.
type leakRun struct {
	name string
	pps  int
	// sent and leaked count the datagrams to the denied address: sent by
	// the sender, and received behind the fence.
	sent, leaked int64
	// failed counts writes the sender's kernel refused (no route).
	failed int64
	// ctlSent and ctlGot count the control datagrams, and ctlAfter those
	// that arrived after the disruption returned.
	ctlSent, ctlGot, ctlAfter int64
	// flood is how long the sender ran, disrupt how long the disruption took.
	flood, disrupt time.Duration
	// firstLeak and lastLeak are when the first and the last leaked
	// datagram arrived, from the start of the disruption.
	firstLeak, lastLeak time.Duration
}

// rate is the rate the sender achieved to the denied address.
func (r leakRun) rate() float64 { return float64(r.sent) / r.flood.Seconds() }

func (r leakRun) String() string {
	s := fmt.Sprintf("%s: %d datagrams sent to the denied address in %v (%.0f pps), %d arrived; control %d/%d arrived (%d after the disruption); disruption took %v",
		r.name, r.sent, r.flood.Round(time.Millisecond), r.rate(), r.leaked, r.ctlGot, r.ctlSent, r.ctlAfter, r.disrupt.Round(time.Millisecond))
	if r.failed > 0 {
		s += fmt.Sprintf("; %d writes found no route", r.failed)
	}
	if r.leaked > 0 {
		s += fmt.Sprintf("; the first arrived %v and the last %v after the disruption began (negative: before)", r.firstLeak.Round(time.Millisecond), r.lastLeak.Round(time.Millisecond))
	}
	return s
}

// floodSpec returns the leakSpec of a flood at leakPPS from from to the
// denied address to (in the LAN or the internet namespace), with the
// internet host as the control.
func (e *env) floodSpec(name string, from harness.Doer, to string) leakSpec {
	s := leakSpec{name: name, from: from, deny: to, allow: hostPort(topo.InetIP4, leakAllowPort), allowNS: e.tp.Inet, pps: leakPPS}
	switch a := netip.MustParseAddrPort(to).Addr(); {
	case netip.MustParsePrefix("192.168.100.0/24").Contains(a):
		s.denyNS = e.tp.LAN
	case netip.MustParsePrefix("203.0.113.0/24").Contains(a):
		s.denyNS = e.tp.Inet
	default:
		e.t.Fatalf("leak harness: %s is in neither the LAN nor the internet namespace", to)
	}
	return s
}

// measureLeak starts the receivers and the floods, runs disrupt after
// leakWarmup, keeps sending for leakAfter, and returns the counts. It fails
// the test when the harness could not have seen a leak: the sender fell
// short of the rate, the control did not arrive before and after the
// disruption, or a receiver's buffer overflowed. It does not judge the leak
// itself: noLeak does.
func (e *env) measureLeak(t *testing.T, s leakSpec, disrupt func(*leakLive)) leakRun {
	t.Helper()
	if s.pps < 1000 {
		t.Fatalf("leak harness: %d pps; use at least 1000", s.pps)
	}
	denyErrs, allowErrs := harness.UDPRcvErrors(t, s.denyNS), harness.UDPRcvErrors(t, s.allowNS)
	live := &leakLive{deny: harness.ListenUDPCounter(t, s.denyNS, s.deny), allow: harness.ListenUDPCounter(t, s.allowNS, s.allow)}
	defer live.deny.Close()
	defer live.allow.Close()
	live.flood = harness.StartUDPFlood(t, s.from, s.deny, s.allow, s.pps)
	stopped := false
	defer func() {
		if !stopped {
			live.flood.Halt()
		}
	}()

	time.Sleep(leakWarmup)
	if live.allow.Count() == 0 {
		t.Fatalf("leak harness (%s): none of %d control datagrams to %s arrived before the disruption (last send error: %s); a zero leak would prove nothing",
			s.name, live.flood.ControlSent(), s.allow, live.flood.LastError())
	}
	began := time.Now()
	disrupt(live)
	r := leakRun{name: s.name, pps: s.pps, disrupt: time.Since(began)}
	ctlAtEnd := live.allow.Count()
	time.Sleep(leakAfter)
	r.flood = live.flood.Halt()
	stopped = true
	time.Sleep(leakDrain)

	r.sent, r.failed, r.ctlSent = live.flood.Sent(), live.flood.Failed(), live.flood.ControlSent()
	r.leaked, r.ctlGot = live.deny.Count(), live.allow.Count()
	r.ctlAfter = r.ctlGot - ctlAtEnd
	if r.leaked > 0 {
		r.firstLeak = live.deny.First().Sub(began)
		r.lastLeak = live.deny.Last().Sub(began)
	}
	t.Log(r)

	if least := int64(0.9 * float64(s.pps) * r.flood.Seconds()); !s.gaps && r.sent < least {
		t.Errorf("leak harness (%s): the sender sent %d datagrams in %v, fewer than %d (90%% of %d pps); writes without a route: %d (last error: %s)",
			s.name, r.sent, r.flood.Round(time.Millisecond), least, s.pps, r.failed, live.flood.LastError())
	}
	if s.gaps && r.sent < int64(s.pps/2) {
		t.Errorf("leak harness (%s): the sender sent only %d datagrams (%d writes without a route; last error: %s)", s.name, r.sent, r.failed, live.flood.LastError())
	}
	if r.ctlAfter == 0 {
		t.Errorf("leak harness (%s): no control datagram arrived after the disruption; the path is broken, so a zero leak proves nothing", s.name)
	}
	if d := harness.UDPRcvErrors(t, s.denyNS) - denyErrs; d != 0 {
		t.Errorf("leak harness (%s): %d datagrams were dropped by full receive buffers in %s; the leak count may be too low", s.name, d, s.denyNS.Name)
	}
	if d := harness.UDPRcvErrors(t, s.allowNS) - allowErrs; d != 0 && s.allowNS != s.denyNS {
		t.Logf("leak harness (%s): %d control datagrams were dropped by a full receive buffer", s.name, d)
	}
	return r
}

// noLeak streams pps datagrams a second from from to the denied address to
// (and to the internet host as the control) around disrupt, and fails the
// test if a single datagram reached to.
func (e *env) noLeak(t *testing.T, name string, from harness.Doer, to string, pps int, disrupt func()) leakRun {
	t.Helper()
	s := e.floodSpec(name, from, to)
	s.pps = pps
	return e.noLeakSpec(t, s, func(*leakLive) { disrupt() })
}

// noLeakSpec is noLeak for a full leakSpec.
func (e *env) noLeakSpec(t *testing.T, s leakSpec, disrupt func(*leakLive)) leakRun {
	t.Helper()
	r := e.measureLeak(t, s, disrupt)
	if r.leaked != 0 {
		t.Errorf("%s: %d of %d datagrams to the denied address %s arrived (the first %v, the last %v after the disruption began)",
			s.name, r.leaked, r.sent, s.deny, r.firstLeak.Round(time.Millisecond), r.lastLeak.Round(time.Millisecond))
	}
	return r
}

// leakBaseline floods the database from from before any fence exists and
// fails unless the datagrams arrive: the receivers and the sender work, and
// a leak would be seen.
func (e *env) leakBaseline(t *testing.T, from harness.Doer) {
	t.Helper()
	r := e.measureLeak(t, e.floodSpec("without the fence", from, leakTarget()), func(*leakLive) {})
	if r.leaked < r.sent*9/10 {
		t.Fatalf("without the fence only %d of %d datagrams arrived; the harness cannot see a leak", r.leaked, r.sent)
	}
}

// leakTarget is the denied address of the leak checks: the LAN's database.
func leakTarget() string { return hostPort(topo.LANDB4, leakDenyPort) }

// leakApplies is the number of re-applies of TestLeakReapplies:
// DOCKERFENCE_LEAK_APPLIES, else 200, CI's figure. The 1000 are
// DOCKERFENCE_LEAK_APPLIES=1000: about 25 s on an idle 2-core VM.
func leakApplies(t *testing.T) int {
	s := os.Getenv("DOCKERFENCE_LEAK_APPLIES")
	if s == "" {
		return 200
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 2 {
		t.Fatalf("DOCKERFENCE_LEAK_APPLIES=%q: use a whole number of at least 2", s)
	}
	return n
}

// leakAltPolicy differs from seedPolicy in every part an apply can change
// (a rule, an inline prefix that becomes a named set, a second network)
// while the database stays denied.
const leakAltPolicy = `version: 1
networks:
  - match: {subnet: 172.20.0.0/16}
    egress:
      - allow: self
      - allow: 192.168.100.3
        comment: another HTTP proxy
      - allow: 192.168.100.2
        proto: udp
        ports: [53]
        comment: DNS
      - deny: "@lan"
        comment: private network
    egress_default: allow
  - match: {subnet: 172.21.0.0/16}
    egress_default: deny
lists:
  lan: [192.168.0.0/16, "fd00:100::/64", 10.0.0.0/8]
`

// TestLeakReapplies streams UDP at the denied database while two policies
// that differ are applied alternately, DOCKERFENCE_LEAK_APPLIES times (200
// by default), and fails if one datagram arrives.
func TestLeakReapplies(t *testing.T) {
	e := newEnv(t)
	e.leakBaseline(t, e.tp.Ctr)
	n := leakApplies(t)
	pols := []string{e.write("a.yaml", seedPolicy), e.write("b.yaml", leakAltPolicy)}
	e.mustDF("apply", "-c", pols[0])
	r := e.noLeak(t, fmt.Sprintf("%d alternating applies of two policies", n), e.tp.Ctr, leakTarget(), leakPPS, func() {
		for i := 1; i <= n; i++ {
			if out := e.mustDF("apply", "-c", pols[i%2]); !strings.HasPrefix(out, "applied") {
				t.Fatalf("apply %d changed nothing, so the two policies do not differ: %s", i, out)
			}
		}
	})
	t.Logf("%.1f ms an apply", float64(r.disrupt.Microseconds())/1000/float64(n))
}

// countLog counts the lines of the daemon's log that contain every one of parts.
func (p *daemonProc) countLog(parts ...string) int {
	n := 0
	for _, l := range strings.Split(p.log.String(), "\n") {
		all := true
		for _, s := range parts {
			all = all && strings.Contains(l, s)
		}
		if all {
			n++
		}
	}
	return n
}

// waitCount waits up to 5 s until countLog(parts...) exceeds before.
func (p *daemonProc) waitCount(t *testing.T, before int, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.countLog(parts...) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log a line with %q within 5s:\n%s", parts, p.log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dockerLikeRules is an iptables-nft filter table shaped like Docker's
// (20.10): its chains, its jumps from FORWARD, and the ACCEPT rules it puts
// above an operator's own chain.
const dockerLikeRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o br-test -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o br-test -j DOCKER
-A FORWARD -i br-test ! -o br-test -j ACCEPT
-A FORWARD -i br-test -o br-test -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i br-test ! -o br-test -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o br-test -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -d 192.168.100.50/32 -j DROP
-A DOCKER-USER -j RETURN
COMMIT
`

// flushedRules is what a firewall reload restores over it: the whole filter
// table flushed, Docker's chains emptied, everything forwarded.
const flushedRules = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j ACCEPT
COMMIT
`

// TestLeakDaemon runs "dockerfence run" without Docker and streams UDP at
// the denied database through every disruption of the daemon and of the
// kernel's ruleset: reloads by SIGHUP, by a file edit and to an invalid
// policy, restarts after SIGTERM and SIGKILL, iptables-restore of Docker's
// chains, and nft flush ruleset, the one that opens the fence for as long
// as the repair takes.
func TestLeakDaemon(t *testing.T) {
	e := newEnv(t)
	e.leakBaseline(t, e.tp.Ctr)
	pol := e.write("policy.yaml", seedPolicy)
	invalid := strings.Replace(seedPolicy, "192.168.0.0/16", "192.168.0.0/33", 1)
	df := e.startDaemonArgs(nil, pol)
	df.waitLog(t, "table applied")
	target := leakTarget()
	// Every reload below changes the table: the two policies alternate.
	policies := []string{leakAltPolicy, seedPolicy}
	write := func(t *testing.T, content string) {
		if err := os.WriteFile(pol, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("SIGHUP reloads", func(t *testing.T) {
		e.noLeak(t, "10 reloads by SIGHUP, alternating two policies", e.tp.Ctr, target, leakPPS, func() {
			for i := 0; i < 10; i++ {
				before := df.countLog(`msg="policy reloaded" trigger=SIGHUP`)
				write(t, policies[i%2])
				df.cmd.Process.Signal(syscall.SIGHUP)
				df.waitCount(t, before, `msg="policy reloaded" trigger=SIGHUP`)
			}
		})
	})

	t.Run("file edits", func(t *testing.T) {
		e.noLeak(t, "4 reloads by a file edit, alternating two policies", e.tp.Ctr, target, leakPPS, func() {
			for i := 0; i < 4; i++ {
				before := df.countLog(`msg="policy reloaded" trigger="policy file changed"`)
				write(t, policies[i%2])
				df.waitCount(t, before, `msg="policy reloaded" trigger="policy file changed"`)
			}
		})
	})

	t.Run("invalid policy", func(t *testing.T) {
		e.noLeak(t, "an edit and a SIGHUP to an invalid policy, then back", e.tp.Ctr, target, leakPPS, func() {
			before := df.countLog("policy reload failed", `trigger="policy file changed"`)
			write(t, invalid)
			df.waitCount(t, before, "policy reload failed", `trigger="policy file changed"`)
			before = df.countLog("policy reload failed", "trigger=SIGHUP")
			df.cmd.Process.Signal(syscall.SIGHUP)
			df.waitCount(t, before, "policy reload failed", "trigger=SIGHUP")
			time.Sleep(300 * time.Millisecond) // the invalid policy stays a while
			before = df.countLog(`msg="policy reloaded" trigger="policy file changed"`)
			write(t, seedPolicy)
			df.waitCount(t, before, `msg="policy reloaded" trigger="policy file changed"`)
		})
		if !strings.Contains(df.log.String(), pol+":12:15:") {
			t.Errorf("the reload error does not name the file and line:\n%s", df.log.String())
		}
	})

	t.Run("iptables-restore flushes Docker's chains", func(t *testing.T) {
		docker, flushed := e.write("docker.rules", dockerLikeRules), e.write("flushed.rules", flushedRules)
		e.tp.Host.Run(t, "iptables-nft-restore", docker)
		if out := e.tp.Host.Run(t, "iptables-nft", "-S", "DOCKER-USER"); !strings.Contains(out, "-A DOCKER-USER -d 192.168.100.50/32 -j DROP") {
			t.Fatalf("the Docker-like ruleset is not in place:\n%s", out)
		}
		e.noLeak(t, "10 iptables-restores that flush the filter table and Docker's chains", e.tp.Ctr, target, leakPPS, func() {
			for i := 0; i < 10; i++ {
				e.tp.Host.Run(t, "iptables-nft-restore", []string{flushed, docker}[i%2])
			}
			e.tp.Host.Run(t, "iptables-nft-restore", flushed)
		})
		if out := e.tp.Host.Run(t, "iptables-nft", "-S"); strings.Contains(out, "DROP") || !strings.Contains(out, "-A FORWARD -j ACCEPT") {
			t.Errorf("after the last iptables-restore the filter table should accept everything:\n%s", out)
		}
	})

	// The table is an ordinary one: the kernel keeps it while no daemon
	// runs, whatever way the daemon ended.
	down := func(t *testing.T, how string) {
		if !e.mapped(topo.BridgeName) {
			t.Errorf("after %s the table no longer fences %s", how, topo.BridgeName)
		}
		time.Sleep(500 * time.Millisecond)
	}

	t.Run("restart after SIGTERM", func(t *testing.T) {
		e.noLeak(t, "SIGTERM, 500ms without a daemon, start", e.tp.Ctr, target, leakPPS, func() {
			df.cmd.Process.Signal(syscall.SIGTERM)
			<-df.exited
			down(t, "SIGTERM")
			df = e.startDaemonArgs(nil, pol)
			df.waitLog(t, "reason=start")
		})
	})

	t.Run("restart after SIGKILL, policy edited meanwhile", func(t *testing.T) {
		e.noLeak(t, "SIGKILL, 500ms without a daemon and the policy edited, start", e.tp.Ctr, target, leakPPS, func() {
			df.cmd.Process.Kill()
			<-df.exited
			write(t, leakAltPolicy)
			down(t, "SIGKILL")
			df = e.startDaemonArgs(nil, pol)
			df.waitLog(t, `msg="table applied" reason=start`) // the edited policy changed the table
		})
	})

	// The daemon's socket owns the table: nft flush ruleset skips it, and
	// nothing needs repairing. The loop still waits for the fence after
	// each flush, so that a kernel that deletes the table (no owner, as
	// before Linux 6.9) is measured rather than failed outright; the
	// owned case is asserted at 0 by TestLeakFlushOwnedByDaemon.
	t.Run("nft flush ruleset", func(t *testing.T) {
		const flushes = 5
		var windows []string
		s := e.floodSpec("5 nft flush ruleset, 200ms apart", e.tp.Ctr, target)
		r := e.measureLeak(t, s, func(l *leakLive) {
			for i := 0; i < flushes; i++ {
				before, at := l.leaked(), time.Now()
				e.tp.Host.Run(t, "nft", "flush", "ruleset")
				for !e.mapped(topo.BridgeName) {
					if time.Since(at) > time.Second {
						t.Fatalf("flush %d: the fence is not back within 1s:\n%s", i+1, df.log.String())
					}
					time.Sleep(time.Millisecond)
				}
				back := time.Since(at)
				time.Sleep(200 * time.Millisecond)
				windows = append(windows, fmt.Sprintf("back after %v, %d leaked", back.Round(time.Millisecond), l.leaked()-before))
			}
		})
		t.Logf("nft flush ruleset, one by one: %s", strings.Join(windows, "; "))
		if r.leaked == 0 {
			t.Logf("no datagram passed: the repairs were faster than the gaps between datagrams (%v)", time.Second/leakPPS)
		}
		if quiet := r.disrupt + leakAfter - r.lastLeak; r.leaked > 0 && quiet < 300*time.Millisecond {
			t.Errorf("datagrams still arrived %v before the end: the fence did not stay repaired", quiet.Round(time.Millisecond))
		}
		if most := int64(flushes * s.pps / 10); r.leaked > most {
			t.Errorf("%d datagrams leaked over %d flushes, more than %d (100 ms of the flood each)", r.leaked, flushes, most)
		}
	})
}

// ownedDropTable creates, on c, inet table name with flags, a forward chain
// at priority -10 and a rule dropping IPv4 datagrams to dst, in one batch:
// only the socket that creates an owned table may fill it.
func ownedDropTable(c *netlink.Conn, name string, flags uint32, dst netip.Addr) error {
	str := func(s string) []byte { return append([]byte(s), 0) }
	var elems []netlink.Attribute
	for _, x := range []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dst.AsSlice()},
		&expr.Verdict{Kind: expr.VerdictDrop},
	} {
		b, err := expr.Marshal(unix.NFPROTO_INET, x)
		if err != nil {
			return err
		}
		elems = append(elems, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b})
	}
	exprs, err := netlink.MarshalAttributes(elems)
	if err != nil {
		return err
	}
	hook, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_HOOK_HOOKNUM, Data: harness.BE32(unix.NF_INET_FORWARD)},
		{Type: unix.NFTA_HOOK_PRIORITY, Data: harness.BE32(uint32(0xffffffff - 9))}, // -10
	})
	if err != nil {
		return err
	}
	table, err1 := harness.NFTMsg(unix.NFT_MSG_NEWTABLE, netlink.Create, []netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: str(name)}, {Type: unix.NFTA_TABLE_FLAGS, Data: harness.BE32(flags)}})
	chain, err2 := harness.NFTMsg(unix.NFT_MSG_NEWCHAIN, netlink.Create, []netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: str(name)}, {Type: unix.NFTA_CHAIN_NAME, Data: str("forward")},
		{Type: unix.NLA_F_NESTED | unix.NFTA_CHAIN_HOOK, Data: hook}, {Type: unix.NFTA_CHAIN_TYPE, Data: str("filter")}})
	rule, err3 := harness.NFTMsg(unix.NFT_MSG_NEWRULE, netlink.Create|netlink.Append|netlink.Acknowledge, []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: str(name)}, {Type: unix.NFTA_RULE_CHAIN, Data: str("forward")},
		{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: exprs}})
	if err := errors.Join(err1, err2, err3); err != nil {
		return err
	}
	// The kernel answers with the rule's ack, or the error of the message
	// it refused.
	return harness.NFTBatch(c, table, chain, rule)
}

// TestLeakOwnedTable measures, with the same harness, what the kernel does
// with a fence in a table with the owner flag, and with owner and persist,
// when the owning process dies. It records why nft.Kernel owns its table
// only where the kernel has both flags (Linux 6.9), and keeps an ordinary
// table on older kernels: an owned table without persist goes with its
// owner, and the fence opens; with persist it stays (see also
// TestOwnedTableOutlivesItsOwner).
func TestLeakOwnedTable(t *testing.T) {
	e := newEnv(t)
	e.leakBaseline(t, e.tp.Ctr)
	target := leakTarget()
	present := func(name string) string {
		out, err := e.tp.Host.Try("nft", "list", "table", "inet", name)
		if err != nil {
			return ""
		}
		return out
	}

	t.Run("owner: the table goes with its owner", func(t *testing.T) {
		// nft -i keeps its netlink socket, and so owns the table, until it exits.
		cmd := exec.Command("nsenter", "--net="+e.tp.Host.Path(), "--", "nft", "-i")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out syncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			select {
			case <-exited:
			default:
				cmd.Process.Kill()
				<-exited
			}
		})
		fmt.Fprintf(stdin, "add table inet owned { flags owner; }\nadd chain inet owned forward { type filter hook forward priority -10; }\nadd rule inet owned forward ip daddr %s drop\n", topo.LANDB4)
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(present("owned"), "drop") {
			if time.Now().After(deadline) {
				t.Fatalf("nft -i did not create the owned table within 5s (nft 1.0.6 or newer knows \"flags owner\"):\n%s", out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		r := e.measureLeak(t, e.floodSpec("SIGKILL to the process that owns the table (flags owner)", e.tp.Ctr, target), func(*leakLive) {
			cmd.Process.Kill()
			<-exited
		})
		if present("owned") != "" || r.leaked == 0 {
			t.Errorf("the owner's death left the table (present: %v) or no datagram passed (%d): the kernel no longer removes an owned table with its owner", present("owned") != "", r.leaked)
		}
		t.Logf("flags owner: when the owner dies the kernel deletes the table at once; %d of %d datagrams passed in the %v after", r.leaked, r.sent, leakAfter)
	})

	t.Run("owner and persist: the table outlives its owner", func(t *testing.T) {
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(e.tp.Host.Handle())})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := ownedDropTable(c, "persisted", tableFlagOwner|tableFlagPersist, netip.MustParseAddr(topo.LANDB4)); err != nil {
			t.Fatalf("create a table with flags owner,persist (Linux 6.9 or newer): %v", err)
		}
		if tbl := present("persisted"); !strings.Contains(tbl, "drop") || !strings.Contains(tbl, "owner") {
			t.Fatalf("the owned table is not as created:\n%s", tbl)
		}
		// Closing the socket is what the kernel does for a process that dies.
		e.noLeak(t, "the owner's socket closes (flags owner,persist)", e.tp.Ctr, target, leakPPS, func() { c.Close() })
		if tbl := present("persisted"); !strings.Contains(tbl, "drop") || strings.Contains(tbl, "owner") {
			t.Errorf("after its owner went, the persist table should stay without an owner:\n%s", tbl)
		}
	})
}

// dockerNS opens the network namespace of the running container name.
func (e *env) dockerNS(t *testing.T, d *dockerd.Daemon, name string) *harness.HandleNS {
	t.Helper()
	ins, err := d.Client.ContainerInspect(t.Context(), name)
	if err != nil || ins.State == nil || ins.State.Pid == 0 {
		t.Fatalf("inspect container %s: %v (is it running?)", name, err)
	}
	h, err := netns.GetFromPid(ins.State.Pid)
	if err != nil {
		t.Fatalf("open the network namespace of container %s (pid %d): %v", name, ins.State.Pid, err)
	}
	n, err := harness.NewHandleNS(e.t, "container "+name, h)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sandboxes lists Docker's network namespaces (its exec root's netns
// directory), without "default", which is dockerd's own.
func sandboxes(d *dockerd.Daemon) map[string]bool {
	m := map[string]bool{}
	ents, _ := os.ReadDir(filepath.Join(d.Dir, "exec", "netns"))
	for _, e := range ents {
		if e.Name() != "default" {
			m[e.Name()] = true
		}
	}
	return m
}

// openSandbox opens the network namespace mounted at path, or fails while
// the mount is not there yet (the file exists before it is mounted).
func (e *env) openSandbox(path string) (*harness.HandleNS, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, err
	}
	return harness.NewHandleNS(e.t, "sandbox "+filepath.Base(path), h)
}

// TestLeakDocker streams UDP from inside a Docker container (the
// container's own network namespace: its Docker-made veth and address) at
// the denied database while dockerd restarts, and while compose-style
// "down && up" recreates the container's network with another subnet.
func TestLeakDocker(t *testing.T) {
	e := newEnv(t)
	eng := engine(t)
	// With --live-restore the container keeps running, and streaming,
	// while dockerd restarts; without it dockerd stops it and there is no
	// container traffic to leak until it is started again.
	eng.Args = append(append([]string(nil), eng.Args...), "--live-restore")
	d := dockerd.Start(t, e.tp.Host, eng)
	_, br := d.CreateNetwork(t, "app", "10.10.0.0/24", nil)
	d.RunContainer(t, "web", "app")
	web := e.dockerNS(t, d, "web")
	e.leakBaseline(t, web)
	pol := e.write("policy.yaml", e2ePolicy)
	df := e.startDaemon(d, pol)
	e.waitFenced(br, time.Now())
	target := leakTarget()

	t.Run("dockerd restart", func(t *testing.T) {
		r := e.noLeak(t, "dockerd restart (live-restore)", web, target, leakPPS, func() {
			before := df.countLog("Docker connected")
			d.Restart(t)
			df.waitCount(t, before, "Docker connected")
		})
		if r.failed > 0 {
			t.Errorf("the container lost its route during the restart (%d writes failed): live-restore did not keep it", r.failed)
		}
	})

	// In compose's "down && up" the container's namespace goes away with
	// it; the flood follows the new container into its namespace as soon
	// as Docker creates it. The second run stops the daemon (SIGSTOP) for
	// the recreate, so that only the table as it was (its "*" section
	// for new br-* bridges) stands between the new container and the
	// database until the daemon continues.
	var cur harness.Doer = web
	for i, paused := range []bool{false, true} {
		name := "compose-style recreate"
		if paused {
			name += " while the daemon is stopped"
		}
		t.Run(name, func(t *testing.T) {
			cur = e.recreateLeak(t, d, df, cur, fmt.Sprintf("10.%d.0.0/24", 20+10*i), paused)
		})
	}
}

// recreateLeak streams UDP from the container web (in namespace from) to
// the denied database while web and its network app are removed and
// created again with subnet, as "docker compose down && up" does, and
// fails if a datagram arrives. The flood follows the new container into its
// namespace as soon as Docker creates it, before the container's process
// runs. With paused, the daemon is stopped (SIGSTOP) from before the
// removal until the new container's datagrams have flowed for a while.
// It returns the new container's namespace.
func (e *env) recreateLeak(t *testing.T, d *dockerd.Daemon, df *daemonProc, from harness.Doer, subnet string, paused bool) harness.Doer {
	t.Helper()
	mv := harness.NewMovingNS(from)
	s := e.floodSpec("compose-style down && up: container and network removed, network recreated with subnet "+subnet+", container started", mv, leakTarget())
	if paused {
		s.name += ", the daemon stopped (SIGSTOP) throughout"
	}
	s.gaps = true
	netnsDir := filepath.Join(d.Dir, "exec", "netns")
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	var report string
	e.noLeakSpec(t, s, func(l *leakLive) {
		if paused {
			df.cmd.Process.Signal(syscall.SIGSTOP)
			defer df.cmd.Process.Signal(syscall.SIGCONT) // also when the test fails
		}
		d.RemoveContainer(t, "web")
		d.RemoveNetwork(t, "app")
		old := sandboxes(d)
		ctl := l.allow.Count() // the old container is gone: no control arrives until the new one sends
		start := time.Now()
		_, nb := d.CreateNetwork(t, "app", subnet, nil)
		catchAll := e.catchAll()

		// Watch for the new container's namespace (and move the flood
		// into it), its first datagram through the host (a control
		// datagram arrives), and its network's own section.
		var seen, forwarded, own atomic.Int64 // since start, 0 until then
		stop, watched := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(watched)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				now := int64(time.Since(start))
				for name := range sandboxes(d) {
					if seen.Load() != 0 || old[name] {
						continue
					}
					if n, err := e.openSandbox(filepath.Join(netnsDir, name)); err == nil {
						mv.Move(n)
						seen.Store(now)
					}
				}
				if forwarded.Load() == 0 && l.allow.Count() > ctl {
					forwarded.Store(now)
				}
				if own.Load() == 0 && e.mapped(nb) {
					own.Store(now)
				}
			}
		}()
		defer func() { close(stop); <-watched }()
		wait := func(what string, v *atomic.Int64) time.Duration {
			for v.Load() == 0 {
				if time.Since(start) > 10*time.Second {
					t.Fatalf("within 10s of the network's creation: %s never happened (namespaces in %s; last send error: %s)\n%s", what, netnsDir, l.flood.LastError(), df.log.String())
				}
				time.Sleep(time.Millisecond)
			}
			return time.Duration(v.Load())
		}
		d.RunContainer(t, "web", "app")
		started := time.Since(start)
		wait("the new container's namespace", &seen)
		fwd := wait("a datagram from the new container through the host", &forwarded)
		if paused {
			time.Sleep(500 * time.Millisecond) // only the table as it was fences the new container
			if own.Load() != 0 {
				t.Fatalf("the network got its own section while the daemon was stopped; the run proves nothing")
			}
			df.cmd.Process.Signal(syscall.SIGCONT)
		}
		ownAt := wait("the network's own section", &own)
		first := l.flood.FirstOK().Sub(start)
		report = fmt.Sprintf("after network create: the new container's namespace seen %v, its first datagram sent %v and through the host %v, the container started %v, the network's own section in place %v",
			ms(time.Duration(seen.Load())), ms(first), ms(fwd), ms(started), ms(ownAt))
		switch {
		case fwd < ownAt && catchAll:
			report += fmt.Sprintf("; for %v only the \"*\" section fenced the new container's traffic", ms(ownAt-fwd))
		case fwd < ownAt:
			report += fmt.Sprintf("; for %v the new container's traffic passed a network without a section of its own", ms(ownAt-fwd))
		default:
			report += "; the network had its own section before the container's traffic flowed"
		}
	})
	t.Log(report)
	return mv
}
