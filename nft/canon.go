package nft

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A rule of the kernel is the model's rule when its expressions, as the
// kernel returns them, are the model rule's: rule user data is only a
// label, which anyone who can write a rule can copy. Both sides are brought
// to one canonical form and compared:
//
//   - each expression is decoded by google/nftables into its typed value
//     and marshalled again, so attributes that one side sends and the other
//     leaves at their default compare equal;
//   - what changes without the rule changing is left out: counter values,
//     set IDs (the kernel does not return them) and the names of anonymous
//     sets (the kernel numbers them), which stand for their key type and
//     elements instead;
//   - an attribute that the kernel returns and google/nftables does not
//     decode makes the expression foreign (unequal to any model rule's),
//     unless it holds the value the model's encoding implies (neutral
//     below): so no change of the kernel's rule goes unseen for want of a
//     decoder. So does an expression google/nftables does not know.

// canonical is the canonical form of a rule's expressions.
type canonical struct {
	// key identifies the expressions: equal keys, equal expressions.
	key string
	// summary names the expressions, for messages.
	summary string
	// counter holds the values of the rule's counter, if it has one.
	counter *expr.Counter
}

// canon returns the canonical form of list, a rule's NFTA_RULE_EXPRESSIONS
// as the kernel returns or takes them. anon returns what an anonymous set
// named name stands for (its key type and elements).
func canon(list []byte, anon func(name string) string) canonical {
	var out canonical
	h := sha256.New()
	var names []string
	eachAttr(list, func(_ uint16, elem []byte) bool {
		name, data := exprNameData(elem)
		b, what := canonExpr(name, data, anon, &out)
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
		h.Write(b)
		names = append(names, what)
		return true
	})
	out.key = hex.EncodeToString(h.Sum(nil)[:16])
	out.summary = strings.Join(names, " ")
	return out
}

// exprNameData reads an NFTA_LIST_ELEM of rule expressions: the
// expression's name and its NFTA_EXPR_DATA.
func exprNameData(elem []byte) (name string, data []byte) {
	eachAttr(elem, func(typ uint16, v []byte) bool {
		if typ == unix.NFTA_EXPR_NAME {
			name = cstr(v)
		} else if typ == unix.NFTA_EXPR_DATA {
			data = v
		}
		return true
	})
	return name, data
}

// canonExpr returns the canonical bytes of one expression and its name for
// the summary; a counter's values go to c.
func canonExpr(name string, data []byte, anon func(string) string, c *canonical) ([]byte, string) {
	// An expression's canonical form depends on its bytes alone, but for
	// a counter's values and an anonymous set's elements: the others are
	// remembered, as a table holds the same few expressions many times.
	if name == "counter" || name == "lookup" && anonLookup(data) {
		return canonExprOnce(name, data, anon, c)
	}
	key := name + "\x00" + string(data)
	exprMemo.Lock()
	v, ok := exprMemo.m[key]
	exprMemo.Unlock()
	if ok {
		return v.b, v.what
	}
	b, what := canonExprOnce(name, data, anon, c)
	exprMemo.Lock()
	if len(exprMemo.m) >= maxExprMemo {
		exprMemo.m = map[string]canonMemo{}
	}
	exprMemo.m[key] = canonMemo{b, what}
	exprMemo.Unlock()
	return b, what
}

// exprMemo remembers the canonical forms of expressions by their bytes.
var exprMemo = struct {
	sync.Mutex
	m map[string]canonMemo
}{m: map[string]canonMemo{}}

// canonMemo is a remembered canonical form.
type canonMemo struct {
	b    []byte
	what string
}

// maxExprMemo bounds exprMemo: past it, the memory starts afresh.
const maxExprMemo = 1 << 14

// anonLookup reports whether a lookup expression's data names an
// anonymous set (__setN), whose elements its canonical form holds.
func anonLookup(data []byte) bool {
	anon := false
	eachAttr(data, func(typ uint16, v []byte) bool {
		if typ == unix.NFTA_LOOKUP_SET {
			anon = strings.HasPrefix(cstr(v), "__set")
			return false
		}
		return true
	})
	return anon
}

