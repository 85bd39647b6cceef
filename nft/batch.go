package nft

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/userdata"
)

// Rule userdata types. Type 0 is nft's comment; nft ignores the others.
const (
	udataComment = userdata.Type(0)
	udataID      = userdata.Type(0xd0)
	udataDigest  = userdata.Type(0xd1)
	// udataSets records the contents of the sets the rule looks up, as
	// "name=digest" pairs separated by commas (see setDigest).
	udataSets = userdata.Type(0xd2)
)

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
	ns := &nftables.Set{Table: tbl, Name: s.Name, Comment: s.comment(), Interval: s.Interval(), HasTimeout: s.Timeout, Dynamic: s.Dynamic}
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
	default:
		if s.Key.tuple() {
			ns.KeyType = s.Key.datatype()
		}
	}
	if s.Map {
		ns.IsMap, ns.DataType = true, nftables.TypeVerdict
	}
	return ns
}

// setElements returns the set's elements as the kernel stores them.
func setElements(s *Set) []nftables.SetElement {
	if s.Map {
		return vmapElements(s.VMap)
	}
	elems := make([]nftables.SetElement, 0, 2*(len(s.Ranges)+len(s.Ports))+len(s.Tuples))
	eachElement(s, func(key []byte, end bool) {
		elems = append(elems, nftables.SetElement{Key: append([]byte(nil), key...), IntervalEnd: end})
	})
	return elems
}

// eachElement calls fn with the elements of a plain set as the kernel
// stores them (interval boundaries: a start, and an end unless the interval
// reaches the last key), in order, without building them: key is valid
// only during the call. A set of 100k prefixes has 200k of them.
func eachElement(s *Set, fn func(key []byte, end bool)) {
	var buf [16]byte
	switch s.Key {
	case KeyIPv4, KeyIPv6:
		key := func(a netip.Addr) []byte {
			if a.Is4() {
				b := a.As4()
				copy(buf[:], b[:])
				return buf[:4]
			}
			buf = a.As16()
			return buf[:]
		}
		for _, r := range s.Ranges {
			fn(key(r.From), false)
			if next := r.To.Next(); next.IsValid() {
				fn(key(next), true)
			}
		}
	case KeyService:
		for _, p := range s.Ports {
			binary.BigEndian.PutUint16(buf[:], p.First)
			fn(buf[:2], false)
			if p.Last < 65535 {
				binary.BigEndian.PutUint16(buf[:], p.Last+1)
				fn(buf[:2], true)
			}
		}
	default:
		for _, k := range sortedTupleKeys(s) {
			fn(k, false)
		}
	}
}

// setComment marks the sets and maps dockerfence writes. Their elements
// change in place (see changes), so the comment, which cannot, holds no
// digest: the rules that look a set up record its digest instead.
const setComment = "dockerfence"

// comment is the comment s is created with: setComment, then its Tag.
func (s *Set) comment() string {
	if s.Tag == "" {
		return setComment
	}
	return setComment + " " + s.Tag
}

// setDigest is a short hash of a plain set's elements, as kernelSet renders
// them: the count, and the hash of each element's key in hex (see elemKey),
// a line each.
func setDigest(s *Set) string {
	h := sha256.New()
	n := 0
	var line [2*64 + len("/end\n")]byte
	eachElement(s, func(key []byte, end bool) {
		m := hex.Encode(line[:], key)
		if end {
			m += copy(line[m:], "/end")
		}
		line[m] = '\n'
		h.Write(line[:m+1])
		n++
	})
	return fmt.Sprintf("%d:%s", n, hex.EncodeToString(h.Sum(nil)[:8]))
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
