package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// capNetAdmin is the bit of CAP_NET_ADMIN in a capability set.
const capNetAdmin = 12

// connKey keys the connection of a request in its context.
type connKey struct{}

// withConn puts c into ctx: the http.Server's ConnContext.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// Peer is the process at the other end of a unix socket connection, as the
// kernel says (SO_PEERCRED): the credentials it had when it connected.
type Peer struct {
	Pid, Uid int
	// NetAdmin says whether it has CAP_NET_ADMIN in its effective set
	// (read from /proc/PID/status).
	NetAdmin bool
}

// String names the peer for the log.
func (p Peer) String() string { return fmt.Sprintf("pid %d, uid %d", p.Pid, p.Uid) }

// Privileged reports whether the peer may change the table: uid 0, or
// CAP_NET_ADMIN.
func (p Peer) Privileged() bool { return p.Uid == 0 || p.NetAdmin }

// peerOf returns the peer of the connection in ctx.
func peerOf(ctx context.Context) (Peer, error) {
	c, ok := ctx.Value(connKey{}).(*net.UnixConn)
	if !ok {
		return Peer{}, errors.New("not a unix socket connection")
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return Peer{}, err
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	p := Peer{Pid: int(cred.Pid), Uid: int(cred.Uid)}
	p.NetAdmin = hasCap(fmt.Sprintf("/proc/%d/status", p.Pid), capNetAdmin)
	return p, nil
}

// hasCap reports whether the CapEff line of a /proc/PID/status file has
// capability bit c.
func hasCap(status string, c uint) bool {
	f, err := os.Open(status)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<c) != 0
		}
	}
	return false
}
