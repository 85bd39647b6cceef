package fence

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dockerfence/dockerfence/ipproto"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// NamesRef is a names list that an address spec uses: DNS names whose
// addresses the daemon learns from the answers containers get. List is
// the list's name; an inline {names: [...]} spec stands for a list of
// its own, named after its rule by namesSource.
type NamesRef struct {
	List  string
	Names []string
}

// NameSet is what the daemon needs to learn a names list's addresses:
// its names, the two runtime sets (with timeouts) that its rules look
// up, and who uses them.
type NameSet struct {
	List  string
	Names []string
	// Set4 and Set6 are the sets of its IPv4 and IPv6 addresses:
	// names_LIST_4 and names_LIST_6.
	Set4, Set6 string
	// Bridges are the bridges of the fenced networks whose rules (of the
	// network's section or of its containers) use the list; "*" stands
	// for the catch-all's bridges not known yet. Containers are the
	// containers (by name) whose own rules use it. Chains are the chains
	// whose rules look the sets up.
	Bridges    []string
	Containers []string
	Chains     []string
}

// DNSHold says which DNS answers the table holds in the kernel until the
// daemon has learned their addresses: answers (from port 53, UDP and
// TCP, in the reply direction) whose output interface is one of Bridges,
// in the forward hook (from resolvers the kernel routes, such as
// Docker's embedded resolver in the container's namespace) and in the
// output hook (from a resolver on the host itself, for each protocol on
// which no container publishes port 53: see hostDNSProtos), go to queue
// Queue, with bypass: with no daemon bound, they pass.
//
// The queries over UDP that those answers answer go to the same queue,
// so that the daemon, which reads it in order, knows each query before
// its answer and learns only from an answer that matches one (address,
// port, DNS ID and question): from the Bridges to the resolvers in the
// forward hook, and, when the host's answers over UDP are held, to the
// host itself in the input hook. Their rules sit in base chains of their
// own (QueryChains) that hook just after the table's others: an accept
// verdict of the queue ends the base chain the packet was queued from,
// so they must not skip the fence's rules, and they see only the queries
// that the fence let pass.
type DNSHold struct {
	Queue uint16
	// Bridges are the bridges whose answers are held; "docker0" and the
	// prefix "br-" stand for the catch-all's bridges not known yet.
	Bridges []string
	// CatchAll is set when the catch-all uses names: the answers to
	// every docker0 and br-* bridge are held.
	CatchAll bool
	// Chains names the base chains that hold the rules (ID
	// DNSHoldRuleID): "forward" and, unless containers publish port 53
	// on both TCP and UDP, "output".
	Chains []string
	// QueryChains names the base chains that hold the rules that queue
	// the queries (ID DNSQueryRuleID): "dnsq_forward" and "dnsq_input".
	QueryChains []string
}

// DNSHoldRuleID is the ID of the rules that queue DNS answers.
const DNSHoldRuleID = "dns hold"

// DNSQueryRuleID is the ID of the rules that queue DNS queries over UDP.
const DNSQueryRuleID = "dns query"

// Names of the base chains of the DNS queries (see DNSHold).
const (
	queryForwardChain = "dnsq_forward"
	queryInputChain   = "dnsq_input"
)

// outputChain is the output base chain, which the table has only when
// DNS answers are held.
const outputChain = "output"

// NamesTag is the tag of a names list's sets (nft.Set.Tag): "names "
// and a digest of its names, in any order and case.
func NamesTag(names []string) string {
	sorted := make([]string, len(names))
	for i, n := range names {
		sorted[i] = strings.ToLower(strings.TrimSuffix(n, "."))
	}
	slices.Sort(sorted)
	sum := sha256.Sum256([]byte(strings.Join(sorted, "\n")))
	return "names " + hex.EncodeToString(sum[:6])
}

// NameSetName names the set of a names list's addresses of one family.
func NameSetName(list string, v6 bool) string {
	if v6 {
		return "names_" + list + "_6"
	}
	return "names_" + list + "_4"
}

// nameMatches returns the matches of the destinations in names list ref
// (addresses learned at run time), adding its sets on first use, and
// records that chain (of bridges brs, "*" for the catch-all's, and of
// container ctr, if not "") uses them.
func (b *builder) nameMatches(ref NamesRef, chain string, brs []string, ctr string) (v4, v6 nft.Addr) {
	ns := b.nameSet(ref)
	add := func(list *[]string, s string) {
		if s != "" && !slices.Contains(*list, s) {
			*list = append(*list, s)
		}
	}
	add(&ns.Chains, chain)
	add(&ns.Containers, ctr)
	for _, br := range brs {
		add(&ns.Bridges, br)
	}
	return nft.Addr{Set: ns.Set4}, nft.Addr{V6: true, Set: ns.Set6}
}

