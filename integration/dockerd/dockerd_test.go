package dockerd

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/google/go-cmp/cmp"
)

const probeTimeout = 3 * time.Second

// rootState is what must not change in the test process's own network
// namespace, read without changing anything: the nftables ruleset (which
// includes iptables-nft rules), without counters; the interfaces; and the
// sysctls Docker writes.
func rootState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	out, err := exec.Command("nft", "-s", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft -s list ruleset (Debian package nftables): %v\n%s", err, out)
	}
	fmt.Fprintf(&b, "nft -s list ruleset:\n%s\n", out)
	out, err = exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v\n%s", err, out)
	}
	b.WriteString("links:\n")
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 1 {
			b.WriteString(f[1] + "\n") // "NAME:" or "NAME@PEER:"
		}
	}
	for _, k := range []string{
		"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding",
		"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables",
	} {
		v, err := os.ReadFile("/proc/sys/" + k)
		fmt.Fprintf(&b, "%s = %s (%v)\n", k, strings.TrimSpace(string(v)), err)
	}
	return b.String()
}

// sharedDirsState tells which of the directories that engines create
// outside their private directory exist. The answer is only meaningful if
// no other process runs daemons of this harness, so it is "unknown" if
// another process's /run/dfd-* directory exists.
func sharedDirsState() string {
	ours := fmt.Sprintf("dfd-%d-", os.Getpid())
	ents, _ := os.ReadDir("/run")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "dfd-") && !strings.HasPrefix(e.Name(), ours) {
			return "shared directories: unknown, another process runs daemons (/run/" + e.Name() + ")\n"
		}
	}
	var b strings.Builder
	for _, dir := range sharedDirs {
		_, err := os.Lstat(dir)
		fmt.Fprintf(&b, "%s exists: %v\n", dir, err == nil)
	}
	return b.String()
}

// state is what the tests check is the same before and after.
type state struct{ root, shared string }

func snapshot(t *testing.T) state {
	t.Helper()
	return state{rootState(t), sharedDirsState()}
}

// check fails the test if the root namespace changed since s, or if the
// shared directories changed and no other process used them meanwhile.
func (s state) check(t *testing.T) {
	t.Helper()
	now := snapshot(t)
	if diff := cmp.Diff(s.root, now.root); diff != "" {
		t.Errorf("the root network namespace changed (-before +after):\n%s", diff)
	}
	if strings.Contains(s.shared+now.shared, "unknown") {
		t.Logf("not checking the shared directories: %s%s", s.shared, now.shared)
	} else if diff := cmp.Diff(s.shared, now.shared); diff != "" {
		t.Errorf("directories outside the daemon's own changed (-before +after):\n%s", diff)
	}
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return syscall.Kill(pid, 0) == nil
}

func TestHarness(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs dockerd in network namespaces")
	}
	exercise(t, Debian())
}

