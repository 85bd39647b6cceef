// Package policy parses and validates dockerfence policy files.
//
// A policy says, for each Docker network that one of its sections matches,
// which destinations containers may reach (egress, judged in the forward
// hook), which of the host's own services they may use (host, judged in
// the input hook) and which sources may open connections to them (ingress,
// judged in the forward hook after Docker's DNAT). The package is pure: apart from reading the policy, its
// list files and resolv.conf, it does no I/O.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dockerfence/dockerfence/dnsname"
)

// Verdict is the outcome of a rule or a default.
type Verdict int

// Verdicts.
const (
	Allow Verdict = iota
	Deny
)

// String returns "allow" or "deny".
func (v Verdict) String() string {
	if v == Deny {
		return "deny"
	}
	return "allow"
}

// Hook names the direction a rule list judges.
type Hook int

// Hooks.
const (
	// Egress judges traffic from a container to anywhere but the host (forward hook).
	Egress Hook = iota
	// Host judges traffic from a container to the host's own addresses (input hook).
	Host
	// Ingress judges connections from outside into a container (forward
	// hook, after Docker's DNAT): a rule's addresses are the connection's
	// source, its ports the connection's original destination port (the
	// published host port of a DNAT'ed connection).
	Ingress
)

// numHooks is how many hooks there are.
const numHooks = 3

// Hooks lists the hooks a section has rules for, in order. A section's
// keys are their names ("egress", "egress_default", ...).
var Hooks = [numHooks]Hook{Egress, Host, Ingress}

// String returns "egress", "host" or "ingress".
func (h Hook) String() string {
	switch h {
	case Host:
		return "host"
	case Ingress:
		return "ingress"
	}
	return "egress"
}

// Pos is a position in a source file.
type Pos struct {
	File   string
	Line   int
	Column int
}

// String formats the position as file:line:column.
func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column) }

// Policy is a parsed and validated policy file.
type Policy struct {
	// Source is the file the policy came from (a name for embedded policies).
	Source string
	// Absent is, for the embedded default that LoadOrDefault falls back
	// to, the policy file that does not exist.
	Absent   string
	Version  int
	Settings Settings
	// Lists holds every list that rules may reference, built-in ones included,
	// with user lists overriding built-ins of the same name.
	Lists    map[string]*List
	Sections []*Section
	// Containers are the container sections, in order: the first whose
	// match fits a container judges it, after its network's section.
	Containers []*ContainerSection
	// Warnings are non-fatal findings, such as an unreadable resolv.conf.
	Warnings []string
	// resolvFiles are the files the built-in @resolvers depends on.
	resolvFiles []string
}

// ResolvFiles returns the files whose change can change the built-in list
// @resolvers: the host's resolv.conf and systemd-resolved's file of
// upstream servers (see ResolversFile), whether a rule uses it or not.
func (p *Policy) ResolvFiles() []string { return slices.Clone(p.resolvFiles) }

// Origin says where the policy came from, for logs: its file, or
// "embedded default (/etc/dockerfence/policy.yaml absent)".
func (p *Policy) Origin() string {
	switch {
	case p.Source != DefaultName:
		return p.Source
	case p.Absent != "":
		return "embedded default (" + p.Absent + " absent)"
	}
	return "embedded default"
}

// Mode is enforce or audit.
type Mode string

// Modes.
const (
	Enforce Mode = "enforce"
	Audit   Mode = "audit"
)

// DenyAction is how a denied packet is refused.
type DenyAction string

// Deny actions.
const (
	Reject DenyAction = "reject"
	Drop   DenyAction = "drop"
)

