package nft

import (
	"os"
	"strings"
	"testing"
)

// The owner of a table is named by its process when its netlink port is
// a process ID, as nft names it.
func TestProtectionText(t *testing.T) {
	if OwnerProcess(0) != "" || OwnerProcess(1<<31) != "" {
		t.Error("a port that is no process ID names a process")
	}
	self := uint32(os.Getpid())
	st := &State{Flags: FlagOwner | FlagPersist, Owner: self}
	if p := st.Protection(); !strings.Contains(p, "owned by netlink port") || !strings.Contains(p, OwnerProcess(self)) || OwnerProcess(self) == "" {
		t.Errorf("Protection = %q", p)
	}
	for flags, want := range map[TableFlags]string{
		FlagPersist:               "persistent without an owner (flags persist)",
		0:                         "an ordinary table (flags none)",
		FlagPersist | FlagDormant: "flags dormant,persist",
	} {
		if p := (&State{Flags: flags}).Protection(); !strings.Contains(p, want) {
			t.Errorf("Protection of flags %s = %q, want %q in it", flags, p, want)
		}
	}
}
