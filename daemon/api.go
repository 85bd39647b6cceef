package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
	// ApplyPath, PlanPath and DeletePath take a POST whose body is the
	// JSON object CommandRequest, and answer with the command's output
	// (text/plain) and its warnings (WarningHeader), or its error with a
	// status other than 200. Apply and
	// delete are taken only from a caller with uid 0 or CAP_NET_ADMIN
	// (SO_PEERCRED), whatever the socket's mode.
	//
	// The answer to a plan has the header PendingHeader.
	ApplyPath  = "/v1/apply"
	PlanPath   = "/v1/plan"
	DeletePath = "/v1/delete"
)

// WarningHeader carries, once each, the warnings of the answer to apply
// or plan, each a Go string literal (strconv.QuoteToASCII).
const WarningHeader = "Dockerfence-Warning"

// PendingHeader is the header of the answer to a POST to PlanPath that
// says whether apply would change the table: "true" or "false".
const PendingHeader = "Dockerfence-Pending"

// CommandRequest is the body of a POST to ApplyPath, PlanPath or DeletePath.
type CommandRequest struct {
	// PolicyFile is the caller's policy file, absolute: the daemon refuses
	// apply and plan unless it is its own.
	PolicyFile string `json:"policy_file"`
}

// API serves the daemon's status and its denial events over HTTP.
type API struct {
	Observer *Observer
	Hub      *denylog.Hub
	// Requests carries apply, plan and delete to the loop of Run; nil
	// means the API does not take them.
	Requests chan<- Request
	// Log logs who asked for a change.
	Log *slog.Logger
}

// Handler returns the API's HTTP handler.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, a.status)
	mux.HandleFunc("GET "+EventsPath, a.events)
	mux.HandleFunc("POST "+ApplyPath, a.command(RequestApply, true))
	mux.HandleFunc("POST "+DeletePath, a.command(RequestDelete, true))
	mux.HandleFunc("POST "+PlanPath, a.command(RequestPlan, false))
	return mux
}

// command serves the request kind; changes (apply, delete) only to a
// privileged caller.
func (a *API) command(kind string, changes bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		log := a.Log
		if log == nil {
			log = slog.Default()
		}
		peer, err := peerOf(r.Context())
		if err != nil {
			http.Error(w, "cannot tell who is asking: "+err.Error(), http.StatusForbidden)
			return
		}
		if changes && !peer.Privileged() {
			log.Warn("request refused: the caller has neither uid 0 nor CAP_NET_ADMIN", "request", kind, "pid", peer.Pid, "uid", peer.Uid)
			http.Error(w, fmt.Sprintf("%s refused: changing the fence needs uid 0 or CAP_NET_ADMIN, and the caller (%s) has neither", kind, peer), http.StatusForbidden)
			return
		}
		if changes {
			log.Info("request taken", "request", kind, "pid", peer.Pid, "uid", peer.Uid, "cap_net_admin", peer.NetAdmin)
		}
		if a.Requests == nil {
			http.Error(w, kind+" is not served on this socket", http.StatusNotImplemented)
			return
		}
		var body CommandRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			http.Error(w, "bad request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		reply := make(chan Reply, 1)
		select {
		case a.Requests <- Request{Kind: kind, PolicyFile: body.PolicyFile, Caller: peer.String(), Reply: reply}:
		case <-r.Context().Done():
			return
		}
		select {
		case rep := <-reply:
			if rep.Err != nil {
				http.Error(w, rep.Err.Error(), http.StatusConflict)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			for _, warning := range rep.Warnings {
				w.Header().Add(WarningHeader, strconv.QuoteToASCII(warning))
			}
			if kind == RequestPlan {
				w.Header().Set(PendingHeader, strconv.FormatBool(rep.Pending))
			}
			_, _ = io.WriteString(w, rep.Output)
		case <-r.Context().Done():
		}
	}
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
