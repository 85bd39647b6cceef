package dnslearn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"

	"github.com/dockerfence/dockerfence/dnsname"
)

// Resolved is what ResolveOnce found for one name list.
type Resolved struct {
	Key string
	// Elements are the addresses of its names, each with the timeout
	// given to ResolveOnce.
	Elements []Element
	// Wildcards are its patterns "*.example.com": no lookup can list the
	// names below a domain, so only answers that the daemon sees learn
	// them.
	Wildcards []string
	// Failed are the names that did not resolve, with the resolver's error.
	Failed map[string]error
}

// Lookuper resolves a host name to its addresses: *net.Resolver.
type Lookuper interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ResolveOnce resolves the names of each list once through r (the host's
// resolver), for a one-shot apply: the addresses of every name that is
// not a wildcard, with the timeout timeout (the resolver does not say the
// records' TTLs). Lists are keyed as the learner's Rules are. It returns
// an error only if ctx ends.
func ResolveOnce(ctx context.Context, r Lookuper, lists map[string][]dnsname.Pattern, timeout time.Duration) ([]Resolved, error) {
	keys := make([]string, 0, len(lists))
	for k := range lists {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Resolved
	for _, k := range keys {
		res := Resolved{Key: k, Failed: map[string]error{}}
		seen := map[netip.Addr]bool{}
		for _, p := range lists[k] {
			if p.Wildcard() {
				res.Wildcards = append(res.Wildcards, p.String())
				continue
			}
			// Fully qualified: no search domain of the host's is tried.
			addrs, err := r.LookupNetIP(ctx, "ip", p.String()+".")
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var dnsErr *net.DNSError
			switch {
			case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
				res.Failed[p.String()] = fmt.Errorf("no such name")
				continue
			case err != nil:
				res.Failed[p.String()] = err
				continue
			}
			for _, a := range addrs {
				a = a.Unmap()
				if a.IsUnspecified() || seen[a] {
					continue
				}
				seen[a] = true
				res.Elements = append(res.Elements, Element{Key: k, Addr: a, Timeout: timeout})
			}
		}
		out = append(out, res)
	}
	return out, nil
}

// ResolverFor returns a resolver that asks servers ("host:port", e.g. the
// name servers of the resolv.conf that --resolv-conf names) in turn,
// whatever file the process's own resolver would read.
func ResolverFor(servers []string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		var last error
		for _, s := range servers {
			c, err := d.DialContext(ctx, network, s)
			if err == nil {
				return c, nil
			}
			last = err
		}
		if last == nil {
			last = errors.New("no name servers")
		}
		return nil, last
	}}
}
