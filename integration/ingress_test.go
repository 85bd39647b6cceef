package integration

import (
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nflog"
	"github.com/dockerfence/dockerfence/policy"
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
	// The denial log's group (settings.log_group's default): the stranger's
	// denied SYNs are logged with their connection, whose original
	// destination port is the published one.
	var logs *nflog.Conn
	if err := e.tp.Host.Do(func() error {
		var err error
		logs, err = nflog.Open(100, 256)
		return err
	}); err != nil {
		t.Fatalf("open the denial log's NFLOG group in Host: %v", err)
	}
	defer logs.Close()
	// Without ctnetlink (a kernel without nf_conntrack_netlink, as
	// this VM's), the kernel refuses to send them, and logs finds the
	// published port from Docker's mapping instead: the one host port
	// that maps to the container's port.
	wantOrig, wantFrom := uint16(8080), denylog.PortFromKernel
	if !logs.Conntrack() {
		t.Logf("this kernel has no ctnetlink: logged packets come without their connection, so logs names the published port from Docker's mapping")
		wantOrig, wantFrom = 0, denylog.PortFromDocker
	}
	// Docker's mapping as dnatRules plays it, and the deny chain of
	// ingress 2 as the table says it.
	var mapping []docker.PublishedPort
	for _, a := range []string{"0.0.0.0", "::"} {
		mapping = append(mapping,
			docker.PublishedPort{HostIP: netip.MustParseAddr(a), HostPort: 8080, ContainerPort: 80, Proto: "tcp"},
			docker.PublishedPort{HostIP: netip.MustParseAddr(a), HostPort: 9090, ContainerPort: 81, Proto: "tcp"})
	}
	res := mappingResolver{netip.MustParseAddr(topo.CtrIP4): mapping, netip.MustParseAddr(topo.CtrIP6): mapping}
	tbl := &fence.Result{Denials: map[string]*fence.Denial{"ing_br-test.i2": {Hook: policy.Ingress, Rule: &policy.Rule{Hook: policy.Ingress, Index: 2}}}}
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
	// explain --ingress says what the kernel did, on the same table.
	for _, f := range fams {
		for _, c := range []struct {
			from   string
			port   int
			action string
		}{
			{map[bool]string{true: topo.LANProxy6, false: topo.LANProxy4}[f.name == "IPv6"], 8080, "allow"},
			{f.inet, 8080, "reject"},
			{f.inet, 9090, "allow"},
		} {
			out := e.mustDF("explain", "-c", e.write("ingress.yaml", ingressPolicy(false)), "--network", topo.BridgeName, "--ingress", "--from", c.from, "--to-port", strconv.Itoa(c.port), "--json")
			var x struct {
				Action string `json:"action"`
				Rule   string `json:"rule"`
			}
			if err := json.Unmarshal([]byte(out), &x); err != nil {
				t.Fatalf("explain --json: %v\n%s", err, out)
			}
			if x.Action != c.action {
				t.Errorf("explain --ingress --from %s --to-port %d: %s (%s); the kernel: %s", c.from, c.port, x.Action, x.Rule, c.action)
			}
		}
	}
	if n := ruleCount(t, e, "ing_br-test", "ingress 2 deny"); n < 2 {
		t.Errorf("the deny rule ingress 2 counted %d packets; want the strangers' two SYNs at least", n)
	}
	logs.SetReadDeadline(time.Now().Add(dialTimeout))
	fams4 := map[uint8]bool{}
	for len(fams4) < 2 {
		ps, err := logs.Receive()
		if err != nil {
			t.Fatalf("the stranger's denied SYNs, logged: got %d families, then %v", len(fams4), err)
		}
		for _, p := range ps {
			fl, _ := nflog.Decode(p.Family, p.Payload)
			if p.Prefix != "df ing_br-test.i2 " || fl.DstPort != 80 || p.OrigDstPort != wantOrig {
				t.Errorf("logged packet %q to port %d, connection's original port %d; want ing_br-test.i2, 80 (the container's) and %d (the published, 0 without ctnetlink)", p.Prefix, fl.DstPort, p.OrigDstPort, wantOrig)
				continue
			}
			ev, ok := denylog.Attribute(p, tbl, res, nil)
			if !ok || ev.PublishedPort != 8080 || ev.PublishedPortFrom != wantFrom || !strings.Contains(ev.Line(), ":80/tcp (published port 8080)") {
				t.Errorf("logged packet attributed (%v) to published port %d from %q: %s; want 8080 from %s", ok, ev.PublishedPort, ev.PublishedPortFrom, ev.Line(), wantFrom)
			}
			fams4[p.Family] = true
		}
	}
	logs.Close()

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

	// With deny_action drop, the stranger's SYNs go unanswered.
	e.mustDF("apply", "-c", e.write("drop.yaml", strings.Replace(ingressPolicy(true), "version: 1\n", "version: 1\nsettings: {deny_action: drop}\n", 1)))
	for _, f := range fams {
		e.expect(e.tp.Inet, []probe{{f.name + " stranger to 8080, deny_action drop", "tcp", hostPort(f.wan, 8080), "timeout"}})
		e.expect(e.tp.LAN, []probe{{f.name + " LAN to 8080, deny_action drop", "tcp", hostPort(f.wan, 8080), "ok"}})
	}
}