// exercise runs engine e through the harness: networks, containers, probes
// and a restart, and checks that cleanup leaves nothing behind.
func exercise(t *testing.T, e Engine) {
	before := snapshot(t)
	var d *Daemon
	// Registered first, so it runs after every other cleanup.
	t.Cleanup(func() {
		before.check(t)
		// Whatever the harness of this process started mentions /run/dfd-PID-.
		if left := ProcsMentioning(fmt.Sprintf("/run/dfd-%d-", os.Getpid())); len(left) > 0 {
			t.Errorf("processes of the harness survived: %v", left)
		}
		if d == nil {
			return
		}
		for _, pid := range d.Pids() {
			if alive(pid) {
				t.Errorf("process %d started by the harness survived", pid)
			}
		}
		if left := cgroupPids(d.CgroupParent); len(left) > 0 {
			t.Errorf("processes left in cgroup %s: %v", d.CgroupParent, left)
		}
		if left := MountsBelow(d.Dir); len(left) > 0 {
			t.Errorf("mounts left: %v", left)
		}
		if _, err := os.Lstat(d.Dir); err == nil {
			t.Errorf("%s was not removed", d.Dir)
		}
		for _, mnt := range cgroupMounts() {
			if _, err := os.Lstat(mnt + d.CgroupParent); err == nil {
				t.Errorf("cgroup %s%s was not removed", mnt, d.CgroupParent)
			}
		}
	})

	tp := topo.New(t)
	db := tp.LAN.ListenTCP(t, topo.LANDB4+":5432")
	// Host drops, or rejects with ICMP admin-prohibited, what it forwards
	// to these addresses.
	tp.Host.Run(t, "ip", "route", "add", "blackhole", "198.51.100.2/32")
	tp.Host.Run(t, "ip", "route", "add", "prohibit", "198.51.100.1/32")

	start := time.Now()
	d = Start(t, tp.Host, e)
	t.Logf("Start (%s, with image import) took %v", d.Engine.Name, time.Since(start).Round(time.Millisecond))
	ctx := t.Context()
	v, err := d.Client.ServerVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("engine %s, API %s (client negotiated %s), dir %s", v.Version, v.APIVersion, d.Client.ClientVersion(), d.Dir)

	// Docker's bridges and rules are in Host, not in the root namespace.
	if out := tp.Host.Run(t, "ip", "-br", "link", "show", "docker0"); !strings.Contains(out, "docker0") {
		t.Errorf("no docker0 in Host: %s", out)
	}
	if out := tp.Host.Run(t, "nft", "list", "tables"); !strings.Contains(out, "table ip ") {
		t.Errorf("dockerd set no firewall rules in Host:\n%s", out)
	}

	netID, bridge := d.CreateNetwork(t, "app", "10.77.0.0/24", map[string]string{"dockerfence.test": "app"})
	if out := tp.Host.Run(t, "ip", "-br", "addr", "show", "dev", bridge); !strings.Contains(out, "10.77.0.1/24") {
		t.Errorf("bridge %s of network %s: %s", bridge, netID, out)
	}

	c1 := d.RunContainer(t, "c1", "app")
	if code, out := d.Exec(t, c1, "ip", "-4", "addr", "show", "eth0"); code != 0 || !strings.Contains(out, "10.77.0.") {
		t.Errorf("address of c1: exit %d: %s", code, out)
	}
	// The container runs on the daemon's own containerd.
	var shims []string
	for _, pid := range ProcsMentioning(d.Dir) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(b), "containerd-shim") {
			shims = append(shims, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	if len(shims) != 1 || !strings.Contains(shims[0], d.containerdSock) {
		t.Errorf("want one shim of %s, found: %q", d.containerdSock, shims)
	}

	probes := []struct{ addr, want string }{
		{topo.LANDB4 + ":5432", "ok"},
		{topo.LANDB4 + ":5433", "refused"},   // closed port: reset
		{"198.51.100.1:443", "refused"},      // ICMP admin prohibited
		{"198.51.100.2:443", "timeout"},      // dropped
		{topo.HostBridge4 + ":9", "refused"}, // Host itself
	}
	for _, p := range probes {
		t0 := time.Now()
		if got := d.TCP(t, c1, p.addr, probeTimeout); got != p.want {
			t.Errorf("c1 -> %s: got %s, want %s", p.addr, got, p.want)
		}
		t.Logf("c1 -> %s: %v", p.addr, time.Since(t0).Round(time.Millisecond))
	}
	if db.Accepted() != 1 {
		t.Errorf("database accepted %d connections, want 1", db.Accepted())
	}
	if code, out := d.Exec(t, c1, "sh", "-c", "echo out; echo err >&2; exit 3"); code != 3 || out != "out\nerr\n" {
		t.Errorf("Exec: exit %d, output %q", code, out)
	}

	oldPid := d.Pid
	start = time.Now()
	d.Restart(t)
	t.Logf("Restart took %v", time.Since(start).Round(time.Millisecond))
	if d.Pid == oldPid || alive(oldPid) {
		t.Errorf("dockerd pid %d after restart, old %d alive=%v", d.Pid, oldPid, alive(oldPid))
	}
	ins, err := d.Client.ContainerInspect(ctx, c1)
	if err != nil {
		t.Fatal(err)
	}
	if ins.State.Running {
		t.Errorf("c1 runs again after the restart")
	}
	c2 := d.RunContainer(t, "c2", "app")
	if got := d.TCP(t, c2, topo.LANDB4+":5432", probeTimeout); got != "ok" {
		t.Errorf("c2 -> database after restart: %s", got)
	}
	if got := d.TCP(t, c2, topo.LANDB4+":5433", probeTimeout); got != "refused" {
		t.Errorf("c2 -> closed port after restart: %s", got)
	}

	d.RemoveContainer(t, "c1")
	d.RemoveContainer(t, "c2")
	d.RemoveNetwork(t, "app")
	if _, err := tp.Host.Try("ip", "link", "show", bridge); err == nil {
		t.Errorf("bridge %s still exists after RemoveNetwork", bridge)
	}
	// Leave a running container for cleanup to remove.
	d.RunContainer(t, "c3", "bridge")
}

func TestClassifyNC(t *testing.T) {
	for _, tt := range []struct {
		code int
		out  string
		want string
	}{
		{0, "", "ok"},
		{1, "nc: timed out\n", "timeout"},
		{1, "nc: can't connect to remote host (10.0.0.1): Connection refused\n", "refused"},
		{1, "nc: can't connect to remote host (10.0.0.1): No route to host\n", "refused"},
		{1, "nc: can't connect to remote host (10.0.0.1): Permission denied\n", "refused"},
		{1, "nc: bad address 'x'\n", "nc exit 1: nc: bad address 'x'"},
	} {
		if got := ClassifyNC(tt.code, tt.out); got != tt.want {
			t.Errorf("ClassifyNC(%d, %q) = %q, want %q", tt.code, tt.out, got, tt.want)
		}
	}
}

// leftovers lists what a daemon with directory dir and cgroup parent cg
// left behind.
func leftovers(dir, cg string) []string {
	var left []string
	if pids := ProcsMentioning(dir); len(pids) > 0 {
		left = append(left, fmt.Sprintf("processes mentioning %s: %v", dir, pids))
	}
	if pids := cgroupPids(cg); len(pids) > 0 {
		left = append(left, fmt.Sprintf("processes in cgroup %s: %v", cg, pids))
	}
	if m := MountsBelow(dir); len(m) > 0 {
		left = append(left, fmt.Sprintf("mounts: %v", m))
	}
	if _, err := os.Lstat(dir); err == nil {
		left = append(left, dir+" exists")
	}
	for _, mnt := range cgroupMounts() {
		if _, err := os.Lstat(mnt + cg); err == nil {
			left = append(left, "cgroup "+mnt+cg+" exists")
		}
	}
	return left
}

// TestCleanupAfterCrash kills dockerd and containerd while a container
// runs, then checks that cleanup removes the shim, the container's
// processes, mounts, cgroups and directories.
func TestCleanupAfterCrash(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs dockerd in network namespaces")
	}
	before := snapshot(t)
	var dir, cg string
	var pids []int
	t.Run("crash", func(t *testing.T) {
		tp := topo.New(t)
		d := Start(t, tp.Host, Debian())
		dir, cg = d.Dir, d.CgroupParent
		d.CreateNetwork(t, "app", "10.78.0.0/24", nil)
		id := d.RunContainer(t, "c1", "app")
		if cp := cgroupPids(cg); len(cp) == 0 {
			t.Errorf("no processes in cgroup %s", cg)
		}
		socks := d.shimSockets()
		if len(socks) != 1 {
			t.Fatalf("shim sockets: %v", socks)
		}
		if _, err := os.Stat(socks[0]); err != nil {
			t.Errorf("shim socket of %s: %v", id, err)
		}
		for _, p := range []*proc{d.dockerd, d.containerd} {
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-p.done
		}
		if d.Running() {
			t.Fatal("dockerd still runs")
		}
		if len(MountsBelow(dir)) == 0 || len(ProcsMentioning(dir)) == 0 {
			t.Fatalf("the crash left nothing to clean up: mounts %v, processes %v", MountsBelow(dir), ProcsMentioning(dir))
		}
		pids = d.Pids()
	})
	if dir == "" {
		t.Fatal("no daemon was started")
	}
	if left := leftovers(dir, cg); len(left) > 0 {
		t.Errorf("left after cleanup: %v", left)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d survived", pid)
		}
	}
	before.check(t)
}

