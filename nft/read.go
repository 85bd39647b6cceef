package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nftaTableOwner is NFTA_TABLE_OWNER, the netlink port ID of the socket that
// owns a table (Linux 5.12), which x/sys/unix does not define.
const nftaTableOwner = 7

// readTries bounds how often read starts again because the ruleset changed
// while it read the table.
const readTries = 8

// read returns the table as the kernel has it, or nil: its flags and owner,
// its chains with hooks, priorities and policies, every rule with its
// expressions in canonical form and its counter, its named sets with their
// flags and types, and the elements of its verdict maps. The reads happen
// between two requests for the ruleset's generation; if it changed in
// between (any commit in the namespace, Docker's too), they are made
// again, so the state is that of one generation. After readTries torn
// reads the last is returned: a plan made from it at worst sends a
// transaction the kernel refuses, or changes what the next sync undoes.
func read(c *conn, fam Family, name string) (*State, error) {
	var st *State
	for try := 0; try < readTries; try++ {
		gen, err := generation(c)
		if err != nil {
			return nil, err
		}
		st, err = readOnce(c, fam, name)
		if err != nil || st == nil {
			return st, err
		}
		again, err := generation(c)
		if err != nil {
			return nil, err
		}
		if again == gen {
			return st, nil
		}
	}
	return st, nil
}

// generation returns the ruleset's generation ID, which every commit changes.
func generation(c *conn) (uint32, error) {
	msgs, err := c.request(unix.NFT_MSG_GETGEN, 0, unix.AF_UNSPEC, nil)
	if err != nil {
		return 0, err
	}
	var id uint32
	for _, m := range msgs {
		if len(m.Data) >= 4 {
			eachAttr(m.Data[4:], func(typ uint16, v []byte) bool {
				if typ == unix.NFTA_GEN_ID {
					id = be32(v)
				}
				return true
			})
		}
	}
	return id, nil
}

// readTable returns the table's flags and owner, or nil if there is no
// such table.
func readTable(c *conn, fam Family, name string) (*State, error) {
	msgs, err := c.request(unix.NFT_MSG_GETTABLE, 0, fam.proto(), attrs(nil).str(unix.NFTA_TABLE_NAME, name))
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st := &State{Name: name, Family: fam}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		eachAttr(m.Data[4:], func(typ uint16, v []byte) bool {
			switch typ {
			case unix.NFTA_TABLE_FLAGS:
				st.Flags = TableFlags(be32(v))
			case nftaTableOwner:
				st.Owner = be32(v)
			}
			return true
		})
	}
	return st, nil
}

func readOnce(c *conn, fam Family, name string) (*State, error) {
	st, err := readTable(c, fam, name)
	if err != nil || st == nil {
		return st, err
	}
	if err := readChains(c, st); err != nil {
		return nil, fmt.Errorf("read chains: %w", err)
	}
	anon, err := readSets(c, st)
	if err != nil {
		return nil, fmt.Errorf("read sets: %w", err)
	}
	if err := readRules(c, st, anon); err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	for i := range st.Sets {
		s := &st.Sets[i]
		if s.Flags&unix.NFT_SET_MAP == 0 {
			continue
		}
		elems, err := readElements(c, fam, name, s.Name)
		if err != nil {
			return nil, fmt.Errorf("read map %s: %w", s.Name, err)
		}
		for _, e := range elems {
			ve := VMapElem{}
			if v := e.VerdictData; v != nil {
				switch v.Kind {
				case expr.VerdictGoto:
					ve.Chain = v.Chain
				case expr.VerdictJump:
					ve.Chain, ve.Jump = v.Chain, true
				}
			}
			switch s.KeyType {
			case nftables.TypeIPAddr.GetNFTMagic(), nftables.TypeIP6Addr.GetNFTMagic():
				ve.Addr, _ = netip.AddrFromSlice(e.Key)
			case nftables.TypeInetService.GetNFTMagic():
				if len(e.Key) >= 2 {
					ve.Port = binary.BigEndian.Uint16(e.Key)
				}
			default:
				ve.Key = strings.TrimRight(string(e.Key), "\x00")
			}
			s.VMap = append(s.VMap, ve)
		}
	}
	st.Finish()
	return st, nil
}

// dump sends a dump request of family fam with attrs as its filter, and
// calls fn with the attributes of each answer.
func dump(c *conn, fam Family, typ int, a attrs, fn func(b []byte)) error {
	msgs, err := c.request(typ, netlink.Dump, fam.proto(), a)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if len(m.Data) >= 4 {
			fn(m.Data[4:])
		}
	}
	return nil
}