// Settings are the policy-wide settings.
type Settings struct {
	Table      string
	Priority   int
	DenyAction DenyAction
	LogDenied  bool
	LogGroup   uint16
	// LogRate is the most denials a second logged for each source address
	// (for forged sources, for each anti-spoofing deny chain).
	LogRate int
	Mode    Mode
	// TunnelMark is the bit of the packet mark that the fence sets on what
	// containers send to the host, so that it can tell what a tunnel on
	// the host decapsulates from it; 0 turns the tunnel fence off.
	TunnelMark uint32
	// IdentityMark is the bit of the packet mark that the identity check
	// at a container's bridge port sets on the packets it let through:
	// the container layer judges a packet by its source address only if
	// it carries the bit, and holds the others (a container whose port is
	// not checked yet could send as its neighbour). 0 turns that off.
	IdentityMark uint32
	// DNSMinTTL and DNSMaxTTL bound how long an address learned from a
	// DNS answer stays in a name list's set: the record's TTL, raised to
	// DNSMinTTL, lowered to DNSMaxTTL.
	DNSMinTTL, DNSMaxTTL time.Duration
	// DNSHold is the longest a DNS answer to a container is held while
	// its addresses are learned: past it, the answer passes (and the
	// first connection may race the set's update).
	DNSHold time.Duration
}

// DefaultTunnelMark is the default of settings.tunnel_mark: a bit that
// the marks of kube-proxy (0x4000, 0x8000), Podman (0x2000), Tailscale
// (0xff0000), Weave (0x20000, 0x40000), Cilium (0xf00) and the AWS VPC CNI
// (0x80) leave alone. Calico's default mask (0xffff0000) holds it: with
// Calico, pick a bit outside Calico's mask.
const DefaultTunnelMark = 0x10000000

// DefaultIdentityMark is the default of settings.identity_mark: the bit
// next to DefaultTunnelMark, which the same tools leave alone.
const DefaultIdentityMark = 0x20000000

// DefaultSettings returns the settings a policy gets for every key it leaves out.
func DefaultSettings() Settings {
	return Settings{
		Table:        "dockerfence",
		Priority:     -10,
		DenyAction:   Reject,
		LogDenied:    true,
		LogGroup:     100,
		LogRate:      10,
		Mode:         Enforce,
		TunnelMark:   DefaultTunnelMark,
		IdentityMark: DefaultIdentityMark,
		DNSMinTTL:    DefaultDNSMinTTL,
		DNSMaxTTL:    DefaultDNSMaxTTL,
		DNSHold:      DefaultDNSHold,
	}
}

// Defaults of the settings of names: an address learned stays at least a
// minute (clients and their caches use an answer beyond a short TTL) and
// at most a day; an answer is held at most 250 ms.
const (
	DefaultDNSMinTTL = 60 * time.Second
	DefaultDNSMaxTTL = 24 * time.Hour
	DefaultDNSHold   = 250 * time.Millisecond
)

// Ranges of the settings of names. A minimum TTL of 0 would learn
// addresses that expire before the connection they are for; a maximum
// beyond a week keeps an address long after its name has moved; a hold
// beyond 2 s is as long as a client waits before it asks again.
const (
	minDNSTTL  = time.Second
	maxDNSTTL  = 7 * 24 * time.Hour
	minDNSHold = time.Millisecond
	maxDNSHold = 2 * time.Second
)

// List is a named set of prefixes, or of DNS names ({names: [...]}).
type List struct {
	Name    string
	Builtin bool
	Pos     Pos
	// File is the file the list was read from: its list file, or for
	// @resolvers the resolv.conf that ResolversFile picked; "" for a list
	// written in the policy.
	File     string
	Prefixes []netip.Prefix // as written, masked
	// Names is set for a list of names, which has no Prefixes: a list
	// holds addresses or names, never both (the addresses of names are
	// learned and expire, a set of their own).
	Names *NameList
}

// NameList is a list of DNS name patterns, under lists: ({names: [...]})
// or inline in a rule: the addresses that DNS answers to containers give
// for those names are what its rules match (learned, each for its TTL
// within settings dns_min_ttl and dns_max_ttl). Several rules naming one
// list share it, and so does every inline list of the same patterns.
type NameList struct {
	// Name is stable across reloads and unique in the policy: the list's
	// name under lists:, or for an inline list "inline." and a hash of
	// its patterns (a list name has no dot), so that the kernel set
	// named after it keeps what it learned while the patterns stay.
	Name string
	// Inline is set for a list written in a rule.
	Inline bool
	// Pos is where the list was written: its key under lists:, or the
	// inline mapping (the first one, for an inline list written twice).
	Pos Pos
	// Patterns are the list's patterns in canonical form ("example.com",
	// "*.example.com"), each once, in written order.
	Patterns []dnsname.Pattern
}

