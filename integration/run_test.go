package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/integration/dockerd"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/status"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// engine returns the Docker engine the end-to-end suite runs against:
// Debian's docker.io by default, or Docker 29 (moby v2, native nftables
// firewall backend) with DOCKERFENCE_ENGINE=docker29, built by
// scripts/build-docker29.sh into DOCKER29_BIN.
func engine(t *testing.T) dockerd.Engine {
	switch e := os.Getenv("DOCKERFENCE_ENGINE"); e {
	case "", "debian":
		return dockerd.Debian()
	case "docker29":
		bin := os.Getenv("DOCKER29_BIN")
		if bin == "" {
			t.Fatal("DOCKERFENCE_ENGINE=docker29 needs DOCKER29_BIN, the directory scripts/build-docker29.sh prints")
		}
		// The native nftables firewall backend is the point. A runc built
		// without seccomp needs the unconfined profile; Debian's docker-proxy
		// is too old for Docker 29, so it gets its own.
		return dockerd.Engine{Name: "docker29", Dockerd: filepath.Join(bin, "dockerd"), PathPrefix: bin,
			Args: []string{"--firewall-backend=nftables", "--seccomp-profile=unconfined", "--userland-proxy-path=" + filepath.Join(bin, "docker-proxy")}}
	default:
		t.Fatalf("DOCKERFENCE_ENGINE=%q: use debian or docker29", e)
	}
	return dockerd.Engine{}
}

// e2ePolicy fences the network named app tightly and every other Docker
// network loosely.
const e2ePolicy = `version: 1
networks:
  - match: {name: app}
    egress:
      - allow: 192.168.100.1
        proto: tcp
        ports: [3128]
        comment: proxy
      - deny: 192.168.0.0/16
        comment: LAN
    egress_default: allow
  - match: {name: "*"}
    egress:
      - deny: 192.168.100.50
        comment: database
    egress_default: allow
`

// syncBuffer is a bytes.Buffer safe for a writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemonProc is a dockerfence run started by a test (with nsenter, which
// execs it: the pid is the daemon's).
type daemonProc struct {
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{} // closed when it has exited; err is then set
	err    error
}

// startDaemon starts "dockerfence run" in the Host namespace, following d
// (nil: without Docker). Cleanup stops it with SIGTERM (SIGKILL after 5s)
// if it still runs.
func (e *env) startDaemon(d *dockerd.Daemon, pol string) *daemonProc {
	e.t.Helper()
	return e.startDaemonArgs(d, pol)
}

// startDaemonArgs is startDaemon with more arguments for dockerfence run.
func (e *env) startDaemonArgs(d *dockerd.Daemon, pol string, more ...string) *daemonProc {
	e.t.Helper()
	args := append([]string{"-c", pol}, more...)
	if d != nil {
		args = append(args, "--docker-host", "unix://"+d.Sock)
	} else {
		args = append(args, "--no-docker")
	}
	return e.launchDaemon(binary, args...)
}

// launchDaemon starts "bin run" in the Host namespace with the test's
// resolv.conf and socket and the given arguments. Cleanup stops it with
// SIGTERM (SIGKILL after 5s) if it still runs, and logs its output if the
// test failed.
func (e *env) launchDaemon(bin string, more ...string) *daemonProc {
	e.t.Helper()
	args := append([]string{"run", "--log-level", "debug", "--resolv-conf", e.resolvConf, "--socket", e.socket()}, more...)
	return startProc(e.t, e.tp.Host.Command(bin, args...))
}

// waitLog waits until the daemon's log contains s.
func (p *daemonProc) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log %q within 10s:\n%s", s, p.log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kernel reads the Host namespace's table.
func (e *env) kernel() nft.Kernel { return nft.Kernel{NetNS: int(e.tp.Host.Handle())} }

// waitFenced polls the table until the bridge has its own chain in the
// forward verdict map, and returns how long that took.
func (e *env) waitFenced(bridge string, since time.Time) time.Duration {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if e.mapped(bridge) {
			return time.Since(since)
		}
		time.Sleep(time.Millisecond)
	}
	e.t.Fatalf("bridge %s not fenced by its own chain within 10s", bridge)
	return 0
}

