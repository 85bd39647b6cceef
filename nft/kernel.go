package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// Socket buffer sizes for the nf_tables netlink socket. The kernel refuses a
// batch larger than the send buffer, and answers every message of the batch,
// so both must hold a whole table: 100k prefixes make a batch of about 8 MiB.
// Memory is only used while a batch is in flight.
const (
	sendBuffer    = 64 << 20
	receiveBuffer = 16 << 20
)

// Kernel applies and reads dockerfence's table over netlink.
type Kernel struct {
	// NetNS is a file descriptor of the network namespace to work in; 0 means
	// the calling thread's.
	NetNS int
}

// testDial is a test seam: when a test sets it, it answers every netlink
// request of Kernel's connections in place of the kernel (see nltest.Func),
// so that tests can play a kernel that refuses or lacks nf_tables.
var testDial nltest.Func

// options returns the options of an nftables connection: more, the
// namespace, and, with buffers, large socket buffers (see setBuffers), which
// a test's fake kernel has no socket for.
func (k Kernel) options(buffers bool, more ...nftables.ConnOption) []nftables.ConnOption {
	if k.NetNS != 0 {
		more = append(more, nftables.WithNetNSFd(k.NetNS))
	}
	if testDial != nil {
		return append(more, nftables.WithTestDial(testDial))
	}
	if buffers {
		more = append(more, nftables.WithSockOptions(setBuffers))
	}
	return more
}

// dial opens a raw nfnetlink socket for the requests google/nftables does
// not make.
func (k Kernel) dial() (*netlink.Conn, error) {
	if testDial != nil {
		return nltest.Dial(testDial), nil
	}
	return netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: k.NetNS})
}

func (k Kernel) conn() (*nftables.Conn, error) {
	c, err := nftables.New(k.options(true)...)
	if err != nil {
		return nil, explain(err)
	}
	return c, nil
}

// readConn returns a connection for a series of dumps: one socket for them
// all (a connection that is not lasting opens a socket per request, which
// for a table of hundreds of chains costs more than the dumps). The caller
// must call its CloseLasting.
func (k Kernel) readConn() (*nftables.Conn, error) {
	c, err := nftables.New(k.options(false, nftables.AsLasting())...)
	if err != nil {
		return nil, explain(err)
	}
	return c, nil
}

// setBuffers enlarges the socket buffers, past the sysctl limits where the
// process has CAP_NET_ADMIN (which changing nf_tables needs anyway).
func setBuffers(c *netlink.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, o := range []struct{ opt, force, size int }{
			{unix.SO_SNDBUF, unix.SO_SNDBUFFORCE, sendBuffer},
			{unix.SO_RCVBUF, unix.SO_RCVBUFFORCE, receiveBuffer},
		} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.force, o.size) != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o.opt, o.size)
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// explain turns the kernel's bare errno into a message that says what to
// do, in one line.
func explain(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w: nftables needs CAP_NET_ADMIN in this network namespace: run as root (sudo), or grant the capability (systemd: AmbientCapabilities=CAP_NET_ADMIN)", err)
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("%w: %s", err, noNFTables)
	case errors.Is(err, unix.ENOBUFS):
		return fmt.Errorf("%w: the kernel ran out of netlink buffer space for the batch", err)
	}
	return err
}

// noNFTables says what to do on a kernel without nf_tables.
const noNFTables = "this kernel has no nf_tables: load the module (modprobe nf_tables) or use a kernel built with CONFIG_NF_TABLES"

// explainFirst is explain for the answer to the first nf_tables request of a
// command, which also tells a kernel without nf_tables. Without nfnetlink,
// opening the socket fails with EPROTONOSUPPORT (explain says so); with
// nfnetlink but without nf_tables, nfnetlink answers a request with EINVAL
// and a batch with EOPNOTSUPP, which a kernel with nf_tables also gives for a
// request it finds wrong. A request for the ruleset's generation tells the
// two apart: it cannot be wrong, so EINVAL to it means no nf_tables.
func (k Kernel) explainFirst(err error) error {
	if (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)) && k.noNFTables() {
		return fmt.Errorf("%w: %s", err, noNFTables)
	}
	return explain(err)
}

