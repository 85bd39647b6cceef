package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// batchKernel plays the kernel's answers to batches, as nfnetlink gives
// them: an error for every message refuse names (by its type and the name
// in its first string attributes), then the acknowledgement of the last
// message if it asked for one; each answer in a datagram of its own, as
// the kernel sends them. Requests (GETTABLE) are answered by table.
type batchKernel struct {
	refuse func(m netlink.Message) error
	// table answers GETTABLE: the table's flags and owner.
	flags, owner uint32
	sent         [][]netlink.Message
	queue        []netlink.Message
}

func (k *batchKernel) dial(reqs []netlink.Message) ([]netlink.Message, error) {
	if reqs == nil { // the caller reads on: the next datagram
		if len(k.queue) == 0 {
			return nil, errors.New("batchKernel: read past the last answer")
		}
		m := k.queue[0]
		k.queue = k.queue[1:]
		return []netlink.Message{m}, nil
	}
	k.sent = append(k.sent, reqs)
	if reqs[0].Header.Type == nftType(unix.NFT_MSG_GETTABLE) {
		a := attrs(nil).str(unix.NFTA_TABLE_NAME, "t").u32(unix.NFTA_TABLE_FLAGS, k.flags).u32(nftaTableOwner, k.owner)
		r := reqs[0]
		r.Header.Type = nftType(unix.NFT_MSG_NEWTABLE)
		r.Data = append([]byte{unix.NFPROTO_INET, 0, 0, 0}, a...)
		return []netlink.Message{r}, nil
	}
	for _, m := range reqs {
		var err error
		if k.refuse != nil {
			err = k.refuse(m)
		}
		switch {
		case err != nil:
			var errno unix.Errno
			errors.As(err, &errno)
			e, _ := nltest.Error(int(errno), []netlink.Message{m})
			k.queue = append(k.queue, e...)
		case m.Header.Flags&netlink.Acknowledge != 0:
			k.queue = append(k.queue, netlink.Message{Header: netlink.Header{Type: netlink.Error, Sequence: m.Header.Sequence}, Data: make([]byte, 4)})
		}
	}
	if len(k.queue) == 0 {
		return nil, errors.New("batchKernel: no answer")
	}
	return k.dial(nil)
}

// name returns the first string attribute of an nf_tables message after
// the table's: the chain's, set's or rule's chain name.
func name(m netlink.Message) string {
	var out []string
	eachAttr(m.Data[4:], func(typ uint16, v []byte) bool {
		if len(v) > 0 && v[len(v)-1] == 0 && typ <= 3 {
			out = append(out, cstr(v))
		}
		return true
	})
	if len(out) < 2 {
		return strings.Join(out, "")
	}
	return out[1]
}

func useKernel(t *testing.T, k *batchKernel) {
	t.Helper()
	testDial = k.dial
	t.Cleanup(func() { testDial = nil })
}

func sampleTx() *Transaction {
	return &Transaction{Table: "t", Priority: -10, Ops: []Op{
		{Kind: OpAddTable, Flags: FlagOwner | FlagPersist, SetFlags: true},
		{Kind: OpAddChain, Name: "forward", Hook: HookForward},
		{Kind: OpAddChain, Name: "c2"},
		{Kind: OpAddRule, Name: "c2", Rule: &Rule{Counter: true, Verdict: Verdict{Kind: Accept}}},
		{Kind: OpAddRule, Name: "forward", Rule: &Rule{Verdict: Verdict{Kind: Jump, Target: "c2"}}},
	}}
}

