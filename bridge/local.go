package bridge

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Local is the set of a network namespace's own addresses: those the
// kernel delivers packets to itself (the input hook) instead of forwarding
// them. Its zero value holds no address.
type Local struct {
	// links lists, by address, the interfaces that hold it.
	links map[netip.Addr][]string
}

// Local returns the namespace's own addresses: those of its interfaces, but
// loopback addresses (127.0.0.0/8, ::1), which a container can only reach
// on its own loopback, and IPv6 addresses that duplicate address detection
// has not yet accepted or has refused, which the kernel does not deliver
// to.
func (n Netlink) Local() (Local, error) {
	h, err := n.handle()
	if err != nil {
		return Local{}, err
	}
	defer h.Close()
	links, err := retryDump(h.LinkList)
	if err != nil {
		return Local{}, fmt.Errorf("list links: %w", err)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) {
		return h.AddrList(nil, netlink.FAMILY_ALL)
	})
	if err != nil {
		return Local{}, fmt.Errorf("list addresses: %w", err)
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	l := Local{links: map[netip.Addr][]string{}}
	for _, a := range addrs {
		p, ok := prefixFromIPNet(a.IPNet)
		if !ok || p.Addr().IsLoopback() || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		l.add(p.Addr(), names[a.LinkIndex])
	}
	return l, nil
}

// LocalOf returns the Local that holds addrs, each on the interface that
// its value names; for tests and callers that know the addresses already.
func LocalOf(addrs map[netip.Addr]string) Local {
	l := Local{links: map[netip.Addr][]string{}}
	for a, link := range addrs {
		l.add(a, link)
	}
	return l
}

// add records that interface link holds address a.
func (l Local) add(a netip.Addr, link string) {
	a = a.Unmap().WithZone("")
	if !slices.Contains(l.links[a], link) {
		l.links[a] = append(l.links[a], link)
	}
}

// Holds reports whether the kernel delivers to the namespace itself a
// unicast packet to dst that enters from the interface named iif: dst is an
// address of any of its interfaces (Linux is a weak host), except that an
// IPv6 link-local address counts only on iif, the one link it is valid on.
func (l Local) Holds(iif string, dst netip.Addr) bool {
	links, ok := l.links[dst.Unmap().WithZone("")]
	if !ok {
		return false
	}
	if dst.Is6() && dst.IsLinkLocalUnicast() {
		return slices.Contains(links, iif)
	}
	return true
}
