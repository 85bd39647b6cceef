package fence

import "github.com/dockerfence/dockerfence/policy"

// DefaultDNSQueue is the netfilter queue that DNS answers are held in
// (see DNSHold).
const DefaultDNSQueue = 53

// namesSource returns, for a policy, the names lists that each of its
// rules' address specs uses (policy.AddrSpec.Names: lists of names
// referenced as "@name" and inline {names: [...]}). It is a variable for
// tests, which do not run in parallel.
var namesSource = func(*policy.Policy) func(*policy.Rule) []NamesRef {
	return func(r *policy.Rule) []NamesRef {
		var out []NamesRef
		for _, nl := range r.Addrs.Names {
			ref := NamesRef{List: nl.Name}
			for _, p := range nl.Patterns {
				ref.Names = append(ref.Names, p.String())
			}
			out = append(out, ref)
		}
		return out
	}
}

// dnsQueueOf returns the queue that the policy holds DNS answers in.
func dnsQueueOf(*policy.Policy) uint16 { return DefaultDNSQueue }
