package status

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the status as people read it: the table, the policy, the
// daemon and the last apply, then a table of networks, why those that
// cannot be fenced cannot, and, while the table is present, a table of
// rules per fenced network and one for the catch-all.
func WriteText(out io.Writer, s Status) {
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
	if s.Table.Netdev != "" {
		fmt.Fprintf(out, "table netdev %s: %s\n", s.Table.Name, s.Table.Netdev)
	}
	if s.Table.Bridge != "" {
		fmt.Fprintf(out, "table bridge %s: %s\n", s.Table.Name, s.Table.Bridge)
	}
	if s.Table.Protection != "" {
		fmt.Fprintf(out, "protection: %s\n", s.Table.Protection)
	}
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
	if s.TunnelDenied > 0 {
		fmt.Fprintf(out, "tunnels:    %d packets decapsulated on this host from containers' packets denied\n", s.TunnelDenied)
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(out, "warning:    %s\n", w)
	}
	fmt.Fprintln(out)
	if !s.Table.Present {
		// No counters to show: what the policy would fence, not what is.
		fmt.Fprintln(out, "networks apply would fence (none is fenced now):")
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tBRIDGE\tSUBNETS\tSECTION\tDENIED")
	for _, n := range s.Networks {
		denied := fmt.Sprint(n.Denied)
		switch {
		case !s.Table.Present:
			denied = "-"
		case n.CatchAll:
			denied += " (catch-all, shared)"
		case n.Unjudged:
			denied = "- (not in the table)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d %s\t%s\n", OrDash(n.Name), n.Bridge, strings.Join(n.Subnets, ","), n.Section, n.Match, denied)
	}
	for _, n := range s.Unfenced {
		fmt.Fprintf(tw, "%s\t%s\t%s\tnone: not fenced\t-\n", OrDash(n.Name), n.Bridge, strings.Join(n.Subnets, ","))
	}
	for _, n := range s.NotFenceable {
		fmt.Fprintf(tw, "%s\t-\t%s\tnot fenceable: %s\t-\n", OrDash(n.Name), OrDash(strings.Join(n.Subnets, ",")), n.Driver)
	}
	tw.Flush()
	if len(s.NotFenceable) > 0 {
		fmt.Fprintln(out, "\nnot fenceable: Docker networks without a bridge on this host, which dockerfence cannot fence:")
		tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
		for _, n := range s.NotFenceable {
			sec := ""
			if n.Section != 0 {
				sec = fmt.Sprintf("; section %d %s matches it but cannot fence it", n.Section, n.Match)
			}
			fmt.Fprintf(tw, "  %s\t%s%s\n", OrDash(n.Name), n.Reason, sec)
		}
		tw.Flush()
	}
	for _, n := range s.Networks {
		switch {
		case n.CatchAll:
			fmt.Fprintf(out, "\n%s (%s): judged by the catch-all (it appeared after the last apply); see its rules below\n", OrDash(n.Name), n.Bridge)
		case n.Unjudged:
			fmt.Fprintf(out, "\n%s (%s): not in the kernel's table, and no catch-all covers its bridge: not fenced until dockerfence apply\n", OrDash(n.Name), n.Bridge)
		case len(n.Rules) > 0:
			fmt.Fprintf(out, "\n%s (%s)\n", OrDash(n.Name), n.Bridge)
			writeRules(out, n.Rules)
		}
	}
	for _, n := range s.Networks {
		if n.Held > 0 {
			fmt.Fprintf(out, "\n%s (%s): %d packets held: sent from addresses no known container had yet\n", OrDash(n.Name), n.Bridge, n.Held)
		}
	}
	for _, c := range s.Containers {
		what := "no section"
		if c.Section > 0 {
			what = fmt.Sprintf("container section %d %s", c.Section, c.Match)
		}
		switch {
		case c.LabelError != "":
			what += "; label dockerfence.egress does not parse, so it is cut off: " + c.LabelError
		case c.LabelRules > 0:
			what += fmt.Sprintf("; label dockerfence.egress: %d rules", c.LabelRules)
		}
		fmt.Fprintf(out, "\ncontainer %s (%s): %s; %d denied\n", c.Name, shortID(c.ID), what, c.Denied)
		writeRules(out, c.Rules)
	}
	if len(s.Published) > 0 {
		fmt.Fprintln(out, "\npublished ports (who the ingress rules let reach them; every layer must allow):")
		tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  CONTAINER\tNETWORK\tPORT\tREACH\tDENIED\tRULES")
		for _, p := range s.Published {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\n", p.Container, p.Network, publishedLine(p), reachText(p), p.Denied, strings.Join(p.Rules, "; "))
		}
		tw.Flush()
	}
	for _, n := range s.Names {
		fmt.Fprintf(out, "\nnames list %s [%s]: %d addresses learned, %d packets matched by its rules (sets %s)\n",
			n.List, strings.Join(n.Patterns, ", "), len(n.Learned), n.Hits, strings.Join(n.Sets, ", "))
		if len(n.Learned) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "  ADDRESS\tNAME\tTTL LEFT\tIN KERNEL")
		for _, l := range n.Learned {
			name := l.Name
			if l.Inherited {
				name = "(in the set when the daemon started)"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%v\n", l.Addr, name, time.Duration(l.TTLLeft*float64(time.Second)).Round(time.Second), l.InKernel)
		}
		tw.Flush()
	}
	if ca := s.CatchAll; ca != nil {
		now := "none now"
		if len(ca.Bridges) > 0 {
			now = "now " + strings.Join(ca.Bridges, ", ")
		}
		fmt.Fprintf(out, "\ncatch-all: section %d %s, for docker0 and br-* bridges not known at the last apply (%s); counters shared by every bridge under it, %d denied\n", ca.Section, ca.Match, now, ca.Denied)
		writeRules(out, ca.Rules)
	}
}

// writeRules writes a table of rules and their counters.
func writeRules(out io.Writer, rules []RuleStatus) {
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  RULE\tVERDICT\tMATCH\tPACKETS\tBYTES\tCOMMENT")
	for _, r := range rules {
		id := r.ID
		if id == "anti-spoofing" { // once per hook
			id += " (" + r.Hook + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%s\n", id, r.Verdict, r.Match, r.Packets, r.Bytes, r.Comment)
	}
	tw.Flush()
}

// applyLine renders an apply: "12:04:05 by run (docker: 2 Docker events): applied in 3.1 ms".
func applyLine(a *Apply) string {
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

// WriteJSON prints s as `dockerfence status --json` does, and the daemon's
// StatusPath answers: the Status schema, indented by two spaces.
func WriteJSON(out io.Writer, s Status) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// OrDash renders an empty string as "-".
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortID is a container ID as docker ps shows it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