// mapped reports whether the table maps bridge to a chain of its own.
func (e *env) mapped(bridge string) bool { return harness.Mapped(e.kernel(), bridge) }

// catchAll reports whether the table's forward network layer sends unknown br-*
// bridges to the "*" section.
func (e *env) catchAll() bool {
	out, err := e.tp.Host.Try("nft", "list", "chain", "inet", "dockerfence", "fwd.network")
	for _, l := range strings.Split(out, "\n") {
		if err == nil && strings.Contains(l, `iifname "br-*"`) && strings.Contains(l, "goto fwd_unknown") {
			return true
		}
	}
	return false
}

// TestDaemonAgainstDocker runs dockerd (Debian's, or Docker 29) in the Host
// namespace and "dockerfence run" next to it, and proves with packets from
// inside containers that the fence follows Docker, heals, and stays.
func TestDaemonAgainstDocker(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	eng := engine(t)
	start := time.Now()
	d := dockerd.Start(t, e.tp.Host, eng)
	v, err := d.Client.ServerVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s dockerd %s (API %s) started with the busybox image in %v", eng.Name, v.Version, v.APIVersion, time.Since(start).Round(time.Millisecond))
	// Prove the engine is the one claimed. A moby v2 built with go install
	// calls itself "library-import"; its API version (1.52 is Docker 29.0)
	// tells it apart, and its nftables backend shows once a network exists.
	var apiMinor int
	fmt.Sscanf(v.APIVersion, "1.%d", &apiMinor)
	if eng.Name == "docker29" && apiMinor < 52 || eng.Name == "debian" && !strings.HasPrefix(v.Version, "20.10") {
		t.Fatalf("engine %s is dockerd %s (API %s)", eng.Name, v.Version, v.APIVersion)
	}
	checkBackend := func() {
		tables := e.tp.Host.Run(t, "nft", "list", "tables")
		if native := strings.Contains(tables, "docker-bridges"); native != (eng.Name == "docker29") {
			t.Errorf("engine %s: nftables tables in its namespace:\n%s", eng.Name, tables)
		}
	}
	pol := e.write("policy.yaml", e2ePolicy)
	df := e.startDaemon(d, pol)
	var timings []string
	report := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		timings = append(timings, s)
		t.Log(s)
	}
	t.Cleanup(func() { t.Logf("time to fence on %s:\n  %s", eng.Name, strings.Join(timings, "\n  ")) })

	proxy, db := hostPort(topo.LANProxy4, 3128), hostPort(topo.LANDB4, 5432)
	probe := func(ctr string, want map[string]string) {
		t.Helper()
		for addr, w := range want {
			if got := d.TCP(t, ctr, addr, 3*time.Second); got != w {
				t.Errorf("%s -> %s: %s, want %s", ctr, addr, got, w)
			}
		}
	}

	var appBridge string
	t.Run("named network, containers started after the daemon", func(t *testing.T) {
		created := time.Now()
		_, appBridge = d.CreateNetwork(t, "app", "10.10.0.0/24", nil)
		report("network app created: fenced by its own section after %v", e.waitFenced(appBridge, created).Round(time.Millisecond))
		checkBackend()
		d.RunContainer(t, "web1", "app")
		probe("web1", map[string]string{proxy: "ok", db: "refused", hostPort(topo.LANDNS4, 53): "refused", hostPort(topo.InetIP4, 80): "ok"})
	})

	t.Run("a denial is logged with the container's name", func(t *testing.T) {
		// web1 was refused the database above; logs names it.
		var ev denylog.Event
		deadline := time.Now().Add(5 * time.Second)
		for {
			out := e.mustDFDocker(d, "logs", "--json")
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				var x denylog.Event
				if json.Unmarshal([]byte(l), &x) == nil && x.Dst == topo.LANDB4 && x.Port == 5432 {
					ev = x
				}
			}
			if ev.Dst != "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if ev.Container != "web1" || len(ev.ContainerID) != 64 || ev.Network != "app" || ev.Comment != "LAN" || ev.Rule != "egress 2" || ev.Verdict != "deny" {
			t.Errorf("denial of web1 -> database: %+v; want container web1 (with its id), network app, rule egress 2 \"LAN\"", ev)
		}
		human := e.mustDFDocker(d, "logs")
		if !strings.Contains(human, "deny       web1 (app) ") || !strings.Contains(human, `-> 192.168.100.50:5432/tcp  rule 2 "LAN"`) {
			t.Errorf("dockerfence logs:\n%s", human)
		}
		t.Logf("dockerfence logs on %s:\n%s", eng.Name, human)
	})

	t.Run("compose-style recreate with another subnet", func(t *testing.T) {
		d.RemoveContainer(t, "web1")
		d.RemoveNetwork(t, "app")
		created := time.Now()
		_, nb := d.CreateNetwork(t, "app", "10.20.0.0/24", nil)
		covered := e.catchAll() // the "*" section fences any br-* from its creation
		own := e.waitFenced(nb, created)
		if nb == appBridge {
			t.Errorf("the recreated network has the old bridge %s; the test proves nothing", nb)
		}
		if covered {
			report("recreated network app (%s, 10.20.0.0/24): unfenced 0 ms (the \"*\" section covered it from creation); its own section after %v", nb, own.Round(time.Millisecond))
		} else {
			report("recreated network app (%s, 10.20.0.0/24): unfenced for %v", nb, own.Round(time.Millisecond))
		}
		appBridge = nb
		d.RunContainer(t, "web2", "app")
		probe("web2", map[string]string{proxy: "ok", db: "refused", hostPort(topo.LANDNS4, 53): "refused"})
	})

	t.Run("a network no section names falls to the * section", func(t *testing.T) {
		created := time.Now()
		_, ob := d.CreateNetwork(t, "other", "10.30.0.0/24", nil)
		report("network other: own chain after %v", e.waitFenced(ob, created).Round(time.Millisecond))
		d.RunContainer(t, "misc", "other")
		// The "*" section denies only the database: the proxy port and DNS pass.
		probe("misc", map[string]string{db: "refused", proxy: "ok", hostPort(topo.LANDNS4, 53): "ok"})
		var st struct {
			Networks []struct {
				Name    string
				Section int
			}
		}
		out := e.mustDFDocker(d, "status", "--json", "-c", pol)
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		sections := map[string]int{}
		for _, n := range st.Networks {
			sections[n.Name] = n.Section
		}
		if sections["other"] != 2 || sections["app"] != 1 {
			t.Errorf("status: sections by network %v, want app in 1 and other in 2:\n%s", sections, out)
		}
	})

	t.Run("nft delete table is refused and nft flush ruleset skips the table", func(t *testing.T) {
		e.refused(t, "delete", "table", "inet", "dockerfence")
		e.tp.Host.Run(t, "nft", "flush", "ruleset")
		if !e.mapped(appBridge) {
			t.Fatalf("after nft flush ruleset the owned table no longer fences %s:\n%s", appBridge, df.log.String())
		}
		// Docker's own NAT went with the flush; the fence's reject does not need it.
		probe("web2", map[string]string{db: "refused"})
	})

	t.Run("dockerd restart", func(t *testing.T) {
		at := time.Now()
		d.Restart(t)
		report("dockerd restarted in %v", time.Since(at).Round(time.Millisecond))
		d.RemoveContainer(t, "web2")
		d.RunContainer(t, "web3", "app")
		probe("web3", map[string]string{proxy: "ok", db: "refused"})
		if strings.Count(df.log.String(), "Docker connected") < 2 {
			t.Errorf("the daemon did not log Docker's return:\n%s", df.log.String())
		}
	})

	t.Run("policy reload: a bad policy keeps the old one, a good one takes effect", func(t *testing.T) {
		os.WriteFile(pol, []byte(strings.Replace(e2ePolicy, "deny: 192.168.0.0/16", "deny: 192.168.0.0/33", 1)), 0o644)
		df.cmd.Process.Signal(syscall.SIGHUP)
		df.waitLog(t, "policy reload failed")
		if !strings.Contains(df.log.String(), pol+":9:15:") {
			t.Errorf("the reload error does not give the file and line:\n%s", df.log.String())
		}
		probe("web3", map[string]string{db: "refused"})
		// The file is watched: no signal needed. The app section now allows the LAN.
		os.WriteFile(pol, []byte(strings.Replace(e2ePolicy, "deny: 192.168.0.0/16", "allow: 192.168.0.0/16", 1)), 0o644)
		df.waitLog(t, "policy reloaded")
		deadline := time.Now().Add(5 * time.Second)
		for d.TCP(t, "web3", db, 3*time.Second) != "ok" {
			if time.Now().After(deadline) {
				t.Fatal("the reloaded policy did not open the database for app")
			}
		}
		os.WriteFile(pol, []byte(e2ePolicy), 0o644)
		df.cmd.Process.Signal(syscall.SIGHUP)
		deadline = time.Now().Add(5 * time.Second)
		for d.TCP(t, "web3", db, 3*time.Second) != "refused" {
			if time.Now().After(deadline) {
				t.Fatal("the original policy did not come back")
			}
		}
	})

	t.Run("SIGTERM leaves the table", func(t *testing.T) {
		df.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-df.exited:
			if df.err != nil {
				t.Errorf("dockerfence run after SIGTERM: %v", df.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("dockerfence run did not stop within 5s of SIGTERM")
		}
		if !e.mapped(appBridge) {
			t.Error("the table is gone after SIGTERM")
		}
		probe("web3", map[string]string{db: "refused", proxy: "ok"})
	})

	t.Run("SIGKILL leaves the table", func(t *testing.T) {
		df2 := e.startDaemon(d, pol)
		df2.waitLog(t, "Docker connected")
		df2.cmd.Process.Kill()
		<-df2.exited
		if !e.mapped(appBridge) {
			t.Error("the table is gone after SIGKILL")
		}
		probe("web3", map[string]string{db: "refused", proxy: "ok"})
	})
}

