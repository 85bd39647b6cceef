package main

import (
	"context"
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
		elems = append(elems, l.Elements...)
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
