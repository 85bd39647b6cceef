package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockerfence/dockerfence/denylog"
)

// serveAPI serves the API of o and hub on a new socket and returns its path.
func serveAPI(t *testing.T, o *Observer, hub *denylog.Hub) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "df.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	serveTest(t, l, (&API{Observer: o, Hub: hub}).Handler())
	return sock
}

// serveTest serves h on l until the test ends.
func serveTest(t *testing.T, l net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// collect returns a print function that appends to *got.
func collect(got *[]denylog.Event) func(denylog.Event) error {
	return func(e denylog.Event) error {
		*got = append(*got, e)
		return nil
	}
}

// No daemon, a daemon that has not synced yet, one that has: GetStatus
// tells them apart, and the commands can fall back on the first.
func TestGetStatus(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "none.sock")
	if _, err := GetStatus(ctx, missing); !errors.Is(err, ErrNoDaemon) || err.Error() != "no dockerfence run answers on "+missing {
		t.Errorf("GetStatus of a missing socket = %v, want ErrNoDaemon naming the socket", err)
	}
	// A socket file left by a daemon that is gone: the connection is refused.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := GetStatus(ctx, stale); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("GetStatus of a stale socket = %v, want ErrNoDaemon", err)
	}

	res, k := observedSync(t)
	o := NewObserver(k, nil)
	sock := serveAPI(t, o, &denylog.Hub{})
	_, err = GetStatus(ctx, sock)
	if want := fmt.Sprintf("dockerfence run on %s: %v", sock, ErrNotSynced); err == nil || err.Error() != want || errors.Is(err, ErrNoDaemon) {
		t.Errorf("GetStatus before a sync = %v, want %q", err, want)
	}
	o.OnSync(res)
	s, err := GetStatus(ctx, sock)
	if err != nil || len(s.Networks) != 1 || s.Networks[0].Denied != 4 || s.Daemon == nil {
		t.Errorf("GetStatus = %+v, %v; want the daemon's status with network app", s, err)
	}
}

func TestEvents(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, k := observedSync(t)
	hub := &denylog.Hub{}
	sock := serveAPI(t, NewObserver(k, nil), hub)
	hub.Publish(denylog.Event{Port: 1})
	hub.Publish(denylog.Event{Port: 2})

	var got []denylog.Event
	if err := Events(ctx, sock, false, collect(&got)); err != nil || len(got) != 2 || got[0].Port != 1 || got[1].Port != 2 {
		t.Fatalf("Events without follow = %v, %+v; want the two kept events, oldest first", err, got)
	}

	// Following, the kept events come first, then the new ones; an error
	// of print ends it.
	got = nil
	stop := errors.New("stdout is gone")
	done := make(chan error, 1)
	go func() {
		done <- Events(ctx, sock, true, func(e denylog.Event) error {
			got = append(got, e)
			if e.Port == 2 {
				hub.Publish(denylog.Event{Port: 3})
			}
			if e.Port == 3 {
				return stop
			}
			return nil
		})
	}()
	if err := <-done; err != stop || len(got) != 3 {
		t.Errorf("Events with follow = %v after %+v, want print's error after 3 events", err, got)
	}

	// Following until ctx ends is no error.
	fctx, fcancel := context.WithCancel(ctx)
	go func() { done <- Events(fctx, sock, true, func(denylog.Event) error { fcancel(); return nil }) }()
	if err := <-done; err != nil {
		t.Errorf("Events with follow, cancelled = %v, want nil", err)
	}

	if err := Events(ctx, filepath.Join(t.TempDir(), "none.sock"), true, collect(&got)); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("Events of a missing socket = %v, want ErrNoDaemon", err)
	}
}

func TestReadEvents(t *testing.T) {
	var got []denylog.Event
	in := `{"verdict":"deny","port":443}` + "\n" + `{"verdict":"would deny","port":53}` + "\n"
	if err := readEvents(context.Background(), strings.NewReader(in), collect(&got)); err != nil || len(got) != 2 || got[1].Verdict != "would deny" || got[1].Port != 53 {
		t.Errorf("readEvents = %v, %+v", err, got)
	}
	err := readEvents(context.Background(), strings.NewReader("{\"port\":1}\nnot json\n"), collect(&got))
	if err == nil || !strings.HasPrefix(err.Error(), "event from dockerfence run: ") {
		t.Errorf("readEvents of a bad line = %v, want an error about the daemon's event", err)
	}
}

// A daemon's own error page ends up in the error, trimmed.
func TestGetNotOK(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "df.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	serveTest(t, l, http.NotFoundHandler())
	if _, err := GetStatus(context.Background(), sock); err == nil || err.Error() != "dockerfence run on "+sock+": 404 page not found" {
		t.Errorf("GetStatus of a server without the API = %v", err)
	}
}
