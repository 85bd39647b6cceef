package nft

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// TestTupleKeys checks the keys of concatenated set types as the kernel
// stores them (each field padded to 4 bytes), their key types (nft's
// concatenated magic and length), that they decode back, and their text.
func TestTupleKeys(t *testing.T) {
	u := Tuple{IfName: "vetha", Addr: netip.MustParseAddr("10.99.0.2"), MAC: [6]byte{0xbe, 0x85, 0x66, 0x62, 0x94, 0x92}}
	ifn := "7665746861" + "0000000000000000000000"
	for _, c := range []struct {
		key        KeyType
		hex, text  string
		magic, len uint32
	}{
		{KeyEther, "be8566629492", "be:85:66:62:94:92", 9, 6},
		{KeyIfNameIPv4, ifn + "0a630002", `"vetha" . 10.99.0.2`, 41<<6 | 7, 20},
		{KeyIfNameEther, ifn + "be85666294920000", `"vetha" . be:85:66:62:94:92`, 41<<6 | 9, 24},
		{KeyIfNameIPv4Ether, ifn + "0a630002" + "be85666294920000", `"vetha" . 10.99.0.2 . be:85:66:62:94:92`, (41<<6|7)<<6 | 9, 28},
	} {
		k := u.key(c.key)
		if got := hex.EncodeToString(k); got != c.hex {
			t.Errorf("%s: key %s, want %s", c.key, got, c.hex)
		}
		if c.key.Len() != len(k) || c.key.datatype().Bytes != c.len {
			t.Errorf("%s: Len %d, datatype %d bytes, key %d; want %d", c.key, c.key.Len(), c.key.datatype().Bytes, len(k), c.len)
		}
		dt := c.key.datatype()
		if got := dt.GetNFTMagic(); got != c.magic {
			t.Errorf("%s: magic %d, want %d", c.key, got, c.magic)
		}
		back, ok := tupleOf(c.key, k)
		if !ok || back.text(c.key) != c.text || u.text(c.key) != c.text {
			t.Errorf("%s: decoded %+v (%v) as %q, want %q", c.key, back, ok, back.text(c.key), c.text)
		}
		s := &Set{Name: "s", Key: c.key, Tuples: []Tuple{u, u}}
		if s.Interval() || len(setElements(s)) != 1 || !bytes.Equal(setElements(s)[0].Key, k) {
			t.Errorf("%s: interval %v, elements %v; want one, no interval", c.key, s.Interval(), setElements(s))
		}
	}
	v6 := Tuple{IfName: "vetha", Addr: netip.MustParseAddr("fd00::2")}
	if k := v6.key(KeyIfNameIPv6); len(k) != 32 || KeyIfNameIPv6.String() != "ifname . ipv6_addr" {
		t.Errorf("ifname . ipv6_addr: key %x, %s", k, KeyIfNameIPv6)
	}
}

// TestLookupRegisters checks that a lookup loads its fields into the
// registers the kernel returns them in: a 16-byte register where a field
// starts at one, else a 32-bit one.
func TestLookupRegisters(t *testing.T) {
	es, err := Lookup{Fields: []Field{FieldIIfName, FieldARPSenderIP, FieldARPSenderMAC}, Set: "ownarp", Neg: true}.exprs(namedSet("ownarp"))
	if err != nil {
		t.Fatal(err)
	}
	want := []uint32{1, 2, 8 + 5}
	for i, w := range want {
		var got uint32
		switch e := es[i].(type) {
		case *expr.Meta:
			got = e.Register
		case *expr.Payload:
			got = e.DestRegister
		}
		if got != w {
			t.Errorf("field %d in register %d, want %d", i, got, w)
		}
	}
	if l := es[3].(*expr.Lookup); l.SourceRegister != 1 || !l.Invert || l.SetName != "ownarp" {
		t.Errorf("lookup %+v", l)
	}
	if got := (Lookup{Fields: []Field{FieldIIfName, FieldEtherSrc}, Set: "ownmac", Neg: true}).text(); got != "iifname . ether saddr != @ownmac" {
		t.Errorf("text %q", got)
	}
	long := Lookup{Fields: []Field{FieldIIfName, FieldIPSrc6, FieldNDTarget, FieldIPSrc6, FieldIPSrc4}, Set: "x"}
	if _, err := long.exprs(namedSet("x")); err == nil {
		t.Error("a lookup longer than the registers was encoded")
	}
}

// namedSet is a named set as ruleExprs's sets gives it.
func namedSet(name string) *nftables.Set { return &nftables.Set{Name: name} }
