package nft

import (
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// kernelList encodes exprs as a rule's NFTA_RULE_EXPRESSIONS, as the
// kernel returns them.
func kernelList(t *testing.T, exprs ...expr.Any) []byte {
	t.Helper()
	var list attrs
	for _, e := range exprs {
		b, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
		if err != nil {
			t.Fatal(err)
		}
		list = list.add(unix.NFTA_LIST_ELEM|nlaNested, b)
	}
	return list
}

// rawExpr is an expression of name with data as given, attribute by
// attribute, for what google/nftables would not marshal.
func rawExpr(name string, data attrs) []byte {
	e := attrs(nil).str(unix.NFTA_EXPR_NAME, name).add(unix.NFTA_EXPR_DATA|nlaNested, data)
	return attrs(nil).add(unix.NFTA_LIST_ELEM|nlaNested, e)
}

func noAnon(string) string { return "" }

// The canonical form follows every expression of a rule, and nothing else:
// not counter values, not set IDs, not the names the kernel gives
// anonymous sets, not neutral attributes the kernel adds.
func TestCanonical(t *testing.T) {
	rule := &Rule{Matches: []Match{Addr{Set: "l_private_4"}, L4Proto{Protos: []uint8{6, 17}}}, Counter: true, Verdict: Verdict{Kind: Goto, Target: "c_deny"}}
	want, err := rule.canonical()
	if err != nil {
		t.Fatal(err)
	}
	if want.summary != "meta cmp payload lookup(@l_private_4) meta lookup(@{12:06,11}) counter goto c_deny" {
		t.Errorf("summary %q", want.summary)
	}
	// The same rule as the kernel returns it: a lookup without set ID
	// but with flags 0, the anonymous set under the kernel's name, and
	// a counter that has counted.
	kernel := func(invert bool, counter *expr.Counter, verdict *expr.Verdict, extra ...[]byte) []byte {
		lookup := attrs(nil).str(unix.NFTA_LOOKUP_SET, "l_private_4").u32(unix.NFTA_LOOKUP_SREG, 1)
		if invert {
			lookup = lookup.u32(unix.NFTA_LOOKUP_FLAGS, unix.NFT_LOOKUP_F_INV)
		} else {
			lookup = lookup.u32(unix.NFTA_LOOKUP_FLAGS, 0)
		}
		anon := attrs(nil).str(unix.NFTA_LOOKUP_SET, "__set3").u32(unix.NFTA_LOOKUP_SREG, 1).u32(unix.NFTA_LOOKUP_FLAGS, 0)
		l := kernelList(t, nfproto(false)...)
		l = append(l, kernelList(t, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4})...)
		l = append(l, rawExpr("lookup", lookup)...)
		l = append(l, kernelList(t, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1})...)
		l = append(l, rawExpr("lookup", anon)...)
		for _, x := range extra {
			l = append(l, x...)
		}
		return append(l, kernelList(t, counter, verdict)...)
	}
	anon := func(name string) string {
		if name == "__set3" {
			return anonToken(nftables.TypeInetProto.GetNFTMagic(), []nftables.SetElement{{Key: []byte{17}}, {Key: []byte{6}}})
		}
		return "?"
	}
	deny := &expr.Verdict{Kind: expr.VerdictGoto, Chain: "c_deny"}
	got := canon(kernel(false, &expr.Counter{Packets: 9, Bytes: 900}, deny), anon)
	if got.key != want.key {
		t.Errorf("the kernel's rule is not the model's:\n%s\n%s", got.summary, want.summary)
	}
	if got.counter == nil || got.counter.Packets != 9 || got.counter.Bytes != 900 {
		t.Errorf("counter %+v, want 9 packets, 900 bytes", got.counter)
	}
	for name, list := range map[string][]byte{
		"another verdict":        kernel(false, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept}),
		"an inverted lookup":     kernel(true, &expr.Counter{}, deny),
		"one more expression":    kernel(false, &expr.Counter{}, deny, kernelList(t, &expr.Verdict{Kind: expr.VerdictAccept})),
		"an unknown expression":  kernel(false, &expr.Counter{}, deny, rawExpr("quota", attrs(nil).u64(1, 5))),
		"an undecoded attribute": kernel(false, &expr.Counter{}, deny, rawExpr("bitwise", attrs(nil).u32(unix.NFTA_BITWISE_SREG, 1).u32(unix.NFTA_BITWISE_DREG, 1).u32(unix.NFTA_BITWISE_LEN, 4).u32(6, 1))),
	} {
		if c := canon(list, anon); c.key == want.key {
			t.Errorf("%s: the canonical form does not change", name)
		}
	}
	// Another anonymous set's elements make another rule.
	other := canon(kernel(false, &expr.Counter{}, deny), func(string) string {
		return anonToken(nftables.TypeInetProto.GetNFTMagic(), []nftables.SetElement{{Key: []byte{6}}})
	})
	if other.key == want.key {
		t.Error("the anonymous set's elements do not count")
	}
	unknown := canon(rawExpr("quota", attrs(nil).u64(1, 5)), noAnon)
	if !strings.Contains(unknown.summary, "quota(?)") {
		t.Errorf("summary of an unknown expression: %q", unknown.summary)
	}
}

