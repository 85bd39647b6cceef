package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// containersPolicy fences the test network with the field report's rules
// and gives workers (label role=worker) the proxy alone.
const containersPolicy = `version: 1
networks:
  - match: {name: "*"}
    egress:
      - allow: self
      - deny: 192.168.100.50
        comment: database
    egress_default: allow
containers:
  - match: {label: "role=worker"}
    egress:
      - allow: 192.168.100.1
        proto: tcp
        ports: [3128]
    egress_default: deny
`

// TestContainerLayer runs the container layer with real packets, the
// containers listed by the fake Docker API: a worker reaches only its
// proxy; a neighbour without rules follows the network section alone; a
// container whose label denies the internet loses it; a container whose
// label does not parse is cut off; an address no container holds is held;
// and the worker's section cannot open what the network denies. Then the
// daemon follows a container that starts: held until it is listed, then
// judged by its own rules.
func TestContainerLayer(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	tp := e.tp
	neighbour := tp.AddContainer(t, "nb", "172.20.0.3", "")
	labelled := tp.AddContainer(t, "lb", "172.20.0.4", "")
	broken := tp.AddContainer(t, "bk", "172.20.0.5", "")
	stranger := tp.AddContainer(t, "st", "172.20.0.6", "")
	fake := harness.StartDocker(t, filepath.Join(e.dir, "docker.sock"))
	fake.Set([]harness.Network{{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}})
	// Each with its MAC, by which dockerfence finds its bridge port: a
	// container whose port is not found is held.
	ctr := func(id, name, addr string, ns *topo.NS, labels map[string]string) harness.Container {
		return harness.Container{ID: strings.Repeat(id, 64), Name: name, Image: "busybox", Labels: labels, Endpoints: []harness.Endpoint{{Network: "app", IPv4: addr, MAC: macOf(t, ns)}}}
	}
	listed := []harness.Container{
		ctr("a", "worker", topo.CtrIP4, tp.Ctr, map[string]string{"role": "worker"}),
		ctr("b", "neighbour", "172.20.0.3", neighbour, nil),
		ctr("c", "labelled", "172.20.0.4", labelled, map[string]string{"dockerfence.egress": "[{deny: " + topo.InetIP4 + ", comment: no internet}]"}),
		ctr("d", "broken", "172.20.0.5", broken, map[string]string{"dockerfence.egress": "[{deny: 10.0.0.0/33}]"}),
	}
	fake.SetContainers(listed)
	pol := e.write("policy.yaml", containersPolicy)
	dh := []string{"--docker-host", fake.URL}

	stdout, stderr, err := e.dfStdout(append([]string{"apply", "-c", pol}, dh...)...)
	if err != nil {
		t.Fatalf("apply: %v\n%s%s", err, stdout, stderr)
	}
	t.Logf("apply:\n%s%s", stdout, stderr)
	if !strings.Contains(stdout, "3 containers judged by rules of their own") || !strings.Contains(stdout, "held until dockerfence run") {
		t.Errorf("apply does not say which containers it judges and that only the daemon follows new ones:\n%s", stdout)
	}
	if !strings.Contains(stderr, `container \"broken\" (dddddddddddd): its label does not parse`) {
		t.Errorf("apply does not report the broken label with the container's name:\n%s", stderr)
	}
	proxy, db, inet := hostPort(topo.LANProxy4, 3128), hostPort(topo.LANDB4, 5432), hostPort(topo.InetIP4, 80)
	for _, c := range []struct {
		who    string
		ns     *topo.NS
		probes []probe
	}{
		{"worker", tp.Ctr, []probe{{"its proxy", "tcp", proxy, "ok"}, {"the internet", "tcp", inet, "refused"}, {"the database (its network denies)", "tcp", db, "refused"}, {"the proxy's other port", "tcp", hostPort(topo.LANProxy4, 5432), "refused"}}},
		{"neighbour", neighbour, []probe{{"the internet", "tcp", inet, "ok"}, {"the proxy", "tcp", proxy, "ok"}, {"the database", "tcp", db, "refused"}}},
		{"labelled", labelled, []probe{{"the internet (its label denies)", "tcp", inet, "refused"}, {"the proxy", "tcp", proxy, "ok"}}},
		{"broken label", broken, []probe{{"the internet", "tcp", inet, "refused"}, {"the proxy", "tcp", proxy, "refused"}}},
		{"not listed (held)", stranger, []probe{{"the internet", "tcp", inet, "timeout"}, {"the proxy", "tcp", proxy, "timeout"}}},
	} {
		t.Run(c.who, func(t *testing.T) { e.expect(c.ns, c.probes) })
	}

	// status lists the containers with rules of their own and what they
	// denied, and the packets held.
	st := e.statusJSON(append([]string{"-c", pol}, dh...)...)
	got := map[string]string{}
	for _, c := range st.Containers {
		got[c.Name] = fmt.Sprintf("section %d, label rules %d, label error %v, denied>0 %v", c.Section, c.LabelRules, c.LabelError != "", c.Denied > 0)
	}
	want := map[string]string{
		"worker":   "section 1, label rules 0, label error false, denied>0 true",
		"labelled": "section 0, label rules 1, label error false, denied>0 true",
		"broken":   "section 0, label rules 0, label error true, denied>0 true",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("status --json containers (-want +got):\n%s", d)
	}
	if len(st.Networks) != 1 || st.Networks[0].Held == 0 || st.ExitCode != 0 {
		t.Errorf("status --json: networks %+v, exit code %d; want app with packets held, in sync", st.Networks, st.ExitCode)
	}
	if text := e.mustDF(append([]string{"status", "-c", pol}, dh...)...); !strings.Contains(text, "container worker (aaaaaaaaaaaa): container section 1 {label: \"role=worker\"}") || !strings.Contains(text, "packets held") {
		t.Errorf("status does not show the containers and the held packets:\n%s", text)
	}

	// The daemon follows the stranger's start: listed, it is judged as a
	// container without rules.
	e.mustDF("delete")
	df := e.launchDaemon(binary, append([]string{"-c", pol}, dh...)...)
	df.waitLog(t, "table applied")
	e.expect(stranger, []probe{{"the internet before it is listed (held)", "tcp", inet, "timeout"}})
	fake.SetContainers(append(listed, ctr("e", "stranger", "172.20.0.6", stranger, nil)))
	df.waitLog(t, "Docker events\" networks=1")
	e.expect(stranger, []probe{{"the internet once listed", "tcp", inet, "ok"}, {"the database", "tcp", db, "refused"}})
	e.expect(tp.Ctr, []probe{{"the worker, still", "tcp", inet, "refused"}})
}

