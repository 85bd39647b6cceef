package fence

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/policy"
	"github.com/google/go-cmp/cmp"
)

// compileSource compiles a policy given as text for the test networks.
func compileSource(t *testing.T, src string, nets []policy.Network) *Result {
	t.Helper()
	pol, err := policy.Parse("p.yaml", []byte(src), policy.Options{ResolvConf: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	return Compile(pol, nets)
}

// TestFamilyWarnings checks the warning of a network whose deny rules
// cover one address family while it has subnets of the other.
func TestFamilyWarnings(t *testing.T) {
	dual := []policy.Network{{Name: "app_default", Bridge: "br-app", Subnets: prefixes("172.20.0.0/16", "fd00:20::/64")}}
	v4only := []policy.Network{{Name: "v4", Bridge: "br-v4", Subnets: prefixes("172.21.0.0/16")}}
	v6only := []policy.Network{{Name: "v6", Bridge: "br-v6", Subnets: prefixes("fd00:21::/64", "fd00:22::/64")}}
	head := "version: 1\nnetworks:\n  - match: {name: \"*\"}\n"
	tests := []struct {
		name, policy string
		nets         []policy.Network
		want         []string
	}{
		{"field report on a dual-stack network", head + "    egress:\n      - allow: self\n      - deny: 192.168.0.0/16\n    egress_default: allow\n", dual, []string{
			`network app_default: its IPv6 subnet fd00:20::/64 has no IPv6 deny rule in section 1 egress, whose deny rules cover IPv4 only and whose egress_default is allow: IPv6 traffic from it to anywhere but this host is not fenced`,
		}},
		{"field report on an IPv4 network", head + "    egress:\n      - deny: 192.168.0.0/16\n", v4only, nil},
		{"IPv6 denies on an IPv4 network", head + "    egress:\n      - deny: \"fd00:100::/64\"\n", v4only, []string{
			`network v4: its IPv4 subnet 172.21.0.0/16 has no IPv4 deny rule in section 1 egress, whose deny rules cover IPv6 only and whose egress_default is allow: IPv4 traffic from it to anywhere but this host is not fenced`,
		}},
		{"IPv4 host denies on an IPv6 network", head + "    host:\n      - deny: 10.0.0.1\n        proto: tcp\n", v6only, []string{
			`network v6: its IPv6 subnets fd00:21::/64, fd00:22::/64 have no IPv6 deny rule in section 1 host, whose deny rules cover IPv4 only and whose host_default is allow: IPv6 traffic from it to this host is not fenced`,
		}},
		{"embedded default", "", dual, nil},
		{"both families", head + "    egress:\n      - deny: [192.168.0.0/16, \"fd00::/8\"]\n", dual, nil},
		{"deny any", head + "    egress:\n      - deny: any\n        ports: [25]\n", dual, nil},
		{"icmp only", head + "    egress:\n      - deny: any\n        proto: icmp\n", dual, []string{
			`network app_default: its IPv6 subnet fd00:20::/64 has no IPv6 deny rule in section 1 egress, whose deny rules cover IPv4 only and whose egress_default is allow: IPv6 traffic from it to anywhere but this host is not fenced`,
		}},
		{"default deny", head + "    egress:\n      - deny: 192.168.0.0/16\n    egress_default: deny\n", dual, nil},
		{"self", head + "    egress:\n      - deny: self\n", dual, nil},
		{"no deny rule", head + "    egress:\n      - allow: 10.0.0.1\n", dual, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r *Result
			if tt.policy == "" {
				r = Compile(loadPolicy(t, ""), tt.nets)
			} else {
				r = compileSource(t, tt.policy, tt.nets)
			}
			if diff := cmp.Diff(tt.want, r.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTunnelWarnings checks the warnings of host rules that let tunnels
// in explicitly, and of a tunnel fence turned off.
func TestTunnelWarnings(t *testing.T) {
	nets := []policy.Network{{Name: "app_default", Bridge: "br-app", Subnets: prefixes("172.20.0.0/16")}}
	head := "version: 1\nnetworks:\n  - match: {name: \"*\"}\n"
	tests := []struct {
		name, policy string
		want         []string
	}{
		{"embedded default", "", nil},
		{"VXLAN port", head + "    host:\n      - allow: any\n        proto: udp\n        ports: [53, \"4000-5000\", 51820]\n", []string{
			`network app_default (section 1): host 1 allows udp/4754 (GRE-in-UDP), udp/4789 (VXLAN), udp/51820 (WireGuard) to this host explicitly, so what a tunnel endpoint there decapsulates from the containers' packets is not fenced; the tunnel fence covers only what host_default allows`,
			`bridges not known yet (section 1): host 1 allows udp/4754 (GRE-in-UDP), udp/4789 (VXLAN), udp/51820 (WireGuard) to this host explicitly, so what a tunnel endpoint there decapsulates from the containers' packets is not fenced; the tunnel fence covers only what host_default allows`,
		}},
		{"DNS only", head + "    host:\n      - allow: any\n        ports: [53]\n      - deny: any\n        ports: [4789]\n", nil},
		{"every protocol", "version: 1\nnetworks:\n  - match: {name: app_default}\n    host:\n      - allow: self\n    host_default: deny\n", []string{
			`network app_default (section 1): host 1 allows every protocol (GRE, IPIP and UDP tunnels on any port) to this host explicitly, so what a tunnel endpoint there decapsulates from the containers' packets is not fenced; the tunnel fence covers only what host_default allows`,
		}},
		{"every UDP port", "version: 1\nnetworks:\n  - match: {name: app_default}\n    host:\n      - allow: any\n        proto: udp\n", []string{
			`network app_default (section 1): host 1 allows every UDP port (VXLAN, GENEVE, FOU and other UDP tunnels) to this host explicitly, so what a tunnel endpoint there decapsulates from the containers' packets is not fenced; the tunnel fence covers only what host_default allows`,
		}},
		{"TCP", "version: 1\nnetworks:\n  - match: {name: app_default}\n    host:\n      - allow: any\n        proto: tcp\n", nil},
		{"tunnel fence off", "version: 1\nsettings: {tunnel_mark: 0}\nnetworks:\n  - match: {name: app_default}\n    host:\n      - allow: any\n", []string{
			"settings.tunnel_mark is 0: what tunnels on this host (VXLAN, GENEVE, GRE, IPIP, FOU, WireGuard) decapsulate from the packets containers send to the host is not fenced",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r *Result
			if tt.policy == "" {
				r = Compile(loadPolicy(t, ""), nets)
			} else {
				r = compileSource(t, tt.policy, nets)
			}
			if diff := cmp.Diff(tt.want, r.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTunnelFenceRules checks where the mark is set (the host default
// allow, not explicit allows nor deny defaults) and that the tunnel rule
// follows the dispatch in both network layers.
func TestTunnelFenceRules(t *testing.T) {
	nets := []policy.Network{{Name: "app_default", Bridge: "br-app", Subnets: prefixes("172.20.0.0/16")}}
	r := compileSource(t, "version: 1\nnetworks:\n  - match: {name: app_default}\n    host:\n      - allow: any\n        proto: udp\n        ports: [53]\n", nets)
	var marked []string
	for _, c := range r.Chains {
		for _, rule := range c.Rules {
			if rule.SetMark != 0 {
				marked = append(marked, c.Name+": "+rule.Text())
			}
		}
	}
	want := []string{`in_br-app: counter meta mark set meta mark | 0x10000000 return comment "host_default allow"`}
	if diff := cmp.Diff(want, marked); diff != "" {
		t.Errorf("rules that mark (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"fwd.network", "in.network"}, r.TunnelChains); diff != "" {
		t.Errorf("tunnel chains (-want +got):\n%s", diff)
	}
	for _, name := range r.TunnelChains {
		c := r.Chain(name)
		last := c.Rules[len(c.Rules)-1]
		if last.ID != TunnelRuleID || !strings.HasPrefix(last.Text(), "meta mark & 0x10000000 == 0x10000000 counter goto ") {
			t.Errorf("%s ends with %q, want the tunnel rule", name, last.Text())
		}
	}
	deny := compileSource(t, "version: 1\nsettings: {tunnel_mark: 0x4}\nnetworks:\n  - match: {name: app_default}\n    host_default: deny\n", nets)
	for _, c := range deny.Chains {
		for _, rule := range c.Rules {
			if rule.SetMark != 0 {
				t.Errorf("host_default deny: %s marks: %s", c.Name, rule.Text())
			}
		}
	}
	if got := deny.Chain("fwd.network").Rules[1].Text(); !strings.HasPrefix(got, "meta mark & 0x00000004 == 0x00000004 ") {
		t.Errorf("tunnel_mark 0x4: fwd.network rule %q", got)
	}
	off := compileSource(t, "version: 1\nsettings: {tunnel_mark: 0}\nnetworks:\n  - match: {name: app_default}\n", nets)
	if len(off.TunnelChains) != 0 || off.Chain("fwd.tunnel") != nil || strings.Contains(off.Text(), "mark") {
		t.Errorf("tunnel_mark 0 still fences tunnels:\n%s", off.Text())
	}
}
