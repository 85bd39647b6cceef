package main

import (
	"fmt"

	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"github.com/spf13/cobra"
)

func checkCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a policy file; non-zero exit and a precise message when it is wrong",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.config == "" {
				return fmt.Errorf("check needs the policy file: dockerfence check -c FILE")
			}
			pol, err := loadPolicy(g)
			if err != nil {
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