// noNFTables reports whether the kernel answers a request for the ruleset's
// generation with EINVAL, as nfnetlink does for a subsystem it lacks.
func (k Kernel) noNFTables() bool {
	c, err := k.dial()
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	return errors.Is(err, unix.EINVAL)
}

// Apply makes the kernel's table equal to t and reports whether anything
// changed. A missing table is created in one netlink transaction. An
// existing one is changed in place, chain by chain and element by element
// (see changes), so that counters of unchanged rules survive and no packet
// crossing the commit meets a mix of old and new that lets it through: sets
// the new rules need are first created in a transaction that nothing refers
// to yet, then one transaction switches the table over. If the kernel
// rejects any part of that, the previous table stays exactly as it was, and
// the staged sets are removed again.
//
// The rules record what each set should hold, so Apply reads a set's
// elements only when that differs from t. Sets named in verify are read and
// compared anyway: the daemon names those whose elements another process
// changed.
func (k Kernel) Apply(t *Table, verify ...string) (bool, error) {
	return ApplyTo(k, t, verify...)
}

// Plan returns what Apply would do now: it reads the table (and the sets
// that Apply would read) and computes the transactions, but sends nothing.
func (k Kernel) Plan(t *Table, verify ...string) (*Plan, error) {
	return MakePlan(k, t, verify...)
}

// Commit sends one transaction. If the kernel refuses it, the table is as
// it was.
func (k Kernel) Commit(tx *Transaction) error {
	c, err := k.conn()
	if err != nil {
		return err
	}
	if err := newBatch(c, tx).add(); err != nil {
		return fmt.Errorf("build batch for table inet %s: %w", tx.Table, err)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("apply table inet %s: the kernel refused the transaction, the previous table is unchanged: %w", tx.Table, explain(err))
	}
	return nil
}

// Delete removes the table in one transaction. It reports whether the table existed.
func (k Kernel) Delete(name string) (bool, error) {
	c, err := k.conn()
	if err != nil {
		return false, err
	}
	c.DelTable(&nftables.Table{Name: name, Family: nftables.TableFamilyINet})
	if err := c.Flush(); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("delete table inet %s: %w", name, k.explainFirst(err))
	}
	return true, nil
}

// State is the table as the kernel has it.
type State struct {
	Name   string
	Chains []ChainState
	Sets   []SetState
}

// ChainState is a chain as the kernel has it.
type ChainState struct {
	Name     string
	Hook     string // "" for regular chains
	Priority int
	Rules    []RuleState
}

// RuleState is a rule as the kernel has it, with dockerfence's tags and its counter.
type RuleState struct {
	Handle         uint64
	ID, Digest     string
	Comment        string
	Packets, Bytes uint64
	HasCounter     bool
	// Sets holds the digests of the sets the rule looks up, as written.
	Sets map[string]string
}

// SetState is a set as the kernel has it.
//
// Read does not dump the elements of plain sets, which may hold hundreds of
// thousands: Digest says what they are, as recorded by the rules that look
// the set up ("" if none does or they disagree). Apply dumps a set only when
// that digest shows it must change, into Elems. Verdict maps are small, and
// Read always dumps them into VMap.
type SetState struct {
	Name    string
	Comment string
	// Flags, KeyType and DataType are the kernel's NFTA_SET_* values.
	Flags, KeyType, DataType uint32
	Digest                   string
	// Elems holds a plain set's elements once dumped (Dumped is then true).
	Elems  []nftables.SetElement
	Dumped bool
	// VMap holds a verdict map's elements, sorted by key; Chain is empty
	// where the verdict is not a goto.
	VMap []VMapElem
}

