// Package dockerd runs real Docker daemons inside the network namespaces of
// package topo, for end-to-end tests of dockerfence against Docker itself.
//
// Every daemon is private: its own containerd, data root, exec root, API
// socket, pidfile, daemon.json and cgroup parent, all under a short directory
// /run/dfd-PID-N. Both dockerd and containerd are started with
// "nsenter --net=/run/netns/NS", so Docker's bridges and iptables rules live
// only in that namespace; nothing is started in, or changed in, the test
// process's own network namespace. Start registers a cleanup that removes the
// containers, stops the processes (by pid), kills whatever they left behind
// (shims, container processes), unmounts everything below the directory and
// removes it, also when the test fails midway.
//
// The daemon is driven through the Go client of the Engine API with version
// negotiation, so the same harness works with Debian's Docker 20.10 and with
// newer engines (Engine, PathPrefix). No image is ever pulled: Start imports
// a one-layer image "busybox:df" built from the host's static busybox.
package dockerd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// Timeouts of the harness.
const (
	// StartTimeout bounds how long Start and Restart wait for the API.
	StartTimeout = 60 * time.Second
	// stopTimeout is how long a process gets after SIGTERM before SIGKILL.
	stopTimeout = 30 * time.Second
	// apiTimeout bounds a single Engine API call.
	apiTimeout = 2 * time.Minute
)

// Engine describes the Docker engine to run.
type Engine struct {
	// Name names the engine in messages, e.g. "debian".
	Name string
	// Dockerd is the path of the dockerd binary.
	Dockerd string
	// Containerd is the path of the containerd binary; empty means
	// "containerd" from PathPrefix, else from PATH.
	Containerd string
	// Args are extra dockerd flags, appended after the harness's own.
	Args []string
	// PathPrefix, if set, is put first on the PATH of dockerd and
	// containerd, e.g. a directory with a newer runc, containerd-shim-runc-v2
	// or docker-proxy.
	PathPrefix string
}

// Debian is the Docker engine of Debian's docker.io package.
func Debian() Engine {
	return Engine{Name: "debian", Dockerd: "/usr/sbin/dockerd"}
}

// Daemon is a running (or stopped) private Docker daemon.
type Daemon struct {
	// NS is the namespace dockerd and containerd run in.
	NS *topo.NS
	// Engine is the engine that runs.
	Engine Engine
	// Dir is the daemon's private directory; everything it owns is below.
	Dir string
	// Sock is the path of the Engine API's unix socket.
	Sock string
	// Client talks to the daemon at Sock with API version negotiation. It
	// stays valid across Restart.
	Client *client.Client
	// Pid is dockerd's pid, 0 while it is stopped.
	Pid int
	// ContainerdPid is the pid of the daemon's private containerd.
	ContainerdPid int
	// CgroupParent is the cgroup (cgroupfs driver) of the containers.
	CgroupParent string

	dockerd, containerd *proc
	containerdSock      string
	containerdBin       string
	env                 []string
	starts              int
	mu                  sync.Mutex
	pids                []int // every process the harness started
}

var daemonCounter atomic.Int64

// Start starts a private dockerd of engine e inside ns, waits until its API
// answers and imports the image "busybox:df". Everything is undone by test
// cleanup. It skips the test if not running as root; any other missing
// prerequisite fails it.
func Start(t testing.TB, ns *topo.NS, e Engine) *Daemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("dockerd: needs root (runs dockerd in network namespaces)")
	}
	d := &Daemon{NS: ns, Engine: e}
	d.env = engineEnv(e.PathPrefix)
	d.checkPrerequisites(t)

	n := daemonCounter.Add(1)
	d.Dir = fmt.Sprintf("/run/dfd-%d-%d", os.Getpid(), n)
	d.CgroupParent = fmt.Sprintf("/dfd-%d-%d", os.Getpid(), n)
	d.Sock = filepath.Join(d.Dir, "docker.sock")
	d.containerdSock = filepath.Join(d.Dir, "containerd.sock")

	// Register the cleanup before creating anything.
	noteSharedDirs()
	t.Cleanup(func() { d.cleanup(t) })
	if err := os.Mkdir(d.Dir, 0o700); err != nil {
		d.Dir = "" // not ours: cleanup must not touch it
		t.Fatalf("dockerd: %v", err)
	}
	for _, sub := range []string{"data", "exec", "containerd"} {
		if err := os.Mkdir(filepath.Join(d.Dir, sub), 0o700); err != nil {
			t.Fatalf("dockerd: %v", err)
		}
	}
	// deprecated-key-path keeps dockerd 20.10 from writing
	// /etc/docker/key.json; newer engines accept and ignore it.
	d.writeFile(t, "daemon.json", fmt.Sprintf(`{"deprecated-key-path": %q}`+"\n", filepath.Join(d.Dir, "key.json")))
	d.writeFile(t, "containerd.toml", containerdConfig(d.Dir, d.containerdSock))

	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+d.Sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("dockerd: client: %v", err)
	}
	d.Client = cli

	d.startContainerd(t)
	d.startDockerd(t)
	d.importBusybox(t)
	return d
}

