package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// oneLine checks that a failed command printed exactly one line on
// standard error, "dockerfence: " and the cause, and that it says each of
// want.
func oneLine(t *testing.T, what, stderr string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s succeeded, want a failure", what)
		return
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "dockerfence: ") {
		t.Errorf("%s: stderr is not one line \"dockerfence: ...\":\n%s", what, stderr)
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: stderr %q does not say %q", what, stderr, w)
		}
	}
}

// TestNotRootSaysWhatToDo runs the commands as nobody without capabilities:
// each fails with one line that names CAP_NET_ADMIN and says how to get it,
// and nothing changes in the kernel.
func TestNotRootSaysWhatToDo(t *testing.T) {
	e := newEnv(t)
	u := e.unprivileged()
	pol := u.write("policy.yaml", "version: 1\nnetworks:\n  - match: {subnet: 172.20.0.0/16}\n    egress:\n      - deny: 192.168.0.0/16\n")
	const nft = "nftables needs CAP_NET_ADMIN in this network namespace: run as root (sudo), or grant the capability (systemd: AmbientCapabilities=CAP_NET_ADMIN)"
	const nflog = "binding a group needs CAP_NET_ADMIN in the network namespace; run as root or grant the capability"
	run := func(want string, args ...string) {
		t.Helper()
		_, stderr, err := u.run(e, nobody, false, args...)
		t.Logf("%s as nobody: %s", args[0], strings.TrimSpace(stderr))
		oneLine(t, args[0]+" as nobody", stderr, err, "operation not permitted", want)
	}
	run(nft, "apply", "-c", pol)
	if e.table() != "" {
		t.Fatal("apply as nobody created the table")
	}
	run(nft, "plan", "-c", pol)
	run(nft, "status", "-c", pol)
	run(nflog, "logs", "-c", pol)

	e.mustDF("apply", "-c", e.write("p.yaml", "version: 1\nnetworks:\n  - match: {subnet: 172.20.0.0/16}\n    egress:\n      - deny: 192.168.0.0/16\n"))
	run(nft, "delete", "-c", pol)
	if e.table() == "" {
		t.Fatal("delete as nobody removed the table")
	}

	// run cannot open the socket that would own the table: it exits at
	// once with the same line (systemd restarts it).
	run(nft, "run", "--no-docker", "-c", pol)
}

// TestDockerHangs points the daemon and apply at a Docker socket that
// accepts and never answers: apply gives up after 5s with one line that
// says so, and the daemon applies the fence without Docker, keeps it, keeps
// serving and repairing, and logs that Docker does not answer.
func TestDockerHangs(t *testing.T) {
	e := newEnv(t)
	sock := filepath.Join(e.dir, "hung-docker.sock")
	harness.HangingDocker(t, sock)
	hung := "unix://" + sock
	bySubnet := e.write("subnet.yaml", "version: 1\nnetworks:\n  - match: {subnet: 172.20.0.0/16}\n    egress:\n      - deny: 192.168.100.50\n        comment: database\n")
	byName := e.write("name.yaml", "version: 1\nnetworks:\n  - match: {name: app}\n    egress:\n      - deny: 192.168.0.0/16\n")

	start := time.Now()
	p := startProc(t, e.dfCmd("run", "--log-level", "debug", "-c", bySubnet, "--docker-host", hung))
	p.waitLog(t, "Docker does not answer yet; fencing what is known without it until it does")
	p.waitLog(t, "table applied")
	t.Logf("daemon: fenced without Docker %v after start", time.Since(start).Round(time.Millisecond))
	if got := tcpOutcome(e.tp.Ctr, hostPort(topo.LANDB4, 5432)); got != "refused" {
		t.Errorf("container -> database: %s, want refused", got)
	}
	table := e.table()

	// apply by itself (another --socket: the daemon would do it
	// otherwise): a policy that can do without Docker is applied after the
	// timeout, with a warning (here the daemon's table is up to date, so
	// nothing is sent to the table it owns); one that needs Docker changes
	// nothing.
	alone := filepath.Join(e.dir, "no-daemon.sock")
	t0 := time.Now()
	out, err := e.df("apply", "-c", bySubnet, "--docker-host", hung, "--socket", alone)
	took := time.Since(t0)
	if err != nil || !strings.Contains(out, "Docker at "+hung+" did not answer within 5s; fencing the bridges found over netlink") {
		t.Errorf("apply with a policy by subnet: %v\n%s", err, out)
	}
	if took < 5*time.Second || took > 8*time.Second {
		t.Errorf("apply with a hung Docker took %v, want its 5s timeout", took)
	}
	t.Logf("apply (policy by subnet) with a hung Docker: %v, %s", took.Round(time.Millisecond), strings.TrimSpace(out))
	_, stderr, err := e.dfStdout("apply", "-c", byName, "--docker-host", hung, "--socket", alone)
	oneLine(t, "apply with a policy by name", stderr, err,
		"nothing changed: Docker at "+hung+" did not answer within 5s; the policy matches networks by name or label, which needs Docker: restart dockerd or check --docker-host")
	t.Logf("apply (policy by name) with a hung Docker: %s", strings.TrimSpace(stderr))
	if got := e.table(); got != table {
		t.Errorf("the failed apply changed the table:\n%s\nwant\n%s", got, table)
	}

	// The daemon keeps the fence, serves, repairs, and says Docker is lost.
	if out := e.mustDF("status"); !strings.Contains(out, "daemon:     running") {
		t.Errorf("status does not show the daemon running:\n%s", out)
	}
	e.refused(t, "delete", "table", "inet", "dockerfence")
	p.waitLog(t, "Docker is unreachable; the fence stays as it is")
	p.waitLog(t, "no answer within 10s")
	t.Logf("daemon: logged the lost event stream %v after start", time.Since(start).Round(time.Millisecond))
	select {
	case <-p.exited:
		t.Fatalf("the daemon exited: %v", p.err)
	default:
	}
	if got := tcpOutcome(e.tp.Ctr, hostPort(topo.LANDB4, 5432)); got != "refused" {
		t.Errorf("container -> database after all that: %s, want refused", got)
	}
}

