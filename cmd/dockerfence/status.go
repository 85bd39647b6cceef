package main

import (
	"errors"
	"log/slog"

	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/status"
	"github.com/spf13/cobra"
)

func statusCmd(g *globalFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the networks fenced, per-rule packet counters and the last apply",
		Long: `status shows the table's presence and hook priority, each fenced network
(name, bridge, subnets, the policy section that matched) with the packet and
byte counters of each of its rules read from the kernel, the catch-all (the
rules of the {name: "*"} section for docker0 and br-* bridges that appeared
after the last apply) with its counters, and the last apply. A network that
the kernel judges by the catch-all shows the catch-all's denials, which every
bridge under it shares. While the table is absent, status lists the networks
apply would fence, and no rules.

If dockerfence run answers on --socket, status shows what the daemon enforces
(its policy, the networks it follows, its last sync). Otherwise status builds
the table from the policy and the networks found now, as apply would, and
reads the counters itself.

--json prints the schema documented in README.md ("status --json"); its
"state" and "exit_code" say what the exit code says.

Exit codes, for scripts:
  0  the table is present and equal to the policy (with a daemon: to what it enforces)
  1  error: status could not tell (the message says why)
  3  the table is absent: nothing is fenced
  4  the table is present but differs from the policy (see dockerfence plan),
     or is not known to be equal (the daemon keeps it until Docker answers)`,
		Example: `  dockerfence status || echo "not fenced as the policy says (exit $?)"
  dockerfence status --json | jq -r .state`,
		Args: cobra.NoArgs,
	}
	asJSON := cmd.Flags().Bool("json", false, "print JSON (schema: README.md, \"status --json\"); exits as without it")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		s, err := getStatus(cmd, g)
		if err != nil {
			return err
		}
		s.SetState()
		if *asJSON {
			err = status.WriteJSON(cmd.OutOrStdout(), s)
		} else {
			status.WriteText(cmd.OutOrStdout(), s)
		}
		if err == nil && s.ExitCode != status.ExitOK {
			err = exitCode(s.ExitCode)
		}
		return err
	}
	return cmd
}

// getStatus asks the daemon, or else builds the status itself.
func getStatus(cmd *cobra.Command, g *globalFlags) (status.Status, error) {
	s, err := daemon.GetStatus(cmd.Context(), g.socket)
	if !errors.Is(err, daemon.ErrNoDaemon) {
		return s, err
	}
	slog.Debug("no daemon; building the status here", "err", err)
	pol, inv, t, err := build(cmd.Context(), g)
	if err != nil {
		return s, err
	}
	st, err := (nft.Kernel{}).ReadAll(t.Name)
	if err != nil {
		return s, err
	}
	s = status.Make(pol, t, st, inv.Source.String())
	s.SetPublished(t, daemon.PublishedPorts(inv.Containers))
	if s.LastApply, err = status.LoadLastApply(g.runDir(), t.Name); err != nil {
		slog.Warn("last apply unknown", "err", err)
	}
	return s, nil
}

// orDash renders an empty string as "-".
var orDash = status.OrDash
