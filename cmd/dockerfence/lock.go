package main

import (
	"errors"
	"fmt"

	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/lock"
)

// takeLock opens the lock file of runDir (the directory of --socket) and
// takes its lock as role, or returns a *busyError at once if another process
// holds it. The returned function releases the lock and closes the file.
func takeLock(runDir, role, table string) (release func(), err error) {
	l, err := lock.Open(runDir, role)
	if err != nil {
		return nil, fmt.Errorf("%w; run as root, or choose a writable directory with --socket", err)
	}
	unlock, err := l.TryLock(table)
	if err != nil {
		l.Close()
		if be, ok := errors.AsType[*lock.BusyError](err); ok {
			return nil, &busyError{be}
		}
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

// busyError is a *lock.BusyError that is daemon.ErrBusy too, so that the
// daemon waits and retries rather than fails.
type busyError struct{ err *lock.BusyError }

// Error says who holds the lock, as the *lock.BusyError does.
func (e *busyError) Error() string { return e.err.Error() }

// Unwrap returns the *lock.BusyError and daemon.ErrBusy.
func (e *busyError) Unwrap() []error { return []error{e.err, daemon.ErrBusy} }
