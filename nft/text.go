package nft

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/dockerfence/dockerfence/ipproto"
)

// Text renders the table in nft syntax, as `nft -f` reads it. The output
// creates the table if it is missing and replaces it whole, like Apply.
// The netdev and bridge tables (Table.Netdev, Table.Bridge) follow the
// inet one.
func (t *Table) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s\ndelete table %s %s\n", t.Family, t.Name, t.Family, t.Name)
	b.WriteString(t.block())
	for _, f := range sideFamilies {
		if st := t.side(f); st != nil {
			b.WriteString(st.Text())
		}
	}
	return b.String()
}

// Body renders just the table block in nft syntax, and those of its
// netdev and bridge tables (Table.Netdev, Table.Bridge) after it.
func (t *Table) Body() string {
	out := t.block()
	for _, f := range sideFamilies {
		if st := t.side(f); st != nil {
			out += st.block()
		}
	}
	return out
}

// block renders the table's own block in nft syntax.
func (t *Table) block() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", t.Family, t.Name)
	for _, s := range t.Sets {
		writeSet(&b, s)
	}
	for _, c := range t.Chains {
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if c.Hook != HookNone {
			fmt.Fprintf(&b, "\t\ttype filter hook %s priority %d; policy accept;\n", c.HookText(), t.ChainPriority(c))
		}
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "\t\t%s\n", r.Text())
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func writeSet(b *strings.Builder, s *Set) {
	kw, typ := "set", s.Key.String()
	flags := s.flagNames()
	if s.Map {
		kw, typ = "map", typ+" : verdict"
	}
	elems := setItems(s)
	fmt.Fprintf(b, "\t%s %s {\n\t\ttype %s\n", kw, s.Name, typ)
	if len(flags) > 0 {
		fmt.Fprintf(b, "\t\tflags %s\n", strings.Join(flags, ","))
	}
	if len(elems) > 0 {
		b.WriteString("\t\telements = {\n")
		for i, e := range elems {
			sep := ","
			if i == len(elems)-1 {
				sep = ""
			}
			fmt.Fprintf(b, "\t\t\t%s%s\n", e, sep)
		}
		b.WriteString("\t\t}\n")
	}
	b.WriteString("\t}\n")
}

// flagNames lists the set's flags in nft syntax, in the order nft lists
// them.
func (s *Set) flagNames() []string {
	var flags []string
	if s.Interval() {
		flags = append(flags, "interval")
	}
	if s.Dynamic {
		flags = append(flags, "dynamic")
	}
	if s.Timeout {
		flags = append(flags, "timeout")
	}
	return flags
}

// rangeText renders a range as an address, a prefix or from-to.
func rangeText(r Range) string {
	if r.From == r.To {
		return r.From.String()
	}
	if p, ok := RangePrefix(r); ok {
		return p.String()
	}
	return r.From.String() + "-" + r.To.String()
}

// Text renders the rule in nft syntax.
func (r *Rule) Text() string {
	var parts []string
	for _, m := range r.Matches {
		parts = append(parts, matchText(m))
	}
	if r.Counter {
		parts = append(parts, "counter")
	}
	if r.ClearMark != 0 {
		parts = append(parts, fmt.Sprintf("meta mark set meta mark & 0x%08x", ^r.ClearMark))
	}
	if r.SetCtMark != 0 {
		parts = append(parts, fmt.Sprintf("ct mark set ct mark | 0x%08x", r.SetCtMark))
	}
	if r.SetMark != 0 {
		parts = append(parts, fmt.Sprintf("meta mark set meta mark | 0x%08x", r.SetMark))
	}
	if m := r.Meter; m != nil {
		key := selectorText[m.Key]
		if m.Timeout > 0 {
			key += " timeout " + durationText(m.Timeout)
		}
		parts = append(parts, fmt.Sprintf("update @%s { %s %s }", m.Set, key, limitText(m.Rate)))
	}
	if r.Limit > 0 {
		parts = append(parts, limitText(r.Limit))
	}
	if r.Log != nil {
		parts = append(parts, fmt.Sprintf("log prefix %q group %d", r.Log.Prefix, r.Log.Group))
	}
	if v := verdictText(r.Verdict); v != "" {
		parts = append(parts, v)
	}
	if r.Comment != "" {
		parts = append(parts, fmt.Sprintf("comment %q", r.Comment))
	}
	return strings.Join(parts, " ")
}

// limitText renders a limit of rate packets a second, burst the same.
func limitText(rate int) string {
	return fmt.Sprintf("limit rate %d/second burst %d packets", rate, rate)
}

// verdictText renders a verdict as in nft syntax, "" for Continue.
func verdictText(v Verdict) string {
	switch v.Kind {
	case Accept:
		return "accept"
	case Drop:
		return "drop"
	case Jump:
		return "jump " + v.Target
	case Goto:
		return "goto " + v.Target
	case Return:
		return "return"
	case VMap:
		// nft puts the counter before the lookup: the vmap must be last.
		return selectorText[v.Key] + " vmap @" + v.Target
	case RejectTCPReset:
		return "reject with tcp reset"
	case RejectAdminProhibited:
		return "reject with icmpx admin-prohibited"
	case Queue:
		// As nft lists the xtables target NFQUEUE (with libxtables; a
		// kernel without the nft queue expression refuses this text).
		s := fmt.Sprintf("queue num %d", v.QueueNum)
		if v.Bypass {
			s += " bypass"
		}
		return s
	}
	return ""
}

