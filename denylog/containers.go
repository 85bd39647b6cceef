package denylog

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dockerfence/dockerfence/docker"
)

// Containers is a Resolver backed by Docker's container list. It lists the
// containers again when an address is not known and the last listing is
// older than MinAge, and after Invalidate; a Docker that does not answer
// leaves names empty.
type Containers struct {
	// List lists the running containers (docker.Client.Containers).
	List func(ctx context.Context) ([]docker.Container, error)
	// MinAge is the least time between two listings (default 1 s), so that
	// a flood of denials from unknown addresses does not flood Docker.
	MinAge time.Duration
	// Timeout bounds one listing (default 2 s).
	Timeout time.Duration

	// stale is set by Invalidate, which must not wait for a listing in
	// progress (it is called from the daemon's loop).
	stale atomic.Bool

	mu     sync.Mutex // held by lookups, across a listing
	byAddr map[netip.Addr]docker.Container
	listed time.Time
}

// Container returns the name and id of the container that has addr.
func (c *Containers) Container(addr netip.Addr) (name, id string) {
	ct, ok := c.lookup(addr)
	if !ok {
		return "", ""
	}
	return ct.Name, ct.ID
}

// PublishedPorts returns the published ports of the container that has
// addr, nil if it publishes none or is not known.
func (c *Containers) PublishedPorts(addr netip.Addr) []docker.PublishedPort {
	ct, _ := c.lookup(addr)
	return ct.Ports
}

// lookup returns the container that has addr, listing the containers
// again as Containers says.
func (c *Containers) lookup(addr netip.Addr) (docker.Container, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	minAge := c.MinAge
	if minAge <= 0 {
		minAge = time.Second
	}
	ct, ok := c.byAddr[addr]
	if stale := c.stale.Swap(false); stale || !ok && time.Since(c.listed) >= minAge {
		c.refresh()
		ct, ok = c.byAddr[addr]
	}
	return ct, ok
}

// refresh lists the containers; c.mu is held.
func (c *Containers) refresh() {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c.listed = time.Now()
	list, err := c.List(ctx)
	if err != nil {
		return // keep what is known; names of new containers stay empty
	}
	c.byAddr = map[netip.Addr]docker.Container{}
	for _, ct := range list {
		for a := range ct.Addrs {
			c.byAddr[a] = ct
		}
	}
}

// Invalidate makes the next lookup list the containers again (a container
// started or stopped, so an address may have a new owner).
// It does not wait for a listing in progress.
func (c *Containers) Invalidate() { c.stale.Store(true) }