// checkPrerequisites fails the test if a binary the daemon needs is missing.
func (d *Daemon) checkPrerequisites(t testing.TB) {
	t.Helper()
	var missing []string
	need := func(what, path, pkg string) {
		if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, fmt.Sprintf("%s %s (Debian package %s)", what, path, pkg))
		}
	}
	look := func(name, pkg string) string {
		p, err := lookPath(d.env, name)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%s in PATH (Debian package %s)", name, pkg))
		}
		return p
	}
	if d.Engine.Dockerd == "" {
		missing = append(missing, "Engine.Dockerd is empty")
	} else {
		need("dockerd", d.Engine.Dockerd, "docker.io")
	}
	look("nsenter", "util-linux")
	look("iptables", "iptables")
	look("runc", "runc")
	look("containerd-shim-runc-v2", "containerd")
	look("docker-proxy", "docker.io")
	if d.Engine.Containerd != "" {
		need("containerd", d.Engine.Containerd, "containerd")
		d.containerdBin = d.Engine.Containerd
	} else {
		d.containerdBin = look("containerd", "containerd")
	}
	if err := checkBusybox(); err != nil {
		missing = append(missing, err.Error())
	}
	if len(missing) > 0 {
		t.Fatalf("dockerd: missing prerequisites for engine %s:\n  %s", d.Engine.Name, strings.Join(missing, "\n  "))
	}
}

func (d *Daemon) writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(d.Dir, name), []byte(content), 0o600); err != nil {
		t.Fatalf("dockerd: %v", err)
	}
}

// containerdConfig is the configuration of a private containerd, like the
// one dockerd writes for the containerd it manages itself, plus the opt
// plugin's directory (default /opt/containerd) and without NRI (default
// socket /var/run/nri/nri.sock in containerd 2).
func containerdConfig(dir, sock string) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "containerd", "root"), filepath.Join(dir, "containerd", "state"),
		sock, sock+".ttrpc", filepath.Join(dir, "containerd", "opt"))
}

// startContainerd starts the private containerd and waits for its socket.
func (d *Daemon) startContainerd(t testing.TB) {
	t.Helper()
	p, err := d.spawn(d.containerdBin, []string{"--config", filepath.Join(d.Dir, "containerd.toml")}, "containerd.log")
	if err != nil {
		t.Fatalf("dockerd: start containerd: %v", err)
	}
	d.containerd = p
	d.ContainerdPid = p.pid()
	deadline := time.Now().Add(StartTimeout)
	for {
		if c, err := net.DialTimeout("unix", d.containerdSock, time.Second); err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("dockerd: containerd exited: %v\n%s", p.err, d.logTail("containerd.log"))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd: containerd did not listen on %s within %v\n%s", d.containerdSock, StartTimeout, d.logTail("containerd.log"))
		}
	}
}

// dockerdArgs are the flags of every dockerd start.
func (d *Daemon) dockerdArgs() []string {
	args := []string{
		"--config-file", filepath.Join(d.Dir, "daemon.json"),
		"--data-root", filepath.Join(d.Dir, "data"),
		"--exec-root", filepath.Join(d.Dir, "exec"),
		"--pidfile", filepath.Join(d.Dir, "dockerd.pid"),
		"--host", "unix://" + d.Sock,
		"--containerd", d.containerdSock,
		"--exec-opt", "native.cgroupdriver=cgroupfs",
		"--cgroup-parent", d.CgroupParent,
	}
	return append(args, d.Engine.Args...)
}

