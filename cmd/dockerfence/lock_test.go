package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/lock"
)

// A busy lock is daemon.ErrBusy, so that the daemon waits for it, and says
// who holds it; an unusable run directory says how to choose another.
func TestTakeLock(t *testing.T) {
	dir := t.TempDir()
	release, err := takeLock(dir, "apply", "dockerfence")
	if err != nil {
		t.Fatal(err)
	}
	_, err = takeLock(dir, "run", "dockerfence")
	want := fmt.Sprintf("another dockerfence is changing table inet dockerfence (pid %d, dockerfence apply); nothing changed: retry", os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("takeLock with the lock held = %v, want %s", err, want)
	}
	if !errors.Is(err, daemon.ErrBusy) || !errors.Is(err, lock.ErrBusy) {
		t.Errorf("takeLock with the lock held = %v, want an error matching daemon.ErrBusy and lock.ErrBusy", err)
	}
	release()
	release, err = takeLock(dir, "run", "dockerfence")
	if err != nil {
		t.Fatalf("takeLock after release: %v", err)
	}
	release()

	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = takeLock(notDir, "apply", "dockerfence")
	if err == nil || !strings.HasPrefix(err.Error(), "lock file "+filepath.Join(notDir, lock.File)+": ") ||
		!strings.HasSuffix(err.Error(), "; run as root, or choose a writable directory with --socket") {
		t.Errorf("takeLock in a regular file = %v, want the lock file and how to choose another directory", err)
	}
	if errors.Is(err, daemon.ErrBusy) {
		t.Errorf("takeLock in a regular file = %v, want an error that is not daemon.ErrBusy", err)
	}
}
