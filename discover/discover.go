// Package discover takes the inventory of what dockerfence fences: Docker's
// networks (bridge networks, and those of other drivers, which it can only
// say it does not fence) and its running containers, or, when Docker is
// away, the bridges found over netlink. apply, plan, status, explain and the daemon
// all take it here, so that they all see the same networks and find a
// network named on the command line alike.
//
// The package returns what it found and how it found it; it does not log.
// Whatever is worth telling an operator (Docker did not answer, so the
// bridges are fenced instead) is in the Inventory, for the caller to log.
package discover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/policy"
)

// Docker is what discovery needs of Docker's API; docker.Client is one.
type Docker interface {
	// Networks lists Docker's networks, of every driver.
	Networks(ctx context.Context) ([]docker.Network, error)
	// Containers lists the running containers.
	Containers(ctx context.Context) ([]docker.Container, error)
	// Host is the address of the API, which errors name.
	Host() string
}

// Source says where an inventory's networks came from.
type Source uint8

// The sources of an inventory's networks. Their String texts are those that
// logs, `dockerfence status --json` and the daemon's results show.
const (
	// SourceNone is the zero Source: nothing was found. In a Found it
	// means that the argument was found nowhere and stands alone.
	SourceNone Source = iota
	// SourceDocker means that Docker answered: the networks are Docker's.
	SourceDocker
	// SourceDockerLast means that Docker did not answer now but did
	// before: the networks are those it last reported to the Discoverer.
	SourceDockerLast
	// SourceNetlink means that the networks are the bridges found over
	// netlink: Docker was not asked, or failed, and never answered the
	// Discoverer before.
	SourceNetlink
)

// String returns "docker", "docker (last known)", "netlink", or "" for
// SourceNone.
func (s Source) String() string {
	switch s {
	case SourceDocker:
		return "docker"
	case SourceDockerLast:
		return "docker (last known)"
	case SourceNetlink:
		return "netlink"
	}
	return ""
}

// Inventory is what a Discoverer found. Its slices may be shared with other
// inventories of the same Discoverer: read them, do not change them.
type Inventory struct {
	// Networks are the networks to fence. With SourceDocker and
	// SourceDockerLast they are Docker's networks, sorted by name, each
	// with its Driver: bridge networks, of which one without subnets of
	// its own in Docker's IPAM configuration has those of its bridge, and
	// networks of other drivers (macvlan, ipvlan, host, null, overlay, ...),
	// which have no bridge and which the table cannot fence (the compiler
	// says so). With SourceNetlink they are the bridges
	// found over netlink, sorted by bridge name: only those Docker could
	// have made (IsDockerBridge) have a name, the bridge's, and none has
	// labels or an ID.
	Networks []policy.Network
	// Containers are the running containers, sorted by name, when the
	// Discoverer lists them and the networks come from Docker (with
	// SourceDockerLast, the containers Docker last reported); nil
	// otherwise.
	Containers []Container
	// Bridges are all the bridges found over netlink, whatever the
	// Source; nil when BridgesErr is set.
	Bridges []bridge.Bridge
	// Source says where Networks came from.
	Source Source
	// DockerErr says why Docker's answer of now is not in the inventory:
	// Docker could not be reached (a *DownError), did not answer in time
	// (a *HangError), or answered with an error (any other error). It is
	// nil when Docker answered and when it was not asked.
	DockerErr error
	// BridgesErr says why the bridges could not be listed.
	BridgesErr error
	// Warning, when set, says in one line that Docker failed in a way an
	// operator should hear of (it did not answer in time, or answered
	// with an error) and what the inventory holds instead; callers log
	// it. A Docker that is simply not running leaves Warning empty:
	// DockerErr says so.
	Warning string
}

// FromDocker reports whether the networks are Docker's, those of now or
// the last known ones: whether names and labels are known.
func (inv *Inventory) FromDocker() bool {
	return inv.Source == SourceDocker || inv.Source == SourceDockerLast
}

