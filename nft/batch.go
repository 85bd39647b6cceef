package nft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/dockerfence/dockerfence/ipproto"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// batch encodes one transaction for google/nftables.
type batch struct {
	c   *nftables.Conn
	tx  *Transaction
	tbl *nftables.Table
	// sets holds the sets created in this batch, by name: rules refer to
	// them by the ID AddSet gives them, and to others by name.
	sets map[string]*nftables.Set
}

func newBatch(c *nftables.Conn, tx *Transaction) *batch {
	return &batch{c: c, tx: tx, tbl: &nftables.Table{Name: tx.Table, Family: nftables.TableFamilyINet}, sets: map[string]*nftables.Set{}}
}

// set returns what element commands and lookups refer to for the set name.
// timeout says whether elements carry timeouts.
func (b *batch) set(name string, timeout bool) *nftables.Set {
	if s, ok := b.sets[name]; ok {
		return s
	}
	return &nftables.Set{Table: b.tbl, Name: name, HasTimeout: timeout}
}

func (b *batch) chain(name string) *nftables.Chain {
	return &nftables.Chain{Table: b.tbl, Name: name}
}

// add adds the transaction's commands to the batch.
func (b *batch) add() error {
	for _, op := range b.tx.Ops {
		if err := b.op(op); err != nil {
			return err
		}
	}
	return nil
}

func (b *batch) op(op Op) error {
	switch op.Kind {
	case OpAddTable:
		b.c.AddTable(b.tbl)
	case OpDeleteTable:
		b.c.DelTable(b.tbl)
	case OpFlushChain:
		b.c.FlushChain(b.chain(op.Name))
	case OpDeleteChain:
		b.c.DelChain(b.chain(op.Name))
	case OpAddChain:
		nc := b.chain(op.Name)
		if op.Hook != HookNone {
			hook := nftables.ChainHookForward
			if op.Hook == HookInput {
				hook = nftables.ChainHookInput
			}
			accept := nftables.ChainPolicyAccept
			nc.Type, nc.Hooknum, nc.Priority, nc.Policy = nftables.ChainTypeFilter, hook, nftables.ChainPriorityRef(nftables.ChainPriority(b.tx.Priority)), &accept
		}
		b.c.AddChain(nc)
	case OpAddSet:
		ns, elems := kernelSet(b.tbl, op.Set)
		if err := b.c.AddSet(ns, nil); err != nil {
			return fmt.Errorf("set %s: %w", op.Set.Name, err)
		}
		if err := b.elements(ns, elems, false); err != nil {
			return err
		}
		b.sets[op.Set.Name] = ns
	case OpDeleteSet:
		b.c.DelSet(&nftables.Set{Table: b.tbl, Name: op.Name})
	case OpAddElements, OpDeleteElements:
		del := op.Kind == OpDeleteElements
		if op.Map {
			ns := b.set(op.Name, false)
			var err error
			if del {
				err = b.c.SetDeleteElements(ns, vmapElements(op.VMap))
			} else {
				err = b.c.SetAddElements(ns, vmapElements(op.VMap))
			}
			if err != nil {
				return fmt.Errorf("map %s: %w", op.Name, err)
			}
			break
		}
		timeout := slices.ContainsFunc(op.Elems, func(e nftables.SetElement) bool { return e.Timeout != 0 })
		return b.elements(b.set(op.Name, timeout), op.Elems, del)
	case OpAddRule:
		exprs, err := ruleExprs(b.c, b.tbl, func(name string) *nftables.Set { return b.set(name, false) }, op.Rule)
		if err != nil {
			return fmt.Errorf("chain %s rule %q: %w", op.Name, op.Rule.Text(), err)
		}
		b.c.AddRule(&nftables.Rule{Table: b.tbl, Chain: b.chain(op.Name), Exprs: exprs, UserData: op.UserData})
	default:
		return fmt.Errorf("unknown command %d", op.Kind)
	}
	return nil
}

// elements adds (or deletes) elements in chunks.
func (b *batch) elements(ns *nftables.Set, elems []nftables.SetElement, del bool) error {
	for i := 0; i < len(elems); i += elemChunk {
		chunk := elems[i:min(i+elemChunk, len(elems))]
		var err error
		if del {
			err = b.c.SetDeleteElements(ns, chunk)
		} else {
			err = b.c.SetAddElements(ns, chunk)
		}
		if err != nil {
			return fmt.Errorf("set %s: %w", ns.Name, err)
		}
	}
	return nil
}

