package nft_test

import (
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/nft/internal/nfttest"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the golden files of the netlink encoding")

// recorder plays a kernel that accepts every request, and records the
// messages it is sent, as google/nftables' internal/nftest does.
type recorder struct{ msgs []netlink.Message }

func (r *recorder) dial(reqs []netlink.Message) ([]netlink.Message, error) {
	r.msgs = append(r.msgs, reqs...)
	var acks []netlink.Message
	for _, m := range reqs {
		if m.Header.Flags&netlink.Acknowledge != 0 {
			acks = append(acks, netlink.Message{
				Header: netlink.Header{Type: netlink.Error, Sequence: m.Header.Sequence, PID: m.Header.PID},
				Data:   []byte{0, 0, 0, 0},
			})
		}
	}
	return acks, nil
}

// TestNetlinkGolden encodes the sample table through the real batch code
// against a recording connection and compares the messages, as a readable
// dump, with the golden files in testdata; go test -run TestNetlinkGolden
// -update rewrites them. A change of these files is a change of what
// dockerfence sends the kernel.
func TestNetlinkGolden(t *testing.T) {
	from, to := nfttest.Sample(), nfttest.Changed()
	have := stateOf(from)
	dump(have, from, NeedDump(to, have, SetDigests(to)))
	moved := nfttest.Sample()
	moved.Priority = -20
	tests := []struct {
		name string
		t    *Table
		have *State
	}{
		{"fresh", from, nil},
		{"incremental", to, have},
		{"replace", moved, stateOf(from)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			if err := SendPlan(tt.t, tt.have, rec.dial); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "netlink-"+tt.name+".golden"), dumpMessages(rec.msgs))
		})
	}
	// An element-only transaction on the runtime set: a refresh (delete
	// and add again), an address with a timeout, a prefix without.
	t.Run("update", func(t *testing.T) {
		rec := &recorder{}
		four := netip.MustParsePrefix("192.0.2.4/32")
		add := []Element{{Prefix: four, Timeout: 90 * time.Second}, {Prefix: netip.MustParsePrefix("198.51.100.0/24")}}
		if err := UpdateVia(rec.dial, "dftest", "learned_4", add, []Element{{Prefix: four}}); err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join("testdata", "netlink-update.golden"), dumpMessages(rec.msgs))
	})
}

// golden compares got with the file, or rewrites it with -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got; -update rewrites it):\n%s", file, diff)
	}
}

// msgNames names the nf_tables message types.
var msgNames = map[int]string{
	unix.NFT_MSG_NEWTABLE: "NEWTABLE", unix.NFT_MSG_GETTABLE: "GETTABLE", unix.NFT_MSG_DELTABLE: "DELTABLE",
	unix.NFT_MSG_NEWCHAIN: "NEWCHAIN", unix.NFT_MSG_GETCHAIN: "GETCHAIN", unix.NFT_MSG_DELCHAIN: "DELCHAIN",
	unix.NFT_MSG_NEWRULE: "NEWRULE", unix.NFT_MSG_GETRULE: "GETRULE", unix.NFT_MSG_DELRULE: "DELRULE",
	unix.NFT_MSG_NEWSET: "NEWSET", unix.NFT_MSG_GETSET: "GETSET", unix.NFT_MSG_DELSET: "DELSET",
	unix.NFT_MSG_NEWSETELEM: "NEWSETELEM", unix.NFT_MSG_GETSETELEM: "GETSETELEM", unix.NFT_MSG_DELSETELEM: "DELSETELEM",
}

// attrNames names the top-level attributes of each message type.
var attrNames = map[string]map[uint16]string{
	"table": {1: "name", 2: "flags"},
	"chain": {1: "table", 2: "handle", 3: "name", 4: "hook", 5: "policy", 7: "type"},
	"rule":  {1: "table", 2: "chain", 3: "handle", 4: "expressions", 7: "userdata"},
	"set":   {1: "table", 2: "name", 3: "flags", 4: "key_type", 5: "key_len", 6: "data_type", 7: "data_len", 10: "id", 13: "userdata"},
	"elems": {1: "table", 2: "set", 3: "elements", 4: "set_id"},
	// Nested attributes, by their parent's label.
	"element":  {1: "key", 2: "data", 3: "flags", 4: "timeout", 5: "expiration", 6: "userdata"},
	"key":      {1: "value"},
	"data":     {1: "value", 2: "verdict"},
	"verdict":  {1: "code", 2: "chain"},
	"hook":     {1: "hooknum", 2: "priority"},
	"elements": {},
}

// kinds maps a message name to its attribute space.
func kind(msg string) string {
	switch {
	case strings.HasSuffix(msg, "TABLE"):
		return "table"
	case strings.HasSuffix(msg, "CHAIN"):
		return "chain"
	case strings.HasSuffix(msg, "RULE"):
		return "rule"
	case strings.HasSuffix(msg, "SETELEM"):
		return "elems"
	}
	return "set"
}

// dumpMessages renders netlink messages readably: one line a message, an
// indented line an attribute, nested attributes indented further. Set IDs,
// which google/nftables allocates from a process-wide counter, are
// numbered in the order the dump meets them; sequence numbers and port IDs
// are left out.
func dumpMessages(msgs []netlink.Message) string {
	d := &dumper{ids: map[uint32]int{}}
	for _, m := range msgs {
		switch m.Header.Type {
		case netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN):
			d.line(0, "BEGIN")
			continue
		case netlink.HeaderType(unix.NFNL_MSG_BATCH_END):
			d.line(0, "END")
			continue
		}
		name, ok := msgNames[int(m.Header.Type&0xff)]
		if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || !ok || len(m.Data) < 4 {
			d.line(0, "message type %#x: %x", uint16(m.Header.Type), m.Data)
			continue
		}
		d.line(0, "%s family %d flags %s", name, m.Data[0], flagsText(m.Header.Flags))
		d.attrs(1, kind(name), m.Data[4:])
	}
	return d.b.String()
}