// canonExprOnce computes canonExpr.
func canonExprOnce(name string, data []byte, anon func(string) string, c *canonical) ([]byte, string) {
	foreign := func() ([]byte, string) {
		return append([]byte("foreign "+name+" "), data...), name + "(?)"
	}
	e := exprOf(name)
	if e == nil {
		return foreign()
	}
	fam := byte(nftables.TableFamilyINet)
	decode := data
	if name == "ct" {
		// The kernel's direction is one byte; google/nftables decodes
		// four (see marshalExpr).
		decode = ctDataDirectionWidth(data, 4)
	}
	if err := expr.Unmarshal(fam, decode, e); err != nil {
		return foreign()
	}
	if imm, ok := e.(*expr.Immediate); ok && imm.Register == unix.NFT_REG_VERDICT && len(imm.Data) == 0 {
		// A verdict is an immediate that writes the verdict register.
		e = &expr.Verdict{}
		if err := expr.Unmarshal(fam, data, e); err != nil {
			return foreign()
		}
	}
	if ct, ok := e.(*expr.Ct); ok {
		// google/nftables decodes a ct expression's destination
		// register only: a ct set (ct mark set ...) has a source one.
		if ad, err := netlink.NewAttributeDecoder(data); err == nil {
			ad.ByteOrder = binary.BigEndian
			for ad.Next() {
				if ad.Type() == unix.NFTA_CT_SREG {
					ct.SourceRegister, ct.Register = true, ad.Uint32()
				}
			}
		}
	}
	what := name
	switch e := e.(type) {
	case *expr.Counter:
		c.counter = &expr.Counter{Bytes: e.Bytes, Packets: e.Packets}
		e.Bytes, e.Packets = 0, 0
	case *expr.Lookup:
		e.SetID = 0
		if strings.HasPrefix(e.SetName, "__set") {
			e.SetName = anon(e.SetName)
		}
		what = "lookup(@" + e.SetName + ")"
	case *expr.Dynset:
		e.SetID = 0
		what = "dynset(@" + e.SetName + ")"
	case *expr.Verdict:
		what = exprVerdictText(e)
	case *expr.Target:
		num, bypass, ok := queueOf(e)
		if !ok {
			return foreign()
		}
		what = verdictText(Verdict{Kind: Queue, QueueNum: num, Bypass: bypass})
	}
	b, err := marshalExpr(byte(nftables.TableFamilyINet), e)
	if err != nil {
		return foreign()
	}
	if !decodedAll(name, data, b) {
		return foreign()
	}
	return b, what
}

// exprOf returns an empty expression of the named type, for the types
// dockerfence writes; nil for others.
func exprOf(name string) expr.Any {
	switch name {
	case "ct":
		return &expr.Ct{}
	case "meta":
		return &expr.Meta{}
	case "cmp":
		return &expr.Cmp{}
	case "payload":
		return &expr.Payload{}
	case "bitwise":
		return &expr.Bitwise{}
	case "lookup":
		return &expr.Lookup{}
	case "range":
		return &expr.Range{}
	case "fib":
		return &expr.Fib{}
	case "counter":
		return &expr.Counter{}
	case "limit":
		return &expr.Limit{}
	case "log":
		return &expr.Log{}
	case "immediate":
		return &expr.Immediate{}
	case "reject":
		return &expr.Reject{}
	case "dynset":
		return &expr.Dynset{}
	case "target":
		return &expr.Target{}
	}
	return nil
}

// neutral lists, by expression, attributes that the kernel returns and
// google/nftables neither decodes nor sends, with the one value they may
// hold for the expression to equal the model's: anything else there makes
// the expression foreign. Counter values and set IDs are not compared.
var neutral = map[string]map[uint16][]byte{
	"lookup":  {unix.NFTA_LOOKUP_FLAGS: {0, 0, 0, 0}},
	"bitwise": {6 /* NFTA_BITWISE_OP: mask and xor */ : {0, 0, 0, 0}},
	"counter": {unix.NFTA_COUNTER_BYTES: nil, unix.NFTA_COUNTER_PACKETS: nil},
	"limit":   {unix.NFTA_LIMIT_FLAGS: {0, 0, 0, 0}},
}

