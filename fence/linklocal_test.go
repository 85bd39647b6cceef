package fence

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/ipproto"
	"github.com/dockerfence/dockerfence/nft"
)

// TestLinkLocalControlTrace traces, through the compiled table, the IPv6
// link-local control traffic a container's kernel sends when its
// interface comes up, bridged to a neighbour (forward hook) and to the
// host (input hook): it passes by the base chains' link-local control
// rules, before the network's anti-spoofing and the container layer's
// hold of link-local sources. Every near miss (another type, hop limit,
// destination, source or family) is not passed by them: in the forward
// hook the container layer holds its link-local source, and the network
// denies the unspecified one as spoofed. On a bridge not known yet, where
// the container layer holds every source, the start passes too.
func TestLinkLocalControlTrace(t *testing.T) {
	pol := loadPolicy(t, "testdata/containers.yaml")
	r := CompileContainers(pol, testNetworks, testContainers)
	a := netip.MustParseAddr
	const br = "br-0123456789ab"
	ll, unspec, global := "fe80::13", "::", "fd00:20::10"
	for _, tc := range []struct {
		name      string
		src, dst  string
		typ, hop  uint8
		proto     uint8 // ipproto.ICMPv6 if 0
		passed    bool  // by the link-local control rules (forward and input)
		forwardBy string
	}{
		{"MLDv2 report", ll, "ff02::16", 143, 1, 0, true, ""},
		{"MLDv2 report from ::", unspec, "ff02::16", 143, 1, 0, true, ""},
		{"MLDv1 report", ll, "ff02::1:ff00:13", 131, 1, 0, true, ""},
		{"MLDv1 done", ll, "ff02::2", 132, 1, 0, true, ""},
		{"router solicitation", ll, "ff02::2", 133, 255, 0, true, ""},
		{"router solicitation from ::", unspec, "ff02::2", 133, 255, 0, true, ""},
		{"duplicate address detection", unspec, "ff02::1:ff00:13", 135, 255, 0, true, ""},
		{"neighbour solicitation from the link-local address", ll, "ff02::1:ff00:12", 135, 255, 0, false, ""},
		{"duplicate address detection, hop limit 254", unspec, "ff02::1:ff00:13", 135, 254, 0, false, "fwd_br-0123456789ab.spoof"},
		{"duplicate address detection to ff02::1", unspec, "ff02::1", 135, 255, 0, false, ""},
		{"MLDv2 report, hop limit 2", ll, "ff02::16", 143, 2, 0, false, "fwdc_br-0123456789ab.held"},
		{"MLDv2 report from ::, hop limit 2", unspec, "ff02::16", 143, 2, 0, false, "fwd_br-0123456789ab.spoof"},
		{"MLDv2 report to ff02::1", ll, "ff02::1", 143, 1, 0, false, "fwdc_br-0123456789ab.held"},
		{"MLDv2 report to ff05::16", ll, "ff05::16", 143, 1, 0, false, "fwdc_br-0123456789ab.held"},
		{"MLDv1 report to ff0e::1", ll, "ff0e::1", 131, 1, 0, false, "fwdc_br-0123456789ab.held"},
		{"MLDv2 report from a global address", global, "ff02::16", 143, 1, 0, false, ""},
		{"MLD query", ll, "ff02::1", 130, 1, 0, false, "fwdc_br-0123456789ab.held"},
		{"router solicitation, hop limit 64", ll, "ff02::2", 133, 64, 0, false, "fwdc_br-0123456789ab.held"},
		{"router solicitation to ff02::1", ll, "ff02::1", 133, 255, 0, false, "fwdc_br-0123456789ab.held"},
		{"router advertisement", ll, "ff02::1", 134, 255, 0, false, "fwdc_br-0123456789ab.held"},
		{"echo request to ff02::1", ll, "ff02::1", 128, 1, 0, false, "fwdc_br-0123456789ab.held"},
		{"UDP to ff02::16", ll, "ff02::16", 143, 1, ipproto.UDP, false, "fwdc_br-0123456789ab.held"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proto := tc.proto
			if proto == 0 {
				proto = ipproto.ICMPv6
			}
			for _, hook := range []nft.Hook{nft.HookForward, nft.HookInput} {
				p := nft.Packet{Hook: hook, IIfName: br, Src: a(tc.src), Dst: a(tc.dst), L4Proto: proto, ICMPType: tc.typ, HopLimit: tc.hop, Untracked: true, NDTarget: a("fe80::99")}
				if proto != ipproto.ICMPv6 {
					p.ICMPType = 0
				}
				if hook == nft.HookForward {
					p.OIfName = br // bridged to a neighbour (br_netfilter)
				}
				tr, err := r.Table.Trace(p)
				if err != nil {
					t.Fatal(err)
				}
				passed := false
				for _, s := range tr.Matched() {
					passed = passed || s.Rule.ID == LinkLocalControlRuleID
				}
				if hook == nft.HookInput && (tc.typ == 133 || tc.typ == 135) && tc.hop == 255 && proto == ipproto.ICMPv6 {
					// Neighbour discovery of the input hook passes router
					// and neighbour solicitations to the host, as before.
					if tr.Verdict != nft.Accept {
						t.Errorf("input: neighbour discovery denied\n%s", tr)
					}
					continue
				}
				if passed != tc.passed || passed && tr.Verdict != nft.Accept {
					t.Errorf("%v: passed by the link-local control rules: %v, verdict %v; want %v\n%s", hook, passed, tr.Verdict, tc.passed, tr)
				}
				if hook == nft.HookForward && tc.forwardBy != "" && (tr.Verdict == nft.Accept || !strings.Contains(tr.String(), tc.forwardBy)) {
					t.Errorf("forward: want it denied by %s\n%s", tc.forwardBy, tr)
				}
			}
		})
	}
	// An IPv4 packet of protocol 58 with the fields of an MLD report is
	// not IPv6.
	tr, err := r.Table.Trace(nft.Packet{Hook: nft.HookForward, IIfName: br, OIfName: br, Src: a("172.20.0.99"), Dst: a("224.0.0.22"), L4Proto: ipproto.ICMPv6, ICMPType: 143, Untracked: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range tr.Matched() {
		if s.Rule.ID == LinkLocalControlRuleID {
			t.Errorf("an IPv4 packet of protocol 58 passed as MLD:\n%s", tr)
		}
	}
	// On a bridge not known yet the container layer holds every source:
	// the start passes all the same, the rest is held.
	const unknown = "br-fedcba987654"
	for _, tc := range []struct {
		name     string
		src, dst string
		typ, hop uint8
		passed   bool
	}{
		{"MLDv2 report", ll, "ff02::16", 143, 1, true},
		{"router solicitation", ll, "ff02::2", 133, 255, true},
		{"duplicate address detection", unspec, "ff02::1:ff00:13", 135, 255, true},
		{"neighbour solicitation from the link-local address", ll, "ff02::1:ff00:12", 135, 255, false},
		{"echo request to ff02::1", ll, "ff02::1", 128, 1, false},
	} {
		tr, err := r.Table.Trace(nft.Packet{Fib: nft.FibAnswers{SrcViaIIf: true}, Hook: nft.HookForward, IIfName: unknown, OIfName: unknown, Src: a(tc.src), Dst: a(tc.dst), L4Proto: ipproto.ICMPv6, ICMPType: tc.typ, HopLimit: tc.hop, Untracked: true, NDTarget: a("fe80::99")})
		if err != nil {
			t.Fatal(err)
		}
		if held := strings.Contains(tr.String(), "fwdc_unknown.held"); tc.passed != (tr.Verdict == nft.Accept) || tc.passed == held {
			t.Errorf("a bridge not known yet, %s: verdict %v; want passed %v, else held\n%s", tc.name, tr.Verdict, tc.passed, tr)
		}
	}
}
