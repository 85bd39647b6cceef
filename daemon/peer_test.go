package daemon

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHasCap(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		capEff string
		want   bool
	}{
		{"0000000000001000", true},
		{"000001ffffffffff", true},
		{"0000000000000000", false},
		{"0000000000000400", false},
	} {
		p := filepath.Join(dir, "status")
		if err := os.WriteFile(p, []byte("Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t"+tt.capEff+"\nCapBnd:\t000001ffffffffff\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := hasCap(p, capNetAdmin); got != tt.want {
			t.Errorf("CapEff %s: hasCap = %v, want %v", tt.capEff, got, tt.want)
		}
	}
	if hasCap(filepath.Join(dir, "missing"), capNetAdmin) {
		t.Error("a missing status file gives the capability")
	}
	if (Peer{Uid: 1000}).Privileged() || !(Peer{Uid: 0}).Privileged() || !(Peer{Uid: 1000, NetAdmin: true}).Privileged() {
		t.Error("Privileged is wrong")
	}
}
