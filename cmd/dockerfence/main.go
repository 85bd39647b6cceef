// Command dockerfence keeps Docker containers away from the networks they
// must not reach, with a dedicated nftables table that Docker cannot bypass.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/lock"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"github.com/spf13/cobra"
)

// Build information, set with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

// globalFlags are the flags every command shares.
type globalFlags struct {
	config     string
	dockerHost string
	logLevel   string
	resolvConf string
	socket     string
}

// runDir is the directory of the daemon's socket, where the last apply is
// recorded too.
func (g *globalFlags) runDir() string { return filepath.Dir(g.socket) }

// withLock runs change while holding the lock of the run directory, or
// returns a *lock.BusyError at once if another process holds it.
func withLock(g *globalFlags, role, table string, change func() error) error {
	return lock.With(g.runDir(), role, table, change)
}

func main() {
	code, msg := exit(newRoot().Execute())
	if msg != "" {
		fmt.Fprintln(os.Stderr, msg)
	}
	os.Exit(code)
}

// exitCode ends a command that has printed its answer with that exit
// code: a state the caller asked about (status, plan --exit-code), not an
// error, so nothing more is printed.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit code %d", int(c)) }

// exit returns the exit code of a command that returned err, and the
// message to print on standard error ("" for none).
func exit(err error) (int, string) {
	var c exitCode
	switch {
	case err == nil:
		return status.ExitOK, ""
	case errors.As(err, &c):
		return int(c), ""
	}
	return status.ExitError, message(err)
}

// message is the exit message of err: its first line, after "dockerfence: ".
// Policy errors keep all their lines, one problem each, and check's starts
// with the file; a mistyped command keeps cobra's suggestions.
func message(err error) string {
	s := strings.TrimSuffix(err.Error(), "\n")
	switch {
	case errors.As(err, new(*policy.InvalidError)):
		return s
	case !errors.As(err, new(*policy.NotLoadedError)) && !strings.HasPrefix(s, "unknown command "):
		s, _, _ = strings.Cut(s, "\n")
	}
	return "dockerfence: " + s
}

func newRoot() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:   "dockerfence",
		Short: "Fence Docker containers' egress with an nftables table Docker cannot bypass",
		Long: `dockerfence owns one nftables table (inet dockerfence) whose forward and input
chains run before Docker's own filter. A denial there is final, whatever Docker
later does to its chains, so recreating a network no longer opens the fence.`,
		Version:       version + " (commit " + status.OrDash(commit) + ")",
		SilenceUsage:  true,
		SilenceErrors: true,
		// "dockerfence stauts" says: Did you mean this? status
		SuggestionsMinimumDistance: 2,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: use debug, info, warn or error", g.logLevel)
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.config, "config", "c", "", "policy file (default "+policy.DefaultPath+", else the embedded default policy)")
	pf.StringVar(&g.dockerHost, "docker-host", os.Getenv("DOCKER_HOST"), "Docker API address (default $DOCKER_HOST or unix:///var/run/docker.sock)")
	pf.StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	pf.StringVar(&g.resolvConf, "resolv-conf", "/etc/resolv.conf", "the host's resolv.conf, whose nameservers make up @resolvers (systemd-resolved's upstream servers if it names only its stub)")
	_ = pf.MarkHidden("resolv-conf")
	pf.StringVar(&g.socket, "socket", daemon.DefaultSocket, "unix socket of dockerfence run (status and denial events); the last apply is recorded next to it")
	root.AddCommand(applyCmd(g), runCmd(g), planCmd(g), statusCmd(g), logsCmd(g), checkCmd(g), explainCmd(g), deleteCmd(g), policyCmd(), versionCmd(g), genDocsCmd())
	root.SetVersionTemplate("dockerfence {{.Version}}\n") // the first line of dockerfence version
	root.InitDefaultCompletionCmd()
	if c, _, err := root.Find([]string{"completion"}); err == nil {
		c.Long += completionHelp
	}
	return root
}

// completionHelp ends the help of dockerfence completion.
const completionHelp = `
To load completions in every new shell:
  bash: dockerfence completion bash > /etc/bash_completion.d/dockerfence
  zsh:  dockerfence completion zsh > "${fpath[1]}/_dockerfence"
  fish: dockerfence completion fish > ~/.config/fish/completions/dockerfence.fish`
