package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/nflog"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"github.com/spf13/cobra"
)

func runCmd(g *globalFlags) *cobra.Command {
	var cfg daemon.Config
	var noDocker bool
	var metricsAddr string
	cmd := &cobra.Command{
		Use:   "run [-c FILE]",
		Short: "Keep the fence true: follow Docker, repair the table, reload the policy",
		Long: `run is the daemon (systemd starts it before Docker). It applies the policy at
once and then keeps table inet dockerfence equal to it:

  Docker creates, removes or recreates a network, or starts a container
      The table is rebuilt within about 100 ms of the burst of events. A
      network recreated by "docker compose down && up" (new id, new bridge,
      maybe a new subnet) is fenced again by the section that matches it.
      A bridge named docker0 or br-* that appears before that is already
      fenced by the "*" section, if the policy has one.
  Docker stops, restarts or is not running yet
      The fence stays as it is and follows the networks Docker last
      reported; run reconnects with backoff and resyncs everything when
      Docker is back. Started before Docker, it fences the bridges it finds.
  Someone deletes or flushes the table, or changes its chains or sets
      ("nft flush ruleset", "nft delete table inet dockerfence", a firewall
      reload)  The table is repaired at once, well within a second.
  The policy file changes, or run gets SIGHUP
      The policy is reloaded. An invalid policy is logged with file:line:col
      and the previous policy stays in force.
  An apply fails
      The table stays as it was and the sync is retried with backoff
      (100 ms doubling to 10 s).
  "dockerfence apply" or "delete" is changing the table
      Each sync holds the lock file "lock" in the directory of --socket
      while it reads and changes the table, as apply and delete do, so that
      no two of them change it at once. A sync that finds the lock taken
      waits for it up to 2 s, then counts as failed and is retried with
      backoff; an apply or delete that finds it taken changes nothing and
      fails at once, saying so.
  Every 30 s
      A full resync, in case an event was missed.
  SIGTERM or SIGINT
      run exits and leaves the table in place: the fence stays closed while
      the daemon is down. Only "dockerfence delete" removes it.

run reads the deny rules' NFLOG group (settings.log_group) and serves, on the
unix socket --socket (mode 0600), the status that "dockerfence status" shows
and the denial events that "dockerfence logs" prints. With --metrics-addr it
serves Prometheus metrics on http://ADDR/metrics.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)

			cfg.LoadPolicy = func() (*policy.Policy, error) { return loadPolicy(g) }
			cfg.PolicyFile = g.config
			if cfg.PolicyFile == "" {
				cfg.PolicyFile = defaultPolicyPath
			}
			cfg.Reload = hup
			if !noDocker {
				c, err := docker.Dial(g.dockerHost)
				if err != nil {
					return err
				}
				defer c.Close()
				cfg.Docker = c
				slog.Info("following Docker", "host", c.Host())
			}
			cfg.Bridges = bridge.Netlink{}.Bridges
			cfg.Kernel = nft.Kernel{}
			cfg.Log = slog.Default()

			var metrics *daemon.Metrics
			if metricsAddr != "" {
				metrics = daemon.NewMetrics()
			}
			obs := daemon.NewObserver(nft.Kernel{}, metrics)
			obs.RunDir = g.runDir()
			hub := &denylog.Hub{}
			var containers *denylog.Containers
			if c, ok := cfg.Docker.(*docker.Client); ok {
				containers = &denylog.Containers{List: c.Containers}
			}
			groups := make(chan uint16, 1)
			var group uint16
			groupSent := false // log_group 0 is a valid group
			cfg.OnSync = func(r daemon.Result) {
				obs.OnSync(r)
				if r.Changed || r.Err != nil {
					if err := status.SaveLastApply(g.runDir(), daemon.ApplyOf(r)); err != nil {
						slog.Debug("could not record the apply for status", "err", err)
					}
				}
				if r.Err == nil && r.Policy != nil && r.Policy.Settings.LogDenied && (!groupSent || r.Policy.Settings.LogGroup != group) {
					group, groupSent = r.Policy.Settings.LogGroup, true
					select {
					case <-groups:
					default:
					}
					groups <- group
				}
			}
			cfg.OnDocker = func(u docker.Update) {
				obs.OnDocker(u)
				if containers != nil && u.Signal != docker.Lost {
					containers.Invalidate()
				}
			}
			var res denylog.Resolver
			if containers != nil {
				res = containers
			}
			go readDenials(ctx, groups, &denylog.Reader{
				Table:    obs.Table,
				Resolver: res,
				Publish: func(e denylog.Event) {
					obs.Denial(e)
					hub.Publish(e)
				},
				Overrun: obs.Overrun,
			})

			l, err := daemon.ListenUnix(g.socket)
			if err != nil {
				return err
			}
			api := &http.Server{Handler: (&daemon.API{Observer: obs, Hub: hub}).Handler(), ReadHeaderTimeout: 5 * time.Second}
			go func() {
				if err := api.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
					slog.Error("status socket stopped", "socket", g.socket, "err", err)
				}
			}()
			defer func() {
				api.Close()
				os.Remove(g.socket)
			}()
			slog.Info("serving status and denial events", "socket", g.socket)
			if metrics != nil {
				ml, err := net.Listen("tcp", metricsAddr)
				if err != nil {
					return fmt.Errorf("--metrics-addr %s: %w", metricsAddr, err)
				}
				mux := http.NewServeMux()
				mux.Handle("/metrics", metrics.Handler())
				ms := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
				go func() {
					if err := ms.Serve(ml); err != nil && !errors.Is(err, http.ErrServerClosed) {
						slog.Error("metrics endpoint stopped", "addr", metricsAddr, "err", err)
					}
				}()
				defer ms.Close()
				slog.Info("serving metrics", "url", "http://"+ml.Addr().String()+"/metrics")
			}
			// The lock that apply and delete take too: each sync holds it
			// while it reads and changes the table. The file is opened
			// anew each time, so that a lock file someone removed is
			// created again rather than locked unseen.
			cfg.Lock = func(table string) (func(), error) { return takeLock(g.runDir(), "run", table) }
			cfg.Ready = func() {
				if err := sdNotify("READY=1"); err != nil {
					slog.Warn("could not tell systemd the fence is up", "err", err)
				}
			}
			slog.Info("dockerfence run starting", "version", version, "pid", os.Getpid(), "policy", cfg.PolicyFile)
			return daemon.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.Resync, "resync", 30*time.Second, "period of the full resync")
	f.DurationVar(&cfg.Debounce, "debounce", 50*time.Millisecond, "how long to gather a burst of Docker events (at most 100ms)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics on HOST:PORT (off by default), e.g. 127.0.0.1:9850")
	f.BoolVar(&noDocker, "no-docker", false, "do not follow Docker: fence the bridges found over netlink (policies that match by name or label then match nothing)")
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if cfg.Debounce <= 0 || cfg.Debounce > 100*time.Millisecond {
			return fmt.Errorf("--debounce %v: use a duration above 0 and at most 100ms", cfg.Debounce)
		}
		if cfg.Resync < time.Second {
			return fmt.Errorf("--resync %v: use at least 1s", cfg.Resync)
		}
		return nil
	}
	return cmd
}

// readDenials reads the NFLOG group that groups last named, reopening it
// when the group changes and retrying every 5 s while another program holds
// it, until ctx ends.
func readDenials(ctx context.Context, groups <-chan uint16, r *denylog.Reader) {
	var group uint16
	select {
	case group = <-groups:
	case <-ctx.Done():
		return
	}
	for {
		conn, err := nflog.Open(group, nflogCopyRange)
		if err != nil {
			slog.Warn("cannot read denials; retrying in 5s (the fence itself is not affected)", "group", group, "err", err)
			select {
			case group = <-groups:
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
				return
			}
			continue
		}
		slog.Info("reading denials", "nflog_group", group)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx, conn) }()
		select {
		case group = <-groups:
			cancel()
			<-done
		case err := <-done:
			cancel()
			if ctx.Err() != nil {
				return
			}
			slog.Warn("reading denials failed; reopening in 5s", "group", group, "err", err)
			select {
			case group = <-groups:
			case <-time.After(5 * time.Second):
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			cancel()
			<-done
			return
		}
	}
}
