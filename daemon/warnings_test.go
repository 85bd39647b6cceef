package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/dockerfence/dockerfence/nft/fake"
)

// apply and plan through the socket answer with the policy's warnings and
// the table's, as the commands working by themselves log them.
func TestRequestsCarryWarnings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reqs := make(chan Request)
		const pol = namedPolicy + "  - match: {name: app}\n  - match: {name: web}\n"
		start(t, true, func(c *Config) {
			c.Kernel = fake.New()
			c.Requests = reqs
			c.LoadPolicy = policyLoader(pol)
		})
		want := []string{
			`p.yaml:6:5: section 2 {name: "app"} never applies: section 1 {name: "app"} (line 3) comes first and matches every network it matches; move section 2 above it, or remove it`,
			`p.yaml:7:5: section 3 {name: "web"} matches no network`,
		}
		for _, kind := range []string{RequestPlan, RequestApply} {
			r := ask(t, reqs, kind, "")
			if r.Err != nil || !slices.Equal(r.Warnings, want) {
				t.Errorf("%s: %v, warnings\n%s\nwant\n%s", kind, r.Err, strings.Join(r.Warnings, "\n"), strings.Join(want, "\n"))
			}
		}
	})
}

// The warnings of an answer cross the socket unchanged, one each, even
// with a line break or bytes other than ASCII in them.
func TestAskWarnings(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "df.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	reqs := make(chan Request)
	defer serveHTTP(l, (&API{Requests: reqs}).Handler(), func(err error) { t.Error(err) })()
	want := []string{`section 2 {name: "app"} matches no network; did you mean app_default?`, "network \"ünï\ncode\": forged line", ""}
	go func() {
		r := <-reqs
		r.Reply <- Reply{Output: "plan output\n", Warnings: want, Pending: true}
	}()
	a, err := Ask(context.Background(), sock, RequestPlan, "/etc/dockerfence/policy.yaml")
	if err != nil || a.Output != "plan output\n" || !slices.Equal(a.Warnings, want) {
		t.Errorf("Ask = %q, %q, %v; want the output and the warnings %q", a.Output, a.Warnings, err, want)
	}
	if a.Pending == nil || !*a.Pending {
		t.Errorf("Ask: pending %v, want true beside the warnings", a.Pending)
	}
}
