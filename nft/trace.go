package nft

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dockerfence/dockerfence/ipproto"
)

// Packet is one packet for the tracer, as the kernel's rules see it in one
// hook: the fields that the model's matches and map keys read, and what
// the kernel's route lookups (fib) would answer for it.
type Packet struct {
	// Hook is the netfilter hook the packet passes (HookForward,
	// HookInput, or HookIngress of device IIfName): the base chains of
	// that hook judge it.
	Hook Hook
	// IIfName and OIfName are the input and output interfaces' names;
	// OIfName is "" where there is none (the input hook).
	IIfName, OIfName string
	// Src and Dst are the packet's addresses, of one family. An IPv4-mapped
	// IPv6 address is an IPv6 packet's.
	Src, Dst netip.Addr
	// L4Proto is the transport protocol (IANA number), after any IPv6
	// extension headers (meta l4proto).
	L4Proto uint8
	// DPort is what "th dport" reads: the two bytes at offset 2 of the
	// transport header, the destination port of TCP, UDP, SCTP and
	// UDP-Lite. For a protocol without ports they are other fields (the
	// checksum of ICMP); a caller without them gives 0.
	DPort uint16
	// SPort is what "th sport" reads: the two bytes at offset 0 of the
	// transport header, the source port of TCP, UDP, SCTP and UDP-Lite.
	SPort uint16
	// ICMPType is the first byte of the transport header, the type of an
	// ICMP or ICMPv6 message.
	ICMPType uint8
	// UDPLength is what "udp length" reads: the two bytes at offset 4 of
	// the transport header, the length of a UDP datagram (its header and
	// payload). A caller without it gives 0.
	UDPLength uint16
	// HopLimit is an IPv6 packet's hop limit as the hook sees it: in the
	// forward hook a routed packet has already lost one.
	HopLimit uint8
	// Reply marks a packet in the reply direction of its connection.
	Reply bool
	// CtMark is the conntrack mark of the packet's connection; rules
	// that set bits of it (Rule.SetCtMark) set them for the rules after
	// them.
	CtMark uint32
	// OrigDPort is the original destination port of the packet's
	// connection (ct original proto-dst): the port a client connected to
	// before DNAT, a published port; 0 reads as DPort (no DNAT).
	// Untracked marks a packet without a connection, which no conntrack
	// match holds for.
	OrigDPort uint16
	Untracked bool
	// Related marks a packet related to a connection, such as an ICMP
	// error about one of its packets (ct state related).
	Related bool
	// Mark is the packet's mark as it enters the hook (meta mark); rules
	// that set bits of it (Rule.SetMark) set them for the rules after them.
	Mark uint32
	// Fib holds the answers of the route lookups that Fib matches make.
	Fib FibAnswers
	// NDTarget is the target address of an ICMPv6 neighbour solicitation
	// or advertisement (what NDTarget matches read).
	NDTarget netip.Addr
}

// FibAnswers are what the kernel's route lookups answer for a packet: the
// caller knows the host's routes and addresses, the tracer does not.
type FibAnswers struct {
	// SrcViaIIf: the source address routes via the input interface (fib
	// saddr . iif oif exists).
	SrcViaIIf bool
	// DstViaIIf: the destination address routes via the input interface
	// (fib daddr . iif oif exists).
	DstViaIIf bool
	// DstLocal: the destination is one of the host's addresses on the
	// input interface (fib daddr . iif type local).
	DstLocal bool
}

// Trace is the path of one packet through a table and the verdict it got.
type Trace struct {
	// Verdict is Accept, Drop, RejectTCPReset, RejectAdminProhibited or
	// Queue (the program bound to the queue decides; with bypass and no
	// program, the packet is accepted). A queued packet's later base
	// chains in the hook are not traced: the program's verdict is not
	// known here.
	// A reject with tcp reset of a packet that is not TCP drops it (the
	// kernel sends no reset then): its verdict is Drop.
	Verdict VerdictKind
	// Policy is set when the verdict is the policy (accept) of the last
	// base chain that judged the packet, not a rule's: the chain ended, or
	// returned, without a verdict.
	Policy bool
	// Steps are the rules evaluated, in order, in every base chain of the
	// packet's hook until one dropped or rejected it.
	Steps []Step
	// Mark is the packet's mark as the rules evaluated left it (see
	// Packet.Mark).
	Mark uint32
}

// Step is one rule the tracer evaluated.
type Step struct {
	// Chain is the name of the rule's chain, Index the rule's position in it.
	Chain string
	Index int
	Rule  *Rule
	// Matched reports whether the rule applied: every match held and, for
	// a verdict map, the map holds the packet's key. A rule that matched
	// but has no verdict (a counter, log or limit) lets evaluation go on.
	Matched bool
	// Elem is the element of the verdict map that the packet's key found,
	// nil for other rules and for a miss.
	Elem *VMapElem
}

