package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// lastLine is the last line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestRunSample runs go test -json on the module testdata/sample, whose
// packages pass, skip, fail and fail to build, and reads the summary.
func TestRunSample(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on testdata/sample; -short skips it")
	}
	var out, errOut bytes.Buffer
	code := run("go", "testdata/sample", []string{"-count=1", "./..."}, &out, &errOut, time.Hour)
	got := out.String()
	if code != 1 {
		t.Errorf("exit status %d, want 1 (tests and a build failed)", code)
	}
	if l := lastLine(got); l != "4 passed, 4 failed, 2 skipped" {
		t.Errorf("last line %q, want %q", l, "4 passed, 4 failed, 2 skipped")
	}
	for _, want := range []string{
		// a line a package, with its counts
		"ok    ok ", "3 passed, 2 skipped\n",
		"FAIL  bad ", "1 passed, 3 failed\n",
		"FAIL  broken                   [build failed]\n",
		"no test files: none\n",
		// the build error and the failed tests' output, in full
		`broken/broken.go:3:23: cannot use "s" (untyped string constant) as int value in return statement`,
		"FAIL  bad TestFail (0.00s):\n=== RUN   TestFail\n    bad_test.go:5: line one\n    bad_test.go:5: want 1, got 2\n--- FAIL: TestFail (0.00s)\n",
		"    bad_test.go:7: x broke\n",
		// each skip with its reason
		"skipped:\n  ok TestSkip: ok_test.go:6: needs root (network namespaces)\n  ok TestSubs/b: ok_test.go:9: no ipv6 here\n",
		"failed:\n", "  broken [build failed]\n", "  bad TestSubFail/x\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the summary lacks %q:\n%s", want, got)
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", errOut.String())
	}
}

func TestRunPassing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test on testdata/sample; -short skips it")
	}
	var out, errOut bytes.Buffer
	if code := run("go", "testdata/sample", []string{"-count=1", "./ok"}, &out, &errOut, time.Hour); code != 0 {
		t.Errorf("exit status %d, want 0:\n%s\n%s", code, out.String(), errOut.String())
	}
	if l := lastLine(out.String()); l != "3 passed, 0 failed, 2 skipped" {
		t.Errorf("last line %q, want %q", l, "3 passed, 0 failed, 2 skipped")
	}
}

// TestRunGoTestFails: go test fails before any test runs; the summary
// must not say that all is well.
func TestRunGoTestFails(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-count=x", "./..."}, "  go test: exit status 2 (see its output above)\n"},
		{[]string{"-run=[", "./ok"}, "  ok (the package failed outside its tests)\n"},
		{[]string{"./nosuchpackage"}, "  ./nosuchpackage [build failed]\n"},
	} {
		var out, errOut bytes.Buffer
		if code := run("go", "testdata/sample", tc.args, &out, &errOut, time.Hour); code != 1 {
			t.Errorf("%v: exit status %d, want 1", tc.args, code)
		}
		if l := lastLine(out.String()); l != "0 passed, 1 failed, 0 skipped" {
			t.Errorf("%v: last line %q, want %q:\n%s", tc.args, l, "0 passed, 1 failed, 0 skipped", out.String())
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("%v: the failure is not named as %q:\n%s", tc.args, tc.want, out.String())
		}
	}
}

// TestProgress: slow tests are reported as they pass, and after Quiet
// without a line the summary says what is running, for how long.
func TestProgress(t *testing.T) {
	var out bytes.Buffer
	t0 := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	s := NewSummary(&out, "example.com/m", t0)
	for _, l := range []string{
		`{"Action":"start","Package":"example.com/m/integration"}`,
		`{"Action":"run","Package":"example.com/m/integration","Test":"TestLeak"}`,
		`{"Action":"run","Package":"example.com/m/integration","Test":"TestLeak/sub"}`,
		`not json, from some tool`,
	} {
		s.Line([]byte(l), t0)
	}
	s.Tick(t0.Add(29 * time.Second))
	if out.String() != "not json, from some tool\n" {
		t.Errorf("before Quiet: %q, want only the line that is not an event", out.String())
	}
	out.Reset()
	s.Tick(t0.Add(45 * time.Second))
	if want := "      ... 45s: running integration (TestLeak 45s)\n"; out.String() != want {
		t.Errorf("after Quiet: %q, want %q", out.String(), want)
	}
	out.Reset()
	s.Tick(t0.Add(50 * time.Second))
	if out.String() != "" {
		t.Errorf("5s after the last line: %q, want nothing", out.String())
	}
	s.Line([]byte(`{"Action":"pass","Package":"example.com/m/integration","Test":"TestLeak/sub","Elapsed":11}`), t0.Add(51*time.Second))
	s.Line([]byte(`{"Action":"pass","Package":"example.com/m/integration","Test":"TestLeak","Elapsed":12.34}`), t0.Add(52*time.Second))
	s.Line([]byte(`{"Action":"run","Package":"example.com/m/integration","Test":"TestQuick"}`), t0.Add(52*time.Second))
	s.Line([]byte(`{"Action":"pass","Package":"example.com/m/integration","Test":"TestQuick","Elapsed":0.5}`), t0.Add(53*time.Second))
	if want := "      integration TestLeak (12.3s)\n"; out.String() != want {
		t.Errorf("slow tests: %q, want %q (top-level tests of 10s or more only)", out.String(), want)
	}
	out.Reset()
	s.Line([]byte(`{"Action":"pass","Package":"example.com/m/integration","Elapsed":53}`), t0.Add(53*time.Second))
	s.Tick(t0.Add(90 * time.Second))
	if want := "ok    integration                 53.0s  3 passed\n      ... 1m30s: building\n"; out.String() != want {
		t.Errorf("end of package: %q, want %q", out.String(), want)
	}
	out.Reset()
	if !s.Finish(nil, t0.Add(91*time.Second)) || out.String() != "3 passed, 0 failed, 0 skipped\n" {
		t.Errorf("Finish: %q", out.String())
	}
}

// TestPackageFailsOutsideTests: a package that fails with no failed test
// (a timeout's panic, os.Exit in TestMain) shows its output and counts as
// a failure.
func TestPackageFailsOutsideTests(t *testing.T) {
	var out bytes.Buffer
	t0 := time.Now()
	s := NewSummary(&out, "example.com/m", t0)
	for _, l := range []string{
		`{"Action":"start","Package":"example.com/m/p"}`,
		`{"Action":"output","Package":"example.com/m/p","Output":"panic: test timed out after 10m0s\n"}`,
		`{"Action":"output","Package":"example.com/m/p","Output":"FAIL\texample.com/m/p\t600.0s\n"}`,
		`{"Action":"fail","Package":"example.com/m/p","Elapsed":600}`,
	} {
		s.Line([]byte(l), t0)
	}
	if s.Finish(nil, t0) {
		t.Error("Finish reports success")
	}
	for _, want := range []string{"panic: test timed out after 10m0s\n", "FAIL  p ", "  p (the package failed outside its tests)\n", "0 passed, 1 failed, 0 skipped\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
