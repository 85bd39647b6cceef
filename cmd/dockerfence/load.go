package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/discover"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/spf13/cobra"
)

// loadPolicy loads -c, else the default path, else the embedded default,
// and logs the policy's warnings.
func loadPolicy(g *globalFlags) (*policy.Policy, error) {
	p, err := loadPolicyQuietly(g)
	if err != nil {
		return nil, err
	}
	if g.config == "" && p.Source == policy.DefaultName {
		slog.Debug("no policy file; using the embedded default policy", "path", policy.DefaultPath)
		return p, nil
	}
	for _, w := range p.Warnings {
		slog.Warn(w)
	}
	return p, nil
}

// loadPolicyQuietly is loadPolicy for the daemon, which logs the policy's
// warnings with the table's, when they change.
func loadPolicyQuietly(g *globalFlags) (*policy.Policy, error) {
	return policy.LoadOrDefault(g.config, policy.Options{ResolvConf: g.resolvConf})
}

// takeInventory takes the inventory once: Docker's networks at
// --docker-host, else the bridges found over netlink (see discover.Take).
func takeInventory(ctx context.Context, g *globalFlags) (*discover.Inventory, error) {
	return discover.Take(ctx, g.dockerHost)
}

// build loads the policy, takes the inventory for it (Docker's networks,
// or, when Docker cannot be asked and the policy can do without it, the
// bridges found over netlink) and builds the table. The table's warnings
// are the caller's to log (warnTable) once the command has done its work:
// a command that fails says so in one line.
func build(ctx context.Context, g *globalFlags) (*policy.Policy, *discover.Inventory, *fence.Result, error) {
	pol, err := loadPolicy(g)
	if err != nil {
		return nil, nil, nil, err
	}
	inv, err := takeInventory(ctx, g)
	if err == nil {
		err = inv.Check(pol)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("nothing changed: %w", err)
	}
	switch {
	case inv.Warning != "":
		slog.Warn(inv.Warning)
	case inv.DockerErr != nil:
		slog.Debug("Docker not reachable; fencing bridges found over netlink", "err", inv.DockerErr)
	}
	return pol, inv, inv.Compile(pol), nil
}

// warnTable logs the warnings of the table built: what it cannot fence as
// the policy reads, and the networks it skipped.
func warnTable(t *fence.Result) {
	for _, w := range t.Warnings {
		slog.Warn(w)
	}
}

// viaDaemon asks dockerfence run on --socket to run the request kind, and
// prints its answer, then logs its warnings as warnTable does. It reports
// false, with no error, when no daemon answers: the command then works by
// itself.
func viaDaemon(cmd *cobra.Command, g *globalFlags, kind string) (bool, error) {
	done, _, err := askDaemon(cmd, g, kind)
	return done, err
}

// askDaemon is viaDaemon, and returns the daemon's answer too.
func askDaemon(cmd *cobra.Command, g *globalFlags, kind string) (bool, daemon.Answer, error) {
	file, err := filepath.Abs(cmp.Or(g.config, policy.DefaultPath))
	if err != nil {
		return false, daemon.Answer{}, err
	}
	a, err := daemon.Ask(cmd.Context(), g.socket, kind, file)
	if errors.Is(err, daemon.ErrNoDaemon) {
		slog.Debug("no daemon answers; working by itself", "request", kind, "err", err)
		return false, a, nil
	}
	if err != nil {
		return true, a, err
	}
	_, err = io.WriteString(cmd.OutOrStdout(), a.Output)
	for _, w := range a.Warnings {
		slog.Warn(w)
	}
	return true, a, err
}