// Matched returns the steps whose rules applied.
func (t *Trace) Matched() []Step {
	var out []Step
	for _, s := range t.Steps {
		if s.Matched {
			out = append(out, s)
		}
	}
	return out
}

// String renders the trace one step a line, for messages and tests:
// "forward 0 no", "fwd_br-x 3 yes goto fwd_br-x.e4", then the verdict.
func (t *Trace) String() string {
	var b strings.Builder
	for _, s := range t.Steps {
		fmt.Fprintf(&b, "%s %d ", s.Chain, s.Index)
		switch {
		case !s.Matched:
			b.WriteString("no")
		case s.Elem != nil:
			b.WriteString("yes " + vmapElemText(*s.Elem))
		default:
			b.WriteString("yes")
			if v := verdictText(s.Rule.Verdict); v != "" {
				b.WriteString(" " + v)
			}
		}
		b.WriteString("\n")
	}
	if t.Verdict == Queue {
		b.WriteString("queue")
	} else {
		b.WriteString(verdictText(Verdict{Kind: t.Verdict}))
	}
	if t.Policy {
		b.WriteString(" (policy)")
	}
	return b.String()
}

// maxJumpDepth is the kernel's NFT_JUMP_STACK_SIZE: how many jumps deep
// rules may go. The kernel refuses a table whose chains go deeper.
const maxJumpDepth = 16

// Trace evaluates the packet through the table rule by rule, as the kernel
// does: the base chains of the packet's hook by priority (in the table's
// order where they have the same), each until a verdict (an accept ends
// only that base chain, a drop or reject is final), jumps and gotos with
// a stack of returns, and verdict maps.
// Counters, logs, limits and meters do not stop evaluation; a limit or a
// meter is taken to be under its rate, and a meter keyed by an address
// applies to packets of its family only, as its encoding does.
//
// It returns an error for a packet it cannot judge (no hook, addresses of
// two families) and for a table the kernel would refuse: a chain, set or
// map that does not exist or does not fit its use, a loop, or jumps deeper
// than the kernel allows.
func (t *Table) Trace(p Packet) (*Trace, error) {
	if p.Hook == HookNone {
		return nil, fmt.Errorf("trace: the packet has no hook")
	}
	if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4() != p.Dst.Is4() {
		return nil, fmt.Errorf("trace: source %v and destination %v are not addresses of one family", p.Src, p.Dst)
	}
	tr := &Trace{Verdict: Accept, Policy: true, Mark: p.Mark}
	var bases []*Chain
	for _, base := range t.Chains {
		if base.Hook != p.Hook || base.Hook == HookIngress && base.Device != p.IIfName {
			continue
		}
		bases = append(bases, base)
	}
	// The kernel runs them by priority; those of one priority in the
	// order they were added, the table's.
	slices.SortStableFunc(bases, func(a, b *Chain) int { return a.PriorityOffset - b.PriorityOffset })
	for _, base := range bases {
		if err := t.traceBase(tr, base, &p); err != nil {
			return nil, err
		}
		if tr.Verdict != Accept {
			break
		}
	}
	return tr, nil
}

// frame is a place to return to: the chain of a jump and the rule after it.
type frame struct {
	chain *Chain
	next  int
	// path lists the chains entered since the jump (the jumped-to chain
	// and those gone to from it), to find loops.
	path []string
}

