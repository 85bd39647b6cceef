package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// errNoDaemon means that no dockerfence run answers on the socket.
var errNoDaemon = errors.New("no dockerfence run answers")

// daemonGet sends GET path to the daemon on socket. A missing socket or a
// refused connection gives errNoDaemon. timeout bounds the whole request; 0
// means none (for streams).
func daemonGet(ctx context.Context, socket, path string, timeout time.Duration) (*http.Response, error) {
	c := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://dockerfence"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		var op *net.OpError
		switch {
		case errors.As(err, &op) && op.Op == "dial" && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)):
			return nil, fmt.Errorf("%w on %s", errNoDaemon, socket)
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
