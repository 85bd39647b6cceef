package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/status"
	"github.com/google/go-cmp/cmp"
)

// metricsAddr is where the tests' daemons serve metrics, inside Host.
const metricsAddr = "127.0.0.1:9850"

// startObservedDaemon starts dockerfence run without Docker, with metrics,
// and waits until it serves its socket.
func (e *env) startObservedDaemon(pol string) *daemonProc {
	e.t.Helper()
	p := e.startDaemonArgs(nil, pol, "--metrics-addr", metricsAddr)
	p.waitLog(e.t, "serving metrics")
	p.waitLog(e.t, "reading denials")
	return p
}

// events returns the daemon's kept denial events (dockerfence logs --json).
func (e *env) events() []denylog.Event {
	e.t.Helper()
	out := e.mustDF("logs", "--json")
	var evs []denylog.Event
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var ev denylog.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			e.t.Fatalf("logs --json: %v in %q", err, line)
		}
		evs = append(evs, ev)
	}
	return evs
}

// waitEvent waits until logs --json holds an event that ok accepts.
func (e *env) waitEvent(what string, ok func(denylog.Event) bool) denylog.Event {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs := e.events()
		for _, ev := range evs {
			if ok(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no denial event %s within 5s; events: %+v", what, evs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// statusJSON returns dockerfence status --json.
func (e *env) statusJSON(args ...string) status.Status {
	e.t.Helper()
	out, stderr, err := e.dfStdout(append([]string{"status", "--json"}, args...)...)
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && (ee.ExitCode() == status.ExitAbsent || ee.ExitCode() == status.ExitDiffers) {
		code, err = ee.ExitCode(), nil
	}
	if err != nil {
		e.t.Fatalf("status --json: %v\n%s%s", err, out, stderr)
	}
	var s status.Status
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		e.t.Fatalf("status --json: %v\n%s", err, out)
	}
	// The exit code is the one the JSON says.
	if s.ExitCode != code || stderr != "" && code != 0 {
		e.t.Errorf("status --json exited %d, stderr %q; its exit_code is %d (state %q)", code, stderr, s.ExitCode, s.State)
	}
	return s
}

// ruleByComment finds the rule of network bridge with that comment.
func ruleByComment(s status.Status, bridge, comment string) (status.RuleStatus, bool) {
	for _, n := range s.Networks {
		if n.Bridge != bridge {
			continue
		}
		for _, r := range n.Rules {
			if r.Comment == comment {
				return r, true
			}
		}
	}
	return status.RuleStatus{}, false
}

// scrape fetches the daemon's metrics from inside Host.
func (e *env) scrape() string {
	e.t.Helper()
	var conn net.Conn
	if err := e.tp.Host.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", metricsAddr, 2*time.Second)
		return err
	}); err != nil {
		e.t.Fatalf("connect to the metrics endpoint in Host: %v", err)
	}
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return conn, nil }}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		e.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /metrics: %v %s", err, resp.Status)
	}
	return string(body)
}