// traceBase evaluates base chain base and sets tr's verdict.
func (t *Table) traceBase(tr *Trace, base *Chain, p *Packet) error {
	chain, i := base, 0
	// stack holds the returns of the jumps made; cur the chains entered
	// since the last jump.
	var stack []frame
	cur := []string{base.Name}
	enter := func(name string, jump bool) error {
		c := t.Chain(name)
		if c == nil {
			return fmt.Errorf("trace: chain %s: no chain %q", chain.Name, name)
		}
		if c.Hook != HookNone {
			return fmt.Errorf("trace: chain %s: %q is a base chain, which rules cannot jump to", chain.Name, name)
		}
		if slices.Contains(cur, name) || slices.ContainsFunc(stack, func(f frame) bool { return slices.Contains(f.path, name) }) {
			return fmt.Errorf("trace: chain %s: %s %s makes a loop", chain.Name, map[bool]string{true: "jump", false: "goto"}[jump], name)
		}
		if jump {
			if len(stack) == maxJumpDepth {
				return fmt.Errorf("trace: chain %s: jump %s goes deeper than %d jumps", chain.Name, name, maxJumpDepth)
			}
			stack = append(stack, frame{chain: chain, next: i + 1, path: cur})
			cur = nil
		}
		cur = append(cur, name)
		chain, i = c, 0
		return nil
	}
	for {
		if i >= len(chain.Rules) {
			// The end of a chain returns, like a return.
			if len(stack) == 0 {
				tr.Verdict, tr.Policy = Accept, true
				return nil
			}
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			chain, i, cur = f.chain, f.next, f.path
			continue
		}
		r := chain.Rules[i]
		step := Step{Chain: chain.Name, Index: i, Rule: r}
		ok, err := t.matches(r, p)
		if err != nil {
			return fmt.Errorf("trace: chain %s rule %d: %w", chain.Name, i, err)
		}
		v := r.Verdict
		if ok && v.Kind == VMap {
			e, err := t.lookupVMap(v, p)
			if err != nil {
				return fmt.Errorf("trace: chain %s rule %d: %w", chain.Name, i, err)
			}
			ok, step.Elem = e != nil, e
			if e != nil {
				v = Verdict{Kind: Goto, Target: e.Chain}
				if e.Jump {
					v.Kind = Jump
				}
			}
		}
		step.Matched = ok
		tr.Steps = append(tr.Steps, step)
		if !ok {
			i++
			continue
		}
		p.Mark = p.Mark&^r.ClearMark | r.SetMark
		p.CtMark |= r.SetCtMark
		tr.Mark = p.Mark
		switch v.Kind {
		case Continue:
			i++
		case Accept:
			tr.Verdict, tr.Policy = Accept, false
			return nil
		case Drop:
			tr.Verdict, tr.Policy = Drop, false
			return nil
		case RejectTCPReset:
			tr.Verdict, tr.Policy = RejectTCPReset, false
			if p.L4Proto != ipproto.TCP {
				tr.Verdict = Drop
			}
			return nil
		case RejectAdminProhibited:
			tr.Verdict, tr.Policy = RejectAdminProhibited, false
			return nil
		case Queue:
			// The program bound to the queue decides; the packet leaves
			// the table here, as with Accept.
			tr.Verdict, tr.Policy = Queue, false
			return nil
		case Jump, Goto:
			if err := enter(v.Target, v.Kind == Jump); err != nil {
				return err
			}
		case Return:
			i = len(chain.Rules)
		default:
			return fmt.Errorf("trace: chain %s rule %d: unknown verdict %d", chain.Name, i, v.Kind)
		}
	}
}

// matches reports whether every match of r holds for the packet.
func (t *Table) matches(r *Rule, p *Packet) (bool, error) {
	for _, m := range r.Matches {
		ok, err := t.match(m, p)
		if err != nil || !ok {
			return false, err
		}
	}
	if m := r.Meter; m != nil {
		switch m.Key {
		case SelSAddr4, SelDAddr4:
			return !p.isV6(), nil
		case SelSAddr6, SelDAddr6:
			return p.isV6(), nil
		}
	}
	return true, nil
}

// isV6 reports whether the packet is IPv6.
func (p *Packet) isV6() bool { return !p.Src.Is4() }

