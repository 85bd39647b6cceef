package nft

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"net/netip"
	"sync"

	"github.com/dockerfence/dockerfence/ipproto"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"golang.org/x/sys/unix"
)

// Digest is a short hash of the rule, stored in the kernel rule's user data
// so that plan and apply can tell whether the rule is still what
// dockerfence would write without decoding it. It covers both the rule's
// nft text and its encoding: the expressions as they are marshalled for
// the kernel, and the elements of the anonymous sets they look up. What
// changes from one batch to the next is left out (set IDs, and the names
// the kernel gives anonymous sets; named sets count by name, their
// elements are recorded apart, see setRefs). So a change of how a rule is
// encoded, such as a new version of dockerfence or google/nftables
// sending other expressions for the same text, makes the next apply
// rewrite the rule.
func (r *Rule) Digest() string {
	return r.keys().digest
}

// ruleKeys are what a rule's Digest and ExprKey cost an encoding each to
// compute, remembered by the rule's text and its fields: two rules of one
// text can differ in their encoding (an exact interface name ending in "*"
// and a prefix match, TestDigestCoversEncoding), never in both. A daemon
// rebuilds its table at every sync, mostly of the same rules.
var ruleKeys = struct {
	sync.Mutex
	m map[string]ruleKeysOf
}{m: map[string]ruleKeysOf{}}

// ruleKeysOf is a rule's Digest and ExprKey.
type ruleKeysOf struct{ digest, expr string }

// maxRuleKeys bounds the remembered keys: past it, the memory starts
// afresh.
const maxRuleKeys = 1 << 16

// keys returns the rule's digest and expression key, remembered by text.
func (r *Rule) keys() ruleKeysOf {
	text := r.Text()
	memo := text + "\x00" + fmt.Sprint(r.Matches, r.Counter, r.ClearMark, r.SetMark, r.SetCtMark, r.Meter, r.Limit, r.Log, r.Verdict)
	ruleKeys.Lock()
	k, ok := ruleKeys.m[memo]
	ruleKeys.Unlock()
	if ok {
		return k
	}
	k = ruleKeysOf{digest: r.digest(text), expr: r.exprKey()}
	ruleKeys.Lock()
	if len(ruleKeys.m) >= maxRuleKeys {
		ruleKeys.m = map[string]ruleKeysOf{}
	}
	ruleKeys.m[memo] = k
	ruleKeys.Unlock()
	return k
}

// digest computes Digest for the rule of that text.
func (r *Rule) digest(text string) string {
	h := sha256.New()
	h.Write([]byte(text))
	h.Write([]byte{0})
	if err := r.hashEncoding(h); err != nil {
		fmt.Fprintf(h, "error: %v", err)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// hashEncoding writes the rule's expressions, as marshalled for an inet
// table, to h, each preceded by its length.
func (r *Rule) hashEncoding(h hash.Hash) error {
	tbl := &nftables.Table{Family: nftables.TableFamilyINet}
	named := func(name string) *nftables.Set { return &nftables.Set{Table: tbl, Name: name} }
	anon := func(s *nftables.Set, elems []nftables.SetElement) error {
		fmt.Fprintf(h, "anonymous set %d:", s.KeyType.GetNFTMagic())
		for _, e := range elems {
			fmt.Fprintf(h, " %s", elemKey(e))
		}
		h.Write([]byte{0})
		return nil
	}
	exprs, err := ruleExprs(tbl, named, anon, r)
	if err != nil {
		return err
	}
	for _, e := range exprs {
		b, err := marshalExpr(byte(nftables.TableFamilyINet), e)
		if err != nil {
			return err
		}
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
		h.Write(b)
	}
	return nil
}

// ifname pads an interface name to IFNAMSIZ, as the kernel compares it.
func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

func cmpEq(data []byte) *expr.Cmp {
	return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}
}

// cmpOp is != if neg, else ==.
func cmpOp(neg bool) expr.CmpOp {
	if neg {
		return expr.CmpOpNeq
	}
	return expr.CmpOpEq
}

func nfproto(v6 bool) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if v6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, cmpEq([]byte{p})}
}