// TestStartFailure starts a dockerd that exits at once (unknown flag) and
// checks that Start fails with its log and that cleanup leaves nothing.
func TestStartFailure(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs dockerd in network namespaces")
	}
	tp := topo.New(t)
	ft := &topo.RecordingTB{TB: t}
	t.Cleanup(ft.RunCleanups) // safety net
	e := Debian()
	e.Args = []string{"--no-such-flag"}
	var d *Daemon
	done := make(chan struct{})
	go func() {
		defer close(done)
		d = Start(ft, tp.Host, e)
		t.Error("Start did not fail")
	}()
	<-done
	if !strings.Contains(ft.Fatalled(), "exited during start") || !strings.Contains(ft.Fatalled(), "no-such-flag") {
		t.Errorf("Start failed with %q, want dockerd's exit and log", ft.Fatalled())
	}
	dir := fmt.Sprintf("/run/dfd-%d-%d", os.Getpid(), daemonCounter.Load())
	if _, err := os.Stat(dir); err != nil || d != nil {
		t.Fatalf("expected a half-started daemon in %s: %v", dir, err)
	}
	ft.RunCleanups()
	if left := leftovers(dir, fmt.Sprintf("/dfd-%d-%d", os.Getpid(), daemonCounter.Load())); len(left) > 0 {
		t.Errorf("left after cleanup: %v", left)
	}
}
