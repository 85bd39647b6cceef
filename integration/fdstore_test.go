package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nft"
	"golang.org/x/sys/unix"
)

// fdStore plays systemd for "dockerfence run": its notification socket
// ($NOTIFY_SOCKET), which takes READY=1 and FDSTORE=1 with the descriptors
// sent along, and the file descriptor store that keeps them while the
// daemon is dead and passes them to the next one (LISTEN_PID, LISTEN_FDS,
// LISTEN_FDNAMES, descriptors from 3), as a unit with
// FileDescriptorStoreMax= does.
type fdStore struct {
	path string
	conn *net.UnixConn

	mu    sync.Mutex
	files map[string]*os.File
	// retired are the files a newer one of the same name replaced: closed
	// at cleanup only, as a daemon being started may be passing them on.
	retired []*os.File
	stored  int // FDSTORE=1 messages received
}

// newFDStore listens on a notification socket in a temporary directory;
// cleanup closes it and every stored descriptor.
func newFDStore(t *testing.T) *fdStore {
	t.Helper()
	s := &fdStore{path: filepath.Join(t.TempDir(), "notify"), files: map[string]*os.File{}}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	s.conn = c
	done := make(chan struct{})
	go s.serve(done)
	t.Cleanup(func() {
		c.Close()
		<-done
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, f := range s.files {
			f.Close()
		}
		for _, f := range s.retired {
			f.Close()
		}
	})
	return s
}

// serve reads notifications until the socket closes.
func (s *fdStore) serve(done chan<- struct{}) {
	defer close(done)
	b, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*16))
	for {
		n, oobn, _, _, err := s.conn.ReadMsgUnix(b, oob)
		if err != nil {
			return
		}
		var fds []int
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if r, err := unix.ParseUnixRights(&m); err == nil {
					fds = append(fds, r...)
				}
			}
		}
		state := map[string]string{}
		for _, l := range strings.Split(string(b[:n]), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				state[k] = v
			}
		}
		s.mu.Lock()
		if state["FDSTORE"] == "1" && len(fds) == 1 {
			// One name, one descriptor: a newer one replaces it (systemd
			// keeps one copy of the same socket).
			name := state["FDNAME"]
			if old := s.files[name]; old != nil {
				s.retired = append(s.retired, old)
			}
			s.files[name] = os.NewFile(uintptr(fds[0]), name)
			s.stored++
			fds = nil
		}
		s.mu.Unlock()
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// count returns how many FDSTORE=1 messages came with a descriptor.
func (s *fdStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored
}

// command makes cmd run as systemd would start the unit: with
// $NOTIFY_SOCKET, and the stored descriptors passed from fd 3 with their
// names. LISTEN_PID must be the daemon's pid, known only once it runs, so
// a shell sets it to its own and execs the command (nsenter then execs
// dockerfence: one pid throughout).
func (s *fdStore) command(cmd *exec.Cmd) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+s.path)
	var names []string
	for name, f := range s.files {
		names = append(names, name)
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	if len(names) > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("LISTEN_FDS=%d", len(names)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
		cmd.Args = append([]string{"sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`}, cmd.Args...)
		cmd.Path = "/bin/sh"
	}
}

// startStoredDaemon starts the daemon as startDaemonArgs does, under the
// store.
func (e *env) startStoredDaemon(s *fdStore, pol string) *daemonProc {
	e.t.Helper()
	args := []string{"run", "--log-level", "debug", "--resolv-conf", e.resolvConf, "--socket", e.socket(), "-c", pol, "--no-docker"}
	cmd := e.tp.Host.Command(binary, args...)
	s.command(cmd)
	return startProc(e.t, cmd)
}

// TestLeakFlushKilledUnderFDStore floods the denied database while, 40
// times, the daemon is SIGKILLed, "nft flush ruleset" runs, and the daemon
// is started again, as systemd restarts a killed unit: the test plays
// systemd's file descriptor store, which keeps the daemon's nf_tables
// socket while no daemon runs. The table stays owned by that socket, so
// the kernel refuses every flush and not one datagram arrives; each
// restarted daemon takes the same socket back (one FDSTORE per start, the
// same owner port throughout). Without the store the same flushes delete
// the orphaned table (TestLeakFlushOrphaned).
func TestLeakFlushKilledUnderFDStore(t *testing.T) {
	e := newEnv(t)
	e.leakBaseline(t, e.tp.Ctr)
	pol := e.write("policy.yaml", seedPolicy)
	store := newFDStore(t)
	df := e.startStoredDaemon(store, pol)
	df.waitLog(t, "table applied")
	owner := func() uint32 {
		st, err := e.kernel().Read("dockerfence")
		if err != nil || st == nil || st.Flags&nft.FlagOwner == 0 {
			t.Fatalf("the table is not owned: %+v, %v", st, err)
		}
		return st.Owner
	}
	first := owner()
	e.noLeak(t, fmt.Sprintf("%d SIGKILL, nft flush ruleset, restart under a file descriptor store", flushes), e.tp.Ctr, leakTarget(), leakPPS, func() {
		for i := 0; i < flushes; i++ {
			df.cmd.Process.Kill()
			<-df.exited
			e.tp.Host.Run(t, "nft", "flush", "ruleset")
			if !e.mapped(topo.BridgeName) {
				t.Fatalf("round %d: the flush removed the table while the store held its socket", i+1)
			}
			df = e.startStoredDaemon(store, pol)
			df.waitLog(t, "reason=start")
		}
	})
	if !strings.Contains(df.log.String(), "took back the previous daemon's nf_tables socket") {
		t.Errorf("the last daemon did not say it took the stored socket back:\n%s", df.log.String())
	}
	if got := owner(); got != first {
		t.Errorf("the table's owner changed from port %d to %d: a daemon opened a socket of its own", first, got)
	}
	if n := store.count(); n != flushes+1 {
		t.Errorf("the store got %d descriptors; want one per start, %d", n, flushes+1)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.files[daemon.OwnerFDName] == nil || len(store.files) != 1 {
		t.Errorf("the store holds %v; want the one socket named %s", store.files, daemon.OwnerFDName)
	}
}