// versionedDocker serves the Engine API of a daemon that speaks API versions
// min to max, with one network, app, on the topology's bridge br-test. It
// refuses other versions with dockerd's messages. It returns the socket's
// host URL and the paths requested.
func versionedDocker(t *testing.T, dir, min, max string) (string, func() []string) {
	t.Helper()
	d := harness.StartDockerVersions(t, filepath.Join(dir, "docker-"+min+"-"+max+".sock"), min, max)
	d.Set([]harness.Network{{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}})
	return d.URL, d.Requests
}

// TestDockerAPIVersions runs apply with a policy that matches by name
// against fake daemons: one that speaks only API 1.24, the oldest
// dockerfence supports, and one of API 1.99 that still accepts the newest
// dockerfence speaks are both used; one of API 1.99 that no longer accepts
// it fails in one line that says to upgrade dockerfence.
func TestDockerAPIVersions(t *testing.T) {
	e := newEnv(t)
	pol := e.write("name.yaml", "version: 1\nnetworks:\n  - match: {name: app}\n    egress:\n      - deny: 192.168.100.50\n        comment: database\n")
	for _, tc := range []struct{ min, max string }{{"1.12", "1.24"}, {"1.24", "1.99"}} {
		host, paths := versionedDocker(t, e.dir, tc.min, tc.max)
		out, err := e.df("apply", "-c", pol, "--docker-host", host)
		if err != nil || !strings.Contains(out, "1 networks fenced (app on br-test)") {
			t.Errorf("apply against Docker API %s: %v\n%s", tc.max, err, out)
		}
		t.Logf("API %s: requests %q: %s", tc.max, paths(), strings.TrimSpace(out))
		e.mustDF("delete")
	}
	host, paths := versionedDocker(t, e.dir, "1.60", "1.99")
	_, stderr, err := e.dfStdout("apply", "-c", pol, "--docker-host", host)
	oneLine(t, "apply against Docker API 1.99 from 1.60", stderr, err,
		"Minimum supported API version is 1.60", "the Docker daemon at "+host+" needs API 1.60 or newer, and this dockerfence speaks at most", "upgrade dockerfence")
	t.Logf("API 1.99 from 1.60: requests %q: %s", paths(), strings.TrimSpace(stderr))
	if e.table() != "" {
		t.Error("the failed apply created a table")
	}
}
