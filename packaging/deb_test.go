package packaging

import (
	"crypto/md5"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The versions of the two builds the test installs, the second an upgrade
// of the first.
const (
	version1 = "1.0.0-1"
	version2 = "1.0.1-1"
)

// calls is where the stub systemctl, deb-systemd-invoke and
// deb-systemd-helper of the throw-away root write their arguments, one
// call a line.
const calls = "/var/log/systemd-calls"

// TestDeb builds the package twice (make deb, two versions), checks the
// first one's contents and its lintian report, then installs it into a
// throw-away root with dpkg --root, upgrades it to the second over a policy
// the admin edited, removes it and purges it, checking the files and the
// calls to systemd at each step. It needs root (dpkg chroots into the root
// to run the maintainer scripts), lintian and a static busybox (make
// test-deps installs them).
func TestDeb(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: dpkg --root runs the maintainer scripts in a chroot, which needs root (CI runs this test as root)")
	}
	out := t.TempDir()
	deb1 := build(t, out, version1)
	deb2 := build(t, out, version2)

	t.Run("contents", func(t *testing.T) { checkContents(t, deb1) })
	t.Run("lintian", func(t *testing.T) { checkLintian(t, deb1) })

	root := newRoot(t)
	dpkg := func(args ...string) string {
		t.Helper()
		truncate(t, filepath.Join(root, calls))
		return run(t, nil, "dpkg", append([]string{"--root=" + root}, args...)...)
	}
	policyFile := filepath.Join(root, "etc/dockerfence/policy.yaml")

	// Install, systemd not running: the unit is neither enabled nor started.
	msg := dpkg("--install", deb1)
	checkStatus(t, root, "install ok installed "+version1)
	for _, f := range []string{"/usr/bin/dockerfence", "/usr/lib/systemd/system/dockerfence.service", "/etc/dockerfence/policy.yaml",
		"/usr/share/man/man8/dockerfence.8.gz", "/usr/share/bash-completion/completions/dockerfence", "/usr/share/doc/dockerfence/copyright"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("installed: %v", err)
		}
	}
	checkCalls(t, root, "deb-systemd-helper unmask dockerfence.service", "deb-systemd-helper update-state dockerfence.service")
	if !strings.Contains(msg, "neither enabled nor started") {
		t.Errorf("the first install does not say the daemon is not started:\n%s", msg)
	}
	checkVersion(t, root, version1)

	// The admin edits the policy; systemd runs. The upgrade restarts the
	// daemon if it runs (try-restart) and keeps the policy.
	edited := readFile(t, policyFile) + "# edited by the admin\n"
	if err := os.WriteFile(policyFile, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "run/systemd/system"), 0o755); err != nil {
		t.Fatal(err)
	}
	msg = dpkg("--install", deb2)
	checkStatus(t, root, "install ok installed "+version2)
	checkVersion(t, root, version2)
	checkCalls(t, root,
		"deb-systemd-helper unmask dockerfence.service",
		"deb-systemd-helper update-state dockerfence.service",
		"systemctl --system daemon-reload",
		"deb-systemd-invoke try-restart dockerfence.service")
	if got := readFile(t, policyFile); got != edited {
		t.Errorf("the upgrade changed the admin's policy:\n%s", got)
	}
	if strings.Contains(msg, "neither enabled nor started") {
		t.Errorf("the upgrade repeats the first install's note:\n%s", msg)
	}
	if left, _ := filepath.Glob(policyFile + ".dpkg-*"); len(left) > 0 {
		t.Errorf("the upgrade left %q", left)
	}

	// Remove stops the daemon and keeps the configuration.
	state := filepath.Join(root, "run/dockerfence/last-apply.json")
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg("--remove", "dockerfence")
	checkStatus(t, root, "deinstall ok config-files "+version2)
	checkCalls(t, root, "deb-systemd-invoke stop dockerfence.service", "systemctl --system daemon-reload")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/dockerfence")); !os.IsNotExist(err) {
		t.Errorf("after remove, /usr/bin/dockerfence: %v", err)
	}
	if got := readFile(t, policyFile); got != edited {
		t.Errorf("remove changed the admin's policy:\n%s", got)
	}

	// Purge removes the configuration and the runtime state: nothing of
	// the package is left.
	dpkg("--purge", "dockerfence")
	checkCalls(t, root, "systemctl --system daemon-reload", "deb-systemd-helper purge dockerfence.service")
	if st := status(t, root); st != "" {
		t.Errorf("after purge, dpkg knows dockerfence: %q", st)
	}
	for _, dir := range []string{"etc/dockerfence", "run/dockerfence"} {
		if _, err := os.Stat(filepath.Join(root, dir)); !os.IsNotExist(err) {
			t.Errorf("after purge, /%s: %v", dir, err)
		}
	}
	for _, f := range files(t, root) {
		if strings.Contains(f, "dockerfence") && !strings.HasPrefix(f, "/var/lib/dpkg/") {
			t.Errorf("after purge, %s is left", f)
		}
	}
}