// ruleBridges returns the bridges whose containers a rule judges: network
// n's, or, for the rules of container ctr, those of the fenced networks
// it is on; "*" stands for the catch-all's bridges not known yet.
func (b *builder) ruleBridges(n *policy.Network, ctr *Container) []string {
	// A container's rules get a network of its subnets as n, without a
	// bridge: its endpoints say which bridges.
	switch {
	case ctr == nil && n != nil:
		return []string{n.Bridge}
	case ctr == nil:
		return []string{"*"}
	}
	var out []string
	for _, e := range ctr.Endpoints {
		for _, f := range b.r.Fenced {
			if e.on(f.Network) && !slices.Contains(out, f.Network.Bridge) {
				out = append(out, f.Network.Bridge)
			}
		}
	}
	return out
}

// nameSet returns the NameSet of ref, adding it and its sets on first use.
func (b *builder) nameSet(ref NamesRef) *NameSet {
	for i := range b.r.NameSets {
		if b.r.NameSets[i].List == ref.List {
			return &b.r.NameSets[i]
		}
	}
	ns := NameSet{List: ref.List, Names: ref.Names, Set4: NameSetName(ref.List, false), Set6: NameSetName(ref.List, true)}
	for _, s := range []struct {
		name string
		key  nft.KeyType
	}{{ns.Set4, nft.KeyIPv4}, {ns.Set6, nft.KeyIPv6}} {
		// Tagged with its names: a list whose names were edited gets its
		// sets anew, without the addresses learned for the old ones.
		b.addSet(&nft.Set{Name: s.name, Key: s.key, Timeout: true, Owner: nft.OwnedByRuntime, Tag: NamesTag(ref.Names)})
	}
	b.r.NameSets = append(b.r.NameSets, ns)
	return &b.r.NameSets[len(b.r.NameSets)-1]
}

// nameRules returns the kernel rules of policy rule r for the names lists
// its spec uses (see policyRules): one per list and family, as r's
// protocol allows, with mk's tail, verdict and ID. n is the network whose
// rules they are, ctr the container whose they are (nil for a network's).
func (b *builder) nameRules(r *policy.Rule, d Direction, chain string, n *policy.Network, ctr *Container, layer ContainerLayer, mk func(...nft.Match) *nft.Rule) []*nft.Rule {
	if b.namesOf == nil || d.Inbound {
		return nil
	}
	name := ""
	if ctr != nil {
		name = ctr.Name
	}
	var out []*nft.Rule
	for _, ref := range b.namesOf(r) {
		v4, v6 := b.nameMatches(ref, chain, b.ruleBridges(n, ctr), name)
		if r.Proto != policy.ProtoICMPv6 {
			out = append(out, mk(v4))
		}
		if r.Proto != policy.ProtoICMP {
			out = append(out, mk(v6))
		}
	}
	if r.Verdict != policy.Allow || len(out) == 0 {
		return out
	}
	// A connection that a names rule allowed outlives its address's
	// element: the rule marks the connection, and a twin before it
	// allows the marked connections on the rule's protocol and ports,
	// as long as the rule is in the policy (taking it out still cuts
	// them).
	// One bit a layer: a connection crosses one chain of each layer (its
	// network's, its container section's, its label's), and what one
	// layer's names rule allowed must not pass another layer's twin.
	bit := uint32(NamesConnMark)
	switch layer {
	case LayerSection:
		bit = NamesConnMarkSection
	case LayerLabel:
		bit = NamesConnMarkLabel
	}
	for _, kr := range out {
		kr.SetCtMark = bit
	}
	twin := mk(nft.CtMark{Bits: bit})
	twin.Comment += " (connections it allowed, after their addresses expire)"
	return append([]*nft.Rule{twin}, out...)
}

// NamesConnMark, NamesConnMarkSection and NamesConnMarkLabel are the bits
// of the conntrack mark that a names rule of a network's section, of a
// container section and of a container's label sets on the connections
// it allows, so that they go on once the address's element expires (see
// nameRules).
const (
	NamesConnMark        = 0x40000000
	NamesConnMarkSection = 0x20000000
	NamesConnMarkLabel   = 0x10000000
)

