// Command testsum runs go test -json and summarizes it as make check
// shows it: a line a finished package (with its time and counts), a line
// for each slow test, what is still running when nothing was printed for
// 30 seconds, every failed test's output in full, the skipped tests with
// their reasons, and a last line "N passed, N failed, N skipped". It exits
// 1 when a test, a package or a build failed, or go test did.
//
//	go run ./internal/testsum [go test flags] [packages]
//
// $GO names the go command (default go). Build errors and whatever go test
// writes to stderr pass through as they come.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	os.Exit(run(goCmd, "", os.Args[1:], os.Stdout, os.Stderr, 5*time.Second))
}

// run runs go test -json args in dir ("" for the current directory),
// summarizing to stdout, and returns the exit status; tick is how often it
// looks whether to say what is running.
func run(goCmd, dir string, args []string, stdout, stderr io.Writer, tick time.Duration) int {
	cmd := exec.Command(goCmd, append([]string{"test", "-json"}, args...)...)
	cmd.Dir = dir
	cmd.Stderr = stderr
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testsum:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s test %s\n", goCmd, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testsum:", err)
		return 1
	}
	s := NewSummary(stdout, modulePath(filepath.Join(dir, "go.mod")), time.Now())
	readErr := summarize(s, pipe, tick)
	runErr := cmd.Wait()
	if runErr == nil {
		runErr = readErr
	}
	fmt.Fprintf(stdout, "go test took %s\n", time.Since(s.begin).Round(100*time.Millisecond))
	if !s.Finish(runErr, time.Now()) {
		return 1
	}
	return 0
}

// summarize feeds the lines of r to s until r ends, and ticks s meanwhile.
func summarize(s *Summary, r io.Reader, tick time.Duration) error {
	lines := make(chan []byte)
	errc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
		for sc.Scan() {
			lines <- append([]byte(nil), sc.Bytes()...)
		}
		errc <- sc.Err()
		close(lines)
	}()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return <-errc
			}
			s.Line(l, time.Now())
		case now := <-t.C:
			s.Tick(now)
		}
	}
}

// modulePath is the module path of a go.mod file, or "" if it has none.
func modulePath(gomod string) string {
	data, err := os.ReadFile(gomod)
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(data), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(l), "module "); ok {
			return strings.Trim(strings.TrimSpace(m), `"`)
		}
	}
	return ""
}
