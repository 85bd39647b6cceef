package harness

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/versions"
	"github.com/dockerfence/dockerfence/integration/topo"
)

// Network is a network as the fake Docker reports it.
type Network struct {
	Name, Bridge string
	// Subnets are the network's IPAM subnets, in prefix notation.
	Subnets []string
	Labels  map[string]string
	// Driver is the network's driver: "" or "bridge" for a bridge network
	// on Bridge; "macvlan", "ipvlan" (on the parent interface Parent),
	// "host", "null" or "overlay" for networks of Docker's other drivers,
	// which have no bridge.
	Driver string
	// Parent is the parent interface of a macvlan or ipvlan network.
	Parent string
}

// driver is the network's driver as the Engine API names it.
func (n Network) driver() string {
	if n.Driver == "" {
		return "bridge"
	}
	return n.Driver
}

// Docker serves the part of the Docker Engine API that dockerfence uses
// (ping, version, networks, containers, events) on a unix socket, so that
// tests and the benchmark can play Docker without running dockerd. Its
// networks may be of any driver (Network.Driver), as dockerd's are. The
// networks are what Add, Remove and Set make them; Add and Remove also
// stream the "network create" and "network destroy" events dockerd would
// send. Its containers are what SetContainers makes them, and it streams
// the "network connect" and "disconnect" events of their endpoints.
type Docker struct {
	// URL is the socket's Docker host URL, "unix://" and its path.
	URL string
	// api and minAPI are the newest and the oldest API version it
	// accepts; api is the one it announces.
	api, minAPI string

	mu         sync.Mutex
	networks   []dockerNetwork
	containers []Container
	subs       map[chan []byte]struct{}
	seq        int
	requests   []string
}

// dockerNetwork is a Network with the id the fake gave it.
type dockerNetwork struct {
	Network
	id string
}

// DockerAPI is the API version StartDocker announces.
const DockerAPI = "1.47"

// StartDocker serves a fake Docker of API versions 1.24 to DockerAPI on
// the unix socket sock until the test ends.
func StartDocker(t topo.T, sock string) *Docker {
	t.Helper()
	return StartDockerVersions(t, sock, "1.24", DockerAPI)
}

// StartDockerVersions serves a fake Docker that speaks API versions min to
// max on the unix socket sock until the test ends. It announces max and
// refuses requests of a version older than min with dockerd's message.
func StartDockerVersions(t topo.T, sock, min, max string) *Docker {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("fake Docker: %v", err)
	}
	d := &Docker{URL: "unix://" + sock, api: max, minAPI: min, subs: map[chan []byte]struct{}{}}
	srv := &http.Server{Handler: d, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l) //nolint:errcheck // ends with Close
	t.Cleanup(func() { srv.Close() })
	return d
}

// Add records a network and sends its "network create" event.
func (d *Docker) Add(n Network) {
	d.mu.Lock()
	dn := d.record(n)
	d.networks = append(d.networks, dn)
	d.mu.Unlock()
	d.event("create", dn)
}

// Remove forgets the network name and sends its "network destroy" event.
func (d *Docker) Remove(name string) {
	d.mu.Lock()
	gone := dockerNetwork{Network: Network{Name: name}}
	for i, n := range d.networks {
		if n.Name == name {
			gone = n
			d.networks = append(d.networks[:i:i], d.networks[i+1:]...)
			break
		}
	}
	d.mu.Unlock()
	d.event("destroy", gone)
}

// Set replaces the networks, without events. A network keeps its id if one
// of the same name was there before.
func (d *Docker) Set(nets []Network) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := map[string]string{}
	for _, n := range d.networks {
		ids[n.Name] = n.id
	}
	d.networks = nil
	for _, n := range nets {
		dn := dockerNetwork{Network: n, id: ids[n.Name]}
		if dn.id == "" {
			dn = d.record(n)
		}
		d.networks = append(d.networks, dn)
	}
}

// record gives n a new id; d.mu is held.
func (d *Docker) record(n Network) dockerNetwork {
	d.seq++
	return dockerNetwork{Network: n, id: fmt.Sprintf("%064x", d.seq)}
}

// Requests returns the paths requested so far.
func (d *Docker) Requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.requests...)
}

