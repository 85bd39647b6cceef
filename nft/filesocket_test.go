package nft_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	. "github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"
	"golang.org/x/sys/unix"
)

// TestSocketFileKeepsTableOwned plays systemd's file descriptor store in a
// network namespace: a lasting Kernel applies an owned table and hands a
// copy of its socket to the "store", then closes (the daemon is killed).
// While the store holds the socket, "nft flush ruleset" and "nft delete
// table" leave the table alone; a Kernel opened on the stored socket owns
// it (same port) and changes it; once every copy is closed the table is
// orphaned, and the flush removes it.
func TestSocketFileKeepsTableOwned(t *testing.T) {
	ns, one := nfttest.NetNS(t)
	k1, err := OpenKernel(Options{NetNS: one.NetNS})
	if err != nil {
		t.Fatal(err)
	}
	p1, err := k1.Protection()
	if err != nil {
		t.Fatal(err)
	}
	if p1.Flags != FlagOwner|FlagPersist {
		k1.Close()
		t.Skipf("this kernel cannot own a table: %s", p1.Why)
	}
	from, to := nfttest.Sample(), nfttest.Changed()
	if _, err := k1.Apply(from); err != nil {
		t.Fatal(err)
	}
	stored, err := k1.SocketFile()
	if err != nil {
		t.Fatal(err)
	}
	defer stored.Close()
	if err := k1.Close(); err != nil {
		t.Fatal(err)
	}

	nfttest.NFT(t, ns, "", "flush", "ruleset")
	if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", from.Name).CombinedOutput(); err == nil {
		t.Errorf("nft delete table succeeded while the store held the owning socket: %s", out)
	}
	if l := nfttest.Listing(t, ns, from.Name); !strings.Contains(l, "chain") {
		t.Fatalf("the table went while the store held its owner's socket:\n%s", l)
	}

	k2, err := OpenKernel(Options{Socket: stored})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := k2.Protection()
	if err != nil {
		t.Fatal(err)
	}
	if p2.Port != p1.Port || p2.Flags != p1.Flags {
		t.Errorf("the inherited socket's protection = %+v; want %+v", p2, p1)
	}
	if changed, err := k2.Apply(to); err != nil || !changed {
		t.Fatalf("apply over the inherited socket: changed %v, %v", changed, err)
	}
	if p, err := k2.Plan(to); err != nil || !p.Empty() {
		t.Errorf("plan over the inherited socket after apply: %v, %v", p, err)
	}
	if err := stored.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k2.Close(); err != nil {
		t.Fatal(err)
	}
	nfttest.NFT(t, ns, "", "flush", "ruleset")
	if out := nfttest.NFT(t, ns, "", "list", "tables"); strings.Contains(out, from.Name) {
		t.Errorf("the orphaned table survived a flush: %s", out)
	}
}

// TestSocketFileRefusesOtherSockets requires that a descriptor that is not
// an nf_tables netlink socket is refused with a reason, not used.
func TestSocketFileRefusesOtherSockets(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if _, err := OpenKernel(Options{Socket: r}); err == nil || !strings.Contains(err.Error(), "inherited nf_tables socket") {
		t.Errorf("OpenKernel on a pipe = %v; want an error about the inherited socket", err)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	route := os.NewFile(uintptr(fd), "rtnetlink")
	defer route.Close()
	if _, err := OpenKernel(Options{Socket: route}); err == nil || !strings.Contains(err.Error(), "not a netlink netfilter socket") {
		t.Errorf("OpenKernel on an rtnetlink socket = %v; want it refused as not netfilter", err)
	}
}
