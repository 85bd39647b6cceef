package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/integration/dockerd"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/status"
	"github.com/google/go-cmp/cmp"
)

// dockerIngressPolicy fences every network's published ports: 8080 only to the
// outside's allowed address, every other port by ingress_default (%s);
// containers labelled tier=db only to the allowed address on 5432.
const dockerIngressPolicy = `version: 1
networks:
  - match: {name: "*"}
    egress:
      - allow: self
    egress_default: allow
    ingress:
      - allow: [198.51.100.10, "2001:db8:51::10"]
        ports: [8080]
        comment: the allowed client
      - deny: any
        ports: [8080]
        comment: nobody else on 8080
    ingress_default: %s
containers:
  - match: {label: "tier=db"}
    ingress:
      - allow: [198.51.100.10, "2001:db8:51::10"]
        proto: tcp
        ports: [5432]
        comment: the allowed client on the database
    ingress_default: deny
`

// Published ports of the ingress tests: web publishes 8080 and 8081 (to
// its ports 80 and 81), db 5432.
const (
	webPort, webPort2, dbPort = 8080, 8081, 5432
)

// ingressEnv is a dockerd in Host with an outside namespace in front of
// it, and the containers web and db on the network "web" (IPv4 and IPv6)
// publishing their ports.
type ingressEnv struct {
	*env
	d   *dockerd.Daemon
	out *topo.NS
	// bridge is the network's Linux bridge.
	bridge string
	// subnets are the network's subnets.
	subnets []string
	// pol is the policy file the daemon follows, "" while its table may
	// differ from what apply would write (no daemon, or a stopped one).
	pol string
}

// newIngressEnv starts dockerd (the engine of the suite, with IPv6 and
// ip6tables, and the extra daemon flags more) in Host, builds the outside
// namespace, creates the network web and runs web and db on it.
func newIngressEnv(t *testing.T, more ...string) *ingressEnv {
	eng := engine(t).WithIPv6("fd00:d0c::/64")
	eng.Args = append(eng.Args, more...)
	return newIngressEnvWith(t, eng)
}

// newIngressEnvWith is newIngressEnv with the engine eng as it is.
func newIngressEnvWith(t *testing.T, eng dockerd.Engine) *ingressEnv {
	e := newEnv(t)
	x := &ingressEnv{env: e, out: e.tp.AddOutside(t)}
	start := time.Now()
	x.d = dockerd.Start(t, e.tp.Host, eng)
	v, err := x.d.Client.ServerVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s dockerd %s (API %s) started with %q in %v", eng.Name, v.Version, v.APIVersion, eng.Args, time.Since(start).Round(time.Millisecond))
	x.createWeb(t, "10.40.0.0/24", "fd00:40::/64")
	return x
}

// createWeb creates the network web with the subnets and runs web and db
// on it, each serving its ports.
func (x *ingressEnv) createWeb(t *testing.T, subnet4, subnet6 string) {
	t.Helper()
	x.subnets = []string{subnet4, subnet6}
	_, x.bridge = x.d.CreateNetworkWith(t, "web", dockerd.NetworkOptions{Subnets: x.subnets, IPv6: true})
	x.d.Run(t, "web", "web", dockerd.RunOptions{Cmd: dockerd.EchoServer(80, 81),
		Publish: []string{fmt.Sprintf("%d:80", webPort), fmt.Sprintf("%d:81", webPort2)}})
	x.d.Run(t, "db", "web", dockerd.RunOptions{Cmd: dockerd.EchoServer(dbPort), Labels: map[string]string{"tier": "db"},
		Publish: []string{fmt.Sprintf("%d:%d", dbPort, dbPort)}})
	x.waitListening(t, "web", 80, 81)
	x.waitListening(t, "db", dbPort)
}

// removeWeb removes web, db and their network, as "docker compose down".
func (x *ingressEnv) removeWeb(t *testing.T) {
	t.Helper()
	x.d.RemoveContainer(t, "web")
	x.d.RemoveContainer(t, "db")
	x.d.RemoveNetwork(t, "web")
}