// SetName returns the name of the kernel set of the list's learned
// addresses, "n_" and the list's Name, which no set of an address list
// ("l_" and the list's name) can be; a compiler that splits the set by
// address family adds its suffix.
func (l *NameList) SetName() string { return "n_" + l.Name }

// Text renders the list as a rule refers to it: "@github", or the inline
// "{names: [example.com, *.example.com]}".
func (l *NameList) Text() string {
	if !l.Inline {
		return "@" + l.Name
	}
	s := make([]string, len(l.Patterns))
	for i, p := range l.Patterns {
		s[i] = string(p)
	}
	return "{names: [" + strings.Join(s, ", ") + "]}"
}

// inlineName returns the Name of an inline list of patterns: the same for
// the same patterns in any order.
func inlineName(patterns []dnsname.Pattern) string {
	s := make([]string, len(patterns))
	for i, p := range patterns {
		s[i] = string(p)
	}
	sort.Strings(s)
	sum := sha256.Sum256([]byte(strings.Join(s, "\n")))
	return "inline." + hex.EncodeToString(sum[:5])
}

// Section is one entry of networks: a match and the rules for the networks it matches.
type Section struct {
	// Index is the 1-based position of the section in networks.
	Index int
	Pos   Pos
	Match Match
	// ByHook holds the section's rules and default verdict of each hook,
	// indexed by Hook.
	ByHook [numHooks]HookRules
}

// HookRules are a section's rules of one hook and the verdict when none matches.
type HookRules struct {
	Rules   []*Rule
	Default Verdict
	// Given is set when the section has the hook's rules or default key:
	// a section without ingress keys adds nothing to the ingress path.
	Given bool
}

// Rules returns the rules of the hook.
func (s *Section) Rules(h Hook) []*Rule { return s.ByHook[h].Rules }

// Default returns the default verdict of the hook.
func (s *Section) Default(h Hook) Verdict { return s.ByHook[h].Default }

// Given reports whether the section has the hook's rules or default key.
func (s *Section) Given(h Hook) bool { return s.ByHook[h].Given }

// RuleCount returns how many rules the section has, of every hook.
func (s *Section) RuleCount() int {
	n := 0
	for _, h := range s.ByHook {
		n += len(h.Rules)
	}
	return n
}

// Match selects Docker networks. Every field that is set must hold.
type Match struct {
	Name          string // glob
	LabelKey      string
	LabelValue    string // empty with LabelHasValue false: the key must only be present
	HasLabel      bool
	LabelHasValue bool
	Subnet        netip.Prefix // valid if set
	Bridge        string       // glob
}