// metricValue returns the value of the sample whose name and labels start
// the line as given, e.g. `dockerfence_table_present`.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("metrics have no %s; they are:\n%s", series, grepLines(body, "dockerfence_"))
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDenialsObserved proves the acceptance of "see what the fence does": a
// denied connection shows up in logs (source, destination, port, rule
// comment), in the status counters under the rule's comment, and in the
// metrics.
func TestDenialsObserved(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	pol := e.write("p.yaml", seedPolicy)
	e.startObservedDaemon(pol)

	if fi, err := os.Stat(e.socket()); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket %s: %v, %v; want a socket with mode 0600", e.socket(), fi.Mode(), err)
	}
	db := hostPort(topo.LANDB4, 5432)
	if got := tcpOutcome(e.tp.Ctr, db); got != "refused" {
		t.Fatalf("ctr -> %s: %s, want refused", db, got)
	}
	ev := e.waitEvent("for the database", func(ev denylog.Event) bool { return ev.Dst == topo.LANDB4 })
	want := denylog.Event{Verdict: "deny", Network: topo.BridgeName, Bridge: topo.BridgeName, Section: 1, Hook: "egress",
		Rule: "egress 4", RuleIndex: 4, Comment: "private network", Src: topo.CtrIP4, Dst: topo.LANDB4, Proto: "tcp", Port: 5432}
	got := ev
	got.Time = time.Time{}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if time.Since(ev.Time) > time.Minute || ev.Time.After(time.Now()) {
		t.Errorf("event time %v is not the time of the denial", ev.Time)
	}
	human := e.mustDF("logs")
	line := fmt.Sprintf(`deny       - (%s) %s -> %s:5432/tcp  rule 4 "private network"`, topo.BridgeName, topo.CtrIP4, topo.LANDB4)
	if !strings.Contains(human, line) {
		t.Errorf("dockerfence logs does not show %q:\n%s", line, human)
	}
	t.Logf("dockerfence logs:\n%s", human)

	// IPv6, followed live: logs --follow prints the denial as it happens.
	follow := exec.Command("nsenter", "--net="+e.tp.Host.Path(), binary, "--socket", e.socket(), "logs", "--follow", "--json")
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { follow.Process.Kill(); follow.Wait() }()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// The kept IPv4 event comes first: once it is read, the subscription
	// exists, so the IPv6 denial below can only arrive live.
	select {
	case l := <-lines:
		if !strings.Contains(l, topo.LANDB4) {
			t.Fatalf("logs --follow: first line %q is not the kept denial", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("logs --follow printed nothing within 5s")
	}
	db6 := hostPort(topo.LANDB6, 5432)
	if got := tcpOutcome(e.tp.Ctr, db6); got != "refused" {
		t.Fatalf("ctr -> %s: %s, want refused", db6, got)
	}
	deadline := time.After(5 * time.Second)
	for seen := false; !seen; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("logs --follow ended")
			}
			var ev denylog.Event
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("logs --follow --json: %v in %q", err, l)
			}
			seen = ev.Dst == topo.LANDB6 && ev.Port == 5432 && ev.Comment == "private network (IPv6)" && ev.Src == topo.CtrIP6
		case <-deadline:
			t.Fatal("logs --follow did not print the IPv6 denial within 5s")
		}
	}

	s := e.statusJSON("-c", pol)
	if s.Daemon == nil || s.LastApply == nil || s.LastApply.Result != "applied" || !s.Table.Present || !s.Table.InSync || s.Table.Priority != -10 {
		t.Errorf("status: daemon %+v, last apply %+v, table %+v", s.Daemon, s.LastApply, s.Table)
	}
	r, ok := ruleByComment(s, topo.BridgeName, "private network")
	if !ok || r.Packets < 1 || r.Verdict != "deny" || r.ID != "egress 4" {
		t.Errorf("status rule \"private network\" = %+v (found %v), want a deny with packets >= 1", r, ok)
	}
	t.Logf("status: rule %q counted %d packets", r.Comment, r.Packets)
	human = e.mustDF("status", "-c", pol)
	for _, want := range []string{`(?m)^daemon: +running, pid \d+`, `(?m)^last apply: .* by run \(start\): applied in`,
		`(?m)^ +egress 4 +deny +192\.168\.0\.0/16 +[1-9]\d* +\d+ +private network$`} {
		if !regexp.MustCompile(want).MatchString(human) {
			t.Errorf("dockerfence status does not match %s:\n%s", want, human)
		}
	}
	t.Logf("dockerfence status:\n%s", human)

	body := e.scrape()
	series := fmt.Sprintf(`dockerfence_denied_packets_total{bridge=%q,network=%q,rule="egress 4",verdict="deny"}`, topo.BridgeName, topo.BridgeName)
	if v := metricValue(t, body, series); v < 1 {
		t.Errorf("%s = %v, want >= 1", series, v)
	}
	if v := metricValue(t, body, "dockerfence_table_present"); v != 1 {
		t.Errorf("dockerfence_table_present = %v", v)
	}
	if v := metricValue(t, body, `dockerfence_applies_total{result="applied",trigger="start"}`); v != 1 {
		t.Errorf("applies at start = %v, want 1", v)
	}
	if v := metricValue(t, body, `dockerfence_denial_events_total{network="br-test",rule="egress 4"}`); v < 1 {
		t.Errorf("denial events = %v", v)
	}
	t.Logf("metrics:\n%s", grepLines(body, "egress 4"))

	// The daemon owns the table: the kernel refuses its deletion, so
	// there is nothing to heal.
	e.refused(t, "delete", "table", "inet", "dockerfence")
	time.Sleep(100 * time.Millisecond)
	if v := metricValueOr(e.scrape(), `dockerfence_heals_total{cause="kernel"}`); v > 0 {
		t.Errorf("a heal was counted though the kernel refused the change: %v", v)
	}
	if v := metricValue(t, e.scrape(), "dockerfence_table_present"); v != 1 {
		t.Errorf("dockerfence_table_present after the refused delete = %v", v)
	}
}