// ruleExprs returns the expressions of r. sets returns what a lookup of a
// named set refers to; anon adds an anonymous set with its elements.
func ruleExprs(tbl *nftables.Table, sets func(string) *nftables.Set, anon func(*nftables.Set, []nftables.SetElement) error, r *Rule) ([]expr.Any, error) {
	var out []expr.Any
	lookup := func(name string, invert bool) (*expr.Lookup, error) {
		s := sets(name)
		return &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, Invert: invert}, nil
	}
	for _, m := range r.Matches {
		switch m := m.(type) {
		case CtReply:
			out = append(out, &expr.Ct{Register: 1, Key: expr.CtKeyDIRECTION}, cmpEq([]byte{ctDirReply}))
		case CtOriginal:
			out = append(out, &expr.Ct{Register: 1, Key: expr.CtKeyDIRECTION}, cmpEq([]byte{ctDirOriginal}))
		case CtMark:
			bits := binaryutil.NativeEndian.PutUint32(m.Bits)
			out = append(out, &expr.Ct{Register: 1, Key: expr.CtKeyMARK},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: bits, Xor: make([]byte, 4)},
				cmpEq(bits))
		case NFProto:
			out = append(out, nfproto(m.V6)...)
		case L4Proto:
			out = append(out, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1})
			if len(m.Protos) == 1 {
				out = append(out, cmpEq([]byte{m.Protos[0]}))
				break
			}
			set := &nftables.Set{Table: tbl, Anonymous: true, Constant: true, KeyType: nftables.TypeInetProto}
			var elems []nftables.SetElement
			for _, p := range m.Protos {
				elems = append(elems, nftables.SetElement{Key: []byte{p}})
			}
			if err := anon(set, elems); err != nil {
				return nil, err
			}
			out = append(out, &expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID})
		case Addr:
			out = append(out, nfproto(m.V6)...)
			off, size := uint32(16), uint32(4)
			switch {
			case m.V6 && m.Src:
				off, size = 8, 16
			case m.V6:
				off, size = 24, 16
			case m.Src:
				off = 12
			}
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: size})
			if m.Set != "" {
				l, err := lookup(m.Set, m.Neg)
				if err != nil {
					return nil, err
				}
				out = append(out, l)
				break
			}
			op := expr.CmpOpEq
			if m.Neg {
				op = expr.CmpOpNeq
			}
			if m.Prefix.Bits() < m.Prefix.Addr().BitLen() {
				out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: prefixMask(m.Prefix), Xor: make([]byte, size)})
			}
			out = append(out, &expr.Cmp{Op: op, Register: 1, Data: m.Prefix.Masked().Addr().AsSlice()})
		case DPort:
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
			cmp, err := portCmpExprs(m.Range, m.Set, lookup)
			if err != nil {
				return nil, err
			}
			out = append(out, cmp...)
		case SPort:
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2})
			cmp, err := portCmpExprs(m.Range, "", lookup)
			if err != nil {
				return nil, err
			}
			out = append(out, cmp...)
		case CtRelated:
			out = append(out, ctRelatedExprs()...)
		case CtOrigDPort:
			es, err := ctOrigDPortExprs(m, lookup)
			if err != nil {
				return nil, err
			}
			out = append(out, es...)
		case IfName:
			data := ifname(m.Name)
			if m.Prefix {
				data = []byte(m.Name)
			}
			key := expr.MetaKeyIIFNAME
			if m.Out {
				key = expr.MetaKeyOIFNAME
			}
			out = append(out, &expr.Meta{Key: key, Register: 1}, cmpEq(data))
		case Fib:
			if m.Local {
				out = append(out, &expr.Fib{Register: 1, FlagDADDR: true, FlagIIF: true, ResultADDRTYPE: true},
					&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
				break
			}
			op := expr.CmpOpNeq
			if m.Missing {
				op = expr.CmpOpEq
			}
			out = append(out, &expr.Fib{Register: 1, FlagSADDR: m.Src, FlagDADDR: !m.Src, FlagIIF: true, ResultOIF: true},
				&expr.Cmp{Op: op, Register: 1, Data: make([]byte, 4)})
		case ICMPv6Type:
			out = append(out, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmpEq([]byte{ipproto.ICMPv6}),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1})
			lo, hi, ok := contiguous(m.Types)
			if !ok {
				return nil, fmt.Errorf("icmpv6 types %v are not contiguous", m.Types)
			}
			if lo == hi {
				// One type is a comparison, as nft writes "icmpv6 type NAME".
				out = append(out, cmpEq([]byte{lo}))
				break
			}
			out = append(out, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{lo}, ToData: []byte{hi}})
		case HopLimit:
			// The hop limit is byte 7 of the IPv6 header.
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 7, Len: 1}, cmpEq([]byte{m.Value}))
		case UDPLength:
			// The length is bytes 4..6 of the UDP header, big-endian, so
			// the bytewise comparison orders them as numbers.
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 4, Len: 2},
				&expr.Cmp{Op: expr.CmpOpGte, Register: 1, Data: binaryutil.BigEndian.PutUint16(m.Min)})
		case EtherSrc:
			// The source address is bytes 6..12 of the Ethernet header.
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
				&expr.Cmp{Op: cmpOp(m.Neg), Register: 1, Data: m.MAC[:]})
		case Protocol:
			out = append(out, &expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1}, cmpEq(binaryutil.BigEndian.PutUint16(m.EtherType)))
		case ARPSender:
			// Ethernet/IPv4 ARP: hardware and protocol type, their
			// lengths and the operation take 8 bytes; then the
			// sender's hardware address (6) and protocol address (4).
			if m.IP.IsValid() {
				if !m.IP.Is4() {
					return nil, fmt.Errorf("arp sender address %v is not IPv4", m.IP)
				}
				out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 14, Len: 4},
					&expr.Cmp{Op: cmpOp(m.Neg), Register: 1, Data: m.IP.AsSlice()})
				break
			}
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 6},
				&expr.Cmp{Op: cmpOp(m.Neg), Register: 1, Data: m.MAC[:]})
		case NDTarget:
			// The target address follows the ICMPv6 header (4 bytes)
			// and 4 reserved (or flag) bytes.
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 8, Len: 16})
			if m.Set != "" {
				l, err := lookup(m.Set, m.Neg)
				if err != nil {
					return nil, err
				}
				out = append(out, l)
				break
			}
			if !m.Prefix.Addr().Is6() {
				return nil, fmt.Errorf("neighbour discovery target %v is not IPv6", m.Prefix)
			}
			if m.Prefix.Bits() < 128 {
				out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 16, Mask: prefixMask(m.Prefix), Xor: make([]byte, 16)})
			}
			out = append(out, &expr.Cmp{Op: cmpOp(m.Neg), Register: 1, Data: m.Prefix.Masked().Addr().AsSlice()})
		case Mark:
			// The mark is a host-endian number, as nft compares it.
			bits := binaryutil.NativeEndian.PutUint32(m.Bits)
			want := bits
			if m.Clear {
				want = make([]byte, 4)
			}
			out = append(out, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: bits, Xor: make([]byte, 4)},
				cmpEq(want))
		case Lookup:
			es, err := m.exprs(sets(m.Set))
			if err != nil {
				return nil, err
			}
			out = append(out, es...)
		default:
			return nil, fmt.Errorf("unknown match %T", m)
		}
	}
	if r.Counter {
		out = append(out, &expr.Counter{})
	}
	if r.ClearMark != 0 {
		// mark & ^bits, as nft writes it.
		out = append(out, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(^r.ClearMark), Xor: make([]byte, 4)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	}
	if r.SetCtMark != 0 {
		// ct mark | bits, as nft writes it: (mark & ^bits) ^ bits.
		out = append(out, &expr.Ct{Key: expr.CtKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(^r.SetCtMark), Xor: binaryutil.NativeEndian.PutUint32(r.SetCtMark)},
			&expr.Ct{Key: expr.CtKeyMARK, SourceRegister: true, Register: 1})
	}
	if r.SetMark != 0 {
		// mark | bits, as nft writes it: (mark & ^bits) ^ bits.
		out = append(out, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(^r.SetMark), Xor: binaryutil.NativeEndian.PutUint32(r.SetMark)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	}
	if m := r.Meter; m != nil {
		s := sets(m.Set)
		out = append(out, keyExprs(m.Key)...)
		out = append(out, &expr.Dynset{SrcRegKey: 1, SetName: s.Name, SetID: s.ID, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: m.Timeout, Exprs: []expr.Any{limit(m.Rate)}})
	}
	if r.Limit > 0 {
		out = append(out, limit(r.Limit))
	}
	if r.Log != nil {
		out = append(out, &expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_GROUP, Group: r.Log.Group, Data: []byte(r.Log.Prefix)})
	}
	switch r.Verdict.Kind {
	case Continue:
	case Accept:
		out = append(out, &expr.Verdict{Kind: expr.VerdictAccept})
	case Drop:
		out = append(out, &expr.Verdict{Kind: expr.VerdictDrop})
	case Jump:
		out = append(out, &expr.Verdict{Kind: expr.VerdictJump, Chain: r.Verdict.Target})
	case Goto:
		out = append(out, &expr.Verdict{Kind: expr.VerdictGoto, Chain: r.Verdict.Target})
	case Return:
		out = append(out, &expr.Verdict{Kind: expr.VerdictReturn})
	case VMap:
		s := sets(r.Verdict.Target)
		out = append(out, selectorExprs(r.Verdict.Key)...)
		out = append(out, &expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: s.Name, SetID: s.ID})
	case RejectTCPReset:
		out = append(out, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	case RejectAdminProhibited:
		out = append(out, &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED})
	case Queue:
		out = append(out, queueTarget(r.Verdict.QueueNum, r.Verdict.Bypass))
	}
	return out, nil
}

