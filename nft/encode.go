package nft

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// encoder turns one transaction into nf_tables netlink messages, and
// remembers which command of the transaction each message comes from, so
// that the kernel's refusal of a message names the command. Rule
// expressions are marshalled by google/nftables (ruleExprs, expr.Marshal);
// tables, chains, sets and elements are encoded here.
type encoder struct {
	tx   *Transaction
	msgs []netlink.Message
	// ops holds, for each message, the index of its command in tx.Ops.
	ops []int
	op  int
	// ids holds the IDs of the sets created in this batch, by name: rules
	// and element commands refer to them by ID until the commit.
	ids map[string]uint32
	id  uint32
	// fam is the family of the command being encoded.
	fam Family
}

// encode returns the messages of tx, without batch begin and end.
func encode(tx *Transaction) (*encoder, error) {
	e := &encoder{tx: tx, ids: map[string]uint32{}}
	for i, op := range tx.Ops {
		e.op, e.fam = i, op.Family
		if err := e.encodeOp(op); err != nil {
			return nil, fmt.Errorf("command %d (%s): %w", i+1, shortOp(tx, op), err)
		}
	}
	return e, nil
}

// body starts the body of an nf_tables message for the family of the
// command being encoded: its nfgenmsg header, then room for n bytes of
// attributes.
func (e *encoder) body(n int) attrs {
	a := make(attrs, 4, 4+n)
	a[0], a[1] = e.fam.proto(), unix.NFNETLINK_V0
	return a
}

// msg appends an nf_tables message with body a (see body).
func (e *encoder) msg(typ int, flags netlink.HeaderFlags, a attrs) {
	e.msgs = append(e.msgs, netlink.Message{Header: netlink.Header{Type: nftType(typ), Flags: netlink.Request | flags}, Data: a})
	e.ops = append(e.ops, e.op)
}

func (e *encoder) encodeOp(op Op) error {
	tbl := e.tx.Table
	switch op.Kind {
	case OpAddTable:
		a := e.body(64).str(unix.NFTA_TABLE_NAME, tbl)
		if op.SetFlags {
			a = a.u32(unix.NFTA_TABLE_FLAGS, uint32(op.Flags))
		}
		e.msg(unix.NFT_MSG_NEWTABLE, netlink.Create, a)
	case OpDeleteTable:
		e.msg(unix.NFT_MSG_DELTABLE, 0, e.body(64).str(unix.NFTA_TABLE_NAME, tbl))
	case OpAddChain:
		a := e.body(64).str(unix.NFTA_CHAIN_TABLE, tbl).str(unix.NFTA_CHAIN_NAME, op.Name)
		if op.Hook != HookNone {
			hook := uint32(unix.NF_INET_FORWARD)
			switch op.Hook {
			case HookInput:
				hook = unix.NF_INET_LOCAL_IN
			case HookOutput:
				hook = unix.NF_INET_LOCAL_OUT
			case HookIngress:
				hook = nfInetIngress
				if op.Family == FamilyNetdev {
					hook = nfNetdevIngress
				}
			case HookPrerouting:
				hook = nfBridgePrerouting
			}
			var start int
			a, start = a.begin(unix.NFTA_CHAIN_HOOK)
			a = a.u32(unix.NFTA_HOOK_HOOKNUM, hook).u32(unix.NFTA_HOOK_PRIORITY, uint32(int32(e.tx.Priority+op.PriorityOffset)))
			if op.Hook == HookIngress {
				a = a.str(unix.NFTA_HOOK_DEV, op.Device)
			}
			a = a.end(start)
			a = a.u32(unix.NFTA_CHAIN_POLICY, nfAccept).str(unix.NFTA_CHAIN_TYPE, "filter")
		}
		e.msg(unix.NFT_MSG_NEWCHAIN, netlink.Create, a)
	case OpFlushChain:
		// A rule deletion without a handle deletes every rule of the chain.
		e.msg(unix.NFT_MSG_DELRULE, 0, e.body(64).str(unix.NFTA_RULE_TABLE, tbl).str(unix.NFTA_RULE_CHAIN, op.Name))
	case OpDeleteChain:
		e.msg(unix.NFT_MSG_DELCHAIN, 0, e.body(64).str(unix.NFTA_CHAIN_TABLE, tbl).str(unix.NFTA_CHAIN_NAME, op.Name))
	case OpAddSet:
		ns := setHeader(nil, op.Set)
		e.addSet(ns, 0)
		if op.Set.Map {
			e.elements(unix.NFT_MSG_NEWSETELEM, ns.Name, vmapElements(op.Set.VMap))
			break
		}
		// Encoded as they are made: 100k prefixes are 200k elements.
		n := 2*(len(op.Set.Ranges)+len(op.Set.Ports)) + len(op.Set.Tuples)
		e.eachElements(unix.NFT_MSG_NEWSETELEM, ns.Name, n, func(fn func(nftables.SetElement)) {
			eachElement(op.Set, func(key []byte, end bool) { fn(nftables.SetElement{Key: key, IntervalEnd: end}) })
		})
	case OpDeleteSet:
		e.msg(unix.NFT_MSG_DELSET, 0, e.body(64).str(unix.NFTA_SET_TABLE, tbl).str(unix.NFTA_SET_NAME, op.Name))
	case OpAddElements, OpDeleteElements:
		typ := unix.NFT_MSG_NEWSETELEM
		if op.Kind == OpDeleteElements {
			typ = unix.NFT_MSG_DELSETELEM
		}
		if op.Map {
			e.elements(typ, op.Name, vmapElements(op.VMap))
			break
		}
		e.elements(typ, op.Name, op.Elems)
	case OpAddRule:
		named := func(name string) *nftables.Set { return &nftables.Set{Name: name, ID: e.ids[e.idKey(name)]} }
		anon := func(s *nftables.Set, elems []nftables.SetElement) error {
			s.Name = "__set%d"
			e.addSet(s, len(elems))
			e.elements(unix.NFT_MSG_NEWSETELEM, s.Name, elems)
			return nil
		}
		exprs, err := ruleExprs(&nftables.Table{Name: tbl, Family: nftables.TableFamily(op.Family.proto())}, named, anon, op.Rule)
		if err != nil {
			return err
		}
		a := e.body(512).str(unix.NFTA_RULE_TABLE, tbl).str(unix.NFTA_RULE_CHAIN, op.Name)
		var start int
		a, start = a.begin(unix.NFTA_RULE_EXPRESSIONS)
		for _, x := range exprs {
			b, err := marshalExpr(op.Family.proto(), x)
			if err != nil {
				return err
			}
			a = a.add(unix.NFTA_LIST_ELEM|nlaNested, b)
		}
		a = a.end(start)
		if op.UserData != nil {
			a = a.add(unix.NFTA_RULE_USERDATA, op.UserData)
		}
		e.msg(unix.NFT_MSG_NEWRULE, netlink.Create|netlink.Append, a)
	default:
		return fmt.Errorf("unknown command %d", op.Kind)
	}
	return nil
}