// churnPolicy gives the flooding container (label role=flooder) the
// control port on the internet host alone, so that the database is denied
// by its container section, and gives the containers that come and go
// sections of their own.
const churnPolicy = `version: 1
networks:
  - match: {name: "*"}
    egress_default: allow
containers:
  - match: {label: "role=flooder"}
    egress:
      - allow: 203.0.113.10
        proto: udp
        ports: [9998]
    egress_default: deny
  - match: {label: "role=web"}
    egress:
      - deny: 192.168.100.0/24
  - match: {label: "role=batch"}
    egress_default: deny
`

// TestLeakContainerChurn floods the database from a container whose
// section denies it, while 100 containers of other sections (and none)
// start and then stop on its network, one Docker event each, with the
// daemon following: not one datagram may arrive, and the flooder's own
// allowed traffic (the control) must flow throughout: its address never
// leaves the container layer's map, or its packets would be held.
func TestLeakContainerChurn(t *testing.T) {
	e := newEnv(t)
	fake := harness.StartDocker(t, filepath.Join(e.dir, "docker.sock"))
	fake.Set([]harness.Network{{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}})
	flooder := harness.Container{ID: strings.Repeat("f", 64), Name: "flooder", Image: "busybox", Labels: map[string]string{"role": "flooder"}, Endpoints: []harness.Endpoint{{Network: "app", IPv4: topo.CtrIP4, MAC: macOf(t, e.tp.Ctr)}}}
	fake.SetContainers([]harness.Container{flooder})
	e.leakBaseline(t, e.tp.Ctr)
	pol := e.write("policy.yaml", churnPolicy)
	df := e.launchDaemon(binary, "-c", pol, "--docker-host", fake.URL)
	df.waitLog(t, "table applied")
	roles := []string{"web", "batch", ""}
	r := e.noLeak(t, "100 containers of other sections start and stop", e.tp.Ctr, leakTarget(), leakPPS, func() {
		running := []harness.Container{flooder}
		for i := range 100 {
			c := harness.Container{ID: fmt.Sprintf("%064x", i+1), Name: fmt.Sprintf("c%d", i), Image: "busybox",
				Endpoints: []harness.Endpoint{{Network: "app", IPv4: fmt.Sprintf("172.20.1.%d", i+1)}}}
			if role := roles[i%len(roles)]; role != "" {
				c.Labels = map[string]string{"role": role}
			}
			running = append(running, c)
			fake.SetContainers(running)
			time.Sleep(5 * time.Millisecond)
		}
		for len(running) > 1 {
			running = running[:len(running)-1]
			fake.SetContainers(running)
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // the last sync
	})
	if lost := r.ctlSent - r.ctlGot; lost != 0 {
		t.Errorf("%d of %d control datagrams from the flooder were lost: its allowed traffic was held or denied during the churn", lost, r.ctlSent)
	}
	if n := df.countLog("table applied"); n < 10 {
		t.Errorf("the daemon applied the table %d times during 200 container events; want it to follow them", n)
	}
	t.Logf("the daemon applied the table %d times", df.countLog("table applied"))
}

// macOf returns the hardware address of eth0 in ns.
func macOf(t *testing.T, ns *topo.NS) string {
	t.Helper()
	f := strings.Fields(ns.Run(t, "ip", "-o", "link", "show", "eth0"))
	for i, w := range f {
		if w == "link/ether" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no hardware address of eth0 in %s", ns.Name)
	return ""
}

// TestContainerIdentity forges a neighbour's address from a worker's
// namespace: UDP datagrams from the neighbour's address to the internet,
// which the worker's section denies and the neighbour's rules allow. Before
// dockerfence they arrive; under it the worker's bridge port drops them
// (the identity check), while the neighbour's own datagrams still arrive
// and the worker's own are denied by its section.
func TestContainerIdentity(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	tp := e.tp
	neighbour := tp.AddContainer(t, "nb", "172.20.0.3", "")
	fake := harness.StartDocker(t, filepath.Join(e.dir, "docker.sock"))
	fake.Set([]harness.Network{{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}})
	fake.SetContainers([]harness.Container{
		{ID: strings.Repeat("a", 64), Name: "worker", Labels: map[string]string{"role": "worker"}, Endpoints: []harness.Endpoint{{Network: "app", IPv4: topo.CtrIP4, MAC: macOf(t, tp.Ctr)}}},
		{ID: strings.Repeat("b", 64), Name: "neighbour", Endpoints: []harness.Endpoint{{Network: "app", IPv4: "172.20.0.3", MAC: macOf(t, neighbour)}}},
	})
	// The worker holds the neighbour's address too, as a forger would.
	tp.Ctr.Run(t, "ip", "addr", "add", "172.20.0.3/32", "dev", "eth0")
	target := hostPort(topo.InetIP4, 7009)
	counter := harness.ListenUDPCounter(t, tp.Inet, target)
	send := func(ns *topo.NS, src string) int64 {
		t.Helper()
		before := counter.Count()
		c, err := ns.DialUDPFrom(src, target)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 20 {
			c.Write([]byte("forged?"))
		}
		time.Sleep(300 * time.Millisecond)
		return counter.Count() - before
	}
	if n := send(tp.Ctr, "172.20.0.3"); n != 20 {
		t.Fatalf("without dockerfence %d of 20 forged datagrams arrived; the test proves nothing", n)
	}
	pol := e.write("policy.yaml", containersPolicy)
	if out, stderr, err := e.dfStdout("apply", "-c", pol, "--docker-host", fake.URL); err != nil {
		t.Fatalf("apply: %v\n%s%s", err, out, stderr)
	}
	for _, port := range []string{"id_"} {
		if l := e.tp.Host.Run(t, "nft", "list", "table", "inet", "dockerfence"); strings.Count(l, "hook ingress device") != 2 || !strings.Contains(l, port) {
			t.Fatalf("no identity chain on each container's port:\n%s", l)
		}
	}
	if n := send(tp.Ctr, "172.20.0.3"); n != 0 {
		t.Errorf("%d of 20 datagrams the worker sent from the neighbour's address arrived; want none", n)
	}
	if n := send(tp.Ctr, topo.CtrIP4); n != 0 {
		t.Errorf("%d of 20 datagrams the worker sent from its own address arrived; its section denies them", n)
	}
	if n := send(neighbour, "172.20.0.3"); n != 20 {
		t.Errorf("%d of 20 of the neighbour's own datagrams arrived; want all", n)
	}
	counted := false
	for _, l := range strings.Split(e.tp.Host.Run(t, "nft", "list", "table", "inet", "dockerfence"), "\n") {
		counted = counted || strings.Contains(l, "counter packets 20 ") && strings.Contains(l, ".identity")
	}
	if !counted {
		t.Errorf("no identity rule counted the 20 forged datagrams:\n%s", e.tp.Host.Run(t, "nft", "list", "table", "inet", "dockerfence"))
	}
}

// TestContainerIdentityUnchecked forges a neighbour's address from a
// container whose bridge port dockerfence has not found yet (Docker
// reports it without its MAC, as in the moment after it starts): no
// identity check is on its port, so its packets carry no mark of one, and
// the container layer holds them instead of judging them by the
// neighbour's rules, which would let them through; and the bridge table
// drops them before, as a known container's address from another port.
// Each check stops them alone. The neighbour, whose port is checked,
// still gets through.
func TestContainerIdentityUnchecked(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	tp := e.tp
	neighbour := tp.AddContainer(t, "nb", "172.20.0.3", "")
	fake := harness.StartDocker(t, filepath.Join(e.dir, "docker.sock"))
	fake.Set([]harness.Network{{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}})
	fake.SetContainers([]harness.Container{
		// No MAC: its port is not found, as while it starts.
		{ID: strings.Repeat("a", 64), Name: "worker", Labels: map[string]string{"role": "worker"}, Endpoints: []harness.Endpoint{{Network: "app", IPv4: topo.CtrIP4}}},
		{ID: strings.Repeat("b", 64), Name: "neighbour", Endpoints: []harness.Endpoint{{Network: "app", IPv4: "172.20.0.3", MAC: macOf(t, neighbour)}}},
	})
	tp.Ctr.Run(t, "ip", "addr", "add", "172.20.0.3/32", "dev", "eth0")
	target := hostPort(topo.InetIP4, 7009)
	counter := harness.ListenUDPCounter(t, tp.Inet, target)
	send := func(ns *topo.NS, src string) int64 {
		t.Helper()
		before := counter.Count()
		c, err := ns.DialUDPFrom(src, target)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for range 20 {
			c.Write([]byte("forged?"))
		}
		time.Sleep(300 * time.Millisecond)
		return counter.Count() - before
	}
	apply := func(pol string) {
		t.Helper()
		if out, stderr, err := e.dfStdout("apply", "-c", pol, "--docker-host", fake.URL); err != nil {
			t.Fatalf("apply: %v\n%s%s", err, out, stderr)
		}
	}
	// Two checks stop the forger, each alone: the bridge table's claims
	// chain (the neighbour's address from another port than its own)
	// and the mark of a checked port. Without both, the forger gets the
	// neighbour's rules: the test can fail.
	noBridge := func() { tp.Host.Run(t, "nft", "delete", "table", "bridge", "dockerfence") }
	nomark := e.write("nomark.yaml", strings.Replace(containersPolicy, "version: 1\n", "version: 1\nsettings: {identity_mark: 0}\n", 1))
	apply(nomark)
	noBridge()
	if n := send(tp.Ctr, "172.20.0.3"); n != 20 {
		t.Fatalf("with identity_mark 0 and no bridge table, %d of 20 datagrams forged from an unchecked port arrived; want all (the neighbour's rules allow them), or the test proves nothing", n)
	}
	apply(nomark)
	if n := send(tp.Ctr, "172.20.0.3"); n != 0 {
		t.Errorf("with identity_mark 0, %d of 20 datagrams the worker sent from the neighbour's address, before its port is checked, arrived; want none (the bridge table's claims)", n)
	}
	if got := countedBy(tp.Host.Run(t, "nft", "list", "table", "bridge", "dockerfence"), "a known container's IPv4 source from another port"); got < 20 {
		t.Errorf("the bridge table's rule counted %d of the 20 forged datagrams", got)
	}
	apply(e.write("policy.yaml", containersPolicy))
	noBridge()
	if n := send(tp.Ctr, "172.20.0.3"); n != 0 {
		t.Errorf("%d of 20 datagrams the worker sent from the neighbour's address, before its port is checked, arrived; want none (held)", n)
	}
	if n := send(neighbour, "172.20.0.3"); n != 20 {
		t.Errorf("%d of 20 of the neighbour's own datagrams arrived; want all", n)
	}
	l := e.tp.Host.Run(t, "nft", "list", "table", "inet", "dockerfence")
	counted := false
	for _, line := range strings.Split(l, "\n") {
		var n int
		if _, after, ok := strings.Cut(line, "counter packets "); ok && strings.Contains(line, "identity check is not in yet") {
			fmt.Sscan(after, &n)
		}
		counted = counted || n >= 20
	}
	if !counted {
		t.Errorf("the unchecked rule did not count the 20 forged datagrams:\n%s", l)
	}
}
