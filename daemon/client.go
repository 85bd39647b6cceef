package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/status"
)

// ErrNoDaemon means that no dockerfence run answers on the socket: the
// socket does not exist, or nothing listens on it.
var ErrNoDaemon = errors.New("no dockerfence run answers")

// GetStatus asks the daemon that serves the API on socket for its status,
// within 10 s. Its error matches ErrNoDaemon when no daemon answers.
func GetStatus(ctx context.Context, socket string) (status.Status, error) {
	var s status.Status
	resp, err := get(ctx, socket, StatusPath, 10*time.Second)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("status from dockerfence run: %w", err)
	}
	return s, nil
}

// Events hands the denial events that the daemon on socket keeps to print,
// oldest first, and with follow then the new ones as they come, until the
// stream or ctx ends (nil) or print fails (its error). Its error matches
// ErrNoDaemon when no daemon answers.
func Events(ctx context.Context, socket string, follow bool, print func(denylog.Event) error) error {
	path := EventsPath
	if follow {
		path += "?follow=1"
	}
	resp, err := get(ctx, socket, path, 0)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readEvents(ctx, resp.Body, print)
}

// readEvents hands the events of a stream of the events endpoint to print
// until the stream or ctx ends.
func readEvents(ctx context.Context, r io.Reader, print func(denylog.Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var e denylog.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("event from dockerfence run: %w", err)
		}
		if err := print(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// get sends GET path to the daemon on socket. A missing socket or a
// refused connection gives ErrNoDaemon. timeout bounds the whole request; 0
// means none (for streams).
func get(ctx context.Context, socket, path string, timeout time.Duration) (*http.Response, error) {
	return send(ctx, socket, http.MethodGet, path, nil, timeout)
}

// Command asks the daemon on socket to run the request kind (RequestApply,
// RequestPlan, RequestDelete) with the caller's policy file, and returns
// its output. Its error matches ErrNoDaemon when no daemon answers.
func Command(ctx context.Context, socket, kind, policyFile string) (string, error) {
	a, err := Ask(ctx, socket, kind, policyFile)
	return a.Output, err
}

// Answer is the daemon's answer to a command.
type Answer struct {
	// Output is the command's output.
	Output string
	// Warnings are the warnings of the policy and of the table built
	// (WarningHeader).
	Warnings []string
	// Pending says, for a plan, whether apply would change the table; nil
	// if the daemon did not say (PendingHeader).
	Pending *bool
}

// Ask is Command, with all of the daemon's answer.
func Ask(ctx context.Context, socket, kind, policyFile string) (Answer, error) {
	body, err := json.Marshal(CommandRequest{PolicyFile: policyFile})
	if err != nil {
		return Answer{}, err
	}
	path := map[string]string{RequestApply: ApplyPath, RequestPlan: PlanPath, RequestDelete: DeletePath}[kind]
	resp, err := send(ctx, socket, http.MethodPost, path, body, 5*time.Minute)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	var a Answer
	for _, w := range resp.Header.Values(WarningHeader) {
		if u, err := strconv.Unquote(w); err == nil {
			w = u
		}
		a.Warnings = append(a.Warnings, w)
	}
	if p, err := strconv.ParseBool(resp.Header.Get(PendingHeader)); err == nil {
		a.Pending = &p
	}
	out, err := io.ReadAll(resp.Body)
	a.Output = string(out)
	return a, err
}

// send sends a request to the daemon on socket; see get.
func send(ctx context.Context, socket, method, path string, body []byte, timeout time.Duration) (*http.Response, error) {
	c := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://dockerfence"+path, rd)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		var op *net.OpError
		switch {
		case errors.As(err, &op) && op.Op == "dial" && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)):
			return nil, fmt.Errorf("%w on %s", ErrNoDaemon, socket)
		case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
			return nil, fmt.Errorf("no permission to talk to dockerfence run on %s (the socket is for root only): run as root, or pass --socket", socket)
		}
		return nil, fmt.Errorf("ask dockerfence run on %s: %w", socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("dockerfence run on %s: %s", socket, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}