// addSet appends the creation of set s, with an ID that the rules and
// element commands of the batch refer to it by. A constant set's size is
// n, its number of elements, as nft says it.
func (e *encoder) addSet(s *nftables.Set, n int) {
	e.id++
	s.ID = e.id
	e.ids[e.idKey(s.Name)] = s.ID
	var flags uint32
	if s.Anonymous {
		flags |= unix.NFT_SET_ANONYMOUS
	}
	if s.Constant {
		flags |= unix.NFT_SET_CONSTANT
	}
	if s.Interval {
		flags |= unix.NFT_SET_INTERVAL
	}
	if s.IsMap {
		flags |= unix.NFT_SET_MAP
	}
	if s.HasTimeout {
		flags |= unix.NFT_SET_TIMEOUT
	}
	if s.Dynamic {
		// Rules add and update elements from the packet path (meters).
		flags |= unix.NFT_SET_EVAL
	}
	a := e.body(160).str(unix.NFTA_SET_TABLE, e.tx.Table).str(unix.NFTA_SET_NAME, s.Name).
		u32(unix.NFTA_SET_FLAGS, flags).
		u32(unix.NFTA_SET_KEY_TYPE, s.KeyType.GetNFTMagic()).
		u32(unix.NFTA_SET_KEY_LEN, s.KeyType.Bytes).
		u32(unix.NFTA_SET_ID, s.ID)
	if s.IsMap {
		// A verdict map's data type is NFT_DATA_VERDICT, of no length.
		a = a.u32(unix.NFTA_SET_DATA_TYPE, unix.NFT_DATA_VERDICT).u32(unix.NFTA_SET_DATA_LEN, 0)
	}
	if s.HasTimeout && s.Timeout != 0 {
		a = a.u64(unix.NFTA_SET_TIMEOUT, uint64(s.Timeout.Milliseconds()))
	}
	if s.Constant {
		var desc int
		a, desc = a.begin(unix.NFTA_SET_DESC)
		a = a.u32(unix.NFTA_SET_DESC_SIZE, uint32(n)).end(desc)
	}
	// nft's user data: the key's byte order (big endian for addresses
	// and ports, host order for interface names, which nft needs to list
	// the keys) and the comment.
	var ud []byte
	if s.Anonymous || s.Interval || s.KeyByteOrder == binaryutil.BigEndian {
		ud = userdata.AppendUint32(ud, userdata.NFTNL_UDATA_SET_KEYBYTEORDER, 2)
	} else if s.KeyByteOrder == binaryutil.NativeEndian {
		ud = userdata.AppendUint32(ud, userdata.NFTNL_UDATA_SET_KEYBYTEORDER, 1)
	}
	if s.Comment != "" {
		ud = userdata.AppendString(ud, userdata.NFTNL_UDATA_SET_COMMENT, s.Comment)
	}
	if len(ud) > 0 {
		a = a.add(unix.NFTA_SET_USERDATA, ud)
	}
	e.msg(unix.NFT_MSG_NEWSET, netlink.Create, a)
}

