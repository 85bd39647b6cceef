package harness

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/miekg/dns"
)

func dockerClient(t *testing.T, d *Docker) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.WithHost(d.URL), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestDocker drives the fake with Docker's own client: the networks of
// Add, Set and Remove, their events, and the version it announces.
func TestDocker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := StartDocker(t, filepath.Join(t.TempDir(), "docker.sock"))
	c := dockerClient(t, d)
	msgs, errs := c.Events(ctx, events.ListOptions{})
	// The stream is open once the client has asked for it.
	for !strings.Contains(strings.Join(d.Requests(), " "), "/events") {
		if ctx.Err() != nil {
			t.Fatalf("the client did not ask for events: %q", d.Requests())
		}
		time.Sleep(time.Millisecond)
	}
	d.Add(Network{Name: "app", Bridge: "br-app", Subnets: []string{"10.1.0.0/24", "fd00:1::/64"}, Labels: map[string]string{"k": "v"}})
	d.Add(Network{Name: "db", Bridge: "br-db", Subnets: []string{"10.2.0.0/24"}})
	d.Remove("db")
	var got []string
	for len(got) < 3 {
		select {
		case m := <-msgs:
			got = append(got, string(m.Action)+" "+m.Actor.Attributes["name"])
		case err := <-errs:
			t.Fatal(err)
		}
	}
	if want := "create app,create db,destroy db"; strings.Join(got, ",") != want {
		t.Errorf("events %q, want %s", got, want)
	}
	list, err := c.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "app" || list[0].Options["com.docker.network.bridge.name"] != "br-app" ||
		len(list[0].IPAM.Config) != 2 || list[0].Labels["k"] != "v" || !list[0].EnableIPv4 || !list[0].EnableIPv6 || len(list[0].ID) != 64 {
		t.Errorf("networks %+v", list)
	}
	id := list[0].ID
	d.Set([]Network{{Name: "app", Bridge: "br-app"}, {Name: "new", Bridge: "br-new", Subnets: []string{"10.3.0.0/24"}}})
	if list, err = c.NetworkList(ctx, network.ListOptions{}); err != nil || len(list) != 2 || list[0].ID != id || list[1].ID == id {
		t.Errorf("after Set: %v %+v; want app with its id %s and new with another", err, list, id)
	}
	if v, err := c.ServerVersion(ctx); err != nil || v.APIVersion != DockerAPI || c.ClientVersion() != DockerAPI {
		t.Errorf("version %+v %v, client speaks %s; want %s", v, err, c.ClientVersion(), DockerAPI)
	}
	// Networks of other drivers, as dockerd lists them: no bridge option.
	d.Set([]Network{{Name: "lan", Driver: "macvlan", Parent: "eth0", Subnets: []string{"192.168.1.0/24"}}, {Name: "host", Driver: "host"}})
	if list, err = c.NetworkList(ctx, network.ListOptions{}); err != nil || len(list) != 2 ||
		list[0].Driver != "macvlan" || list[0].Options["parent"] != "eth0" || list[0].Options["com.docker.network.bridge.name"] != "" || list[0].IPAM.Config[0].Subnet != "192.168.1.0/24" ||
		list[1].Driver != "host" || len(list[1].Options) != 0 {
		t.Errorf("networks of other drivers: %v %+v", err, list)
	}
}

// TestDockerVersions: a fake that needs a newer API than the client's
// refuses it with dockerd's message.
func TestDockerVersions(t *testing.T) {
	d := StartDockerVersions(t, filepath.Join(t.TempDir(), "docker.sock"), "1.60", "1.99")
	_, err := dockerClient(t, d).NetworkList(context.Background(), network.ListOptions{})
	if err == nil || !strings.Contains(err.Error(), "Minimum supported API version is 1.60") {
		t.Errorf("NetworkList from a client older than 1.60: %v", err)
	}
}

