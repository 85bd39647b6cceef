// Package status describes what dockerfence fences and what its rules have
// counted, in the stable schema of `dockerfence status --json`.
//
// Make is pure: it joins the policy, the table built from it and the state
// read back from the kernel.
package status

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// Status is the JSON schema of `dockerfence status --json`. Fields are only
// ever added, never renamed or removed.
type Status struct {
	// State is the table's state as `dockerfence status` exits with it:
	// StateInSync (the table is present and equal to what apply would
	// write now, exit 0), StateAbsent (no table: nothing is fenced, exit
	// 3) or StateDiffers (present but not equal, or not known to be equal
	// while the daemon keeps it until Docker answers, exit 4).
	State string `json:"state"`
	// ExitCode is the exit code of `dockerfence status` for State.
	ExitCode int         `json:"exit_code"`
	Table    TableStatus `json:"table"`
	// Policy is the policy file in force, or "(embedded default)".
	Policy string `json:"policy"`
	// Mode is "enforce" or "audit".
	Mode string `json:"mode"`
	// Docker says whether the networks came from Docker (false: from the
	// bridges found over netlink).
	Docker bool `json:"docker"`
	// Source says where the networks came from: "docker", "docker (last
	// known)", "netlink", or "kept (Docker has not answered)".
	Source string `json:"source"`
	// Networks are the networks the policy fences, as apply would fence
	// them now. While the table is absent they have no rules: they are
	// what apply would fence, and nothing is.
	Networks []NetworkStatus `json:"networks"`
	Unfenced []NetworkStatus `json:"unfenced"`
	// NotFenceable lists Docker's networks that dockerfence cannot fence,
	// those of other drivers than bridge (macvlan, ipvlan, host, null,
	// overlay, ...), whether a section matches them or not.
	NotFenceable []NotFenceableStatus `json:"not_fenceable"`
	// Warnings are what apply warned of when it built this table: what the
	// policy leaves unfenced (an address family a network has and its
	// deny rules leave out, tunnels the host rules let in), networks
	// skipped, and the policy's own warnings. Empty, never null, if none.
	Warnings []string `json:"warnings"`
	// CatchAll is the catch-all of the kernel's table: the chains that
	// judge the docker0 and br-* bridges its dispatch maps do not hold
	// (those that appeared after the last apply), by the {name: "*"}
	// section. Nil if the policy has no such section or the table is
	// absent.
	CatchAll *CatchAllStatus `json:"catch_all"`
	// Containers are the containers that rules of their own judge (a
	// container section, their label dockerfence.egress), with those
	// rules' counters; empty while the table is absent.
	Containers []ContainerStatus `json:"containers"`
	// Published are the ports Docker publishes for the containers of the
	// fenced networks (docker run -p), with who the ingress rules let
	// reach each; empty when Docker is not reachable.
	Published []PublishedStatus `json:"published"`
	// Names are the lists of DNS names the table uses, with the addresses
	// the daemon learned for them; set only by `dockerfence run`.
	Names []NameListStatus `json:"names,omitempty"`
	// TunnelDenied counts the packets the tunnel fence denied: what
	// tunnels on the host decapsulated from containers' packets.
	TunnelDenied uint64 `json:"tunnel_denied"`
	// LastApply is the last apply that changed the table or failed, by
	// `dockerfence apply` or by the daemon; nil if none is known.
	LastApply *Apply `json:"last_apply"`
	// Daemon is set when the status comes from `dockerfence run`.
	Daemon *Daemon `json:"daemon,omitempty"`
}

// NameListStatus is a list of DNS names and what the daemon learned for it.
type NameListStatus struct {
	// List is the list's name (for an inline list, "inline." and a hash).
	List string `json:"list"`
	// Patterns are its names, "*.example.com" for every name below.
	Patterns []string `json:"patterns"`
	// Sets are the kernel sets of its learned addresses (IPv4, IPv6).
	Sets []string `json:"sets"`
	// Learned are the addresses learned and not expired, by address.
	Learned []LearnedAddr `json:"learned"`
	// Hits are the packets the rules that use the list matched, from the
	// kernel's counters: "network rule: packets".
	Hits uint64 `json:"hits"`
}

