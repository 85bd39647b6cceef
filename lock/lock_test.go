package lock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// open opens the lock file of dir as role, closed at the end of the test.
func open(t *testing.T, dir, role string) *Lock {
	t.Helper()
	l, err := Open(dir, role)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// content returns what the lock file of dir holds.
func content(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// holdRaw takes the lock of dir's lock file as another process would, with
// text written into the file, and returns the function that releases it.
func holdRaw(t *testing.T, dir, text string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, File), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// Two holders of the lock take turns: the second is refused while the first
// holds it, with a message naming the first, and gets it once it is released.
// Each open of the file is a lock of its own, so two in one process
// conflict as two processes do.
func TestTryLockBusy(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, "apply")
	unlock, err := a.TryLock("dockerfence")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := content(t, dir), fmt.Sprintf("%d apply\n", os.Getpid()); got != want {
		t.Errorf("lock file holds %q, want %q", got, want)
	}

	b := open(t, dir, "run")
	_, err = b.TryLock("dockerfence")
	want := fmt.Sprintf("another dockerfence is changing table inet dockerfence (pid %d, dockerfence apply); nothing changed: retry", os.Getpid())
	if err == nil || err.Error() != want {
		t.Fatalf("TryLock with the lock held = %v, want %s", err, want)
	}
	if !errors.Is(err, ErrBusy) {
		t.Errorf("TryLock with the lock held = %v, want an error matching ErrBusy", err)
	}
	if be, ok := errors.AsType[*BusyError](err); !ok || be.Table != "dockerfence" || be.Holder != fmt.Sprintf("pid %d, dockerfence apply", os.Getpid()) {
		t.Errorf("TryLock with the lock held = %#v, want a *BusyError naming the table and the holder", err)
	}

	unlock()
	if got := content(t, dir); got != "" {
		t.Errorf("lock file after unlock holds %q, want it empty", got)
	}
	unlock, err = b.TryLock("dockerfence")
	if err != nil {
		t.Fatalf("TryLock after the holder released the lock: %v", err)
	}
	defer unlock()
	if got, want := content(t, dir), fmt.Sprintf("%d run\n", os.Getpid()); got != want {
		t.Errorf("lock file holds %q, want %q", got, want)
	}
}

// A lock file that does not name its holder (held by a process that has not
// written itself yet, or one that wrote only its pid) makes a message that
// says what is known.
func TestTryLockBusyHolder(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"", "another dockerfence is changing table inet t; nothing changed: retry"},
		{"junk\n", "another dockerfence is changing table inet t; nothing changed: retry"},
		{"4242\n", "another dockerfence is changing table inet t (pid 4242); nothing changed: retry"},
		{"4242 delete\n", "another dockerfence is changing table inet t (pid 4242, dockerfence delete); nothing changed: retry"},
	} {
		dir := t.TempDir()
		release := holdRaw(t, dir, tc.text)
		_, err := open(t, dir, "apply").TryLock("t")
		release()
		if err == nil || err.Error() != tc.want || !errors.Is(err, ErrBusy) {
			t.Errorf("lock file %q: TryLock = %v, want %s", tc.text, err, tc.want)
		}
	}
}

// Closing the lock file releases the lock, as the kernel does when the
// holder exits.
func TestCloseReleases(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir, "apply")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.TryLock("t"); err != nil {
		t.Fatal(err)
	}
	a.Close()
	unlock, err := open(t, dir, "run").TryLock("t")
	if err != nil {
		t.Fatalf("TryLock after the holder closed the file: %v", err)
	}
	unlock()
}

// Open creates the run directory and the lock file, and says which file it
// could not open.
func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run", "dockerfence")
	open(t, dir, "apply")
	if st, err := os.Stat(filepath.Join(dir, File)); err != nil || !st.Mode().IsRegular() {
		t.Fatalf("lock file after Open: %v, %v; want a regular file", st, err)
	}

	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(notDir, "apply")
	if want := "lock file " + filepath.Join(notDir, File) + ": "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Open in a regular file = %v, want an error starting %q", err, want)
	}
}

// A lock file this user cannot write (one root made) is still locked,
// through a read-only descriptor.
func TestOpenReadOnly(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can write any file")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, File), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	unlock, err := open(t, dir, "run").TryLock("t")
	if err != nil {
		t.Fatalf("TryLock of a read-only lock file: %v", err)
	}
	_, err = open(t, dir, "apply").TryLock("t")
	if !errors.Is(err, ErrBusy) {
		t.Errorf("second TryLock of a read-only lock file = %v, want ErrBusy", err)
	}
	unlock()
}
