package fence

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/ipproto"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// ingressContainers are containers on app_default: a database (tier=db,
// whose section has ingress rules), a worker (a section without ingress)
// and a web container without a section.
var ingressContainers = []Container{
	{ID: "dbdbdbdbdbdb1111", Name: "db", Image: "postgres", Labels: map[string]string{"tier": "db"},
		Endpoints: []Endpoint{{Network: "app_default", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.20"), netip.MustParseAddr("fd00:20::20")}}}},
	{ID: "aaaaaaaaaaaa1111", Name: "worker-1", Image: "busybox", Labels: map[string]string{"role": "worker"},
		Endpoints: []Endpoint{{Network: "app_default", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.10")}}}},
	{ID: "cccccccccccc3333", Name: "web", Image: "nginx",
		Endpoints: []Endpoint{{Network: "app_default", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.30"), netip.MustParseAddr("fd00:20::30")}}}},
}

// TestGoldenIngress renders ingress rules of a network section, of the
// catch-all section and of a container section.
func TestGoldenIngress(t *testing.T) {
	pol := loadPolicy(t, "testdata/ingress.yaml")
	checkGolden(t, "ingress", CompileContainers(pol, testNetworks, ingressContainers).Text())
	checkGolden(t, "ingress-networks", Compile(pol, testNetworks).Text())
}

// TestIngressNoCost checks that a policy without ingress keys adds
// nothing to the table: no ingress chain, map or jump.
func TestIngressNoCost(t *testing.T) {
	for _, file := range []string{"", "testdata/seed.yaml", "testdata/containers.yaml"} {
		r := CompileContainers(loadPolicy(t, file), testNetworks, testContainers)
		if txt := r.Text(); strings.Contains(txt, "ing") && strings.Contains(txt, "ing_") || strings.Contains(txt, "ct original") {
			t.Errorf("policy %q: the table has ingress parts without ingress keys:\n%s", file, txt)
		}
	}
}

// ingressProbe is a TCP connection from src to a port that Docker publishes
// (host port orig, DNAT'ed to dst:port), entering by eth0 and leaving by
// the bridge of app_default.
func ingressProbe(src, dst string, orig, port uint16) nft.Packet {
	return nft.Packet{Hook: nft.HookForward, IIfName: "eth0", OIfName: "br-0123456789ab", Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), L4Proto: ipproto.TCP, DPort: port, OrigDPort: orig, HopLimit: 63}
}

// TestIngressVerdicts traces connections into containers through the
// compiled table: the network's rules match the published port (not the
// container's), every layer must allow, replies and traffic between the
// network's containers pass, and a bridge not known yet falls to the
// catch-all's ingress.
func TestIngressVerdicts(t *testing.T) {
	pol := loadPolicy(t, "testdata/ingress.yaml")
	r := CompileContainers(pol, testNetworks, ingressContainers)
	for _, tc := range []struct {
		name string
		p    nft.Packet
		want nft.VerdictKind
		// chain is the deny chain that decides, "" for an accept.
		chain string
	}{
		{"office to the published admin port", ingressProbe("198.51.100.9", "172.20.0.30", 8080, 80), nft.Accept, ""},
		{"office over IPv6", ingressProbe("2001:db8:1::9", "fd00:20::30", 8080, 80), nft.Accept, ""},
		{"stranger to the admin port", ingressProbe("192.0.2.1", "172.20.0.30", 8080, 80), nft.RejectTCPReset, "ing_br-0123456789ab.i2"},
		{"stranger over IPv6", ingressProbe("2001:db8:2::1", "fd00:20::30", 8080, 80), nft.RejectTCPReset, "ing_br-0123456789ab.i2"},
		{"stranger to the container port 8080 without DNAT", ingressProbe("192.0.2.1", "172.20.0.30", 80, 8080), nft.Accept, ""},
		{"stranger to another published port: ingress_default allow", ingressProbe("192.0.2.1", "172.20.0.30", 9090, 80), nft.Accept, ""},
		{"proxy to port 3001", ingressProbe("203.0.113.7", "172.20.0.30", 3001, 3000), nft.Accept, ""},
		{"db from its one source", ingressProbe("198.51.100.20", "172.20.0.20", 5432, 5432), nft.Accept, ""},
		{"db from another office address: its section denies", ingressProbe("198.51.100.21", "172.20.0.20", 5432, 5432), nft.RejectTCPReset, "ci_dbdbdbdbdbdb.s.default"},
		{"db over IPv6 from a stranger", ingressProbe("2001:db8:2::1", "fd00:20::20", 5432, 5432), nft.RejectTCPReset, "ci_dbdbdbdbdbdb.s.default"},
		{"db's admin port: the network denies first", ingressProbe("192.0.2.1", "172.20.0.20", 8080, 5432), nft.RejectTCPReset, "ing_br-0123456789ab.i2"},
		{"worker: no ingress in its section", ingressProbe("192.0.2.1", "172.20.0.10", 9090, 80), nft.Accept, ""},
		{"an address no container holds yet: held", ingressProbe("198.51.100.9", "172.20.0.99", 9090, 80), nft.Drop, "ingc_br-0123456789ab.held"},
		{"an IPv6 address no container holds yet: held", ingressProbe("2001:db8:1::9", "fd00:20::99", 9090, 80), nft.Drop, "ingc_br-0123456789ab.held"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := r.Trace(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Verdict != tc.want {
				t.Fatalf("verdict %v; want %v\n%s", tr.Verdict, tc.want, tr)
			}
			if tc.chain == "" {
				return
			}
			den := r.Denials[lastChain(tr)]
			if den == nil || den.Chain != tc.chain || den.Hook != policy.Ingress {
				t.Errorf("decided by %+v; want the ingress denial of %s\n%s", den, tc.chain, tr)
			}
		})
	}
	// A reply of a connection the container opened passes, whatever the
	// ingress rules say of its source.
	p := ingressProbe("192.0.2.1", "172.20.0.20", 8080, 5432)
	p.Reply = true
	if tr, _ := r.Trace(p); tr.Verdict != nft.Accept {
		t.Errorf("a reply into the db: %v\n%s", tr.Verdict, tr)
	}
	// Between containers of app_default: the sender's egress judges it,
	// not the receiver's ingress (the db's section would deny it).
	p = ingressProbe("172.20.0.30", "172.20.0.20", 5432, 5432)
	p.IIfName = "br-0123456789ab"
	p.HopLimit = 64
	p.Mark = policy.DefaultIdentityMark // web's port checked its source
	if tr, _ := r.Trace(p); tr.Verdict != nft.Accept {
		t.Errorf("web to db on their network: %v\n%s", tr.Verdict, tr)
	}
	// A router's "packet too big" about the db's reply to a client, related
	// to the client's connection into it, passes; an echo request from the
	// same router does not (the db's section denies it).
	p = ingressProbe("2001:db8:ff::1", "fd00:20::20", 5432, 5432)
	p.L4Proto, p.DPort, p.ICMPType, p.Related = ipproto.ICMPv6, 0, 2, true
	if tr, _ := r.Trace(p); tr.Verdict != nft.Accept {
		t.Errorf("a related ICMPv6 error into the db: %v\n%s", tr.Verdict, tr)
	}
	p.Related, p.ICMPType = false, 128
	if tr, _ := r.Trace(p); tr.Verdict != nft.RejectAdminProhibited {
		t.Errorf("an echo request into the db: %v; want its section's deny\n%s", tr.Verdict, tr)
	}
	// A bridge not known yet: the catch-all's ingress_default deny.
	p = ingressProbe("198.51.100.9", "172.30.0.2", 8080, 80)
	p.OIfName = "br-feedfeedfeed"
	if tr, _ := r.Trace(p); tr.Verdict != nft.RejectTCPReset || r.Denials[lastChain(tr)] == nil || r.Denials[lastChain(tr)].Reason != ReasonDefault {
		t.Errorf("into a bridge not known yet: %v\n%s", tr.Verdict, tr)
	}
	// docker0 (network "bridge", which app_default's section does not
	// match) is fenced by the catch-all: its ingress_default deny.
	p = ingressProbe("198.51.100.9", "172.17.0.2", 8080, 80)
	p.OIfName = "docker0"
	if tr, _ := r.Trace(p); tr.Verdict != nft.RejectTCPReset {
		t.Errorf("into docker0: %v\n%s", tr.Verdict, tr)
	}
}

// lastChain is the chain of the trace's last step: the deny chain of a
// denial.
func lastChain(tr *nft.Trace) string {
	if len(tr.Steps) == 0 {
		return ""
	}
	return tr.Steps[len(tr.Steps)-1].Chain
}

// TestExplainIngress explains connections into containers: the section
// and rule that decide, the container's own layer, and a section without
// ingress keys, which does not judge them.
func TestExplainIngress(t *testing.T) {
	pol := loadPolicy(t, "testdata/ingress.yaml")
	a := netip.MustParseAddr
	app := testNetworks[1]
	for _, tc := range []struct {
		name      string
		container bool
		pr        Probe
		verdict   policy.Verdict
		rule      string // the network rule that decides, "" for none
		layer     string // the container layer's rule, "" for none
		action    policy.DenyAction
	}{
		{"office to the admin port", false, Probe{Hook: policy.Ingress, Src: a("198.51.100.9"), Proto: policy.ProtoTCP, Port: 8080}, policy.Allow, "ingress 1", "", ""},
		{"stranger to the admin port", false, Probe{Hook: policy.Ingress, Src: a("192.0.2.1"), Proto: policy.ProtoTCP, Port: 8080}, policy.Deny, "ingress 2", "", policy.Reject},
		{"stranger over IPv6", false, Probe{Hook: policy.Ingress, Src: a("2001:db8:2::1"), Proto: policy.ProtoTCP, Port: 8080}, policy.Deny, "ingress 2", "", policy.Reject},
		{"another published port", false, Probe{Hook: policy.Ingress, Src: a("192.0.2.1"), Proto: policy.ProtoTCP, Port: 9090}, policy.Allow, "", "", ""},
		{"db from its source", true, Probe{Hook: policy.Ingress, Src: a("198.51.100.20"), Dst: a("172.20.0.20"), Proto: policy.ProtoTCP, Port: 5432}, policy.Allow, "", "ingress 1", ""},
		{"db from a stranger", true, Probe{Hook: policy.Ingress, Src: a("192.0.2.1"), Dst: a("172.20.0.20"), Proto: policy.ProtoTCP, Port: 5432}, policy.Deny, "", "", policy.Reject},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decision
			var err error
			if tc.container {
				d, err = ExplainContainer(pol, testNetworks, ingressContainers, app, tc.pr)
			} else {
				d, err = Explain(pol, testNetworks, app, tc.pr)
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.verdict || d.Section == nil || d.Section.Index != 1 {
				t.Fatalf("verdict %v, section %+v; want %v by section 1\n%s", d.Verdict, d.Section, tc.verdict, d.Trace)
			}
			rule := ""
			if d.Rule != nil {
				rule = d.Rule.ID()
			}
			if rule != tc.rule {
				t.Errorf("network rule %q; want %q", rule, tc.rule)
			}
			if tc.container {
				if d.Container == nil || d.Container.Container.Name != "db" || len(d.Layers) != 1 || d.Layers[0].Section == nil {
					t.Fatalf("container %+v, layers %+v; want db's section", d.Container, d.Layers)
				}
				lr := ""
				if d.Layers[0].Rule != nil {
					lr = d.Layers[0].Rule.ID()
				}
				if lr != tc.layer || d.Layers[0].Verdict != tc.verdict {
					t.Errorf("layer rule %q %v; want %q %v", lr, d.Layers[0].Verdict, tc.layer, tc.verdict)
				}
			}
			if tc.verdict == policy.Deny && d.DenyAction != tc.action {
				t.Errorf("deny action %v; want %v", d.DenyAction, tc.action)
			}
		})
	}
	// The network "bridge" (docker0) is fenced by the catch-all, which has
	// ingress_default deny; a section without ingress keys judges none.
	d, err := Explain(pol, testNetworks, testNetworks[0], Probe{Hook: policy.Ingress, Src: a("198.51.100.9"), Proto: policy.ProtoTCP, Port: 8080})
	if err != nil || d.Verdict != policy.Deny || d.Rule != nil || d.Section == nil || d.Section.Index != 2 {
		t.Errorf("into docker0: %+v, %v; want ingress_default deny of section 2", d, err)
	}
	noIngress := loadPolicy(t, "testdata/seed.yaml")
	d, err = Explain(noIngress, testNetworks, app, Probe{Hook: policy.Ingress, Src: a("192.0.2.1"), Proto: policy.ProtoTCP, Port: 8080})
	if err != nil || d.Verdict != policy.Allow || !d.Passes || !d.Unjudged || d.Section == nil {
		t.Errorf("a section without ingress keys: %+v, %v; want allow, unjudged", d, err)
	}
	if _, err := Explain(pol, testNetworks, app, Probe{Hook: policy.Ingress, Proto: policy.ProtoTCP, Port: 8080}); err == nil {
		t.Errorf("an ingress probe without a source: no error")
	}
}

// TestIngressFamilyWarning warns of ingress deny rules that cover one
// family of a dual-stack network while ingress_default allows: the other
// family's connections into it pass.
func TestIngressFamilyWarning(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte("version: 1\nnetworks:\n  - match: {name: app_default}\n    ingress:\n      - deny: 192.0.2.0/24\n"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := "network app_default: its IPv6 subnet fd00:20::/64 has no IPv6 deny rule in section 1 ingress, whose deny rules cover IPv4 only and whose ingress_default is allow: IPv6 connections into it from outside are not fenced"
	if w := strings.Join(Compile(pol, testNetworks).Warnings, "\n"); !strings.Contains(w, want) {
		t.Errorf("warnings:\n%s\nlack:\n%s", w, want)
	}
}

// TestIngressSectionWithoutKeys checks that a network whose section has no
// ingress keys is not judged by the catch-all's ingress, though its bridge
// is a br-* one: the dispatch map sends it to a chain that passes.
func TestIngressSectionWithoutKeys(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(`version: 1
networks:
  - match: {name: app_default}
    egress_default: allow
  - match: {name: "*"}
    ingress_default: deny
`), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := Compile(pol, testNetworks)
	if tr, err := r.Trace(ingressProbe("192.0.2.1", "172.20.0.30", 8080, 80)); err != nil || tr.Verdict != nft.Accept {
		t.Errorf("into app_default, whose section has no ingress keys: %v, %v", tr, err)
	}
	p := ingressProbe("192.0.2.1", "172.17.0.2", 8080, 80)
	p.OIfName = "docker0"
	if tr, err := r.Trace(p); err != nil || tr.Verdict != nft.RejectTCPReset {
		t.Errorf("into docker0, under the catch-all's ingress_default deny: %v, %v", tr, err)
	}
	if !strings.Contains(r.Text(), `"br-0123456789ab" : goto ing_none`) {
		t.Errorf("the ingress dispatch map does not send app_default's bridge to ing_none:\n%s", r.Text())
	}
}

// TestExplainEgressIntoAnotherNetwork explains packets from a container
// to a container of another network: the forward hook judges them by the
// sender's egress and then by the receiving network's ingress (its
// section's and its container's), so explain must too when the probe says
// which bridge the packet leaves by (RoutedOut). Without Out, only the
// egress rules judged it, and explain let through what the kernel denied
// (found by the differential test).
func TestExplainEgressIntoAnotherNetwork(t *testing.T) {
	pol := loadPolicy(t, "testdata/ingress.yaml")
	a := netip.MustParseAddr
	docker0, app := testNetworks[0], testNetworks[1]
	routes := []policy.Network{{Bridge: "docker0", Subnets: docker0.Subnets}, {Bridge: app.Bridge, Subnets: app.Subnets}}
	// A client on docker0, without a section, and the containers of
	// app_default, with their bridge ports known (checked): they send
	// from their own addresses, not held.
	ctrs := append(slices.Clone(ingressContainers), Container{ID: "eeeeeeeeeeee5555", Name: "client", Image: "busybox",
		Endpoints: []Endpoint{{Network: "bridge", Port: "vethclient", Addrs: []netip.Addr{a("172.17.0.5")}}}})
	for i := range ctrs {
		ctrs[i].Endpoints = slices.Clone(ctrs[i].Endpoints)
		ctrs[i].Endpoints[0].Port = "veth" + ctrs[i].Name
	}
	egress := func(src, dst string, port uint16) Probe {
		return Probe{Hook: policy.Egress, Src: a(src), Dst: a(dst), Proto: policy.ProtoTCP, Port: port}
	}
	for _, tc := range []struct {
		name    string
		from    policy.Network
		pr      Probe
		verdict policy.Verdict
		section int
		hook    policy.Hook
		rule    string // the rule that decides, "" for a default or a layer
		into    string // the receiving container's layer that denies, "" for none
	}{
		{"docker0 to app's admin port: app's ingress 2 denies", docker0, egress("172.17.0.5", "172.20.0.30", 8080), policy.Deny, 1, policy.Ingress, "ingress 2", ""},
		{"docker0 to app's web on another port: app's ingress_default allows", docker0, egress("172.17.0.5", "172.20.0.30", 80), policy.Allow, 2, policy.Egress, "", ""},
		{"docker0 to the db: the db's section denies", docker0, egress("172.17.0.5", "172.20.0.20", 5432), policy.Deny, 2, policy.Egress, "", "container section"},
		{"docker0 to an address no container holds: held", docker0, egress("172.17.0.5", "172.20.0.99", 80), policy.Deny, 2, policy.Egress, "", "held"},
		{"app to docker0: the catch-all's ingress_default denies", app, egress("172.20.0.30", "172.17.0.2", 80), policy.Deny, 2, policy.Ingress, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr, note := RoutedOut(tc.from, tc.pr, routes)
			if pr.Out == "" || pr.Out == tc.from.Bridge || note == "" {
				t.Fatalf("RoutedOut: out %q, note %q; want the other network's bridge", pr.Out, note)
			}
			d, err := ExplainContainer(pol, testNetworks, ctrs, tc.from, pr)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verdict != tc.verdict || d.Passes != (tc.verdict == policy.Allow) || d.Section == nil || d.Section.Index != tc.section || d.Hook != tc.hook {
				t.Fatalf("verdict %v (passes %v) by section %+v, %v rules; want %v by section %d, %v rules\n%s", d.Verdict, d.Passes, d.Section, d.Hook, tc.verdict, tc.section, tc.hook, d.Trace)
			}
			rule := ""
			if d.Rule != nil {
				rule = d.Rule.ID()
			}
			if rule != tc.rule {
				t.Errorf("rule %q; want %q", rule, tc.rule)
			}
			into := ""
			for _, l := range d.Layers {
				if l.Into && l.Verdict == policy.Deny {
					into = l.Layer
				}
			}
			if into != tc.into || d.Container != nil && d.Container.Container.Name == "db" {
				t.Errorf("layers %+v, container %+v; want the receiving container's %q layer, and the db not taken for the sender", d.Layers, d.Container, tc.into)
			}
			// Without Out, the ingress rules are not traced: what the
			// kernel denies would pass.
			if old, err := ExplainContainer(pol, testNetworks, ctrs, tc.from, tc.pr); err == nil && tc.verdict == policy.Deny && !old.Passes {
				t.Errorf("without Out the probe is denied too: the test does not tell Out's effect")
			}
		})
	}
	// RoutedOut leaves alone a destination on the sender's own bridge or
	// outside every bridge, and probes of the host and ingress directions.
	for _, pr := range []Probe{
		egress("172.20.0.30", "172.20.0.20", 80),
		egress("172.20.0.30", "192.0.2.1", 80),
		{Hook: policy.Host, Dst: a("172.17.0.1"), Proto: policy.ProtoTCP, Port: 22},
		{Hook: policy.Ingress, Src: a("192.0.2.1"), Dst: a("172.17.0.2"), Proto: policy.ProtoTCP, Port: 80},
	} {
		if got, note := RoutedOut(app, pr, routes); got.Out != "" || note != "" {
			t.Errorf("RoutedOut(%+v): out %q, note %q; want none", pr, got.Out, note)
		}
	}
}
