package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dockerfence/dockerfence/daemon"
	"golang.org/x/sys/unix"
)

// lockFile is the file in the run directory (the directory of --socket)
// that apply, delete and run lock while they change the table. Apply reads
// the kernel's table, computes the changes from it and commits them; two
// processes doing that at once could each commit changes computed against
// a table the other one has just changed, and leave a mix of both policies.
// google/nftables v0.3.0 cannot tie a batch to the generation it was
// computed against, so the processes take turns instead.
const lockFile = "lock"

// tableLock is the lock file, open. Its lock is an flock(2) lock: the
// kernel drops it when the process exits, however it exits, so a crashed
// holder never leaves it taken.
type tableLock struct {
	f    *os.File
	path string
	// role names this process in the lock file ("apply", "delete", "run"),
	// so that a process that finds the lock taken can say who holds it.
	role string
}

// openLock opens (creating them if need be) the run directory and its lock
// file.
func openLock(runDir, role string) (*tableLock, error) {
	path := filepath.Join(runDir, lockFile)
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("lock file %s: %w; run as root, or choose a writable directory with --socket", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if errors.Is(err, fs.ErrPermission) {
		// A lock file another user made (root, before the unit's own user
		// took the directory over): flock works on a read-only descriptor
		// too; only the holder's note cannot be written.
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock file %s: %w; run as root, or choose a writable directory with --socket", path, err)
	}
	return &tableLock{f: f, path: path, role: role}, nil
}

// Close closes the lock file, which releases the lock if it is held.
func (l *tableLock) Close() error { return l.f.Close() }

// tryLock takes the lock if no other process holds it, and writes this
// process's pid and role into the lock file. It does not wait for the lock:
// when another process holds it, tryLock returns a *busyError that names
// the holder. The returned function releases the lock.
func (l *tableLock) tryLock(table string) (unlock func(), err error) {
	// The holder writes itself into the file just after it takes the lock,
	// and empties the file just before it releases it. So a busy lock with
	// an empty file is either just taken (the holder appears within a
	// moment) or just released (the lock can be taken now): both are worth
	// a few more tries.
	holder := ""
	for range 20 {
		err := flock(l.f, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return l.taken(), nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", l.path, err)
		}
		if holder = l.holder(); holder != "" {
			break
		}
		time.Sleep(500 * time.Microsecond)
	}
	return nil, &busyError{table: table, holder: holder}
}

// taken writes this process into the lock file it has just locked, and
// returns the function that releases the lock.
func (l *tableLock) taken() (unlock func()) {
	// The holder is only informative: failing to write it must not stop
	// the change.
	if l.f.Truncate(0) == nil {
		l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+" "+l.role+"\n"), 0)
	}
	return func() {
		l.f.Truncate(0)
		flock(l.f, unix.LOCK_UN)
	}
}

// flock is flock(2) on f, resumed when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}

// holder reads who holds the lock from the lock file: "pid 123, dockerfence
// run", or "" if the file names nobody.
func (l *tableLock) holder() string {
	b, err := os.ReadFile(l.path)
	if err != nil {
		return ""
	}
	pid, role, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if _, err := strconv.Atoi(pid); err != nil {
		return ""
	}
	if role == "" {
		return "pid " + pid
	}
	return "pid " + pid + ", dockerfence " + role
}

// busyError says that another dockerfence process holds the lock. It is
// daemon.ErrBusy, so that the daemon waits and retries rather than fails.
type busyError struct {
	table, holder string
}

func (e *busyError) Error() string {
	who := ""
	if e.holder != "" {
		who = " (" + e.holder + ")"
	}
	return fmt.Sprintf("another dockerfence is changing table inet %s%s; nothing changed: retry", e.table, who)
}

func (e *busyError) Unwrap() error { return daemon.ErrBusy }

// takeLock opens the lock file of runDir and takes its lock as role, or
// returns a *busyError at once if another process holds it. The returned
// function releases the lock and closes the file.
func takeLock(runDir, role, table string) (release func(), err error) {
	l, err := openLock(runDir, role)
	if err != nil {
		return nil, err
	}
	unlock, err := l.tryLock(table)
	if err != nil {
		l.Close()
		return nil, err
	}
	return func() {
		unlock()
		l.Close()
	}, nil
}

// withLock runs change while holding the lock of the run directory, or
// returns a *busyError at once if another process holds it.
func withLock(g *globalFlags, role, table string, change func() error) error {
	release, err := takeLock(g.runDir(), role, table)
	if err != nil {
		return err
	}
	defer release()
	return change()
}