// holdDNS adds the rules that hold DNS answers to the bridges whose rules
// use names (see DNSHold): first in the forward base chain, before its
// accept of replies, and, for the protocols in output (of TCP and UDP;
// see hostDNSProtos), in an output base chain of their own; and those
// that hold their queries, in base chains of their own. It does nothing
// when no rule uses names. It returns the base chains it adds, for the
// caller to put among the base chains.
func (b *builder) holdDNS(forward *nft.Chain, output []uint8) []*nft.Chain {
	if len(b.r.NameSets) == 0 {
		return nil
	}
	h := &DNSHold{Queue: b.dnsQueue}
	seen := map[string]bool{}
	for _, ns := range b.r.NameSets {
		for _, br := range ns.Bridges {
			if br == "*" {
				h.CatchAll = true
				continue
			}
			if !seen[br] {
				seen[br] = true
				h.Bridges = append(h.Bridges, br)
			}
		}
	}
	sort.Strings(h.Bridges)
	ifs := make([]nft.IfName, 0, len(h.Bridges)+2)
	for _, br := range h.Bridges {
		ifs = append(ifs, nft.IfName{Name: br, Out: true})
	}
	if h.CatchAll {
		// Known bridges not among them are held too, and what their
		// answers teach goes into the lists' sets as any other answer's
		// does: the learner does not look at the bridge (the sets are
		// per list, shared by every network that uses it).
		if !seen["docker0"] {
			ifs = append(ifs, nft.IfName{Name: "docker0", Out: true})
			h.Bridges = append(h.Bridges, "docker0")
		}
		ifs = append(ifs, nft.IfName{Name: "br-", Prefix: true, Out: true})
		h.Bridges = append(h.Bridges, "br-")
	}
	rules := func(protos []uint8, from []*nft.Addr) []*nft.Rule {
		out := make([]*nft.Rule, 0, len(ifs))
		for _, m := range ifs {
			for _, a := range from {
				ms := []nft.Match{nft.CtReply{}, nft.L4Proto{Protos: protos}, nft.SPort{Range: nft.PortRange{First: 53, Last: 53}}, m}
				if a != nil {
					ms = append(ms, *a)
				}
				out = append(out, &nft.Rule{
					Matches: ms, Counter: true, Verdict: nft.Verdict{Kind: nft.Queue, QueueNum: h.Queue, Bypass: true},
					ID: DNSHoldRuleID, Comment: "DNS answers held until their names' addresses are learned",
				})
			}
		}
		return out
	}
	// Only the host's resolvers (the built-in list @resolvers, which
	// Docker's embedded resolver forwards to) teach addresses through
	// the forward hook: an answer from any other server on port 53 is
	// one a container may have asked of a server of its own, which
	// could teach it any address for a listed name. It passes unheld
	// and unlearned.
	var from []*nft.Addr
	if l := b.pol.Lists["resolvers"]; l != nil {
		v4, v6 := b.addrMatches("dns_resolvers", l.Prefixes, true, false)
		for _, a := range []*nft.Addr{v4, v6} {
			if a != nil {
				from = append(from, a)
			}
		}
	}
	if len(from) == 0 {
		b.r.Warnings = append(b.r.Warnings, "rules use DNS names, but the host has no resolver (list @resolvers is empty): only answers of a resolver on the host itself teach their addresses")
	}
	// And only answers that came in by the interface the host routes the
	// resolver through (fib saddr . iif oif, as a strict reverse path
	// check): a container that sends itself an answer from the
	// resolver's address, through its gateway (routed back out of the
	// same bridge: hairpin, or IPv6), makes a reply of conntrack's for
	// its own query, whose port and ID it knows, and would teach itself
	// any address.
	held := rules([]uint8{ipproto.TCP, ipproto.UDP}, from)
	for _, r := range held {
		r.Matches = append(r.Matches, nft.Fib{Src: true})
	}
	forward.Rules = append(held, forward.Rules...)
	h.Chains = []string{forward.Name}
	// The queries: from the same bridges (as input interface), to the
	// same resolvers, or to the host itself. Only datagrams that can be
	// a query (a DNS header and a question) are queued, and only within
	// a rate per source address: queries and answers share the queue
	// and its reader, so a container that floods the resolver's port 53
	// would otherwise fill the queue (which lets what it cannot take
	// pass unheld and unlearned) and crowd out its neighbours' queries.
	// Beyond its rate a source's queries pass unqueued, so their
	// answers teach nothing: learning fails closed for that source only.
	meters := [2]*nft.Meter{}
	for i, fam := range []struct {
		set string
		key nft.KeyType
		sel nft.Selector
	}{{dnsQueryMeterSet4, nft.KeyIPv4, nft.SelSAddr4}, {dnsQueryMeterSet6, nft.KeyIPv6, nft.SelSAddr6}} {
		if _, ok := b.sets[fam.set]; !ok {
			b.addSet(&nft.Set{Name: fam.set, Key: fam.key, Dynamic: true, Timeout: true, Owner: nft.OwnedByRuntime})
		}
		meters[i] = &nft.Meter{Set: fam.set, Key: fam.sel, Rate: dnsQueryRate, Timeout: dnsQueryMeterTimeout}
	}
	queries := func(to []*nft.Addr) []*nft.Rule {
		out := make([]*nft.Rule, 0, 2*len(ifs))
		for _, m := range ifs {
			m.Out = false
			for _, a := range to {
				// A meter's key implies its family: the rule for a
				// resolver's address takes that family's meter, the rule
				// for the host itself one of each.
				fams := meters[:]
				if a != nil && a.V6 {
					fams = meters[1:]
				} else if a != nil {
					fams = meters[:1]
				}
				for _, meter := range fams {
					ms := []nft.Match{nft.CtOriginal{}, nft.L4Proto{Protos: []uint8{ipproto.UDP}}, nft.DPort{Range: nft.PortRange{First: 53, Last: 53}}, nft.UDPLength{Min: minDNSQueryLength}, m}
					if a != nil {
						ms = append(ms, *a)
					}
					out = append(out, &nft.Rule{
						Matches: ms, Meter: meter, Counter: true, Verdict: nft.Verdict{Kind: nft.Queue, QueueNum: h.Queue, Bypass: true},
						ID: DNSQueryRuleID, Comment: "DNS queries, which the answers held must match",
					})
				}
			}
		}
		return out
	}
	var to []*nft.Addr
	for _, a := range from {
		d := *a
		d.Src = false
		to = append(to, &d)
	}
	b.r.DNSHold = h
	chains := []*nft.Chain{{Name: queryForwardChain, Hook: nft.HookForward, PriorityOffset: 1, Rules: queries(to)}}
	h.QueryChains = []string{queryForwardChain}
	if slices.Contains(output, ipproto.UDP) {
		// The host's answers over UDP are held: so are the queries
		// they answer.
		chains = append(chains, &nft.Chain{Name: queryInputChain, Hook: nft.HookInput, PriorityOffset: 1, Rules: queries([]*nft.Addr{nil})})
		h.QueryChains = append(h.QueryChains, queryInputChain)
	}
	if len(output) > 0 {
		h.Chains = append(h.Chains, outputChain)
		chains = append([]*nft.Chain{{Name: outputChain, Hook: nft.HookOutput, Rules: rules(output, []*nft.Addr{nil})}}, chains...)
	}
	return chains
}

