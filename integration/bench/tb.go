package main

import (
	"fmt"
	"log"
	"os"
	"sync"
	"testing"
)

// benchTB lets the benchmark build its namespaces with integration/topo,
// which takes a testing.TB. Fatal panics with a fatalError, which main
// reports after running the cleanups; Errorf logs and marks the run failed.
type benchTB struct {
	testing.TB // nil: a method not overridden here panics
	mu         sync.Mutex
	cleanups   []func()
	failed     bool
}

// fatalError is what benchTB.Fatal panics with.
type fatalError struct{ msg string }

func (e fatalError) Error() string { return e.msg }

func (b *benchTB) Helper()      {}
func (b *benchTB) Name() string { return "bench" }

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

func (b *benchTB) Fatal(args ...any)                 { panic(fatalError{fmt.Sprint(args...)}) }
func (b *benchTB) Fatalf(format string, args ...any) { panic(fatalError{fmt.Sprintf(format, args...)}) }
func (b *benchTB) FailNow()                          { panic(fatalError{"FailNow"}) }
func (b *benchTB) Skip(args ...any)                  { panic(fatalError{"skip: " + fmt.Sprint(args...)}) }
func (b *benchTB) Skipf(format string, args ...any)  { b.Skip(fmt.Sprintf(format, args...)) }
func (b *benchTB) Log(args ...any)                   { log.Print(args...) }
func (b *benchTB) Logf(format string, args ...any)   { log.Printf(format, args...) }

func (b *benchTB) Error(args ...any) {
	log.Print(append([]any{"error: "}, args...)...)
	b.mu.Lock()
	b.failed = true
	b.mu.Unlock()
}

func (b *benchTB) Errorf(format string, args ...any) { b.Error(fmt.Sprintf(format, args...)) }

func (b *benchTB) Failed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failed
}

// TempDir returns a new directory removed by RunCleanups.
func (b *benchTB) TempDir() string {
	d, err := os.MkdirTemp("", "dfbench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}