// match reports whether m holds for the packet, as the expressions that
// the netlink encoding (ruleExprs) gives m do.
func (t *Table) match(m Match, p *Packet) (bool, error) {
	switch m := m.(type) {
	case CtReply:
		return p.Reply, nil
	case CtOriginal:
		return !p.Reply, nil
	case CtMark:
		return p.CtMark&m.Bits == m.Bits, nil
	case NFProto:
		return p.isV6() == m.V6, nil
	case L4Proto:
		return slices.Contains(m.Protos, p.L4Proto), nil
	case Addr:
		// The encoding matches the family first.
		if p.isV6() != m.V6 {
			return false, nil
		}
		a := p.Dst
		if m.Src {
			a = p.Src
		}
		var in bool
		if m.Set != "" {
			s, err := t.setOf(m.Set, false, addrKey(m.V6))
			if err != nil {
				return false, err
			}
			in = slices.ContainsFunc(s.Ranges, func(r Range) bool { return r.Contains(a) })
		} else {
			if !m.Prefix.IsValid() || m.Prefix.Addr().Is4() == m.V6 {
				return false, fmt.Errorf("address match with prefix %v of the wrong family", m.Prefix)
			}
			in = m.Prefix.Contains(a)
		}
		return in != m.Neg, nil
	case DPort:
		if m.Set != "" {
			s, err := t.setOf(m.Set, false, KeyService)
			if err != nil {
				return false, err
			}
			return slices.ContainsFunc(s.Ports, func(r PortRange) bool { return r.contains(p.DPort) }), nil
		}
		return m.Range.contains(p.DPort), nil
	case SPort:
		return m.Range.contains(p.SPort), nil
	case CtOrigDPort:
		return t.traceCtOrigDPort(m, p)
	case CtRelated:
		return p.Related && !p.Untracked, nil
	case IfName:
		name := p.IIfName
		if m.Out {
			name = p.OIfName
		}
		if m.Prefix {
			return strings.HasPrefix(name, m.Name), nil
		}
		return name == m.Name, nil
	case Fib:
		if m.Local {
			return p.Fib.DstLocal, nil
		}
		via := p.Fib.DstViaIIf
		if m.Src {
			via = p.Fib.SrcViaIIf
		}
		return via != m.Missing, nil
	case ICMPv6Type:
		// The encoding checks the protocol, not the family.
		return p.L4Proto == ipproto.ICMPv6 && slices.Contains(m.Types, p.ICMPType), nil
	case HopLimit:
		// The encoding reads byte 7 of the network header whatever the
		// family: in IPv4 the low byte of the fragment offset, 0 for a
		// packet that is not a fragment (the tracer's never are).
		if !p.isV6() {
			return m.Value == 0, nil
		}
		return p.HopLimit == m.Value, nil
	case UDPLength:
		return p.UDPLength >= m.Min, nil
	case Mark:
		if m.Clear {
			return p.Mark&m.Bits == 0, nil
		}
		return p.Mark&m.Bits == m.Bits, nil
	case NDTarget:
		// The encoding reads the 16 bytes after the ICMPv6 header's first
		// 8, whatever the message; the rules match the type first.
		if !p.NDTarget.IsValid() {
			return false, fmt.Errorf("trace: a neighbour discovery target match, and the packet has no target")
		}
		if m.Set != "" {
			s, err := t.setOf(m.Set, false, KeyIPv6)
			if err != nil {
				return false, err
			}
			return slices.ContainsFunc(s.Ranges, func(r Range) bool { return r.Contains(p.NDTarget) }) != m.Neg, nil
		}
		return m.Prefix.Contains(p.NDTarget) != m.Neg, nil
	case Protocol:
		// The tracer's packets are IPv4 or IPv6.
		return m.EtherType == 0x0800 && !p.isV6() || m.EtherType == 0x86dd && p.isV6(), nil
	case EtherSrc, ARPSender:
		return false, fmt.Errorf("trace: the tracer's packets have no link layer or ARP header (match %T)", m)
	}
	if _, ok := m.(Lookup); ok {
		// Lookups are written in the bridge table only, which explain
		// does not trace (it judges IP packets in the inet table).
		return false, fmt.Errorf("trace: %s: lookups of fields are not traced", matchText(m))
	}
	return false, fmt.Errorf("unknown match %T", m)
}

// contains reports whether port is in the range.
func (r PortRange) contains(port uint16) bool { return r.First <= port && port <= r.Last }

// addrKey is the key type of the family's addresses.
func addrKey(v6 bool) KeyType {
	if v6 {
		return KeyIPv6
	}
	return KeyIPv4
}

// setOf returns the set (or, with isMap, the verdict map) called name, if
// its key is of type key.
func (t *Table) setOf(name string, isMap bool, key KeyType) (*Set, error) {
	s := t.Set(name)
	what := map[bool]string{true: "map", false: "set"}[isMap]
	switch {
	case s == nil:
		return nil, fmt.Errorf("no %s %q", what, name)
	case s.Map != isMap:
		return nil, fmt.Errorf("%q is not a %s", name, what)
	case s.Key != key:
		return nil, fmt.Errorf("%s %q has keys of type %v, not %v", what, name, s.Key, key)
	}
	return s, nil
}

// lookupVMap returns the element of verdict v's map that the packet's key
// finds, nil if there is none.
func (t *Table) lookupVMap(v Verdict, p *Packet) (*VMapElem, error) {
	var key KeyType
	var addr netip.Addr
	var name string
	switch v.Key {
	case SelIIfName:
		key, name = KeyIfName, p.IIfName
	case SelOIfName:
		key, name = KeyIfName, p.OIfName
	case SelSAddr4, SelSAddr6, SelDAddr4, SelDAddr6:
		v6 := v.Key == SelSAddr6 || v.Key == SelDAddr6
		key, addr = addrKey(v6), p.Dst
		if v.Key == SelSAddr4 || v.Key == SelSAddr6 {
			addr = p.Src
		}
		if p.isV6() != v6 {
			// The kernel would read other bytes of the header: the model
			// asks rules with such keys to match the family first.
			return nil, fmt.Errorf("map %q is keyed by %v addresses and the packet is not: match the family first", v.Target, key)
		}
	case SelDPort:
		key = KeyService
	default:
		return nil, fmt.Errorf("unknown map key %d", v.Key)
	}
	m, err := t.setOf(v.Target, true, key)
	if err != nil {
		return nil, err
	}
	for i := range m.VMap {
		e := &m.VMap[i]
		if key == KeyIfName && e.Key == name || key == KeyService && e.Port == p.DPort || key != KeyIfName && key != KeyService && e.Addr == addr {
			return e, nil
		}
	}
	return nil, nil
}