// Rule userdata types. Type 0 is nft's comment; nft ignores the others.
const (
	udataComment = userdata.Type(0)
	udataID      = userdata.Type(0xd0)
	udataDigest  = userdata.Type(0xd1)
	// udataSets records the contents of the sets the rule looks up, as
	// "name=digest" pairs separated by commas (see setDigest).
	udataSets = userdata.Type(0xd2)
)

// elemChunk bounds the set elements put in one netlink message, so that the
// element list stays far below the 64 KiB limit of one netlink attribute.
const elemChunk = 512

// Digest is a short hash of the rule's nft text, stored in the kernel rule so
// that plan can tell whether the rule is still what dockerfence wrote.
func (r *Rule) Digest() string {
	sum := sha256.Sum256([]byte(r.Text()))
	return hex.EncodeToString(sum[:8])
}

// ruleUserData tags the rule with its comment, ID and digest, and with the
// digests of the sets it looks up (from digests, by set name).
func ruleUserData(r *Rule, digests map[string]string) []byte {
	var tags []byte
	tags = userdata.AppendString(tags, udataID, r.ID)
	tags = userdata.AppendString(tags, udataDigest, r.Digest())
	if refs := setRefs(r, digests); refs != "" {
		tags = userdata.AppendString(tags, udataSets, refs)
	}
	var ud []byte
	// The kernel refuses a rule whose user data passes maxUserData bytes
	// (ERANGE); the tags are what apply needs, so the comment, which only
	// people read in nft's listing, gets what room is left (its entry costs
	// two bytes of header and a NUL).
	if c := truncateUTF8(r.Comment, maxUserData-len(tags)-3); c != "" {
		ud = userdata.AppendString(ud, udataComment, c)
	}
	return append(ud, tags...)
}

// maxUserData is the kernel's limit on a rule's user data (NFT_USERDATA_MAXLEN).
const maxUserData = 256

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// setRefs renders the "name=digest" list of the plain sets r looks up.
func setRefs(r *Rule, digests map[string]string) string {
	var parts []string
	for _, name := range r.sets() {
		if d, ok := digests[name]; ok {
			parts = append(parts, name+"="+d)
		}
	}
	return strings.Join(parts, ",")
}

// parseSetRefs reads what setRefs wrote.
func parseSetRefs(s string) map[string]string {
	if s == "" {
		return nil
	}
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// kernelSet returns the google/nftables set and its elements.
func kernelSet(tbl *nftables.Table, s *Set) (*nftables.Set, []nftables.SetElement) {
	return setHeader(tbl, s), setElements(s)
}

// setHeader returns the google/nftables set without building its elements.
func setHeader(tbl *nftables.Table, s *Set) *nftables.Set {
	ns := &nftables.Set{Table: tbl, Name: s.Name, Comment: setComment, Interval: s.Interval(), HasTimeout: s.Timeout}
	switch s.Key {
	case KeyIPv4:
		ns.KeyType = nftables.TypeIPAddr
	case KeyIPv6:
		ns.KeyType = nftables.TypeIP6Addr
	case KeyService:
		ns.KeyType = nftables.TypeInetService
	case KeyIfName:
		// nft treats interface names as host-endian strings; without this hint it lists the keys as "".
		ns.KeyType, ns.KeyByteOrder = nftables.TypeIFName, binaryutil.NativeEndian
	}
	if s.Map {
		ns.IsMap, ns.DataType = true, nftables.TypeVerdict
	}
	return ns
}

// setElements returns the set's elements as the kernel stores them.
func setElements(s *Set) []nftables.SetElement {
	var elems []nftables.SetElement
	switch {
	case s.Map:
		elems = vmapElements(s.VMap)
	case s.Key == KeyIPv4, s.Key == KeyIPv6:
		for _, r := range s.Ranges {
			elems = append(elems, nftables.SetElement{Key: r.From.AsSlice()})
			if next := r.To.Next(); next.IsValid() {
				elems = append(elems, nftables.SetElement{Key: next.AsSlice(), IntervalEnd: true})
			}
		}
	case s.Key == KeyService:
		for _, p := range s.Ports {
			elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p.First)})
			if p.Last < 65535 {
				elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p.Last + 1), IntervalEnd: true})
			}
		}
	}
	return elems
}

