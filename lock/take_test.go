package lock_test

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
func TestTake(t *testing.T) {
	dir := t.TempDir()
	release, err := lock.Take(dir, "apply", "dockerfence")
	if err != nil {
		t.Fatal(err)
	}
	_, err = lock.Take(dir, "run", "dockerfence")
	want := fmt.Sprintf("another dockerfence is changing table inet dockerfence (pid %d, dockerfence apply); nothing changed: retry", os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("Take with the lock held = %v, want %s", err, want)
	}
	if !errors.Is(err, daemon.ErrBusy) || !errors.Is(err, lock.ErrBusy) {
		t.Errorf("Take with the lock held = %v, want an error matching daemon.ErrBusy and lock.ErrBusy", err)
	}
	release()
	release, err = lock.Take(dir, "run", "dockerfence")
	if err != nil {
		t.Fatalf("Take after release: %v", err)
	}
	release()

	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = lock.Take(notDir, "apply", "dockerfence")
	if err == nil || !strings.HasPrefix(err.Error(), "lock file "+filepath.Join(notDir, lock.File)+": ") ||
		!strings.HasSuffix(err.Error(), "; run as root, or choose a writable directory with --socket") {
		t.Errorf("Take in a regular file = %v, want the lock file and how to choose another directory", err)
	}
	if errors.Is(err, daemon.ErrBusy) {
		t.Errorf("Take in a regular file = %v, want an error that is not daemon.ErrBusy", err)
	}
}

// With holds the lock while change runs and returns change's error; with
// the lock taken, it fails at once and change does not run.
func TestWith(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	err := lock.With(dir, "apply", "dockerfence", func() error {
		if _, err := lock.Take(dir, "delete", "dockerfence"); !errors.Is(err, lock.ErrBusy) {
			t.Errorf("Take during With = %v, want the lock busy", err)
		}
		return boom
	})
	if err != boom {
		t.Errorf("With = %v, want change's error", err)
	}
	release, err := lock.Take(dir, "run", "dockerfence")
	if err != nil {
		t.Fatalf("Take after With: %v", err)
	}
	defer release()
	ran := false
	if err := lock.With(dir, "delete", "dockerfence", func() error { ran = true; return nil }); !errors.Is(err, lock.ErrBusy) || ran {
		t.Errorf("With while another holds the lock = %v (change ran: %v), want the lock busy and change not run", err, ran)
	}
}
