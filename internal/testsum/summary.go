package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// event is one line of go test -json (cmd/test2json), build events included.
type event struct {
	Time        time.Time
	Action      string
	Package     string
	ImportPath  string // of build-output and build-fail
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
}

// key names a test of a package.
type key struct{ pkg, test string }

// pkgState is what is known of a package while its tests run.
type pkgState struct {
	started time.Time
	running map[string]time.Time // top-level tests running, by start
	passed  int
	failed  int
	skipped int
}

// Summary turns go test -json events into progress lines and a closing
// count. It shows a line a finished package, a line for each top-level test
// that took SlowTest or longer, every failed test's output in full when it
// fails, a line of what is still running when nothing was printed for
// Quiet, and at the end the skipped tests with their reasons, the failed
// ones, and "N passed, N failed, N skipped".
type Summary struct {
	Out      io.Writer
	Module   string        // module path, cut from package names
	SlowTest time.Duration // report top-level tests this long as they finish
	Quiet    time.Duration // report what runs after this long without a line

	begin     time.Time
	lastPrint time.Time
	pkgs      map[string]*pkgState
	output    map[key][]string
	skips     []string
	fails     []string
	passed    int
	failed    int
	skipped   int
	noTests   []string
}

// NewSummary starts a summary at now.
func NewSummary(out io.Writer, module string, now time.Time) *Summary {
	return &Summary{
		Out: out, Module: module, SlowTest: 10 * time.Second, Quiet: 30 * time.Second,
		begin: now, lastPrint: now,
		pkgs: map[string]*pkgState{}, output: map[key][]string{},
	}
}

// short is a package's name without the module path.
func (s *Summary) short(pkg string) string {
	if pkg == s.Module {
		return "."
	}
	if r, ok := strings.CutPrefix(pkg, s.Module+"/"); ok {
		return r
	}
	return pkg
}

func (s *Summary) printf(now time.Time, format string, args ...any) {
	fmt.Fprintf(s.Out, format, args...)
	s.lastPrint = now
}

// Line takes one line of go test -json output at now.
func (s *Summary) Line(line []byte, now time.Time) {
	var e event
	if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
		// Not an event: whatever printed it, show it.
		s.printf(now, "%s\n", line)
		return
	}
	s.Event(e, now)
}

// Event takes one event at now.
func (s *Summary) Event(e event, now time.Time) {
	switch e.Action {
	case "build-output":
		s.printf(now, "%s", e.Output)
		return
	case "build-fail":
		return
	}
	p := s.pkgs[e.Package]
	if p == nil {
		p = &pkgState{started: now, running: map[string]time.Time{}}
		s.pkgs[e.Package] = p
	}
	k := key{e.Package, e.Test}
	top := e.Test != "" && !strings.Contains(e.Test, "/")
	switch e.Action {
	case "run":
		if top {
			p.running[e.Test] = now
		}
	case "output":
		s.output[k] = append(s.output[k], e.Output)
	case "pass", "fail", "skip":
		if e.Test == "" {
			s.endPackage(e, p, now)
			return
		}
		if top {
			delete(p.running, e.Test)
		}
		out := s.output[k]
		delete(s.output, k)
		name := s.short(e.Package) + " " + e.Test
		switch e.Action {
		case "pass":
			p.passed++
			s.passed++
			if top && time.Duration(e.Elapsed*float64(time.Second)) >= s.SlowTest {
				s.printf(now, "      %s (%.1fs)\n", name, e.Elapsed)
			}
		case "skip":
			p.skipped++
			s.skipped++
			s.skips = append(s.skips, name+": "+reason(out))
		case "fail":
			p.failed++
			s.failed++
			s.fails = append(s.fails, name)
			s.printf(now, "FAIL  %s (%.2fs):\n%s", name, e.Elapsed, strings.Join(out, ""))
		}
	}
}

// reason is a skipped test's message: its output but for the lines the
// testing package writes itself.
func reason(out []string) string {
	var msg []string
	for _, l := range out {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		msg = append(msg, l)
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msg, "; ")
}

// endPackage reports a package whose tests have ended.
func (s *Summary) endPackage(e event, p *pkgState, now time.Time) {
	k := key{e.Package, ""}
	out := s.output[k]
	delete(s.output, k)
	delete(s.pkgs, e.Package)
	name := s.short(e.Package)
	counts := fmt.Sprintf("%d passed", p.passed)
	if p.failed > 0 {
		counts += fmt.Sprintf(", %d failed", p.failed)
	}
	if p.skipped > 0 {
		counts += fmt.Sprintf(", %d skipped", p.skipped)
	}
	switch {
	case e.Action == "skip":
		s.noTests = append(s.noTests, name)
	case e.Action == "pass":
		s.printf(now, "ok    %-24s %7.1fs  %s\n", name, e.Elapsed, counts)
	case e.FailedBuild != "":
		s.failed++
		s.fails = append(s.fails, name+" [build failed]")
		s.printf(now, "FAIL  %-24s [build failed]\n", name)
	default:
		// The package's own output: the FAIL lines, and what no test
		// printed, such as a timeout's panic or TestMain's exit.
		s.printf(now, "%s", strings.Join(out, ""))
		if p.failed == 0 {
			s.failed++
			s.fails = append(s.fails, name+" (the package failed outside its tests)")
		}
		s.printf(now, "FAIL  %-24s %7.1fs  %s\n", name, e.Elapsed, counts)
	}
}

// Tick reports what is running when nothing was printed for Quiet.
func (s *Summary) Tick(now time.Time) {
	if now.Sub(s.lastPrint) < s.Quiet {
		return
	}
	var running []string
	for pkg, p := range s.pkgs {
		var tests []string
		for t, since := range p.running {
			tests = append(tests, fmt.Sprintf("%s %s", t, now.Sub(since).Round(time.Second)))
		}
		slices.Sort(tests)
		r := s.short(pkg)
		if len(tests) > 0 {
			r += " (" + strings.Join(tests, ", ") + ")"
		}
		running = append(running, r)
	}
	slices.Sort(running)
	what := "building"
	if len(running) > 0 {
		what = "running " + strings.Join(running, "; ")
	}
	s.printf(now, "      ... %s: %s\n", now.Sub(s.begin).Round(time.Second), what)
}

// Finish prints the skipped and the failed tests and the count line;
// runErr is go test's own error, if it failed. It reports whether all
// passed.
func (s *Summary) Finish(runErr error, now time.Time) bool {
	if runErr != nil && s.failed == 0 {
		// go test failed, and no test or package said why: count it.
		s.failed++
		s.fails = append(s.fails, fmt.Sprintf("go test: %v (see its output above)", runErr))
	}
	if len(s.noTests) > 0 {
		s.printf(now, "no test files: %s\n", strings.Join(s.noTests, ", "))
	}
	if len(s.skips) > 0 {
		s.printf(now, "skipped:\n")
		for _, l := range s.skips {
			s.printf(now, "  %s\n", l)
		}
	}
	if len(s.fails) > 0 {
		s.printf(now, "failed:\n")
		for _, l := range s.fails {
			s.printf(now, "  %s\n", l)
		}
	}
	s.printf(now, "%d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped)
	return s.failed == 0
}
