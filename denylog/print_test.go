package denylog

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nflog"
	"golang.org/x/sys/unix"
)

func TestPrinter(t *testing.T) {
	e := Event{Time: when, Verdict: "deny", Network: "app_default", Bridge: "br-app", Rule: "egress 2", RuleIndex: 2, Comment: "private network",
		Src: "172.20.0.2", Dst: "192.168.100.50", Proto: "tcp", Port: 5432, Container: "app-web-1"}
	var text, js bytes.Buffer
	for _, print := range []func(Event) error{Printer(&text, false), Printer(&js, true)} {
		for range 2 {
			if err := print(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	line := e.Line() + "\n"
	if text.String() != line+line {
		t.Errorf("text printer wrote %q, want the event's line twice", text.String())
	}
	want := `{"time":"` + when.Format("2006-01-02T15:04:05Z07:00") + `","verdict":"deny","network":"app_default","bridge":"br-app","section":0,"hook":"","rule":"egress 2","rule_index":2,"comment":"private network","src":"172.20.0.2","dst":"192.168.100.50","proto":"tcp","port":5432,"container":"app-web-1"}` + "\n"
	if js.String() != want+want {
		t.Errorf("JSON printer wrote\n%s\nwant one object a line:\n%s", js.String(), want+want)
	}
}

// errWriter fails every write, as a closed stdout does.
type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestReaderPrint(t *testing.T) {
	tbl := table(t, "enforce")
	pkt := nflog.Packet{Time: when, Prefix: "df fwd_br-app.e2 ", Family: unix.NFPROTO_IPV4, Payload: tcp4("172.20.0.2", "192.168.100.50", 5432)}
	overruns := 0
	r := Reader{Table: func() *fence.Result { return tbl }, Overrun: func() { overruns++ }}

	// Printing until ctx ends: every event printed, no error.
	var out bytes.Buffer
	src := &fakeSource{errs: []error{nflog.ErrOverrun}, batches: [][]nflog.Packet{{pkt, pkt}}, closed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	print := Printer(&out, false)
	err := r.Print(ctx, src, func(e Event) error {
		err := print(e)
		if strings.Count(out.String(), "\n") == 2 {
			cancel()
		}
		return err
	})
	if err != nil || strings.Count(out.String(), "rule 2 \"private network\"") != 2 || overruns != 1 {
		t.Errorf("Print until cancel = %v, printed %q after %d overruns; want two lines, one overrun", err, out.String(), overruns)
	}

	// Output gone: the first error ends the reading and is returned; the
	// second packet is not printed.
	src = &fakeSource{batches: [][]nflog.Packet{{pkt}, {pkt}}, closed: make(chan struct{})}
	calls := 0
	fail := Printer(errWriter{}, true)
	err = r.Print(context.Background(), src, func(e Event) error { calls++; return fail(e) })
	if err == nil || err.Error() != "broken pipe" || calls != 1 {
		t.Errorf("Print to a broken output = %v after %d calls, want broken pipe after 1", err, calls)
	}
	select {
	case <-src.closed: // closed when ctx ends, maybe just after Print returns
	case <-time.After(5 * time.Second):
		t.Error("the source is still open 5s after Print returned")
	}
}
