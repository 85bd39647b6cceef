package fence

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// namesKernelPolicy allows the names list github on port 443 (the tests
// give it names) and DNS to the LAN's server, and denies the rest.
const namesKernelPolicy = `version: 1
lists:
  github: []
networks:
  - match: {bridge: br-test}
    egress:
      - allow: self
      - allow: 192.168.100.2
        ports: [53]
      - allow: "@github"
        proto: tcp
        ports: [443]
    egress_default: deny
`

// TestNamesInTheKernel applies a names table in the host namespace of a
// test topology (package integration/topo: a container behind bridge
// br-test, a LAN with a DNS server) and sends real packets: DNS answers
// from the LAN (forward hook) and from a resolver on the host (output
// hook) are queued and, with no program bound, pass (bypass), counted by
// the hold rules; a destination is refused until it is learned, then
// allowed on the rule's port only, kept by a verifying apply, and refused
// again once its timeout passed.
func TestNamesInTheKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	withNames(t, map[string][]string{"github": {"github.com", "*.github.com"}})
	tp := topo.New(t)
	nets := []policy.Network{{Name: "test", Bridge: topo.BridgeName, Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16"), netip.MustParsePrefix("fd00:20::/64")}}}
	res := Compile(parsePolicy(t, namesKernelPolicy), nets)
	f, err := os.Open(tp.Host.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k := nft.Kernel{NetNS: int(f.Fd())}
	if _, err := k.Apply(res.Table); err != nil {
		t.Fatal(err)
	}
	if p, err := k.Plan(res.Table); err != nil || !p.Empty() {
		t.Fatalf("plan after apply = %v, %v", p, err)
	}
	tp.LAN.ListenUDP(t, topo.LANDNS4+":53")
	tp.Host.ListenUDP(t, topo.HostBridge4+":53")
	tp.LAN.ListenTCP(t, topo.LANDB4+":443")
	tp.LAN.ListenTCP(t, topo.LANDB4+":80")
	exchange := func(addr string, n int) int {
		got := 0
		for i := range n {
			ok, err := tp.Ctr.UDPExchange(addr, fmt.Appendf(nil, "answer %d", i), time.Second)
			if err != nil {
				t.Fatalf("%s: %v", addr, err)
			}
			if ok {
				got++
			}
		}
		return got
	}
	const n = 20
	if got := exchange(topo.LANDNS4+":53", n); got != n {
		t.Errorf("DNS from the LAN: %d of %d answers arrived", got, n)
	}
	if got := exchange(topo.HostBridge4+":53", n); got != n {
		t.Errorf("DNS from the host: %d of %d answers arrived", got, n)
	}
	st, err := k.Read(res.Name)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]uint64{}
	for _, c := range st.Chains {
		for _, r := range c.Rules {
			if r.ID == DNSHoldRuleID {
				held[c.Name] += r.Packets
			}
		}
	}
	if held["forward"] != n || held["output"] != n {
		t.Errorf("answers held: %v, want %d in forward and in output", held, n)
	}
	dial := func(port int) error {
		c, err := tp.Ctr.DialTCP(fmt.Sprintf("%s:%d", topo.LANDB4, port), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(443); !topo.IsRefused(err) {
		t.Errorf("443 before learning: %v, want refused", err)
	}
	learned := []nft.Element{{Prefix: netip.MustParsePrefix(topo.LANDB4 + "/32"), Timeout: 3 * time.Second}}
	if err := k.Update(res.Name, NameSetName("github", false), learned, nil); err != nil {
		t.Fatal(err)
	}
	if err := dial(443); err != nil {
		t.Errorf("443 once learned: %v", err)
	}
	if err := dial(80); !topo.IsRefused(err) {
		t.Errorf("80 once learned: %v, want refused", err)
	}
	// Learned elements are no drift: status's diff, a plan and a
	// verifying apply (the daemon's resync) leave them be.
	if st, err := k.ReadAll(res.Name); err != nil {
		t.Fatal(err)
	} else if d := nft.Diff(res.Table, st); len(d) != 0 {
		t.Errorf("Diff with a learned element = %q, want none", d)
	}
	if p, err := k.Plan(res.Table, NameSetName("github", false)); err != nil || !p.Empty() {
		t.Errorf("plan with a learned element = %v, %v; want empty", p, err)
	}
	if changed, err := k.Verify(res.Table); err != nil || changed {
		t.Fatalf("Verify = %v, %v; want no change", changed, err)
	}
	if err := dial(443); err != nil {
		t.Errorf("443 after a verifying apply: %v", err)
	}
	time.Sleep(3500 * time.Millisecond)
	if err := dial(443); !topo.IsRefused(err) {
		t.Errorf("443 after the timeout: %v, want refused", err)
	}
	t.Logf("answers: %d+%d of %d+%d arrived, held %v", n, n, n, n, held)
}
