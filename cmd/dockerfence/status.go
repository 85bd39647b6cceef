package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/status"
	"github.com/spf13/cobra"
)

func statusCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the networks fenced, per-rule packet counters and the last apply",
		Long: `status shows the table's presence and hook priority, each fenced network
(name, bridge, subnets, the policy section that matched) with the packet and
byte counters of each of its rules read from the kernel, and the last apply.

If dockerfence run answers on --socket, status shows what the daemon enforces
(its policy, the networks it follows, its last sync). Otherwise status builds
the table from the policy and the networks found now, as apply would, and
reads the counters itself.

--json prints the schema documented in README.md ("status --json").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := getStatus(cmd, g)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printStatus(cmd.OutOrStdout(), s)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema: README.md, \"status --json\")")
	return cmd
}

// getStatus asks the daemon, or else builds the status itself.
func getStatus(cmd *cobra.Command, g *globalFlags) (status.Status, error) {
	var s status.Status
	resp, err := daemonGet(cmd.Context(), g.socket, "/v1/status", 10*time.Second)
	if err == nil {
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
			return s, fmt.Errorf("status from dockerfence run: %w", err)
		}
		return s, nil
	}
	if !errors.Is(err, errNoDaemon) {
		return s, err
	}
	slog.Debug("no daemon; building the status here", "err", err)
	pol, inv, t, err := build(cmd.Context(), g)
	if err != nil {
		return s, err
	}
	st, err := (nft.Kernel{}).Read(t.Name)
	if err != nil {
		return s, err
	}
	s = status.Make(pol, t, st, inv.Source.String())
	if s.LastApply, err = status.LoadLastApply(g.runDir(), t.Name); err != nil {
		slog.Warn("last apply unknown", "err", err)
	}
	return s, nil
}

func printStatus(out io.Writer, s status.Status) {
	state := "absent: nothing is fenced (run dockerfence apply)"
	if s.Table.Present {
		state = fmt.Sprintf("present, hook priority %d", s.Table.Priority)
		if s.Table.InSync {
			state += ", matches the policy"
		} else {
			state += fmt.Sprintf(", differs from the policy in %d places (see dockerfence plan)", len(s.Table.Drift))
		}
	}
	fmt.Fprintf(out, "table inet %s: %s\n", s.Table.Name, state)
	fmt.Fprintf(out, "policy:     %s (mode %s)\n", s.Policy, s.Mode)
	if d := s.Daemon; d != nil {
		docker := "Docker connected"
		if !d.DockerUp {
			docker = "Docker not connected"
		}
		fmt.Fprintf(out, "daemon:     running, pid %d, since %s; %s; %d denial events logged", d.PID, stamp(d.Since), docker, d.Denials)
		if d.Lost > 0 {
			fmt.Fprintf(out, " (%d losses)", d.Lost)
		}
		fmt.Fprintln(out)
		if d.LastSync != nil {
			fmt.Fprintf(out, "last sync:  %s\n", applyLine(d.LastSync))
		}
	} else {
		fmt.Fprintln(out, "daemon:     not running (no answer on the socket); counters read directly")
	}
	if s.LastApply != nil {
		fmt.Fprintf(out, "last apply: %s\n", applyLine(s.LastApply))
	} else {
		fmt.Fprintln(out, "last apply: none recorded")
	}
	if !s.Docker {
		fmt.Fprintln(out, "docker:     not reachable; networks are the bridges found over netlink")
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tBRIDGE\tSUBNETS\tSECTION\tDENIED")
	for _, n := range s.Networks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d %s\t%d\n", orDash(n.Name), n.Bridge, strings.Join(n.Subnets, ","), n.Section, n.Match, n.Denied)
	}
	for _, n := range s.Unfenced {
		fmt.Fprintf(tw, "%s\t%s\t%s\tnone: not fenced\t-\n", orDash(n.Name), n.Bridge, strings.Join(n.Subnets, ","))
	}
	tw.Flush()
	for _, n := range s.Networks {
		fmt.Fprintf(out, "\n%s (%s)\n", orDash(n.Name), n.Bridge)
		tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  RULE\tVERDICT\tMATCH\tPACKETS\tBYTES\tCOMMENT")
		for _, r := range n.Rules {
			id := r.ID
			if id == "anti-spoofing" { // once per hook
				id += " (" + r.Hook + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\n", id, r.Verdict, r.Match, r.Packets, r.Bytes, r.Comment)
		}
		tw.Flush()
	}
}

// applyLine renders an apply: "12:04:05 by run (docker: 2 Docker events): applied in 3.1 ms".
func applyLine(a *status.Apply) string {
	s := stamp(a.Time) + " by " + a.By
	if a.Reason != "" {
		s += " (" + a.Reason + ")"
	}
	s += fmt.Sprintf(": %s in %.1f ms", a.Result, a.TookMS)
	if a.Error != "" {
		s += ": " + a.Error
	}
	return s
}

// stamp renders a time as the time of day, with the date if not today.
func stamp(t time.Time) string {
	t = t.Local()
	if y, m, d := t.Date(); y == time.Now().Year() && m == time.Now().Month() && d == time.Now().Day() {
		return t.Format(time.TimeOnly)
	}
	return t.Format(time.DateTime)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