// selectorText is what each selector is in nft syntax.
var selectorText = map[Selector]string{SelIIfName: "iifname", SelOIfName: "oifname", SelSAddr4: "ip saddr", SelSAddr6: "ip6 saddr", SelDAddr4: "ip daddr", SelDAddr6: "ip6 daddr", SelDPort: "th dport"}

var icmpv6Names = map[uint8]string{130: "mld-listener-query", 131: "mld-listener-report", 132: "mld-listener-done", 133: "nd-router-solicit", 134: "nd-router-advert", 135: "nd-neighbor-solicit", 136: "nd-neighbor-advert", 137: "nd-redirect", 143: "mld2-listener-report"}

func matchText(m Match) string {
	switch m := m.(type) {
	case CtReply:
		return "ct direction reply"
	case CtOriginal:
		return "ct direction original"
	case CtMark:
		return fmt.Sprintf("ct mark & 0x%08x == 0x%08x", m.Bits, m.Bits)
	case NFProto:
		if m.V6 {
			return "meta nfproto ipv6"
		}
		return "meta nfproto ipv4"
	case L4Proto:
		names := make([]string, len(m.Protos))
		for i, p := range m.Protos {
			names[i] = ipproto.Name(p)
			if r, ok := ipproto.ByNum(p); ok {
				names[i] = r.NFT
			}
		}
		return "meta l4proto " + braces(names)
	case Addr:
		s := "ip "
		if m.V6 {
			s = "ip6 "
		}
		if m.Src {
			s += "saddr "
		} else {
			s += "daddr "
		}
		if m.Neg {
			s += "!= "
		}
		if m.Set != "" {
			return s + "@" + m.Set
		}
		return s + prefixText(m.Prefix)
	case DPort:
		if m.Set != "" {
			return "th dport @" + m.Set
		}
		return "th dport " + m.Range.String()
	case SPort:
		return "th sport " + m.Range.String()
	case CtOrigDPort:
		return ctOrigDPortText(m)
	case CtRelated:
		return "ct state related"
	case IfName:
		kw := "iifname"
		if m.Out {
			kw = "oifname"
		}
		if m.Prefix {
			return fmt.Sprintf("%s %q", kw, m.Name+"*")
		}
		return fmt.Sprintf("%s %q", kw, m.Name)
	case Fib:
		if m.Local {
			return "fib daddr . iif type local"
		}
		// The rule compares the output interface with 0 (none); nft's
		// "missing" and "exists" would be another expression.
		addr, res := "daddr", "!= 0"
		if m.Src {
			addr = "saddr"
		}
		if m.Missing {
			res = "0"
		}
		return fmt.Sprintf("fib %s . iif oif %s", addr, res)
	case ICMPv6Type:
		// The rule matches a range of types, which nft writes in numbers;
		// a list in braces would be a set lookup.
		if len(m.Types) == 1 {
			if name, ok := icmpv6Names[m.Types[0]]; ok {
				return "icmpv6 type " + name
			}
			return fmt.Sprintf("icmpv6 type %d", m.Types[0])
		}
		return fmt.Sprintf("icmpv6 type %d-%d", m.Types[0], m.Types[len(m.Types)-1])
	case HopLimit:
		return fmt.Sprintf("ip6 hoplimit %d", m.Value)
	case UDPLength:
		return fmt.Sprintf("udp length >= %d", m.Min)
	case Mark:
		if m.Clear {
			return fmt.Sprintf("meta mark & 0x%08x == 0x%08x", m.Bits, 0)
		}
		return fmt.Sprintf("meta mark & 0x%08x == 0x%08x", m.Bits, m.Bits)
	case EtherSrc:
		return "ether saddr " + negText(m.Neg) + net.HardwareAddr(m.MAC[:]).String()
	case Protocol:
		switch m.EtherType {
		case EtherTypeARP:
			return "meta protocol arp"
		case 0x0800:
			return "meta protocol ip"
		case 0x86dd:
			return "meta protocol ip6"
		}
		return fmt.Sprintf("meta protocol 0x%04x", m.EtherType)
	case ARPSender:
		if m.IP.IsValid() {
			return "arp saddr ip " + negText(m.Neg) + m.IP.String()
		}
		return "arp saddr ether " + negText(m.Neg) + net.HardwareAddr(m.MAC[:]).String()
	case NDTarget:
		if m.Set != "" {
			return "icmpv6 taddr " + negText(m.Neg) + "@" + m.Set
		}
		return "icmpv6 taddr " + negText(m.Neg) + prefixText(m.Prefix)
	}
	if l, ok := m.(Lookup); ok {
		return l.text()
	}
	panic(fmt.Sprintf("nft: unknown match %T", m))
}

// negText is "!= " if neg, else "".
func negText(neg bool) string {
	if neg {
		return "!= "
	}
	return ""
}

func braces(items []string) string {
	if len(items) == 1 {
		return items[0]
	}
	return "{ " + strings.Join(items, ", ") + " }"
}

func prefixText(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}