// decodedAll reports whether every attribute of data (an expression's
// NFTA_EXPR_DATA) is one that the canonical marshalling out carries too,
// or a neutral one.
func decodedAll(name string, data, out []byte) bool {
	var outData []byte
	eachAttr(out, func(typ uint16, v []byte) bool {
		if typ == unix.NFTA_EXPR_DATA {
			outData = v
		}
		return true
	})
	have := map[uint16]bool{}
	eachAttr(outData, func(typ uint16, _ []byte) bool {
		have[typ] = true
		return true
	})
	ok := true
	eachAttr(data, func(typ uint16, v []byte) bool {
		if have[typ] {
			return true
		}
		want, isNeutral := neutral[name][typ]
		if !isNeutral || (want != nil && !bytes.Equal(v, want)) {
			ok = false
		}
		return ok
	})
	return ok
}

// verdictWords are the words of netlink verdicts in summaries; a jump and
// a goto are followed by their chain.
var verdictWords = map[expr.VerdictKind]string{
	expr.VerdictAccept: "accept", expr.VerdictDrop: "drop", expr.VerdictReturn: "return",
	expr.VerdictJump: "jump ", expr.VerdictGoto: "goto ",
}

// exprVerdictText renders a netlink verdict for a summary.
func exprVerdictText(v *expr.Verdict) string {
	w, ok := verdictWords[v.Kind]
	if !ok {
		return fmt.Sprintf("verdict %d", v.Kind)
	}
	if strings.HasSuffix(w, " ") {
		w += v.Chain
	}
	return w
}

// anonToken is what an anonymous set stands for in the canonical form: its
// key type and its elements in key order.
func anonToken(keyType uint32, elems []nftables.SetElement) string {
	keys := make([]string, len(elems))
	for i, e := range elems {
		keys[i] = elemKey(e)
	}
	sort.Strings(keys)
	return fmt.Sprintf("{%d:%s}", keyType, strings.Join(keys, ","))
}

// canonical returns the canonical form of the rule's expressions as
// dockerfence encodes them.
func (r *Rule) canonical() (canonical, error) {
	tbl := &nftables.Table{Family: nftables.TableFamilyINet}
	tokens := map[string]string{}
	named := func(name string) *nftables.Set { return &nftables.Set{Table: tbl, Name: name} }
	anon := func(s *nftables.Set, elems []nftables.SetElement) error {
		s.Name = fmt.Sprintf("__set%d", len(tokens))
		tokens[s.Name] = anonToken(s.KeyType.GetNFTMagic(), elems)
		return nil
	}
	exprs, err := ruleExprs(tbl, named, anon, r)
	if err != nil {
		return canonical{}, err
	}
	var list attrs
	for _, e := range exprs {
		b, err := marshalExpr(byte(nftables.TableFamilyINet), e)
		if err != nil {
			return canonical{}, err
		}
		list = list.add(unix.NFTA_LIST_ELEM|nlaNested, b)
	}
	return canon(list, func(name string) string { return tokens[name] }), nil
}

// ExprKey returns the canonical form of the rule's expressions, as
// RuleState.Exprs holds it for a rule of the kernel: a kernel rule with the
// same key has the same expressions (see canon). A rule that cannot be
// encoded has a key that no kernel rule has.
func (r *Rule) ExprKey() string {
	return r.keys().expr
}

// exprKey computes ExprKey.
func (r *Rule) exprKey() string {
	c, err := r.canonical()
	if err != nil {
		return "unencodable: " + err.Error()
	}
	return c.key
}

// KernelRule returns the rule as the kernel reports it when r was written
// with user data ud: its tags, its canonical expressions and its counter
// at zero, without a handle. The fake kernel reads its rules back so.
func KernelRule(r *Rule, ud []byte) RuleState {
	rs := RuleStateOf(ud)
	rs.UserData = ud
	if c, err := r.canonical(); err == nil {
		rs.Exprs, rs.Summary, rs.HasCounter = c.key, c.summary, c.counter != nil
	} else {
		rs.Exprs = "unencodable: " + err.Error()
	}
	return rs
}
