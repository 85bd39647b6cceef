package daemon

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/policy"
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

// A Docker that never answered is "unreachable", not a lost stream, and
// is logged once a minute too.
func TestDockerNeverUpLoggedOnceAMinute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log lockedBuffer
		lost := docker.Update{Signal: docker.Lost, Err: docker.ErrUnreachable}
		h := start(t, true, func(c *Config) {
			c.Log = slog.New(slog.NewTextHandler(&log, nil))
			d := c.Docker.(*fakeDocker)
			<-d.updates // not connected: lost from the start
			d.updates <- lost
		})
		if h.first.Source != "netlink" {
			t.Fatalf("first sync = %+v, want the bridges found over netlink", h.first)
		}
		for range 15 {
			time.Sleep(5 * time.Second)
			h.docker.updates <- lost
			synctest.Wait()
		}
		got := logLines(&log, "Docker is")
		want := []string{
			`level=WARN msg="Docker is unreachable; the fence stays as it is and follows the bridges found over netlink until Docker is back (retrying; logged again once a minute while it lasts)" err="` + docker.ErrUnreachable.Error() + `"`,
			`level=WARN msg="Docker is still unreachable; the fence follows the bridges found over netlink" failed_attempts=13 unreachable_for=1m0s err="` + docker.ErrUnreachable.Error() + `"`,
		}
		if !slices.Equal(got, want) {
			t.Errorf("log lines about Docker:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// The warnings of the policy and of the table are logged when they
// change, not at every sync or reload: a section that matches no network
// is told of once, and once more when the closest name changes, a section
// that an earlier one shadows once for all the reloads.
func TestWarningsLoggedWhenTheyChange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log lockedBuffer
		h := start(t, true, func(c *Config) { c.Log = slog.New(slog.NewTextHandler(&log, nil)) })
		h.pmu.Lock()
		h.policy = namedPolicy + "  - match: {name: web}\n  - match: {name: app}\n"
		h.pmu.Unlock()
		for range 3 {
			h.reload <- nil
			h.next()
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
		// The policy's own warning, once for all the reloads.
		got = logLines(&log, "section 3")
		want = []string{`level=WARN msg="p.yaml:7:5: section 3 {name: \"app\"} never applies: section 1 {name: \"app\"} (line 3) comes first and matches every network it matches; move section 3 above it, or remove it"`}
		if !slices.Equal(got, want) {
			t.Errorf("log lines about section 3:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}

// A change of the file @resolvers was read from reloads the policy, so
// that the table follows the host's resolvers; here systemd-resolved's
// upstream servers, which the host's stub resolv.conf points to.
func TestResolversFileChangeReloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		opts := policy.Options{ResolvConf: filepath.Join(dir, "resolv.conf"), ResolvedConf: filepath.Join(dir, "upstream.conf")}
		// write replaces the file in one step, as systemd-resolved does,
		// so that the daemon's poll never sees it half written.
		write := func(file, text string) {
			t.Helper()
			if err := os.WriteFile(file+".new", []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(file+".new", file); err != nil {
				t.Fatal(err)
			}
		}
		write(opts.ResolvConf, "nameserver 127.0.0.53\n")
		write(opts.ResolvedConf, "nameserver 192.168.1.1\n")
		var log lockedBuffer
		h := start(t, true, func(c *Config) {
			c.Log = slog.New(slog.NewTextHandler(&log, nil))
			c.LoadPolicy = func() (*policy.Policy, error) {
				return policy.Parse("p.yaml", []byte("version: 1\nnetworks:\n  - match: {name: app}\n    egress:\n      - allow: \"@resolvers\"\n        ports: [53]\n      - deny: \"@private\"\n"), opts)
			}
		})
		resolvers := func(r Result) string { return fmt.Sprint(r.Policy.Lists["resolvers"].Prefixes) }
		if got := resolvers(h.first); got != "[192.168.1.1/32]" {
			t.Fatalf("@resolvers at start = %s, want systemd-resolved's upstream server", got)
		}
		// Written again as it was (a new inode): nothing to reload.
		write(opts.ResolvedConf, "nameserver 192.168.1.1\n")
		h.none(3 * time.Second)
		write(opts.ResolvedConf, "nameserver 192.168.1.254\nnameserver 192.168.1.253\n")
		r := h.next()
		if r.Trigger != TriggerReload || resolvers(r) != "[192.168.1.254/32 192.168.1.253/32]" {
			t.Errorf("sync after the upstream servers changed = %s %s, want a reload with the new servers", r.Trigger, resolvers(r))
		}
		want := `level=INFO msg="policy reloaded" trigger="resolv.conf changed" policy=p.yaml resolvers_from=` + opts.ResolvedConf
		if got := logLines(&log, "policy reloaded"); !slices.Equal(got, []string{want}) {
			t.Errorf("log of the reload: %q, want %q", got, want)
		}
	})
}
