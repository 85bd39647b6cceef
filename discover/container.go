package discover

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/policy"
)

// The labels Docker Compose puts on the containers it creates.
const (
	ComposeProjectLabel = policy.ComposeProjectLabel
	ComposeServiceLabel = policy.ComposeServiceLabel
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
	// SharesNetworkOf is the ID or name of the container whose network
	// stack this one joined (--network container:X); "" otherwise.
	SharesNetworkOf string
	// Ports are the container's published ports (docker run -p), sorted
	// by host port, protocol and host address; nil if it publishes none.
	Ports []PublishedPort
}

// PublishedPort is a port of a container that Docker publishes on the
// host: Docker's DNAT sends connections to HostIP:HostPort to the
// container's ContainerPort. Ingress rules' ports name the HostPort.
type PublishedPort = docker.PublishedPort

// Endpoint is a container's attachment to one network.
type Endpoint struct {
	// Network is the network's name and NetworkID its ID, as in
	// policy.Network's Name and ID.
	Network, NetworkID string
	// IPv4 and IPv6 are the container's addresses on the network (IPv6:
	// its global address); each is the zero Addr when it has none.
	IPv4, IPv6 netip.Addr
	// MAC is the hardware address of the container's interface there, and
	// Port the bridge port its packets enter by (the host's end of its
	// veth pair), found over netlink by that address; "" if unknown.
	MAC, Port string
}

// fromDockerContainers converts Docker's containers.
func fromDockerContainers(dcs []docker.Container) []Container {
	out := make([]Container, 0, len(dcs))
	for _, dc := range dcs {
		c := Container{ID: dc.ID, Name: dc.Name, Image: dc.Image, Labels: dc.Labels,
			Project: dc.Labels[ComposeProjectLabel], Service: dc.Labels[ComposeServiceLabel], SharesNetworkOf: dc.SharesNetworkOf}
		c.Ports = slices.Clone(dc.Ports)
		for _, e := range dc.Endpoints {
			c.Endpoints = append(c.Endpoints, Endpoint{Network: e.Network, NetworkID: e.NetworkID, IPv4: e.IPv4, IPv6: e.IPv6, MAC: strings.ToLower(e.MAC)})
		}
		out = append(out, c)
	}
	return out
}

// FenceContainers returns the inventory's containers as the compiler takes
// them, with their addresses on each network.
func (inv *Inventory) FenceContainers() []fence.Container {
	out := make([]fence.Container, 0, len(inv.Containers))
	for _, c := range inv.Containers {
		fc := fence.Container{ID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels, SharesNetworkOf: c.SharesNetworkOf}
		for _, e := range c.Endpoints {
			ep := fence.Endpoint{NetworkID: e.NetworkID, Network: e.Network, Port: e.Port}
			if mac, err := net.ParseMAC(e.MAC); err == nil && e.Port != "" {
				ep.MAC = mac // the port was found by it: it is its peer's
			}
			for _, a := range []netip.Addr{e.IPv4, e.IPv6} {
				if a.IsValid() {
					ep.Addrs = append(ep.Addrs, a)
				}
			}
			fc.Endpoints = append(fc.Endpoints, ep)
		}
		out = append(out, fc)
	}
	return out
}

// Compile builds the table of pol for the inventory: with the container
// layer when the inventory knows the containers (its networks are
// Docker's, of now or last known), else the networks' fence alone, and
// then, if pol has container sections, a warning that says so: what a
// one-shot apply does without Docker.
func (inv *Inventory) Compile(pol *policy.Policy) *fence.Result {
	if inv.FromDocker() {
		return fence.CompileContainers(pol, inv.Networks, inv.FenceContainers())
	}
	r := fence.Compile(pol, inv.Networks)
	if len(pol.Containers) > 0 {
		r.Warnings = append(r.Warnings, "the policy's containers: sections need Docker's API, which did not answer: only the network sections fence until it does")
	}
	return r
}

// CompileHolding is Compile for the daemon: when Docker has never answered
// (at boot, dockerfence starts before Docker) and pol has container
// sections, the container layer is built with no container known, so that
// every container's packets are held until Docker answers and the daemon
// classifies them, rather than judged by their networks' sections alone.
func (inv *Inventory) CompileHolding(pol *policy.Policy) *fence.Result {
	if inv.FromDocker() || len(pol.Containers) == 0 {
		return inv.Compile(pol)
	}
	r := fence.CompileContainers(pol, inv.Networks, []fence.Container{})
	r.Warnings = append(r.Warnings, "the policy's containers: sections need Docker's API, which has not answered yet: the containers of every fenced network are held until it does")
	return r
}

// FindContainer returns the running container that arg names: by name,
// else by ID or a prefix of it that only one container's ID has.
func (inv *Inventory) FindContainer(arg string) (Container, bool) {
	arg = strings.TrimPrefix(arg, "/")
	var byID []Container
	for _, c := range inv.Containers {
		if c.Name == arg {
			return c, true
		}
		if arg != "" && strings.HasPrefix(c.ID, arg) {
			byID = append(byID, c)
		}
	}
	if len(byID) == 1 {
		return byID[0], true
	}
	return Container{}, false
}

// findPorts gives the containers' endpoints on Docker's bridge networks the
// bridge port their packets enter by: the port whose peer has the
// endpoint's hardware address. A bridge whose ports cannot be listed
// leaves its endpoints without ports, and so does a MAC that two ports
// claim: a container without a known port has no identity check, and the
// container layer holds its packets (see settings.identity_mark).
func (d *Discoverer) findPorts(inv *Inventory) {
	if d.Ports == nil {
		return
	}
	bridgeOf := map[string]string{}
	for _, n := range inv.Networks {
		if n.IsBridge() && n.Bridge != "" {
			bridgeOf["id:"+n.ID] = n.Bridge
			bridgeOf["name:"+n.Name] = n.Bridge
		}
	}
	ports := map[string]map[string]string{} // bridge -> MAC -> port
	for i := range inv.Containers {
		for j := range inv.Containers[i].Endpoints {
			e := &inv.Containers[i].Endpoints[j]
			br := bridgeOf["id:"+e.NetworkID]
			if br == "" {
				br = bridgeOf["name:"+e.Network]
			}
			if br == "" || e.MAC == "" {
				continue
			}
			byMAC, ok := ports[br]
			if !ok {
				byMAC = map[string]string{}
				if ps, err := d.Ports(br); err == nil {
					for _, p := range ps {
						mac := strings.ToLower(p.PeerMAC.String())
						if _, dup := byMAC[mac]; dup {
							// Two ports claim one MAC: a container
							// has taken another's. Neither port is
							// known, so neither gets the other's
							// identity: both are held until it ends.
							byMAC[mac] = ""
							continue
						}
						byMAC[mac] = p.Name
					}
				}
				ports[br] = byMAC
			}
			e.Port = byMAC[e.MAC]
		}
	}
}
