package main

import (
	"errors"
	"fmt"

	"github.com/dockerfence/dockerfence/internal/docgen"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"github.com/spf13/cobra"
)

func checkCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check [FILE]",
		Short: "Validate a policy file; non-zero exit and a precise message when it is wrong",
		Long: `Validate the policy file FILE (or -c FILE). It prints "FILE: OK:" and a summary,
or "FILE: invalid:" and every problem at its file:line:column, and exits 1.`,
		Args: cobra.MaximumNArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && g.config != "" && g.config != args[0] {
				return fmt.Errorf("check %s -c %s: give the policy file once", args[0], g.config)
			} else if len(args) == 1 {
				g.config = args[0]
			}
			if g.config == "" {
				return fmt.Errorf("check needs the policy file: dockerfence check FILE")
			}
			pol, err := loadPolicy(g)
			if nl := (*policy.NotLoadedError)(nil); errors.As(err, &nl) {
				return &policy.InvalidError{File: g.config, Err: nl.Err}
			} else if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK: %s\n", pol.Source, pol.Summary())
			return nil
		},
	}
}

func policyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Policy helpers"}
	cmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the embedded default policy, to start a policy file from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(policy.DefaultYAML)
			return err
		},
	})
	return cmd
}

func versionCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print version, commit, kernel and Docker API versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			status.GatherVersion(cmd.Context(), version, commit, g.dockerHost).WriteText(cmd.OutOrStdout())
			return nil
		},
	}
}

// genDocsCmd is the hidden command that make install and make deb use to
// write the man pages and the completion scripts of this very command tree.
func genDocsCmd() *cobra.Command {
	var man, completions string
	cmd := &cobra.Command{
		Use:    "gen-docs",
		Short:  "Write the man pages (--man DIR) and the bash, zsh and fish completion scripts (--completions DIR)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if man == "" && completions == "" {
				return errors.New("gen-docs: give --man DIR, --completions DIR or both")
			}
			if man != "" {
				if err := docgen.Man(cmd.Root(), man, "dockerfence "+version); err != nil {
					return err
				}
			}
			if completions != "" {
				return docgen.Completions(cmd.Root(), completions)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&man, "man", "", "directory for the man pages")
	cmd.Flags().StringVar(&completions, "completions", "", "directory for the completion scripts")
	return cmd
}
