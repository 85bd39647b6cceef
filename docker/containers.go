package docker

import (
	"context"
	"fmt"
	"net/netip"
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
		out = append(out, ct)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
