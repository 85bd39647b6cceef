package docker

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// Container is a running container and the addresses it has on Docker's
// networks.
type Container struct {
	ID string
	// Name is the container's name without Docker's leading slash.
	Name string
	// Addrs maps each address (IPv4 and global IPv6) to the name of the
	// network that gave it.
	Addrs map[netip.Addr]string
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
		ct := Container{ID: s.ID, Addrs: map[netip.Addr]string{}}
		if len(s.Names) > 0 {
			ct.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		if s.NetworkSettings != nil {
			for name, ep := range s.NetworkSettings.Networks {
				if ep == nil {
					continue
				}
				for _, a := range []string{ep.IPAddress, ep.GlobalIPv6Address} {
					if addr, err := netip.ParseAddr(a); err == nil {
						ct.Addrs[addr.Unmap()] = name
					}
				}
			}
		}
		out = append(out, ct)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