// readChains reads the table's chains into st, in the kernel's order.
func readChains(c *conn, st *State) error {
	return dump(c, st.Family, unix.NFT_MSG_GETCHAIN, attrs(nil).str(unix.NFTA_CHAIN_TABLE, st.Name), func(b []byte) {
		var cs ChainState
		var table string
		base := false
		eachAttr(b, func(typ uint16, v []byte) bool {
			switch typ {
			case unix.NFTA_CHAIN_TABLE:
				table = cstr(v)
			case unix.NFTA_CHAIN_NAME:
				cs.Name = cstr(v)
			case unix.NFTA_CHAIN_TYPE:
				cs.Type = cstr(v)
			case unix.NFTA_CHAIN_POLICY:
				cs.Policy = "accept"
				if be32(v) == nfDrop {
					cs.Policy = "drop"
				}
			case unix.NFTA_CHAIN_HOOK:
				base = true
				dev := ""
				eachAttr(v, func(typ uint16, v []byte) bool {
					switch typ {
					case unix.NFTA_HOOK_HOOKNUM:
						cs.Hook = hookName(st.Family, be32(v))
					case unix.NFTA_HOOK_PRIORITY:
						cs.Priority = int(int32(be32(v)))
					case unix.NFTA_HOOK_DEV:
						dev = cstr(v)
					}
					return true
				})
				if cs.Hook == "ingress" {
					// An ingress chain whose device went away has
					// none: it no longer hooks anything.
					cs.Hook = hookDevText(dev)
				}
			}
			return true
		})
		if table != st.Name {
			return // a kernel that does not filter the dump by table
		}
		if !base {
			cs.Type, cs.Policy = "", ""
		}
		st.Chains = append(st.Chains, cs)
	})
}

// hookName names a netfilter hook of family fam as nft does.
func hookName(fam Family, n uint32) string {
	if fam == FamilyNetdev {
		if n == nfNetdevIngress {
			return "ingress"
		}
		return fmt.Sprintf("hook%d", n)
	}
	if fam == FamilyBridge {
		if n == nfBridgePrerouting {
			return "prerouting"
		}
		return fmt.Sprintf("hook%d", n)
	}
	switch n {
	case unix.NF_INET_FORWARD:
		return "forward"
	case unix.NF_INET_LOCAL_IN:
		return "input"
	case unix.NF_INET_PRE_ROUTING:
		return "prerouting"
	case unix.NF_INET_LOCAL_OUT:
		return "output"
	case unix.NF_INET_POST_ROUTING:
		return "postrouting"
	case nfInetIngress:
		return "ingress"
	}
	return fmt.Sprintf("hook%d", n)
}

// readSets reads the table's named sets into st, and returns what its
// anonymous sets stand for in a rule's canonical form (see anonToken), by
// name: their elements are read too, for the rules that look them up.
func readSets(c *conn, st *State) (map[string]string, error) {
	var named []SetState
	var anon []SetState
	err := dump(c, st.Family, unix.NFT_MSG_GETSET, attrs(nil).str(unix.NFTA_SET_TABLE, st.Name), func(b []byte) {
		var s SetState
		var table string
		eachAttr(b, func(typ uint16, v []byte) bool {
			switch typ {
			case unix.NFTA_SET_TABLE:
				table = cstr(v)
			case unix.NFTA_SET_NAME:
				s.Name = cstr(v)
			case unix.NFTA_SET_FLAGS:
				s.Flags = be32(v)
			case unix.NFTA_SET_KEY_TYPE:
				s.KeyType = be32(v)
			case unix.NFTA_SET_DATA_TYPE:
				s.DataType = be32(v)
			case unix.NFTA_SET_USERDATA:
				s.Comment, _ = userdata.GetString(v, userdata.NFTNL_UDATA_SET_COMMENT)
			}
			return true
		})
		switch {
		case table != st.Name:
		case s.Flags&unix.NFT_SET_ANONYMOUS != 0:
			anon = append(anon, s)
		default:
			named = append(named, s)
		}
	})
	if err != nil {
		return nil, err
	}
	st.Sets = named
	tokens := make(map[string]string, len(anon))
	for _, s := range anon {
		elems, err := readElements(c, st.Family, st.Name, s.Name)
		if err != nil {
			return nil, fmt.Errorf("anonymous set %s: %w", s.Name, err)
		}
		tokens[s.Name] = anonToken(s.KeyType, elems)
	}
	return tokens, nil
}