// Check returns an error when the inventory cannot serve pol: the policy
// matches networks by name or label, which only Docker knows, and the
// networks are the bridges found over netlink because Docker failed. When
// Docker could not be reached or did not answer, the error says so and
// what to do; when it answered with an error, Check returns that error. A
// nil pol needs nothing.
func (inv *Inventory) Check(pol *policy.Policy) error {
	derr := inv.DockerErr
	if inv.Source != SourceNetlink || derr == nil || pol == nil || !pol.NeedsDocker() {
		return nil
	}
	switch {
	case errors.As(derr, new(*DownError)):
		return fmt.Errorf("%v; the policy matches networks by name or label, which needs Docker: start Docker or set --docker-host, or match by subnet or bridge", derr)
	case errors.As(derr, new(*HangError)):
		return fmt.Errorf("%v; the policy matches networks by name or label, which needs Docker: restart dockerd or check --docker-host, or match by subnet or bridge", derr)
	}
	return derr // Docker answered, with an error that says what is wrong
}

// DownError is the error of a Docker API that cannot be reached: no
// socket, connection refused, or no permission on the socket.
type DownError struct {
	// Host is the address of the API.
	Host string
	// Err is the error of the call, which wraps docker.ErrUnreachable.
	Err error
}

func (e *DownError) Error() string { return "docker is not reachable at " + e.Host }

// Unwrap returns Err.
func (e *DownError) Unwrap() error { return e.Err }

// HangError is the error of a Docker API that did not answer in time: a
// dockerd that is hung, or a socket that accepts connections and never
// answers.
type HangError struct {
	// Host is the address of the API, and Timeout how long the call
	// waited for it.
	Host    string
	Timeout time.Duration
	// Err is the error of the call, which wraps context.DeadlineExceeded.
	Err error
}

func (e *HangError) Error() string {
	return fmt.Sprintf("Docker at %s did not answer within %v", e.Host, e.Timeout)
}

// Unwrap returns Err.
func (e *HangError) Unwrap() error { return e.Err }

// Unreachable reports whether err says that Docker could not be asked (a
// *DownError or a *HangError), as opposed to Docker answering with an
// error.
func Unreachable(err error) bool {
	return errors.As(err, new(*DownError)) || errors.As(err, new(*HangError))
}

// DefaultTimeout is how long a Discoverer waits for each call to Docker's
// API when its Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Discoverer takes inventories. It remembers the last networks and
// containers Docker reported to it, and falls back on them while Docker does
// not answer, so that a daemon keeps fencing the networks it knew; a
// Discoverer used once, as the commands use it, has nothing to fall back on
// but the bridges. A Discoverer is not safe for concurrent use.
type Discoverer struct {
	// Docker is Docker's API; nil when dockerfence runs without Docker.
	Docker Docker
	// Bridges lists the bridges over netlink; it must be set.
	Bridges bridge.Lister
	// Ports, if set, lists a bridge's container ports with their peers'
	// hardware addresses (bridge.Netlink.Ports): the containers' endpoints
	// get the port their packets enter by, for the identity check.
	Ports func(bridge string) ([]bridge.Port, error)
	// Timeout bounds each call to Docker's API, so that a Docker that
	// accepts connections and never answers cannot stall discovery;
	// zero means DefaultTimeout.
	Timeout time.Duration
	// ListContainers makes Discover list the running containers too. A
	// failure to list them is then a failure of Docker, as one to list
	// the networks is: the inventory falls back without Docker.
	ListContainers bool

	// last is what Docker last reported, nil until it answers.
	last *known
}

// known is what Docker reported once.
type known struct {
	networks   []policy.Network
	containers []Container
}

// Discover lists the bridges and asks Docker (unless Docker is nil) for its
// networks, and its containers if ListContainers is set. When Docker
// answers, the inventory holds its networks (SourceDocker) and the
// Discoverer remembers them. Otherwise DockerErr says why, and the
// inventory falls back on the networks Docker last reported
// (SourceDockerLast), if it ever did, else on the bridges
// (SourceNetlink).
//
// The error is non-nil only when the bridges cannot be listed; Discover
// then still returns the inventory of what it found without them, with
// BridgesErr set, for explain, which judges with what there is. Docker's
// answer is then not remembered, as the subnets that its networks take
// from their bridges are missing.
func (d *Discoverer) Discover(ctx context.Context) (*Inventory, error) {
	inv := d.listBridges()
	if d.Docker != nil {
		nets, ctrs, err := d.ask(ctx)
		if err == nil {
			inv.Networks, inv.Containers, inv.Source = fromDocker(nets, inv.Bridges), ctrs, SourceDocker
			d.findPorts(inv)
			if inv.BridgesErr == nil {
				d.last = &known{networks: inv.Networks, containers: inv.Containers}
			}
			return inv, inv.err()
		}
		inv.DockerErr = err
	}
	d.fallBack(inv)
	return inv, inv.err()
}

