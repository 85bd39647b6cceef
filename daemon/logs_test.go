package daemon

import (
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dockerfence/dockerfence/docker"
)

// logLines returns the lines of log that contain part, without their time.
func logLines(log *lockedBuffer, part string) []string {
	var out []string
	for l := range strings.Lines(log.String()) {
		if strings.Contains(l, part) {
			_, l, _ = strings.Cut(strings.TrimSuffix(l, "\n"), " ")
			out = append(out, l)
		}
	}
	return out
}

// An outage of Docker is logged when it starts, then once a minute with
// the count of failed attempts, not at every retry, and when Docker is
// back. The bubble's fake clock stands for two minutes of retries every
// 5 s.
func TestDockerOutageLoggedOnceAMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log lockedBuffer
		h := start(t, true, func(c *Config) { c.Log = slog.New(slog.NewTextHandler(&log, nil)) })
		lost := docker.Update{Signal: docker.Lost, Err: docker.ErrUnreachable}
		h.docker.updates <- lost
		synctest.Wait()
		for range 24 {
			time.Sleep(5 * time.Second)
			h.docker.updates <- lost
			synctest.Wait()
		}
		h.docker.updates <- docker.Update{Signal: docker.Connected}
		if r := h.next(); r.Reason != "Docker connected" {
			t.Fatalf("sync after Docker is back = %+v", r)
		}
		got := slices.DeleteFunc(logLines(&log, "Docker"), func(l string) bool { return strings.Contains(l, `msg="table applied"`) })
		want := []string{
			`level=INFO msg="Docker connected; resyncing all networks"`,
			`level=WARN msg="lost Docker's event stream; the fence stays as it is and follows the last known networks until Docker is back (retrying; logged again once a minute while it lasts)" err="` + docker.ErrUnreachable.Error() + `"`,
			`level=WARN msg="Docker is still unreachable; the fence follows the last known networks" failed_attempts=13 unreachable_for=1m0s err="` + docker.ErrUnreachable.Error() + `"`,
			`level=WARN msg="Docker is still unreachable; the fence follows the last known networks" failed_attempts=25 unreachable_for=2m0s err="` + docker.ErrUnreachable.Error() + `"`,
			`level=INFO msg="Docker connected again; resyncing all networks" failed_attempts=25 unreachable_for=2m0s`,
		}
		if !slices.Equal(got, want) {
			t.Errorf("log lines about Docker:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// The table's warnings are logged when they change, not at every sync:
// a section that matches no network is told of once, and once more when
// a network it matches appears.
func TestWarningsLoggedWhenTheyChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log lockedBuffer
		h := start(t, true, func(c *Config) { c.Log = slog.New(slog.NewTextHandler(&log, nil)) })
		h.pmu.Lock()
		h.policy = namedPolicy + "  - match: {name: web}\n"
		h.pmu.Unlock()
		h.reload <- nil
		h.next()
		for range 3 {
			h.docker.updates <- docker.Update{Signal: docker.Changed, Event: "container start"}
			h.next()
		}
		h.docker.mu.Lock()
		h.docker.nets = append(h.docker.nets, docker.Network{ID: "2", Name: "web_default", Bridge: "br-2", Subnets: []netip.Prefix{netip.MustParsePrefix("172.21.0.0/16")}})
		h.docker.mu.Unlock()
		h.docker.updates <- docker.Update{Signal: docker.Changed, Event: "network create web_default"}
		h.next()
		h.docker.mu.Lock()
		h.docker.nets[1].Name = "web"
		h.docker.mu.Unlock()
		h.docker.updates <- docker.Update{Signal: docker.Changed, Event: "network create web"}
		h.next()
		got := logLines(&log, "section 2")
		want := []string{
			`level=WARN msg="p.yaml:6:5: section 2 {name: \"web\"} matches no network"`,
			`level=WARN msg="p.yaml:6:5: section 2 {name: \"web\"} matches no network; did you mean web_default?"`,
			`level=INFO msg="no longer the case: p.yaml:6:5: section 2 {name: \"web\"} matches no network"`,
			`level=INFO msg="no longer the case: p.yaml:6:5: section 2 {name: \"web\"} matches no network; did you mean web_default?"`,
		}
		if !slices.Equal(got, want) {
			t.Errorf("log lines about section 2:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