// A transaction is one batch: begin, the commands' messages, end; only the
// last message before the end asks for an acknowledgement, none for an
// echo; sequence numbers follow each other; the table's flags are sent
// only when the command sets them.
func TestBatchMessages(t *testing.T) {
	k := &batchKernel{}
	useKernel(t, k)
	tx := sampleTx()
	tx.Ops = append(tx.Ops, Op{Kind: OpAddTable})
	if err := (Kernel{}).Commit(tx); err != nil {
		t.Fatal(err)
	}
	if len(k.sent) != 1 {
		t.Fatalf("%d sends, want one batch", len(k.sent))
	}
	msgs := k.sent[0]
	if msgs[0].Header.Type != unix.NFNL_MSG_BATCH_BEGIN || msgs[len(msgs)-1].Header.Type != unix.NFNL_MSG_BATCH_END {
		t.Fatalf("not a batch: first %v, last %v", msgs[0].Header.Type, msgs[len(msgs)-1].Header.Type)
	}
	if len(msgs) != len(tx.Ops)+2 {
		t.Errorf("%d messages for %d commands", len(msgs), len(tx.Ops))
	}
	for i, m := range msgs {
		if want := i == len(msgs)-2; (m.Header.Flags&netlink.Acknowledge != 0) != want {
			t.Errorf("message %d: ack %v, want %v", i, !want, want)
		}
		if m.Header.Flags&netlink.Echo != 0 {
			t.Errorf("message %d asks for an echo", i)
		}
		if i > 0 && m.Header.Sequence != msgs[i-1].Header.Sequence+1 {
			t.Errorf("message %d: sequence %d after %d", i, m.Header.Sequence, msgs[i-1].Header.Sequence)
		}
	}
	flags := func(m netlink.Message) (uint32, bool) {
		var f uint32
		found := false
		eachAttr(m.Data[4:], func(typ uint16, v []byte) bool {
			if typ == unix.NFTA_TABLE_FLAGS {
				f, found = be32(v), true
			}
			return true
		})
		return f, found
	}
	if f, ok := flags(msgs[1]); !ok || f != uint32(FlagOwner|FlagPersist) {
		t.Errorf("NEWTABLE with SetFlags: flags %#x (sent %v), want owner,persist", f, ok)
	}
	if _, ok := flags(msgs[len(msgs)-2]); ok {
		t.Error("NEWTABLE without SetFlags sends flags")
	}
}

// The kernel's refusals name the first command refused, by its index and
// in nft syntax, with its errno and how many others it refused.
func TestBatchRefusalNamesCommand(t *testing.T) {
	k := &batchKernel{refuse: func(m netlink.Message) error {
		if name(m) == "c2" && m.Header.Type != nftType(unix.NFT_MSG_NEWRULE) {
			return unix.ENOENT
		}
		if m.Header.Type == nftType(unix.NFT_MSG_NEWRULE) && name(m) == "forward" {
			return unix.ENOENT // a consequence: its chain goes to c2
		}
		return nil
	}}
	useKernel(t, k)
	err := (Kernel{}).Commit(sampleTx())
	var ce *CommandError
	if !errors.As(err, &ce) || !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Commit = %v, want a CommandError with ENOENT", err)
	}
	if ce.Index != 2 || ce.Command != "add chain inet t c2" || ce.Others != 1 {
		t.Errorf("CommandError = %+v, want command 3 (add chain inet t c2), 1 other", ce)
	}
	if msg := err.Error(); !strings.Contains(msg, `command 3 (add chain inet t c2): no such file or directory; 1 more commands refused`) || !strings.Contains(msg, "the previous table is unchanged") {
		t.Errorf("error %q does not say which command failed", msg)
	}
}

// A refusal of the batch as a whole (the begin's sequence number) is no
// command's, and EPERM then means no CAP_NET_ADMIN; EPERM for a command
// means that another socket owns the table, whose port the error names.
func TestBatchRefusalEPERM(t *testing.T) {
	t.Run("batch", func(t *testing.T) {
		// nfnetlink refuses the batch at its begin, and answers no more.
		testDial = func(reqs []netlink.Message) ([]netlink.Message, error) {
			return nltest.Error(int(unix.EPERM), reqs)
		}
		t.Cleanup(func() { testDial = nil })
		err := (Kernel{}).Commit(sampleTx())
		var ce *CommandError
		if !errors.As(err, &ce) || ce.Index != -1 || !strings.Contains(err.Error(), "CAP_NET_ADMIN") {
			t.Errorf("Commit = %v (%+v), want the batch refused for want of CAP_NET_ADMIN", err, ce)
		}
	})
	t.Run("owned", func(t *testing.T) {
		k := &batchKernel{flags: uint32(FlagOwner | FlagPersist), owner: 77, refuse: func(m netlink.Message) error {
			if m.Header.Type == unix.NFNL_MSG_BATCH_BEGIN || m.Header.Type == unix.NFNL_MSG_BATCH_END {
				return nil
			}
			return unix.EPERM
		}}
		useKernel(t, k)
		err := (Kernel{}).Commit(sampleTx())
		if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "owned by the netlink socket of port 77") || strings.Contains(err.Error(), "CAP_NET_ADMIN") {
			t.Errorf("Commit = %v, want the owner named", err)
		}
	})
}

