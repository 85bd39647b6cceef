package discover

import (
	"net/netip"

	"github.com/dockerfence/dockerfence/docker"
)

// The labels Docker Compose puts on the containers it creates.
const (
	ComposeProjectLabel = "com.docker.compose.project"
	ComposeServiceLabel = "com.docker.compose.service"
)

// Container is a running container: what classifies it (name, image,
// labels, Compose project and service) and its addresses on each network.
type Container struct {
	ID string
	// Name is the container's name, without Docker's leading slash.
	Name string
	// Image is the image the container runs, as Docker lists it: the name
	// it was created with, such as "redis:7", or an image ID.
	Image string
	// Labels are the container's labels, nil if it has none.
	Labels map[string]string
	// Project and Service are the Compose project and service that made
	// the container (its labels com.docker.compose.project and
	// com.docker.compose.service); "" when Compose did not.
	Project, Service string
	// Endpoints are the container's attachments to networks, sorted by
	// network name.
	Endpoints []Endpoint
}

// Endpoint is a container's attachment to one network.
type Endpoint struct {
	// Network is the network's name and NetworkID its ID, as in
	// policy.Network's Name and ID.
	Network, NetworkID string
	// IPv4 and IPv6 are the container's addresses on the network (IPv6:
	// its global address); each is the zero Addr when it has none.
	IPv4, IPv6 netip.Addr
}

// fromDockerContainers converts Docker's containers.
func fromDockerContainers(dcs []docker.Container) []Container {
	out := make([]Container, 0, len(dcs))
	for _, dc := range dcs {
		c := Container{ID: dc.ID, Name: dc.Name, Image: dc.Image, Labels: dc.Labels,
			Project: dc.Labels[ComposeProjectLabel], Service: dc.Labels[ComposeServiceLabel]}
		for _, e := range dc.Endpoints {
			c.Endpoints = append(c.Endpoints, Endpoint{Network: e.Network, NetworkID: e.NetworkID, IPv4: e.IPv4, IPv6: e.IPv6})
		}
		out = append(out, c)
	}
	return out
}
