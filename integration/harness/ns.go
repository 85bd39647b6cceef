package harness

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Doer runs f on a thread inside a network namespace: a *topo.NS, a
// *HandleNS (such as a Docker container's) or a *MovingNS.
type Doer interface {
	Do(f func() error) error
}

var (
	_ Doer = (*topo.NS)(nil)
	_ Doer = (*HandleNS)(nil)
	_ Doer = (*MovingNS)(nil)
)

// HandleNS is a network namespace held open by a handle, e.g. a Docker
// container's: the handle keeps it alive while a socket or test needs it.
type HandleNS struct {
	name string
	h    netns.NsHandle
	id   string // the namespace's identity when the handle was opened
}

// NewHandleNS wraps h, which must be a network namespace other than the
// test process's own and pid 1's, and closes it when the test ends. It
// closes h and returns an error if h is not such a namespace.
func NewHandleNS(t topo.T, name string, h netns.NsHandle) (*HandleNS, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(h), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		h.Close()
		return nil, fmt.Errorf("%s is not a network namespace (yet): %v", name, err)
	}
	// Never the namespace of the test process, nor that of pid 1 (the
	// machine's) where it may be read, as topo's SetSysctl does.
	for _, p := range []string{fmt.Sprintf("/proc/%d/ns/net", os.Getpid()), "/proc/1/ns/net"} {
		own, err := netns.GetFromPath(p)
		if err != nil && p == "/proc/1/ns/net" {
			continue
		}
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("identify the network namespace %s: %w", p, err)
		}
		same := h.Equal(own)
		own.Close()
		if same {
			h.Close()
			return nil, fmt.Errorf("%s is the network namespace %s; the harness never sends from it", name, p)
		}
	}
	t.Cleanup(func() { h.Close() })
	return &HandleNS{name: name, h: h, id: h.UniqueId()}, nil
}

// Do runs f on a locked thread switched into the namespace and switches the
// thread back afterwards; a thread that cannot be switched back stays locked,
// so that the runtime discards it. It refuses to run f if the handle no
// longer refers to the namespace it was opened for.
func (n *HandleNS) Do(f func() error) error {
	if id := n.h.UniqueId(); id != n.id {
		return fmt.Errorf("the handle of %s now refers to %s, not %s; it was closed too early", n.name, id, n.id)
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get the current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(n.h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter the network namespace of %s: %w", n.name, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("leave the network namespace of %s: %w", n.name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// MovingNS is a namespace that can be replaced while it is used, as when
// compose recreates a container: a UDPFlood from it opens a new socket in
// the new namespace before its next datagram.
type MovingNS struct {
	mu  sync.Mutex
	cur Doer
	gen int
}

// NewMovingNS returns a MovingNS that is in from until it moves.
func NewMovingNS(from Doer) *MovingNS { return &MovingNS{cur: from} }

// Do runs f in the current namespace.
func (m *MovingNS) Do(f func() error) error {
	m.mu.Lock()
	cur := m.cur
	m.mu.Unlock()
	return cur.Do(f)
}

// Move makes to the current namespace.
func (m *MovingNS) Move(to Doer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur = to
	m.gen++
}

// Generation counts the moves.
func (m *MovingNS) Generation() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// AddBridge creates a bridge with the address addr (prefix notation) inside
// ns over netlink, and sets it up, as Docker does.
func AddBridge(ns Doer, name, addr string) error {
	return ns.Do(func() error {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("add bridge %s: %w", name, err)
		}
		a, err := netlink.ParseAddr(addr)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(br, a); err != nil {
			return fmt.Errorf("address %s on %s: %w", addr, name, err)
		}
		return netlink.LinkSetUp(br)
	})
}

// DelBridge removes the bridge name inside ns.
func DelBridge(ns Doer, name string) error {
	return ns.Do(func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("bridge %s: %w", name, err)
		}
		return netlink.LinkDel(l)
	})
}

// LinkLocal waits up to 5 s for the IPv6 link-local address of dev in ns
// and returns it and dev's index.
func LinkLocal(t topo.T, ns *topo.NS, dev string) (netip.Addr, int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var found netip.Addr
		var index int
		err := ns.Do(func() error {
			ifc, err := net.InterfaceByName(dev)
			if err != nil {
				return err
			}
			index = ifc.Index
			addrs, err := ifc.Addrs()
			if err != nil {
				return err
			}
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(ipn.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
						found = ip
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("link-local address of %s in %s: %v", dev, ns.Name, err)
		}
		if found.IsValid() {
			return found, index
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s has no link-local address", dev, ns.Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