// Read returns the table named name as the kernel has it, or nil if there is none.
func (k Kernel) Read(name string) (*State, error) {
	c, err := k.readConn()
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	tbl, err := c.ListTableOfFamily(name, nftables.TableFamilyINet)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("read table inet %s: %w", name, k.explainFirst(err))
	}
	st := &State{Name: name}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("read chains of inet %s: %w", name, explain(err))
	}
	for _, ch := range chains {
		if ch.Table.Name != name {
			continue
		}
		cs := ChainState{Name: ch.Name}
		if ch.Hooknum != nil {
			switch *ch.Hooknum {
			case *nftables.ChainHookForward:
				cs.Hook = "forward"
			case *nftables.ChainHookInput:
				cs.Hook = "input"
			default:
				cs.Hook = fmt.Sprintf("hook%d", *ch.Hooknum)
			}
			if ch.Priority != nil {
				cs.Priority = int(*ch.Priority)
			}
		}
		rules, err := c.GetRules(tbl, ch)
		if err != nil {
			return nil, fmt.Errorf("read rules of chain %s: %w", ch.Name, explain(err))
		}
		for _, r := range rules {
			rs := RuleStateOf(r.UserData)
			rs.Handle = r.Handle
			for _, e := range r.Exprs {
				if ctr, ok := e.(*expr.Counter); ok {
					rs.Packets, rs.Bytes, rs.HasCounter = ctr.Packets, ctr.Bytes, true
				}
			}
			cs.Rules = append(cs.Rules, rs)
		}
		st.Chains = append(st.Chains, cs)
	}
	if st.Sets, err = k.readSets(name); err != nil {
		return nil, fmt.Errorf("read sets of inet %s: %w", name, explain(err))
	}
	for i := range st.Sets {
		s := &st.Sets[i]
		if s.Flags&unix.NFT_SET_MAP == 0 {
			continue
		}
		elems, err := c.GetSetElements(&nftables.Set{Table: tbl, Name: s.Name})
		if err != nil {
			return nil, fmt.Errorf("read map %s of inet %s: %w", s.Name, name, explain(err))
		}
		for _, e := range elems {
			ve := VMapElem{}
			ve.Chain, ve.Jump = verdictChain(e)
			switch s.KeyType {
			case nftables.TypeIPAddr.GetNFTMagic(), nftables.TypeIP6Addr.GetNFTMagic():
				ve.Addr, _ = netip.AddrFromSlice(e.Key)
			default:
				ve.Key = strings.TrimRight(string(e.Key), "\x00")
			}
			s.VMap = append(s.VMap, ve)
		}
	}
	st.Finish()
	return st, nil
}

// RuleStateOf decodes what dockerfence writes in a rule's user data: its
// comment, ID, digest and the digests of the sets it looks up. Handle and
// counters are the caller's.
func RuleStateOf(ud []byte) RuleState {
	var rs RuleState
	rs.Comment, _ = userdata.GetString(ud, udataComment)
	rs.ID, _ = userdata.GetString(ud, udataID)
	rs.Digest, _ = userdata.GetString(ud, udataDigest)
	refs, _ := userdata.GetString(ud, udataSets)
	rs.Sets = parseSetRefs(refs)
	return rs
}

// Finish completes a State read from a kernel as Read returns it: every
// plain set gets the digest that the rules looking it up record ("" if
// none does or they disagree), map elements are sorted by key, and chains
// and sets by name.
func (st *State) Finish() {
	recorded := map[string]string{}
	for _, ch := range st.Chains {
		for _, r := range ch.Rules {
			for name, d := range r.Sets {
				if old, ok := recorded[name]; ok && old != d {
					d = "" // rules disagree: unknown
				}
				recorded[name] = d
			}
		}
	}
	for i := range st.Sets {
		s := &st.Sets[i]
		if s.Flags&unix.NFT_SET_MAP == 0 {
			s.Digest = recorded[s.Name]
		} else {
			sortVMap(s.VMap)
		}
	}
	sort.Slice(st.Chains, func(i, j int) bool { return st.Chains[i].Name < st.Chains[j].Name })
	sort.Slice(st.Sets, func(i, j int) bool { return st.Sets[i].Name < st.Sets[j].Name })
}