type dumper struct {
	b   strings.Builder
	ids map[uint32]int
}

func (d *dumper) line(depth int, format string, args ...any) {
	d.b.WriteString(strings.Repeat("  ", depth))
	fmt.Fprintf(&d.b, format, args...)
	d.b.WriteByte('\n')
}

// id numbers a set ID in the order of first appearance; 0 stays 0.
func (d *dumper) id(b []byte) string {
	if len(b) != 4 {
		return hex.EncodeToString(b)
	}
	v := binary.BigEndian.Uint32(b)
	if v == 0 {
		return "0"
	}
	if _, ok := d.ids[v]; !ok {
		d.ids[v] = len(d.ids) + 1
	}
	return fmt.Sprintf("set#%d", d.ids[v])
}

// attrs dumps the attributes of b, in attribute space scope.
func (d *dumper) attrs(depth int, scope string, b []byte) {
	attrs, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		d.line(depth, "undecodable %x: %v", b, err)
		return
	}
	for i, a := range attrs {
		typ := a.Type & 0x3fff
		label := fmt.Sprint(typ)
		if n, ok := attrNames[scope][typ]; ok {
			label = n
		}
		if scope == "elements" {
			label = fmt.Sprint(i + 1) // every element is an NFTA_LIST_ELEM: number them
		}
		switch {
		case scope == "rule" && typ == unix.NFTA_RULE_EXPRESSIONS:
			d.line(depth, "%s", label)
			d.exprs(depth+1, a.Data)
		case a.Type&unix.NLA_F_NESTED != 0 && nested(a.Data):
			d.line(depth, "%s:", label)
			inner := label
			if scope == "elements" {
				inner = "element"
			}
			d.attrs(depth+1, inner, a.Data)
		case scope == "set" && typ == unix.NFTA_SET_ID,
			scope == "elems" && typ == unix.NFTA_SET_ELEM_LIST_SET_ID,
			scope == "expr lookup" && typ == unix.NFTA_LOOKUP_SET_ID:
			d.line(depth, "%s %s", label, d.id(a.Data))
		case scope == "rule" && typ == unix.NFTA_RULE_USERDATA, scope == "set" && typ == unix.NFTA_SET_USERDATA:
			d.line(depth, "%s %s", label, tlvText(a.Data))
		default:
			d.line(depth, "%s %s", label, valueText(a.Data))
		}
	}
}

// exprs dumps a rule's expressions, one line each with its name.
func (d *dumper) exprs(depth int, b []byte) {
	elems, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		d.line(depth, "undecodable %x: %v", b, err)
		return
	}
	for _, e := range elems {
		attrs, err := netlink.UnmarshalAttributes(e.Data)
		if err != nil {
			d.line(depth, "undecodable %x: %v", e.Data, err)
			continue
		}
		name := "?"
		for _, a := range attrs {
			if a.Type&0x3fff == unix.NFTA_EXPR_NAME {
				name = strings.TrimRight(string(a.Data), "\x00")
			}
		}
		d.line(depth, "%s", name)
		for _, a := range attrs {
			if a.Type&0x3fff == unix.NFTA_EXPR_DATA {
				d.attrs(depth+1, "expr "+name, a.Data)
			}
		}
	}
}

// nested reports whether b holds netlink attributes. google/nftables marks
// some plain values nested (an element's flags), so this is decided by
// their bytes.
func nested(b []byte) bool {
	attrs, err := netlink.UnmarshalAttributes(b)
	if err != nil || len(attrs) == 0 {
		return false
	}
	n := 0
	for _, a := range attrs {
		n += (4 + len(a.Data) + 3) &^ 3
	}
	return n == len(b)
}

// valueText renders a leaf: a NUL-terminated printable string quoted, anything else in hex.
func valueText(b []byte) string {
	if s, ok := strings.CutSuffix(string(b), "\x00"); ok && s != "" && printable(s) {
		return fmt.Sprintf("%q", s)
	}
	return hex.EncodeToString(b)
}

func printable(s string) bool {
	for _, r := range s {
		if r < ' ' || r > '~' {
			return false
		}
	}
	return true
}

// tlvText renders nftnl user data: type-length-value entries.
func tlvText(b []byte) string {
	var parts []string
	for len(b) >= 2 {
		typ, n := b[0], int(b[1])
		if len(b) < 2+n {
			break
		}
		parts = append(parts, fmt.Sprintf("%#x=%s", typ, valueText(b[2:2+n])))
		b = b[2+n:]
	}
	if len(b) > 0 {
		parts = append(parts, "rest="+hex.EncodeToString(b))
	}
	return strings.Join(parts, " ")
}

func flagsText(f netlink.HeaderFlags) string {
	names := []struct {
		f    netlink.HeaderFlags
		name string
	}{
		{netlink.Request, "request"}, {netlink.Acknowledge, "ack"}, {netlink.Echo, "echo"},
		{netlink.Replace, "replace"}, {netlink.Excl, "excl"}, {netlink.Create, "create"}, {netlink.Append, "append"},
	}
	var out []string
	for _, n := range names {
		if f&n.f != 0 {
			out = append(out, n.name)
			f &^= n.f
		}
	}
	if f != 0 {
		out = append(out, fmt.Sprintf("%#x", uint16(f)))
	}
	return strings.Join(out, "|")
}
