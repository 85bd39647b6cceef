package topo

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// RecordingTB is a testing.TB for testing test helpers: it records
// cleanups, to be run with RunCleanups, and turns Fatal into
// runtime.Goexit, so that a helper that fails midway can be observed
// without failing the test. Call the helper in a goroutine of its own.
type RecordingTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	fatal    string
}

// Cleanup records fn.
func (f *RecordingTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}

// Fatal records the message and ends the calling goroutine.
func (f *RecordingTB) Fatal(args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprint(args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// Fatalf is Fatal with a format.
func (f *RecordingTB) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

// Fatalled returns the message of the Fatal call, "" if there was none.
func (f *RecordingTB) Fatalled() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal
}

// RunCleanups runs the recorded cleanups, last first, once.
func (f *RecordingTB) RunCleanups() {
	f.mu.Lock()
	fns := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