// startDockerd starts dockerd and waits until its API answers.
func (d *Daemon) startDockerd(t testing.TB) {
	t.Helper()
	d.starts++
	// A pidfile left by a killed dockerd would make the new one refuse to
	// start if its pid had been reused.
	os.Remove(filepath.Join(d.Dir, "dockerd.pid"))
	appendLog(filepath.Join(d.Dir, "dockerd.log"), fmt.Sprintf("=== dockerfence harness: start %d of %s ===\n", d.starts, d.Engine.Dockerd))
	p, err := d.spawn(d.Engine.Dockerd, d.dockerdArgs(), "dockerd.log")
	if err != nil {
		t.Fatalf("dockerd: start %s: %v", d.Engine.Dockerd, err)
	}
	d.dockerd = p
	d.Pid = p.pid()

	deadline := time.Now().Add(StartTimeout)
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := d.Client.Ping(ctx)
		cancel()
		if err == nil {
			break
		}
		lastErr = err
		select {
		case <-p.done:
			d.Pid = 0
			t.Fatalf("dockerd (%s) exited during start: %v\n%s", d.Engine.Name, p.err, d.logTail("dockerd.log"))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd (%s): API at %s did not answer within %v: %v\n%s", d.Engine.Name, d.Sock, StartTimeout, lastErr, d.logTail("dockerd.log"))
		}
	}
	// Negotiate now, so that a version problem shows up here.
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if _, err := d.Client.ServerVersion(ctx); err != nil {
		t.Fatalf("dockerd (%s): version: %v\n%s", d.Engine.Name, err, d.logTail("dockerd.log"))
	}
}

// Stop stops dockerd with SIGTERM (SIGKILL after 30 s) and waits for it. Like
// "systemctl stop docker", it stops the running containers but leaves them
// and the private containerd in place. Stopping a stopped daemon does
// nothing.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	if err := d.stopDockerd(); err != nil {
		t.Fatalf("dockerd (%s): stop: %v\n%s", d.Engine.Name, err, d.logTail("dockerd.log"))
	}
}

func (d *Daemon) stopDockerd() error {
	p := d.dockerd
	if p == nil {
		return nil
	}
	d.dockerd, d.Pid = nil, 0
	return p.stop(stopTimeout)
}

// Restart stops dockerd if it runs and starts it again with the same
// directories, flags and containerd, and waits until the API answers.
// Containers that were running are stopped and, having no restart policy,
// stay stopped.
func (d *Daemon) Restart(t testing.TB) {
	t.Helper()
	d.Stop(t)
	d.startDockerd(t)
}

// Running reports whether dockerd runs (it may still be starting).
func (d *Daemon) Running() bool {
	if d.dockerd == nil {
		return false
	}
	select {
	case <-d.dockerd.done:
		return false
	default:
		return true
	}
}

// Log returns dockerd's log, of all its starts.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Dir, "dockerd.log"))
	return string(b)
}

// logTail returns the end of one of the daemon's logs for a failure message.
func (d *Daemon) logTail(name string) string {
	b, err := os.ReadFile(filepath.Join(d.Dir, name))
	if err != nil {
		return fmt.Sprintf("(no %s: %v)", name, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	const max = 60
	if len(lines) > max {
		lines = append([]string{fmt.Sprintf("... (%d earlier lines in %s)", len(lines)-max, name)}, lines[len(lines)-max:]...)
	}
	return "--- " + name + " ---\n" + strings.Join(lines, "\n")
}

func appendLog(path, line string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	f.WriteString(line)
	f.Close()
}

// cleanup undoes Start; errors are reported, but cleanup goes on.
func (d *Daemon) cleanup(t testing.TB) {
	t.Helper()
	defer doneSharedDirs()
	if d.Running() {
		d.removeAllContainers(t)
	}
	if err := d.stopDockerd(); err != nil {
		t.Errorf("dockerd (%s): stop: %v", d.Engine.Name, err)
	}
	if p := d.containerd; p != nil {
		d.containerd = nil
		if err := p.stop(stopTimeout); err != nil {
			t.Errorf("dockerd: stop containerd: %v", err)
		}
	}
	if d.Client != nil {
		d.Client.Close()
	}
	if d.Dir == "" {
		return
	}
	// Whatever is left was started by this daemon: shims (found by their
	// -address in Dir) and container processes (in the cgroup parent).
	for _, pid := range d.strayPids() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := waitGone(d.strayPids, 10*time.Second); err != nil {
		t.Errorf("dockerd: %v", err)
	}
	d.removeShimSockets()
	for _, err := range removeCgroups(d.CgroupParent) {
		t.Errorf("dockerd: %v", err)
	}
	if t.Failed() {
		t.Logf("dockerd (%s): %s\n%s", d.Engine.Name, d.Dir, d.logTail("dockerd.log"))
	}
	for _, err := range unmountBelow(d.Dir) {
		t.Errorf("dockerd: %v", err)
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		t.Errorf("dockerd: %v", err)
	}
}

// shimSockets returns the paths of the sockets that the shims of the
// daemon's containers have, or would have, in /run/containerd/s: containerd
// names them by the SHA-256 of ADDRESS/NAMESPACE/ID.
func (d *Daemon) shimSockets() []string {
	var socks []string
	tasks := filepath.Join(d.Dir, "containerd", "state", "io.containerd.runtime.v2.task")
	nss, _ := os.ReadDir(tasks)
	for _, ns := range nss {
		ids, _ := os.ReadDir(filepath.Join(tasks, ns.Name()))
		for _, id := range ids {
			sum := sha256.Sum256([]byte(filepath.Join(d.containerdSock, ns.Name(), id.Name())))
			socks = append(socks, filepath.Join("/run/containerd/s", hex.EncodeToString(sum[:])))
		}
	}
	return socks
}

// removeShimSockets removes the sockets of killed shims, which would keep
// /run/containerd/s from being removed.
func (d *Daemon) removeShimSockets() {
	for _, s := range d.shimSockets() {
		if st, err := os.Lstat(s); err == nil && st.Mode()&os.ModeSocket != 0 {
			os.Remove(s)
		}
	}
}

// removeAllContainers force-removes every container of the daemon.
func (d *Daemon) removeAllContainers(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	list, err := d.Client.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		t.Errorf("dockerd: list containers: %v", err)
		return
	}
	for _, c := range list {
		if err := d.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			t.Errorf("dockerd: remove container %s: %v", c.ID, err)
		}
	}
}

