// Package docker lists Docker's networks, bridge networks and others,
// and its containers through the Docker Engine API, and follows its events.
package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/docker/docker/api"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"
	"github.com/dockerfence/dockerfence/policy"
)

// Network is a Docker network as dockerfence sees it: the policy's
// network. Driver is its Docker driver. For the bridge driver, Bridge is the
// name of the Linux bridge interface: the com.docker.network.bridge.name
// option if set, else "docker0" for the default network named "bridge",
// else "br-" followed by the first 12 characters of ID; networks of other
// drivers (macvlan, ipvlan, host, null, overlay, plugins) have no bridge.
// Labels are nil if it has none. Subnets are the masked subnets of the
// network's IPAM configuration, IPv4 first then IPv6, sorted and
// deduplicated.
type Network = policy.Network

// Source lists Docker's networks.
type Source interface {
	Networks(ctx context.Context) ([]Network, error)
	Close() error
}

// ErrUnreachable is wrapped by errors returned when the Docker daemon cannot
// be contacted: connection refused, no socket, permission denied on the
// socket, or a timeout.
var ErrUnreachable = errors.New("docker daemon unreachable")

// bridgeNameOption is the network option that names a bridge network's Linux
// bridge interface.
const bridgeNameOption = "com.docker.network.bridge.name"

// Client is a Source backed by the Docker Engine API. It negotiates the API
// version with the daemon on first use.
type Client struct {
	api *client.Client
}

var _ Source = (*Client)(nil)

// Dial returns a Client for the daemon at host, for example
// "unix:///var/run/docker.sock". An empty host means DOCKER_HOST, or the
// default socket if that is unset; the other DOCKER_* variables of the
// Docker CLI (TLS, API version) are honoured too. Dial does not contact the
// daemon: it fails only if host or the environment is invalid, and a daemon
// that is down is reported by the first request.
func Dial(host string) (*Client, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	api, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", host, err)
	}
	return &Client{api: api}, nil
}

// Host returns the address of the daemon the Client talks to.
func (c *Client) Host() string {
	return c.api.DaemonHost()
}

// Networks returns Docker's networks, of every driver, sorted by name: the
// bridge networks that dockerfence fences, and the others, which it can
// only say it does not fence.
func (c *Client) Networks(ctx context.Context) ([]Network, error) {
	list, err := c.api.NetworkList(ctx, network.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list docker networks: %w", c.versionHint(classify(err)))
	}
	return networks(list)
}

// Version returns the API version the Client negotiated with the daemon and
// the daemon's own version, such as "1.51" and "28.5.2".
func (c *Client) Version(ctx context.Context) (apiVersion, serverVersion string, err error) {
	v, err := c.api.ServerVersion(ctx)
	if err != nil {
		return "", "", fmt.Errorf("docker version: %w", c.versionHint(classify(err)))
	}
	return c.api.ClientVersion(), v.Version, nil
}

// Close releases the Client's connections.
func (c *Client) Close() error {
	return c.api.Close()
}

// classify wraps err with ErrUnreachable if it means that the daemon could
// not be contacted.
func classify(err error) error {
	if client.IsErrConnectionFailed(err) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return err
}

// minAPIRe finds the oldest API version a daemon accepts in its refusal of
// an older one.
var minAPIRe = regexp.MustCompile(`Minimum supported API version is ([0-9.]+)`)

// versionHint adds to err what to do when the daemon refused the API
// version the client negotiated. The client speaks the daemon's version,
// down to api.MinSupportedAPIVersion, or its own newest one
// (api.DefaultVersion) if the daemon's is newer. So a daemon that no longer
// accepts that one is newer than dockerfence, and a daemon that announced an
// older one, or that says the client is newer than it (daemons before API
// 1.25 do not announce theirs), is older than dockerfence supports. Only a
// daemon that answered can have refused; the client has then negotiated
// and no longer changes its version, so reading it does not race.
func (c *Client) versionHint(err error) error {
	if errors.Is(err, ErrUnreachable) {
		return err
	}
	msg := err.Error()
	if m := minAPIRe.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%w: the Docker daemon at %s needs API %s or newer, and this dockerfence speaks at most %s: upgrade dockerfence", err, c.Host(), m[1], api.DefaultVersion)
	}
	v := c.api.ClientVersion()
	if strings.Contains(msg, "is newer than server") || (v != "" && versions.LessThan(v, api.MinSupportedAPIVersion)) {
		return fmt.Errorf("%w: the Docker daemon at %s speaks an API older than %s, the oldest dockerfence supports: upgrade Docker", err, c.Host(), api.MinSupportedAPIVersion)
	}
	return err
}

// networks converts the networks and sorts them by name. An unparsable
// subnet of a bridge network is an error, as its chain could not be built
// right; one of another driver's network is left out, as dockerfence only
// names that network as one it does not fence.
func networks(list []network.Summary) ([]Network, error) {
	var out []Network
	for _, s := range list {
		n := Network{ID: s.ID, Name: s.Name, Driver: s.Driver}
		if len(s.Labels) > 0 {
			n.Labels = s.Labels
		}
		subnets, err := parseSubnets(s.IPAM.Config)
		if n.IsBridge() {
			if err != nil {
				return nil, fmt.Errorf("network %q: %w", s.Name, err)
			}
			n.Bridge = bridgeName(s)
		}
		n.Subnets = subnets
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Network) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// bridgeName returns the Linux bridge interface of a bridge network.
func bridgeName(s network.Summary) string {
	if name := s.Options[bridgeNameOption]; name != "" {
		return name
	}
	if s.Name == "bridge" && s.Driver == "bridge" {
		return "docker0"
	}
	id := s.ID
	if len(id) > 12 {
		id = id[:12]
	}
	return "br-" + id
}

// parseSubnets returns the masked subnets of an IPAM configuration, IPv4
// first then IPv6, sorted and deduplicated. Entries without a subnet are
// skipped; an unparsable subnet is an error, returned with the subnets that
// parse.
func parseSubnets(cfgs []network.IPAMConfig) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var bad error
	for _, c := range cfgs {
		if c.Subnet == "" {
			continue
		}
		p, err := netip.ParsePrefix(c.Subnet)
		if err != nil {
			bad = cmp.Or(bad, fmt.Errorf("bad subnet %q: %w", c.Subnet, err))
			continue
		}
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, netip.Prefix.Compare)
	return slices.Compact(out), bad
}
