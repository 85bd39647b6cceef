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
// do on this kernel, and why dockerfence does not use them: the README's
// paragraph on them rests on this test.
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
	// 4. persist: when the owner's socket closes, the table stays, without
	// an owner, and any process can delete it.
	c.Close()
	if !present() {
		t.Fatal("a persist table went away with its owner's socket")
	}
	ns.Run(t, "nft", "delete", "table", "inet", "owned")
	if present() {
		t.Error("the orphaned table could not be deleted")
	}
	t.Log("owner: flush ruleset and other processes cannot touch the table; persist: it outlives its owner's socket; " +
		"google/nftables cannot send table flags nor use the owner's socket, so dockerfence does not set them")
}
