package nft

import "encoding/binary"

// attrs builds netlink attributes by appending to a byte slice: faster than
// netlink.MarshalAttributes for the hundreds of thousands of set elements
// a large list makes, and without its allocations.
type attrs []byte

// nlaHeader is the size of an attribute's header (nlattr).
const nlaHeader = 4

// nlaNested marks an attribute whose value holds attributes (NLA_F_NESTED).
const nlaNested = 0x8000

// add appends attribute typ with value v, padded to four bytes.
func (a attrs) add(typ uint16, v []byte) attrs {
	a = a.header(typ, len(v))
	a = append(a, v...)
	return a.pad()
}

func (a attrs) header(typ uint16, n int) attrs {
	var h [nlaHeader]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(nlaHeader+n))
	binary.NativeEndian.PutUint16(h[2:], typ)
	return append(a, h[:]...)
}

func (a attrs) pad() attrs {
	for len(a)%4 != 0 {
		a = append(a, 0)
	}
	return a
}

// str appends a NUL-terminated string.
func (a attrs) str(typ uint16, s string) attrs {
	a = a.header(typ, len(s)+1)
	a = append(a, s...)
	a = append(a, 0)
	return a.pad()
}

// u32 appends a number in network byte order, as nf_tables takes them.
func (a attrs) u32(typ uint16, v uint32) attrs {
	return a.add(typ, binary.BigEndian.AppendUint32(nil, v))
}

// u64 appends a number in network byte order.
func (a attrs) u64(typ uint16, v uint64) attrs {
	return a.add(typ, binary.BigEndian.AppendUint64(nil, v))
}

// begin starts a nested attribute and returns where it starts, for end.
func (a attrs) begin(typ uint16) (attrs, int) {
	return a.header(typ|nlaNested, 0), len(a)
}

// end closes the nested attribute begun at start, setting its length.
func (a attrs) end(start int) attrs {
	binary.NativeEndian.PutUint16(a[start:], uint16(len(a)-start))
	return a
}

// eachAttr calls fn with the type (without flags) and value of every
// attribute of b, in order, and stops early when fn returns false. It
// allocates nothing, for dumps of hundreds of thousands of elements.
func eachAttr(b []byte, fn func(typ uint16, v []byte) bool) {
	for len(b) >= nlaHeader {
		n := int(binary.NativeEndian.Uint16(b[0:]))
		typ := binary.NativeEndian.Uint16(b[2:]) & 0x3fff
		if n < nlaHeader || n > len(b) {
			return
		}
		if !fn(typ, b[nlaHeader:n]) {
			return
		}
		n = (n + 3) &^ 3
		if n > len(b) {
			return
		}
		b = b[n:]
	}
}

// be32 reads a number in network byte order; 0 if v is short.
func be32(v []byte) uint32 {
	if len(v) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

// be64 reads a number in network byte order; 0 if v is short.
func be64(v []byte) uint64 {
	if len(v) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// cstr reads a NUL-terminated string attribute.
func cstr(v []byte) string {
	for i, c := range v {
		if c == 0 {
			v = v[:i]
			break
		}
	}
	return string(v)
}