// String renders the match as in the policy file.
func (m Match) String() string {
	var parts []string
	if m.Name != "" {
		parts = append(parts, fmt.Sprintf("name: %q", m.Name))
	}
	if m.HasLabel {
		l := m.LabelKey
		if m.LabelHasValue {
			l += "=" + m.LabelValue
		}
		parts = append(parts, fmt.Sprintf("label: %q", l))
	}
	if m.Subnet.IsValid() {
		parts = append(parts, "subnet: "+m.Subnet.String())
	}
	if m.Bridge != "" {
		parts = append(parts, fmt.Sprintf("bridge: %q", m.Bridge))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// CatchAll reports whether the match is exactly {name: "*"}: it then also
// covers Docker bridges (docker0, br-*) that are not known yet.
func (m Match) CatchAll() bool {
	return m.Name == "*" && !m.HasLabel && !m.Subnet.IsValid() && m.Bridge == ""
}

// NeedsDocker reports whether the match can only be decided with Docker's
// metadata (a network name other than "*", or a label).
func (m Match) NeedsDocker() bool {
	return (m.Name != "" && m.Name != "*") || m.HasLabel
}

// Matches reports whether the network fits the match.
func (m Match) Matches(n Network) bool {
	if m.Name != "" {
		// A bridge found without Docker has no name and no name pattern fits it.
		if n.Name == "" {
			return false
		}
		if ok, _ := path.Match(m.Name, n.Name); !ok {
			return false
		}
	}
	if m.Bridge != "" {
		// A network of another driver has no bridge that a pattern could fit.
		if !n.IsBridge() {
			return false
		}
		if ok, _ := path.Match(m.Bridge, n.Bridge); !ok {
			return false
		}
	}
	if m.HasLabel {
		v, ok := n.Labels[m.LabelKey]
		if !ok || (m.LabelHasValue && v != m.LabelValue) {
			return false
		}
	}
	if m.Subnet.IsValid() {
		in := false
		for _, s := range n.Subnets {
			if s.Addr().Is4() == m.Subnet.Addr().Is4() && s.Bits() >= m.Subnet.Bits() && m.Subnet.Contains(s.Addr()) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	return true
}

// Proto is a rule's protocol.
type Proto string

// Protocols.
const (
	ProtoAny    Proto = "any"
	ProtoTCP    Proto = "tcp"
	ProtoUDP    Proto = "udp"
	ProtoSCTP   Proto = "sctp"
	ProtoICMP   Proto = "icmp"
	ProtoICMPv6 Proto = "icmpv6"
)

// HasPorts reports whether the protocol has ports.
func (p Proto) HasPorts() bool {
	return p == ProtoAny || p == ProtoTCP || p == ProtoUDP || p == ProtoSCTP
}

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct{ First, Last uint16 }

// String renders "53" or "8000-8080".
func (r PortRange) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Rule is one allow or deny entry. Its addresses are the destination of
// egress and host rules and the source of ingress rules.
type Rule struct {
	// Index is the 1-based position of the rule in its list.
	Index   int
	Hook    Hook
	Pos     Pos
	Verdict Verdict
	Addrs   AddrSpec
	Proto   Proto
	Ports   []PortRange
	Comment string
}

// Protos returns the concrete protocols the rule matches, or nil for any.
func (r *Rule) Protos() []Proto {
	switch {
	case r.Proto == ProtoAny && len(r.Ports) > 0:
		return []Proto{ProtoTCP, ProtoUDP}
	case r.Proto == ProtoAny:
		return nil
	default:
		return []Proto{r.Proto}
	}
}

// ID is a short stable name of the rule: "egress 3" or "host 1".
func (r *Rule) ID() string { return fmt.Sprintf("%s %d", r.Hook, r.Index) }

// AddrSpec is the value of allow: or deny:.
type AddrSpec struct {
	Any  bool
	Self bool
	// Lists are the address lists referenced, by name without '@'; the
	// lists of names referenced are in Names.
	Lists    []string
	Prefixes []netip.Prefix // inline addresses and prefixes, masked
	// Names are the lists of DNS names of the spec, referenced ("@github")
	// and inline ({names: [...]}), each once: only egress rules have
	// them. Resolve leaves them out: their addresses are learned.
	Names []*NameList
	// Text is the spec as written, for messages.
	Text string
}

// Network is a Docker network as the policy sees it.
type Network struct {
	ID     string
	Name   string
	Bridge string
	// Driver is the network's Docker driver ("bridge", "macvlan",
	// "host", ...); "" when Docker did not say, for a bridge found over
	// netlink. A network of another driver than bridge has no Bridge.
	Driver  string
	Labels  map[string]string
	Subnets []netip.Prefix
}

// IsBridge reports whether the network is a bridge on this host: its
// driver is bridge, or not known (a bridge found over netlink).
func (n Network) IsBridge() bool { return n.Driver == "" || n.Driver == "bridge" }

// SectionFor returns the first section whose match fits the network, or nil.
func (p *Policy) SectionFor(n Network) *Section {
	for _, s := range p.Sections {
		if s.Match.Matches(n) {
			return s
		}
	}
	return nil
}

// CatchAll returns the first section whose match is {name: "*"}, or nil.
func (p *Policy) CatchAll() *Section {
	for _, s := range p.Sections {
		if s.Match.CatchAll() {
			return s
		}
	}
	return nil
}

// NeedsDocker reports whether some section can only be matched with Docker's metadata.
func (p *Policy) NeedsDocker() bool {
	for _, s := range p.Sections {
		if s.Match.NeedsDocker() {
			return true
		}
	}
	return false
}

// Resolve returns the prefixes of the spec for network n, unmerged, in
// written order. Any yields nil: callers check Any first.
func (p *Policy) Resolve(a AddrSpec, n Network) []netip.Prefix {
	var out []netip.Prefix
	if a.Self {
		out = append(out, n.Subnets...)
	}
	for _, l := range a.Lists {
		if list := p.Lists[l]; list != nil {
			out = append(out, list.Prefixes...)
		}
	}
	return append(out, a.Prefixes...)
}

// UsedLists returns the names of the lists that rules reference, sorted:
// address lists and lists of names.
func (p *Policy) UsedLists() []string {
	seen := map[string]bool{}
	var names []string
	add := func(l string) {
		if !seen[l] {
			seen[l] = true
			names = append(names, l)
		}
	}
	p.eachRule(func(r *Rule) {
		for _, l := range r.Addrs.Lists {
			add(l)
		}
		for _, nl := range r.Addrs.Names {
			if !nl.Inline {
				add(nl.Name)
			}
		}
	})
	sort.Strings(names)
	return names
}

// eachRule calls f with every rule of the policy's sections and container
// sections.
func (p *Policy) eachRule(f func(*Rule)) {
	for _, s := range p.Sections {
		for _, h := range s.ByHook {
			for _, r := range h.Rules {
				f(r)
			}
		}
	}
	for _, s := range p.Containers {
		for _, r := range s.Egress.Rules {
			f(r)
		}
		for _, r := range s.Ingress.Rules {
			f(r)
		}
	}
}

// NameLists returns every list of DNS names of the policy, sorted by
// Name: those under lists: (whether a rule uses them or not, since a
// container's label may name them) and the inline ones of its rules.
// Label rules may hold inline lists of their own: see NameListsOf.
func (p *Policy) NameLists() []*NameList {
	seen := map[string]*NameList{}
	for _, l := range p.Lists {
		if l.Names != nil {
			seen[l.Names.Name] = l.Names
		}
	}
	p.eachRule(func(r *Rule) {
		for _, nl := range r.Addrs.Names {
			seen[nl.Name] = nl
		}
	})
	return sortedNameLists(seen)
}

// NameListsOf returns the lists of DNS names that rules refer to, each
// once, sorted by Name: for the rules of a container's label.
func NameListsOf(rules []*Rule) []*NameList {
	seen := map[string]*NameList{}
	for _, r := range rules {
		for _, nl := range r.Addrs.Names {
			seen[nl.Name] = nl
		}
	}
	return sortedNameLists(seen)
}

// NameMatcher returns a Matcher of the patterns of lists, whose keys are
// the lists' Names: what the names of a DNS answer's question match.
func NameMatcher(lists []*NameList) *dnsname.Matcher {
	m := dnsname.NewMatcher()
	for _, l := range lists {
		for _, p := range l.Patterns {
			m.Add(p, l.Name)
		}
	}
	return m
}

// sortedNameLists returns the lists of m sorted by Name.
func sortedNameLists(m map[string]*NameList) []*NameList {
	out := make([]*NameList, 0, len(m))
	for _, l := range m {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if len(out) == 0 {
		return nil
	}
	return out
}

// UsesNames reports whether a rule of the policy matches DNS names.
func (p *Policy) UsesNames() bool {
	uses := false
	p.eachRule(func(r *Rule) { uses = uses || len(r.Addrs.Names) > 0 })
	return uses
}
