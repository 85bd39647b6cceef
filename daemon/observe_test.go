package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const observedPolicy = `version: 1
networks:
  - match: {name: app}
    egress:
      - deny: 192.168.0.0/16
        comment: LAN
    egress_default: allow
`

// countingKernel reads back the table last given with counters set.
type countingKernel struct {
	t       *fence.Result
	packets uint64
	err     error
}

func (k *countingKernel) Read(string) (*nft.State, error) {
	if k.err != nil || k.t == nil {
		return nil, k.err
	}
	st := &nft.State{}
	for _, c := range k.t.Chains {
		cs := nft.ChainState{Name: c.Name}
		for _, r := range c.Rules {
			rs := nft.RuleState{ID: r.ID}
			if r.ID == "egress 1" {
				rs.Packets, rs.Bytes = k.packets, 60*k.packets
			}
			cs.Rules = append(cs.Rules, rs)
		}
		st.Chains = append(st.Chains, cs)
	}
	return st, nil
}

func observedSync(t *testing.T) (Result, *countingKernel) {
	t.Helper()
	pol, err := policy.Parse("p.yaml", []byte(observedPolicy), policy.Options{ResolvConf: os.DevNull})
	if err != nil {
		t.Fatal(err)
	}
	tbl := fence.Compile(pol, []policy.Network{{Name: "app", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24")}}})
	return Result{Time: time.Now(), Trigger: TriggerStart, Reason: "start", Policy: pol, Table: tbl, Changed: true, Source: status.SourceDocker, Took: 3 * time.Millisecond},
		&countingKernel{t: tbl, packets: 4}
}

func TestObserverStatusAndMetrics(t *testing.T) {
	res, k := observedSync(t)
	m := NewMetrics()
	o := NewObserver(k, m)
	if _, err := o.Status(); !errors.Is(err, ErrNotSynced) {
		t.Errorf("Status before a sync = %v, want ErrNotSynced", err)
	}
	o.OnDocker(docker.Update{Signal: docker.Connected})
	o.OnSync(res)
	unchanged := res
	unchanged.Changed, unchanged.Trigger = false, TriggerResync
	o.OnSync(unchanged)
	healed := res
	healed.Trigger = TriggerKernel
	o.OnSync(healed)
	failed := res
	failed.Changed, failed.Err, failed.Trigger = false, errors.New("kernel says no"), TriggerDocker
	o.OnSync(failed)
	o.Denial(denylog.Event{Network: "app", Rule: "egress 1"})

	s, err := o.Status()
	if err != nil {
		t.Fatal(err)
	}
	if s.Daemon == nil || !s.Daemon.DockerUp || s.Daemon.Denials != 1 || s.Daemon.LastSync.Result != "failed" {
		t.Errorf("daemon = %+v", s.Daemon)
	}
	if s.LastApply == nil || s.LastApply.Result != "failed" || s.LastApply.Error != "kernel says no" || s.LastApply.By != "run" || s.LastApply.Table != "dockerfence" {
		t.Errorf("last apply = %+v", s.LastApply)
	}
	if len(s.Networks) != 1 || s.Networks[0].Denied != 4 {
		t.Errorf("networks = %+v", s.Networks)
	}

	for series, want := range map[string]float64{
		`dockerfence_applies_total{result="applied",trigger="start"}`:                                         1,
		`dockerfence_applies_total{result="unchanged",trigger="resync"}`:                                      1,
		`dockerfence_applies_total{result="failed",trigger="docker"}`:                                         1,
		`dockerfence_apply_failures_total`:                                                                    1,
		`dockerfence_heals_total{cause="kernel"}`:                                                             1,
		`dockerfence_docker_up`:                                                                               1,
		`dockerfence_table_present`:                                                                           1,
		`dockerfence_denial_events_total{network="app",rule="egress 1"}`:                                      1,
		`dockerfence_denied_packets_total{bridge="br-app",network="app",rule="egress 1",verdict="deny"}`:      4,
		`dockerfence_denied_bytes_total{bridge="br-app",network="app",rule="egress 1",verdict="deny"}`:        240,
		`dockerfence_rule_packets_total{bridge="br-app",network="app",rule="egress_default",verdict="allow"}`: 0,
	} {
		if got := sample(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("duration histogram series = %d", n)
	}

	k.err = errors.New("netlink: permission denied")
	if got := sample(t, m, "dockerfence_kernel_read_error"); got != 1 {
		t.Errorf("kernel_read_error after a failed read = %v", got)
	}
}

// sample scrapes m and returns the value of one series, failing if absent.
func sample(t *testing.T, m *Metrics, series string) float64 {
	t.Helper()
	srv := httptest.NewServer(promHandler(m))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var all []string
	for sc.Scan() {
		l := sc.Text()
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			var f float64
			if err := json.Unmarshal([]byte(v), &f); err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
		if strings.HasPrefix(l, "dockerfence_") {
			all = append(all, l)
		}
	}
	t.Fatalf("no series %s in:\n%s", series, strings.Join(all, "\n"))
	return 0
}

func TestAPI(t *testing.T) {
	res, k := observedSync(t)
	o := NewObserver(k, nil)
	hub := &denylog.Hub{}
	api := &API{Observer: o, Hub: hub}
	sock := filepath.Join(t.TempDir(), "run", "df.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: api.Handler()}
	go srv.Serve(l)
	defer srv.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v", fi.Mode(), err)
	}
	if _, err := ListenUnix(sock); err == nil || !strings.Contains(err.Error(), "another dockerfence run answers") {
		t.Errorf("second ListenUnix = %v, want a refusal", err)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}

	resp, err := client.Get("http://x" + StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status before a sync: %s", resp.Status)
	}
	o.OnSync(res)
	resp, err = client.Get("http://x" + StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	var s status.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || s.Networks[0].Denied != 4 {
		t.Errorf("status: %v %+v", err, s)
	}
	resp.Body.Close()

	hub.Publish(denylog.Event{Port: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x"+EventsPath+"?follow=1", nil)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var e denylog.Event
	if err := dec.Decode(&e); err != nil || e.Port != 1 {
		t.Fatalf("kept event: %v %+v", err, e)
	}
	hub.Publish(denylog.Event{Port: 2})
	if err := dec.Decode(&e); err != nil || e.Port != 2 {
		t.Fatalf("followed event: %v %+v", err, e)
	}

	// A stale socket (its daemon is gone, the file left behind) is replaced.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	srv.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("the stale socket file is gone, so the test proves nothing: %v", err)
	}
	if l2, err := ListenUnix(sock); err != nil {
		t.Errorf("ListenUnix over a stale socket: %v", err)
	} else {
		l2.Close()
	}
	// A file that is not a socket is left alone.
	plain := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(plain, nil, 0o600)
	if _, err := ListenUnix(plain); err == nil {
		t.Error("ListenUnix over a plain file succeeded")
	}
}

// TestDashboardMetricsExist checks that the example Grafana dashboard in
// packaging/ is JSON and asks only for metrics the daemon serves.
func TestDashboardMetricsExist(t *testing.T) {
	data, err := os.ReadFile("../packaging/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	res, k := observedSync(t)
	m := NewMetrics()
	o := NewObserver(k, m)
	o.OnSync(res)
	o.OnDocker(docker.Update{Signal: docker.Connected})
	o.Denial(denylog.Event{Network: "app", Rule: "egress 1"})
	m.heals.WithLabelValues(TriggerKernel)
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, f := range families {
		served[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			served[f.GetName()+"_bucket"] = true
		}
	}
	used := regexp.MustCompile(`dockerfence_[a-z_]+`).FindAllString(string(data), -1)
	if len(used) < 5 {
		t.Fatalf("the dashboard uses only %v", used)
	}
	for _, name := range used {
		if !served[name] {
			t.Errorf("the dashboard uses %s, which the daemon does not serve", name)
		}
	}
}

// TestObserverKeptAndFailed checks what status says while the daemon keeps
// a table it did not build, and after a sync that failed to apply a new
// table, and that a network that left takes its denial series along.
func TestObserverKeptAndFailed(t *testing.T) {
	res, k := observedSync(t)
	m := NewMetrics()
	o := NewObserver(k, m)
	o.OnSync(Result{Time: time.Now(), Trigger: TriggerStart, Policy: res.Policy, Kept: true})
	s, err := o.Status()
	if err != nil || s.Source != status.SourceKept || !s.Table.Present || len(s.Networks) != 0 || s.Networks == nil {
		t.Fatalf("status while kept: %v %+v", err, s)
	}

	o.OnSync(res)
	o.Denial(denylog.Event{Network: "app", Rule: "egress 1"})
	o.Denial(denylog.Event{Bridge: "br-x", Rule: "anti-spoofing", Hook: "egress"})
	if got := sample(t, m, `dockerfence_denial_events_total{network="br-x",rule="anti-spoofing egress"}`); got != 1 {
		t.Errorf("events of an unnamed network: %v", got)
	}
	// The policy now wants a second network, and the kernel refuses.
	bigger := fence.Compile(res.Policy, []policy.Network{
		{Name: "app", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24")}},
		{Name: "app", Bridge: "br-app2", Subnets: []netip.Prefix{netip.MustParsePrefix("10.11.0.0/24")}},
	})
	failed := res
	failed.Table, failed.Changed, failed.Err = bigger, false, errors.New("kernel says no")
	o.OnSync(failed)
	if s, err := o.Status(); err != nil || s.Table.InSync || len(s.Table.Drift) == 0 {
		t.Errorf("after a failed sync the kernel is not what the policy wants: in_sync %v, drift %v, err %v", s.Table.InSync, s.Table.Drift, err)
	}
	if got := sample(t, m, "dockerfence_table_in_sync"); got != 0 {
		t.Errorf("dockerfence_table_in_sync after a failed sync = %v", got)
	}
	// Denials are still attributed with the table in the kernel.
	if o.Table() != res.Table {
		t.Error("the observer attributes with a table that was never applied")
	}
	// The network leaves: its denial series go with it.
	gone := res
	gone.Table = fence.Compile(res.Policy, nil)
	o.OnSync(gone)
	body := scrape(t, m)
	if strings.Contains(body, `dockerfence_denial_events_total{network="app"`) {
		t.Errorf("series of a network that left remain:\n%s", body)
	}
}

// scrape returns the metrics text.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(promHandler(m))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}

// The catch-all's rules are exported with network and bridge "*", so that
// denials of bridges the table does not know yet are counted too.
func TestMetricsCatchAll(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte("version: 1\nnetworks:\n  - match: {name: \"*\"}\n    egress:\n      - deny: 192.168.0.0/16\n"), policy.Options{ResolvConf: os.DevNull})
	if err != nil {
		t.Fatal(err)
	}
	tbl := fence.Compile(pol, []policy.Network{{Name: "app", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24")}}})
	m := NewMetrics()
	o := NewObserver(&countingKernel{t: tbl, packets: 3}, m)
	o.OnSync(Result{Time: time.Now(), Trigger: TriggerStart, Policy: pol, Table: tbl, Changed: true, Source: status.SourceDocker})
	for series, want := range map[string]float64{
		`dockerfence_denied_packets_total{bridge="*",network="*",rule="egress 1",verdict="deny"}`:        3,
		`dockerfence_denied_packets_total{bridge="br-app",network="app",rule="egress 1",verdict="deny"}`: 3,
		`dockerfence_rule_packets_total{bridge="*",network="*",rule="egress_default",verdict="allow"}`:   0,
	} {
		if got := sample(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}

// Containers with rules of their own export their rules' counters, and a
// container whose label does not parse is a gauge with the container's
// name and where the label is wrong.
func TestMetricsContainers(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte("version: 1\nnetworks:\n  - match: {name: \"*\"}\ncontainers:\n  - match: {label: role=worker}\n    egress:\n      - allow: 192.168.100.1\n    egress_default: deny\n"), policy.Options{ResolvConf: os.DevNull})
	if err != nil {
		t.Fatal(err)
	}
	nets := []policy.Network{{ID: "n1", Name: "app", Bridge: "br-app", Subnets: []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24")}}}
	ctrs := []fence.Container{
		{ID: "0123456789abcdef", Name: "worker", Labels: map[string]string{"role": "worker"}, Endpoints: []fence.Endpoint{{NetworkID: "n1", Addrs: []netip.Addr{netip.MustParseAddr("10.10.0.2")}}}},
		{ID: "fedcba9876543210", Name: "broken", Labels: map[string]string{policy.EgressLabel: "[{deny: 10.0.0.0/33}]"}, Endpoints: []fence.Endpoint{{NetworkID: "n1", Addrs: []netip.Addr{netip.MustParseAddr("10.10.0.3")}}}},
	}
	tbl := fence.CompileContainers(pol, nets, ctrs)
	m := NewMetrics()
	o := NewObserver(&countingKernel{t: tbl, packets: 3}, m)
	o.OnSync(Result{Time: time.Now(), Trigger: TriggerStart, Policy: pol, Table: tbl, Changed: true, Source: status.SourceDocker})
	for series, want := range map[string]float64{
		`dockerfence_container_rule_packets_total{container="worker",rule="container section egress 1",verdict="allow"}`:                                                                                     3,
		`dockerfence_container_rule_packets_total{container="worker",rule="container section egress_default",verdict="deny"}`:                                                                                0,
		`dockerfence_container_label_invalid{container="broken",error="label dockerfence.egress:1:9: rules[1].deny: \"10.0.0.0/33\" is not an address or CIDR prefix (e.g. 192.168.0.0/16, 2001:db8::/32)"}`: 1,
	} {
		if got := sample(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}
