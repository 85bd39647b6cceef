package nft

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableFlags are the flags of an nf_tables table (NFT_TABLE_F_*).
type TableFlags uint32

// Table flags.
const (
	// FlagDormant turns the table off: its base chains see no packets.
	FlagDormant TableFlags = 0x1
	// FlagOwner (Linux 5.12) gives the table to the netlink socket that
	// created it: no other socket can change or delete it, and "nft flush
	// ruleset" skips it. Without FlagPersist, the table goes when the
	// socket closes.
	FlagOwner TableFlags = 0x2
	// FlagPersist (Linux 6.9) keeps an owned table when its owner's socket
	// closes: it is left without an owner (orphaned) until a socket
	// adopts it by asking for FlagOwner.
	FlagPersist TableFlags = 0x4
)

// flagMask holds the flags the kernel lets a table update change or keep.
const flagMask = FlagDormant | FlagOwner | FlagPersist

// String renders the flags as nft does, comma-separated; "none" for none.
func (f TableFlags) String() string {
	var out []string
	for _, n := range []struct {
		f    TableFlags
		name string
	}{{FlagDormant, "dormant"}, {FlagOwner, "owner"}, {FlagPersist, "persist"}} {
		if f&n.f != 0 {
			out = append(out, n.name)
			f &^= n.f
		}
	}
	if f != 0 {
		out = append(out, fmt.Sprintf("%#x", uint32(f)))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// State is the table as the kernel has it.
type State struct {
	Name string
	// Family is the table's family.
	Family Family
	// Flags are the table's flags; Owner is the netlink port ID of the
	// socket that owns it (NFTA_TABLE_OWNER), 0 if none does.
	Flags TableFlags
	Owner uint32
	// Chains and Sets are sorted by name.
	Chains []ChainState
	Sets   []SetState
	// NetdevRead says that the netdev and bridge tables of the same name
	// (see Table.Netdev, Table.Bridge) were read too (Kernel.ReadAll):
	// Netdev and Bridge are them, nil where there is none.
	NetdevRead bool
	Netdev     *State
	Bridge     *State
}

// familyOr is the state's family, inet for a nil state.
func (st *State) familyOr() Family {
	if st == nil {
		return FamilyInet
	}
	return st.Family
}

// Protection describes what protects the table, as its flags say: one
// sentence.
func (st *State) Protection() string {
	owner := fmt.Sprintf("netlink port %d", st.Owner)
	if name := OwnerProcess(st.Owner); name != "" {
		owner += fmt.Sprintf(" (process %d, %s)", st.Owner, name)
	}
	switch {
	case st.Flags&FlagOwner != 0 && st.Flags&FlagPersist != 0:
		return fmt.Sprintf("owned by %s (flags %s): only that socket can change or delete the table, nft flush ruleset skips it, and it stays when its owner exits", owner, st.Flags)
	case st.Flags&FlagOwner != 0:
		return fmt.Sprintf("owned by %s (flags %s): only that socket can change the table, and it goes when its owner exits", owner, st.Flags)
	case st.Flags&FlagPersist != 0:
		return fmt.Sprintf("persistent without an owner (flags %s): any process can change or delete it until a dockerfence daemon adopts it", st.Flags)
	}
	return fmt.Sprintf("an ordinary table (flags %s): any process can change or delete it; the daemon repairs it", st.Flags)
}

// OwnerProcess names the process whose ID is port, as nft does for a
// table's owner: the kernel reports the netlink port of the owning socket,
// which is its process's ID when it is the process's first nf_tables
// socket (else a number above any process ID). It returns "" when no
// process of this PID namespace has that ID.
func OwnerProcess(port uint32) string {
	if port == 0 {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", port))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// ChainState is a chain as the kernel has it.
type ChainState struct {
	Name string
	// Hook is "" for regular chains; Type ("filter"), Priority and Policy
	// ("accept" or "drop") are those of a base chain.
	Hook     string
	Type     string
	Priority int
	Policy   string
	Rules    []RuleState
}

// RuleState is a rule as the kernel has it: its expressions in canonical
// form, its counter, and dockerfence's tags from its user data.
type RuleState struct {
	Handle         uint64
	ID, Digest     string
	Comment        string
	Packets, Bytes uint64
	HasCounter     bool
	// Sets holds the digests of the sets the rule looks up, as written.
	Sets map[string]string
	// UserData is the rule's user data, as the kernel holds it.
	UserData []byte
	// Exprs is the canonical form of the rule's expressions as the kernel
	// returned them: equal to Rule.ExprKey of the model rule they encode.
	// Summary names them, for messages: "meta cmp counter accept".
	Exprs, Summary string
}

// SetState is a set as the kernel has it.
//
// Read does not dump the elements of plain sets, which may hold hundreds of
// thousands: Digest says what they are, as recorded by the rules that look
// the set up ("" if none does or they disagree). Apply dumps a set only when
// that digest shows it must change, or when asked to verify it, into Elems.
// Verdict maps are small, and Read always dumps them into VMap.
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

// RuleStateOf decodes what dockerfence writes in a rule's user data: its
// comment, ID, digest and the digests of the sets it looks up. Handle,
// expressions and counters are the caller's.
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

// isMap reports whether the kernel's set name is a map.
func (st *State) isMap(name string) bool {
	for _, s := range st.Sets {
		if s.Name == name {
			return s.Flags&unix.NFT_SET_MAP != 0
		}
	}
	return false
}

// OwnedSets lists the plain sets whose elements the model owns
// (OwnedByModel): the sets a verifying apply reads in full.
func (t *Table) OwnedSets() []string {
	var out []string
	for _, s := range t.Sets {
		if !s.Map && s.Owner == OwnedByModel {
			out = append(out, s.Name)
		}
	}
	return out
}
