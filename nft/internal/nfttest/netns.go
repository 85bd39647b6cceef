package nfttest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/nft"
)

// NetNS creates a network namespace for the test, deleted at its end, and
// returns its name and the Kernel that works in it. It skips the test
// without root or without the ip and nft programs. Nothing here touches
// the namespace the test runs in.
func NetNS(t *testing.T) (string, nft.Kernel) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	for _, prog := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("needs %s: %v", prog, err)
		}
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "dfnft-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	f, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return name, nft.Kernel{NetNS: int(f.Fd())}
}

// NFT runs nft with args in the namespace, stdin as its input.
func NFT(t *testing.T, ns, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s in %s: %v\n%s\ninput:\n%s", strings.Join(args, " "), ns, err, out, stdin)
	}
	return string(out)
}

// expires drops what changes with time in a listing: elements' expiry.
var expires = regexp.MustCompile(` expires [0-9a-z]+`)

// tableFlags drops the table's flags from a listing, and the comment nft
// adds to an owned table: a table that Kernel creates has flag persist
// (which nft 1.0.6 lists as an empty "flags"), one from nft -f has none.
var tableFlags = regexp.MustCompile(`(?m)^\tflags [a-z, ]*\n\n?| # progname \S+`)

// Listing returns the table as nft lists it, without what changes with
// time (when elements expire) and without its flags and owner.
func Listing(t *testing.T, ns, table string) string {
	t.Helper()
	return tableFlags.ReplaceAllString(expires.ReplaceAllString(NFT(t, ns, "", "list", "table", "inet", table), ""), "")
}
