package nft

import (
	"encoding/binary"
	"slices"

	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// CtOrigDPort matches the original destination port of the packet's
// connection (ct original proto-dst) against a range or a named service
// set: the port the connection was opened to, before any DNAT rewrote it.
// For a connection to a port that Docker publishes it is the host's port
// (8080 of -p 8080:80), whichever direction the packet goes; for one
// without DNAT it is the packet's own destination port in the original
// direction. A packet without a connection (untracked) matches nothing.
type CtOrigDPort struct {
	Range PortRange // used when Set is empty
	Set   string
}

func (CtOrigDPort) isMatch() {}

// ctOrigDPortExprs encodes m as nft does "ct original proto-dst": the
// conntrack key of the original direction, then the comparison that
// portCmpExprs gives.
func ctOrigDPortExprs(m CtOrigDPort, lookup func(string, bool) (*expr.Lookup, error)) ([]expr.Any, error) {
	out := []expr.Any{&expr.Ct{Register: 1, Key: expr.CtKeyPROTODST, Direction: ctDirOriginal}}
	cmp, err := portCmpExprs(m.Range, m.Set, lookup)
	if err != nil {
		return nil, err
	}
	return append(out, cmp...), nil
}

// portCmpExprs compares the port in register 1 with a range, or looks it
// up in the named set.
func portCmpExprs(r PortRange, set string, lookup func(string, bool) (*expr.Lookup, error)) ([]expr.Any, error) {
	switch {
	case set != "":
		l, err := lookup(set, false)
		if err != nil {
			return nil, err
		}
		return []expr.Any{l}, nil
	case r.First == r.Last:
		return []expr.Any{cmpEq(binaryutil.BigEndian.PutUint16(r.First))}, nil
	}
	return []expr.Any{&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: binaryutil.BigEndian.PutUint16(r.First), ToData: binaryutil.BigEndian.PutUint16(r.Last)}}, nil
}

// ctOrigDPortText is m in nft syntax.
func ctOrigDPortText(m CtOrigDPort) string {
	if m.Set != "" {
		return "ct original proto-dst @" + m.Set
	}
	return "ct original proto-dst " + m.Range.String()
}

// traceCtOrigDPort reports whether m holds for the packet.
func (t *Table) traceCtOrigDPort(m CtOrigDPort, p *Packet) (bool, error) {
	if p.Untracked {
		return false, nil
	}
	port := p.OrigDPort
	if port == 0 {
		port = p.DPort
	}
	if m.Set != "" {
		s, err := t.setOf(m.Set, false, KeyService)
		if err != nil {
			return false, err
		}
		return slices.ContainsFunc(s.Ports, func(r PortRange) bool { return r.contains(port) }), nil
	}
	return m.Range.contains(port), nil
}

// ctDirOriginal is IP_CT_DIR_ORIGINAL, the original direction of a
// connection.
const ctDirOriginal = 0

// marshalExpr is expr.Marshal for a table of family, but for the direction of
// a ct expression: google/nftables sends it in 32 bits, the kernel reads
// NFTA_CT_DIRECTION as 8 (NLA_U8, the first byte, which is 0 for every
// direction in network byte order) and returns it so, as nft sends it. It
// is sent in one byte here, as nft does.
func marshalExpr(family byte, e expr.Any) ([]byte, error) {
	b, err := expr.Marshal(family, e)
	if err != nil {
		return nil, err
	}
	if ct, ok := e.(*expr.Ct); ok && ctHasDirection(ct.Key) {
		b = ctDirectionWidth(b, 1)
	}
	return b, nil
}

// ctHasDirection reports whether google/nftables sends a direction with a
// ct expression of that key.
func ctHasDirection(k expr.CtKey) bool {
	return k == expr.CtKeySRC || k == expr.CtKeyDST || k == expr.CtKeyPROTOSRC || k == expr.CtKeyPROTODST
}

// ctDirectionWidth returns the marshalled ct expression b (NFTA_EXPR_NAME,
// NFTA_EXPR_DATA) with its NFTA_CT_DIRECTION in width bytes (1 as the
// kernel takes and returns it, 4 as google/nftables decodes it).
func ctDirectionWidth(b []byte, width int) []byte {
	return rewriteAttrs(b, func(typ uint16, v []byte) []byte {
		if typ&0x3fff != unix.NFTA_EXPR_DATA {
			return v
		}
		return ctDataDirectionWidth(v, width)
	})
}

// ctDataDirectionWidth is ctDirectionWidth for a ct expression's
// NFTA_EXPR_DATA.
func ctDataDirectionWidth(data []byte, width int) []byte {
	return rewriteAttrs(data, func(typ uint16, v []byte) []byte {
		if typ&0x3fff != unix.NFTA_CT_DIRECTION || len(v) == 0 {
			return v
		}
		dir := v[len(v)-1]
		if width == 1 {
			return []byte{dir}
		}
		return []byte{0, 0, 0, dir}
	})
}

// rewriteAttrs returns the attributes of b with each value replaced by
// what fn returns for it; types keep their flags.
func rewriteAttrs(b []byte, fn func(typ uint16, v []byte) []byte) []byte {
	var out attrs
	for len(b) >= nlaHeader {
		n := int(binary.NativeEndian.Uint16(b[0:]))
		typ := binary.NativeEndian.Uint16(b[2:])
		if n < nlaHeader || n > len(b) {
			break
		}
		out = out.add(typ, fn(typ, b[nlaHeader:n]))
		n = (n + 3) &^ 3
		if n > len(b) {
			break
		}
		b = b[n:]
	}
	return out
}

// CtRelated matches packets related to a connection that conntrack knows
// (ct state related): above all the ICMP errors about its packets, such
// as a router's "packet too big" for path MTU discovery.
type CtRelated struct{}

func (CtRelated) isMatch() {}

// ctStateRelated is NF_CT_STATE_BIT(IP_CT_RELATED), the bit of ct state
// related.
const ctStateRelated = 1 << 2

// ctRelatedExprs encodes "ct state related" as nft does: the state, in
// host byte order, masked with the bit, compared with 0.
func ctRelatedExprs() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(ctStateRelated), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}