// Pids returns the pids of every dockerd and containerd the harness started
// for d, including stopped ones.
func (d *Daemon) Pids() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int(nil), d.pids...)
}

// strayPids returns the processes that belong to the daemon: those whose
// command line mentions Dir (dockerd, containerd, shims, docker-proxy) and
// those in the containers' cgroups.
func (d *Daemon) strayPids() []int {
	seen := map[int]bool{}
	var pids []int
	add := func(pid int) {
		if pid > 0 && pid != os.Getpid() && !seen[pid] {
			seen[pid] = true
			pids = append(pids, pid)
		}
	}
	for _, pid := range ProcsMentioning(d.Dir) {
		add(pid)
	}
	for _, pid := range cgroupPids(d.CgroupParent) {
		add(pid)
	}
	return pids
}

// proc is a process started by the harness.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been reaped
	err  error         // Wait's result, valid after done
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// spawn starts "nsenter --net=NS -- bin args..." with output appended to
// the log file logName in Dir. nsenter execs bin, so the pid is bin's.
//
// The child gets SIGKILL if the test process dies (Pdeathsig). As that
// signal follows the OS thread that forked the child, the thread is kept
// locked and alive until the child is reaped.
func (d *Daemon) spawn(bin string, args []string, logName string) (*proc, error) {
	logf, err := os.OpenFile(filepath.Join(d.Dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + d.NS.Path(), "--", bin}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = d.env
	cmd.Dir = d.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		logf.Close()
		started <- err
		if err != nil {
			return
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.pids = append(d.pids, p.pid())
	d.mu.Unlock()
	return p, nil
}

// stop sends SIGTERM, then SIGKILL after timeout, and waits until the
// process is reaped.
func (p *proc) stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	// Signal goes through a pidfd: it cannot hit a reused pid.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return fmt.Errorf("pid %d did not stop within %v of SIGTERM and was killed", p.pid(), timeout)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("pid %d survived SIGKILL", p.pid())
	}
}

// engineEnv is the environment of dockerd and containerd: the test's,
// with prefix first on PATH and the sbin directories on it.
func engineEnv(prefix string) []string {
	var dirs []string
	if prefix != "" {
		dirs = append(dirs, prefix)
	}
	dirs = append(dirs, filepath.SplitList(os.Getenv("PATH"))...)
	for _, std := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		found := false
		for _, dir := range dirs {
			if dir == std {
				found = true
				break
			}
		}
		if !found {
			dirs = append(dirs, std)
		}
	}
	env := []string{"PATH=" + strings.Join(dirs, string(filepath.ListSeparator))}
	for _, kv := range os.Environ() {
		// DOCKER_* and CONTAINERD_* would change the daemons' behaviour.
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "DOCKER_") || strings.HasPrefix(kv, "CONTAINERD_") || strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// lookPath finds an executable name in the PATH of env.
func lookPath(env []string, name string) (string, error) {
	for _, kv := range env {
		if path, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, dir := range filepath.SplitList(path) {
				p := filepath.Join(dir, name)
				if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
					return p, nil
				}
			}
		}
	}
	return "", fmt.Errorf("%s not found in PATH", name)
}
