// Package lock is the lock that dockerfence apply, delete and run take while
// they change the nftables table.
//
// Apply reads the kernel's table, computes the changes from it and commits
// them; two processes doing that at once could each commit changes computed
// against a table the other one has just changed, and leave a mix of both
// policies. google/nftables v0.3.0 cannot tie a batch to the generation it
// was computed against, so the processes take turns instead.
//
// The lock is an flock(2) lock on the file File in a run directory (the
// directory of dockerfence's --socket). The kernel drops it when the process
// exits, however it exits, so a crashed holder never leaves it taken. The
// holder writes its pid and role into the file, so that a process that finds
// the lock taken can say who holds it.
package lock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// File is the name of the lock file in the run directory.
const File = "lock"

// ErrBusy is what TryLock returns, wrapped in a *BusyError, while another
// process holds the lock.
var ErrBusy = errors.New("another dockerfence process holds the lock")

// Lock is the lock file of a run directory, open.
type Lock struct {
	f    *os.File
	path string
	// role names this process in the lock file ("apply", "delete", "run"),
	// so that a process that finds the lock taken can say who holds it.
	role string
}

// Open opens (creating them if need be) the run directory dir and its lock
// file, for a process that will hold the lock as role.
func Open(dir, role string) (*Lock, error) {
	path := filepath.Join(dir, File)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if errors.Is(err, fs.ErrPermission) {
		// A lock file another user made (root, before the unit's own user
		// took the directory over): flock works on a read-only descriptor
		// too; only the holder's note cannot be written.
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock file %s: %w", path, err)
	}
	return &Lock{f: f, path: path, role: role}, nil
}

// Close closes the lock file, which releases the lock if it is held.
func (l *Lock) Close() error { return l.f.Close() }

// TryLock takes the lock if no other process holds it, and writes this
// process's pid and role into the lock file. It does not wait for the lock:
// when another process holds it, TryLock returns a *BusyError about table
// that names the holder. The returned function releases the lock.
func (l *Lock) TryLock(table string) (unlock func(), err error) {
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
	return nil, &BusyError{Table: table, Holder: holder}
}

// taken writes this process into the lock file it has just locked, and
// returns the function that releases the lock.
func (l *Lock) taken() (unlock func()) {
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
func (l *Lock) holder() string {
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

// BusyError says that another dockerfence process holds the lock. It wraps
// ErrBusy.
type BusyError struct {
	// Table is the name of the table the process meant to change.
	Table string
	// Holder is who holds the lock ("pid 123, dockerfence run"), or "" if
	// the lock file does not say.
	Holder string
}

// Error says that the table is being changed by another process, and who
// that is if known.
func (e *BusyError) Error() string {
	who := ""
	if e.Holder != "" {
		who = " (" + e.Holder + ")"
	}
	return fmt.Sprintf("another dockerfence is changing table inet %s%s; nothing changed: retry", e.Table, who)
}

// Unwrap returns ErrBusy.
func (e *BusyError) Unwrap() error { return ErrBusy }

// Take opens the lock file of the run directory dir and takes its lock as
// role, or returns a *BusyError about table at once if another process
// holds it. The returned function releases the lock and closes the file.
func Take(dir, role, table string) (release func(), err error) {
	l, err := Open(dir, role)
	if err != nil {
		return nil, fmt.Errorf("%w; run as root, or choose a writable directory with --socket", err)
	}
	unlock, err := l.TryLock(table)
	if err != nil {
		l.Close()
		return nil, err
	}
	return func() {
		unlock()
		l.Close()
	}, nil
}

// With runs change while holding the lock of the run directory dir as
// role, or returns a *BusyError at once if another process holds it.
func With(dir, role, table string, change func() error) error {
	release, err := Take(dir, role, table)
	if err != nil {
		return err
	}
	defer release()
	return change()
}
