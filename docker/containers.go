package docker

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// Container is a running container, what it was made from and the
// addresses it has on Docker's networks.
type Container struct {
	ID string
	// Name is the container's name without Docker's leading slash.
	Name string
	// Image is the image the container runs, as Docker's container list
	// gives it: the name it was created with, such as "redis:7", or an
	// image ID when the name has since been removed or retagged.
	Image string
	// Labels are the container's labels, nil if it has none.
	Labels map[string]string
	// Addrs maps each address (IPv4 and global IPv6) to the name of the
	// network that gave it.
	Addrs map[netip.Addr]string
	// Endpoints are the container's attachments to networks, sorted by
	// network name: the same addresses as Addrs, with the network's ID.
	Endpoints []Endpoint
	// SharesNetworkOf is the ID (or name) of the container whose network
	// stack this one joined (docker run --network container:X, Compose
	// network_mode: service:X); "" otherwise. Such a container has no
	// endpoints of its own: its packets carry X's addresses.
	SharesNetworkOf string
	// Ports are the container's published ports (docker run -p), sorted
	// by host port, protocol and host address; nil if it publishes none.
	Ports []PublishedPort
}

// PublishedPort is a port of a container that Docker publishes on the
// host: connections to HostIP:HostPort are sent by Docker's DNAT to the
// container's ContainerPort.
type PublishedPort struct {
	// HostIP is the host address the port is bound to. The unspecified
	// address (0.0.0.0 or ::) stands for all of the host's addresses of
	// its family, and the zero Addr for all of them in both families
	// (an engine that does not say).
	HostIP netip.Addr
	// HostPort is the port on the host, ContainerPort the container's.
	HostPort, ContainerPort uint16
	// Proto is "tcp", "udp" or "sctp".
	Proto string
}

// String formats the port as docker port does: "0.0.0.0:8080->80/tcp",
// "[::]:8080->80/tcp", or ":8080->80/tcp" without a host address.
func (p PublishedPort) String() string {
	host := ""
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
		if p.HostIP.Is6() {
			host = "[" + host + "]"
		}
	}
	return fmt.Sprintf("%s:%d->%d/%s", host, p.HostPort, p.ContainerPort, p.Proto)
}

// Endpoint is a container's attachment to one network.
type Endpoint struct {
	// Network is the network's name and NetworkID its ID.
	Network, NetworkID string
	// IPv4 and IPv6 are the container's addresses on the network (IPv6:
	// its global address); each is the zero Addr when it has none.
	IPv4, IPv6 netip.Addr
	// MAC is the hardware address of the container's interface on the
	// network, "" if Docker gives none.
	MAC string
}

// Containers returns the running containers, sorted by name.
func (c *Client) Containers(ctx context.Context) ([]Container, error) {
	list, err := c.api.ContainerList(ctx, container.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list docker containers: %w", classify(err))
	}
	return containers(list), nil
}

// containers converts Docker's container summaries.
func containers(list []container.Summary) []Container {
	out := make([]Container, 0, len(list))
	for _, s := range list {
		ct := Container{ID: s.ID, Image: s.Image, Addrs: map[netip.Addr]string{}}
		if len(s.Names) > 0 {
			ct.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		if len(s.Labels) > 0 {
			ct.Labels = s.Labels
		}
		if other, ok := strings.CutPrefix(s.HostConfig.NetworkMode, "container:"); ok {
			ct.SharesNetworkOf = other
		}
		if s.NetworkSettings != nil {
			for name, ep := range s.NetworkSettings.Networks {
				if ep == nil {
					continue
				}
				e := Endpoint{Network: name, NetworkID: ep.NetworkID, MAC: ep.MacAddress}
				for _, a := range []string{ep.IPAddress, ep.GlobalIPv6Address} {
					addr, err := netip.ParseAddr(a)
					if err != nil {
						continue
					}
					addr = addr.Unmap()
					ct.Addrs[addr] = name
					if addr.Is4() {
						e.IPv4 = addr
					} else {
						e.IPv6 = addr
					}
				}
				ct.Endpoints = append(ct.Endpoints, e)
			}
		}
		sort.Slice(ct.Endpoints, func(i, j int) bool { return ct.Endpoints[i].Network < ct.Endpoints[j].Network })
		ct.Ports = publishedPorts(s.Ports)
		out = append(out, ct)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// publishedPorts converts the ports of a container summary, the same
// bindings as NetworkSettings.Ports of container inspect, one a host
// address: only those published on the host (an exposed port that is not
// published has no public port), without duplicates, sorted.
func publishedPorts(list []container.Port) []PublishedPort {
	var out []PublishedPort
	for _, p := range list {
		if p.PublicPort == 0 {
			continue
		}
		pp := PublishedPort{HostPort: p.PublicPort, ContainerPort: p.PrivatePort, Proto: strings.ToLower(p.Type)}
		if a, err := netip.ParseAddr(p.IP); err == nil {
			pp.HostIP = a.Unmap()
		}
		if pp.Proto == "" {
			pp.Proto = "tcp" // Docker's default
		}
		if !slices.Contains(out, pp) {
			out = append(out, pp)
		}
	}
	slices.SortFunc(out, func(a, b PublishedPort) int {
		return cmp.Or(cmp.Compare(a.HostPort, b.HostPort), cmp.Compare(a.Proto, b.Proto),
			a.HostIP.Compare(b.HostIP), cmp.Compare(a.ContainerPort, b.ContainerPort))
	})
	return out
}