// readRules reads the rules of every chain of st, in order, with their
// expressions in canonical form; anon holds what the anonymous sets stand
// for (see readSets).
func readRules(c *conn, st *State, anon map[string]string) error {
	chains := make(map[string]*ChainState, len(st.Chains))
	for i := range st.Chains {
		chains[st.Chains[i].Name] = &st.Chains[i]
	}
	resolve := func(name string) string {
		if t, ok := anon[name]; ok {
			return t
		}
		return "unknown anonymous set " + name
	}
	return dump(c, st.Family, unix.NFT_MSG_GETRULE, attrs(nil).str(unix.NFTA_RULE_TABLE, st.Name), func(b []byte) {
		var table, chain string
		var rs RuleState
		var exprs []byte
		eachAttr(b, func(typ uint16, v []byte) bool {
			switch typ {
			case unix.NFTA_RULE_TABLE:
				table = cstr(v)
			case unix.NFTA_RULE_CHAIN:
				chain = cstr(v)
			case unix.NFTA_RULE_HANDLE:
				rs.Handle = be64(v)
			case unix.NFTA_RULE_EXPRESSIONS:
				exprs = v
			case unix.NFTA_RULE_USERDATA:
				rs.UserData = append([]byte(nil), v...)
			}
			return true
		})
		cs := chains[chain]
		if table != st.Name || cs == nil {
			return
		}
		tags := RuleStateOf(rs.UserData)
		tags.Handle, tags.UserData = rs.Handle, rs.UserData
		can := canon(exprs, resolve)
		tags.Exprs, tags.Summary = can.key, can.summary
		if can.counter != nil {
			tags.Packets, tags.Bytes, tags.HasCounter = can.counter.Packets, can.counter.Bytes, true
		}
		cs.Rules = append(cs.Rules, tags)
	})
}

// readElements dumps the elements of set name of table: keys, interval
// ends, timeouts, the time left before they expire, and verdicts.
func readElements(c *conn, fam Family, table, name string) ([]nftables.SetElement, error) {
	var out []nftables.SetElement
	a := attrs(nil).str(unix.NFTA_SET_ELEM_LIST_TABLE, table).str(unix.NFTA_SET_ELEM_LIST_SET, name)
	err := dump(c, fam, unix.NFT_MSG_GETSETELEM, a, func(b []byte) {
		eachAttr(b, func(typ uint16, v []byte) bool {
			if typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				return true
			}
			eachAttr(v, func(_ uint16, elem []byte) bool {
				out = append(out, decodeElem(elem))
				return true
			})
			return true
		})
	})
	return out, err
}

// decodeElem decodes one element of a dump.
func decodeElem(b []byte) nftables.SetElement {
	var e nftables.SetElement
	eachAttr(b, func(typ uint16, v []byte) bool {
		switch typ {
		case unix.NFTA_SET_ELEM_KEY:
			eachAttr(v, func(typ uint16, v []byte) bool {
				if typ == unix.NFTA_DATA_VALUE {
					e.Key = append([]byte(nil), v...)
				}
				return true
			})
		case unix.NFTA_SET_ELEM_FLAGS:
			e.IntervalEnd = be32(v)&unix.NFT_SET_ELEM_INTERVAL_END != 0
		case unix.NFTA_SET_ELEM_TIMEOUT:
			e.Timeout = time.Duration(be64(v)) * time.Millisecond
		case unix.NFTA_SET_ELEM_EXPIRATION:
			// The time the element has left, which the kernel counts
			// down from its timeout.
			e.Expires = time.Duration(be64(v)) * time.Millisecond
		case unix.NFTA_SET_ELEM_DATA:
			eachAttr(v, func(typ uint16, v []byte) bool {
				if typ != unix.NFTA_DATA_VERDICT {
					return true
				}
				e.VerdictData = &expr.Verdict{}
				eachAttr(v, func(typ uint16, v []byte) bool {
					switch typ {
					case unix.NFTA_VERDICT_CODE:
						e.VerdictData.Kind = expr.VerdictKind(int32(be32(v)))
					case unix.NFTA_VERDICT_CHAIN:
						e.VerdictData.Chain = cstr(v)
					}
					return true
				})
				return true
			})
		}
		return true
	})
	return e
}

// dumpSets reads the elements of the named plain sets of st into it.
func dumpSets(c *conn, st *State, names []string) error {
	for _, name := range names {
		for i := range st.Sets {
			s := &st.Sets[i]
			if s.Name != name {
				continue
			}
			elems, err := readElements(c, st.Family, st.Name, name)
			if err != nil {
				return fmt.Errorf("read set %s of %s %s: %w", name, st.Family, st.Name, err)
			}
			s.Elems, s.Dumped = elems, true
		}
	}
	return nil
}
