package fence

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// testContainers are containers on app_default (testNetworks): a worker
// (section 1), the compose service shop/api (section 2) with a label that
// narrows it further, a neighbour without rules, and one whose label does
// not parse.
var testContainers = []Container{
	{ID: "aaaaaaaaaaaa1111", Name: "worker-1", Image: "busybox", Labels: map[string]string{"role": "worker"},
		Endpoints: []Endpoint{{Network: "app_default", Port: "veth1111", MAC: mustMAC("02:42:ac:14:00:0a"), Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.10"), netip.MustParseAddr("fd00:20::10")}}}},
	{ID: "bbbbbbbbbbbb2222", Name: "shop-api-1", Image: "shop/api:2", Labels: map[string]string{policy.ComposeProjectLabel: "shop", policy.ComposeServiceLabel: "api", policy.EgressLabel: "[{deny: 203.0.113.0/24, comment: no partner API}]"},
		Endpoints: []Endpoint{{Network: "app_default", Port: "veth2222", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.11")}}}},
	{ID: "cccccccccccc3333", Name: "neighbour", Image: "busybox",
		Endpoints: []Endpoint{{Network: "app_default", Port: "veth3333", MAC: mustMAC("02:42:ac:14:00:0c"), Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.12")}}}},
	{ID: "dddddddddddd4444", Name: "broken", Image: "busybox", Labels: map[string]string{policy.EgressLabel: "[{deny: 10.0.0.0/33}]"},
		Endpoints: []Endpoint{{Network: "app_default", Port: "veth4444", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.13")}}}},
	{ID: "ffffffffffff6666", Name: "starting", Image: "busybox", Labels: map[string]string{"role": "worker"},
		Endpoints: []Endpoint{{Network: "app_default", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.14")}}}},
	{ID: "eeeeeeeeeeee5555", Name: "elsewhere", Image: "busybox", Labels: map[string]string{"role": "worker"},
		Endpoints: []Endpoint{{Network: "host"}}},
}

// mustMAC parses a MAC address.
func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// TestGoldenContainers renders the container layer.
func TestGoldenContainers(t *testing.T) {
	pol := loadPolicy(t, "testdata/containers.yaml")
	r := CompileContainers(pol, testNetworks, testContainers)
	checkGolden(t, "containers", r.Text())
	var names []string
	for _, fc := range r.Containers {
		names = append(names, fc.Container.Name+":"+fc.Chain)
	}
	if got := strings.Join(names, " "); got != "broken:c_dddddddddddd neighbour: shop-api-1:c_bbbbbbbbbbbb starting:c_ffffffffffff worker-1:c_aaaaaaaaaaaa" {
		t.Errorf("containers judged: %s", got)
	}
	if r.Containers[0].LabelErr == nil || !strings.Contains(r.Containers[0].LabelErr.Error(), "label dockerfence.egress:1:9") {
		t.Errorf("broken label error = %v", r.Containers[0].LabelErr)
	}
}

// TestContainerLayerVerdicts traces packets through the compiled table:
// every layer must allow, a container's rules narrow its network's, an
// address no container holds is held, and a broken label cuts its
// container off.
func TestContainerLayerVerdicts(t *testing.T) {
	pol := loadPolicy(t, "testdata/containers.yaml")
	r := CompileContainers(pol, testNetworks, testContainers)
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name     string
		src, dst string
		proto    uint8
		port     uint16
		want     nft.VerdictKind // Accept or Drop (a reject counts as Drop)
		denyHint string          // a part of the deny chain's name
	}{
		{"worker to its proxy", "172.20.0.10", "192.168.100.1", 6, 3128, nft.Accept, ""},
		{"worker to the proxy on another port", "172.20.0.10", "192.168.100.1", 6, 80, nft.Drop, "c_aaaaaaaaaaaa.s"},
		{"worker to the internet", "172.20.0.10", "203.0.113.7", 6, 443, nft.Drop, "c_aaaaaaaaaaaa.s"},
		{"worker to its network", "172.20.0.10", "172.20.0.12", 6, 80, nft.Accept, ""},
		{"worker over IPv6 to the internet", "fd00:20::10", "2001:db8::1", 6, 443, nft.Drop, "c_aaaaaaaaaaaa.s"},
		{"neighbour to the internet", "172.20.0.12", "203.0.113.7", 6, 443, nft.Accept, ""},
		{"neighbour to the payment database: the network denies", "172.20.0.12", "192.168.100.60", 6, 5432, nft.Drop, "fwd_br-0123456789ab"},
		{"api to the database: its section denies", "172.20.0.11", "192.168.100.50", 6, 5432, nft.Drop, "c_bbbbbbbbbbbb.s"},
		{"api to the partner API: its label denies", "172.20.0.11", "203.0.113.7", 6, 443, nft.Drop, "c_bbbbbbbbbbbb.l"},
		{"api to the internet", "172.20.0.11", "198.51.100.7", 6, 443, nft.Accept, ""},
		{"api to the payment database: the network denies first", "172.20.0.11", "192.168.100.60", 6, 5432, nft.Drop, "fwd_br-0123456789ab"},
		{"broken label: cut off", "172.20.0.13", "198.51.100.7", 6, 443, nft.Drop, "c_dddddddddddd"},
		{"unknown address: held", "172.20.0.99", "198.51.100.7", 6, 443, nft.Drop, "fwdc_br-0123456789ab.held"},
		{"unknown IPv6 address: held", "fd00:20::99", "2001:db8::1", 6, 443, nft.Drop, "fwdc_br-0123456789ab.held"},
		{"a bridge not known yet: held", "172.30.0.5", "198.51.100.7", 6, 443, nft.Drop, "fwdc_unknown.held"},
		{"IPv6 link-local, bridged to a neighbour: held", "fe80::13", "fe80::12", 6, 80, nft.Drop, "fwdc_br-0123456789ab.held"},
		{"a starting worker, its port not known: held", "172.20.0.14", "192.168.100.1", 6, 3128, nft.Drop, "fwdc_br-0123456789ab.held"},
		{"unchecked: a neighbour's address from a port not checked yet is held", "172.20.0.12", "203.0.113.7", 6, 443, nft.Drop, "fwdc_br-0123456789ab.held"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			iif := "br-0123456789ab"
			if strings.HasPrefix(tc.src, "172.30.") {
				iif = "br-fedcba987654"
			}
			// A packet of a container whose port is known passed its
			// identity check, which marked it.
			var mark uint32 = policy.DefaultIdentityMark
			if strings.HasPrefix(tc.name, "unchecked") || strings.Contains(tc.name, "port not known") {
				mark = 0
			}
			p := nft.Packet{Fib: nft.FibAnswers{SrcViaIIf: true}, Hook: nft.HookForward, IIfName: iif, OIfName: "eth0", Src: a(tc.src), Dst: a(tc.dst), L4Proto: tc.proto, DPort: tc.port, HopLimit: 63, Mark: mark}
			tr, err := r.Table.Trace(p)
			if err != nil {
				t.Fatal(err)
			}
			got := tr.Verdict
			if got != nft.Accept {
				got = nft.Drop
			}
			if got != tc.want {
				t.Fatalf("verdict %v; want %v\n%s", tr.Verdict, tc.want, tr)
			}
			if tc.denyHint != "" && !strings.Contains(tr.String(), tc.denyHint) {
				t.Errorf("the trace does not pass %s:\n%s", tc.denyHint, tr)
			}
		})
	}
	// A reply (to a connection into a container) passes from a checked
	// port, and is held from one whose check is not in: a container that
	// took another's address must not answer connections meant for it.
	for _, tc := range []struct {
		mark uint32
		want nft.VerdictKind
	}{{policy.DefaultIdentityMark, nft.Accept}, {0, nft.Drop}} {
		p := nft.Packet{Fib: nft.FibAnswers{SrcViaIIf: true}, Hook: nft.HookForward, IIfName: "br-0123456789ab", OIfName: "eth0", Src: a("172.20.0.10"), Dst: a("198.51.100.7"), L4Proto: 6, DPort: 40000, HopLimit: 63, Reply: true, Mark: tc.mark}
		tr, err := r.Table.Trace(p)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Verdict != tc.want || tc.want == nft.Drop && !strings.Contains(tr.String(), "fwdc_br-0123456789ab.held") {
			t.Errorf("a reply with mark %#x: verdict %v; want %v, held\n%s", tc.mark, tr.Verdict, tc.want, tr)
		}
	}
}

// TestContainerLayerCostsNothing requires that containers without rules of
// their own, under a policy without container sections, change nothing in
// the table: the container layer is left out.
func TestContainerLayerCostsNothing(t *testing.T) {
	pol := loadPolicy(t, "testdata/seed.yaml")
	var plain []Container
	for _, c := range testContainers {
		if _, ok := c.Labels[policy.EgressLabel]; !ok {
			plain = append(plain, c)
		}
	}
	with, without := CompileContainers(pol, testNetworks, plain).Text(), Compile(pol, testNetworks).Text()
	if with != without {
		t.Errorf("containers without rules changed the table:\n%s", with)
	}
	// One label is enough to give its network the layer.
	if got := CompileContainers(pol, testNetworks, testContainers).Text(); !strings.Contains(got, "fwdc_br-0123456789ab.held") || strings.Contains(got, "fwdc_unknown") {
		t.Errorf("a label did not give its network (only) the container layer:\n%s", got)
	}
}

// TestContainerOnUnfenceableNetwork warns of a container whose rules cannot
// be enforced because its network is not behind a bridge.
func TestContainerOnUnfenceableNetwork(t *testing.T) {
	pol := loadPolicy(t, "testdata/containers.yaml")
	nets := append(slices.Clone(testNetworks), policy.Network{Name: "host", ID: "h0", Driver: "host"}, policy.Network{Name: "lan", ID: "m1", Driver: "macvlan"})
	ctrs := []Container{
		{ID: "aaaaaaaaaaaa1111", Name: "worker-host", Labels: map[string]string{"role": "worker"}, Endpoints: []Endpoint{{NetworkID: "h0", Network: "host"}}},
		{ID: "bbbbbbbbbbbb2222", Name: "plain-macvlan", Endpoints: []Endpoint{{NetworkID: "m1", Network: "lan", Addrs: []netip.Addr{netip.MustParseAddr("192.168.100.9")}}}},
	}
	r := CompileContainers(pol, nets, ctrs)
	w := strings.Join(r.Warnings, "\n")
	if !strings.Contains(w, `container "worker-host" (aaaaaaaaaaaa) has rules of its own, but its network host cannot be fenced (host: containers share the host's network stack`) {
		t.Errorf("no warning for the worker on the host network:\n%s", w)
	}
	if strings.Contains(w, "plain-macvlan") {
		t.Errorf("a container without rules of its own was warned of:\n%s", w)
	}
}

// TestExplainContainer names every layer that judged a container's packet
// and which one decided, and agrees with the tracer's verdict.
func TestExplainContainer(t *testing.T) {
	pol := loadPolicy(t, "testdata/containers.yaml")
	app := testNetworks[1]
	a := netip.MustParseAddr
	for _, tc := range []struct {
		name, src, dst string
		port           uint16
		layers         string
		verdict        policy.Verdict
	}{
		{"worker to its proxy", "172.20.0.10", "192.168.100.1", 3128, "container section 1 allow egress 1", policy.Allow},
		{"worker to the internet", "172.20.0.10", "203.0.113.7", 443, "container section 1 deny default", policy.Deny},
		{"api to the partner", "172.20.0.11", "203.0.113.7", 443, "container section 2 allow default; label deny egress 1", policy.Deny},
		{"api to the internet", "172.20.0.11", "198.51.100.7", 443, "container section 2 allow default; label allow default", policy.Allow},
		{"neighbour", "172.20.0.12", "203.0.113.7", 443, "", policy.Allow},
		{"broken", "172.20.0.13", "203.0.113.7", 443, "cut off deny default", policy.Deny},
		{"held", "172.20.0.99", "203.0.113.7", 443, "held deny default", policy.Deny},
		{"starting: its port not known yet", "172.20.0.14", "192.168.100.1", 3128, "held deny default", policy.Deny},
		{"network denies first", "172.20.0.11", "192.168.100.60", 5432, "", policy.Deny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ExplainContainer(pol, testNetworks, testContainers, app, Probe{Src: a(tc.src), Dst: a(tc.dst), Proto: policy.ProtoTCP, Port: tc.port})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range d.Layers {
				s := l.Layer
				if l.Section != nil {
					s += fmt.Sprintf(" %d", l.Section.Index)
				}
				r := "default"
				if l.Rule != nil {
					r = l.Rule.ID()
				}
				got = append(got, s+" "+l.Verdict.String()+" "+r)
			}
			if g := strings.Join(got, "; "); g != tc.layers || d.Verdict != tc.verdict || d.Passes != (tc.verdict == policy.Allow) {
				t.Errorf("layers %q, verdict %v, passes %v; want %q, %v\n%s", g, d.Verdict, d.Passes, tc.layers, tc.verdict, d.Trace)
			}
		})
	}
}

// TestContainerChainIDs names containers whose short IDs are the same by
// longer prefixes of their IDs, and others by their short IDs.
func TestContainerChainIDs(t *testing.T) {
	used := map[string]bool{}
	var got []string
	for _, id := range []string{"aaaaaaaaaaaa1111", "aaaaaaaaaaaa2222", "aaaaaaaaaaaa1111ffff", "bbbbbbbbbbbb", "not-hex!"} {
		got = append(got, containerChainID(Container{ID: id, Name: "n"}, used))
	}
	want := "aaaaaaaaaaaa aaaaaaaaaaaa2222 aaaaaaaaaaaa1111 bbbbbbbbbbbb not-hex_"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("chain IDs %q; want %q", g, want)
	}
}

// TestSharedNetworkStack judges the address of a container that another
// joined (--network container:X) by both containers' rules: the joiner
// cannot escape its own rules by sending from X's address, and X cannot
// escape its own by the joiner's.
func TestSharedNetworkStack(t *testing.T) {
	pol := loadPolicy(t, "testdata/containers.yaml")
	app := testNetworks[1]
	web := Container{ID: "aaaaaaaaaaaa0001", Name: "web", Endpoints: []Endpoint{{Network: "app_default", Port: "vethweb", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.20")}}}}
	worker := Container{ID: "bbbbbbbbbbbb0002", Name: "vpn-worker", Labels: map[string]string{"role": "worker"}, SharesNetworkOf: "web"}
	api := Container{ID: "cccccccccccc0003", Name: "api", Labels: map[string]string{policy.ComposeProjectLabel: "shop", policy.ComposeServiceLabel: "api"}, Endpoints: []Endpoint{{Network: "app_default", Port: "vethapi", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.21")}}}}
	sidecar := Container{ID: "dddddddddddd0004", Name: "sidecar", Labels: map[string]string{"role": "worker"}, SharesNetworkOf: "api"}
	lost := Container{ID: "eeeeeeeeeeee0005", Name: "lost", Labels: map[string]string{"role": "worker"}, SharesNetworkOf: "gone"}
	ctrs := []Container{web, worker, api, sidecar, lost}
	for _, tc := range []struct {
		src, dst string
		port     uint16
		want     policy.Verdict
	}{
		{"172.20.0.20", "203.0.113.7", 443, policy.Deny},     // the worker's section denies what web may do
		{"172.20.0.20", "192.168.100.1", 3128, policy.Allow}, // both allow the proxy
		{"172.20.0.21", "192.168.100.50", 5432, policy.Deny}, // the api's section denies the database
		{"172.20.0.21", "203.0.113.7", 443, policy.Deny},     // the sidecar's section denies the internet
	} {
		d, err := ExplainContainer(pol, testNetworks, ctrs, app, Probe{Src: netip.MustParseAddr(tc.src), Dst: netip.MustParseAddr(tc.dst), Proto: policy.ProtoTCP, Port: tc.port})
		if err != nil {
			t.Fatal(err)
		}
		if d.Verdict != tc.want || d.Passes != (tc.want == policy.Allow) {
			t.Errorf("%s -> %s:%d: verdict %v, passes %v; want %v\n%s", tc.src, tc.dst, tc.port, d.Verdict, d.Passes, tc.want, d.Trace)
		}
	}
	r := CompileContainers(pol, testNetworks, ctrs)
	if w := strings.Join(r.Warnings, "\n"); !strings.Contains(w, `container "lost" (eeeeeeeeeeee) has rules of its own, but shares the network stack of "gone", which is on no fenced network`) {
		t.Errorf("no warning for a container joined to one not found:\n%s", w)
	}
}

// TestIdentity traces packets through the ingress chains of containers'
// bridge ports: a container's own addresses pass, a neighbour's are
// dropped (and logged as the container's), IPv6 link-local and the
// unspecified address pass, and a port without a chain (a container not
// known yet) is left to the layers, which hold its unknown addresses.
func TestIdentity(t *testing.T) {
	pol := loadPolicy(t, "testdata/containers.yaml")
	ctrs := []Container{
		{ID: "aaaaaaaaaaaa1111", Name: "worker-1", Labels: map[string]string{"role": "worker"},
			Endpoints: []Endpoint{{Network: "app_default", Port: "vethw1", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.10"), netip.MustParseAddr("fd00:20::10")}}}},
		{ID: "cccccccccccc3333", Name: "neighbour", Endpoints: []Endpoint{{Network: "app_default", Port: "vethn1", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.12")}}}},
	}
	r := CompileContainers(pol, testNetworks, ctrs)
	a := netip.MustParseAddr
	for _, tc := range []struct {
		port, src, dst string
		want           nft.VerdictKind
	}{
		{"vethw1", "172.20.0.10", "192.168.100.1", nft.Accept},
		{"vethw1", "172.20.0.12", "203.0.113.7", nft.Drop}, // the neighbour's address
		{"vethw1", "fd00:20::10", "2001:db8::1", nft.Accept},
		{"vethw1", "fd00:20::12", "2001:db8::1", nft.Drop},
		{"vethw1", "fe80::1", "ff02::1", nft.Accept},
		{"vethw1", "::", "ff02::1:ff00:10", nft.Accept},
		{"vethn1", "172.20.0.12", "203.0.113.7", nft.Accept},
		{"vethn1", "172.20.0.10", "192.168.100.1", nft.Drop}, // the worker's address
		{"vethn1", "fd00:20::12", "2001:db8::1", nft.Drop},   // no IPv6 address of its own
		{"vethx9", "172.20.0.10", "192.168.100.1", nft.Accept},
	} {
		tr, err := r.Table.Trace(nft.Packet{Hook: nft.HookIngress, IIfName: tc.port, Src: a(tc.src), Dst: a(tc.dst), L4Proto: 6, DPort: 80})
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.Verdict; got != tc.want {
			t.Errorf("%s: %s -> %s: %v; want %v\n%s", tc.port, tc.src, tc.dst, got, tc.want, tr)
		}
	}
	d := r.Denials["id_vethw1.identity"]
	if d == nil || d.Container == nil || d.Container.Name != "worker-1" || d.RuleID() != "identity" {
		t.Errorf("the identity denial of vethw1 = %+v", d)
	}
	// explain --container judges the port's identity check first.
	app := testNetworks[1]
	for _, tc := range []struct {
		src   string
		layer string
		pass  bool
	}{
		{"172.20.0.12", "identity", false},         // the neighbour's address, from the worker's port
		{"172.20.0.10", "container section", true}, // its own, to its proxy
	} {
		x, err := ExplainContainer(pol, testNetworks, ctrs, app, Probe{Src: a(tc.src), Dst: a("192.168.100.1"), Proto: policy.ProtoTCP, Port: 3128, Ingress: "vethw1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(x.Layers) == 0 || x.Layers[0].Layer != tc.layer || x.Passes != tc.pass || tc.layer == "identity" && (x.Container == nil || x.Container.Container.Name != "worker-1") {
			t.Errorf("from %s: layers %+v, passes %v, container %v; want %s first, passes %v", tc.src, x.Layers, x.Passes, x.Container, tc.layer, tc.pass)
		}
	}
}

// TestL2Identity checks the netdev table of the identity check: a port
// whose MAC is known gets a chain there (a container without an IPv4
// address may send ARP only from 0.0.0.0); one whose MAC is not known
// gets none, and a table without such ports has no netdev table.
func TestL2Identity(t *testing.T) {
	pol := loadPolicy(t, "testdata/containers.yaml")
	ctrs := []Container{
		{ID: "aaaaaaaaaaaa1111", Name: "v6only", Endpoints: []Endpoint{{Network: "app_default", Port: "vetha", MAC: mustMAC("02:00:00:00:00:0a"), Addrs: []netip.Addr{netip.MustParseAddr("fd00:20::10")}}}},
		{ID: "bbbbbbbbbbbb2222", Name: "nomac", Endpoints: []Endpoint{{Network: "app_default", Port: "vethb", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.11")}}}},
	}
	r := CompileContainers(pol, testNetworks, ctrs)
	nd := r.Table.Netdev
	if nd == nil {
		t.Fatalf("no netdev table:\n%s", r.Text())
	}
	if nd.Chain("l2_vethb") != nil || r.Table.Chain("id_vethb") == nil {
		t.Errorf("a port without a known MAC: want an inet identity chain and no netdev one:\n%s", r.Text())
	}
	c := nd.Chain("l2_vetha")
	if c == nil || c.Hook != nft.HookIngress || c.Device != "vetha" || len(c.Rules) != 3 {
		t.Fatalf("chain l2_vetha:\n%s", r.Text())
	}
	if got := c.Rules[2].Text(); !strings.HasPrefix(got, "meta protocol arp arp saddr ip != 0.0.0.0 counter goto l2_vetha.identity") {
		t.Errorf("ARP rule of a container without IPv4: %s", got)
	}
	if d := r.Denials["l2_vetha.identity"]; d == nil || d.Container == nil || d.Container.Name != "v6only" || d.Reason != ReasonIdentity {
		t.Errorf("denial of l2_vetha: %+v", d)
	}
	ctrs[0].Endpoints[0].MAC = nil
	if r := CompileContainers(pol, testNetworks, ctrs); r.Table.Netdev != nil {
		t.Errorf("a netdev table without ports of known MAC:\n%s", r.Text())
	}
}

// TestManySharersChainName keeps the chain of containers that share one
// network stack within the kernel's chain name length, however many share
// it.
func TestManySharersChainName(t *testing.T) {
	pol := loadPolicy(t, "testdata/containers.yaml")
	web := Container{ID: "aaaaaaaaaaaa0001", Name: "web", Endpoints: []Endpoint{{Network: "app_default", Port: "vethweb", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.20")}}}}
	ctrs := []Container{web}
	for i := range 30 {
		ctrs = append(ctrs, Container{ID: fmt.Sprintf("%016x", 0xb000+i), Name: fmt.Sprintf("w%d", i), Labels: map[string]string{"role": "worker"}, SharesNetworkOf: "web"})
	}
	r := CompileContainers(pol, testNetworks, ctrs)
	found := false
	for _, c := range r.Table.Chains {
		if len(c.Name) > 255 {
			t.Errorf("chain name of %d bytes: %s", len(c.Name), c.Name)
		}
		found = found || strings.HasPrefix(c.Name, "c_shared_")
	}
	if !found {
		t.Errorf("no chain of the shared network stack")
	}
}

// TestIngressLabelWarned warns of a container that carries the
// dockerfence.ingress label, which is not read yet: never silently
// skipped.
func TestIngressLabelWarned(t *testing.T) {
	pol := loadPolicy(t, "testdata/containers.yaml")
	c := Container{ID: "aaaaaaaaaaaa0009", Name: "db", Labels: map[string]string{policy.IngressLabel: "[{deny: any}]"},
		Endpoints: []Endpoint{{Network: "app_default", Port: "vethdb", Addrs: []netip.Addr{netip.MustParseAddr("172.20.0.30")}}}}
	r := CompileContainers(pol, testNetworks, []Container{c})
	if w := strings.Join(r.Warnings, "\n"); !strings.Contains(w, `container "db" (aaaaaaaaaaaa) carries the label dockerfence.ingress, which dockerfence does not read yet`) {
		t.Errorf("no warning of the ingress label:\n%s", w)
	}
}