func TestPackets(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		b := EchoRequest(v6, 0x1234)
		if want := map[bool]byte{false: 8, true: 128}[v6]; b[0] != want || binary.BigEndian.Uint16(b[4:]) != 0x1234 || binary.BigEndian.Uint16(b[6:]) != 0x1234 {
			t.Errorf("EchoRequest(%v) = % x", v6, b)
		}
		if !v6 && Checksum(b) != 0 {
			t.Errorf("the ICMP echo request's checksum does not verify: % x", b)
		}
	}
	if got := Checksum([]byte{0x45, 0x00, 0x00, 0x1c}); got != ^uint16(0x451c) {
		t.Errorf("Checksum = %#x", got)
	}
	s := SCTPInit(1000, 2000)
	sum := binary.LittleEndian.Uint32(s[8:])
	binary.LittleEndian.PutUint32(s[8:], 0)
	if binary.BigEndian.Uint16(s) != 1000 || binary.BigEndian.Uint16(s[2:]) != 2000 || s[12] != 1 ||
		sum != crc32.Checksum(s, crc32.MakeTable(crc32.Castagnoli)) {
		t.Errorf("SCTPInit = % x", s)
	}
	if got := BE32(0x01020304); string(got) != "\x01\x02\x03\x04" {
		t.Errorf("BE32 = % x", got)
	}
}

// TestDNSServer queries the DNS server of the harness in a topology's LAN
// namespace from its container: A, AAAA, a CNAME chain, NXDOMAIN, a
// changed TTL, an answer of 150 addresses (truncated over UDP, whole over
// TCP), and the query counts.
func TestDNSServer(t *testing.T) {
	tp := topo.New(t)
	s := StartDNS(t, tp.LAN, topo.LANDNS4)
	a1, a2 := netip.MustParseAddr("203.0.113.101"), netip.MustParseAddr("2001:db8:ff::101")
	s.Set("one.example.", 30*time.Second, a1, a2)
	s.SetCNAME("alias.example", "mid.example", time.Minute)
	s.SetCNAME("mid.example", "ONE.example", time.Minute)
	var many []netip.Addr
	for i := range 150 {
		many = append(many, netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}))
	}
	s.Set("cdn.example", 5*time.Second, many...)

	check := func(name string, qtype uint16, want ...netip.Addr) {
		t.Helper()
		got, err := Lookup(tp.Ctr, s.Addr, name, qtype, 2*time.Second)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("lookup %s %s: %v, %v; want %v", name, dns.TypeToString[qtype], got, err, want)
		}
	}
	check("one.example", dns.TypeA, a1)
	check("One.Example.", dns.TypeAAAA, a2)
	check("alias.example", dns.TypeA, a1)
	check("cdn.example", dns.TypeA, many...)
	if _, err := Lookup(tp.Ctr, s.Addr, "nowhere.example", dns.TypeA, 2*time.Second); err == nil || !strings.Contains(err.Error(), "NXDOMAIN") {
		t.Errorf("lookup nowhere.example: %v, want NXDOMAIN", err)
	}

	// The answer carries the chain and the TTLs.
	m := new(dns.Msg)
	m.SetQuestion("alias.example.", dns.TypeA)
	var in *dns.Msg
	if err := tp.Ctr.Do(func() error {
		var err error
		in, _, err = (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, s.Addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var chain []string
	for _, rr := range in.Answer {
		chain = append(chain, fmt.Sprintf("%s %d %s", rr.Header().Name, rr.Header().Ttl, dns.TypeToString[rr.Header().Rrtype]))
	}
	if want := "[alias.example. 60 CNAME mid.example. 60 CNAME one.example. 30 A]"; fmt.Sprint(chain) != want {
		t.Errorf("the answer for alias.example: %v, want %s", chain, want)
	}
	// Over UDP, 150 addresses do not fit into 512 bytes.
	m.SetQuestion("cdn.example.", dns.TypeA)
	if err := tp.Ctr.Do(func() error {
		var err error
		in, _, err = (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, s.Addr)
		return err
	}); err != nil || !in.Truncated {
		t.Errorf("cdn.example over UDP without EDNS0: truncated %v, %v; want the TC bit", in != nil && in.Truncated, err)
	}

	if got := s.Queries("ONE.example"); got != 2 {
		t.Errorf("queries for one.example: %d, want 2", got)
	}
	if got := s.Queries("cdn.example"); got != 3 {
		t.Errorf("queries for cdn.example: %d, want 3 (UDP, TCP, UDP)", got)
	}
	if got := s.Total(); got != 8 {
		t.Errorf("queries in all: %d, want 8", got)
	}
}
