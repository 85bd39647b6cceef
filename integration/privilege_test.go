package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// nobody is the unprivileged user the tests run dockerfence as.
const nobody = 65534

// capNetAdmin is CAP_NET_ADMIN's bit in /proc/PID/status.
const capNetAdmin = 1 << 12

// unpriv is a directory every user can read, for running dockerfence as
// nobody: the package's binary lives in a directory only root can enter,
// and so do the tests' temporary directories. It holds a copy of the
// binary, the files the test writes, and a run directory owned by nobody.
type unpriv struct {
	t          *testing.T
	dir, bin   string
	resolvConf string
	// socket is the daemon's socket, in a directory owned by nobody.
	socket string
}

// unprivileged makes the test's unpriv directory.
func (e *env) unprivileged() *unpriv {
	e.t.Helper()
	if _, err := exec.LookPath("setpriv"); err != nil {
		e.t.Fatalf("setpriv is needed (apt-get install util-linux): %v", err)
	}
	dir, err := os.MkdirTemp("", "dockerfence-unpriv-")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { os.RemoveAll(dir) })
	u := &unpriv{t: e.t, dir: dir, bin: filepath.Join(dir, "dockerfence")}
	if err := os.Chmod(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(u.bin, bin, 0o755); err != nil {
		e.t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Chown(run, nobody, nobody); err != nil {
		e.t.Fatal(err)
	}
	u.socket = filepath.Join(run, "dockerfence.sock")
	u.resolvConf = u.write("resolv.conf", "nameserver "+topo.LANDNS4+"\n")
	return u
}

// write writes a file every user can read into the directory.
func (u *unpriv) write(name, content string) string {
	u.t.Helper()
	p := filepath.Join(u.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		u.t.Fatal(err)
	}
	return p
}

// setpriv returns the setpriv command line that runs a program as uid with
// no supplementary groups, and with no capabilities at all, or, with
// netAdmin, with CAP_NET_ADMIN alone as an ambient capability (as systemd's
// AmbientCapabilities=CAP_NET_ADMIN gives it).
func setpriv(uid int, netAdmin bool) []string {
	id := strconv.Itoa(uid)
	args := []string{"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups"}
	if netAdmin {
		return append(args, "--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin", "--bounding-set=-all,+net_admin")
	}
	return append(args, "--inh-caps=-all", "--bounding-set=-all")
}

// cmd returns the command that runs dockerfence in Host as uid (with
// CAP_NET_ADMIN alone if netAdmin), with the unpriv directory's socket and
// resolv.conf and no Docker.
func (u *unpriv) cmd(e *env, uid int, netAdmin bool, args ...string) *exec.Cmd {
	full := []string{"--net=" + e.tp.Host.Path()}
	full = append(full, setpriv(uid, netAdmin)...)
	full = append(full, u.bin, "--resolv-conf", u.resolvConf, "--socket", u.socket, "--docker-host", "unix://"+filepath.Join(u.dir, "no-docker.sock"))
	return exec.Command("nsenter", append(full, args...)...)
}

// run runs dockerfence as cmd does and returns its standard output and
// standard error apart.
func (u *unpriv) run(e *env, uid int, netAdmin bool, args ...string) (stdout, stderr string, err error) {
	c := u.cmd(e, uid, netAdmin, args...)
	var o, s strings.Builder
	c.Stdout, c.Stderr = &o, &s
	err = c.Run()
	return o.String(), s.String(), err
}

// startProc starts cmd, whose pid must be the daemon's (nsenter and setpriv
// exec what follows them), with its output in the returned daemonProc's
// log. Cleanup stops it with SIGTERM (SIGKILL after 5s) if it still runs.
func startProc(t *testing.T, cmd *exec.Cmd) *daemonProc {
	t.Helper()
	p := &daemonProc{cmd: cmd, log: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("dockerfence run log:\n%s", p.log.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 5s); it returns
// the exit error.
func (p *daemonProc) stop() error {
	select {
	case <-p.exited:
		return p.err
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	return p.err
}

// procStatus returns the Uid and the capability lines of /proc/PID/status.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && (k == "Uid" || strings.HasPrefix(k, "Cap")) {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// TestUnprivilegedDaemon runs "dockerfence run" as nobody with CAP_NET_ADMIN
// alone, as packaging/dockerfence.service does, and proves that it applies
// the table, serves its socket (mode 0600, owned by nobody, refused to other
// users), reads NFLOG, and heals a deleted table.
func TestUnprivilegedDaemon(t *testing.T) {
	e := newEnv(t)
	u := e.unprivileged()
	pol := u.write("policy.yaml", `version: 1
networks:
  - match: {subnet: 172.20.0.0/16}
    egress:
      - deny: 192.168.100.50
        comment: database
`)
	p := startProc(t, u.cmd(e, nobody, true, "run", "--no-docker", "--log-level", "debug", "-c", pol))
	p.waitLog(t, "table applied")
	p.waitLog(t, "reading denials")

	// It really is nobody, holding CAP_NET_ADMIN and nothing else.
	st := procStatus(t, p.cmd.Process.Pid)
	if !strings.HasPrefix(st["Uid"], "65534\t65534\t65534\t65534") {
		t.Errorf("daemon Uid %q, want 65534 (real, effective, saved, fs)", st["Uid"])
	}
	for _, k := range []string{"CapEff", "CapPrm", "CapBnd", "CapAmb"} {
		if v, err := strconv.ParseUint(st[k], 16, 64); err != nil || v != capNetAdmin {
			t.Errorf("daemon %s = %s, want %016x (CAP_NET_ADMIN alone)", k, st[k], capNetAdmin)
		}
	}
	t.Logf("daemon pid %d: Uid %s, CapEff %s, CapAmb %s", p.cmd.Process.Pid, st["Uid"], st["CapEff"], st["CapAmb"])

	if !strings.Contains(e.table(), "comment \"egress 1 deny: database\"") {
		t.Fatalf("the table is not applied:\n%s", e.table())
	}

	// The socket is for its owner alone.
	fi, err := os.Stat(u.socket)
	if err != nil {
		t.Fatal(err)
	}
	sys := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o600 || sys.Uid != nobody {
		t.Errorf("socket %s: mode %v uid %d, want 0600 and uid %d", u.socket, fi.Mode().Perm(), sys.Uid, nobody)
	}
	out, stderr, err := u.run(e, nobody, false, "status")
	if err != nil || !strings.Contains(out, "daemon:     running, pid "+strconv.Itoa(p.cmd.Process.Pid)) {
		t.Errorf("status as nobody without capabilities: %v\n%s%s", err, out, stderr)
	}
	_, stderr, err = u.run(e, nobody-1, false, "logs")
	if err == nil || !strings.Contains(stderr, "no permission to talk to dockerfence run on "+u.socket) {
		t.Errorf("logs as uid %d: err %v, stderr %q; want a refusal", nobody-1, err, stderr)
	}

	// It reads NFLOG: a denial shows in dockerfence logs, asked as nobody.
	if got := tcpOutcome(e.tp.Ctr, hostPort(topo.LANDB4, 5432)); got != "refused" {
		t.Errorf("container -> database: %s, want refused", got)
	}
	var ev denylog.Event
	deadline := time.Now().Add(5 * time.Second)
	for ev.Dst == "" {
		out, stderr, err := u.run(e, nobody, false, "logs", "--json")
		if err != nil {
			t.Fatalf("logs --json as nobody: %v\n%s", err, stderr)
		}
		dec := json.NewDecoder(strings.NewReader(out))
		for {
			var got denylog.Event
			if err := dec.Decode(&got); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("logs --json: %v in %q", err, out)
			}
			if got.Dst == topo.LANDB4 {
				ev = got
			}
		}
		if ev.Dst == "" && time.Now().After(deadline) {
			t.Fatalf("no denial of %s in logs within 5s:\n%s", topo.LANDB4, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ev.Comment != "database" || ev.Src != topo.CtrIP4 {
		t.Errorf("denial event %+v, want from %s, comment database", ev, topo.CtrIP4)
	}

	// With CAP_NET_ADMIN alone it owns the table: no other process can
	// delete it.
	e.refused(t, "delete", "table", "inet", "dockerfence")

	if err := p.stop(); err != nil {
		t.Errorf("daemon exit after SIGTERM: %v", err)
	}
	if e.table() == "" {
		t.Error("the table is gone after the daemon stopped")
	}
}

// execveRe matches a traced execve call (not its "resumed" half).
var execveRe = regexp.MustCompile(`(?m)^\d+ +execve\("([^"]*)"`)

// tracedExecs returns the programs that the strace output file trace shows
// executed: by the traced process, and by every thread and process it
// started (strace -f).
func (e *env) tracedExecs(trace string) []string {
	e.t.Helper()
	b, err := os.ReadFile(trace)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, m := range execveRe.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// straceCmd returns the command that runs dockerfence args in Host under
// strace, writing the execve calls to trace.
func (e *env) straceCmd(trace string, args ...string) *exec.Cmd {
	full := []string{"--net=" + e.tp.Host.Path(), "strace", "-f", "-qq", "-e", "trace=execve", "-o", trace,
		binary, "--resolv-conf", e.resolvConf, "--socket", e.socket(), "--docker-host", "unix://" + filepath.Join(e.dir, "no-docker.sock")}
	return exec.Command("nsenter", append(full, args...)...)
}

// TestNeverExecutesAProgram runs the commands under strace and proves that
// dockerfence never executes another program: the only execve in each
// trace is strace's own of the binary (nft, iptables, modprobe or a shell
// would show).
func TestNeverExecutesAProgram(t *testing.T) {
	e := newEnv(t)
	if _, err := exec.LookPath("strace"); err != nil {
		t.Fatalf("strace is needed (apt-get install strace): %v", err)
	}
	pol := e.write("policy.yaml", `version: 1
networks:
  - match: {subnet: 172.20.0.0/16}
    egress:
      - allow: self
      - deny: 192.168.0.0/16
`)
	check := func(name, trace string) {
		t.Helper()
		execs := e.tracedExecs(trace)
		if len(execs) != 1 || execs[0] != binary {
			b, _ := os.ReadFile(trace)
			t.Errorf("%s: executed %q, want only %s\n%s", name, execs, binary, b)
		}
	}
	for _, args := range [][]string{
		{"apply", "-c", pol},
		{"plan", "-c", pol},
		{"status", "-c", pol},
		{"explain", "-c", pol, "--network", "172.20.0.0/16", "--to", topo.LANDB4 + ":5432"},
		{"version"},
		{"delete"},
	} {
		trace := filepath.Join(e.dir, args[0]+".trace")
		if out, err := e.straceCmd(trace, args...).CombinedOutput(); err != nil {
			t.Fatalf("strace dockerfence %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		check(args[0], trace)
	}

	// run, with Docker unreachable (so that it tries), stopped with
	// SIGTERM once it applied and reads denials.
	trace := filepath.Join(e.dir, "run.trace")
	p := startProc(t, e.straceCmd(trace, "run", "--log-level", "debug", "-c", pol))
	p.waitLog(t, "table applied")
	p.waitLog(t, "reading denials")
	// nsenter execs strace, and strace's child is dockerfence.
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.cmd.Process.Pid, p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(children)))
	if err != nil {
		t.Fatalf("strace's children %q: want one pid", children)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("dockerfence run under strace did not stop within 10s of SIGTERM")
	}
	if p.err != nil {
		t.Errorf("strace dockerfence run: %v\n%s", p.err, p.log.String())
	}
	if !strings.Contains(p.log.String(), "stopping; the table stays in place") {
		t.Errorf("dockerfence run did not stop on SIGTERM:\n%s", p.log.String())
	}
	check("run", trace)
}