// mappingResolver is a denylog.PortResolver of containers known by
// address alone, with their published ports.
type mappingResolver map[netip.Addr][]docker.PublishedPort

func (mappingResolver) Container(netip.Addr) (string, string) { return "ctr", "" }

func (m mappingResolver) PublishedPorts(a netip.Addr) []docker.PublishedPort { return m[a] }

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

// TestIngressContainerSection proves a container section's ingress with
// real packets, the containers listed by the fake Docker API: the
// database (tier=db, ingress_default deny, the LAN allowed on 5432) is
// refused to the stranger and reached from the LAN, through its published
// port; a web container without a section, on the same network, is
// reached by anyone (its network allows), and both in IPv6 too; a
// container Docker does not list yet is held.
func TestIngressContainerSection(t *testing.T) {
	e := newEnv(t)
	tp := e.tp
	const web4, web6 = "172.20.0.3", "fd00:20::3"
	web := tp.AddContainer(t, "web", web4, web6)
	// late is a container Docker does not list yet: not classified.
	const late4 = "172.20.0.4"
	late := tp.AddContainer(t, "late", late4, "")
	late.ListenTCP(t, hostPort(late4, 80))
	for _, a := range []string{topo.CtrIP4, topo.CtrIP6} {
		tp.Ctr.ListenTCP(t, hostPort(a, 5432))
	}
	for _, a := range []string{web4, web6} {
		web.ListenTCP(t, hostPort(a, 80))
	}
	tp.Host.Run(t, "nft", "-f", e.write("dnat.nft", `table ip dfdnat {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 5432 dnat to `+topo.CtrIP4+`:5432
		tcp dport 8080 dnat to `+web4+`:80
		tcp dport 8081 dnat to `+late4+`:80
	}
}
table ip6 dfdnat {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 5432 dnat to [`+topo.CtrIP6+`]:5432
		tcp dport 8080 dnat to [`+web6+`]:80
	}
}
`))
	fake := harness.StartDocker(t, filepath.Join(e.dir, "docker.sock"))
	fake.Set([]harness.Network{{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}})
	fake.SetContainers([]harness.Container{
		{ID: strings.Repeat("d", 64), Name: "db", Image: "postgres", Labels: map[string]string{"tier": "db"}, Endpoints: []harness.Endpoint{{Network: "app", IPv4: topo.CtrIP4, IPv6: topo.CtrIP6, MAC: macOf(t, tp.Ctr)}}},
		{ID: strings.Repeat("w", 64), Name: "web", Image: "nginx", Endpoints: []harness.Endpoint{{Network: "app", IPv4: web4, IPv6: web6, MAC: macOf(t, web)}}},
	})
	pol := e.write("policy.yaml", `version: 1
networks:
  - match: {name: "*"}
    ingress_default: allow
containers:
  - match: {label: "tier=db"}
    ingress:
      - allow: [192.168.100.0/24, "fd00:100::/64"]
        proto: tcp
        ports: [5432]
        comment: the LAN's clients only
    ingress_default: deny
`)
	for _, wan := range []string{topo.HostWAN4, topo.HostWAN6} {
		e.expect(tp.Inet, []probe{{"stranger to the db, no fence", "tcp", hostPort(wan, 5432), "ok"}})
	}
	e.expect(tp.Inet, []probe{{"stranger to late, no fence", "tcp", hostPort(topo.HostWAN4, 8081), "ok"}})
	if out, err := e.df("apply", "-c", pol, "--docker-host", fake.URL); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	for _, wan := range []string{topo.HostWAN4, topo.HostWAN6} {
		e.expect(tp.Inet, []probe{
			{"stranger to the db (its section's ingress_default)", "tcp", hostPort(wan, 5432), "refused"},
			{"stranger to web (no section: the network allows)", "tcp", hostPort(wan, 8080), "ok"},
		})
		e.expect(tp.LAN, []probe{
			{"LAN to the db (its section's ingress 1)", "tcp", hostPort(wan, 5432), "ok"},
			{"LAN to web", "tcp", hostPort(wan, 8080), "ok"},
		})
	}
	// explain --container --ingress says what the kernel did.
	for _, c := range []struct {
		ctr, from, port, action, layer string
	}{
		{"db", topo.InetIP4, "5432", "reject", "container section"},
		{"db", topo.LANProxy6, "5432", "allow", "container section"},
		{"web", topo.InetIP6, "8080", "allow", ""},
	} {
		out, err := e.df("explain", "-c", pol, "--docker-host", fake.URL, "--container", c.ctr, "--ingress", "--from", c.from, "--to-port", c.port, "--json")
		if err != nil {
			t.Fatalf("explain --container %s --ingress: %v\n%s", c.ctr, err, out)
		}
		var x struct {
			Action    string `json:"action"`
			Container struct {
				Name string `json:"name"`
			} `json:"container"`
			Layers []struct {
				Layer string `json:"layer"`
			} `json:"layers"`
		}
		if err := json.Unmarshal([]byte(out), &x); err != nil {
			t.Fatalf("explain --json: %v\n%s", err, out)
		}
		layer := ""
		if len(x.Layers) > 0 {
			layer = x.Layers[0].Layer
		}
		if x.Action != c.action || x.Container.Name != c.ctr || layer != c.layer {
			t.Errorf("explain --container %s --ingress --from %s --to-port %s: %s by %q of %q; the kernel: %s, by %q", c.ctr, c.from, c.port, x.Action, layer, x.Container.Name, c.action, c.layer)
		}
	}
	// A container not classified yet is held (dropped), whoever connects,
	// until Docker lists it: its section might deny.
	e.expect(tp.LAN, []probe{{"LAN to late, not classified (held)", "tcp", hostPort(topo.HostWAN4, 8081), "timeout"}})
	if n := ruleCount(t, e, "ingc_br-test", "to a container not classified yet (held)"); n == 0 {
		t.Errorf("the ingress hold counted no packet; want the LAN's SYNs to late")
	}
	// web and the db talk on their network: the sender's egress judges
	// that, not the db's ingress.
	e.expect(web, []probe{
		{"web to the db on their network", "tcp", hostPort(topo.CtrIP4, 5432), "ok"},
		{"web to the db on their network, IPv6", "tcp", hostPort(topo.CtrIP6, 5432), "ok"},
	})
	if n := ruleCount(t, e, "ci_dddddddddddd.s", "ingress_default deny"); n < 2 {
		t.Errorf("the db's ingress_default deny counted %d packets; want the stranger's two SYNs at least", n)
	}
}