// sortVMap sorts map elements by key, as the model holds them.
func sortVMap(es []VMapElem) {
	sort.Slice(es, func(i, j int) bool {
		if es[i].Key != es[j].Key {
			return es[i].Key < es[j].Key
		}
		return es[i].Addr.Less(es[j].Addr)
	})
}

// verdictChain returns the chain a dumped verdict-map element goes or jumps
// to, and whether it jumps; "" if its verdict is neither. Dumps carry the
// verdict as nested NFTA_VERDICT_CODE and NFTA_VERDICT_CHAIN attributes.
func verdictChain(e nftables.SetElement) (string, bool) {
	if e.VerdictData != nil {
		switch e.VerdictData.Kind {
		case expr.VerdictGoto:
			return e.VerdictData.Chain, false
		case expr.VerdictJump:
			return e.VerdictData.Chain, true
		}
		return "", false
	}
	var code int32
	var chain string
	if ad, err := netlink.NewAttributeDecoder(e.Val); err == nil {
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_VERDICT_CODE:
				code = int32(ad.Uint32())
			case unix.NFTA_VERDICT_CHAIN:
				chain = ad.String()
			}
		}
	}
	switch code {
	case unix.NFT_GOTO:
		return chain, false
	case unix.NFT_JUMP:
		return chain, true
	}
	return "", false
}

// Diff lists what applying t would change in the kernel state st (nil for no
// table), one line a change. An empty result means the kernel matches t.
func Diff(t *Table, st *State) []string {
	if st == nil {
		return []string{fmt.Sprintf("+ table inet %s: %d chains, %d sets, %d elements", t.Name, len(t.Chains), len(t.Sets), t.Elements())}
	}
	var out []string
	have := map[string]*ChainState{}
	for i := range st.Chains {
		have[st.Chains[i].Name] = &st.Chains[i]
	}
	for _, c := range t.Chains {
		kc, ok := have[c.Name]
		if !ok {
			out = append(out, fmt.Sprintf("+ chain %s (%d rules)", c.Name, len(c.Rules)))
			continue
		}
		delete(have, c.Name)
		if c.Hook.String() != kc.Hook || (c.Hook != HookNone && kc.Priority != t.Priority) {
			out = append(out, fmt.Sprintf("~ chain %s: hook %s priority %d, want hook %s priority %d", c.Name, kc.Hook, kc.Priority, c.Hook, t.Priority))
		}
		out = append(out, diffRules(c, kc)...)
	}
	for _, kc := range st.Chains {
		if _, ok := have[kc.Name]; ok {
			out = append(out, fmt.Sprintf("- chain %s (%d rules)", kc.Name, len(kc.Rules)))
		}
	}
	haveSets := map[string]*SetState{}
	for i := range st.Sets {
		haveSets[st.Sets[i].Name] = &st.Sets[i]
	}
	for _, s := range t.Sets {
		ks, ok := haveSets[s.Name]
		elems := setElements(s)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("+ set %s (%d elements)", s.Name, len(elems)))
			continue
		case !ks.compatible(s):
			out = append(out, fmt.Sprintf("~ set %s: type or flags differ", s.Name))
		case s.Map:
			del, add := vmapDiff(ks.VMap, s.VMap)
			for _, e := range del {
				out = append(out, fmt.Sprintf("- map %s: %s", s.Name, vmapElemText(e)))
			}
			for _, e := range add {
				out = append(out, fmt.Sprintf("+ map %s: %s", s.Name, vmapElemText(e)))
			}
		case s.Owner == OwnedByRuntime:
			// Filled at run time: its elements are not the model's.
		case ks.Dumped:
			if del, add := elemDiff(ks.Elems, elems); len(del)+len(add) > 0 {
				out = append(out, fmt.Sprintf("~ set %s: %d elements to delete, %d to add", s.Name, len(del), len(add)))
			}
		case ks.Digest == "":
			out = append(out, fmt.Sprintf("~ set %s: no rule records its elements (want %d)", s.Name, len(elems)))
		case ks.Digest != setDigest(s):
			out = append(out, fmt.Sprintf("~ set %s: elements differ (want %d)", s.Name, len(elems)))
		}
		delete(haveSets, s.Name)
	}
	for _, ks := range st.Sets {
		if _, ok := haveSets[ks.Name]; ok {
			out = append(out, fmt.Sprintf("- set %s", ks.Name))
		}
	}
	return out
}