func (d *Docker) event(action string, n dockerNetwork) {
	now := time.Now()
	msg, _ := json.Marshal(map[string]any{
		"Type": "network", "Action": action, "scope": "local",
		"Actor": map[string]any{"ID": n.id, "Attributes": map[string]string{"name": n.Name, "type": n.driver()}},
		"time":  now.Unix(), "timeNano": now.UnixNano(),
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.subs {
		select {
		case ch <- msg:
		default: // a subscriber that does not read loses events, as with dockerd
		}
	}
}

func (d *Docker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.requests = append(d.requests, r.URL.Path)
	d.mu.Unlock()
	w.Header().Set("Api-Version", d.api)
	w.Header().Set("Ostype", "linux")
	version, path := "", r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/v"); ok {
		if v, p, ok := strings.Cut(rest, "/"); ok {
			version, path = v, "/"+p
		}
	}
	switch {
	case path == "/_ping":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if r.Method == http.MethodGet {
			w.Write([]byte("OK"))
		}
	case version != "" && versions.LessThan(version, d.minAPI):
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"message":"client version ` + version + ` is too old. Minimum supported API version is ` + d.minAPI + `, please upgrade your client to a newer version"}`))
	case path == "/version":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"Version":"27.3.1","ApiVersion":%q,"MinAPIVersion":%q,"Os":"linux","Arch":"amd64"}`, d.api, d.minAPI)
	case path == "/networks":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d.summaries())
	case path == "/containers/json":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(d.containerSummaries())
	case path == "/events":
		d.serveEvents(w, r)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"page not found"}`))
	}
}

// networkSummary is a network as the Engine API lists it.
type networkSummary struct {
	Name, ID, Driver, Scope string
	EnableIPv4, EnableIPv6  bool
	IPAM                    struct {
		Driver string
		Config []ipamConfig
	}
	Options, Labels map[string]string
}

type ipamConfig struct{ Subnet string }

// summaries lists the networks as the Engine API does.
func (d *Docker) summaries() []networkSummary {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := []networkSummary{}
	for _, n := range d.networks {
		s := networkSummary{Name: n.Name, ID: n.id, Driver: n.driver(), Scope: "local", Options: map[string]string{}, Labels: n.Labels}
		switch s.Driver {
		case "bridge":
			s.Options["com.docker.network.bridge.name"] = n.Bridge
		case "macvlan", "ipvlan":
			s.Options["parent"] = n.Parent
		case "overlay":
			s.Scope = "swarm"
		}
		s.IPAM.Driver = "default"
		for _, sub := range n.Subnets {
			s.IPAM.Config = append(s.IPAM.Config, ipamConfig{Subnet: sub})
			if p, err := netip.ParsePrefix(sub); err == nil {
				s.EnableIPv4 = s.EnableIPv4 || p.Addr().Is4()
				s.EnableIPv6 = s.EnableIPv6 || p.Addr().Is6()
			}
		}
		list = append(list, s)
	}
	return list
}

// serveEvents streams the events of Add and Remove until the client goes.
func (d *Docker) serveEvents(w http.ResponseWriter, r *http.Request) {
	ch := make(chan []byte, 4096)
	d.mu.Lock()
	d.subs[ch] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.subs, ch)
		d.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case msg := <-ch:
			w.Write(append(msg, '\n'))
			if fl != nil {
				fl.Flush()
			}
		}
	}
}

// HangingDocker listens on the unix socket sock, accepts connections and
// never answers, like a hung dockerd, until the test ends.
func HangingDocker(t topo.T, sock string) {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("hanging Docker: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never written to
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

// Container is a running container as the fake Docker lists it.
type Container struct {
	ID, Name, Image string
	Labels          map[string]string
	// Endpoints are its attachments: network name and addresses.
	Endpoints []Endpoint
}

// Endpoint is a container's attachment to a network of the fake.
type Endpoint struct {
	Network    string
	IPv4, IPv6 string
	// MAC is the hardware address of the container's interface.
	MAC string
}

// SetContainers replaces the running containers and streams a "network
// connect" event for each endpoint that is new and a "network disconnect"
// one for each that went, as dockerd does when containers start and stop.
func (d *Docker) SetContainers(cs []Container) {
	d.mu.Lock()
	key := func(c Container, e Endpoint) string { return c.ID + "/" + e.Network }
	old := map[string]bool{}
	for _, c := range d.containers {
		for _, e := range c.Endpoints {
			old[key(c, e)] = true
		}
	}
	d.containers = append([]Container(nil), cs...)
	var connect, disconnect []string
	now := map[string]bool{}
	for _, c := range cs {
		for _, e := range c.Endpoints {
			now[key(c, e)] = true
			if !old[key(c, e)] {
				connect = append(connect, e.Network)
			}
		}
	}
	for k := range old {
		if !now[k] {
			_, network, _ := strings.Cut(k, "/")
			disconnect = append(disconnect, network)
		}
	}
	nets := map[string]dockerNetwork{}
	for _, n := range d.networks {
		nets[n.Name] = n
	}
	d.mu.Unlock()
	for _, name := range connect {
		d.event("connect", nets[name])
	}
	for _, name := range disconnect {
		d.event("disconnect", nets[name])
	}
}

// containerSummaries lists the containers as the Engine API does.
func (d *Docker) containerSummaries() []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := map[string]string{}
	for _, n := range d.networks {
		ids[n.Name] = n.id
	}
	list := []map[string]any{}
	for _, c := range d.containers {
		nets := map[string]any{}
		for _, e := range c.Endpoints {
			nets[e.Network] = map[string]any{"NetworkID": ids[e.Network], "IPAddress": e.IPv4, "GlobalIPv6Address": e.IPv6, "MacAddress": e.MAC}
		}
		list = append(list, map[string]any{
			"Id": c.ID, "Names": []string{"/" + c.Name}, "Image": c.Image, "Labels": c.Labels,
			"State": "running", "NetworkSettings": map[string]any{"Networks": nets},
		})
	}
	return list
}
