package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nflog"
	"github.com/spf13/cobra"
)

func logsCmd(g *globalFlags) *cobra.Command {
	var follow, asJSON bool
	cmd := &cobra.Command{
		Use:   "logs [--follow] [--json]",
		Short: "Show denied packets, attributed to containers, networks and rules",
		Long: `logs prints the packets dockerfence denied (or, in audit mode, would have
denied), one line each:

  12:04:05 deny       app-web-1 (app_default) 172.20.0.2 -> 192.168.100.50:5432/tcp  rule 4 "private network"

dockerfence run reads the deny rules' NFLOG group and keeps the latest 1000
events; logs prints them, and with --follow goes on printing new ones. If no
daemon answers on --socket, logs reads the NFLOG group itself, says so, and
prints new denials until interrupted. The deny rules log at most
settings.log_rate packets a second per source address (forged sources:
per network and hook), so that one container's flood does not hide
another's denials; status counts every packet.

--json prints one JSON object a line (schema: README.md, "logs --json").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			print := denylog.Printer(cmd.OutOrStdout(), asJSON)
			err := daemon.Events(ctx, g.socket, follow, print)
			if !errors.Is(err, daemon.ErrNoDaemon) {
				return err
			}
			return readOwnLog(ctx, cmd, g, print)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new denials")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line")
	return cmd
}

// readOwnLog binds the NFLOG group itself and prints new denials until ctx
// ends.
func readOwnLog(ctx context.Context, cmd *cobra.Command, g *globalFlags, print func(denylog.Event) error) error {
	pol, _, t, err := build(ctx, g)
	if err != nil {
		return err
	}
	group := pol.Settings.LogGroup
	if !pol.Settings.LogDenied {
		fmt.Fprintln(cmd.ErrOrStderr(), "dockerfence: settings.log_denied is false, so the deny rules log nothing; set it to true to see denials")
	}
	conn, err := denylog.Open(group)
	if errors.Is(err, nflog.ErrBusy) {
		return fmt.Errorf("no dockerfence run answers on %s, and another program holds NFLOG group %d: if dockerfence run is running, point --socket at its socket; else stop the other reader or change settings.log_group", g.socket, group)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "dockerfence: no dockerfence run answers on %s; reading NFLOG group %d myself, new denials only (Ctrl-C to stop)\n", g.socket, group)
	var res denylog.Resolver
	if c, err := docker.Dial(g.dockerHost); err == nil {
		defer c.Close()
		res = &denylog.Containers{List: c.Containers}
	}
	r := denylog.Reader{
		Table:    func() *fence.Result { return t },
		Resolver: res,
		Overrun: func() {
			fmt.Fprintln(cmd.ErrOrStderr(), "dockerfence: the kernel dropped denials that were not read in time")
		},
	}
	return r.Print(ctx, conn, print)
}