// setComment marks the sets and maps dockerfence writes. Their elements
// change in place (see changes), so the comment, which cannot, holds no
// digest: the rules that look a set up record its digest instead.
const setComment = "dockerfence"

// setDigest is a short hash of a plain set's elements, as kernelSet renders them.
func setDigest(s *Set) string {
	elems := setElements(s)
	h := sha256.New()
	for _, e := range elems {
		h.Write([]byte(elemKey(e)))
		h.Write([]byte{'\n'})
	}
	return fmt.Sprintf("%d:%s", len(elems), hex.EncodeToString(h.Sum(nil)[:8]))
}

// setDigests returns the digest of every plain set of t that the model
// owns, by name.
func (t *Table) setDigests() map[string]string {
	out := make(map[string]string, len(t.Sets))
	for _, s := range t.Sets {
		if !s.Map && s.Owner == OwnedByModel {
			out[s.Name] = setDigest(s)
		}
	}
	return out
}

// elemKey identifies a plain set's element: its key and whether it ends an interval.
func elemKey(e nftables.SetElement) string {
	k := hex.EncodeToString(e.Key)
	if e.IntervalEnd {
		k += "/end"
	}
	return k
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

func nfproto(v6 bool) []expr.Any {
	p := byte(unix.NFPROTO_IPV4)
	if v6 {
		p = unix.NFPROTO_IPV6
	}
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, cmpEq([]byte{p})}
}

// ruleExprs returns the expressions of r. sets returns what a lookup of a
// named set refers to; anonymous sets are added to c.
func ruleExprs(c *nftables.Conn, tbl *nftables.Table, sets func(string) *nftables.Set, r *Rule) ([]expr.Any, error) {
	var out []expr.Any
	lookup := func(name string, invert bool) (*expr.Lookup, error) {
		s := sets(name)
		return &expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID, Invert: invert}, nil
	}
	for _, m := range r.Matches {
		switch m := m.(type) {
		case CtReply:
			out = append(out, &expr.Ct{Register: 1, Key: expr.CtKeyDIRECTION}, cmpEq([]byte{ctDirReply}))
		case NFProto:
			out = append(out, nfproto(m.V6)...)
		case L4Proto:
			out = append(out, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1})
			if len(m.Protos) == 1 {
				out = append(out, cmpEq([]byte{m.Protos[0]}))
				break
			}
			anon := &nftables.Set{Table: tbl, Anonymous: true, Constant: true, KeyType: nftables.TypeInetProto}
			var elems []nftables.SetElement
			for _, p := range m.Protos {
				elems = append(elems, nftables.SetElement{Key: []byte{p}})
			}
			if err := c.AddSet(anon, elems); err != nil {
				return nil, err
			}
			out = append(out, &expr.Lookup{SourceRegister: 1, SetName: anon.Name, SetID: anon.ID})
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
			switch {
			case m.Set != "":
				l, err := lookup(m.Set, false)
				if err != nil {
					return nil, err
				}
				out = append(out, l)
			case m.Range.First == m.Range.Last:
				out = append(out, cmpEq(binaryutil.BigEndian.PutUint16(m.Range.First)))
			default:
				out = append(out, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: binaryutil.BigEndian.PutUint16(m.Range.First), ToData: binaryutil.BigEndian.PutUint16(m.Range.Last)})
			}
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
			out = append(out, &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{lo}, ToData: []byte{hi}})
		case HopLimit:
			// The hop limit is byte 7 of the IPv6 header.
			out = append(out, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 7, Len: 1}, cmpEq([]byte{m.Value}))
		default:
			return nil, fmt.Errorf("unknown match %T", m)
		}
	}
	if r.Counter {
		out = append(out, &expr.Counter{})
	}
	if r.Limit > 0 {
		out = append(out, &expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(r.Limit), Unit: expr.LimitTimeSecond, Burst: uint32(r.Limit)})
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
	}
	return out, nil
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
