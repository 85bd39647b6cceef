package integration

import (
	"errors"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/topo"
)

// dnatRules plays Docker's published ports in Host, as docker run -p
// 8080:80 -p 9090:81 writes them: DNAT from the host's ports 8080 and 9090
// to the container's ports 80 and 81, in both families.
const dnatRules = `table ip dfdnat {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 8080 dnat to ` + topo.CtrIP4 + `:80
		tcp dport 9090 dnat to ` + topo.CtrIP4 + `:81
	}
}
table ip6 dfdnat {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 8080 dnat to [` + topo.CtrIP6 + `]:80
		tcp dport 9090 dnat to [` + topo.CtrIP6 + `]:81
	}
}
`

// ingressPolicy lets only the LAN reach published port 8080 of br-test's
// containers; other published ports fall to ingress_default, which
// tighten sets to deny.
func ingressPolicy(tighten bool) string {
	def := "allow"
	if tighten {
		def = "deny"
	}
	return `version: 1
networks:
  - match: {bridge: br-test}
    ingress:
      - allow: [192.168.100.0/24, "fd00:100::/64"]
        proto: tcp
        ports: [8080]
        comment: the LAN only
      - deny: any
        ports: [8080]
    ingress_default: ` + def + `
`
}

// TestIngressPublishedPorts proves the ingress rules with real packets,
// without dockerd: Host DNATs its ports 8080 and 9090 to Ctr as Docker
// does, LAN is the allowed source and Inet the stranger. The stranger
// reaches the port before the fence and is refused (a reset) after; the
// second published port falls to ingress_default; the container's own
// connections and their replies pass; tightening ingress_default cuts an
// open inbound connection, and the client sees the reset. IPv4 and IPv6.
func TestIngressPublishedPorts(t *testing.T) {
	e := newEnv(t)
	for _, a := range []string{topo.CtrIP4, topo.CtrIP6} {
		e.tp.Ctr.ListenTCP(t, hostPort(a, 80))
		e.tp.Ctr.ListenTCP(t, hostPort(a, 81))
	}
	e.tp.Inet.ListenTCP(t, hostPort(topo.InetIP4, 443))
	e.tp.Inet.ListenTCP(t, hostPort(topo.InetIP6, 443))
	e.tp.Host.Run(t, "nft", "-f", e.write("dnat.nft", dnatRules))

	type fam struct {
		name, wan, ctr, inet string
	}
	fams := []fam{{"IPv4", topo.HostWAN4, topo.CtrIP4, topo.InetIP4}, {"IPv6", topo.HostWAN6, topo.CtrIP6, topo.InetIP6}}

	// Without the fence, the stranger reaches both published ports: what
	// the fence refuses below is refused by the fence.
	for _, f := range fams {
		e.expect(e.tp.Inet, []probe{
			{f.name + " stranger, no fence, 8080", "tcp", hostPort(f.wan, 8080), "ok"},
			{f.name + " stranger, no fence, 9090", "tcp", hostPort(f.wan, 9090), "ok"},
		})
		e.expect(e.tp.LAN, []probe{{f.name + " LAN, no fence, 8080", "tcp", hostPort(f.wan, 8080), "ok"}})
	}

	e.mustDF("apply", "-c", e.write("ingress.yaml", ingressPolicy(false)))
	for _, f := range fams {
		e.expect(e.tp.LAN, []probe{
			{f.name + " LAN to 8080 (ingress 1)", "tcp", hostPort(f.wan, 8080), "ok"},
			{f.name + " LAN to 9090 (ingress_default allow)", "tcp", hostPort(f.wan, 9090), "ok"},
		})
		e.expect(e.tp.Inet, []probe{
			{f.name + " stranger to 8080 (ingress 2)", "tcp", hostPort(f.wan, 8080), "refused"},
			{f.name + " stranger to 9090 (ingress_default allow)", "tcp", hostPort(f.wan, 9090), "ok"},
			// Routed to the container's own address, port 80 is the
			// connection's port: no rule names it.
			{f.name + " stranger to the container's port 80, routed", "tcp", hostPort(f.ctr, 80), "ok"},
		})
		e.expect(e.tp.Ctr, []probe{{f.name + " container's own connection out", "tcp", hostPort(f.inet, 443), "ok"}})
	}
	if n := ruleCount(t, e, "ing_br-test", "ingress 2 deny"); n < 2 {
		t.Errorf("the deny rule ingress 2 counted %d packets; want the strangers' two SYNs at least", n)
	}

	// Open connections: a stranger's into 9090 (allowed now) and the
	// container's own out to Inet. Tightening ingress_default cuts the
	// first, and the client sees the reset; the second goes on.
	type open struct {
		name string
		ns   *topo.NS
		addr string
		cut  bool
	}
	var opens []open
	for _, f := range fams {
		opens = append(opens,
			open{f.name + " stranger into 9090", e.tp.Inet, hostPort(f.wan, 9090), true},
			open{f.name + " container out to Inet", e.tp.Ctr, hostPort(f.inet, 443), false})
	}
	type conn struct {
		open
		c interface {
			Write([]byte) (int, error)
			Read([]byte) (int, error)
			SetDeadline(time.Time) error
			Close() error
		}
	}
	var conns []conn
	for _, o := range opens {
		c, err := o.ns.DialTCP(o.addr, dialTimeout)
		if err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(dialTimeout))
		if _, err := c.Read(make([]byte, 64)); err != nil {
			t.Fatalf("%s: greeting: %v", o.name, err)
		}
		if err := echo(c); err != nil {
			t.Fatalf("%s: echo before tightening: %v", o.name, err)
		}
		conns = append(conns, conn{o, c})
	}
	e.mustDF("apply", "-c", e.write("tight.yaml", ingressPolicy(true)))
	for _, c := range conns {
		err := echo(c.c)
		switch {
		case c.cut && err == nil:
			t.Errorf("%s: the open connection still works after tightening", c.name)
		case c.cut && !topo.IsRefused(err):
			t.Errorf("%s: after tightening: %v; want a reset", c.name, err)
		case !c.cut && err != nil:
			t.Errorf("%s: after tightening: %v; want it untouched", c.name, err)
		}
	}
	for _, f := range fams {
		e.expect(e.tp.Inet, []probe{{f.name + " stranger to 9090 (ingress_default deny)", "tcp", hostPort(f.wan, 9090), "refused"}})
		e.expect(e.tp.LAN, []probe{
			{f.name + " LAN to 9090 (ingress_default deny)", "tcp", hostPort(f.wan, 9090), "refused"},
			{f.name + " LAN to 8080 (ingress 1)", "tcp", hostPort(f.wan, 8080), "ok"},
		})
		e.expect(e.tp.Ctr, []probe{{f.name + " container's own connection out", "tcp", hostPort(f.inet, 443), "ok"}})
	}
}

// echo writes a line on c and reads it back within dialTimeout.
func echo(c interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
	SetDeadline(time.Time) error
}) error {
	c.SetDeadline(time.Now().Add(dialTimeout))
	if _, err := c.Write([]byte("still there?\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "still there?\n" {
		return errors.New("echo: read " + strconv.Quote(string(buf[:n])))
	}
	return nil
}

// ruleCount returns the packets counted by the rules of chain in Host's
// dockerfence table whose comment starts with comment.
func ruleCount(t *testing.T, e *env, chain, comment string) int {
	t.Helper()
	out := e.tp.Host.Run(t, "nft", "list", "chain", "inet", "dockerfence", chain)
	n := 0
	for _, m := range regexp.MustCompile(`counter packets (\d+) bytes \d+ .*comment "`+regexp.QuoteMeta(comment)).FindAllStringSubmatch(out, -1) {
		v, _ := strconv.Atoi(m[1])
		n += v
	}
	return n
}
