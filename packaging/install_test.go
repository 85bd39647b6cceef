package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMakeInstall installs with DESTDIR and PREFIX, checks where each file
// went and that the unit runs $(PREFIX)/bin/dockerfence, installs again over
// a policy the admin edited, then uninstalls: everything but the policy
// goes, and PURGE=1 removes the policy too. It needs no root.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	tmp := t.TempDir()
	dest := filepath.Join(tmp, "dest")
	vars := []string{"DESTDIR=" + dest, "PREFIX=/opt/df", "BIN=" + filepath.Join(tmp, "dockerfence"), "DOCS=" + filepath.Join(tmp, "docs")}
	make := func(target string, more ...string) string {
		return run(t, nil, "make", append(append([]string{"--no-print-directory", target}, vars...), more...)...)
	}
	make("install")

	var want []string
	for _, p := range manPages {
		want = append(want, "/opt/df/share/man/man8/"+p+".8")
	}
	want = append(want,
		"/etc/dockerfence/policy.yaml",
		"/opt/df/bin/dockerfence",
		"/opt/df/lib/systemd/system/dockerfence.service",
		"/opt/df/share/bash-completion/completions/dockerfence",
		"/opt/df/share/fish/vendor_completions.d/dockerfence.fish",
		"/opt/df/share/zsh/site-functions/_dockerfence",
	)
	got := files(t, dest)
	for _, f := range want {
		if !slices.Contains(got, f) {
			t.Errorf("make install did not write %s", f)
		}
	}
	for _, f := range got {
		if !slices.Contains(want, f) && !strings.HasPrefix(f, "/opt/df/share/man/man8/dockerfence-") {
			t.Errorf("make install wrote %s, which this test does not know", f)
		}
	}
	if t.Failed() {
		t.Fatalf("installed:\n%s", strings.Join(got, "\n"))
	}

	unit := readFile(t, filepath.Join(dest, "opt/df/lib/systemd/system/dockerfence.service"))
	if !strings.Contains(unit, execStart("/opt/df/bin/dockerfence")) || strings.Contains(unit, "/usr/local/bin") {
		t.Errorf("the unit does not run /opt/df/bin/dockerfence:\n%s", unit)
	}
	policyFile := filepath.Join(dest, "etc/dockerfence/policy.yaml")
	def := run(t, nil, filepath.Join(dest, "opt/df/bin/dockerfence"), "policy", "default")
	if got := readFile(t, policyFile); got != def {
		t.Errorf("the installed policy is not the default one:\n%s", got)
	}
	for _, f := range []string{"opt/df/bin/dockerfence", "opt/df/lib/systemd/system/dockerfence.service", "etc/dockerfence/policy.yaml"} {
		fi, err := os.Stat(filepath.Join(dest, f))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]os.FileMode{true: 0o755, false: 0o644}[strings.HasSuffix(f, "bin/dockerfence")]; fi.Mode().Perm() != want {
			t.Errorf("/%s: mode %v, want %v", f, fi.Mode().Perm(), want)
		}
	}

	// Installing again keeps the admin's policy.
	edited := def + "# edited by the admin\n"
	if err := os.WriteFile(policyFile, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	make("install")
	if got := readFile(t, policyFile); got != edited {
		t.Errorf("make install replaced the admin's policy:\n%s", got)
	}

	out := make("uninstall")
	if got := files(t, dest); !slices.Equal(got, []string{"/etc/dockerfence/policy.yaml"}) {
		t.Errorf("after make uninstall, left: %q; want only the policy", got)
	}
	if !strings.Contains(out, "kept "+policyFile) {
		t.Errorf("make uninstall does not say it kept the policy:\n%s", out)
	}
	make("uninstall", "PURGE=1")
	if got := files(t, dest); len(got) != 0 {
		t.Errorf("after make uninstall PURGE=1, left: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/dockerfence")); !os.IsNotExist(err) {
		t.Errorf("after make uninstall PURGE=1, /etc/dockerfence: %v", err)
	}
}
