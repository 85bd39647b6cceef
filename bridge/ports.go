package bridge

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Port is a port of a bridge that is one end of a veth pair whose other end
// is in another network namespace: a container's link to the bridge, as
// Docker makes it. PeerMAC is the hardware address of the other end, the
// container's interface, which Docker reports for the container's endpoint;
// it ties the port to the container.
type Port struct {
	// Name and Index are the port's, in the bridge's namespace.
	Name  string
	Index int
	// PeerMAC is the address of the container's end of the pair.
	PeerMAC net.HardwareAddr
}

// Ports lists the veth ports of the bridge named bridge whose peers are in
// other namespaces, with their peers' hardware addresses, sorted by name.
// It reads the peer over rtnetlink with IFLA_TARGET_NETNSID (Linux 4.20),
// without entering the peer's namespace, so it needs CAP_NET_ADMIN only.
func (n Netlink) Ports(bridge string) ([]Port, error) {
	h, err := n.handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := retryDump(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	master := 0
	for _, l := range links {
		if l.Attrs().Name == bridge && l.Type() == "bridge" {
			master = l.Attrs().Index
		}
	}
	if master == 0 {
		return nil, fmt.Errorf("no bridge %s", bridge)
	}
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: int(n.NS)})
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	defer c.Close()
	var ports []Port
	for _, l := range links {
		a := l.Attrs()
		if a.MasterIndex != master || l.Type() != "veth" || a.NetNsID < 0 || a.ParentIndex == 0 {
			continue
		}
		mac, err := peerMAC(c, a.NetNsID, a.ParentIndex)
		if errors.Is(err, unix.ENODEV) || errors.Is(err, unix.EINVAL) {
			continue // the pair went away meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("port %s: the address of its peer (netns id %d, index %d): %w", a.Name, a.NetNsID, a.ParentIndex, err)
		}
		ports = append(ports, Port{Name: a.Name, Index: a.Index, PeerMAC: mac})
	}
	slices.SortFunc(ports, func(x, y Port) int { return strings.Compare(x.Name, y.Name) })
	return ports, nil
}

// peerMAC asks for link index in the namespace of id nsid (as the calling
// namespace numbers it) and returns its hardware address.
func peerMAC(c *netlink.Conn, nsid, index int) (net.HardwareAddr, error) {
	ifi := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(ifi[4:], uint32(int32(index)))
	ae := netlink.NewAttributeEncoder()
	ae.Int32(unix.IFLA_TARGET_NETNSID, int32(nsid))
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETLINK, Flags: netlink.Request},
		Data:   append(ifi, attrs...),
	})
	if err != nil {
		var oe *netlink.OpError
		if errors.As(err, &oe) {
			return nil, oe.Err
		}
		return nil, err
	}
	for _, m := range msgs {
		if len(m.Data) < unix.SizeofIfInfomsg {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofIfInfomsg:])
		if err != nil {
			return nil, err
		}
		for ad.Next() {
			if ad.Type() == unix.IFLA_ADDRESS {
				return net.HardwareAddr(slices.Clone(ad.Bytes())), nil
			}
		}
		if err := ad.Err(); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("the kernel's answer has no hardware address")
}