// LearnedAddr is an address learned from a DNS answer.
type LearnedAddr struct {
	Addr string `json:"addr"`
	// Name is the question's name of the answer that taught it last.
	Name string `json:"name"`
	// Learned is when; TTLLeft the seconds until its element expires.
	Learned time.Time `json:"learned"`
	TTLLeft float64   `json:"ttl_left_s"`
	// InKernel is false if the address is not in the list's set in the
	// kernel (it expired early, or someone deleted it).
	InKernel bool `json:"in_kernel"`
	// Inherited is set for an address the set held when the daemon
	// started (an earlier daemon's, or a one-shot apply's): its Name and
	// Learned are not known.
	Inherited bool `json:"inherited,omitempty"`
}

// TableStatus describes the kernel table.
type TableStatus struct {
	Name     string `json:"name"`
	Present  bool   `json:"present"`
	Priority int    `json:"priority"`
	// InSync is true when the kernel's table is what apply would write now.
	InSync bool     `json:"in_sync"`
	Drift  []string `json:"drift,omitempty"`
	// Flags are the table's flags as the kernel has them ("owner,persist",
	// "persist", "" for none); OwnerPort is the netlink port of the
	// owner's socket (flag owner), the owner's pid for its first socket;
	// Protection says in a sentence what protects the table. All three
	// are empty when the table is absent.
	Flags      string `json:"flags,omitempty"`
	OwnerPort  uint32 `json:"owner_port,omitempty"`
	Protection string `json:"protection,omitempty"`
	// Netdev says in a few words what the netdev table of the same name
	// holds (nft.Table.Netdev: the identity checks of ARP and Ethernet
	// sources at containers' ports): "present, N port chains", or
	// "absent"; "" when the policy wants none and the kernel has none, or
	// the kernel's was not read. Its drift is in Drift ("netdev: ...").
	Netdev string `json:"netdev,omitempty"`
	// Bridge says the same of the bridge table of the same name
	// (nft.Table.Bridge: the claims of known containers' addresses and
	// MACs, checked on every bridge port): "present, N ports' claims",
	// or "absent". Its drift is in Drift ("bridge: ...").
	Bridge string `json:"bridge,omitempty"`
}

// SetKernel fills the fields of ts that the kernel's table st says: its
// flags, owner and protection.
func (ts *TableStatus) SetKernel(st *nft.State) {
	ts.Present = st != nil
	if st == nil {
		return
	}
	if st.Flags != 0 {
		ts.Flags = st.Flags.String()
	}
	ts.OwnerPort = st.Owner
	ts.Protection = st.Protection()
}

// NetworkStatus is one network and, if fenced, its section and rules.
type NetworkStatus struct {
	Name    string   `json:"name"`
	ID      string   `json:"id,omitempty"`
	Bridge  string   `json:"bridge"`
	Subnets []string `json:"subnets"`
	// Section is the 1-based index of the policy section that fences the
	// network, and Match that section's match.
	Section int    `json:"section,omitempty"`
	Match   string `json:"match,omitempty"`
	// Denied sums the packets of the network's deny rules (would-be
	// denials in audit mode).
	Denied uint64 `json:"denied"`
	// Held counts the packets of the network's containers that no one had
	// classified yet, dropped by the container layer (see Containers).
	Held uint64 `json:"held,omitempty"`
	// CatchAll is set when the kernel's table judges the network's
	// packets by the catch-all, not by a chain of its own: the network
	// appeared after the last apply. Denied is then the catch-all's, shared
	// by every bridge under it, and Rules are left out (see
	// Status.CatchAll).
	CatchAll bool `json:"catch_all,omitempty"`
	// Unjudged is set when the kernel's table judges none of the
	// network's packets: it has no chain for the network's bridge and no
	// catch-all covers it (the network appeared after the last apply, on a
	// bridge not named docker0 or br-*). Rules are then left out, and
	// Denied is 0.
	Unjudged bool         `json:"unjudged,omitempty"`
	Rules    []RuleStatus `json:"rules,omitempty"`
}

