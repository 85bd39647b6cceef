package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/policy"
)

// policyError marks errors whose every line matters (one problem a line).
type policyError struct{ error }

func (e policyError) Unwrap() error { return e.error }

// loadPolicy loads -c, else the default path, else the embedded default.
func loadPolicy(g *globalFlags) (*policy.Policy, error) {
	opts := policy.Options{ResolvConf: g.resolvConf}
	file := g.config
	if file == "" {
		if _, err := os.Stat(defaultPolicyPath); err == nil {
			file = defaultPolicyPath
		} else {
			slog.Debug("no policy file; using the embedded default policy", "path", defaultPolicyPath)
			p, err := policy.Default(opts)
			return p, err
		}
	}
	p, err := policy.Load(file, opts)
	if err != nil {
		var el policy.ErrorList
		if errors.As(err, &el) {
			return nil, policyError{fmt.Errorf("policy not loaded, nothing changed:\n%w", err)}
		}
		return nil, err
	}
	for _, w := range p.Warnings {
		slog.Warn(w)
	}
	return p, nil
}

// dockerTimeout bounds each call to the Docker API, so that a daemon that
// accepts connections but never answers cannot stall a command.
const dockerTimeout = 5 * time.Second

// dockerHangs is the error of a Docker API that did not answer within
// dockerTimeout: a dockerd that is hung, or a socket that accepts
// connections and never answers.
type dockerHangs struct{ host string }

func (e dockerHangs) Error() string {
	return fmt.Sprintf("Docker at %s did not answer within %v", e.host, dockerTimeout)
}

// dockerDown is the error of a Docker API that cannot be reached: no
// socket, connection refused, or no permission on the socket.
type dockerDown struct{ host string }

func (e dockerDown) Error() string { return "docker is not reachable at " + e.host }

// discovery is what dockerfence found to fence, and where it came from.
type discovery struct {
	Networks []policy.Network
	// FromDocker is false when the networks are bridges found over netlink.
	FromDocker bool
	DockerErr  error
}

// discover lists Docker's bridge networks, or, when Docker is unreachable
// and the policy can do without it, the bridges over netlink.
func discover(ctx context.Context, g *globalFlags, pol *policy.Policy) (*discovery, error) {
	bridges, err := bridge.Netlink{}.Bridges()
	if err != nil {
		return nil, fmt.Errorf("list bridges: %w", err)
	}
	dn, derr := dockerNetworks(ctx, g.dockerHost)
	if derr == nil {
		return &discovery{Networks: daemon.FromDocker(dn, bridges), FromDocker: true}, nil
	}
	down := errors.As(derr, new(dockerDown))
	if pol != nil && pol.NeedsDocker() {
		switch {
		case down:
			return nil, fmt.Errorf("%v; the policy matches networks by name or label, which needs Docker: start Docker or set --docker-host, or match by subnet or bridge", derr)
		case errors.As(derr, new(dockerHangs)):
			return nil, fmt.Errorf("%v; the policy matches networks by name or label, which needs Docker: restart dockerd or check --docker-host, or match by subnet or bridge", derr)
		}
		return nil, derr // Docker answered, with an error that says what is wrong
	}
	if down {
		slog.Debug("Docker not reachable; fencing bridges found over netlink", "err", derr)
	} else {
		slog.Warn(derr.Error() + "; fencing the bridges found over netlink")
	}
	return &discovery{Networks: daemon.FromBridges(bridges), DockerErr: derr}, nil
}

func dockerNetworks(ctx context.Context, host string) ([]docker.Network, error) {
	c, err := docker.Dial(host)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, dockerTimeout)
	defer cancel()
	dn, err := c.Networks(ctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return nil, dockerHangs{c.Host()}
		}
		if errors.Is(err, docker.ErrUnreachable) {
			return nil, dockerDown{c.Host()}
		}
		return nil, err
	}
	return dn, nil
}

// build loads the policy, discovers networks and builds the table.
func build(ctx context.Context, g *globalFlags) (*policy.Policy, *discovery, *fence.Result, error) {
	pol, err := loadPolicy(g)
	if err != nil {
		return nil, nil, nil, err
	}
	d, err := discover(ctx, g, pol)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("nothing changed: %w", err)
	}
	t := fence.Compile(pol, d.Networks)
	for _, w := range t.Warnings {
		slog.Warn(w)
	}
	return pol, d, t, nil
}