// metricValueOr is metricValue that returns -1 for a missing series.
func metricValueOr(body, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestAuditModeObserved proves that audit mode lets a denied connection
// through, logs it as "would deny", and counts it in status and metrics.
func TestAuditModeObserved(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	pol := e.write("p.yaml", strings.Replace(seedPolicy, "version: 1\n", "version: 1\nsettings: {mode: audit}\n", 1))
	e.startObservedDaemon(pol)
	db := hostPort(topo.LANDB4, 5432)
	if got := tcpOutcome(e.tp.Ctr, db); got != "ok" {
		t.Fatalf("audit mode: ctr -> %s: %s, want ok (let through)", db, got)
	}
	ev := e.waitEvent("would deny", func(ev denylog.Event) bool { return ev.Dst == topo.LANDB4 && ev.Port == 5432 })
	if ev.Verdict != "would deny" || ev.Comment != "private network" {
		t.Errorf("audit event = %+v", ev)
	}
	if human := e.mustDF("logs"); !strings.Contains(human, "would deny") {
		t.Errorf("logs does not say would deny:\n%s", human)
	}
	s := e.statusJSON("-c", pol)
	r, _ := ruleByComment(s, topo.BridgeName, "private network")
	if s.Mode != "audit" || r.Verdict != "would deny" || r.Packets < 1 {
		t.Errorf("status: mode %q, rule %+v; want audit, would deny, packets >= 1", s.Mode, r)
	}
	series := fmt.Sprintf(`dockerfence_denied_packets_total{bridge=%q,network=%q,rule="egress 4",verdict="would_deny"}`, topo.BridgeName, topo.BridgeName)
	if v := metricValue(t, e.scrape(), series); v < 1 {
		t.Errorf("%s = %v, want >= 1", series, v)
	}
	t.Logf("audit: connection let through; status counted %d packets as would deny", r.Packets)
}

// TestLogsWithoutDaemon proves that logs reads the NFLOG group itself when
// no daemon runs, and says so.
func TestLogsWithoutDaemon(t *testing.T) {
	e := newEnv(t)
	e.lanServers()
	pol := e.write("p.yaml", seedPolicy)
	e.mustDF("apply", "-c", pol)
	if s := e.statusJSON("-c", pol); s.Daemon != nil || s.LastApply == nil || s.LastApply.By != "apply" || s.LastApply.Result != "applied" {
		t.Errorf("status without daemon: daemon %+v, last apply %+v", s.Daemon, s.LastApply)
	}
	cmd := exec.Command("nsenter", "--net="+e.tp.Host.Path(), binary, "--socket", e.socket(), "--resolv-conf", e.resolvConf,
		"--docker-host", "unix://"+e.dir+"/no-docker.sock", "-c", pol, "logs", "--json")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(stderr.String(), "reading NFLOG group 100 myself") {
		if time.Now().After(deadline) {
			t.Fatalf("logs did not say it reads the group itself:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("logs without a daemon says: %s", strings.TrimSpace(stderr.String()))
	if got := tcpOutcome(e.tp.Ctr, hostPort(topo.LANDB4, 5432)); got != "refused" {
		t.Fatalf("database: %s, want refused", got)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			line <- sc.Text()
		}
	}()
	select {
	case l := <-line:
		var ev denylog.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Dst != topo.LANDB4 || ev.Comment != "private network" || ev.Src != topo.CtrIP4 {
			t.Errorf("event %q: %+v %v", l, ev, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("logs printed no denial within 5s; stderr:\n%s", stderr.String())
	}
}
