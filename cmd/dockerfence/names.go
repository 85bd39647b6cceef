package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/dockerfence/dockerfence/daemon"
	"github.com/dockerfence/dockerfence/dnslearn"
	"github.com/dockerfence/dockerfence/dnsname"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"github.com/spf13/cobra"
)

// resolveTimeout bounds the lookups of a one-shot apply and of explain.
const resolveTimeout = 10 * time.Second

// hostResolver is the resolver of the host: the name servers of
// --resolv-conf, asked in turn.
func hostResolver(g *globalFlags) (*net.Resolver, error) {
	ns, err := policy.ReadResolvers(g.resolvConf)
	if err != nil {
		return nil, fmt.Errorf("the host's resolver: %w", err)
	}
	if len(ns) == 0 {
		return nil, fmt.Errorf("the host's resolver: %s names no nameserver", g.resolvConf)
	}
	var servers []string
	for _, p := range ns {
		servers = append(servers, netip.AddrPortFrom(p.Addr(), 53).String())
	}
	return dnslearn.ResolverFor(servers), nil
}

// fillNames is the names part of a one-shot apply: it resolves the names
// of the lists the table uses once through the host's resolver, adds
// their addresses to the lists' sets in one transaction, each for
// dns_max_ttl, and says what it did, and that only run keeps them
// current.
func fillNames(ctx context.Context, out io.Writer, g *globalFlags, pol *policy.Policy, t *fence.Result) error {
	if len(t.NameSets) == 0 {
		return nil
	}
	r, err := hostResolver(g)
	if err != nil {
		return err
	}
	lists := map[string][]dnsname.Pattern{}
	for _, ns := range t.NameSets {
		for _, n := range ns.Names {
			p, err := dnsname.ParsePattern(n)
			if err != nil {
				return fmt.Errorf("names list %s: %w", ns.List, err)
			}
			lists[ns.List] = append(lists[ns.List], p)
		}
	}
	_, ttl, _ := daemon.NamesSettings(pol)
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	res, err := dnslearn.ResolveOnce(ctx, r, lists, ttl)
	if err != nil {
		return fmt.Errorf("resolving the names: %w", err)
	}
	var elems []dnslearn.Element
	for _, l := range res {
		for _, e := range l.Elements {
			// An address an earlier apply (or run) put in is renewed to
			// the new timeout on every kernel (see nft.RefreshTx).
			e.Refresh = true
			elems = append(elems, e)
		}
	}
	if err := (nft.Kernel{}).Commit(daemon.NameElementsTx(t, elems)); err != nil {
		return fmt.Errorf("adding the names' addresses: %w", err)
	}
	for _, l := range res {
		var parts []string
		parts = append(parts, fmt.Sprintf("%d addresses for %s", len(l.Elements), fmtDur(ttl)))
		if len(l.Wildcards) > 0 {
			parts = append(parts, "not resolvable: "+strings.Join(l.Wildcards, ", ")+" (only answers seen by run teach those)")
		}
		if len(l.Failed) > 0 {
			var fs []string
			for n, err := range l.Failed {
				fs = append(fs, n+": "+err.Error())
			}
			sort.Strings(fs)
			parts = append(parts, "failed: "+strings.Join(fs, "; "))
		}
		fmt.Fprintf(out, "names list %s resolved once through the host's resolver: %s\n", l.Key, strings.Join(parts, "; "))
	}
	fmt.Fprintln(out, "only dockerfence run keeps names current: it learns the addresses from the DNS answers the containers get")
	return nil
}

// fmtDur renders d as a policy writes it: "24h", "60s".
func fmtDur(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	s = strings.TrimSuffix(s, "0m")
	if s == "" {
		return "0s"
	}
	return s
}

// nameDestination reads explain's --to as NAME[:PORT][/PROTO], a DNS name
// rather than an address, and returns the name and the function that
// writes --to for one of its addresses.
func nameDestination(to string) (string, func(netip.Addr) string, bool) {
	rest, proto, hasProto := strings.Cut(to, "/")
	host, port, hasPort := strings.Cut(rest, ":")
	if strings.HasPrefix(rest, "[") || strings.Count(rest, ":") > 1 {
		return "", nil, false // an IPv6 address
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "", nil, false
	}
	name, ok := dnsname.Canonical(host)
	if !ok || !strings.Contains(name, ".") {
		return "", nil, false
	}
	return name, func(a netip.Addr) string {
		s := a.String()
		if hasPort {
			if a.Is6() {
				s = "[" + s + "]"
			}
			s += ":" + port
		}
		if hasProto {
			s += "/" + proto
		}
		return s
	}, true
}

// nameExplanation is explain --to NAME --json: the name, the lists of
// names it matches, and the explanation of each of its addresses.
type nameExplanation struct {
	Name string `json:"name"`
	// Lists are the policy's names lists whose patterns match Name: as if
	// a container had looked it up, its addresses are in their sets.
	Lists        []string             `json:"lists"`
	Explanations []status.Explanation `json:"explanations"`
}

// explainName resolves name through the host's resolver and explains the
// packet to each of its addresses, as if a container had looked the name
// up: the addresses are in the sets of the names lists whose patterns
// match it.
func explainName(cmd *cobra.Command, g *globalFlags, pol *policy.Policy, name string, to func(netip.Addr) string, asJSON bool,
	one func(string, *fence.Learned) (*status.Explain, error)) error {
	r, err := hostResolver(g)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), resolveTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return fmt.Errorf("--to %s: %w", name, err)
	}
	m := dnsname.NewMatcher()
	for _, l := range pol.NameLists() {
		for _, p := range l.Patterns {
			m.Add(p, l.Name)
		}
	}
	lists := m.Match(name)
	learned := fence.Learned{}
	for _, l := range lists {
		for _, a := range addrs {
			learned[l] = append(learned[l], a.Unmap())
		}
	}
	out := nameExplanation{Name: name, Lists: lists}
	var texts []string
	for _, a := range addrs {
		x, err := one(to(a.Unmap()), &learned)
		if err != nil {
			return err
		}
		out.Explanations = append(out.Explanations, x.Explanation())
		texts = append(texts, x.Text())
	}
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	w := cmd.OutOrStdout()
	var as []string
	for _, a := range addrs {
		as = append(as, a.Unmap().String())
	}
	fmt.Fprintf(w, "%s resolves (through the host's resolver) to %s\n", name, strings.Join(as, ", "))
	if len(lists) == 0 {
		fmt.Fprintf(w, "no names list of the policy matches %s: a lookup teaches nothing\n", name)
	} else {
		fmt.Fprintf(w, "names lists matching it: %s; judged as after a container's lookup, with its addresses learned\n", strings.Join(lists, ", "))
	}
	for i, t := range texts {
		fmt.Fprintf(w, "\n%s:\n%s", as[i], t)
	}
	return nil
}