// mustDFDocker runs the dockerfence binary in Host with Docker at d.
func (e *env) mustDFDocker(d *dockerd.Daemon, args ...string) string {
	e.t.Helper()
	full := append([]string{"--net=" + e.tp.Host.Path(), binary, "--resolv-conf", e.resolvConf, "--socket", e.socket(), "--docker-host", "unix://" + d.Sock}, args...)
	out, err := exec.Command("nsenter", full...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("dockerfence %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestTamperingRefusedOrRepaired tampers with the table in four ways (the
// dormant flag, an element of a list deleted, a deny rule's expressions
// replaced under its user data, the base chain's priority): while the daemon runs, its
// socket owns the table and the kernel refuses each; while no daemon runs
// (SIGKILLed: the table stays, persistent and orphaned) each takes, status
// and plan report it, and apply, or a daemon started after it, repairs it
// (verifying every set in full), after which the database is refused again.
func TestTamperingRefusedOrRepaired(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	pol := e.write("p.yaml", strings.Replace(seedPolicy, "deny: 192.168.0.0/16", "deny: \"@lan\"", 1)+
		"lists:\n  lan: [192.168.0.0/16, 10.0.0.0/8]\n")
	db := hostPort(topo.LANDB4, 5432)
	nftTamper := func(args ...string) func() error {
		return func() error { _, err := e.tp.Host.Try("nft", args...); return err }
	}
	tampers := []struct {
		name string
		do   func() error
		// drift is what status and plan say of it.
		drift string
	}{
		// nft 1.0 cannot name flag persist, which the kernel will not let
		// an update drop: the flags are set over netlink.
		{"dormant flag", func() error {
			return e.kernel().Commit(&nft.Transaction{Table: "dockerfence", Ops: []nft.Op{{Kind: nft.OpAddTable, Flags: nft.FlagDormant | nft.FlagPersist, SetFlags: true}}})
		}, "flag dormant"},
		{"element deleted", nftTamper("delete", "element", "inet", "dockerfence", "l_lan_4", "{ 192.168.0.0/16 }"), "~ set l_lan_4: 0 elements to delete, 2 to add"},
		{"rule replaced under its user data", func() error { return replaceRuleExprs(e, "fwd_br-test", "egress 4 deny: private network") }, `holds "counter accept"`},
		{"base chain priority", nftTamper("-f", e.write("prio.nft", "flush chain inet dockerfence forward\ndelete chain inet dockerfence forward\nadd chain inet dockerfence forward { type filter hook forward priority 10; policy accept; }\n")),
			"~ chain forward: hook forward priority 10, want hook forward priority -10"},
	}
	for _, by := range []string{"apply", "daemon"} {
		for _, tt := range tampers {
			t.Run(tt.name+", repaired by "+by, func(t *testing.T) {
				df := e.startDaemon(nil, pol)
				df.waitLog(t, "reason=start")
				if got := tcpOutcome(e.tp.Ctr, db); got != "refused" {
					t.Fatalf("database with the daemon: %s, want refused", got)
				}
				if err := tt.do(); err == nil || !strings.Contains(err.Error(), "not permitted") {
					t.Fatalf("%s while the daemon owns the table: %v, want the kernel to refuse it", tt.name, err)
				}
				if st := e.mustDF("status", "-c", pol); !strings.Contains(st, "protection: owned by") || !strings.Contains(st, "matches the policy") {
					t.Errorf("status with the daemon:\n%s", st)
				}
				df.cmd.Process.Kill()
				<-df.exited
				if !e.mapped(topo.BridgeName) {
					t.Fatal("the table stopped fencing when the daemon was killed")
				}
				if err := tt.do(); err != nil {
					t.Fatalf("%s with no daemon: %v", tt.name, err)
				}
				t.Logf("database after the tampering, no daemon: %s", tcpOutcome(e.tp.Ctr, db))
				st, stderr, code := e.dfExit(t, "", "status", "-c", pol)
				if code != status.ExitDiffers || !strings.Contains(st, "protection: persistent without an owner") || !strings.Contains(st, "differs from the policy") {
					t.Errorf("status after the tampering, no daemon: exit %d, want 4:\n%s%s", code, st, stderr)
				}
				if pl := e.mustDF("plan", "-c", pol); !strings.Contains(pl, tt.drift) {
					t.Errorf("plan after the tampering does not say %q:\n%s", tt.drift, pl)
				}
				if _, _, code := e.dfExit(t, "", "plan", "--exit-code", "-c", pol); code != status.ExitPending {
					t.Errorf("plan --exit-code after the tampering: exit %d, want 2", code)
				}
				if js := e.statusJSON("-c", pol); js.Table.Flags == "" || !strings.Contains(js.Table.Flags, "persist") || js.State != status.StateDiffers {
					t.Errorf("status --json does not give the flags, or says %q: %+v", js.State, js.Table)
				}
				switch by {
				case "apply":
					if out := e.mustDF("apply", "-c", pol); !strings.HasPrefix(out, "applied") {
						t.Errorf("apply after the tampering: %s", out)
					}
				case "daemon":
					df = e.startDaemon(nil, pol)
					df.waitLog(t, `msg="table applied" reason=start`)
					if df.countLog("table differs: ", strings.ReplaceAll(tt.drift, `"`, `\"`)) == 0 {
						t.Errorf("the daemon did not log what differed (%q)", tt.drift)
					}
					defer df.stop()
				}
				if pl := e.mustDF("plan", "-c", pol); !strings.Contains(pl, "is up to date") {
					t.Errorf("plan after the repair:\n%s", pl)
				}
				if got := tcpOutcome(e.tp.Ctr, db); got != "refused" {
					t.Errorf("database after the repair: %s, want refused", got)
				}
			})
		}
	}
}

// replaceRuleExprs replaces, from a socket of its own, the expressions of
// the rule of chain whose comment is comment with "counter accept",
// keeping its user data (dockerfence's label): NEWRULE with NLM_F_REPLACE
// of its handle.
func replaceRuleExprs(e *env, chain, comment string) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(e.tp.Host.Handle())))
	if err != nil {
		return err
	}
	tbl := &nftables.Table{Name: "dockerfence", Family: nftables.TableFamilyINet}
	ch := &nftables.Chain{Name: chain, Table: tbl}
	rules, err := c.GetRules(tbl, ch)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if nft.RuleStateOf(r.UserData).Comment != comment {
			continue
		}
		c.ReplaceRule(&nftables.Rule{Table: tbl, Chain: ch, Handle: r.Handle, UserData: r.UserData,
			Exprs: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept}}})
		return c.Flush()
	}
	return fmt.Errorf("no rule with the comment %q in %s", comment, chain)
}