// Names of the meter sets that limit the DNS queries queued per source
// address (see holdDNS).
const (
	dnsQueryMeterSet4 = "dnsq_4"
	dnsQueryMeterSet6 = "dnsq_6"
)

// dnsQueryRate is how many DNS queries a second (burst the same) one
// source address may have queued for the learner. A lookup is usually
// two queries (A and AAAA), so a program that resolves hundreds of names
// at once (a package manager, a crawler) stays within it, while a flood
// of that rate is a small part of what the learner reads a second. A
// source beyond it does not learn: its connections to the names it asked
// for are denied until it slows down.
const dnsQueryRate = 1000

// dnsQueryMeterTimeout is how long a source's query limit is kept after
// its last query: its burst is back in full after a second without one.
const dnsQueryMeterTimeout = 10 * time.Second

// minDNSQueryLength is the shortest UDP datagram (by the UDP length
// field: its header's 8 bytes and the payload) that can be a DNS query:
// a DNS header of 12 bytes and a question of 5 at least (the root name's
// one byte, type and class).
const minDNSQueryLength = 8 + 12 + 5

// Learned holds addresses learned from DNS answers, by names list.
type Learned map[string][]netip.Addr

// WithLearned returns the Result with the given addresses in its names
// lists' sets (by list name), as the daemon learned them, for explain and
// tests: the tracer then finds a destination there as the kernel does.
// The Result's own table is not changed; the one returned must not be
// applied (its learned elements would stay without timeouts).
func (r *Result) WithLearned(learned Learned) *Result {
	out := *r
	t := *r.Table
	t.Sets = slices.Clone(r.Table.Sets)
	out.Table = &t
	for i, s := range t.Sets {
		for _, ns := range r.NameSets {
			if s.Name != ns.Set4 && s.Name != ns.Set6 {
				continue
			}
			var pfx []netip.Prefix
			for _, a := range learned[ns.List] {
				if a.Is4() == (s.Name == ns.Set4) {
					pfx = append(pfx, netip.PrefixFrom(a, a.BitLen()))
				}
			}
			c := *s
			c.Ranges = nft.Ranges(pfx)
			t.Sets[i] = &c
		}
	}
	return &out
}

// namesListOf returns the names list whose set a rule looks up, "" if
// none.
func (r *Result) namesListOf(rule *nft.Rule) string {
	for _, m := range rule.Matches {
		a, ok := m.(nft.Addr)
		if !ok || a.Set == "" {
			continue
		}
		for _, ns := range r.NameSets {
			if a.Set == ns.Set4 || a.Set == ns.Set6 {
				return ns.List
			}
		}
	}
	return ""
}
