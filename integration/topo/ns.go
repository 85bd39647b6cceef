package topo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// NS is a network namespace created by a Topo. It is named and mounted under
// /run/netns, so external tools can enter it by Path.
type NS struct {
	// Name is the namespace's name as shown by "ip netns list".
	Name string
	// HostIf is the name of the interface in Host that connects to this
	// namespace ("lan0", "wan0" or the host end of a container's veth). It is
	// empty for Host itself.
	HostIf string

	mu     sync.Mutex
	handle netns.NsHandle
}

// Path returns the namespace's bind-mount path, "/run/netns/"+Name.
func (n *NS) Path() string { return "/run/netns/" + n.Name }

// Handle returns the namespace's handle. It is opened once when the namespace
// is created and closed by test cleanup; callers must not close it.
func (n *NS) Handle() netns.NsHandle {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.handle
}

func (n *NS) open() error {
	h, err := netns.GetFromPath(n.Path())
	if err != nil {
		return fmt.Errorf("open %s: %w", n.Path(), err)
	}
	n.mu.Lock()
	n.handle = h
	n.mu.Unlock()
	return nil
}

func (n *NS) closeHandle() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.handle.IsOpen() {
		n.handle.Close()
	}
}

// Run runs the command name with args inside the namespace (via
// "nsenter --net=PATH") and returns its combined output. It fails the test if
// the command fails, so it must be called from the test's goroutine.
func (n *NS) Run(t T, name string, args ...string) string {
	t.Helper()
	out, err := n.Try(name, args...)
	if err != nil {
		t.Fatalf("topo: %v", err)
	}
	return out
}

// Try runs the command name with args inside the namespace like Run and
// returns its combined output; on failure the error includes the output.
func (n *NS) Try(name string, args ...string) (string, error) {
	out, err := n.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s %s: %w\n%s",
			n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// TryWithin is Try for a command that is killed after limit; the error
// includes the last 2000 bytes of the output.
func (n *NS) TryWithin(limit time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out, err := n.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w after %v", ctx.Err(), limit)
		}
		tail := string(out)
		if len(out) > 2000 {
			tail = "..." + string(out[len(out)-2000:])
		}
		return string(out), fmt.Errorf("in %s: %s %s: %w\n%s", n.Name, name, strings.Join(args, " "), err, tail)
	}
	return string(out), nil
}

// Command returns, not started, the command that runs name with args
// inside the namespace: "nsenter --net=PATH -- name args...". nsenter execs
// name, so the process's pid is name's.
func (n *NS) Command(name string, args ...string) *exec.Cmd {
	return n.CommandContext(context.Background(), name, args...)
}

// CommandContext is Command with a context that kills the process when it
// is done.
func (n *NS) CommandContext(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.Path(), "--", name}, args...)...)
}

// ipBatch runs the given ip(8) commands, one per line, inside the namespace.
func (n *NS) ipBatch(cmds ...string) error {
	cmd := exec.Command("ip", "-n", n.Name, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip -n %s -batch: %w: %s\ncommands:\n%s",
			n.Name, err, bytes.TrimSpace(out), strings.Join(cmds, "\n"))
	}
	return nil
}

// Do runs f on a locked OS thread that is switched into the namespace and
// switches the thread back afterwards. Sockets created inside f stay in the
// namespace after Do returns. Goroutines started by f do not run in the
// namespace. If switching into the namespace fails, f is not run; if
// switching back fails, the thread stays locked so that the runtime discards
// it when the goroutine exits.
func (n *NS) Do(f func() error) (err error) {
	target := n.Handle()
	if !target.IsOpen() {
		return fmt.Errorf("topo: namespace %s is not open", n.Name)
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("topo: get current namespace: %w", err)
	}
	if err := netns.Set(target); err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		return fmt.Errorf("topo: enter namespace %s: %w", n.Name, err)
	}
	defer func() {
		rerr := netns.Set(orig)
		orig.Close()
		if rerr != nil {
			// Leave the thread locked: it is tainted and will be
			// terminated when this goroutine exits.
			if err == nil {
				err = fmt.Errorf("topo: restore namespace after %s: %w", n.Name, rerr)
			}
			return
		}
		runtime.UnlockOSThread()
	}()
	return f()
}