// Netfilter verdicts, as chain policies (NF_ACCEPT, NF_DROP).
const (
	nfDrop   = 0
	nfAccept = 1
)

// maxElemList bounds the element list of one message: it is one netlink
// attribute, whose length is 16 bits.
const maxElemList = 60000

// elements appends the messages that add (NEWSETELEM) or delete
// (DELSETELEM) elems in set name (see eachElements).
func (e *encoder) elements(typ int, set string, elems []nftables.SetElement) {
	e.eachElements(typ, set, len(elems), func(fn func(nftables.SetElement)) {
		for _, el := range elems {
			fn(el)
		}
	})
}

// eachElements appends the messages that add (NEWSETELEM) or delete
// (DELSETELEM) the n elements each yields in set name, as many a message
// as fit. An element's timeout is sent if it has one.
func (e *encoder) eachElements(typ int, set string, n int, each func(fn func(nftables.SetElement))) {
	flags := netlink.HeaderFlags(0)
	if typ == unix.NFT_MSG_NEWSETELEM {
		flags = netlink.Create
	}
	var a attrs
	list := -1
	flush := func() {
		if list >= 0 {
			e.msg(typ, flags, a.end(list))
			list = -1
		}
	}
	each(func(el nftables.SetElement) {
		if list >= 0 && len(a)-list >= maxElemList {
			flush()
		}
		if list < 0 {
			// About 48 bytes an element (an IPv6 key, flags, a verdict).
			a = e.body(min(maxElemList, 48*n)+512).str(unix.NFTA_SET_ELEM_LIST_SET, set)
			if id := e.ids[e.idKey(set)]; id != 0 {
				a = a.u32(unix.NFTA_SET_ELEM_LIST_SET_ID, id)
			}
			a = a.str(unix.NFTA_SET_ELEM_LIST_TABLE, e.tx.Table)
			a, list = a.begin(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
		}
		a = appendElem(a, el)
		n--
	})
	flush()
}

// appendElem appends one element of a list.
func appendElem(a attrs, el nftables.SetElement) attrs {
	var elem, nest int
	a, elem = a.begin(unix.NFTA_LIST_ELEM)
	if el.IntervalEnd {
		a = a.u32(unix.NFTA_SET_ELEM_FLAGS, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	a, nest = a.begin(unix.NFTA_SET_ELEM_KEY)
	a = a.add(unix.NFTA_DATA_VALUE, el.Key).end(nest)
	if el.Timeout != 0 {
		a = a.u64(unix.NFTA_SET_ELEM_TIMEOUT, uint64(el.Timeout.Milliseconds()))
	}
	if v := el.VerdictData; v != nil {
		var verdict int
		a, nest = a.begin(unix.NFTA_SET_ELEM_DATA)
		a, verdict = a.begin(unix.NFTA_DATA_VERDICT)
		a = a.u32(unix.NFTA_VERDICT_CODE, uint32(int32(v.Kind)))
		if v.Chain != "" {
			a = a.str(unix.NFTA_VERDICT_CHAIN, v.Chain)
		}
		a = a.end(verdict).end(nest)
	}
	return a.end(elem)
}

// shortOp renders a command in nft syntax for an error message, cut to a
// line: element lists can hold thousands of items.
func shortOp(tx *Transaction, op Op) string {
	const most = 160
	elems := op.Kind == OpAddElements || op.Kind == OpDeleteElements
	if elems && len(op.Items)+len(op.VMap) > 4 {
		n := len(op.Items) + len(op.VMap)
		short := op
		if op.Map {
			short.VMap = op.VMap[:3]
		} else {
			short.Items = op.Items[:3]
		}
		s := strings.TrimSuffix(tx.opText(short), " }")
		return truncateUTF8(s, most) + fmt.Sprintf(", ... } (%d elements)", n)
	}
	s := tx.opText(op)
	switch {
	case elems && s == "":
		// Boundaries that change no interval have no text (see Op.Items).
		verb := "add"
		if op.Kind == OpDeleteElements {
			verb = "delete"
		}
		return fmt.Sprintf("%s element %s %s %s { %d interval boundaries }", verb, op.Family, tx.Table, op.Name, len(op.Elems))
	case op.Kind == OpAddSet && len(s) > most:
		s = fmt.Sprintf("add set %s %s %s { %d elements }", op.Family, tx.Table, op.Set.Name, len(setElements(op.Set)))
	}
	if len(s) > most {
		s = truncateUTF8(s, most) + "..."
	}
	return s
}

// idKey is the key of set name of the command's family in ids: the inet,
// netdev and bridge tables of one name may each have a set of that name.
func (e *encoder) idKey(name string) string { return e.fam.String() + " " + name }
