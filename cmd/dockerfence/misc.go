package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
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
			rules := 0
			for _, s := range pol.Sections {
				rules += s.RuleCount()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: OK: %d sections, %d rules, lists used: %s\n", pol.Source, len(pol.Sections), rules, orDash(strings.Join(pol.UsedLists(), ", ")))
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
			out := cmd.OutOrStdout()
			rev := commit
			if info, ok := debug.ReadBuildInfo(); ok && rev == "" {
				for _, s := range info.Settings {
					if s.Key == "vcs.revision" {
						rev = s.Value
					}
				}
			}
			fmt.Fprintf(out, "dockerfence %s (commit %s)\n", version, orDash(rev))
			var u unix.Utsname
			if unix.Uname(&u) == nil {
				fmt.Fprintf(out, "kernel      %s\n", unix.ByteSliceToString(u.Release[:]))
			}
			c, err := docker.Dial(g.dockerHost)
			if err == nil {
				defer c.Close()
				ctx, cancel := context.WithTimeout(cmd.Context(), 3*time.Second)
				defer cancel()
				api, server, verr := c.Version(ctx)
				err = verr
				if verr == nil {
					fmt.Fprintf(out, "docker      %s (API %s)\n", server, api)
				}
			}
			if err != nil {
				fmt.Fprintf(out, "docker      not reachable (%v)\n", err)
			}
			return nil
		},
	}
}