// waitListening waits until the container's servers listen on the ports.
func (x *ingressEnv) waitListening(t *testing.T, ctr string, ports ...int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, out := x.d.Exec(t, ctr, "netstat", "-ltn")
		all := true
		for _, p := range ports {
			all = all && strings.Contains(out, fmt.Sprintf(":%d ", p))
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s does not listen on %v:\n%s", ctr, ports, out)
		}
	}
}

// published is the address of a published port on Host's outside
// interface, in the family of src.
func published(src string, port int) string {
	if strings.Contains(src, ":") {
		return hostPort(topo.HostOut6, port)
	}
	return hostPort(topo.HostOut4, port)
}

// reach connects from the outside address src to the published port and
// reports "ok" (the container's greeting came), "refused", "timeout", or
// what else happened.
func (x *ingressEnv) reach(src string, port int) string {
	c, err := x.out.DialTCPFrom(src, published(src, port), dialTimeout)
	if err != nil {
		return harness.Outcome(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(dialTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "no greeting: " + err.Error()
	}
	if line != "hello\n" {
		return fmt.Sprintf("greeting %q", line)
	}
	return "ok"
}

// expectReach checks reach for each source and port against want and,
// when the daemon's table is what apply would write (x.pol set), that
// explain --ingress of the port's container agrees with the kernel.
func (x *ingressEnv) expectReach(t *testing.T, what string, want map[string]map[int]string) {
	t.Helper()
	for src, ports := range want {
		for port, w := range ports {
			got := x.reach(src, port)
			if got != w {
				t.Errorf("%s: %s -> %s: %s, want %s", what, src, published(src, port), got, w)
			}
			if x.pol != "" {
				x.explainAgrees(t, what, src, port, got)
			}
		}
	}
}

// explainAgrees runs explain --container --ingress for a connection from
// src to the published port and fails the test unless it passes exactly
// when the kernel let it through (got "ok").
func (x *ingressEnv) explainAgrees(t *testing.T, what, src string, port int, got string) {
	t.Helper()
	ctr := "web"
	if port == dbPort {
		ctr = "db"
	}
	out, stderr, err := x.dfStdout("--docker-host", "unix://"+x.d.Sock, "explain", "-c", x.pol, "--container", ctr,
		"--ingress", "--from", src, "--to-port", fmt.Sprint(port), "--json")
	var ex status.Explanation
	if err != nil || json.Unmarshal([]byte(out), &ex) != nil {
		t.Errorf("%s: explain --container %s --ingress --from %s --to-port %d: %v\n%s%s", what, ctr, src, port, err, out, stderr)
		return
	}
	if ex.Passes != (got == "ok") {
		t.Errorf("%s: explain --container %s --ingress --from %s --to-port %d: passes %v (decided by %s %s), the kernel: %s",
			what, ctr, src, port, ex.Passes, ex.DecidedBy, ex.Rule, got)
	}
}

// open is a TCP connection from outside to a published port, held open.
type open struct {
	c net.Conn
	r *bufio.Reader
}

// hold opens a connection from src to the published port and checks that
// the container greets and echoes on it.
func (x *ingressEnv) hold(t *testing.T, src string, port int) *open {
	t.Helper()
	c, err := x.out.DialTCPFrom(src, published(src, port), dialTimeout)
	if err != nil {
		t.Fatalf("%s -> %s: %v", src, published(src, port), err)
	}
	t.Cleanup(func() { c.Close() })
	o := &open{c: c, r: bufio.NewReader(c)}
	if got, err := o.echo("before"); err != nil || got != "hello\nbefore\n" {
		t.Fatalf("%s -> %s: the container said %q (%v), want its greeting and the echo", src, published(src, port), got, err)
	}
	return o
}

// echo sends a line and reads what comes back within two seconds: the
// greeting if it has not been read yet, and the echo; on an error, what
// came before it and the error.
func (o *open) echo(line string) (string, error) {
	o.c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(o.c, line+"\n"); err != nil {
		return "", err
	}
	var b strings.Builder
	for !strings.HasSuffix(b.String(), line+"\n") {
		s, err := o.r.ReadString('\n')
		b.WriteString(s)
		if err != nil {
			return b.String(), err
		}
	}
	return b.String(), nil
}

// fence starts "dockerfence run" with the policy at pol and waits until
// the network web has its own chain.
func (x *ingressEnv) fence(t *testing.T, pol string) *daemonProc {
	t.Helper()
	df := x.startDaemon(x.d, pol)
	df.waitLog(t, "table applied")
	x.waitFenced(x.bridge, time.Now())
	x.pol = pol
	return df
}

// reload writes content to the policy file pol, sends the daemon SIGHUP
// and waits until it has applied the table.
func (x *ingressEnv) reload(t *testing.T, df *daemonProc, pol, content string) {
	t.Helper()
	if err := os.WriteFile(pol, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	before := df.countLog(`msg="table applied"`, `reason="policy reload"`)
	df.cmd.Process.Signal(syscall.SIGHUP)
	df.waitCount(t, before, `msg="table applied"`, `reason="policy reload"`)
}

// everyone is the baseline: every outside address reaches every published
// port of both containers, over IPv4 and IPv6.
var everyone = map[string]map[int]string{
	topo.OutAllowed4:  {webPort: "ok", webPort2: "ok", dbPort: "ok"},
	topo.OutStranger4: {webPort: "ok", webPort2: "ok", dbPort: "ok"},
	topo.OutAllowed6:  {webPort: "ok", webPort2: "ok", dbPort: "ok"},
	topo.OutStranger6: {webPort: "ok", webPort2: "ok", dbPort: "ok"},
}

// baseline checks, without dockerfence, that every outside address
// reaches every published port, and that it is Docker's DNAT that takes
// them there: the container sees the outside address as the source of the
// SYN (docker-proxy would connect from the bridge's gateway).
func (x *ingressEnv) baseline(t *testing.T) {
	t.Helper()
	if tables := x.tp.Host.Run(t, "nft", "list", "tables"); strings.Contains(tables, "dockerfence") {
		t.Fatalf("the baseline needs the host without dockerfence's table:\n%s", tables)
	}
	syns := harness.CountSYNs(t, x.dockerNS(t, x.d, "web"))
	x.expectReach(t, "without dockerfence", everyone)
	for _, src := range []string{topo.OutAllowed4, topo.OutStranger4, topo.OutAllowed6, topo.OutStranger6} {
		for _, port := range []uint16{80, 81} {
			if n := syns.Count(netip.MustParseAddr(src), port); n == 0 {
				t.Errorf("without dockerfence: web saw no SYN from %s on its port %d (its SYNs by source: %v): not Docker's DNAT", src, port, syns.Sources(port))
			}
		}
	}
	// The ports as Docker gives them to dockerfence (discover).
	ins, err := x.d.Client.ContainerInspect(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("web's published ports as Docker reports them: %v", ins.NetworkSettings.Ports)
}

// TestIngressAgainstDocker proves ingress rules with real TCP connections
// from an outside namespace to the ports that a real dockerd publishes,
// through Docker's own DNAT, IPv4 and IPv6, with "dockerfence run"
// following Docker: first that without dockerfence everyone reaches every
// port; then that the allowed address reaches 8080 and a stranger is
// refused, that 8081 falls to ingress_default, that a tier=db container's
// section narrows its port to the allowed address, that tightening
// ingress_default with SIGHUP cuts an open connection with a reset seen by
// the client while the containers' own egress and the replies to it pass,
// and that a compose-style recreate of the network keeps the fence, by the
// "*" section alone while the daemon is stopped.
func TestIngressAgainstDocker(t *testing.T) {
	x := newIngressEnv(t)
	x.tp.Inet.ListenTCP(t, hostPort(topo.InetIP4, 80))
	x.tp.Inet.ListenTCP(t, hostPort(topo.InetIP6, 80))

	t.Run("without dockerfence", x.baseline)

	pol := x.write("policy.yaml", fmt.Sprintf(dockerIngressPolicy, "allow"))
	df := x.fence(t, pol)

	fenced := map[string]map[int]string{
		topo.OutAllowed4:  {webPort: "ok", webPort2: "ok", dbPort: "ok"},
		topo.OutStranger4: {webPort: "refused", webPort2: "ok", dbPort: "refused"},
		topo.OutAllowed6:  {webPort: "ok", webPort2: "ok", dbPort: "ok"},
		topo.OutStranger6: {webPort: "refused", webPort2: "ok", dbPort: "refused"},
	}
	t.Run("allowed, stranger, ingress_default and a container section", func(t *testing.T) {
		x.expectReach(t, "fenced", fenced)
		// The refused connections never reached the container.
		before := x.d.Accepted(t, "web", 80)
		for range 5 {
			x.reach(topo.OutStranger4, webPort)
		}
		if n := x.d.Accepted(t, "web", 80) - before; n != 0 {
			t.Errorf("web accepted %d connections from the stranger on 8080", n)
		}
		// logs names the container each denied connection went to, its
		// network, the published port (from the kernel's connection, or,
		// without ctnetlink, from Docker's mapping: web publishes 8080 on
		// its port 80 alone; db publishes 5432 on itself, which is no
		// other port to name), and the layer and rule that denied it.
		want := map[string]bool{
			"web web 80 8080 ingress 2 ":                                        false, // the network's deny of 8080
			"db web 5432 0 container section ingress_default container section": false, // db's section
		}
		var lines []string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			out := x.mustDFDocker(x.d, "logs", "--json")
			lines = strings.Split(strings.TrimSpace(out), "\n")
			for _, l := range lines {
				var ev denylog.Event
				if json.Unmarshal([]byte(l), &ev) != nil || ev.Hook != "ingress" || (ev.Src != topo.OutStranger4 && ev.Src != topo.OutStranger6) {
					continue
				}
				if ev.PublishedPort != 0 && ev.PublishedPortFrom != denylog.PortFromKernel && ev.PublishedPortFrom != denylog.PortFromDocker {
					t.Errorf("logs --json: published port %d from %q, want kernel or docker: %s", ev.PublishedPort, ev.PublishedPortFrom, l)
				}
				if ev.Section != 1 {
					t.Errorf("logs --json: section %d, want the network's 1: %s", ev.Section, l)
				}
				k := fmt.Sprintf("%s %s %d %d %s %s", ev.Container, ev.Network, ev.Port, ev.PublishedPort, ev.Rule, ev.Layer)
				for w := range want {
					if strings.HasPrefix(k, w) && !want[w] {
						want[w] = true
						t.Logf("logs --json: %s", l)
					}
				}
			}
			if !slices.Contains(slices.Collect(maps.Values(want)), false) {
				break
			}
		}
		for w, seen := range want {
			if !seen {
				t.Errorf("logs --json has no ingress denial of the stranger %q:\n%s", w, strings.Join(lines, "\n"))
			}
		}
	})

	t.Run("status shows each published port and who may reach it", func(t *testing.T) {
		want := map[string]string{
			"web 8080->80/tcp [0.0.0.0 ::]":  status.ReachRestricted,
			"web 8081->81/tcp [0.0.0.0 ::]":  status.ReachOpen,
			"db 5432->5432/tcp [0.0.0.0 ::]": status.ReachRestricted,
		}
		// From the daemon, and built by status itself (no daemon on
		// another socket).
		for _, socket := range []string{x.socket(), filepath.Join(x.dir, "none.sock")} {
			out, stderr, err := x.dfStdout("--docker-host", "unix://"+x.d.Sock, "--socket", socket, "status", "-c", x.pol, "--json")
			var st status.Status
			if err != nil || json.Unmarshal([]byte(out), &st) != nil {
				t.Fatalf("status --json --socket %s: %v\n%s%s", socket, err, out, stderr)
			}
			got := map[string]string{}
			for _, p := range st.Published {
				got[fmt.Sprintf("%s %d->%d/%s %v", p.Container, p.HostPort, p.ContainerPort, p.Proto, p.HostIPs)] = p.Verdict
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("status --json --socket %s: published ports (-want +got):\n%s\n%s", socket, diff, out)
			}
		}
		text := x.mustDFDocker(x.d, "status")
		if !strings.Contains(text, "published ports") || !strings.Contains(text, "container section 1 ingress 1 allow [198.51.100.10, 2001:db8:51::10] tcp/5432") {
			t.Errorf("status does not list the published ports with their rules:\n%s", text)
		}
	})

	t.Run("tightening ingress_default cuts open connections", func(t *testing.T) {
		stranger := x.hold(t, topo.OutStranger4, webPort2)
		stranger6 := x.hold(t, topo.OutStranger6, webPort2)
		allowed := x.hold(t, topo.OutAllowed4, webPort)
		x.reload(t, df, pol, fmt.Sprintf(dockerIngressPolicy, "deny"))
		// deny_action reject (the default): the next packet the client
		// sends is answered with a TCP reset.
		for name, o := range map[string]*open{"IPv4": stranger, "IPv6": stranger6} {
			if got, err := o.echo("after"); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the stranger's open %s connection to 8081 after ingress_default: deny: %q, %v; want a reset", name, got, err)
			}
		}
		if got, err := allowed.echo("after"); err != nil || got != "after\n" {
			t.Errorf("the allowed client's open connection to 8080: %q, %v; want the echo", got, err)
		}
		x.expectReach(t, "ingress_default: deny", map[string]map[int]string{
			topo.OutAllowed4:  {webPort: "ok", webPort2: "refused", dbPort: "refused"},
			topo.OutStranger4: {webPort: "refused", webPort2: "refused", dbPort: "refused"},
			topo.OutAllowed6:  {webPort: "ok", webPort2: "refused", dbPort: "refused"},
		})

		// deny_action drop: the client's packets go unanswered.
		x.reload(t, df, pol, fmt.Sprintf(dockerIngressPolicy, "allow"))
		held := x.hold(t, topo.OutStranger4, webPort2)
		x.reload(t, df, pol, "settings: {deny_action: drop}\n"+fmt.Sprintf(dockerIngressPolicy, "deny"))
		if got, err := held.echo("after"); !topo.IsTimeout(err) {
			t.Errorf("the stranger's open connection to 8081 after ingress_default: deny with deny_action: drop: %q, %v; want no answer", got, err)
		}
		if got := x.reach(topo.OutStranger4, webPort2); got != "timeout" {
			t.Errorf("a new connection of the stranger to 8081 with deny_action: drop: %s, want timeout", got)
		}
		x.reload(t, df, pol, fmt.Sprintf(dockerIngressPolicy, "deny"))
	})

	t.Run("the containers' own egress and its replies pass", func(t *testing.T) {
		for _, ctr := range []string{"web", "db"} {
			for _, addr := range []string{topo.InetIP4, topo.InetIP6} {
				code, out := x.d.Exec(t, ctr, "sh", "-c", "echo ping | nc -w 2 "+addr+" 80")
				if code != 0 || !strings.Contains(out, "hello from") || !strings.Contains(out, "ping") {
					t.Errorf("%s -> %s:80 under ingress_default: deny: exit %d, %q; want the greeting and the echo", ctr, addr, code, out)
				}
			}
		}
	})

	// recreate removes web, db and their network and creates them again
	// on the subnets while the daemon is stopped, so that only the table
	// as it was stands: it checks that the new bridge is not in the table,
	// expects paused there, then lets the daemon continue and expects
	// after once the network has its own chain.
	recreate := func(t *testing.T, subnet4, subnet6 string, paused, after map[string]map[int]string) {
		t.Helper()
		old := x.bridge
		df.cmd.Process.Signal(syscall.SIGSTOP)
		defer df.cmd.Process.Signal(syscall.SIGCONT) // also when the test fails
		x.pol = ""                                   // the kernel holds the table of before
		x.removeWeb(t)
		x.createWeb(t, subnet4, subnet6)
		if x.bridge == old {
			t.Fatalf("the network was recreated on the same bridge %s", old)
		}
		if x.mapped(x.bridge) {
			t.Fatal("the new bridge has its own chain while the daemon is stopped: the test proves nothing")
		}
		x.expectReach(t, "recreated, the daemon stopped", paused)
		df.cmd.Process.Signal(syscall.SIGCONT)
		took := x.waitFenced(x.bridge, time.Now())
		x.pol = pol
		t.Logf("the recreated network had its own chain %v after the daemon continued", took.Round(time.Millisecond))
		x.expectReach(t, "recreated, its own section in", after)
	}

	t.Run(`compose-style recreate: the "*" section fences the new bridge`, func(t *testing.T) {
		// Without container sections, the "*" section's ingress alone
		// judges the new bridge until it has its own chain.
		networksOnly, _, _ := strings.Cut(fmt.Sprintf(dockerIngressPolicy, "allow"), "containers:")
		x.reload(t, df, pol, networksOnly)
		want := map[string]map[int]string{
			topo.OutAllowed4:  {webPort: "ok", webPort2: "ok", dbPort: "ok"},
			topo.OutStranger4: {webPort: "refused", webPort2: "ok", dbPort: "ok"},
			topo.OutAllowed6:  {webPort: "ok", webPort2: "ok", dbPort: "ok"},
			topo.OutStranger6: {webPort: "refused", webPort2: "ok", dbPort: "ok"},
		}
		recreate(t, "10.41.0.0/24", "fd00:41::/64", want, want)
	})

	t.Run("compose-style recreate: with container sections the new bridge is held", func(t *testing.T) {
		// A container section with ingress keys may match any container
		// of the new bridge, which the stopped daemon cannot classify:
		// as for egress (issue 16), connections into it are held rather
		// than judged by the "*" section alone, which would let anyone
		// reach the new db's 5432. Held connections are dropped, not
		// refused (as held packets of egress are): the client retries,
		// and its SYN passes once the daemon has classified the
		// container, if the rules allow it.
		x.reload(t, df, pol, fmt.Sprintf(dockerIngressPolicy, "allow"))
		// The network section judges first: the stranger's refusal on
		// 8080 is its rule's.
		held := map[string]map[int]string{}
		for src, want := range fenced {
			held[src] = map[int]string{webPort: "timeout", webPort2: "timeout", dbPort: "timeout"}
			if want[webPort] == "refused" {
				held[src][webPort] = "refused"
			}
		}
		recreate(t, "10.42.0.0/24", "fd00:42::/64", held, fenced)
	})

	t.Run("the containers' IPv6 starts logged no denial", func(t *testing.T) {
		// Each recreate started web and db on a new IPv6 network with
		// the table in place: their kernels' MLD reports (from :: during
		// duplicate address detection, then from the link-local
		// address), duplicate address detection and router
		// solicitations pass as link-local control traffic, and are
		// neither held nor denied as spoofed. (Docker 29 also sends
		// unsolicited neighbour advertisements to ff02::1 from the
		// container's global address: while the container is held they
		// are held too, for the check of their target is the identity
		// chain's, which a container not classified yet does not have.)
		out := x.mustDFDocker(x.d, "logs", "--json")
		n, adverts := 0, 0
		for l := range strings.Lines(out) {
			var ev denylog.Event
			if json.Unmarshal([]byte(l), &ev) != nil {
				continue
			}
			n++
			switch {
			case ev.Src == "::" && strings.HasPrefix(ev.Rule, "id_"):
				// Seen once in CI (a duplicate address detection of a
				// recreated container's link-local address, dropped by
				// its port's identity chain, whose set holds ::): not
				// explained yet, and not the base chains' link-local
				// rules this subtest is about. Reported, not failed.
				t.Logf("logs --json: an identity chain denied a packet from :: (open question): %s", strings.TrimSpace(l))
			case ev.Src == "::" || strings.HasPrefix(ev.Src, "fe80:"):
				t.Errorf("logs --json: a container's IPv6 link-local traffic was denied: %s", strings.TrimSpace(l))
			case ev.Dst == "ff02::1" && ev.Proto == "icmpv6" && ev.Rule == "held":
				adverts++
			}
		}
		t.Logf("logs --json: %d denials, none of IPv6 link-local traffic; %d held to ff02::1 from a global address (unsolicited neighbour advertisements)", n, adverts)
	})
}