// queueTarget is the xtables target NFQUEUE, revision 3, of one queue:
// struct xt_NFQ_info_v3 (queuenum, queues_total, flags; u16 each, in the
// host's byte order), padded to 8 bytes as the kernel takes and returns it.
func queueTarget(num uint16, bypass bool) *expr.Target {
	info := make(xt.Unknown, 8)
	copy(info[0:2], binaryutil.NativeEndian.PutUint16(num))
	copy(info[2:4], binaryutil.NativeEndian.PutUint16(1))
	if bypass {
		copy(info[4:6], binaryutil.NativeEndian.PutUint16(nfqFlagBypass))
	}
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}

// nfqFlagBypass is NFQ_FLAG_BYPASS: accept when no program is bound.
const nfqFlagBypass = 0x01

// queueOf decodes a target that queueTarget writes: its queue and
// bypass; ok is false for any other target.
func queueOf(t *expr.Target) (num uint16, bypass, ok bool) {
	info, isUnknown := t.Info.(*xt.Unknown)
	if t.Name != "NFQUEUE" || t.Rev != 3 || !isUnknown || len(*info) != 8 {
		return 0, false, false
	}
	b := []byte(*info)
	num = binaryutil.NativeEndian.Uint16(b[0:2])
	total := binaryutil.NativeEndian.Uint16(b[2:4])
	flags := binaryutil.NativeEndian.Uint16(b[4:6])
	if total != 1 || flags&^nfqFlagBypass != 0 || b[6] != 0 || b[7] != 0 {
		return 0, false, false
	}
	return num, flags&nfqFlagBypass != 0, true
}

