package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nflog"
	"github.com/spf13/cobra"
)

// nflogCopyRange is how much of each logged packet the kernel copies: enough
// for the IPv6 header, some extension headers and the transport header.
const nflogCopyRange = 128

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
			print := func(e denylog.Event) error {
				if asJSON {
					return json.NewEncoder(cmd.OutOrStdout()).Encode(e)
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), e.Line())
				return err
			}
			path := "/v1/events"
			if follow {
				path += "?follow=1"
			}
			resp, err := daemonGet(ctx, g.socket, path, 0)
			if err == nil {
				defer resp.Body.Close()
				return streamEvents(ctx, resp.Body, print)
			}
			if !errors.Is(err, errNoDaemon) {
				return err
			}
			return readOwnLog(ctx, cmd, g, print)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new denials")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line")
	return cmd
}

// streamEvents prints the daemon's events until the stream or ctx ends.
func streamEvents(ctx context.Context, r io.Reader, print func(denylog.Event) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var e denylog.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("event from dockerfence run: %w", err)
		}
		if err := print(e); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
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
	conn, err := nflog.Open(group, nflogCopyRange)
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var printErr error
	r := &denylog.Reader{
		Table:    func() *fence.Result { return t },
		Resolver: res,
		Publish: func(e denylog.Event) {
			if printErr == nil {
				if printErr = print(e); printErr != nil {
					cancel() // stdout is gone
				}
			}
		},
		Overrun: func() {
			fmt.Fprintln(cmd.ErrOrStderr(), "dockerfence: the kernel dropped denials that were not read in time")
		},
	}
	if err := r.Run(ctx, conn); err != nil {
		return err
	}
	return printErr
}
