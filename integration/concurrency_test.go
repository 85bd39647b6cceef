package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/vishvananda/netlink"
)

// busyRE is the whole output of an apply that found another dockerfence
// changing the table.
var busyRE = regexp.MustCompile(`^dockerfence: another dockerfence is changing table inet dockerfence \(pid [0-9]+, dockerfence apply\); nothing changed: retry\n$`)

// concurrencyPolicy returns a policy for TestConcurrentApplies. The three
// policies it makes differ in their rules, in the elements of the set of
// list "block" (offset by offset entries of 2000, so that neighbours share
// half of theirs) and in the networks they fence (the topology's br-test,
// plus br-ca for "a" and br-cb for "b").
func concurrencyPolicy(which string, offset int) string {
	var b strings.Builder
	b.WriteString("version: 1\nlists:\n  block: [")
	for i := range 2000 {
		if i > 0 {
			b.WriteString(", ")
		}
		n := (offset + i) * 4 // /32s 4 apart: no two merge into an interval
		fmt.Fprintf(&b, "10.%d.%d.%d", 50+n>>16, n>>8&255, n&255)
	}
	b.WriteString("]\nnetworks:\n")
	switch which {
	case "a":
		b.WriteString(`  - match: {bridge: br-test}
    egress:
      - allow: self
      - allow: 192.168.100.1
        proto: tcp
        ports: [3128]
        comment: proxy A
      - deny: "@block"
      - deny: 192.168.0.0/16
  - match: {bridge: br-ca}
    egress:
      - deny: "@block"
      - deny: 172.16.0.0/12
`)
	case "b":
		b.WriteString(`  - match: {bridge: br-test}
    egress:
      - deny: "@block"
      - allow: 192.168.100.2
        proto: udp
        ports: [53]
        comment: DNS B
      - deny: 10.0.0.0/8
    egress_default: deny
  - match: {bridge: br-cb}
    egress:
      - allow: 192.168.100.1
      - deny: "@block"
`)
	default:
		b.WriteString(`  - match: {bridge: br-test}
    egress:
      - deny: "@block"
`)
	}
	return b.String()
}

// TestConcurrentApplies starts two "dockerfence apply" at once, 50 times,
// with policies that differ in rules, set elements and networks fenced.
// Each must succeed or fail with the one-line busy message and nothing
// else, at least one must succeed, and afterwards the table must be exactly
// one of the two policies: "plan" says up to date for one and not the
// other. Without the lock, the two interleave and the first rounds fail:
// both create the table from nothing and leave the chains, rules and set
// elements of both, or one commits changes computed against a table the
// other has just changed and the kernel refuses them (ENOENT).
func TestConcurrentApplies(t *testing.T) {
	e := newEnv(t)
	for _, br := range []struct{ name, addr string }{{"br-ca", "10.201.0.1/24"}, {"br-cb", "10.202.0.1/24"}} {
		if err := harness.AddBridge(e.tp.Host, br.name, br.addr); err != nil {
			t.Fatal(err)
		}
	}
	pols := map[string]string{
		"a": e.write("a.yaml", concurrencyPolicy("a", 0)),
		"b": e.write("b.yaml", concurrencyPolicy("b", 1000)),
		"c": e.write("c.yaml", concurrencyPolicy("c", 500)),
	}
	upToDate := func(which string) bool {
		out := e.mustDF("plan", "-c", pols[which])
		return strings.Contains(out, "table inet dockerfence is up to date")
	}

	const rounds = 50
	busy, both := 0, 0
	busyMsg := ""
	start := time.Now()
	for round := range rounds {
		// The table each round starts from: none (both create it), a third
		// policy (both change it), or whatever the last round left.
		switch round % 3 {
		case 0:
			e.mustDF("delete", "-c", pols["c"])
		case 1:
			e.mustDF("apply", "-c", pols["c"])
		}
		var wg sync.WaitGroup
		outs, errs := make([]string, 2), make([]error, 2)
		cmds := []*exec.Cmd{e.dfCmd("apply", "-c", pols["a"]), e.dfCmd("apply", "-c", pols["b"])}
		gate := make(chan struct{})
		for i, c := range cmds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				out, err := c.CombinedOutput()
				outs[i], errs[i] = string(out), err
			}()
		}
		close(gate)
		wg.Wait()

		ok := []bool{errs[0] == nil, errs[1] == nil}
		for i, name := range []string{"a", "b"} {
			if !ok[i] && !busyRE.MatchString(outs[i]) {
				t.Fatalf("round %d: apply -c %s failed with something other than the busy message: %v\n%s", round, name, errs[i], outs[i])
			}
		}
		switch {
		case ok[0] && ok[1]:
			both++
		case ok[0] || ok[1]:
			busy++
			if busyMsg == "" {
				busyMsg = strings.TrimSpace(outs[0])
				if ok[0] {
					busyMsg = strings.TrimSpace(outs[1])
				}
			}
		default:
			t.Fatalf("round %d: both applies failed:\n%s\n%s", round, outs[0], outs[1])
		}
		a, b := upToDate("a"), upToDate("b")
		if a == b {
			t.Fatalf("round %d: plan -c a says up to date: %v, plan -c b: %v; want exactly one (apply a: %v, apply b: %v)\n%s\n%s\n%s",
				round, a, b, errs[0], errs[1], outs[0], outs[1], e.mustDF("plan", "-c", pols["a"]))
		}
		if !ok[0] && a || !ok[1] && b {
			t.Fatalf("round %d: the table is the policy whose apply failed as busy (a up to date %v, b %v)\n%s\n%s", round, a, b, outs[0], outs[1])
		}
	}
	t.Logf("%d rounds in %v: %d with one apply refused as busy, %d with both applied one after the other; the busy apply said: %s", rounds, time.Since(start).Round(time.Millisecond), busy, both, busyMsg)
}