// limit is the limit of rate packets a second, burst the same.
func limit(rate int) *expr.Limit {
	return &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(rate), Unit: expr.LimitTimeSecond, Burst: uint32(rate)}
}

// keyExprs loads the field a meter is keyed by into register 1, after
// matching the family of an address, as nft does for a key of its own.
func keyExprs(sel Selector) []expr.Any {
	switch sel {
	case SelSAddr4, SelDAddr4:
		return append(nfproto(false), selectorExprs(sel)...)
	case SelSAddr6, SelDAddr6:
		return append(nfproto(true), selectorExprs(sel)...)
	}
	return selectorExprs(sel)
}

// selectorExprs loads the field a verdict map is keyed by into register 1.
func selectorExprs(sel Selector) []expr.Any {
	switch sel {
	case SelOIfName:
		return []expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}}
	case SelSAddr4, SelDAddr4:
		off := uint32(16)
		if sel == SelSAddr4 {
			off = 12
		}
		return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 4}}
	case SelSAddr6, SelDAddr6:
		off := uint32(24)
		if sel == SelSAddr6 {
			off = 8
		}
		return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: 16}}
	case SelDPort:
		return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}}
	}
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}}
}

func contiguous(ts []uint8) (lo, hi uint8, ok bool) {
	lo, hi = ts[0], ts[len(ts)-1]
	for i, t := range ts {
		if int(t) != int(lo)+i {
			return 0, 0, false
		}
	}
	return lo, hi, true
}

func prefixMask(p netip.Prefix) []byte {
	b := make([]byte, p.Addr().BitLen()/8)
	for i := 0; i < p.Bits(); i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return b
}

// ctDirReply is IP_CT_DIR_REPLY, the reply direction of a connection.
const ctDirReply = 1