// Every rule of the sample table has its own key, and keeps it.
func TestExprKeys(t *testing.T) {
	a := &Rule{Counter: true, Verdict: Verdict{Kind: Accept}, Comment: "a"}
	b := &Rule{Counter: true, Verdict: Verdict{Kind: Accept}, Comment: "b"}
	if a.ExprKey() != b.ExprKey() {
		t.Error("a comment changes the expressions' key")
	}
	for _, r := range []*Rule{
		{Verdict: Verdict{Kind: Accept}},
		{Counter: true, Verdict: Verdict{Kind: Drop}},
		{Counter: true, Verdict: Verdict{Kind: Accept}, Matches: []Match{CtReply{}}},
	} {
		if r.ExprKey() == a.ExprKey() {
			t.Errorf("%q has the key of %q", r.Text(), a.Text())
		}
	}
}

// A queue verdict is the target NFQUEUE, revision 3, with the info of
// one queue; its canonical form is the same when the kernel returns it,
// and any other target, or other info, is foreign.
func TestCanonicalQueue(t *testing.T) {
	rule := &Rule{Counter: true, Verdict: Verdict{Kind: Queue, QueueNum: 53, Bypass: true}}
	want, err := rule.canonical()
	if err != nil {
		t.Fatal(err)
	}
	if want.summary != "counter queue num 53 bypass" {
		t.Errorf("summary %q", want.summary)
	}
	info := func(b ...byte) attrs {
		return attrs(nil).str(unix.NFTA_TARGET_NAME, "NFQUEUE").add(unix.NFTA_TARGET_REV, []byte{0, 0, 0, 3}).add(unix.NFTA_TARGET_INFO, b)
	}
	le := func(v uint16) []byte { return binaryutil.NativeEndian.PutUint16(v) }
	good := append(append(append(le(53), le(1)...), le(1)...), 0, 0)
	for _, c := range []struct {
		name string
		info []byte
		ok   bool
	}{
		{"as written", good, true},
		{"no bypass", append(append(append(le(53), le(1)...), le(0)...), 0, 0), false},
		{"two queues", append(append(append(le(53), le(2)...), le(1)...), 0, 0), false},
		{"short", good[:6], false},
	} {
		l := append(kernelList(t, &expr.Counter{Packets: 3, Bytes: 99}), rawExpr("target", info(c.info...))...)
		got := canon(l, noAnon)
		if (got.key == want.key) != c.ok {
			t.Errorf("%s: canonical %q, want equal %v to %q", c.name, got.summary, c.ok, want.summary)
		}
	}
	if v, b, ok := queueOf(queueTarget(7, false)); v != 7 || b || !ok {
		t.Errorf("queueOf(queueTarget(7, false)) = %d, %v, %v", v, b, ok)
	}
}
