package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/discover"
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

// takeInventory takes the inventory once: Docker's networks at
// --docker-host, else the bridges found over netlink. Its error says that
// the bridges could not be listed; the inventory is then still what was
// found without them.
func takeInventory(ctx context.Context, g *globalFlags) (*discover.Inventory, error) {
	d := &discover.Discoverer{Bridges: bridge.Netlink{}}
	c, err := docker.Dial(g.dockerHost)
	if err != nil {
		d.Docker = undialable{host: g.dockerHost, err: err}
	} else {
		defer c.Close()
		d.Docker = c
	}
	return d.Discover(ctx)
}

// undialable is the Docker of a --docker-host (or DOCKER_HOST) that cannot
// be used: every call fails with the reason, so that discovery takes it for
// a Docker that answered with an error.
type undialable struct {
	host string
	err  error
}

func (u undialable) Networks(context.Context) ([]docker.Network, error)     { return nil, u.err }
func (u undialable) Containers(context.Context) ([]docker.Container, error) { return nil, u.err }
func (u undialable) Host() string                                           { return u.host }

// inventory takes the inventory for pol: Docker's networks, or, when Docker
// cannot be asked and the policy can do without it, the bridges found over
// netlink.
func inventory(ctx context.Context, g *globalFlags, pol *policy.Policy) (*discover.Inventory, error) {
	inv, err := takeInventory(ctx, g)
	if err != nil {
		return nil, err
	}
	if err := inv.Check(pol); err != nil {
		return nil, err
	}
	switch {
	case inv.Warning != "":
		slog.Warn(inv.Warning)
	case inv.DockerErr != nil:
		slog.Debug("Docker not reachable; fencing bridges found over netlink", "err", inv.DockerErr)
	}
	return inv, nil
}

// build loads the policy, takes the inventory and builds the table. The
// table's warnings are the caller's to log (warnTable) once the command has
// done its work: a command that fails says so in one line.
func build(ctx context.Context, g *globalFlags) (*policy.Policy, *discover.Inventory, *fence.Result, error) {
	pol, err := loadPolicy(g)
	if err != nil {
		return nil, nil, nil, err
	}
	inv, err := inventory(ctx, g, pol)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("nothing changed: %w", err)
	}
	return pol, inv, fence.Compile(pol, inv.Networks), nil
}

// warnTable logs the warnings of the table built: what it cannot fence as
// the policy reads, and the networks it skipped.
func warnTable(t *fence.Result) {
	for _, w := range t.Warnings {
		slog.Warn(w)
	}
}
