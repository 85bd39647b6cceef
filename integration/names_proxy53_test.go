package integration

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/dockerd"
	"github.com/dockerfence/dockerfence/integration/harness"
)

// The gateway of the names tests' network app (the host's address on its
// bridge), and the address of the container that publishes port 53.
const (
	namesGateway4 = "10.50.0.1"
	evilDNS4      = "10.50.0.53"
)

// lookupConnectVia is lookupConnect with the query sent to server (busybox
// nslookup NAME SERVER) instead of Docker's embedded resolver.
func (x *namesEnv) lookupConnectVia(t *testing.T, ctr, name, server string, port int) (string, string) {
	t.Helper()
	script := fmt.Sprintf(`a=$(nslookup -type=a %s %s 2>&1 | awk '/^Name:/{n=1} n && /^Address/{print $2; exit}')
[ -n "$a" ] || { echo "no address for %s"; exit 3; }
echo "$a"
nc -w 2 "$a" %d -e true`, name, server, name, port)
	code, out := x.d.Exec(t, ctr, "sh", "-c", script)
	addr, rest, _ := strings.Cut(out, "\n")
	if code == 3 {
		return "", strings.TrimSpace(out)
	}
	return addr, dockerd.ClassifyNC(code, rest)
}

// The output chain's hold rule as nft lists it, on TCP and UDP and on TCP
// alone.
const (
	holdBoth = "meta l4proto { tcp, udp } th sport 53 "
	holdTCP  = "ct direction reply tcp sport 53 "
)

// waitOutputHold waits until the table's output chain has one rule that
// holds DNS answers, and it has want (holdBoth, holdTCP), and returns the
// chain.
func (x *namesEnv) waitOutputHold(t *testing.T, want string) string {
	t.Helper()
	var out string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out, _ = x.tp.Host.Try("nft", "list", "chain", "inet", "dockerfence", "output")
		if strings.Contains(out, want) && strings.Count(out, "queue num") == 1 {
			return out
		}
	}
	t.Fatalf("the output chain does not hold DNS answers on %s within 10s:\n%s", want, out)
	return ""
}

