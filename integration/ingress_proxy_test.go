package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/integration/dockerd"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/status"
)

// TestIngressThroughDockerProxy proves the docker-proxy path of ingress
// with real TCP connections from an outside namespace, against a real
// dockerd in its default configuration for IPv6: the userland proxy on,
// and no ip6tables (Debian's Docker 20.10 without --ip6tables; Docker 29
// with --ip6tables=false), so that Docker DNATs IPv4 connections to
// published ports but leaves IPv6 ones to docker-proxy, which accepts
// them on the host (input hook) and connects to the container itself.
// Without dockerfence, an IPv6 stranger reaches every published port
// through docker-proxy (the container sees the connection come from the
// host, not from the stranger); fenced, the allowed IPv6 address reaches
// them and the stranger is refused with a reset where the rules deny,
// IPv4 is judged as before, the host's own connections (localhost) are
// not ingress, and logs and status say so.
func TestIngressThroughDockerProxy(t *testing.T) {
	eng := engine(t)
	eng.Args = append(eng.Args, "--ipv6", "--fixed-cidr-v6", "fd00:d0c::/64")
	if eng.Name == "docker29" {
		eng.Args = append(eng.Args, "--ip6tables=false")
	}
	x := newIngressEnvWith(t, eng)

	t.Run("without dockerfence the IPv6 stranger passes docker-proxy", func(t *testing.T) {
		if tables := x.tp.Host.Run(t, "nft", "list", "tables"); strings.Contains(tables, "dockerfence") {
			t.Fatalf("the baseline needs the host without dockerfence's table:\n%s", tables)
		}
		syns := harness.CountSYNs(t, x.dockerNS(t, x.d, "web"))
		x.expectReach(t, "without dockerfence", everyone)
		for _, src := range []string{topo.OutAllowed6, topo.OutStranger6} {
			if n := syns.Count(netip.MustParseAddr(src), 80); n != 0 {
				t.Errorf("without dockerfence: web saw %d SYNs from %s itself: Docker DNATs IPv6, docker-proxy is not in the path", n, src)
			}
		}
		for _, src := range []string{topo.OutAllowed4, topo.OutStranger4} {
			if n := syns.Count(netip.MustParseAddr(src), 80); n == 0 {
				t.Errorf("without dockerfence: web saw no SYN from %s: IPv4 is not DNAT'ed (sources: %v)", src, syns.Sources(80))
			}
		}
		t.Logf("web's SYNs on port 80 by source (docker-proxy connects from the host): %v", syns.Sources(80))
	})

	pol := x.write("policy.yaml", fmt.Sprintf(dockerIngressPolicy, "allow"))
	df := x.fence(t, pol)

	t.Run("fenced: the rules judge the docker-proxy path", func(t *testing.T) {
		x.expectReach(t, "fenced", map[string]map[int]string{
			topo.OutAllowed4:  {webPort: "ok", webPort2: "ok", dbPort: "ok"},
			topo.OutStranger4: {webPort: "refused", webPort2: "ok", dbPort: "refused"},
			topo.OutAllowed6:  {webPort: "ok", webPort2: "ok", dbPort: "ok"},
			topo.OutStranger6: {webPort: "refused", webPort2: "ok", dbPort: "refused"},
		})
		// The refused connections never reached the container: docker-proxy
		// never accepted them, so it never connected.
		before := x.d.Accepted(t, "web", 80)
		refused := 0
		for range 5 {
			if x.reach(topo.OutStranger6, webPort) == "refused" {
				refused++
			}
		}
		if n := x.d.Accepted(t, "web", 80) - before; n != 0 || refused != 5 {
			t.Errorf("the IPv6 stranger on 8080: %d of 5 refused, web accepted %d", refused, n)
		}
		// The kernel's counters: the input chain judged them.
		table := x.tp.Host.Run(t, "nft", "list", "chain", "inet", "dockerfence", "ingp_tcp_8080")
		t.Logf("the docker-proxy path of 8080:\n%s", table)
		if !strings.Contains(table, "jump ing_") || strings.Contains(table, "counter packets 0 ") {
			t.Errorf("chain ingp_tcp_8080 does not jump to the network's ingress chain, or never counted:\n%s", table)
		}
	})

	t.Run("explain judges the docker-proxy path as the kernel does", func(t *testing.T) {
		for _, tc := range []struct {
			ctr, src string
			port     int
		}{{"web", topo.OutStranger6, webPort}, {"web", topo.OutAllowed6, webPort}, {"web", topo.OutStranger6, webPort2}, {"db", topo.OutStranger6, dbPort}, {"db", topo.OutAllowed6, dbPort}} {
			got := x.reach(tc.src, tc.port)
			out, stderr, err := x.dfStdout("--docker-host", "unix://"+x.d.Sock, "explain", "-c", x.pol, "--container", tc.ctr,
				"--ingress", "--from", tc.src, "--to-port", fmt.Sprint(tc.port), "--json")
			var ex status.Explanation
			if err != nil || json.Unmarshal([]byte(out), &ex) != nil {
				t.Fatalf("explain: %v\n%s%s", err, out, stderr)
			}
			if ex.DockerProxy == nil || ex.DockerProxy.Passes != (got == "ok") || ex.DockerProxy.Packet.Port != tc.port {
				t.Errorf("explain --container %s --ingress --from %s --to-port %d: docker_proxy %+v; the kernel: %s", tc.ctr, tc.src, tc.port, ex.DockerProxy, got)
			}
		}
		text := x.mustDFDocker(x.d, "explain", "-c", x.pol, "--container", "web", "--ingress", "--from", topo.OutStranger6, "--to-port", fmt.Sprint(webPort))
		t.Logf("explain --container web --ingress --from %s --to-port %d:\n%s", topo.OutStranger6, webPort, text)
		if !strings.Contains(text, "through docker-proxy") || !strings.Contains(text, "deny (reject), decided by network section 1 ingress 2") {
			t.Errorf("explain does not name the docker-proxy path and its verdict:\n%s", text)
		}
	})

	t.Run("tightening ingress_default cuts open connections through docker-proxy", func(t *testing.T) {
		stranger := x.hold(t, topo.OutStranger6, webPort2)
		allowed := x.hold(t, topo.OutAllowed6, webPort)
		x.reload(t, df, pol, fmt.Sprintf(dockerIngressPolicy, "deny"))
		if got, err := stranger.echo("after"); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the IPv6 stranger's open connection to 8081 after ingress_default: deny: %q, %v; want a reset", got, err)
		}
		if got, err := allowed.echo("after"); err != nil || got != "after\n" {
			t.Errorf("the allowed IPv6 client's open connection to 8080: %q, %v; want the echo", got, err)
		}
		if got := x.reach(topo.OutStranger6, webPort2); got != "refused" {
			t.Errorf("a new connection of the IPv6 stranger to 8081: %s, want refused", got)
		}
		// deny_action drop: the client's packets go unanswered.
		x.reload(t, df, pol, fmt.Sprintf(dockerIngressPolicy, "allow"))
		held := x.hold(t, topo.OutStranger6, webPort2)
		x.reload(t, df, pol, "settings: {deny_action: drop}\n"+fmt.Sprintf(dockerIngressPolicy, "deny"))
		if got, err := held.echo("after"); !topo.IsTimeout(err) {
			t.Errorf("the IPv6 stranger's open connection to 8081 with deny_action: drop: %q, %v; want no answer", got, err)
		}
		if got := x.reach(topo.OutStranger6, webPort2); got != "timeout" {
			t.Errorf("a new connection of the IPv6 stranger to 8081 with deny_action: drop: %s, want timeout", got)
		}
		x.reload(t, df, pol, fmt.Sprintf(dockerIngressPolicy, "allow"))
	})

	t.Run("a container started later is fenced through docker-proxy too", func(t *testing.T) {
		// Its port 8090 falls to ingress_default, deny here: the
		// daemon adds it to the docker-proxy path when Docker says the
		// container started, and removes it when it is gone.
		x.reload(t, df, pol, fmt.Sprintf(dockerIngressPolicy, "deny"))
		defer x.reload(t, df, pol, fmt.Sprintf(dockerIngressPolicy, "allow"))
		const late = 8090
		x.d.Run(t, "late", "web", dockerd.RunOptions{Cmd: dockerd.EchoServer(80), Publish: []string{fmt.Sprintf("%d:80", late)}})
		x.waitListening(t, "late", 80)
		chain := fmt.Sprintf("ingp_tcp_%d", late)
		inTable := func() bool {
			_, err := x.tp.Host.Try("nft", "list", "chain", "inet", "dockerfence", chain)
			return err == nil
		}
		for deadline := time.Now().Add(5 * time.Second); !inTable(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no chain %s 5 s after the container started", chain)
			}
		}
		for _, src := range []string{topo.OutAllowed6, topo.OutStranger6} {
			if got := x.reach(src, late); got != "refused" {
				t.Errorf("%s -> the late container's %d through docker-proxy: %s, want refused (ingress_default: deny)", src, late, got)
			}
		}
		if n := x.d.Accepted(t, "late", 80); n != 0 {
			t.Errorf("the late container accepted %d connections", n)
		}
		x.d.RemoveContainer(t, "late")
		for deadline := time.Now().Add(5 * time.Second); inTable(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("chain %s is still there 5 s after the container was removed", chain)
			}
		}
	})

	t.Run("localhost is not ingress", func(t *testing.T) {
		for _, addr := range []string{hostPort("127.0.0.1", webPort), hostPort("::1", webPort)} {
			c, err := x.tp.Host.DialTCP(addr, dialTimeout)
			if err != nil {
				// Docker 20.10 without ip6tables does not publish on ::1
				// by the proxy alone when it cannot, say so.
				t.Errorf("the host itself -> %s: %v; want a connection (not ingress)", addr, err)
				continue
			}
			c.Close()
		}
	})

	t.Run("logs name the container and the published port", func(t *testing.T) {
		want := map[string]bool{"web 8080 ingress 2": false, "db 5432 container section ingress_default": false}
		var lines []string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			lines = strings.Split(strings.TrimSpace(x.mustDFDocker(x.d, "logs", "--json")), "\n")
			for _, l := range lines {
				var ev denylog.Event
				if json.Unmarshal([]byte(l), &ev) != nil || ev.Hook != "ingress" || ev.Src != topo.OutStranger6 {
					continue
				}
				k := fmt.Sprintf("%s %d %s", ev.Container, ev.PublishedPort, ev.Rule)
				if _, ok := want[k]; ok {
					want[k] = true
				}
			}
			if want["web 8080 ingress 2"] && want["db 5432 container section ingress_default"] {
				break
			}
		}
		for w, seen := range want {
			if !seen {
				t.Errorf("logs --json has no ingress denial of the IPv6 stranger through docker-proxy %q:\n%s", w, strings.Join(lines, "\n"))
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		out, stderr, err := x.dfStdout("--docker-host", "unix://"+x.d.Sock, "--socket", x.socket(), "status", "-c", x.pol, "--json")
		var st status.Status
		if err != nil || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("status --json: %v\n%s%s", err, out, stderr)
		}
		// The kernel holds the docker-proxy path as the daemon wrote it:
		// read back (the port maps too), it is what apply would write.
		if !st.Table.InSync || len(st.Table.Drift) > 0 {
			t.Errorf("status: the table is not in sync (drift %v)", st.Table.Drift)
		}
		for _, p := range st.Published {
			if p.Container == "web" && p.HostPort == webPort && (p.Verdict != status.ReachRestricted || p.IPv6 != status.ReachRestricted || p.IPv4 != status.ReachRestricted) {
				t.Errorf("status: web's 8080 is %s (IPv4 %q, IPv6 %q), want %s in both families", p.Verdict, p.IPv4, p.IPv6, status.ReachRestricted)
			}
		}
	})
}
