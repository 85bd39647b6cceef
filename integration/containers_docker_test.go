package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/dockerd"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/status"
)

// containersE2EPolicy fences every network with the field report's
// database rule, gives workers their proxy alone (and the database, which
// the network denies: a container section cannot open it), and keeps the
// compose service shop/api from the proxy.
const containersE2EPolicy = `version: 1
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
      - allow: 192.168.100.50
        proto: tcp
        ports: [5432]
        comment: the network denies it anyway
    egress_default: deny
  - match: {compose: "shop/api"}
    egress:
      - deny: 192.168.100.1
        comment: no proxy for the api
`

// TestContainersAgainstDocker proves the container layer with real TCP
// connections from busybox containers of a real dockerd, followed by
// "dockerfence run": a worker reaches only its proxy, and not the database
// its section allows but its network denies; a neighbour follows the
// network section alone; a compose service's section; a label that
// narrows one container; a label that does not parse cuts its container
// off and is reported with the container's name; a container that forges
// its neighbour's address in IP and in ARP gets none of it through; an
// address that one container leaves and another takes (docker run --ip)
// is judged by the new container's rules; and the first moment: 20 workers whose very first
// command connects to a denied address, none of which gets through, and a
// worker that reaches its proxy within 3 s of starting. It reports how
// long after "docker start" returned the daemon had the container's
// address in the kernel (the time its packets are held), p50 and p99.
func TestContainersAgainstDocker(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	d := dockerd.Start(t, e.tp.Host, engine(t))
	pol := e.write("policy.yaml", containersE2EPolicy)
	df := e.startDaemon(d, pol)
	df.waitLog(t, "table applied")
	_, bridge := d.CreateNetwork(t, "shop", "10.30.0.0/24", nil)
	e.waitFenced(bridge, time.Now())
	proxy, db, inet := hostPort(topo.LANProxy4, 3128), hostPort(topo.LANDB4, 5432), hostPort(topo.InetIP4, 80)
	// probe connects from the container to each address and requires the
	// outcome, and that explain --container, which traces the table apply
	// compiles, agrees with the kernel on whether it passes.
	probe := func(ctr string, want map[string]string) {
		t.Helper()
		for addr, w := range want {
			got := d.TCP(t, ctr, addr, 3*time.Second)
			if got != w {
				t.Errorf("%s -> %s: %s, want %s", ctr, addr, got, w)
			}
			var x status.Explanation
			out, stderr, err := e.dfStdout("--docker-host", "unix://"+d.Sock, "explain", "-c", pol, "--container", ctr, "--to", addr, "--json")
			if err != nil {
				t.Fatalf("explain --container %s --to %s: %v\n%s", ctr, addr, err, stderr)
			}
			if err := json.Unmarshal([]byte(out), &x); err != nil {
				t.Fatalf("explain --container %s --to %s: %v\n%s", ctr, addr, err, out)
			}
			if x.Passes != (got == "ok") || x.Container.Name != ctr {
				t.Errorf("explain --container %s --to %s: passes %v (decided by %s), container %q; the kernel: %s", ctr, addr, x.Passes, x.DecidedBy, x.Container.Name, got)
			}
		}
	}
	// fenced waits until the container's address is in the container
	// layer's map, and returns how long that took.
	fenced := func(addr string, since time.Time) time.Duration {
		t.Helper()
		a := netip.MustParseAddr(addr)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			st, err := e.kernel().Read("dockerfence")
			if err != nil || st == nil {
				continue
			}
			for _, s := range st.Sets {
				if s.Name == "fwdc_"+bridge+"_4" && slices.ContainsFunc(s.VMap, func(el nft.VMapElem) bool { return el.Addr == a }) {
					return time.Since(since)
				}
			}
		}
		t.Fatalf("%s never appeared in the container layer's map", addr)
		return 0
	}
	// idChains counts the identity chains on containers' ports.
	idChains := func() int {
		st, err := e.kernel().Read("dockerfence")
		if err != nil || st == nil {
			return 0
		}
		n := 0
		for _, c := range st.Chains {
			if strings.HasPrefix(c.Name, "id_") {
				n++
			}
		}
		return n
	}
	// checked waits until there are more than before identity chains: the
	// new container's port is checked, and its packets are no longer
	// held as from an unchecked port.
	checked := func(before int, since time.Time) time.Duration {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if idChains() > before {
				return time.Since(since)
			}
		}
		t.Fatalf("no identity chain came for the new container's port")
		return 0
	}
	run := func(name, ip string, labels map[string]string, cmd ...string) {
		t.Helper()
		started := time.Now()
		d.Run(t, name, "shop", dockerd.RunOptions{Labels: labels, IPv4: ip, Cmd: cmd})
		fenced(ip, started)
	}
	worker := map[string]string{"role": "worker"}

	t.Run("sections, labels and their intersection", func(t *testing.T) {
		run("worker", "10.30.0.10", worker)
		run("neighbour", "10.30.0.11", nil)
		run("api", "10.30.0.12", map[string]string{"com.docker.compose.project": "shop", "com.docker.compose.service": "api"})
		run("narrowed", "10.30.0.13", map[string]string{"dockerfence.egress": "[{deny: " + topo.InetIP4 + ", comment: no internet}]"})
		run("broken", "10.30.0.14", map[string]string{"dockerfence.egress": "- deny: 10.0.0.0/33\n"})
		probe("worker", map[string]string{proxy: "ok", inet: "refused", db: "refused"})
		probe("neighbour", map[string]string{proxy: "ok", inet: "ok", db: "refused"})
		probe("api", map[string]string{proxy: "refused", inet: "ok", db: "refused"})
		if out := e.mustDFDocker(d, "explain", "-c", pol, "--container", "api", "--to", proxy); !strings.Contains(out, "container api (") ||
			!strings.Contains(out, `layer    container section 2 {compose: "shop/api"}`) || !strings.Contains(out, `egress 1 "no proxy for the api": deny 192.168.100.1`) {
			t.Errorf("explain --container api does not name the layer that denies:\n%s", out)
		}
		probe("narrowed", map[string]string{proxy: "ok", inet: "refused"})
		probe("broken", map[string]string{proxy: "refused", inet: "refused"})
		want := `container \"broken\" (`
		df.waitLog(t, want)
		if !strings.Contains(df.log.String(), "label dockerfence.egress:1:9") {
			t.Errorf("the daemon's log does not say where the label is wrong:\n%s", df.log.String())
		}
		text := e.mustDFDocker(d, "status")
		for _, w := range []string{"container worker (", "container section 1 {label: \"role=worker\"}", "container broken (", "label dockerfence.egress does not parse"} {
			if !strings.Contains(text, w) {
				t.Errorf("status lacks %q:\n%s", w, text)
			}
		}
	})

	t.Run("a container forging its neighbour's address", func(t *testing.T) {
		// A worker with NET_ADMIN adds the neighbour's address and pings
		// the internet from it, which the neighbour may reach and the
		// worker may not: its bridge port drops what it sends from an
		// address that is not its own (the identity check). The echo
		// requests are counted where they arrive. Then it announces the
		// neighbour's address in gratuitous ARP, which the port's netdev
		// chain drops.
		var l *net.IPConn
		if err := e.tp.Inet.Do(func() error {
			var err error
			l, err = net.ListenIP("ip4:icmp", &net.IPAddr{IP: net.ParseIP(topo.InetIP4)})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var requests atomic.Int64
		go func() {
			buf := make([]byte, 1500)
			for {
				n, _, err := l.ReadFrom(buf) // without the IPv4 header
				if err != nil {
					return
				}
				if n > 0 && buf[0] == 8 { // an echo request
					requests.Add(1)
				}
			}
		}()
		burst := func(ctr string, src string) int64 {
			t.Helper()
			before := requests.Load()
			args := []string{"ping", "-c", "5", "-W", "1"}
			if src != "" {
				args = append(args, "-I", src)
			}
			d.Exec(t, ctr, append(args, topo.InetIP4)...)
			time.Sleep(200 * time.Millisecond)
			return requests.Load() - before
		}
		if n := burst("neighbour", ""); n != 5 {
			t.Fatalf("the neighbour's own pings: %d of 5 arrived; the test proves nothing", n)
		}
		run("forger", "10.30.0.15", worker, "sleep", "3600")
		d.Run(t, "forger2", "shop", dockerd.RunOptions{Labels: worker, IPv4: "10.30.0.16", CapAdd: []string{"NET_ADMIN"}})
		fenced("10.30.0.16", time.Now())
		if code, out := d.Exec(t, "forger2", "ip", "addr", "add", "10.30.0.11/32", "dev", "eth0"); code != 0 {
			t.Fatalf("ip addr add in the forger: %d %s", code, out)
		}
		if n := burst("forger2", "10.30.0.11"); n != 0 {
			t.Errorf("%d of 5 pings a worker sent from its neighbour's address arrived; want none", n)
		}
		// explain --container judges the forged source at the port too.
		out, stderr, err := e.dfStdout("--docker-host", "unix://"+d.Sock, "explain", "-c", pol, "--container", "forger2", "--from", "10.30.0.11", "--to", topo.InetIP4+"/icmp", "--json")
		var x status.Explanation
		if err != nil || json.Unmarshal([]byte(out), &x) != nil || x.Passes || x.DecidedBy != "identity" {
			t.Errorf("explain --container forger2 --from 10.30.0.11: decided by %q, passes %v, err %v\n%s%s", x.DecidedBy, x.Passes, err, out, stderr)
		}
		// ARP: the forger announces the neighbour's address as its own
		// (busybox arping -U, gratuitous ARP), which would take over the
		// host's neighbour entry for it; its port's netdev chain drops
		// them, and counts them.
		mac := func(ctr string) string {
			t.Helper()
			_, out := d.Exec(t, ctr, "cat", "/sys/class/net/eth0/address")
			return strings.TrimSpace(out)
		}
		nbMAC, forgerMAC := mac("neighbour"), mac("forger2")
		e.tp.Host.Run(t, "ip", "neigh", "replace", "10.30.0.11", "lladdr", nbMAC, "dev", bridge, "nud", "stale")
		time.Sleep(1100 * time.Millisecond) // the ARP lock time
		const rule = "ARP sender IPv4 not the container's own"
		before := countedBy(e.tp.Host.Run(t, "nft", "list", "table", "netdev", "dockerfence"), rule)
		// busybox arping sends one a second.
		code, out := d.Exec(t, "forger2", "arping", "-U", "-c", "5", "-w", "8", "-I", "eth0", "-s", "10.30.0.11", "10.30.0.11")
		t.Logf("arping -U in the forger: exit %d\n%s", code, out)
		got := e.tp.Host.Run(t, "ip", "neigh", "show", "10.30.0.11", "dev", bridge)
		if strings.Contains(got, forgerMAC) || !strings.Contains(got, nbMAC) {
			t.Errorf("the host's neighbour entry for 10.30.0.11 after the forger's gratuitous ARP: %q; want the neighbour's %s, not the forger's %s", got, nbMAC, forgerMAC)
		}
		l2 := e.tp.Host.Run(t, "nft", "list", "table", "netdev", "dockerfence")
		if n := countedBy(l2, rule) - before; n < 5 {
			t.Errorf("the netdev rule counted %d of the forger's 5 gratuitous ARP packets:\n%s", n, l2)
		} else {
			t.Logf("forged ARP: 5 sent, %d counted by the port's netdev rule, host entry kept: %s", n, strings.TrimSpace(got))
		}
		d.RemoveContainer(t, "forger")
		d.RemoveContainer(t, "forger2")
		e.tp.Host.Run(t, "ip", "neigh", "flush", "dev", bridge)
	})

	t.Run("a container joined to another's network stack", func(t *testing.T) {
		// --network container:neighbour: a worker that sends from the
		// neighbour's address is still judged by its own section, and
		// the neighbour too by the worker's while they share it.
		id := d.Run(t, "joined", "container:neighbour", dockerd.RunOptions{Labels: worker})
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(e.tp.Host.Run(t, "nft", "list", "map", "inet", "dockerfence", "fwdc_"+bridge+"_4"), "10.30.0.11 : goto c_"+id[:12]) {
			if time.Now().After(deadline) {
				t.Fatal("the daemon did not give the shared address both containers' rules")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := d.TCP(t, "joined", inet, 3*time.Second); got != "refused" {
			t.Errorf("joined -> %s: %s, want refused (its own section)", inet, got)
		}
		if got := d.TCP(t, "joined", proxy, 3*time.Second); got != "ok" {
			t.Errorf("joined -> %s: %s, want ok", proxy, got)
		}
		d.RemoveContainer(t, "joined")
	})

	t.Run("an address taken over is judged by its new container's rules", func(t *testing.T) {
		d.RemoveContainer(t, "worker")
		d.RemoveContainer(t, "neighbour")
		run("reuser", "10.30.0.10", nil)     // the worker's address, no rules
		run("worker2", "10.30.0.11", worker) // the neighbour's, a worker
		probe("reuser", map[string]string{inet: "ok", proxy: "ok"})
		probe("worker2", map[string]string{inet: "refused", proxy: "ok"})
	})

	t.Run("the first moment", func(t *testing.T) {
		var mapped, held []time.Duration
		for i := range 20 {
			name, ip := fmt.Sprintf("first%d", i), fmt.Sprintf("10.30.0.%d", 100+i)
			ids := idChains()
			started := time.Now()
			// The container's very first command connects to the
			// internet, which its section denies.
			d.Run(t, name, "shop", dockerd.RunOptions{Labels: worker, IPv4: ip, Cmd: []string{"sh", "-c",
				"if nc -w 2 " + topo.InetIP4 + " 80 -e true; then echo through > /r; else echo stopped > /r; fi; sleep 3600"}})
			mapped = append(mapped, fenced(ip, started))
			held = append(held, checked(ids, started))
		}
		for i := range 20 {
			name := fmt.Sprintf("first%d", i)
			var out string
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if _, out = d.Exec(t, name, "cat", "/r"); strings.TrimSpace(out) != "" && !strings.Contains(out, "No such file") {
					break
				}
			}
			if strings.TrimSpace(out) != "stopped" {
				t.Errorf("%s's first connection to a denied address: %q, want stopped", name, out)
			}
			d.RemoveContainer(t, name)
		}
		slices.Sort(mapped)
		slices.Sort(held)
		t.Logf("time from docker start until the container's address was in the container layer's map, 20 containers: p50 %v, p99 %v, max %v",
			mapped[len(mapped)/2].Round(time.Millisecond), mapped[len(mapped)*99/100].Round(time.Millisecond), mapped[len(mapped)-1].Round(time.Millisecond))
		t.Logf("time from docker start until its bridge port was checked, the end of the hold of its packets, 20 containers: p50 %v, p99 %v, max %v",
			held[len(held)/2].Round(time.Millisecond), held[len(held)*99/100].Round(time.Millisecond), held[len(held)-1].Round(time.Millisecond))

		// A new worker reaches its proxy within 3 s of starting: its first
		// command tries until it connects.
		started := time.Now()
		d.Run(t, "eager", "shop", dockerd.RunOptions{Labels: worker, IPv4: "10.30.0.50", Cmd: []string{"sh", "-c",
			"until nc -w 1 " + topo.LANProxy4 + " 3128 -e true; do usleep 50000; done; touch /ok; sleep 3600"}})
		for {
			if code, _ := d.Exec(t, "eager", "sh", "-c", "test -e /ok"); code == 0 {
				break
			}
			if time.Since(started) > 3*time.Second {
				t.Fatalf("the new worker did not reach its proxy within 3 s of starting")
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("a new worker reached its proxy %v after docker start was called", time.Since(started).Round(time.Millisecond))
	})
}