// TestLockHeldByAnother holds the lock file next to --socket, as another
// dockerfence would, and proves that apply and delete then change nothing
// and say who holds it, that apply --dry-run needs no lock, and that the
// daemon waits for the lock and then applies.
func TestLockHeldByAnother(t *testing.T) {
	e := newEnv(t)
	pol := e.write("a.yaml", concurrencyPolicy("c", 0))
	f, err := os.OpenFile(filepath.Join(e.dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "%d run\n", os.Getpid())
	want := fmt.Sprintf("dockerfence: another dockerfence is changing table inet dockerfence (pid %d, dockerfence run); nothing changed: retry\n", os.Getpid())
	for _, args := range [][]string{{"apply", "-c", pol}, {"delete", "-c", pol}} {
		if out, err := e.df(args...); err == nil || out != want {
			t.Errorf("dockerfence %s with the lock held elsewhere: %v\n%s\nwant it to fail with exactly: %s", strings.Join(args, " "), err, out, want)
		}
	}
	if e.table() != "" {
		t.Fatal("apply made a table while another process held the lock")
	}
	e.mustDF("apply", "--dry-run", "-c", pol)

	p := e.startDaemon(nil, pol)
	p.waitLog(t, "the table lock is busy; waiting")
	time.Sleep(300 * time.Millisecond)
	if e.table() != "" {
		t.Fatal("the daemon made a table while another process held the lock")
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	p.waitLog(t, "waited for another dockerfence to finish changing the table")
	p.waitLog(t, "table applied")
	if strings.Contains(p.log.String(), "sync failed") {
		t.Errorf("a sync failed while the daemon waited for the lock:\n%s", grepLines(p.log.String(), "sync failed"))
	}
}

// stormPolicy returns one of the two valid policies TestDaemonEventStorm
// alternates between. They fence the storm's networks by name and by
// label, with different rules, and the rest with a "*" section.
func stormPolicy(which string) string {
	if which == "a" {
		return `version: 1
lists:
  lan: [192.168.0.0/16, 10.99.0.0/16]
networks:
  - match: {name: "storm-a*"}
    egress:
      - allow: self
      - allow: 192.168.100.1
        proto: tcp
        ports: [3128]
        comment: proxy
      - deny: "@lan"
  - match: {name: "*"}
    egress:
      - deny: 192.168.100.50
        comment: database
`
	}
	return `version: 1
lists:
  lan: [192.168.100.0/24, 10.98.0.0/16]
networks:
  - match: {label: "storm.parity=even"}
    egress:
      - deny: "@lan"
        comment: LAN B
    egress_default: allow
  - match: {name: "*"}
    egress:
      - allow: self
      - deny: 192.168.0.0/16
    host:
      - allow: any
        proto: udp
        ports: [53]
    host_default: deny
`
}

// stormInvalidPolicy does not load: the daemon must log it and keep the
// policy in force.
const stormInvalidPolicy = `version: 1
networks:
  - match: {name: "*"}
    egress:
      - deny: 999.168.0.0/16
`

// startDaemonBin is startDaemonArgs for the daemon built as bin, following
// the Docker API on dockerSock.
func (e *env) startDaemonBin(bin, dockerSock, pol string, more ...string) *daemonProc {
	e.t.Helper()
	return e.launchDaemon(bin, append([]string{"-c", pol, "--docker-host", "unix://" + dockerSock}, more...)...)
}

// writeAtomic replaces the file at path with content in one rename, so
// that the daemon never reads half of it.
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestDaemonEventStorm runs "dockerfence run", built with the race
// detector, against a fake Docker that streams events, through a storm:
// four workers create 208 networks (a bridge over netlink, then the event)
// and remove 200 of them again (the bridge, then the event) within about
// 10 s, while the policy file is rewritten eight times (two valid policies
// in turn, every other one with SIGHUP, the others found by the daemon's
// watch of the file, and once an invalid one, which must be refused). The
// last rewrite comes seconds before the last events. Afterwards the table
// must converge to the last policy ("plan" says up to date against the
// same Docker) and stay so once the daemon is quiet; every bridge left must
// be fenced, no sync may have failed, and the race detector must have found
// nothing.
//
// The daemon's own applies come back to it as changes of the table, and
// each of those syncs lists Docker's networks again: during a storm this
// alone keeps the table close to Docker, so the test cannot tell a lost
// event from a handled one; it catches a table that does not converge, a
// failed sync and a data race.
func TestDaemonEventStorm(t *testing.T) {
	e := newEnv(t)
	raceBin := filepath.Join(e.dir, "dockerfence-race")
	if out, err := exec.Command("go", "build", "-race", "-o", raceBin, "../cmd/dockerfence").CombinedOutput(); err != nil {
		t.Fatalf("build dockerfence with -race: %v\n%s", err, out)
	}
	dockerSock := filepath.Join(e.dir, "docker.sock")
	fake := harness.StartDocker(t, dockerSock)
	pol := filepath.Join(e.dir, "policy.yaml")
	writeAtomic(t, pol, stormPolicy("a"))
	p := e.startDaemonBin(raceBin, dockerSock, pol)
	p.waitLog(t, "table applied")
	p.waitLog(t, "Docker connected")

	const (
		workers   = 4
		perWorker = 50 // 200 networks in all
		live      = 3  // networks a worker keeps before it removes its oldest
		kept      = 2  // networks each worker leaves at the end: 208 created, 200 removed
		pace      = 140 * time.Millisecond
	)
	type stormNet struct{ name, bridge string }
	var (
		mu       sync.Mutex
		left     []stormNet // networks alive at the end
		stormErr error
		events   int
	)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []stormNet
			fail := func(err error) {
				mu.Lock()
				if stormErr == nil {
					stormErr = err
				}
				mu.Unlock()
			}
			n := 0
			for k := range perWorker + kept {
				i := w*(perWorker+kept) + k
				name := fmt.Sprintf("storm-%c%d", "ab"[i%2], i)
				if i%3 == 0 {
					name = fmt.Sprintf("storm-x%d", i) // only "*" or the label match it
				}
				sn := stormNet{name: name, bridge: fmt.Sprintf("br-s%d", i)}
				if err := harness.AddBridge(e.tp.Host, sn.bridge, fmt.Sprintf("10.%d.%d.1/24", 210+i/250, i%250)); err != nil {
					fail(err)
					return
				}
				fake.Add(harness.Network{Name: sn.name, Bridge: sn.bridge, Subnets: []string{fmt.Sprintf("10.%d.%d.0/24", 210+i/250, i%250)},
					Labels: map[string]string{"storm.parity": []string{"even", "odd"}[i%2]}})
				n++
				mine = append(mine, sn)
				for len(mine) > live || k == perWorker+kept-1 && len(mine) > kept {
					old := mine[0]
					mine = mine[1:]
					if err := harness.DelBridge(e.tp.Host, old.bridge); err != nil {
						fail(err)
						return
					}
					fake.Remove(old.name)
					n++
				}
				time.Sleep(pace)
			}
			mu.Lock()
			left = append(left, mine...)
			events += n
			mu.Unlock()
		}()
	}

	// Policy reloads during the storm: b, a, invalid, b, a, b, a, b, each
	// about 1.1 s apart; every other one is signalled, the others are found
	// by the daemon's watch of the file.
	reloads := []string{"b", "a", "invalid", "b", "a", "b", "a", "b"}
	for i, which := range reloads {
		time.Sleep(1100 * time.Millisecond)
		content := stormInvalidPolicy
		if which != "invalid" {
			content = stormPolicy(which)
		}
		writeAtomic(t, pol, content)
		if i%2 == 0 || which == "invalid" {
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	if stormErr != nil {
		t.Fatal(stormErr)
	}
	// The last reload came seconds before the last events: those are
	// followed by event handling alone, not by the full sync of a reload.
	stormEnd := time.Now()
	storm := stormEnd.Sub(start)

	plan := func() string {
		out, err := e.df("plan", "-c", pol, "--docker-host", "unix://"+dockerSock)
		if err != nil {
			t.Fatalf("plan: %v\n%s", err, out)
		}
		return out
	}
	var converged time.Duration
	for {
		if strings.Contains(plan(), "is up to date") {
			converged = time.Since(stormEnd)
			break
		}
		if time.Since(stormEnd) > 15*time.Second {
			t.Fatalf("the table did not converge to the final policy within 15s of the storm:\n%s", plan())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Quiet: no apply for a second.
	for applies := -1; ; time.Sleep(time.Second) {
		n := strings.Count(p.log.String(), "table applied")
		if n == applies {
			break
		}
		applies = n
	}
	if out := plan(); !strings.Contains(out, "is up to date") {
		t.Fatalf("after the daemon went quiet, plan -c <final policy> says:\n%s", out)
	}

	// Every bridge still there is fenced: the storm's by their own chain,
	// the topology's br-test (not Docker's) by the "*" section's catch-all.
	var bridges []string
	if err := e.tp.Host.Do(func() error {
		links, err := netlink.LinkList()
		for _, l := range links {
			if l.Type() == "bridge" {
				bridges = append(bridges, l.Attrs().Name)
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	fenced := 0
	for _, b := range bridges {
		if strings.HasPrefix(b, "br-s") {
			if !e.mapped(b) {
				t.Errorf("bridge %s exists and has no chain of its own in the table", b)
			}
			fenced++
		} else if !e.catchAll() {
			t.Errorf("bridge %s exists and the table's network layer (fwd.network) does not send it to the \"*\" section", b)
		}
	}
	if fenced != len(left) {
		t.Errorf("%d storm bridges exist, want the %d left: %v", fenced, len(left), bridges)
	}

	log := p.log.String()
	if n := strings.Count(log, "policy reload failed"); n < 1 {
		t.Errorf("the invalid policy was not refused (%d \"policy reload failed\" lines)", n)
	}
	if n := strings.Count(log, "sync failed"); n > 0 {
		t.Errorf("%d syncs failed during the storm:\n%s", n, grepLines(log, "sync failed"))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon did not stop within 10s of SIGTERM")
	}
	if strings.Contains(p.log.String(), "DATA RACE") || p.err != nil {
		t.Fatalf("the daemon, built with -race, exited with %v:\n%s", p.err, grepLines(p.log.String(), "DATA RACE"))
	}
	t.Logf("storm: %d network events (%d networks created and removed, %d more created and left) and %d policy rewrites (1 invalid) in %v; converged %v after the last event; %d applies, %d reloads refused",
		events, workers*perWorker, len(left), len(reloads), storm.Round(time.Millisecond), converged.Round(time.Millisecond),
		strings.Count(log, "table applied"), strings.Count(log, "policy reload failed"))
}
