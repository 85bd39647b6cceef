package discover

import (
	"context"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/docker"
)

// Take takes the inventory once, as the commands do: Docker's networks at
// host (an address as docker.Dial takes it; "" for $DOCKER_HOST or the
// default socket), else the bridges found over netlink. A host that cannot
// even be dialled (a malformed address) counts as a Docker that answered
// with that error. Its error says that the bridges could not be listed;
// the inventory is then still what was found without them.
func Take(ctx context.Context, host string) (*Inventory, error) {
	d := &Discoverer{Bridges: bridge.Netlink{}, Ports: bridge.Netlink{}.Ports, ListContainers: true}
	c, err := docker.Dial(host)
	if err != nil {
		d.Docker = undialable{host: host, err: err}
	} else {
		defer c.Close()
		d.Docker = c
	}
	return d.Discover(ctx)
}

// undialable is the Docker of an address (--docker-host, DOCKER_HOST) that
// cannot be used: every call fails with the reason, so that discovery
// takes it for a Docker that answered with an error.
type undialable struct {
	host string
	err  error
}

func (u undialable) Networks(context.Context) ([]docker.Network, error)     { return nil, u.err }
func (u undialable) Containers(context.Context) ([]docker.Container, error) { return nil, u.err }
func (u undialable) Host() string                                           { return u.host }