// SetSysctl sets the network sysctl key (e.g. "net.ipv4.ip_forward") to value
// inside the namespace. Only keys below "net." are accepted.
func (n *NS) SetSysctl(key, value string) error {
	if !strings.HasPrefix(key, "net.") || strings.Contains(key, "..") || strings.Contains(key, "/") {
		return fmt.Errorf("topo: refusing sysctl %q: only net.* keys are allowed", key)
	}
	return n.Do(func() error {
		// Make sure we never write the sysctls of the wrong namespace.
		cur, err := netns.Get()
		if err != nil {
			return err
		}
		defer cur.Close()
		if !cur.Equal(n.Handle()) {
			return fmt.Errorf("topo: thread is not in namespace %s", n.Name)
		}
		if cur.UniqueId() == processNSID() {
			return fmt.Errorf("topo: namespace %s is the test process's own namespace", n.Name)
		}
		if initNS, err := netns.GetFromPid(1); err == nil {
			same := cur.Equal(initNS)
			initNS.Close()
			if same {
				return fmt.Errorf("topo: namespace %s is the namespace of pid 1", n.Name)
			}
		}
		p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
		if err := os.WriteFile(p, []byte(value), 0); err != nil {
			return fmt.Errorf("topo: sysctl %s=%s in %s: %w", key, value, n.Name, err)
		}
		return nil
	})
}

// processNSID returns the identity of the network namespace the test process
// runs in. It must be called from a goroutine that is not inside Do; threads
// that are not locked by Do are always in that namespace.
var processNSID = sync.OnceValue(func() string {
	h, err := netns.Get()
	if err != nil {
		return "unknown"
	}
	defer h.Close()
	return h.UniqueId()
})

// mustSysctl sets key/value pairs with SetSysctl and fails the test on error.
func (n *NS) mustSysctl(t T, kv ...string) {
	t.Helper()
	for i := 0; i+1 < len(kv); i += 2 {
		if err := n.SetSysctl(kv[i], kv[i+1]); err != nil {
			t.Fatalf("%v", err)
		}
	}
}

// DialTCP connects to addr (e.g. "192.168.100.50:5432" or
// "[fd00:100::50]:5432") from a socket created inside the namespace and gives
// up after timeout. Use IsRefused and IsTimeout to classify the error.
//
// A TCP reset is noticed at once, but an ICMP error (e.g. a firewall rejecting
// with admin-prohibited) may only be noticed when the SYN is retransmitted
// after about one second: in these namespaces the ICMP error can come back
// while connect still holds the socket lock, and the kernel then ignores it
// (TcpExtLockDroppedIcmps). Use a timeout of at least two seconds when an
// ICMP reject is expected.
func (n *NS) DialTCP(addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		d := net.Dialer{Timeout: timeout}
		c, err = d.Dial("tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialUDP returns a UDP socket created inside the namespace and connected to
// addr. The caller must close it.
func (n *NS) DialUDP(addr string) (*net.UDPConn, error) {
	return n.DialUDPFrom("", addr)
}

// DialUDPFrom is DialUDP from the local address src ("" for any).
func (n *NS) DialUDPFrom(src, addr string) (*net.UDPConn, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	var laddr *net.UDPAddr
	if src != "" {
		laddr = &net.UDPAddr{IP: net.ParseIP(src)}
	}
	var c *net.UDPConn
	err = n.Do(func() error {
		var err error
		c, err = net.DialUDP("udp", laddr, raddr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// UDPExchange sends payload once from a fresh socket inside the namespace to
// addr and waits up to timeout for a datagram with the same payload. It
// returns (true, nil) if the echo arrived and (false, nil) if nothing arrived
// in time (a drop). An ICMP error, such as a reject, is returned as
// (false, err) with IsRefused(err) true.
func (n *NS) UDPExchange(addr string, payload []byte, timeout time.Duration) (bool, error) {
	c, err := n.DialUDP(addr)
	if err != nil {
		return false, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return false, err
	}
	if _, err := c.Write(payload); err != nil {
		return false, err
	}
	buf := make([]byte, 65536)
	for {
		nr, err := c.Read(buf)
		if err != nil {
			if IsTimeout(err) {
				return false, nil
			}
			return false, err
		}
		if bytes.Equal(buf[:nr], payload) {
			return true, nil
		}
	}
}

// IsRefused reports whether err shows that the peer or a router actively
// refused the connection or datagram: a TCP reset (ECONNREFUSED,
// ECONNRESET) or an ICMP/ICMPv6 error such as port unreachable, host or
// network unreachable, or administratively prohibited (EHOSTUNREACH,
// ENETUNREACH, EACCES, EPERM). This is what a firewall "reject" produces.
func IsRefused(err error) bool {
	if err == nil {
		return false
	}
	for _, e := range []syscall.Errno{
		syscall.ECONNREFUSED, syscall.ECONNRESET,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH,
		syscall.EACCES, syscall.EPERM,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// IsTimeout reports whether err is a timeout, i.e. no answer arrived in time.
// This is what a firewall "drop" produces.
func IsTimeout(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// DialTCPFrom is DialTCP from the local address src (e.g. "198.51.100.66"),
// to choose among the namespace's addresses.
func (n *NS) DialTCPFrom(src, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err = d.Dial("tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}
