package nft

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/dockerfence/dockerfence/ipproto"
)

// fuzzBytes hands out the fuzzer's bytes, zeros when they run out.
type fuzzBytes []byte

func (b *fuzzBytes) next() byte {
	if len(*b) == 0 {
		return 0
	}
	v := (*b)[0]
	*b = (*b)[1:]
	return v
}

func (b *fuzzBytes) n(n int) int { return int(b.next()) % n }

func (b *fuzzBytes) bool() bool { return b.next()&1 == 1 }

func (b *fuzzBytes) u16() uint16 { return uint16(b.next())<<8 | uint16(b.next()) }

// fuzzNames are the chain, set and interface names fuzzed tables use: some
// exist, some do not.
var fuzzNames = []string{"forward", "input", "a", "b", "c", "s4", "s6", "p", "m", "m4", "nope", "", "br-a", "eth0"}

func (b *fuzzBytes) name() string { return fuzzNames[b.n(len(fuzzNames))] }

func (b *fuzzBytes) addr(v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b.next() & 3, b.next() & 7})
	}
	return netip.AddrFrom4([4]byte{10, 0, b.next() & 3, b.next() & 7})
}

func (b *fuzzBytes) prefix() netip.Prefix {
	v6 := b.bool()
	a := b.addr(v6)
	return netip.PrefixFrom(a, b.n(a.BitLen()+2)-1).Masked()
}

func (b *fuzzBytes) match() Match {
	switch b.n(11) {
	case 0:
		if b.bool() {
			return CtOriginal{}
		}
		return CtReply{}
	case 1:
		return NFProto{V6: b.bool()}
	case 2:
		return L4Proto{Protos: []uint8{b.next() % 20, ipproto.TCP}}
	case 3:
		return Addr{V6: b.bool(), Src: b.bool(), Neg: b.bool(), Prefix: b.prefix()}
	case 4:
		return Addr{V6: b.bool(), Src: b.bool(), Neg: b.bool(), Set: b.name()}
	case 5:
		if b.bool() {
			return DPort{Set: b.name()}
		}
		return DPort{Range: PortRange{b.u16(), b.u16()}}
	case 6:
		return IfName{Name: b.name(), Prefix: b.bool(), Out: b.bool()}
	case 7:
		return Fib{Src: b.bool(), Missing: b.bool(), Local: b.bool()}
	case 8:
		return ICMPv6Type{Types: []uint8{b.next(), b.next()}}
	case 9:
		return HopLimit{Value: b.next()}
	}
	return nil
}

func (b *fuzzBytes) verdict() Verdict {
	return Verdict{Kind: VerdictKind(b.n(11)), Target: b.name(), Key: Selector(b.n(7))}
}

func (b *fuzzBytes) table() *Table {
	t := &Table{Name: "fuzz"}
	for range b.n(6) {
		s := &Set{Name: b.name(), Key: KeyType(b.n(5)), Map: b.bool()}
		for range b.n(4) {
			s.Ranges = append(s.Ranges, Range{From: b.addr(b.bool()), To: b.addr(b.bool())})
			s.Ports = append(s.Ports, PortRange{b.u16(), b.u16()})
			a := netip.Addr{}
			if b.bool() {
				a = b.addr(b.bool())
			}
			s.VMap = append(s.VMap, VMapElem{Key: b.name(), Addr: a, Chain: b.name(), Jump: b.bool()})
		}
		t.Sets = append(t.Sets, s)
	}
	for range b.n(7) {
		c := &Chain{Name: b.name(), Hook: Hook(b.n(3))}
		for range b.n(5) {
			r := &Rule{Verdict: b.verdict(), Counter: b.bool()}
			if b.bool() {
				r.Limit, r.Log = 1, &Log{Prefix: "f "}
			}
			for range b.n(4) {
				r.Matches = append(r.Matches, b.match())
			}
			c.Rules = append(c.Rules, r)
		}
		t.Chains = append(t.Chains, c)
	}
	return t
}

func (b *fuzzBytes) packet() Packet {
	v6 := b.bool()
	p := Packet{
		Hook: Hook(b.n(3)), IIfName: b.name(), OIfName: b.name(),
		Src: b.addr(v6), Dst: b.addr(v6 != (b.n(8) == 0)),
		L4Proto: []uint8{ipproto.TCP, ipproto.UDP, ipproto.ICMP, ipproto.ICMPv6, ipproto.SCTP, 253}[b.n(6)],
		DPort:   b.u16(), ICMPType: b.next(), HopLimit: b.next(), Reply: b.bool(),
		Fib: FibAnswers{SrcViaIIf: b.bool(), DstViaIIf: b.bool(), DstLocal: b.bool()},
	}
	if b.n(16) == 0 {
		p.Src = netip.Addr{}
	}
	return p
}

// FuzzTrace holds that the tracer never panics, whatever the table and the
// packet, and that what it returns is a verdict of a packet's and a path
// through the table's rules.
func FuzzTrace(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x03\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"))
	f.Add([]byte("\x00\x05\x00\x01\x00\x04\x01\x01\x03\x02\x00\x00\x00\x01\x06\x02\x00\x01\x01\x01\x00\x01\x01"))
	for i := range 16 {
		seed := make([]byte, 200)
		for j := range seed {
			seed[j] = byte(i*131 + j*17 + j*j)
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := fuzzBytes(data)
		tbl := b.table()
		p := b.packet()
		tr, err := tbl.Trace(p)
		if err != nil {
			if tr != nil {
				t.Errorf("error %v with a trace", err)
			}
			return
		}
		switch tr.Verdict {
		case Accept, Drop, RejectAdminProhibited, Queue:
		case RejectTCPReset:
			if p.L4Proto != ipproto.TCP {
				t.Errorf("tcp reset of protocol %d", p.L4Proto)
			}
		default:
			t.Errorf("verdict %v is not a packet's", tr.Verdict)
		}
		if tr.Policy && tr.Verdict != Accept {
			t.Errorf("policy verdict %v", tr.Verdict)
		}
		for _, s := range tr.Steps {
			// Names may repeat in a fuzzed table.
			if !slices.ContainsFunc(tbl.Chains, func(c *Chain) bool {
				return c.Name == s.Chain && s.Index < len(c.Rules) && c.Rules[s.Index] == s.Rule
			}) {
				t.Errorf("step %+v is not a rule of the table", s)
			}
		}
		_ = tr.String()
	})
}