// TestNamesPublishedDNSPort proves, against a real dockerd with the
// userland proxy (Debian's default), that a container which publishes
// port 53/udp cannot teach its neighbours addresses for listed names
// through docker-proxy. Its neighbour on the same fenced network asks the
// host's gateway address on port 53: Docker does not DNAT traffic from
// the container's own bridge, so docker-proxy takes the query on the
// host, asks the container, and relays the answer from the host's port
// 53, through the output hook, as a resolver on the host itself would
// answer. Before the container publishes, such a resolver (the test's DNS
// server on the gateway address) teaches; with the container, the
// neighbour gets the attacker's address for an allowed name through
// docker-proxy (the answer crosses the output hook from port 53, counted
// by a table of the test's own), and its connection there is refused:
// nothing was learned. status and apply name the container and the port.
// The address learned before is kept (the chain that held the host's
// queries over UDP goes in place). With the container gone, the host's
// resolver teaches again.
func TestNamesPublishedDNSPort(t *testing.T) {
	x := newNamesEnv(t)
	pol := x.write("policy.yaml", namesPolicy([]string{"host.proxy53.test", "pay.proxy53.test", "again.proxy53.test"}))
	df := x.startDaemonArgs(x.d, pol)
	df.waitLog(t, "table applied")
	x.waitFenced(x.bridge, time.Now())
	x.waitOutputHold(t, holdBoth)

	hostResolver := func(t *testing.T, name string) netip.Addr {
		t.Helper()
		srv := harness.StartDNS(t, x.tp.Host, namesGateway4)
		defer srv.Close()
		a := x.target(t, "", time.Minute)
		srv.Set(name, time.Minute, a)
		if addr, got := x.lookupConnectVia(t, "app1", name, namesGateway4, namePort); addr != a.String() || got != "ok" {
			t.Errorf("nslookup %s %s (a resolver on the host itself), then connect to its address on %d: %q, %s; want %s, ok\n%s", name, namesGateway4, namePort, addr, got, a, x.nameElements())
		}
		if n := srv.Queries(name); n == 0 {
			t.Errorf("the host's resolver saw no query for %s", name)
		}
		return a
	}
	var learned netip.Addr
	t.Run("a resolver on the host itself teaches", func(t *testing.T) { learned = hostResolver(t, "host.proxy53.test") })

	t.Run("a container that publishes 53/udp teaches nothing through docker-proxy", func(t *testing.T) {
		x.d.Run(t, "evil", "app", dockerd.RunOptions{IPv4: evilDNS4, Publish: []string{"53:53/udp"}})
		// The container's DNS server: the test's own, on the container's
		// address in its network namespace.
		evil := harness.StartDNS(t, x.dockerNS(t, x.d, "evil"), evilDNS4)
		attacker := x.target(t, "", time.Minute)
		evil.Set("pay.proxy53.test", time.Minute, attacker)
		chain := x.waitOutputHold(t, holdTCP)
		t.Logf("the output chain with evil publishing 53/udp:\n%s", chain)
		// The chain that held the host's queries over UDP went, in
		// place: the address learned before is still there, and a new
		// connection to it, without a lookup, still succeeds.
		if out, _ := x.tp.Host.Try("nft", "list", "chain", "inet", "dockerfence", "dnsq_input"); strings.Contains(out, "queue") {
			t.Errorf("the host's queries over UDP are still held:\n%s", out)
		}
		if learned.IsValid() {
			code, out := x.d.Exec(t, "app1", "sh", "-c", fmt.Sprintf("nc -w 2 %s %d -e true", learned, namePort))
			if got := dockerd.ClassifyNC(code, out); got != "ok" || !strings.Contains(x.nameElements(), learned.String()) {
				t.Errorf("connect to %s, learned before evil published 53/udp: %s, want ok\n%s", learned, got, x.nameElements())
			}
		}

		// A table of the test's own counts the answers that leave the
		// host from port 53 to the bridge in the reply direction: what
		// the output hook held before.
		probe := fmt.Sprintf(`table inet proxy53probe {
	chain output {
		type filter hook output priority -20; policy accept;
		ct direction reply meta l4proto udp th sport 53 oifname %q counter
	}
}`, x.bridge)
		x.tp.Host.Run(t, "nft", "-f", x.write("probe.nft", probe))
		t.Cleanup(func() { x.tp.Host.Try("nft", "delete", "table", "inet", "proxy53probe") })

		addr, got := x.lookupConnectVia(t, "app1", "pay.proxy53.test", namesGateway4, namePort)
		if addr != attacker.String() {
			t.Fatalf("nslookup pay.proxy53.test %s: %q (%s), want the attacker's %s from evil through docker-proxy", namesGateway4, addr, got, attacker)
		}
		if got != "refused" {
			t.Errorf("connect to %s, the address evil gave for the allowed name pay.proxy53.test: %s, want refused (nothing learned)\n%s", attacker, got, x.nameElements())
		}
		if sets := x.nameElements(); strings.Contains(sets, attacker.String()) {
			t.Errorf("the attacker's %s is in the names sets:\n%s", attacker, sets)
		}
		// docker-proxy asked evil from the host's address on the bridge.
		clients := evil.Clients()
		if clients[netip.MustParseAddr(namesGateway4)] == 0 {
			t.Errorf("evil's DNS server was asked by %v, want docker-proxy from %s", clients, namesGateway4)
		}
		counted := x.tp.Host.Run(t, "nft", "list", "table", "inet", "proxy53probe")
		var n int
		if i := strings.Index(counted, "counter packets "); i >= 0 {
			fmt.Sscan(counted[i+len("counter packets "):], &n)
		}
		if n == 0 {
			t.Errorf("no answer from the host's port 53 to %s crossed the output hook: docker-proxy is not in the path\n%s", x.bridge, counted)
		}
		t.Logf("evil's DNS server asked by %v; answers from the host's port 53 to %s in the output hook: %d; connect to %s: %s", clients, x.bridge, n, attacker, got)

		// TCP is still held; docker-proxy relays none here.
		if !strings.Contains(chain, holdTCP) {
			t.Errorf("the output chain no longer holds TCP:\n%s", chain)
		}
		text := x.mustDFDocker(x.d, "status")
		for _, want := range []string{`container "evil"`, "publishes port 53/udp", "give containers a resolver in @resolvers"} {
			if !strings.Contains(text, want) {
				t.Errorf("status does not say %q:\n%s", want, text)
			}
		}
		// apply warns in its log (slog quotes the quotes).
		if out := x.mustDFDocker(x.d, "apply", "-c", pol); !strings.Contains(out, `evil\" (`) || !strings.Contains(out, "publishes port 53/udp") {
			t.Errorf("apply does not warn of evil's port 53/udp:\n%s", out)
		}
	})

	t.Run("the container gone, the host's resolver teaches again", func(t *testing.T) {
		x.d.RemoveContainer(t, "evil")
		x.waitOutputHold(t, holdBoth)
		hostResolver(t, "again.proxy53.test")
	})
}
