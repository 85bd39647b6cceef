package integration

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/dockerfence/dockerfence/integration/dockerd"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// notFenceablePolicy has a section that matches the macvlan network by
// name: it must not pretend to fence it.
const notFenceablePolicy = `version: 1
networks:
  - match: {name: lan}
    egress:
      - deny: any
    egress_default: deny
  - match: {name: "*"}
    egress:
      - allow: self
      - deny: "@private"
`

// The reasons dockerfence gives, by driver.
const (
	whyMacvlan = "macvlan: containers talk to the LAN directly through the parent interface, not through a bridge on this host: dockerfence cannot see their packets"
	whyIpvlan  = "ipvlan: containers talk to the LAN directly through the parent interface, not through a bridge on this host: dockerfence cannot see their packets"
	whyHost    = "host: containers share the host's network stack: their traffic is the host's own"
)

// TestNotFenceableNetworks serves, through the fake Docker API, a bridge
// network and macvlan, ipvlan and host networks, and proves that
// dockerfence says it does not fence the last three, everywhere: apply
// warns once of each, status lists them with the reason (text and JSON),
// explain answers "not fenced" and why instead of a verdict, and the daemon
// logs each once; and that the section matching the macvlan network by name
// fences nothing, while the bridge network stays fenced.
func TestNotFenceableNetworks(t *testing.T) {
	e := newEnv(t)
	fake := harness.StartDocker(t, filepath.Join(e.dir, "docker.sock"))
	fake.Set([]harness.Network{
		{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}},
		{Name: "lan", Driver: "macvlan", Parent: topo.LANIf, Subnets: []string{"192.168.100.0/24"}},
		{Name: "iv", Driver: "ipvlan", Parent: topo.LANIf, Subnets: []string{"10.99.0.0/24"}},
		{Name: "host", Driver: "host"},
	})
	pol := e.write("policy.yaml", notFenceablePolicy)
	dh := []string{"--docker-host", fake.URL}

	// apply: one warning line for each, and only the bridge network fenced.
	stdout, stderr, err := e.dfStdout(append([]string{"apply", "-c", pol}, dh...)...)
	t.Logf("apply:\n%s%s", stderr, stdout)
	if err != nil {
		t.Fatalf("apply: %v\n%s%s", err, stdout, stderr)
	}
	for name, why := range map[string]string{"lan": whyMacvlan, "iv": whyIpvlan, "host": whyHost} {
		line := `level=WARN msg="network \"` + name + `\" is not fenced: ` + why
		if n := strings.Count(stderr, line); n != 1 {
			t.Errorf("apply warned %d times of %s, want once:\n%s", n, name, stderr)
		}
	}
	if !strings.Contains(stderr, `section 1 {name: \"lan\"} matches it but cannot fence it`) {
		t.Errorf("apply does not say that section 1 cannot fence lan:\n%s", stderr)
	}
	if !strings.HasPrefix(stdout, "applied table inet dockerfence") || !strings.Contains(stdout, "1 networks fenced (app on br-test)") {
		t.Errorf("apply's summary:\n%s", stdout)
	}
	// Nothing in the table stands for the networks that cannot be fenced:
	// it is the table of app alone.
	fake.Set([]harness.Network{{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}}})
	// (Its stderr warns that section 1, {name: lan}, matches no network.)
	aloneOut, aloneErr, err := e.dfStdout(append([]string{"apply", "--dry-run", "-c", pol}, dh...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(aloneErr, `section 1 {name: \"lan\"} matches no network`) {
		t.Errorf("apply --dry-run without the network lan does not warn that section 1 matches no network:\n%s", aloneErr)
	}
	fake.Set([]harness.Network{
		{Name: "app", Bridge: topo.BridgeName, Subnets: []string{"172.20.0.0/16", "fd00:20::/64"}},
		{Name: "lan", Driver: "macvlan", Parent: topo.LANIf, Subnets: []string{"192.168.100.0/24"}},
		{Name: "iv", Driver: "ipvlan", Parent: topo.LANIf, Subnets: []string{"10.99.0.0/24"}},
		{Name: "host", Driver: "host"},
	})
	allOut, _, err := e.dfStdout(append([]string{"apply", "--dry-run", "-c", pol}, dh...)...)
	if err != nil || allOut != aloneOut {
		t.Errorf("the table with macvlan, ipvlan and host networks differs from the one without (%v):\n%s\nwant\n%s", err, allOut, aloneOut)
	}
	// And the bridge network is fenced by the catch-all.
	if got := tcpOutcome(e.tp.Ctr, hostPort(topo.LANDB4, 5432)); got != "refused" {
		t.Errorf("container of app -> database: %s, want refused (@private)", got)
	}

	// status, text and JSON.
	out := e.mustDF(append([]string{"status", "-c", pol}, dh...)...)
	t.Logf("status:\n%s", out)
	for _, want := range []string{
		"lan      -        192.168.100.0/24            not fenceable: macvlan  -\n",
		"not fenceable: Docker networks without a bridge on this host, which dockerfence cannot fence:",
		"  lan   " + whyMacvlan + `; section 1 {name: "lan"} matches it but cannot fence it`,
		"  iv    " + whyIpvlan + `; section 2 {name: "*"} matches it but cannot fence it`,
		"  host  " + whyHost,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	var st struct {
		Networks     []struct{ Name string }
		NotFenceable []struct {
			Name, Driver, Reason string
			Section              int
			Subnets              []string
		} `json:"not_fenceable"`
	}
	out = e.mustDF(append([]string{"status", "--json", "-c", pol}, dh...)...)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if len(st.Networks) != 1 || st.Networks[0].Name != "app" || len(st.NotFenceable) != 3 {
		t.Fatalf("status --json: networks %+v, not fenceable %+v", st.Networks, st.NotFenceable)
	}
	for i, want := range []struct {
		name, driver, reason string
		section              int
	}{{"host", "host", whyHost, 2}, {"iv", "ipvlan", whyIpvlan, 2}, {"lan", "macvlan", whyMacvlan, 1}} {
		got := st.NotFenceable[i]
		if got.Name != want.name || got.Driver != want.driver || got.Reason != want.reason || got.Section != want.section {
			t.Errorf("not_fenceable[%d] = %+v, want %+v", i, got, want)
		}
	}

	// explain: "not fenced" and why, for each, in text and JSON.
	out = e.mustDF(append([]string{"explain", "-c", pol, "--network", "lan", "--to", topo.LANDB4 + ":5432"}, dh...)...)
	t.Logf("explain --network lan:\n%s", out)
	for _, want := range []string{
		"network  lan (driver macvlan, subnets 192.168.100.0/24)\n",
		"note     Docker's network lan (driver macvlan)\n",
		`section  none: 1 {name: "lan"} (` + pol + ":3:5) matches this network but cannot fence it\n",
		"verdict  not fenced: " + whyMacvlan + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain --network lan lacks %q", want)
		}
	}
	for name, why := range map[string]string{"lan": whyMacvlan, "iv": whyIpvlan, "host": whyHost, "192.168.100.0/24": whyMacvlan} {
		var x struct {
			DecidedBy string `json:"decided_by"`
			Passes    bool
			Section   int
			Note      string
			Network   struct{ Driver string }
		}
		out = e.mustDF(append([]string{"explain", "--json", "-c", pol, "--network", name, "--to", "203.0.113.7:443"}, dh...)...)
		if err := json.Unmarshal([]byte(out), &x); err != nil {
			t.Fatalf("explain --json: %v\n%s", err, out)
		}
		if x.DecidedBy != "not fenceable" || !x.Passes || x.Section != 0 || !strings.Contains(x.Note, "not fenced: "+why) || !strings.HasPrefix(why, x.Network.Driver+": ") {
			t.Errorf("explain --json --network %s:\n%s", name, out)
		}
	}
	// The bridge network is judged as before.
	if out := e.mustDF(append([]string{"explain", "-c", pol, "--network", "app", "--to", topo.LANDB4 + ":5432"}, dh...)...); !strings.Contains(out, "verdict  deny (reject)") {
		t.Errorf("explain --network app:\n%s", out)
	}

	// The daemon logs each once, when it first sees it, and serves them in
	// its status.
	p := e.startDaemonBin(binary, filepath.Join(e.dir, "docker.sock"), pol)
	p.waitLog(t, `network \"host\" is not fenced`)
	fake.Add(harness.Network{Name: "vx", Driver: "overlay", Subnets: []string{"10.0.9.0/24"}})
	p.waitLog(t, `network \"vx\" is not fenced: overlay: VXLAN between Docker hosts`)
	fake.Add(harness.Network{Name: "other", Driver: "bridge", Bridge: "br-other"})
	p.waitLog(t, "table applied") // the sync after the event: other is fenced
	for _, name := range []string{"lan", "iv", "host", "vx"} {
		if n := strings.Count(p.log.String(), `network \"`+name+`\" is not fenced`); n != 1 {
			t.Errorf("the daemon logged %d times that %s is not fenced, want once", n, name)
		}
	}
	out = e.mustDF("status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.NotFenceable) != 4 {
		t.Errorf("the daemon's status --json: %v, not fenceable %+v", err, st.NotFenceable)
	}
}

// TestNotFenceableAgainstDocker creates macvlan and ipvlan networks on a
// real dockerd (which always has its host and none networks too) and
// proves that dockerfence reads their drivers from Docker's own answers:
// status lists them as not fenceable, explain says "not fenced" for them,
// and the bridge network next to them is fenced.
func TestNotFenceableAgainstDocker(t *testing.T) {
	e := newEnv(t)
	d := dockerd.Start(t, e.tp.Host, engine(t))
	_, br := d.CreateNetwork(t, "app", "10.10.0.0/24", nil)
	for _, drv := range []string{"macvlan", "ipvlan"} {
		subnet := map[string]string{"macvlan": "192.168.50.0/24", "ipvlan": "192.168.51.0/24"}[drv]
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		_, err := d.Client.NetworkCreate(ctx, "lan-"+drv, network.CreateOptions{Driver: drv, Options: map[string]string{"parent": topo.LANIf},
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet}}}})
		cancel()
		if err != nil {
			t.Fatalf("create the %s network: %v", drv, err)
		}
	}
	pol := e.write("policy.yaml", notFenceablePolicy)
	dh := []string{"--docker-host", "unix://" + d.Sock}
	stdout, stderr, err := e.dfStdout(append([]string{"apply", "-c", pol}, dh...)...)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, stderr)
	}
	t.Logf("apply against %s:\n%s%s", d.Engine.Name, stderr, stdout)
	for _, name := range []string{"lan-macvlan", "lan-ipvlan", "host"} {
		if n := strings.Count(stderr, `network \"`+name+`\" is not fenced`); n != 1 {
			t.Errorf("apply warned %d times of %s, want once:\n%s", n, name, stderr)
		}
	}
	if strings.Contains(stderr, `network \"none\"`) {
		t.Errorf("apply warned of the none network, which has no traffic:\n%s", stderr)
	}
	out := e.mustDF(append([]string{"status", "-c", pol}, dh...)...)
	t.Logf("status against %s:\n%s", d.Engine.Name, out)
	for _, want := range []string{"app ", br, "not fenceable: macvlan", "not fenceable: ipvlan", "not fenceable: host", "not fenceable: null",
		"  lan-macvlan  " + whyMacvlan, "  lan-ipvlan   " + whyIpvlan, "  host         " + whyHost} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	out = e.mustDF(append([]string{"explain", "-c", pol, "--network", "lan-macvlan", "--to", "192.168.50.9:22"}, dh...)...)
	t.Logf("explain against %s:\n%s", d.Engine.Name, out)
	if !strings.Contains(out, "verdict  not fenced: "+whyMacvlan+"\n") {
		t.Errorf("explain --network lan-macvlan does not say it is not fenced")
	}
	out = e.mustDF(append([]string{"explain", "--json", "-c", pol, "--network", "lan-macvlan", "--to", "192.168.50.9:22"}, dh...)...)
	t.Logf("explain --json against %s:\n%s", d.Engine.Name, out)
	if !strings.Contains(out, `"decided_by": "not fenceable"`) || !strings.Contains(out, `"passes": true`) {
		t.Errorf("explain --json --network lan-macvlan:\n%s", out)
	}
}
