package integration

import (
	be "encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/dockerd"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// Ports of the names tests: the rule's port, and another one the same
// servers listen on, which a name must not open.
const (
	namePort, otherPort = 443, 8443
)

// namesEnv is a dockerd in Host whose containers resolve through Docker's
// embedded resolver, which forwards to the test's own DNS server in LAN
// (dockerd --dns), and TCP servers in Inet on the addresses the test's
// names resolve to.
type namesEnv struct {
	*env
	d   *dockerd.Daemon
	dns *harness.DNSServer
	// bridge is the Linux bridge of the network "app".
	bridge string
	// next is the last octet of the next fresh target address.
	next int
}

// The network of the names tests, and the address of its container app1.
const (
	namesSubnet4 = "10.50.0.0/24"
	namesCtr4    = "10.50.0.10"
)

// newNamesEnv starts the DNS server in LAN, dockerd in Host (the engine of
// the suite, with --dns the DNS server), creates the network app and runs
// the container c on it.
func newNamesEnv(t *testing.T) *namesEnv {
	e := newEnv(t)
	x := &namesEnv{env: e, next: 100}
	x.dns = harness.StartDNS(t, e.tp.LAN, topo.LANDNS4)
	eng := engine(t).WithDNS(topo.LANDNS4)
	start := time.Now()
	x.d = dockerd.Start(t, e.tp.Host, eng)
	v, err := x.d.Client.ServerVersion(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s dockerd %s (API %s) started with %q in %v", eng.Name, v.Version, v.APIVersion, eng.Args, time.Since(start).Round(time.Millisecond))
	_, x.bridge = x.d.CreateNetwork(t, "app", namesSubnet4, nil)
	x.d.Run(t, "app1", "app", dockerd.RunOptions{IPv4: namesCtr4})
	return x
}

// target adds a fresh address in Inet (203.0.113.N), serves namePort and
// otherPort on it, and makes name resolve to it with the TTL ttl. It
// returns the address.
func (x *namesEnv) target(t *testing.T, name string, ttl time.Duration) netip.Addr {
	t.Helper()
	if x.next > 250 {
		t.Fatal("out of target addresses")
	}
	a := netip.AddrFrom4([4]byte{203, 0, 113, byte(x.next)})
	x.next++
	x.tp.Inet.Run(t, "ip", "addr", "add", a.String()+"/24", "dev", "eth0")
	x.tp.Inet.ListenTCP(t, hostPort(a.String(), namePort))
	x.tp.Inet.ListenTCP(t, hostPort(a.String(), otherPort))
	if name != "" {
		x.dns.Set(name, ttl, a)
	}
	return a
}

// lookupConnect runs, in one exec in the container, busybox nslookup of
// name through Docker's embedded resolver and, right after the answer, a
// TCP connection to the first IPv4 address it gave on port. It returns the
// address and "ok", "refused", "timeout", or what went wrong.
func (x *namesEnv) lookupConnect(t *testing.T, ctr, name string, port int) (string, string) {
	t.Helper()
	script := fmt.Sprintf(`a=$(nslookup -type=a %s 2>&1 | awk '/^Name:/{n=1} n && /^Address/{print $2; exit}')
[ -n "$a" ] || { echo "no address for %s"; exit 3; }
echo "$a"
nc -w 2 "$a" %d -e true`, name, name, port)
	code, out := x.d.Exec(t, ctr, "sh", "-c", script)
	addr, rest, _ := strings.Cut(out, "\n")
	if code == 3 {
		return "", strings.TrimSpace(out)
	}
	return addr, dockerd.ClassifyNC(code, rest)
}

// baseline checks, without dockerfence, that the container resolves
// through Docker's embedded resolver and the test's DNS server, and
// reaches the address on both ports.
func (x *namesEnv) baseline(t *testing.T) {
	t.Helper()
	if tables := x.tp.Host.Run(t, "nft", "list", "tables"); strings.Contains(tables, "dockerfence") {
		t.Fatalf("the baseline needs the host without dockerfence's table:\n%s", tables)
	}
	_, resolv := x.d.Exec(t, "app1", "cat", "/etc/resolv.conf")
	if !strings.Contains(resolv, "nameserver 127.0.0.11") {
		t.Fatalf("the container does not resolve through Docker's embedded resolver:\n%s", resolv)
	}
	a := x.target(t, "baseline.names.test", time.Minute)
	before := x.dns.Queries("baseline.names.test")
	for _, port := range []int{namePort, otherPort} {
		addr, got := x.lookupConnect(t, "app1", "baseline.names.test", port)
		if addr != a.String() || got != "ok" {
			t.Errorf("without dockerfence: nslookup baseline.names.test and connect to port %d: %q, %s; want %s, ok", port, addr, got, a)
		}
	}
	if n := x.dns.Queries("baseline.names.test") - before; n < 2 {
		t.Errorf("the DNS server answered %d queries for baseline.names.test, want the container's 2 (through Docker's resolver)", n)
	}
	// Docker's resolver forwards from inside the container's namespace:
	// the answers arrive at the container's address from the DNS server
	// (through the host's forward hook; the server sees the host's
	// address, Docker masquerades the network's egress).
	answers := dnsAnswers(t, x.dockerNS(t, x.d, "app1"), namesCtr4)
	if _, got := x.lookupConnect(t, "app1", "baseline.names.test", namePort); got != "ok" {
		t.Errorf("without dockerfence: nslookup baseline.names.test and connect: %s", got)
	}
	if n := answers.Load(); n == 0 {
		t.Errorf("no DNS answer from %s arrived at the container's address %s: Docker's resolver does not forward from the container's namespace", topo.LANDNS4, namesCtr4)
	}
	t.Logf("without dockerfence: the DNS server's clients %v; UDP answers from %s:53 at %s: %d", x.dns.Clients(), topo.LANDNS4, namesCtr4, answers.Load())
}

// dnsAnswers counts the UDP datagrams from the DNS server's port 53 that
// arrive at addr in ns (a raw socket sees them after the input hook), until
// the test ends.
func dnsAnswers(t *testing.T, ns harness.Doer, addr string) *atomic.Int64 {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("ip4:udp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	dns := netip.MustParseAddr(topo.LANDNS4)
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			m, from, err := pc.ReadFrom(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			if a, ok := from.(*net.IPAddr); ok && m >= 8 && a.IP.Equal(dns.AsSlice()) && be.BigEndian.Uint16(buf) == 53 {
				n.Add(1)
			}
		}
	}()
	return &n
}

// TestNamesAgainstDocker proves egress by DNS name against a real dockerd.
func TestNamesAgainstDocker(t *testing.T) {
	x := newNamesEnv(t)
	t.Run("without dockerfence", x.baseline)
}