// CatchAllStatus is the catch-all of the kernel's table and its counters.
type CatchAllStatus struct {
	// Section is the 1-based index of the {name: "*"} section, Match its
	// match.
	Section int    `json:"section"`
	Match   string `json:"match"`
	// Bridges are the bridges of networks found now that the kernel's
	// table judges by the catch-all; empty, never null, if none.
	Bridges []string `json:"bridges"`
	// Denied sums the packets of the catch-all's deny rules, for every
	// bridge under it: the kernel counts them together.
	Denied uint64       `json:"denied"`
	Rules  []RuleStatus `json:"rules"`
}

// NotFenceableStatus is a Docker network that dockerfence cannot fence, and
// why.
type NotFenceableStatus struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
	// Driver is the network's Docker driver, such as "macvlan".
	Driver  string   `json:"driver"`
	Subnets []string `json:"subnets"`
	// Section is the 1-based index of the first section whose match fits
	// the network, and Match that section's match; they are left out when
	// none fits. That section does not fence the network.
	Section int    `json:"section,omitempty"`
	Match   string `json:"match,omitempty"`
	// Reason says why, starting with the driver: "macvlan: containers talk
	// to the LAN directly through the parent interface, ...".
	Reason string `json:"reason"`
}

// RuleStatus is one rule of a fenced network with its kernel counters,
// summed over the kernel rules it became (one per address family).
type RuleStatus struct {
	// ID is "egress 3", "host 1", "egress_default", "host_default" or
	// "anti-spoofing" (the last one once per hook).
	ID   string `json:"id"`
	Hook string `json:"hook"`
	// Index is the rule's 1-based position in its hook's list, 0 for the
	// defaults and anti-spoofing.
	Index int `json:"index,omitempty"`
	// Verdict is "allow", "deny", or "would deny" for a deny in audit mode.
	Verdict string `json:"verdict"`
	// Match is what the rule matches, as written: "@private", "192.168.100.2 udp/53".
	Match string `json:"match"`
	// Comment is the rule's comment from the policy, empty if it has none.
	Comment string `json:"comment"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Apply is the outcome of one apply.
type Apply struct {
	Time time.Time `json:"time"`
	// By is "apply" or "run".
	By string `json:"by"`
	// Trigger is what made the daemon sync ("start", "docker", "kernel",
	// "monitor", "reload", "resync", "retry"); empty for `dockerfence apply`.
	Trigger string `json:"trigger,omitempty"`
	// Reason is the trigger in words.
	Reason string `json:"reason,omitempty"`
	// Result is "applied", "up to date" or "failed".
	Result string `json:"result"`
	Error  string `json:"error,omitempty"`
	// TookMS is how long the sync took, in milliseconds.
	TookMS float64 `json:"took_ms"`
	Table  string  `json:"table"`
}

// Daemon describes the `dockerfence run` that answered.
type Daemon struct {
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
	// DockerUp says whether Docker's event stream is connected.
	DockerUp bool `json:"docker_up"`
	// LastSync is the daemon's last sync, whatever its result.
	LastSync *Apply `json:"last_sync"`
	// Denials counts the denial events read from NFLOG since the start
	// (rate limited by the table's log rules), and Lost the times the
	// kernel dropped some because the reader fell behind.
	Denials uint64 `json:"denial_events"`
	Lost    uint64 `json:"denial_events_lost"`
}

// Source values of Status.
const (
	SourceDocker     = "docker"
	SourceDockerLast = "docker (last known)"
	SourceNetlink    = "netlink"
	// SourceKept means the daemon keeps the kernel's table as it is:
	// Docker has not answered yet and the policy needs it, so what the
	// table fences is not known (networks are then empty).
	SourceKept = "kept (Docker has not answered)"
)

// States of the table, as Status.State says them.
const (
	StateInSync  = "in_sync"
	StateAbsent  = "absent"
	StateDiffers = "differs"
)

// Exit codes of `dockerfence status` and `dockerfence plan --exit-code`,
// for scripts. ExitError is that of every command that fails.
const (
	// ExitOK: status finds the table present and equal to the policy
	// (with a daemon: as the daemon enforces it); plan finds nothing to
	// change.
	ExitOK = 0
	// ExitError: the command failed, and said why on standard error.
	ExitError = 1
	// ExitPending: plan --exit-code finds changes that apply would make.
	ExitPending = 2
	// ExitAbsent: status finds no table: nothing is fenced.
	ExitAbsent = 3
	// ExitDiffers: status finds the table present but different from
	// the policy, or not known to be equal.
	ExitDiffers = 4
)

// SetState sets State and ExitCode from the table's presence and sync.
func (s *Status) SetState() {
	switch {
	case !s.Table.Present:
		s.State, s.ExitCode = StateAbsent, ExitAbsent
	case s.Table.InSync:
		s.State, s.ExitCode = StateInSync, ExitOK
	default:
		s.State, s.ExitCode = StateDiffers, ExitDiffers
	}
}

// Make joins the policy, the table built from it and the kernel's state
// (nil if the table is absent) into a Status.
func Make(pol *policy.Policy, r *fence.Result, st *nft.State, source string) Status {
	t := r.Table
	s := Status{
		Policy: pol.Source, Mode: string(pol.Settings.Mode), Source: source,
		Docker:   source == SourceDocker || source == SourceDockerLast,
		Table:    TableStatus{Name: t.Name, Present: st != nil, Priority: t.Priority},
		Networks: []NetworkStatus{}, Unfenced: []NetworkStatus{}, NotFenceable: []NotFenceableStatus{},
		Warnings: append(append([]string{}, pol.Warnings...), r.Warnings...),
	}
	s.Table.SetKernel(st)
	if st != nil && st.NetdevRead && (t.Netdev != nil || st.Netdev != nil) {
		s.Table.Netdev = "absent"
		if nd := st.Netdev; nd != nil {
			n := 0
			for _, c := range nd.Chains {
				if c.Hook != "" {
					n++
				}
			}
			s.Table.Netdev = fmt.Sprintf("present, %d port chains (ARP and Ethernet sources of containers)", n)
		}
	}
	if st != nil && st.NetdevRead && (t.Bridge != nil || st.Bridge != nil) {
		s.Table.Bridge = "absent"
		if bt := st.Bridge; bt != nil {
			n := -1
			for _, ks := range bt.Sets {
				if ks.Name == "ownmac" && ks.Dumped {
					n = len(ks.Elems)
				}
			}
			s.Table.Bridge = "present (claims of known containers' addresses and MACs, checked on every bridge port)"
			if n >= 0 {
				s.Table.Bridge = fmt.Sprintf("present, the claims of %d container ports (their addresses and MACs, checked on every bridge port)", n)
			}
		}
	}
	s.Table.Drift = nft.Diff(t, st)
	s.Table.InSync = len(s.Table.Drift) == 0
	chains := map[string]*nft.ChainState{}
	maps := map[string]*nft.SetState{}
	if st != nil {
		for i := range st.Chains {
			chains[st.Chains[i].Name] = &st.Chains[i]
		}
		for _, side := range []*nft.State{st.Netdev, st.Bridge} {
			// The netdev table's chains (l2_PORT) and the bridge
			// table's (claims) are named apart.
			if side == nil {
				continue
			}
			for i := range side.Chains {
				chains[side.Chains[i].Name] = &side.Chains[i]
			}
		}
		for i := range st.Sets {
			maps[st.Sets[i].Name] = &st.Sets[i]
		}
	}
	deny := "deny"
	if pol.Settings.Mode == policy.Audit {
		deny = "would deny"
	}
	verdict := func(v policy.Verdict) string {
		if v == policy.Deny {
			return deny
		}
		return v.String()
	}
	// rules lists the rules of section sec in direction d with the
	// counters of the kernel's chain (none if nil), and their denials.
	rules := func(sec *policy.Section, d fence.Direction, chain *nft.ChainState) (out []RuleStatus, denied uint64) {
		h := d.Hook
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
		add := func(r RuleStatus) {
			r.Hook = h.String()
			if r.Verdict == deny {
				denied += r.Packets
			}
			out = append(out, r)
		}
		if !d.Inbound {
			p, b := count("spoof")
			add(RuleStatus{ID: "anti-spoofing", Verdict: deny, Match: "source not in subnets", Packets: p, Bytes: b})
		}
		for _, r := range sec.Rules(h) {
			p, b := count(r.ID())
			add(RuleStatus{ID: r.ID(), Index: r.Index, Verdict: verdict(r.Verdict), Match: fence.RuleMatch(r), Comment: r.Comment, Packets: p, Bytes: b})
		}
		if fence.TunnelEndpoints(pol, sec, d) {
			p, b := count(fence.TunnelEndpointRuleID)
			add(RuleStatus{ID: fence.TunnelEndpointRuleID, Verdict: deny, Match: fence.TunnelEndpointMatch, Packets: p, Bytes: b})
		}
		p, b := count("default")
		add(RuleStatus{ID: h.String() + "_default", Verdict: verdict(sec.Default(h)), Match: "anything else", Packets: p, Bytes: b})
		return out, denied
	}
	// The kernel's catch-all, whose chains judge the bridges that its
	// dispatch maps do not hold.
	caDenied := map[policy.Hook]uint64{}
	if ca := r.CatchAll; ca != nil && st != nil {
		s.CatchAll = &CatchAllStatus{Section: ca.Index, Match: ca.Match.String(), Bridges: []string{}, Rules: []RuleStatus{}}
		for _, d := range fence.Directions {
			if !d.Judges(ca) {
				continue
			}
			rs, denied := rules(ca, d, chains[d.CatchAllChain()])
			s.CatchAll.Rules = append(s.CatchAll.Rules, rs...)
			s.CatchAll.Denied += denied
			caDenied[d.Hook] = denied
		}
	}
	// kernelChain returns the chain of the kernel's table that judges the
	// packets of network f in direction d: the one its dispatch map names
	// for f's bridge; else the catch-all's (catchAll set) for a bridge it
	// covers; else none. Without a dispatch map, f's chain by name.
	kernelChain := func(f fence.Fenced, d fence.Direction) (c *nft.ChainState, catchAll bool) {
		m := maps[d.DispatchMap()]
		if m == nil {
			return chains[f.Chains[d.Hook]], false
		}
		for _, e := range m.VMap {
			if e.Key == f.Network.Bridge {
				return chains[e.Chain], false
			}
		}
		if ca := chains[d.CatchAllChain()]; ca != nil && fence.CatchAllBridge(f.Network.Bridge) && s.CatchAll != nil {
			return ca, true
		}
		return nil, false
	}
	for _, f := range r.Fenced {
		ns := NetworkStatus{Name: f.Network.Name, ID: f.Network.ID, Bridge: f.Network.Bridge, Subnets: prefixStrings(f.Network.Subnets), Section: f.Section.Index, Match: f.Section.Match.String()}
		if st != nil {
			judged := false
			for _, d := range fence.Directions {
				if !d.Judges(f.Section) {
					continue
				}
				chain, catchAll := kernelChain(f, d)
				judged = judged || chain != nil
				if catchAll {
					ns.CatchAll = true
					ns.Denied += caDenied[d.Hook]
					continue
				}
				rs, denied := rules(f.Section, d, chain)
				ns.Rules = append(ns.Rules, rs...)
				ns.Denied += denied
			}
			if !judged {
				ns.Unjudged, ns.Rules = true, nil
			}
			if ns.CatchAll {
				s.CatchAll.Bridges = append(s.CatchAll.Bridges, f.Network.Bridge)
			}
		}
		s.Networks = append(s.Networks, ns)
	}
	for _, name := range r.TunnelChains {
		if c := chains[name]; c != nil {
			for _, kr := range c.Rules {
				if kr.ID == fence.TunnelRuleID {
					s.TunnelDenied += kr.Packets
				}
			}
		}
	}
	for _, n := range r.Unfenced {
		s.Unfenced = append(s.Unfenced, NetworkStatus{Name: n.Name, ID: n.ID, Bridge: n.Bridge, Subnets: prefixStrings(n.Subnets)})
	}
	for _, u := range r.NotFenceable {
		n := NotFenceableStatus{Name: u.Network.Name, ID: u.Network.ID, Driver: u.Network.Driver, Subnets: prefixStrings(u.Network.Subnets), Reason: u.Reason}
		if u.Section != nil {
			n.Section, n.Match = u.Section.Index, u.Section.Match.String()
		}
		s.NotFenceable = append(s.NotFenceable, n)
	}
	s.Containers = []ContainerStatus{}
	s.Published = []PublishedStatus{}
	if st != nil {
		var held map[string]uint64
		s.Containers, held = containers(r, chains, deny)
		for i := range s.Networks {
			s.Networks[i].Held = held[s.Networks[i].Bridge]
		}
	}
	s.SetState()
	return s
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