// build runs make deb for version into dir and returns the package's path.
func build(t *testing.T, dir, version string) string {
	t.Helper()
	out := run(t, []string{"DEB_VERSION=" + version, "DEB_OUT=" + dir}, "make", "--no-print-directory", "-s", "deb")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	deb := lines[len(lines)-1]
	if want := filepath.Join(dir, "dockerfence_"+version+"_"+debArch(t)+".deb"); deb != want {
		t.Fatalf("make deb built %q, want %q", deb, want)
	}
	return deb
}

// debArch is Debian's name of the architecture the test runs on.
func debArch(t *testing.T) string {
	switch runtime.GOARCH {
	case "amd64", "arm64", "riscv64", "s390x":
		return runtime.GOARCH
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	}
	t.Skipf("no Debian architecture known for %s", runtime.GOARCH)
	return ""
}

// checkContents checks the package's files with their modes and owners,
// its control fields, conffiles, maintainer scripts and md5sums, and the
// unit's ExecStart.
func checkContents(t *testing.T, deb string) {
	modes := map[string]string{
		"/usr/bin/dockerfence":                                  "-rwxr-xr-x",
		"/usr/lib/systemd/system/dockerfence.service":           "-rw-r--r--",
		"/etc/dockerfence/policy.yaml":                          "-rw-r--r--",
		"/usr/share/bash-completion/completions/dockerfence":    "-rw-r--r--",
		"/usr/share/zsh/vendor-completions/_dockerfence":        "-rw-r--r--",
		"/usr/share/fish/vendor_completions.d/dockerfence.fish": "-rw-r--r--",
		"/usr/share/doc/dockerfence/copyright":                  "-rw-r--r--",
		"/usr/share/doc/dockerfence/changelog.Debian.gz":        "-rw-r--r--",
		"/usr/share/lintian/overrides/dockerfence":              "-rw-r--r--",
	}
	for _, p := range manPages {
		modes["/usr/share/man/man8/"+p+".8.gz"] = "-rw-r--r--"
	}
	seen := map[string]bool{}
	// dpkg -c: mode owner/group size date time ./path
	for _, line := range strings.Split(strings.TrimSpace(run(t, nil, "dpkg", "-c", deb)), "\n") {
		f := strings.Fields(line)
		if len(f) != 6 {
			t.Errorf("dpkg -c line %q", line)
			continue
		}
		mode, owner, path := f[0], f[1], strings.TrimPrefix(f[5], ".")
		if owner != "root/root" {
			t.Errorf("%s belongs to %s", path, owner)
		}
		if strings.HasSuffix(path, "/") {
			if mode != "drwxr-xr-x" {
				t.Errorf("directory %s: mode %s", path, mode)
			}
			continue
		}
		seen[path] = true
		want, ok := modes[path]
		switch {
		case !ok && strings.HasPrefix(path, "/usr/share/man/man8/dockerfence-") && strings.HasSuffix(path, ".8.gz"):
			want = "-rw-r--r--"
		case !ok:
			t.Errorf("unexpected file %s", path)
			continue
		}
		if mode != want {
			t.Errorf("%s: mode %s, want %s", path, mode, want)
		}
	}
	for path := range modes {
		if !seen[path] {
			t.Errorf("the package lacks %s", path)
		}
	}

	for field, want := range map[string]string{"Package": "dockerfence", "Version": version1, "Architecture": debArch(t), "Section": "admin"} {
		if got := strings.TrimSpace(run(t, nil, "dpkg-deb", "--field", deb, field)); got != want {
			t.Errorf("control field %s: %q, want %q", field, got, want)
		}
	}
	info := run(t, nil, "dpkg-deb", "--info", deb)
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if !strings.Contains(info, "   *  "+s+" ") {
			t.Errorf("dpkg-deb --info: no executable %s:\n%s", s, info)
		}
	}

	dir := t.TempDir()
	run(t, nil, "dpkg-deb", "--raw-extract", deb, dir)
	if got := readFile(t, filepath.Join(dir, "DEBIAN/conffiles")); got != "/etc/dockerfence/policy.yaml\n" {
		t.Errorf("conffiles: %q", got)
	}
	unit := readFile(t, filepath.Join(dir, "usr/lib/systemd/system/dockerfence.service"))
	if !strings.Contains(unit, execStart("/usr/bin/dockerfence")) || strings.Contains(unit, "/usr/local/") {
		t.Errorf("the unit does not run /usr/bin/dockerfence:\n%s", unit)
	}
	// md5sums covers every file but the conffile, with the right sums.
	var summed []string
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, "DEBIAN/md5sums"))), "\n") {
		sum, path, ok := strings.Cut(line, "  ")
		if !ok {
			t.Errorf("md5sums line %q", line)
			continue
		}
		h := md5.Sum([]byte(readFile(t, filepath.Join(dir, path))))
		if hex.EncodeToString(h[:]) != sum {
			t.Errorf("md5sums: wrong sum for %s", path)
		}
		summed = append(summed, "/"+path)
	}
	var want []string
	for path := range seen {
		if !strings.HasPrefix(path, "/etc/") {
			want = append(want, path)
		}
	}
	slices.Sort(want)
	slices.Sort(summed)
	if !slices.Equal(summed, want) {
		t.Errorf("md5sums covers %q, want %q", summed, want)
	}
}

