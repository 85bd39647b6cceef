package fence

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/policy"
)

// Networks of other drivers than bridge are never fenced, even when a
// section matches them by name: the table has no chain, no map element,
// nothing that stands for them, and the Result says why.
func TestNotFenceable(t *testing.T) {
	pol := parsePolicy(t, `version: 1
networks:
  - match: {name: lan}
    egress:
      - deny: any
    egress_default: deny
  - match: {name: "*"}
    egress:
      - deny: "@private"
`)
	lan := policy.Network{ID: "m1", Name: "lan", Driver: "macvlan", Subnets: prefixes("192.168.1.0/24")}
	nets := []policy.Network{
		{ID: "h1", Name: "host", Driver: "host"},
		lan,
		{ID: "n1", Name: "none", Driver: "null"},
		{ID: "o1", Name: "swarm", Driver: "overlay", Subnets: prefixes("10.0.1.0/24")},
		{ID: "i1", Name: "iv", Driver: "ipvlan", Subnets: prefixes("192.168.2.0/24")},
		{ID: "p1", Name: "weave", Driver: "weaveworks/net-plugin:latest"},
		{ID: "b1", Name: "app", Bridge: "br-app", Driver: "bridge", Subnets: prefixes("172.20.0.0/16")},
	}
	r := Compile(pol, nets)
	if len(r.Fenced) != 1 || r.Fenced[0].Network.Name != "app" || r.Fenced[0].Section.Index != 2 {
		t.Fatalf("fenced %+v, want only app, by section 2", r.Fenced)
	}
	if len(r.Unfenced) != 0 || len(r.Warnings) != 0 {
		t.Errorf("unfenced %+v, warnings %q: want none (not fenceable is not unfenced)", r.Unfenced, r.Warnings)
	}
	var got []string
	for _, u := range r.NotFenceable {
		sec := 0
		if u.Section != nil {
			sec = u.Section.Index
		}
		got = append(got, u.Network.Name+" "+strconv.Itoa(sec)+" "+u.Reason)
	}
	want := []string{
		"host 2 host: containers share the host's network stack: their traffic is the host's own",
		"iv 2 ipvlan: containers talk to the LAN directly through the parent interface, not through a bridge on this host: dockerfence cannot see their packets",
		"lan 1 macvlan: containers talk to the LAN directly through the parent interface, not through a bridge on this host: dockerfence cannot see their packets",
		"none 2 null: no network: containers have only their loopback interface",
		"swarm 2 overlay: VXLAN between Docker hosts, not a local bridge: traffic between its containers is not fenced (their traffic to other networks leaves through docker_gwbridge, a bridge network that dockerfence can fence)",
		"weave 2 weaveworks/net-plugin:latest: not a bridge on this host; dockerfence fences only bridge networks",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("not fenceable:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Nothing in the table stands for them: no chain or set is named after
	// them, and the table is the one of app alone.
	alone := Compile(pol, nets[len(nets)-1:])
	if got, want := r.Text(), alone.Text(); got != want {
		t.Errorf("the table with networks of other drivers differs from the one without:\n%s\nwant\n%s", got, want)
	}
	// The warnings apply and the daemon log: none for the "none" network.
	var warns []string
	for _, u := range r.NotFenceable {
		if w := u.Warning(); w != "" {
			warns = append(warns, w)
		}
	}
	if len(warns) != 5 || warns[1] != `network "iv" is not fenced: ipvlan: containers talk to the LAN directly through the parent interface, not through a bridge on this host: dockerfence cannot see their packets; section 2 {name: "*"} matches it but cannot fence it` {
		t.Errorf("warnings:\n%s", strings.Join(warns, "\n"))
	}

	// explain says so, whatever the packet, and does not pretend that
	// section 1 judges it.
	for _, pr := range []Probe{
		{Dst: netip.MustParseAddr("192.168.1.10"), Proto: policy.ProtoTCP, Port: 22},
		{Hook: policy.Host, Dst: netip.MustParseAddr("10.0.0.1"), Proto: policy.ProtoUDP, Port: 53},
	} {
		d, err := Explain(pol, nets, lan, pr)
		if err != nil {
			t.Fatal(err)
		}
		if d.NotFenceable == nil || d.NotFenceable.Section == nil || d.NotFenceable.Section.Index != 1 || d.Section != nil || d.Rule != nil || !d.Passes || d.Verdict != policy.Allow ||
			!strings.HasPrefix(d.NotFenceable.Reason, "macvlan: containers talk to the LAN directly") {
			t.Errorf("explain %+v for a macvlan network: %+v", pr, d)
		}
	}
	// A bridge network is judged as before.
	if d, err := Explain(pol, nets, nets[len(nets)-1], Probe{Dst: netip.MustParseAddr("192.168.1.10"), Proto: policy.ProtoTCP, Port: 22}); err != nil || d.NotFenceable != nil || d.Passes {
		t.Errorf("explain for a bridge network: %+v, %v; want denied by section 2", d, err)
	}
	// Neither the source nor the direction of a probe is changed for it.
	if pr, note := DefaultSource(lan, Probe{Dst: netip.MustParseAddr("2001:db8::1")}); pr.Src.IsValid() || note != "" {
		t.Errorf("DefaultSource for a macvlan network: %v, %q", pr, note)
	}
	if pr, note := ToHost(lan, Probe{Dst: netip.MustParseAddr("192.168.1.10")}, hostAddrs{netip.MustParseAddr("192.168.1.10")}, nil); pr.Hook != policy.Egress || note != "" {
		t.Errorf("ToHost for a macvlan network: %v, %q", pr, note)
	}
}
