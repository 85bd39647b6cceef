// Package bridge discovers Linux bridge interfaces and the subnets assigned
// to them, so that Docker networks can be found when the Docker daemon is
// not reachable, and the host's own addresses (Local), so that explain
// judges a packet to one of them as the kernel does, as traffic to the host.
package bridge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Bridge is a Linux bridge interface and the subnets its addresses belong to.
type Bridge struct {
	Name  string
	Index int
	// Subnets holds the masked prefixes of the interface's addresses, IPv4
	// first then IPv6, sorted and deduplicated. Link-local prefixes
	// (169.254.0.0/16 and fe80::/10) are left out.
	Subnets []netip.Prefix
}

// Lister lists the bridges of a network namespace.
type Lister interface {
	Bridges() ([]Bridge, error)
}

// ListerFunc is a function that lists bridges, as a Lister.
type ListerFunc func() ([]Bridge, error)

// Bridges calls f.
func (f ListerFunc) Bridges() ([]Bridge, error) { return f() }

// Netlink is a Lister that asks the kernel over rtnetlink.
//
// The zero value lists the bridges of the calling thread's network
// namespace.
type Netlink struct {
	// NS, if non-zero, selects the network namespace to list instead of the
	// calling thread's one. Netlink does not close it.
	NS netns.NsHandle
}

var _ Lister = Netlink{}

// dumpAttempts bounds how often a netlink dump is retried when the kernel
// reports that it was interrupted by a concurrent change.
const dumpAttempts = 5

// Bridges returns the bridge interfaces of the namespace, sorted by name.
func (n Netlink) Bridges() ([]Bridge, error) {
	h, err := n.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()

	links, err := retryDump(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) {
		return h.AddrList(nil, netlink.FAMILY_ALL)
	})
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}

	byIndex := make(map[int][]netip.Prefix)
	for _, a := range addrs {
		if p, ok := prefixFromIPNet(a.IPNet); ok {
			byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], p)
		}
	}

	var bridges []Bridge
	for _, l := range links {
		if l.Type() != "bridge" {
			continue
		}
		attrs := l.Attrs()
		bridges = append(bridges, Bridge{
			Name:    attrs.Name,
			Index:   attrs.Index,
			Subnets: SubnetsOf(byIndex[attrs.Index]),
		})
	}
	slices.SortFunc(bridges, func(a, b Bridge) int { return strings.Compare(a.Name, b.Name) })
	return bridges, nil
}

// handle opens a netlink handle in the selected namespace.
func (n Netlink) handle() (*netlink.Handle, error) {
	if n.NS == 0 {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("open netlink handle: %w", err)
		}
		return h, nil
	}
	h, err := netlink.NewHandleAt(n.NS)
	if err != nil {
		return nil, fmt.Errorf("open netlink handle in namespace %s: %w", n.NS, err)
	}
	return h, nil
}

// retryDump calls dump again while the kernel reports that the dump was
// interrupted, so that callers never see an inconsistent result.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range dumpAttempts {
		var res []T
		res, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return res, err
		}
	}
	return nil, err
}

// prefixFromIPNet converts an interface address to a prefix, keeping the
// host bits. IPv4-mapped IPv6 addresses become plain IPv4.
func prefixFromIPNet(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if addr.Is4In6() && bits == 128 {
		ones -= 96
	}
	p := netip.PrefixFrom(addr.Unmap(), ones)
	return p, p.IsValid()
}

// SubnetsOf returns the subnets that addrs belong to: each prefix is masked,
// IPv4-mapped IPv6 prefixes become IPv4, invalid and link-local prefixes
// (169.254.0.0/16, fe80::/10) are dropped, and the result is sorted with IPv4
// before IPv6 and deduplicated. It returns nil if no subnet remains.
func SubnetsOf(addrs []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range addrs {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				continue
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		if p.Addr().IsLinkLocalUnicast() {
			continue
		}
		out = append(out, p)
	}
	slices.SortFunc(out, netip.Prefix.Compare)
	return slices.Compact(out)
}