// Known is Discover without asking Docker, for a caller that knows Docker
// is away: the networks Docker last reported, if it ever did, else the
// bridges.
func (d *Discoverer) Known() (*Inventory, error) {
	inv := d.listBridges()
	d.fallBack(inv)
	return inv, inv.err()
}

// HasLastKnown reports whether Docker ever answered the Discoverer, so that
// an inventory without Docker falls back on what it last reported.
func (d *Discoverer) HasLastKnown() bool { return d.last != nil }

// listBridges starts an inventory with the bridges.
func (d *Discoverer) listBridges() *Inventory {
	bridges, err := d.Bridges.Bridges()
	if err != nil {
		return &Inventory{BridgesErr: err}
	}
	return &Inventory{Bridges: bridges}
}

// fallBack fills an inventory without Docker's answer of now.
func (d *Discoverer) fallBack(inv *Inventory) {
	instead := "fencing the bridges found over netlink"
	if d.last != nil {
		inv.Networks, inv.Containers, inv.Source = d.last.networks, d.last.containers, SourceDockerLast
		instead = "fencing the networks Docker last reported"
	} else {
		inv.Networks, inv.Source = fromBridges(inv.Bridges), SourceNetlink
	}
	if inv.DockerErr != nil && !errors.As(inv.DockerErr, new(*DownError)) {
		inv.Warning = inv.DockerErr.Error() + "; " + instead
	}
}

// err is the error of Discover and Known.
func (inv *Inventory) err() error {
	if inv.BridgesErr != nil {
		return fmt.Errorf("list bridges: %w", inv.BridgesErr)
	}
	return nil
}

// ask asks Docker for its networks and, if asked to, its containers.
func (d *Discoverer) ask(ctx context.Context) ([]docker.Network, []Container, error) {
	nets, err := call(ctx, d, d.Docker.Networks)
	if err != nil || !d.ListContainers {
		return nets, nil, err
	}
	dcs, err := call(ctx, d, d.Docker.Containers)
	if err != nil {
		return nil, nil, err
	}
	return nets, fromDockerContainers(dcs), nil
}

// call makes one call to Docker's API within the Discoverer's timeout and
// turns the errors of a Docker that cannot be asked into a *DownError or a
// *HangError.
func call[T any](ctx context.Context, d *Discoverer, f func(context.Context) (T, error)) (T, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := f(ctx)
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		err = &HangError{Host: d.Docker.Host(), Timeout: timeout, Err: err}
	case errors.Is(err, docker.ErrUnreachable):
		err = &DownError{Host: d.Docker.Host(), Err: err}
	}
	return v, err
}

// fromDocker turns Docker's networks into policy networks. A bridge
// network without IPAM subnets gets those of its bridge.
func fromDocker(dn []docker.Network, bridges []bridge.Bridge) []policy.Network {
	by := map[string]bridge.Bridge{}
	for _, b := range bridges {
		by[b.Name] = b
	}
	out := make([]policy.Network, len(dn))
	for i, n := range dn {
		out[i] = n
		if len(out[i].Subnets) == 0 && n.IsBridge() {
			out[i].Subnets = by[n.Bridge].Subnets
		}
	}
	return out
}

// fromBridges turns bridges found over netlink into networks. Only docker0
// and br-* look like Docker's, and only they get a name (the bridge's) that
// name patterns can match.
func fromBridges(bridges []bridge.Bridge) []policy.Network {
	out := make([]policy.Network, 0, len(bridges))
	for _, b := range bridges {
		n := policy.Network{Bridge: b.Name, Subnets: b.Subnets}
		if IsDockerBridge(b.Name) {
			n.Name = b.Name
		}
		out = append(out, n)
	}
	return out
}

// IsDockerBridge reports whether a bridge name is one Docker gives: docker0
// or br- followed by something.
func IsDockerBridge(name string) bool {
	return name == "docker0" || len(name) > 3 && name[:3] == "br-"
}
