package fence

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// withNames makes the rules that use the lists in lists use them as names
// lists, with those names, for the length of the test.
func withNames(t *testing.T, lists map[string][]string) {
	t.Helper()
	old := namesSource
	namesSource = func(*policy.Policy) func(*policy.Rule) []NamesRef {
		return func(r *policy.Rule) []NamesRef {
			var out []NamesRef
			for _, l := range r.Addrs.Lists {
				if names, ok := lists[l]; ok {
					out = append(out, NamesRef{List: l, Names: names})
				}
			}
			return out
		}
	}
	t.Cleanup(func() { namesSource = old })
}

// TestNamesGolden compiles a policy whose egress allows a names list:
// the golden table has its two runtime sets with timeouts, the rules
// that look them up, and the rules that hold DNS answers to the bridge
// in the forward (before the accept of replies) and output hooks.
func TestNamesGolden(t *testing.T) {
	withNames(t, map[string][]string{"github": {"github.com", "*.github.com"}})
	res := compileTable(loadPolicy(t, "testdata/names.yaml"), testNetworks)
	checkGolden(t, "names", res.Text())

	const br = "br-0123456789ab"
	want := NameSet{List: "github", Names: []string{"github.com", "*.github.com"}, Set4: "names_github_4", Set6: "names_github_6", Bridges: []string{br}, Chains: []string{"fwd_" + br}}
	if len(res.NameSets) != 1 || !nameSetEqual(res.NameSets[0], want) {
		t.Errorf("NameSets = %+v, want %+v", res.NameSets, want)
	}
	for _, name := range []string{want.Set4, want.Set6} {
		s := res.Set(name)
		if s == nil || !s.Timeout || s.Owner != nft.OwnedByRuntime || !s.Interval() || len(s.Ranges) != 0 {
			t.Errorf("set %s = %+v, want an empty runtime interval set with timeouts", name, s)
		}
	}
	h := res.DNSHold
	if h == nil || h.Queue != DefaultDNSQueue || !slices.Equal(h.Bridges, []string{br}) || h.CatchAll || !slices.Equal(h.Chains, []string{"forward", "output"}) {
		t.Fatalf("DNSHold = %+v", h)
	}
	fwd, out := res.Chain("forward"), res.Chain("output")
	if out == nil || out.Hook != nft.HookOutput || len(out.Rules) != 1 || out.Rules[0].ID != DNSHoldRuleID {
		t.Fatalf("output chain = %+v", out)
	}
	// One hold rule a family: only the host's resolvers teach.
	if fwd.Rules[0].ID != DNSHoldRuleID || fwd.Rules[1].ID != DNSHoldRuleID || fwd.Rules[2].ID != "reply" {
		t.Errorf("forward chain starts with %q, %q, %q; want the DNS holds, then the accept of replies", fwd.Rules[0].ID, fwd.Rules[1].ID, fwd.Rules[2].ID)
	}
	if got := fwd.Rules[0].Text(); got != "ct direction reply meta l4proto { tcp, udp } th sport 53 oifname \"br-0123456789ab\" ip saddr 192.168.100.2 fib saddr . iif oif != 0 counter queue num 53 bypass comment \"DNS answers held until their names' addresses are learned\"" {
		t.Errorf("hold rule %s", got)
	}
}

func nameSetEqual(a, b NameSet) bool {
	return a.List == b.List && slices.Equal(a.Names, b.Names) && a.Set4 == b.Set4 && a.Set6 == b.Set6 && slices.Equal(a.Bridges, b.Bridges) && slices.Equal(a.Chains, b.Chains)
}