// A large set is sent in as many messages as its elements need, each
// element list within the 16-bit length of one netlink attribute, and
// every element is sent once.
func TestElementChunks(t *testing.T) {
	s := &Set{Name: "big", Key: KeyIPv6}
	for i := range 20000 {
		var b [16]byte
		b[0] = 0x20
		binary.BigEndian.PutUint32(b[4:], uint32(i)*4)
		a := netip.AddrFrom16(b)
		s.Ranges = append(s.Ranges, Range{From: a, To: a})
	}
	enc, err := encode(&Transaction{Table: "t", Ops: []Op{{Kind: OpAddSet, Set: s}}})
	if err != nil {
		t.Fatal(err)
	}
	elems := 0
	for _, m := range enc.msgs[1:] {
		if m.Header.Type != nftType(unix.NFT_MSG_NEWSETELEM) {
			t.Fatalf("message type %v after the set", m.Header.Type)
		}
		eachAttr(m.Data[4:], func(typ uint16, v []byte) bool {
			if typ == unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				if len(v)+nlaHeader > 0xffff {
					t.Errorf("element list of %d bytes", len(v))
				}
				eachAttr(v, func(uint16, []byte) bool { elems++; return true })
			}
			return true
		})
	}
	if want := len(s.Elements()); elems != want {
		t.Errorf("%d elements sent, want %d", elems, want)
	}
	if n := len(enc.msgs) - 1; n < 10 || n > 30 {
		t.Errorf("%d element messages for %d elements", n, elems)
	}
	for _, op := range enc.ops {
		if op != 0 {
			t.Fatalf("a message of command %d; there is one command", op)
		}
	}
}

// The probe for flags owner and persist sends a transaction that cannot
// commit, and tells a kernel that refuses the flags from one that takes
// them.
func TestProbePersist(t *testing.T) {
	for _, tc := range []struct {
		refuse unix.Errno
		want   bool
	}{{unix.EOPNOTSUPP, false}, {0, true}} {
		t.Run(fmt.Sprint(tc.want), func(t *testing.T) {
			k := &batchKernel{}
			k.refuse = func(m netlink.Message) error {
				if m.Header.Type != nftType(unix.NFT_MSG_NEWTABLE) {
					return nil
				}
				if m.Header.Flags&excl != 0 {
					return unix.EEXIST
				}
				if tc.refuse != 0 {
					return tc.refuse
				}
				return nil
			}
			useKernel(t, k)
			c, err := dialConn(0)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			got, err := probePersist(c)
			if err != nil || got != tc.want {
				t.Errorf("probePersist = %v, %v; want %v", got, err, tc.want)
			}
			if msgs := k.sent[0]; len(msgs) != 4 || msgs[2].Header.Flags&excl == 0 {
				t.Errorf("probe batch: %d messages, the second NEWTABLE not exclusive", len(msgs))
			}
		})
	}
}

// A refused command is named in one line however many elements it holds,
// and an element command that changes no interval still has a name.
func TestShortOp(t *testing.T) {
	tx := &Transaction{Table: "t"}
	many := Op{Kind: OpAddElements, Name: "s", Items: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}}
	if got, want := shortOp(tx, many), "add element inet t s { 10.0.0.1, 10.0.0.2, 10.0.0.3, ... } (5 elements)"; got != want {
		t.Errorf("shortOp = %q, want %q", got, want)
	}
	bare := Op{Kind: OpDeleteElements, Name: "s", Elems: make([]nftables.SetElement, 2)}
	if got, want := shortOp(tx, bare), "delete element inet t s { 2 interval boundaries }"; got != want {
		t.Errorf("shortOp = %q, want %q", got, want)
	}
}
