package main

import (
	"fmt"
	"log"
	"os"
	"sync"

	"github.com/dockerfence/dockerfence/integration/topo"
)

// benchTB is the topo.T of a benchmark section, which builds its namespaces
// with integration/topo and integration/harness. Fatalf and Skip panic with
// a fatalError, which section reports after running the cleanups; Errorf
// logs and marks the section failed.
type benchTB struct {
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

var _ topo.T = (*benchTB)(nil)

// fatalError is what benchTB.Fatalf panics with.
type fatalError struct{ msg string }

func (e fatalError) Error() string { return e.msg }

func (b *benchTB) Helper() {}

func (b *benchTB) Cleanup(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cleanups = append(b.cleanups, f)
}

// RunCleanups runs the recorded cleanups, last first.
func (b *benchTB) RunCleanups() {
	for {
		b.mu.Lock()
		if len(b.cleanups) == 0 {
			b.mu.Unlock()
			return
		}
		f := b.cleanups[len(b.cleanups)-1]
		b.cleanups = b.cleanups[:len(b.cleanups)-1]
		b.mu.Unlock()
		f()
	}
}

func (b *benchTB) Fatalf(format string, args ...any) { panic(fatalError{fmt.Sprintf(format, args...)}) }
func (b *benchTB) Skip(args ...any)                  { panic(fatalError{"skip: " + fmt.Sprint(args...)}) }

func (b *benchTB) Errorf(format string, args ...any) {
	log.Print("error: " + fmt.Sprintf(format, args...))
	b.mu.Lock()
	b.failed = true
	b.mu.Unlock()
}

func (b *benchTB) Failed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failed
}

// TempDir returns a new directory removed by RunCleanups.
func (b *benchTB) TempDir() string {
	d, err := os.MkdirTemp("", "dfbench-")
	if err != nil {
		b.Fatalf("%v", err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}