// TestNamesTrace traces packets through the names table: a DNS answer to
// the bridge is queued in the forward and output hooks (UDP and TCP),
// other replies are accepted as before, and a container's connection to
// an address is allowed on the rule's port only once the address is
// learned; explain names the list.
func TestNamesTrace(t *testing.T) {
	withNames(t, map[string][]string{"github": {"github.com", "*.github.com"}})
	pol := loadPolicy(t, "testdata/names.yaml")
	res := compileTable(pol, testNetworks)
	a := netip.MustParseAddr
	const br = "br-0123456789ab"
	for _, c := range []struct {
		name string
		p    nft.Packet
		want nft.VerdictKind
	}{
		{"answer forwarded, udp", nft.Packet{Hook: nft.HookForward, IIfName: "eth0", OIfName: br, Src: a("192.168.100.2"), Dst: a("172.20.0.2"), L4Proto: 17, SPort: 53, DPort: 40000, Reply: true, Fib: nft.FibAnswers{SrcViaIIf: true}}, nft.Queue},
		{"answer forwarded, tcp, v6", nft.Packet{Hook: nft.HookForward, IIfName: "eth0", OIfName: br, Src: a("fd00:100::2"), Dst: a("fd00:20::2"), L4Proto: 6, SPort: 53, DPort: 40000, Reply: true, Fib: nft.FibAnswers{SrcViaIIf: true}}, nft.Queue},
		{"answer of a server not the host's resolver: not held, not learned", nft.Packet{Hook: nft.HookForward, IIfName: "eth0", OIfName: br, Src: a("192.0.2.53"), Dst: a("172.20.0.2"), L4Proto: 17, SPort: 53, DPort: 40000, Reply: true, Fib: nft.FibAnswers{SrcViaIIf: true}}, nft.Accept},
		{"answer from the host", nft.Packet{Hook: nft.HookOutput, OIfName: br, Src: a("172.20.0.1"), Dst: a("172.20.0.2"), L4Proto: 17, SPort: 53, DPort: 40000, Reply: true}, nft.Queue},
		{"answer to another bridge", nft.Packet{Hook: nft.HookForward, IIfName: "eth0", OIfName: "docker0", Src: a("192.0.2.53"), Dst: a("172.17.0.2"), L4Proto: 17, SPort: 53, DPort: 40000, Reply: true, Fib: nft.FibAnswers{SrcViaIIf: true}}, nft.Accept},
		{"answer from the resolver's address sent back by the container itself (hairpin): not held, not learned", nft.Packet{Hook: nft.HookForward, IIfName: br, OIfName: br, Src: a("192.168.100.2"), Dst: a("172.20.0.2"), L4Proto: 17, SPort: 53, DPort: 40000, Reply: true}, nft.Accept},
		{"the same over TCP, IPv6", nft.Packet{Hook: nft.HookForward, IIfName: br, OIfName: br, Src: a("fd00:100::2"), Dst: a("fd00:20::2"), L4Proto: 6, SPort: 53, DPort: 40000, Reply: true}, nft.Accept},
		{"other reply", nft.Packet{Hook: nft.HookForward, IIfName: "eth0", OIfName: br, Src: a("192.0.2.80"), Dst: a("172.20.0.2"), L4Proto: 6, SPort: 80, DPort: 40000, Reply: true}, nft.Accept},
		{"query to port 53, original direction", nft.Packet{Hook: nft.HookOutput, OIfName: br, Src: a("172.20.0.1"), Dst: a("172.20.0.2"), L4Proto: 17, SPort: 53, DPort: 53}, nft.Accept},
	} {
		tr, err := res.Trace(c.p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if tr.Verdict != c.want {
			t.Errorf("%s: verdict %v, want %v:\n%s", c.name, tr.Verdict, c.want, tr)
		}
	}

	n := testNetworks[1]
	probe := Probe{Hook: policy.Egress, Src: a("172.20.0.2"), Dst: a("140.82.112.3"), Proto: policy.ProtoTCP, Port: 443}
	d, err := Explain(pol, testNetworks, n, probe)
	if err != nil {
		t.Fatal(err)
	}
	if d.Passes || d.Verdict != policy.Deny || d.NamesList != "" {
		t.Errorf("not learned: %+v", d)
	}
	probe.Learned = &Learned{"github": {a("140.82.112.3"), a("2606:50c0::1")}}
	if d, err = Explain(pol, testNetworks, n, probe); err != nil {
		t.Fatal(err)
	}
	if !d.Passes || d.Verdict != policy.Allow || d.NamesList != "github" || d.Rule == nil || d.Rule.Comment != "GitHub over HTTPS" {
		t.Errorf("learned: passes %v verdict %v list %q rule %+v\n%s", d.Passes, d.Verdict, d.NamesList, d.Rule, d.Trace)
	}
	probe.Port = 22
	if d, err = Explain(pol, testNetworks, n, probe); err != nil || d.Passes || d.NamesList != "" {
		t.Errorf("learned, another port: %+v, %v", d, err)
	}
	probe.Port, probe.Src, probe.Dst = 443, a("fd00:20::2"), a("2606:50c0::1")
	if d, err = Explain(pol, testNetworks, n, probe); err != nil || !d.Passes || d.NamesList != "github" {
		t.Errorf("learned, IPv6: %+v, %v", d, err)
	}
	// The Result explain was given is not changed: its sets stay empty.
	if s := res.Set("names_github_4"); len(s.Ranges) != 0 {
		t.Errorf("WithLearned changed the compiled table: %v", s.Ranges)
	}
	if !strings.Contains(res.WithLearned(*probe.Learned).Text(), "140.82.112.3") {
		t.Errorf("WithLearned lacks the learned address")
	}
}

// TestNoNamesNoHold: a policy without names has no output chain, no DNS
// hold and no name sets.
func TestNoNamesNoHold(t *testing.T) {
	res := compileTable(loadPolicy(t, "testdata/names.yaml"), testNetworks)
	if res.DNSHold != nil || len(res.NameSets) != 0 || res.Chain("output") != nil || res.Chain("dnsq_forward") != nil || res.Chain("dnsq_input") != nil {
		t.Errorf("DNSHold %+v, NameSets %+v, output %v", res.DNSHold, res.NameSets, res.Chain("output"))
	}
}

// TestNamesInContainerRules: a names list in a container section's rules
// records the containers and their bridges, and holds the answers to
// those bridges; the catch-all's network rules, without names, add no
// hold for docker0 and br-*.
func TestNamesInContainerRules(t *testing.T) {
	withNames(t, map[string][]string{"proxy": {"proxy.example.com"}})
	res := CompileContainers(loadPolicy(t, "testdata/containers.yaml"), testNetworks, testContainers)
	if len(res.NameSets) != 1 {
		t.Fatalf("NameSets = %+v", res.NameSets)
	}
	ns := res.NameSets[0]
	if !slices.Equal(ns.Bridges, []string{"br-0123456789ab"}) || !slices.Equal(ns.Containers, []string{"starting", "worker-1"}) && !slices.Equal(ns.Containers, []string{"worker-1", "starting"}) {
		t.Errorf("NameSet = %+v", ns)
	}
	if h := res.DNSHold; h == nil || h.CatchAll || !slices.Equal(h.Bridges, []string{"br-0123456789ab"}) {
		t.Errorf("DNSHold = %+v", h)
	}
	for _, c := range ns.Chains {
		found := false
		for _, r := range res.Chain(c).Rules {
			if res.namesListOf(r) == "proxy" {
				found = true
			}
		}
		if !found {
			t.Errorf("chain %s has no rule that looks up the proxy sets", c)
		}
	}
}

// TestNamesCatchAll: names in the catch-all's rules hold the answers to
// docker0 and every br-* bridge, known or not, and a known bridge of the
// catch-all's section is named too.
func TestNamesCatchAll(t *testing.T) {
	withNames(t, map[string][]string{"github": {"github.com"}})
	pol := parsePolicy(t, `version: 1
lists:
  github: []
networks:
  - match: {name: "*"}
    egress:
      - allow: "@github"
        ports: [443]
    egress_default: deny
`)
	res := compileTable(pol, testNetworks)
	h := res.DNSHold
	if h == nil || !h.CatchAll || !slices.Equal(h.Bridges, []string{"br-0123456789ab", "docker0", "br-"}) {
		t.Fatalf("DNSHold = %+v", h)
	}
	var holds []string
	for _, r := range res.Chain("forward").Rules {
		if r.ID == DNSHoldRuleID {
			holds = append(holds, r.Text())
		}
	}
	if len(holds) != 6 || !strings.Contains(holds[4], `oifname "br-*"`) || len(res.Chain("output").Rules) != 3 {
		t.Errorf("hold rules:\n%s", strings.Join(holds, "\n"))
	}
	a := netip.MustParseAddr
	tr, err := res.Trace(nft.Packet{Hook: nft.HookForward, IIfName: "eth0", OIfName: "br-new", Src: a("192.168.100.2"), Dst: a("172.30.0.2"), L4Proto: 17, SPort: 53, DPort: 40000, Reply: true, Fib: nft.FibAnswers{SrcViaIIf: true}})
	if err != nil || tr.Verdict != nft.Queue {
		t.Errorf("answer to a new bridge: %v, %v", tr, err)
	}
}

// TestNamesConnectionOutlivesElement traces a connection that a names rule
// allowed: the rule marks it, and once the address has left the set its
// packets pass by the twin rule, on the rule's port only, while a new
// connection (unmarked) is denied.
func TestNamesConnectionOutlivesElement(t *testing.T) {
	withNames(t, map[string][]string{"github": {"github.com", "*.github.com"}})
	pol := loadPolicy(t, "testdata/names.yaml")
	res := compileTable(pol, testNetworks)
	a := netip.MustParseAddr
	const br = "br-0123456789ab"
	p := nft.Packet{Fib: nft.FibAnswers{SrcViaIIf: true}, Hook: nft.HookForward, IIfName: br, OIfName: "eth0", Src: a("172.20.0.2"), Dst: a("140.82.112.3"), L4Proto: 6, DPort: 443, HopLimit: 63}
	for _, c := range []struct {
		name   string
		ctMark uint32
		port   uint16
		want   nft.VerdictKind
	}{
		{"a new connection to an address not learned", 0, 443, nft.Drop},
		{"a connection the rule allowed, its address expired", NamesConnMark, 443, nft.Accept},
		{"a marked connection on another port", NamesConnMark, 80, nft.Drop},
	} {
		q := p
		q.CtMark, q.DPort = c.ctMark, c.port
		tr, err := res.Trace(q)
		if err != nil {
			t.Fatal(err)
		}
		got := tr.Verdict
		if got != nft.Accept {
			got = nft.Drop
		}
		if got != c.want {
			t.Errorf("%s: verdict %v, want %v\n%s", c.name, tr.Verdict, c.want, tr)
		}
	}
}

// TestNamesConnMarkPerLayer keeps the layers apart: a connection that the
// network's names rule allowed (and marked) does not pass a container
// section's names rule by its twin, so every layer still must allow it.
func TestNamesConnMarkPerLayer(t *testing.T) {
	pol := parsePolicy(t, `version: 1
lists:
  github: {names: [github.com]}
  pypi: {names: [pypi.org]}
networks:
  - match: {name: "*"}
    egress:
      - allow: "@github"
        proto: tcp
        ports: [443]
    egress_default: deny
containers:
  - match: {label: "role=worker"}
    egress:
      - allow: "@pypi"
        proto: tcp
        ports: [443]
    egress_default: deny
`)
	r := CompileContainers(pol, testNetworks, testContainers)
	a := netip.MustParseAddr
	p := nft.Packet{Fib: nft.FibAnswers{SrcViaIIf: true}, Hook: nft.HookForward, IIfName: "br-0123456789ab", OIfName: "eth0", Src: a("172.20.0.10"), Dst: a("140.82.112.3"), L4Proto: 6, DPort: 443, HopLimit: 63, Mark: policy.DefaultIdentityMark}
	for _, c := range []struct {
		name   string
		ctMark uint32
		want   nft.VerdictKind
	}{
		{"marked by the network's names rule only", NamesConnMark, nft.Drop},
		{"marked by both layers' names rules", NamesConnMark | NamesConnMarkSection, nft.Accept},
	} {
		q := p
		q.CtMark = c.ctMark
		tr, err := r.Table.Trace(q)
		if err != nil {
			t.Fatal(err)
		}
		got := tr.Verdict
		if got != nft.Accept {
			got = nft.Drop
		}
		if got != c.want {
			t.Errorf("%s: verdict %v, want %v\n%s", c.name, tr.Verdict, c.want, tr)
		}
	}
}

// TestNamesQueries: the queries over UDP of fenced containers to the
// host's resolvers (forward) and to the host itself (input) are queued,
// in base chains that hook after the fence's, so that only the queries
// the fence let pass are held, and a query's queue verdict skips none of
// the fence's rules; queries over TCP, datagrams too short to be a
// query, and answers, are not held there. Each rule queues only within a
// per-source limit (a meter of the rule's family).
func TestNamesQueries(t *testing.T) {
	withNames(t, map[string][]string{"github": {"github.com"}})
	pol := parsePolicy(t, `version: 1
lists:
  github: []
networks:
  - match: {name: app_default}
    egress:
      - allow: "@resolvers"
        ports: [53]
      - allow: "@github"
        ports: [443]
      - deny: 192.168.100.0/24
    egress_default: allow
    host:
      - deny: any
        proto: udp
        ports: [5353]
`)
	res := compileTable(pol, testNetworks)
	h := res.DNSHold
	if h == nil || !slices.Equal(h.QueryChains, []string{"dnsq_forward", "dnsq_input"}) {
		t.Fatalf("DNSHold = %+v", h)
	}
	for _, c := range []struct {
		name string
		hook nft.Hook
		n    int
	}{{"dnsq_forward", nft.HookForward, 2}, {"dnsq_input", nft.HookInput, 2}} {
		ch := res.Chain(c.name)
		if ch == nil || ch.Hook != c.hook || ch.PriorityOffset != 1 || len(ch.Rules) != c.n {
			t.Fatalf("chain %s = %+v", c.name, ch)
		}
		for _, r := range ch.Rules {
			if r.ID != DNSQueryRuleID || r.Verdict.Kind != nft.Queue || r.Verdict.QueueNum != h.Queue || !r.Verdict.Bypass {
				t.Errorf("%s: rule %s", c.name, r.Text())
			}
			if m := r.Meter; m == nil || m.Rate != dnsQueryRate || (m.Key != nft.SelSAddr4 || m.Set != "dnsq_4") && (m.Key != nft.SelSAddr6 || m.Set != "dnsq_6") {
				t.Errorf("%s: rule %s has no meter per source", c.name, r.Text())
			}
			if !slices.Contains(r.Matches, nft.Match(nft.UDPLength{Min: 25})) {
				t.Errorf("%s: rule %s queues datagrams too short to be a query", c.name, r.Text())
			}
		}
	}
	for _, set := range []string{"dnsq_4", "dnsq_6"} {
		if s := res.Table.Set(set); s == nil || !s.Dynamic || !s.Timeout || s.Owner != nft.OwnedByRuntime {
			t.Errorf("meter set %s = %+v", set, s)
		}
	}
	if got := res.Chain("dnsq_forward").Rules[0].Text(); got != `ct direction original meta l4proto udp th dport 53 udp length >= 25 iifname "br-0123456789ab" ip daddr 192.168.100.2 counter update @dnsq_4 { ip saddr timeout 10s limit rate 1000/second burst 1000 packets } queue num 53 bypass comment "DNS queries, which the answers held must match"` {
		t.Errorf("query rule %s", got)
	}
	const br = "br-0123456789ab"
	a := netip.MustParseAddr
	for _, c := range []struct {
		name string
		p    nft.Packet
		want nft.VerdictKind
		// last is the chain of the last step of the trace.
		last string
	}{
		{"query to the resolver", nft.Packet{Hook: nft.HookForward, IIfName: br, OIfName: "eth0", Src: a("172.20.0.2"), Dst: a("192.168.100.2"), L4Proto: 17, SPort: 40000, DPort: 53, UDPLength: 40, HopLimit: 63}, nft.Queue, "dnsq_forward"},
		{"query to the resolver, v6", nft.Packet{Hook: nft.HookForward, IIfName: br, OIfName: "eth0", Src: a("fd00:20::2"), Dst: a("fd00:100::2"), L4Proto: 17, SPort: 40000, DPort: 53, UDPLength: 40, HopLimit: 63}, nft.Queue, "dnsq_forward"},
		{"4 bytes to the resolver's port 53: not held", nft.Packet{Hook: nft.HookForward, IIfName: br, OIfName: "eth0", Src: a("172.20.0.2"), Dst: a("192.168.100.2"), L4Proto: 17, SPort: 40000, DPort: 53, UDPLength: 12, HopLimit: 63}, nft.Accept, "dnsq_forward"},
		{"a header without a question: not held", nft.Packet{Hook: nft.HookForward, IIfName: br, OIfName: "eth0", Src: a("fd00:20::2"), Dst: a("fd00:100::2"), L4Proto: 17, SPort: 40000, DPort: 53, UDPLength: 24, HopLimit: 63}, nft.Accept, "dnsq_forward"},
		{"query over TCP: not held", nft.Packet{Hook: nft.HookForward, IIfName: br, OIfName: "eth0", Src: a("172.20.0.2"), Dst: a("192.168.100.2"), L4Proto: 6, SPort: 40000, DPort: 53, HopLimit: 63}, nft.Accept, "dnsq_forward"},
		{"query to a server the fence denies: not held", nft.Packet{Hook: nft.HookForward, IIfName: br, OIfName: "eth0", Src: a("172.20.0.2"), Dst: a("192.168.100.3"), L4Proto: 17, SPort: 40000, DPort: 53, HopLimit: 63}, nft.RejectAdminProhibited, ""},
		{"query to another server the fence allows: not held", nft.Packet{Hook: nft.HookForward, IIfName: br, OIfName: "eth0", Src: a("172.20.0.2"), Dst: a("192.0.2.53"), L4Proto: 17, SPort: 40000, DPort: 53, HopLimit: 63}, nft.Accept, "dnsq_forward"},
		{"query from an unheld bridge", nft.Packet{Hook: nft.HookForward, IIfName: "docker0", OIfName: "eth0", Src: a("172.17.0.2"), Dst: a("192.168.100.2"), L4Proto: 17, SPort: 40000, DPort: 53, HopLimit: 63}, nft.Accept, "dnsq_forward"},
		{"query to the host", nft.Packet{Hook: nft.HookInput, IIfName: br, Src: a("172.20.0.2"), Dst: a("172.20.0.1"), L4Proto: 17, SPort: 40000, DPort: 53, UDPLength: 25, HopLimit: 64}, nft.Queue, "dnsq_input"},
		{"query to the host, v6", nft.Packet{Hook: nft.HookInput, IIfName: br, Src: a("fd00:20::2"), Dst: a("fd00:20::1"), L4Proto: 17, SPort: 40000, DPort: 53, UDPLength: 25, HopLimit: 64}, nft.Queue, "dnsq_input"},
		{"answer: held by the forward chain", nft.Packet{Hook: nft.HookForward, IIfName: "eth0", OIfName: br, Src: a("192.168.100.2"), Dst: a("172.20.0.2"), L4Proto: 17, SPort: 53, DPort: 40000, Reply: true, Fib: nft.FibAnswers{SrcViaIIf: true}}, nft.Queue, "forward"},
	} {
		tr, err := res.Trace(c.p)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if tr.Verdict != c.want {
			t.Errorf("%s: verdict %v, want %v:\n%s", c.name, tr.Verdict, c.want, tr)
		}
		if c.last != "" && (len(tr.Steps) == 0 || tr.Steps[len(tr.Steps)-1].Chain != c.last) {
			t.Errorf("%s: the trace does not end in %s:\n%s", c.name, c.last, tr)
		}
		if c.want == nft.Queue && c.last != "forward" && (len(tr.Steps) == 0 || tr.Steps[0].Chain == c.last) {
			t.Errorf("%s: the query chain came first:\n%s", c.name, tr)
		}
	}
}

// TestNamesQueriesExplain: explain follows a query through the chain
// that holds it: the query passes, by the rule that allowed it.
func TestNamesQueriesExplain(t *testing.T) {
	withNames(t, map[string][]string{"github": {"github.com"}})
	pol := parsePolicy(t, `version: 1
lists:
  github: []
networks:
  - match: {name: app_default}
    egress:
      - allow: "@resolvers"
        ports: [53]
        comment: DNS
      - allow: "@github"
        ports: [443]
    egress_default: deny
`)
	a := netip.MustParseAddr
	for _, p := range []Probe{
		{Hook: policy.Egress, Src: a("172.20.0.2"), Dst: a("192.168.100.2"), Proto: policy.ProtoUDP, Port: 53},
		{Hook: policy.Host, Src: a("172.20.0.2"), Dst: a("172.20.0.1"), Proto: policy.ProtoUDP, Port: 53},
	} {
		d, err := Explain(pol, testNetworks, testNetworks[1], p)
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		if !d.Passes || d.Verdict != policy.Allow || d.Trace == nil || !strings.Contains(d.Trace.String(), "dnsq_") {
			t.Errorf("%+v: passes %v verdict %v rule %+v\n%s", p, d.Passes, d.Verdict, d.Rule, d.Trace)
		}
		if p.Hook == policy.Egress && (d.Rule == nil || d.Rule.Comment != "DNS") {
			t.Errorf("%+v: rule %+v", p, d.Rule)
		}
	}
}

// TestNamesConnMarkOfABridgeNamedLikeALayer: the bit of a network's names
// rule is the network's, whatever its bridge is called; a bridge named
// "app.s" (interface names may hold dots) once took the container
// section's bit by the suffix of its chain's name.
func TestNamesConnMarkOfABridgeNamedLikeALayer(t *testing.T) {
	pol := parsePolicy(t, `version: 1
lists:
  github: {names: [github.com]}
networks:
  - match: {name: "*"}
    egress:
      - allow: "@github"
        proto: tcp
        ports: [443]
    egress_default: deny
`)
	for _, br := range []string{"app.s", "app.l", "br-0123456789ab"} {
		nets := []policy.Network{{Name: "app", Bridge: br, Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}}
		r := CompileContainers(pol, nets, nil)
		marks := 0
		for _, c := range r.Table.Chains {
			for _, rule := range c.Rules {
				if rule.SetCtMark == 0 {
					continue
				}
				marks++
				if rule.SetCtMark != NamesConnMark {
					t.Errorf("bridge %s: chain %s marks with %#x, want the network's %#x: %s", br, c.Name, rule.SetCtMark, NamesConnMark, rule.Text())
				}
			}
		}
		if marks == 0 {
			t.Errorf("bridge %s: no rule marks its connections", br)
		}
	}
}
