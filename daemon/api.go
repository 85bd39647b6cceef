package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/status"
	"golang.org/x/sys/unix"
)

// DefaultSocket is where dockerfence run serves its API (status and denial
// events) unless told otherwise; the lock and the last apply live in its
// directory.
const DefaultSocket = "/run/dockerfence/dockerfence.sock"

// API paths served on the daemon's unix socket.
const (
	// StatusPath answers with the status.Status JSON.
	StatusPath = "/v1/status"
	// EventsPath answers with the kept denial events, one JSON object a
	// line, oldest first; with ?follow=1 it then streams new ones.
	EventsPath = "/v1/events"
)

// API serves the daemon's status and its denial events over HTTP.
type API struct {
	Observer *Observer
	Hub      *denylog.Hub
}

// Handler returns the API's HTTP handler.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, a.status)
	mux.HandleFunc("GET "+EventsPath, a.events)
	return mux
}

func (a *API) status(w http.ResponseWriter, _ *http.Request) {
	s, err := a.Observer.Status()
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrNotSynced) {
			code = http.StatusServiceUnavailable
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = status.WriteJSON(w, s)
}

func (a *API) events(w http.ResponseWriter, r *http.Request) {
	follow := r.URL.Query().Get("follow") == "1"
	recent, ch, cancel := a.Hub.Subscribe(1024)
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, e := range recent {
		if err := enc.Encode(e); err != nil {
			return
		}
	}
	if !follow {
		return
	}
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case e := <-ch:
			if err := enc.Encode(e); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// ListenUnix listens on a unix socket at path with mode 0600, creating its
// directory. Call it before starting goroutines that create files: it sets
// the process's umask for a moment. A socket left by a daemon that is gone is replaced; one that a
// running daemon answers on is an error.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; remove it or choose another --socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another dockerfence run answers on %s; stop it first (two daemons would fight over the table)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	// The socket is created with mode 0600 (the umask is process-wide, so
	// ListenUnix must run before other goroutines create files).
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("restrict %s to its owner: %w", path, err)
	}
	return l, nil
}
