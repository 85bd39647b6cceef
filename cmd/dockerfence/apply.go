package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/discover"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"github.com/spf13/cobra"
)

func applyCmd(g *globalFlags) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply [-c FILE] [--dry-run]",
		Short: "Make the kernel's table match the policy, in one atomic transaction",
		Long: `apply loads the policy, finds Docker's bridge networks (or, without Docker and
with a policy that matches only by subnet, bridge or "*", the bridges on this
host) and replaces table inet dockerfence in one netlink transaction. If the
policy or the kernel refuses, the table stays exactly as it was. Docker
networks of other drivers (macvlan, ipvlan, host, overlay) cannot be fenced:
apply warns of each, one line, and status lists them.

While it reads and changes the table, apply holds the lock file "lock" in the
directory of --socket (default /run/dockerfence); delete and run take the same
lock around each change they make. Two of them therefore never change the
table at once, which could leave a mix of two policies. If another dockerfence
holds the lock, apply changes nothing and fails at once with "another
dockerfence is changing table inet NAME (pid N, ...); nothing changed: retry".

While dockerfence run answers on --socket, it owns the table and apply asks it
instead: the daemon reloads its policy file and syncs at once, verifying the
whole table. Its policy file must be -c (or the default): apply fails,
changing nothing, if the daemon enforces another. Only root or a caller with
CAP_NET_ADMIN may ask.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dryRun {
				if done, err := viaDaemon(cmd, g, daemon.RequestApply); done {
					return err
				}
			}
			pol, d, t, err := build(cmd.Context(), g)
			if err != nil {
				return err
			}
			for _, u := range t.NotFenceable {
				if w := u.Warning(); w != "" {
					slog.Warn(w)
				}
			}
			if dryRun {
				fmt.Fprint(cmd.OutOrStdout(), t.Text())
				warnTable(t)
				return nil
			}
			start := time.Now()
			var changed bool
			err = withLock(g, "apply", t.Name, func() error {
				var err error
				changed, err = (nft.Kernel{}).Verify(t.Table)
				// Recorded under the lock, so that the last apply recorded
				// is the last one made.
				recordApply(g, status.Apply{Time: start, By: "apply", Table: t.Name, TookMS: float64(time.Since(start).Microseconds()) / 1000}, changed, err)
				return err
			})
			if err != nil {
				return err
			}
			took := time.Since(start).Round(time.Millisecond / 10)
			if changed {
				fmt.Fprintf(cmd.OutOrStdout(), "applied table inet %s in %s: %s\n", t.Name, took, summary(t, d))
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "table inet %s is already up to date, nothing sent (checked in %s): %s\n", t.Name, took, summary(t, d))
			}
			warnTable(t)
			return fillNames(cmd.Context(), cmd.OutOrStdout(), g, pol, t)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the table in nft syntax instead of applying it")
	return cmd
}

// recordApply records the outcome of an apply for status; failing to is
// only worth a debug line, since the fence itself is what matters.
func recordApply(g *globalFlags, a status.Apply, changed bool, err error) {
	if err := status.RecordApply(g.runDir(), a, changed, err); err != nil {
		slog.Debug("could not record the apply for status", "err", err)
	}
}

// summary says in one line what the table fences.
func summary(t *fence.Result, inv *discover.Inventory) string { return t.Summary(inv.FromDocker()) }

func planCmd(g *globalFlags) *cobra.Command {
	var exitCodes bool
	cmd := &cobra.Command{
		Use:   "plan [-c FILE] [--exit-code]",
		Short: "Show what apply would change in the kernel's table now",
		Long: `plan reads the kernel's table and says what apply would change in it now:
one line a difference, then the netlink transactions apply would send, in nft
syntax, one command a line, in the order apply sends them (nft -f reads them).
It changes nothing. While dockerfence run answers on --socket, the daemon
computes the plan with its policy file (which must be -c, or the default),
as it is now, against its kernel, and plan prints it.

plan exits 0 whether or not changes are pending, and 1 on error. With
--exit-code (as git diff --exit-code, terraform plan -detailed-exitcode):
  0  the table is up to date: apply would change nothing
  1  error: plan could not tell (the message says why)
  2  changes are pending: apply would change the table (or create it)`,
		Example: `  dockerfence plan --exit-code >/dev/null || [ $? -ne 2 ] || dockerfence apply`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// pending ends the command as --exit-code asks.
			pending := func(p bool) error {
				if exitCodes && p {
					return exitCode(status.ExitPending)
				}
				return nil
			}
			if done, a, err := askDaemon(cmd, g, daemon.RequestPlan); done {
				switch {
				case err != nil:
					return err
				case exitCodes && a.Pending == nil:
					return fmt.Errorf("dockerfence run on %s did not say whether changes are pending (is it of an older version?): --exit-code cannot tell", g.socket)
				case a.Pending != nil:
					return pending(*a.Pending)
				}
				return nil
			}
			_, d, t, err := build(cmd.Context(), g)
			if err != nil {
				return err
			}
			// Every set is read in full: an element deleted while no
			// daemon ran is not in the rules' digests.
			p, err := (nft.Kernel{}).Plan(t.Table, t.OwnedSets()...)
			if err != nil {
				return err
			}
			defer warnTable(t)
			fmt.Fprint(cmd.OutOrStdout(), daemon.PlanText(t.Name, t.Table, p, summary(t, d)))
			return pending(!p.Empty())
		},
	}
	cmd.Flags().BoolVar(&exitCodes, "exit-code", false, "exit 2 when changes are pending, 0 when the table is up to date (1 stays error)")
	return cmd
}

func deleteCmd(g *globalFlags) *cobra.Command {
	var table string
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Remove dockerfence's table: the only command that un-fences",
		Long: `delete removes table inet dockerfence (or --table) in one netlink transaction.
Containers are then no longer fenced.

Like apply, delete holds the lock file "lock" in the directory of --socket
(default /run/dockerfence) while it changes the table. If another dockerfence
(apply, or run in the middle of a sync) holds it, delete changes nothing and
fails at once with "another dockerfence is changing table inet NAME (pid N,
...); nothing changed: retry".

While dockerfence run answers on --socket (and --table is not given), delete
asks it: the daemon deletes its table, says so, and keeps running without
fencing until it reloads its policy (SIGHUP, a change of the policy file,
or dockerfence apply). Only root or a caller with CAP_NET_ADMIN may ask.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if table == "" {
				if done, err := viaDaemon(cmd, g, daemon.RequestDelete); done {
					return err
				}
			}
			if table == "" {
				table = policy.DefaultSettings().Table
				if pol, err := loadPolicy(g); err == nil {
					table = pol.Settings.Table
				} else {
					slog.Warn("policy not loaded; deleting the default table name", "table", table, "err", err)
				}
			}
			var existed bool
			err := withLock(g, "delete", table, func() error {
				var err error
				existed, err = (nft.Kernel{}).Delete(table)
				return err
			})
			if err != nil {
				return err
			}
			if !existed {
				fmt.Fprintf(cmd.OutOrStdout(), "table inet %s does not exist; nothing to delete\n", table)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted table inet %s: containers are no longer fenced\n", table)
			return nil
		},
	}
	cmd.Flags().StringVar(&table, "table", "", "table to delete (default: the policy's settings.table)")
	return cmd
}