// diffRules lists how the kernel chain's rules differ from c's. Rules that
// differ only in the set digests they record are not reported: the set's
// own line says its elements differ.
func diffRules(c *Chain, kc *ChainState) []string {
	var out []string
	want := make([]string, len(c.Rules))
	for i, r := range c.Rules {
		want[i] = r.Digest()
	}
	got := make([]string, len(kc.Rules))
	for i, r := range kc.Rules {
		got[i] = r.Digest
	}
	if strings.Join(want, ",") == strings.Join(got, ",") {
		return nil
	}
	wantSet := map[string]bool{}
	for _, d := range want {
		wantSet[d] = true
	}
	gotSet := map[string]bool{}
	for _, r := range kc.Rules {
		gotSet[r.Digest] = true
		if !wantSet[r.Digest] {
			what := r.Comment
			if r.Digest == "" {
				what = "a rule dockerfence did not write"
			}
			out = append(out, fmt.Sprintf("- chain %s: rule handle %d (%s)", c.Name, r.Handle, what))
		}
	}
	for _, r := range c.Rules {
		if !gotSet[r.Digest()] {
			out = append(out, fmt.Sprintf("+ chain %s: %s", c.Name, r.Text()))
		}
	}
	if len(out) == 0 {
		out = append(out, fmt.Sprintf("~ chain %s: rules out of order", c.Name))
	}
	return out
}

// Dump reads the elements of the named plain sets into st.
func (k Kernel) Dump(st *State, names []string) error {
	if len(names) == 0 {
		return nil
	}
	c, err := k.readConn()
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	tbl := &nftables.Table{Name: st.Name, Family: nftables.TableFamilyINet}
	for _, name := range names {
		for i := range st.Sets {
			s := &st.Sets[i]
			if s.Name != name {
				continue
			}
			if s.Elems, err = c.GetSetElements(&nftables.Set{Table: tbl, Name: name}); err != nil {
				return fmt.Errorf("read set %s of inet %s: %w", name, st.Name, explain(err))
			}
			s.Dumped = true
		}
	}
	return nil
}

// readSets dumps the named sets of the table with their comments, which
// google/nftables v0.3.0 does not decode.
func (k Kernel) readSets(table string) ([]SetState, error) {
	nc, err := k.dial()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_SET_TABLE, Data: append([]byte(table), 0)}})
	if err != nil {
		return nil, err
	}
	msgs, err := nc.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSET), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, err
	}
	var out []SetState
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		var s SetState
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_SET_NAME:
				s.Name = ad.String()
			case unix.NFTA_SET_FLAGS:
				s.Flags = binary.BigEndian.Uint32(ad.Bytes())
			case unix.NFTA_SET_KEY_TYPE:
				s.KeyType = binary.BigEndian.Uint32(ad.Bytes())
			case unix.NFTA_SET_DATA_TYPE:
				s.DataType = binary.BigEndian.Uint32(ad.Bytes())
			case unix.NFTA_SET_USERDATA:
				s.Comment, _ = userdata.GetString(ad.Bytes(), userdata.NFTNL_UDATA_SET_COMMENT)
			}
		}
		if err := ad.Err(); err != nil {
			return nil, err
		}
		if s.Flags&unix.NFT_SET_ANONYMOUS == 0 {
			out = append(out, s)
		}
	}
	return out, nil
}
