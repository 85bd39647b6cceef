package fence

import "github.com/dockerfence/dockerfence/policy"

// DefaultDNSQueue is the netfilter queue that DNS answers are held in
// (see DNSHold) unless the policy's settings name another.
const DefaultDNSQueue = 53

// namesSource returns, for a policy, the names lists that each of its
// rules' address specs uses. The policy model has no names yet (issue 18:
// lists of names and inline {names: [...]} specs come with the policy's
// names support), so no rule uses any; tests give rules names through
// it. It is a variable for those tests, which do not run in parallel.
var namesSource = func(*policy.Policy) func(*policy.Rule) []NamesRef { return nil }

// dnsQueueOf returns the queue that the policy holds DNS answers in.
func dnsQueueOf(*policy.Policy) uint16 { return DefaultDNSQueue }
