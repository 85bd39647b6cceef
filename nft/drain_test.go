package nft

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// testNS creates a network namespace for the test, deleted at its end, and
// returns a file descriptor of it. It skips the test without root.
func testNS(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "dfnftc-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// Answers left in the socket by an exchange that ended early are dropped
// before the next one, which gets its own answers.
func TestStaleAnswersDrained(t *testing.T) {
	c, err := dialConn(testNS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	// Two requests whose answers are never read, and a batch refused as
	// a whole would leave: an error for its begin and more.
	for range 2 {
		req := netlink.Message{Header: netlink.Header{Type: nftType(unix.NFT_MSG_GETGEN), Flags: netlink.Request | netlink.Acknowledge, Sequence: c.next()},
			Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0}}
		if _, err := c.c.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	c.stale = true
	st, err := read(c, FamilyInet, "nothing-here")
	if err != nil || st != nil {
		t.Fatalf("read after stale answers = %v, %v", st, err)
	}
	tx := &Transaction{Table: "t", Ops: []Op{{Kind: OpAddTable}, {Kind: OpAddChain, Name: "c"}}}
	enc, err := encode(tx)
	if err != nil {
		t.Fatal(err)
	}
	ans, err := c.batch(enc.msgs)
	if err != nil || len(ans.refused) != 0 {
		t.Fatalf("batch after stale answers = %+v, %v", ans, err)
	}
	st, err = read(c, FamilyInet, "t")
	if err != nil || st == nil || len(st.Chains) != 1 {
		t.Fatalf("read = %+v, %v; want table t with chain c", st, err)
	}
}