// checkLintian runs lintian on the package: it must report no error.
// Warnings and notes are logged.
func checkLintian(t *testing.T, deb string) {
	if _, err := exec.LookPath("lintian"); err != nil {
		t.Fatal("lintian is not installed: make test-deps installs it")
	}
	out, err := exec.Command("lintian", "--fail-on", "error", deb).CombinedOutput()
	t.Logf("lintian %s:\n%s", filepath.Base(deb), out)
	if err != nil {
		t.Errorf("lintian: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "E: ") {
			t.Errorf("lintian error: %s", line)
		}
	}
}

// newRoot makes a throw-away root for dpkg --root: an empty dpkg database,
// /dev/null, a static busybox as /bin/sh and the few tools the maintainer
// scripts use, and stubs of systemctl, deb-systemd-invoke and
// deb-systemd-helper that record their arguments in calls.
func newRoot(t *testing.T) string {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox is not installed: make test-deps installs busybox-static")
	}
	if f, err := elf.Open(busybox); err != nil {
		t.Fatal(err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Fatalf("%s is dynamically linked; the throw-away root needs busybox-static", busybox)
			}
		}
		f.Close()
	}
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/log", "bin", "usr/bin", "dev", "tmp", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"sh", "rm", "echo", "cat", "[", "test", "true"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", tool)); err != nil {
			t.Fatal(err)
		}
	}
	for _, stub := range []string{"systemctl", "deb-systemd-invoke", "deb-systemd-helper"} {
		src := "#!/bin/sh\necho \"" + stub + " $*\" >>" + calls + "\n"
		if err := os.WriteFile(filepath.Join(root, "usr/bin", stub), []byte(src), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, nil, "mknod", "-m", "0666", filepath.Join(root, "dev/null"), "c", "1", "3")
	return root
}

// truncate empties file, creating it if need be.
func truncate(t *testing.T, file string) {
	t.Helper()
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// status is dpkg's status and version of dockerfence in root, "" if dpkg
// does not know it.
func status(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(root, "var/lib/dpkg"),
		"--show", "--showformat=${Status} ${Version}", "dockerfence").Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// checkStatus checks dpkg's status and version of dockerfence in root.
func checkStatus(t *testing.T, root, want string) {
	t.Helper()
	if got := status(t, root); got != want {
		t.Errorf("dpkg status %q, want %q", got, want)
	}
}

// checkCalls checks the calls of systemd's tools in root since the last
// dpkg command, in order.
func checkCalls(t *testing.T, root string, want ...string) {
	t.Helper()
	got := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(root, calls))), "\n")
	if len(got) == 1 && got[0] == "" {
		got = nil
	}
	if !slices.Equal(got, want) {
		t.Errorf("calls of systemd's tools:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// checkVersion checks that the binary installed in root says version.
func checkVersion(t *testing.T, root, version string) {
	t.Helper()
	out := run(t, nil, filepath.Join(root, "usr/bin/dockerfence"), "--version")
	if !strings.HasPrefix(out, "dockerfence "+version+" ") {
		t.Errorf("the installed dockerfence says %q, want version %s", out, version)
	}
}
