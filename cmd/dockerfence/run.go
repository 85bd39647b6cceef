package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/lock"
	"github.com/dockerfence/dockerfence/policy"
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
      The log says so once, then once a minute with the count of failed
      attempts, and when Docker is back.
  Someone deletes or flushes the table, or changes its chains or sets
      ("nft flush ruleset", "nft delete table inet dockerfence", a firewall
      reload)  On Linux 6.9+ run owns the table: the kernel refuses every
      change by another process and the flush skips it. Otherwise the
      table is repaired at once, well within a second. The whole table
      (flags, chains, rules, every set's elements) is verified at start
      and at each resync, and what differs is logged and repaired.
  The policy file changes, or run gets SIGHUP
      The policy is reloaded. An invalid policy is logged with file:line:col
      and the previous policy stays in force. So it is when the host's
      resolvers change (/etc/resolv.conf, or systemd-resolved's
      /run/systemd/resolve/resolv.conf) and a rule uses @resolvers.
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
  SIGTERM, SIGINT or SIGKILL
      run exits and leaves the table in place: the fence stays closed
      while the daemon is down. Under systemd (the packaged unit sets
      FileDescriptorStoreMax=) the owning socket waits in systemd's file
      descriptor store, so the table stays owned and refuses "nft flush
      ruleset" until the next run takes the socket back. Otherwise the
      table is orphaned until the next run adopts it, and a flush can
      delete it meanwhile.
  apply, plan, delete
      While run answers on --socket they go through it (see their help);
      apply and delete only for uid 0 or CAP_NET_ADMIN.

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

			cfg.LoadPolicy = func() (*policy.Policy, error) { return loadPolicyQuietly(g) }
			cfg.PolicyFile = cmp.Or(g.config, policy.DefaultPath)
			cfg.Reload = hup
			if !noDocker {
				c, err := docker.Dial(g.dockerHost)
				if err != nil {
					return err
				}
				defer c.Close()
				cfg.Docker = c
			}
			cfg.Bridges = bridge.Netlink{}.Bridges
			cfg.Ports = bridge.Netlink{}.Ports
			// One lasting socket for the daemon's life: it owns the table
			// where the kernel allows it. Under systemd a copy waits in
			// the file descriptor store, so the table stays owned across a
			// kill or crash; else, closed at exit, it leaves the table
			// persistent and orphaned, for the next daemon to adopt.
			k, err := daemon.OpenKernel(slog.Default())
			if err != nil {
				return err
			}
			defer k.Close()
			cfg.Kernel = k
			cfg.Log = slog.Default()
			// The lock that apply and delete take too: each sync holds it
			// while it reads and changes the table. The file is opened
			// anew each time, so that a lock file someone removed is
			// created again rather than locked unseen.
			cfg.Lock = func(table string) (func(), error) { return lock.Take(g.runDir(), "run", table) }
			return daemon.Serve(ctx, cfg, daemon.Services{Socket: g.socket, MetricsAddr: metricsAddr, RunDir: g.runDir(), Version: version})
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
