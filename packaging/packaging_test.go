// Package packaging holds the tests of what installs dockerfence: make
// install and make uninstall (install_test.go), and the Debian package that
// make deb builds (deb_test.go).
package packaging

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repo is the repository's root, the directory of the Makefile.
const repo = ".."

// run runs name with args in the repository's root and returns its standard
// output; it fails the test with the whole output if the command fails.
func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = repo
	// A make above go test (make check) must not hand its flags and
	// variables to the make of the test.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return name == "MAKEFLAGS" || name == "MFLAGS" || name == "MAKELEVEL"
	})
	cmd.Env = append(cmd.Env, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// files lists the files and symbolic links under dir, as paths relative to
// it with a leading slash, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var list []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		list = append(list, "/"+rel)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(list)
	return list
}

// readFile returns the content of file, failing the test if it cannot.
func readFile(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// manPages are the man pages of dockerfence and of the subcommands a test
// expects at least, by their names without the section's suffix.
var manPages = []string{"dockerfence", "dockerfence-apply", "dockerfence-check", "dockerfence-completion",
	"dockerfence-delete", "dockerfence-explain", "dockerfence-logs", "dockerfence-plan", "dockerfence-policy",
	"dockerfence-policy-default", "dockerfence-run", "dockerfence-status", "dockerfence-version"}

// execStart is the unit's ExecStart line for the binary bin.
func execStart(bin string) string { return "\nExecStart=" + bin + " run\n" }
