package integration

import (
	"errors"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Table flags of Linux (include/uapi/linux/netfilter/nf_tables.h).
const (
	tableFlagOwner   = 0x2 // NFT_TABLE_F_OWNER, Linux 5.12
	tableFlagPersist = 0x4 // NFT_TABLE_F_PERSIST, Linux 6.9
)

// newTableBatch sends one transaction that creates (or updates) inet table
// name with flags, on c, and returns the kernel's answer.
func newTableBatch(c *netlink.Conn, name string, flags uint32) error {
	msg, err := harness.NFTMsg(unix.NFT_MSG_NEWTABLE, netlink.Acknowledge|netlink.Create, []netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: append([]byte(name), 0)},
		{Type: unix.NFTA_TABLE_FLAGS, Data: harness.BE32(flags)},
	})
	if err != nil {
		return err
	}
	return harness.NFTBatch(c, msg)
}

// TestTableOwnerPersistFlags records what the owner and persist table flags
// do on this kernel, what nft.Kernel's owned table (see OwnAuto) rests on,
// and why google/nftables could not keep one: the README's paragraphs on
// them rest on this test.
func TestTableOwnerPersistFlags(t *testing.T) {
	tp := topo.New(t)
	ns := tp.Host
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(ns.Handle())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := newTableBatch(c, "owned", tableFlagOwner|tableFlagPersist); err != nil {
		var uname unix.Utsname
		unix.Uname(&uname)
		t.Fatalf("kernel %s refuses a table with flags owner,persist: %v", unix.ByteSliceToString(uname.Release[:]), err)
	}
	present := func() bool {
		out, err := ns.Try("nft", "list", "tables")
		return err == nil && strings.Contains(out, "table inet owned")
	}
	// 1. nft flush ruleset skips an owned table, and nft cannot delete it.
	ns.Run(t, "nft", "flush", "ruleset")
	if !present() {
		t.Fatal("nft flush ruleset removed an owned table")
	}
	if _, err := ns.Try("nft", "delete", "table", "inet", "owned"); err == nil || !present() {
		t.Fatalf("another process deleted an owned table (err %v)", err)
	}
	// 2. google/nftables works on a socket of its own: the owned table
	// refuses every change from it, so its batches cannot maintain the table.
	gc, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle())))
	if err != nil {
		t.Fatal(err)
	}
	gc.AddChain(&nftables.Chain{Name: "c", Table: &nftables.Table{Name: "owned", Family: nftables.TableFamilyINet}})
	if err := gc.Flush(); !errors.Is(err, unix.EPERM) {
		t.Errorf("google/nftables changed the owned table from its own socket, or failed otherwise: %v", err)
	}
	// 3. Even on the owner's socket, a NEWTABLE with flags 0 (what
	// google/nftables' AddTable always sends) is refused.
	if err := newTableBatch(c, "owned", 0); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("NEWTABLE with flags 0 on the owned table: %v, want EOPNOTSUPP", err)
	}
	// Nor can the owner make its own table dormant.
	if err := newTableBatch(c, "owned", tableFlagOwner|tableFlagPersist|unix.NFT_TABLE_F_DORMANT); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("the owner made its table dormant: %v, want EOPNOTSUPP", err)
	}
	// 4. persist: when the owner's socket closes, the table stays, without
	// an owner (orphaned); any process can change it then, but no update
	// may remove flag persist (EOPNOTSUPP, which is also what nft 1.0.6's
	// "add table" gets: it asks for no flags).
	c.Close()
	if !present() {
		t.Fatal("a persist table went away with its owner's socket")
	}
	o, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(ns.Handle())})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := newTableBatch(o, "owned", 0); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("flags none on the orphaned table: %v, want EOPNOTSUPP", err)
	}
	if err := newTableBatch(o, "owned", tableFlagPersist|unix.NFT_TABLE_F_DORMANT); err != nil {
		t.Errorf("another process cannot make the orphaned table dormant: %v", err)
	}
	// 5. Adoption: a NEWTABLE with flags owner and persist from another
	// socket takes the orphaned table (and clears dormant): from then on
	// only that socket can change it.
	if err := newTableBatch(o, "owned", tableFlagOwner|tableFlagPersist); err != nil {
		t.Fatalf("adopt the orphaned table: %v", err)
	}
	if out := ns.Run(t, "nft", "list", "table", "inet", "owned"); !strings.Contains(out, "flags owner") || strings.Contains(out, "dormant") {
		t.Errorf("after adoption the table lists as:\n%s", out)
	}
	if _, err := ns.Try("nft", "delete", "table", "inet", "owned"); err == nil {
		t.Error("another process deleted the adopted table")
	}
	// 6. An ordinary table can take neither flag: an owned table must be
	// created so.
	if err := newTableBatch(o, "plain", 0); err != nil {
		t.Fatal(err)
	}
	for _, f := range []uint32{tableFlagOwner, tableFlagPersist, tableFlagOwner | tableFlagPersist} {
		if err := newTableBatch(o, "plain", f); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("flags %#x on an ordinary table: %v, want EOPNOTSUPP", f, err)
		}
	}
	// 7. Manual recovery: once its owner's socket is closed, nft deletes
	// the orphaned table.
	o.Close()
	ns.Run(t, "nft", "delete", "table", "inet", "owned")
	if present() {
		t.Error("the orphaned table could not be deleted")
	}
	t.Log("owner: flush ruleset and other processes cannot touch the table; persist: it outlives its owner's socket, " +
		"orphaned, until a socket adopts it with flags owner,persist; google/nftables cannot send table flags nor keep " +
		"the owner's socket, so nft.Kernel sends its batches itself")
}
