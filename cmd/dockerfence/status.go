package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/spf13/cobra"
)

// Status is the JSON schema of `dockerfence status --json`. Fields are only
// ever added, never renamed or removed.
type Status struct {
	Table    TableStatus     `json:"table"`
	Policy   string          `json:"policy"`
	Docker   bool            `json:"docker"`
	Networks []NetworkStatus `json:"networks"`
	Unfenced []NetworkStatus `json:"unfenced"`
}

// TableStatus describes the kernel table.
type TableStatus struct {
	Name     string `json:"name"`
	Present  bool   `json:"present"`
	Priority int    `json:"priority"`
	// InSync is true when the kernel's table is what apply would write now.
	InSync bool     `json:"in_sync"`
	Drift  []string `json:"drift,omitempty"`
}

// NetworkStatus is one network and, if fenced, its section and rules.
type NetworkStatus struct {
	Name    string       `json:"name"`
	ID      string       `json:"id,omitempty"`
	Bridge  string       `json:"bridge"`
	Subnets []string     `json:"subnets"`
	Section int          `json:"section,omitempty"`
	Match   string       `json:"match,omitempty"`
	Rules   []RuleStatus `json:"rules,omitempty"`
}

// RuleStatus is one rule of a fenced network with its kernel counters,
// summed over the kernel rules it became (one per address family).
type RuleStatus struct {
	// ID is "egress 3", "host 1", "egress_default", "host_default" or "anti-spoofing".
	ID      string `json:"id"`
	Hook    string `json:"hook"`
	Index   int    `json:"index,omitempty"`
	Verdict string `json:"verdict"`
	// Match is what the rule matches, as written: "@private", "192.168.100.2 udp/53".
	Match   string `json:"match"`
	Comment string `json:"comment"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

func statusCmd(g *globalFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the networks fenced and per-rule packet counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pol, d, t, err := build(cmd.Context(), g)
			if err != nil {
				return err
			}
			st, err := (nft.Kernel{}).Read(t.Name)
			if err != nil {
				return err
			}
			s := makeStatus(pol, d, t, st)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			printStatus(cmd, s)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (schema: the Status type, documented in README.md)")
	return cmd
}

func subnetStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

func makeStatus(pol *policy.Policy, d *discovery, t *nft.Table, st *nft.State) Status {
	s := Status{Policy: pol.Source, Docker: d.FromDocker, Table: TableStatus{Name: t.Name, Present: st != nil, Priority: t.Priority}}
	s.Table.Drift = nft.Diff(t, st)
	s.Table.InSync = len(s.Table.Drift) == 0
	chains := map[string]*nft.ChainState{}
	if st != nil {
		for i := range st.Chains {
			chains[st.Chains[i].Name] = &st.Chains[i]
		}
	}
	for _, f := range t.Fenced {
		ns := NetworkStatus{Name: f.Network.Name, ID: f.Network.ID, Bridge: f.Network.Bridge, Subnets: subnetStrings(f.Network.Subnets), Section: f.Section.Index, Match: f.Section.Match.String()}
		for _, h := range []policy.Hook{policy.Egress, policy.Host} {
			chain := chains[f.Forward]
			if h == policy.Host {
				chain = chains[f.Input]
			}
			count := func(id string) (p, b uint64) {
				if chain == nil {
					return 0, 0
				}
				for _, r := range chain.Rules {
					if r.ID == id {
						p, b = p+r.Packets, b+r.Bytes
					}
				}
				return p, b
			}
			p, b := count("spoof")
			ns.Rules = append(ns.Rules, RuleStatus{ID: "anti-spoofing", Hook: h.String(), Verdict: "deny", Match: "source not in subnets", Packets: p, Bytes: b})
			for _, r := range f.Section.Rules(h) {
				p, b := count(r.ID())
				ns.Rules = append(ns.Rules, RuleStatus{ID: r.ID(), Hook: h.String(), Index: r.Index, Verdict: r.Verdict.String(), Match: ruleMatch(r), Comment: r.Comment, Packets: p, Bytes: b})
			}
			p, b = count("default")
			ns.Rules = append(ns.Rules, RuleStatus{ID: h.String() + "_default", Hook: h.String(), Verdict: f.Section.Default(h).String(), Match: "anything else", Packets: p, Bytes: b})
		}
		s.Networks = append(s.Networks, ns)
	}
	for _, n := range t.Unfenced {
		s.Unfenced = append(s.Unfenced, NetworkStatus{Name: n.Name, ID: n.ID, Bridge: n.Bridge, Subnets: subnetStrings(n.Subnets)})
	}
	return s
}

func printStatus(cmd *cobra.Command, s Status) {
	out := cmd.OutOrStdout()
	state := "absent: nothing is fenced (run dockerfence apply)"
	if s.Table.Present {
		state = fmt.Sprintf("present, hook priority %d", s.Table.Priority)
		if s.Table.InSync {
			state += ", matches the policy"
		} else {
			state += fmt.Sprintf(", differs from the policy in %d places (see dockerfence plan)", len(s.Table.Drift))
		}
	}
	fmt.Fprintf(out, "table inet %s: %s\npolicy: %s\n", s.Table.Name, state, s.Policy)
	if !s.Docker {
		fmt.Fprintln(out, "docker: not reachable; networks are the bridges found over netlink")
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tBRIDGE\tSUBNETS\tSECTION")
	for _, n := range s.Networks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d %s\n", orDash(n.Name), n.Bridge, strings.Join(n.Subnets, ","), n.Section, n.Match)
	}
	for _, n := range s.Unfenced {
		fmt.Fprintf(tw, "%s\t%s\t%s\tnone: not fenced\n", orDash(n.Name), n.Bridge, strings.Join(n.Subnets, ","))
	}
	tw.Flush()
	for _, n := range s.Networks {
		fmt.Fprintf(out, "\n%s (%s)\n", orDash(n.Name), n.Bridge)
		tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  RULE\tVERDICT\tMATCH\tPACKETS\tBYTES\tCOMMENT")
		for _, r := range n.Rules {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\n", r.ID, r.Verdict, r.Match, r.Packets, r.Bytes, r.Comment)
		}
		tw.Flush()
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ruleMatch renders what a rule matches: its addresses, protocol and ports.
func ruleMatch(r *policy.Rule) string {
	s := r.Addrs.Text
	if r.Proto != policy.ProtoAny {
		s += " " + string(r.Proto)
	}
	if len(r.Ports) > 0 {
		ports := make([]string, len(r.Ports))
		for i, p := range r.Ports {
			ports[i] = p.String()
		}
		if r.Proto == policy.ProtoAny {
			s += " tcp+udp"
		}
		s += "/" + strings.Join(ports, ",")
	}
	return s
}
