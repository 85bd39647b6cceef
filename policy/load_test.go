package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrDefault(t *testing.T) {
	dir := t.TempDir()
	opts := Options{ResolvConf: os.DevNull}
	missing := filepath.Join(dir, "missing.yaml")
	p, err := loadOrDefault("", missing, opts)
	if err != nil || p.Source != DefaultName {
		t.Errorf("no file and no default file: %v, source %q; want the embedded default", err, p.Source)
	}
	if got, want := p.Origin(), "embedded default ("+missing+" absent)"; got != want {
		t.Errorf("the embedded default in place of a missing file: origin %q, want %q", got, want)
	}
	if d, err := Default(opts); err != nil || d.Origin() != "embedded default" {
		t.Errorf("Default: origin %q (%v), want the embedded default without a missing file", d.Origin(), err)
	}

	def := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(def, []byte("version: 1\nnetworks:\n  - match: {bridge: br-x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := loadOrDefault("", def, opts); err != nil || p.Source != def || p.Origin() != def {
		t.Errorf("no file, a default file: %v, %+v; want the default file", err, p)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 2\nnetworks:\n  - match: {nmae: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = loadOrDefault(bad, def, opts)
	var nl *NotLoadedError
	if !errors.As(err, &nl) || !errors.As(err, new(ErrorList)) {
		t.Fatalf("invalid file: %v (%T), want a *NotLoadedError wrapping an ErrorList", err, err)
	}
	lines := strings.Split(err.Error(), "\n")
	if lines[0] != "policy not loaded, nothing changed:" || len(lines) != 3 || !strings.HasPrefix(lines[1], bad+":1:") || !strings.HasPrefix(lines[2], bad+":3:") {
		t.Errorf("invalid file's error:\n%s\nwant the header, then one problem a line", err)
	}

	_, err = loadOrDefault(missing, def, opts)
	if err == nil || errors.As(err, &nl) || !strings.HasPrefix(err.Error(), "policy "+missing+": ") {
		t.Errorf("missing file: %v, want a plain error naming it", err)
	}
}
