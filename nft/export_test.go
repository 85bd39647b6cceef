package nft

import "github.com/mdlayher/netlink/nltest"

// The external tests (package nft_test) build their tables with package
// fence, which imports nft; these names give them the internals they check.

type (
	Changes  = changes
	SetElems = setElems
	MapElems = mapElems
)

// Empty reports whether the changes leave the table as it is.
func (c *changes) Empty() bool { return c.empty() }

// SetDigests returns t's set digests.
func SetDigests(t *Table) map[string]string { return t.setDigests() }

// PlanChanges computes the changes that turn have into t.
func PlanChanges(t *Table, have *State, digests map[string]string) *Changes {
	return t.changes(have, digests)
}

// NeedDump lists the sets Apply must dump.
func NeedDump(t *Table, have *State, digests map[string]string, verify ...string) []string {
	return t.needDump(have, digests, verify...)
}

// BaseChainsMatch reports whether the base chains can be kept.
func BaseChainsMatch(t *Table, have *State) bool { return t.baseChainsMatch(have) }

var (
	KernelSet    = kernelSet
	ElemDiff     = elemDiff
	VMapElemText = vmapElemText
	RuleUserData = ruleUserData
	SetRefs      = setRefs
	ParseSetRefs = parseSetRefs
	TruncateUTF8 = truncateUTF8
	MaxUserData  = maxUserData
	UdataID      = udataID
	UdataDigest  = udataDigest
	UdataComment = udataComment
)

// TestPort is the netlink port the tests' owning backend has.
const TestPort = 4711

// Owned is the protection of a lasting Kernel on a kernel with flags
// owner and persist, whose socket has port TestPort.
var Owned = Protection{Flags: FlagOwner | FlagPersist, Port: TestPort}

// SendPlan sends the plan from have (nil for no table; its sets already
// dumped as Apply would), for a backend of protection Owned, over netlink
// connections that dial answers in place of the kernel.
func SendPlan(t *Table, have *State, dial nltest.Func) error {
	testDial = dial
	defer func() { testDial = nil }()
	p, err := PlanFrom(t, have)
	if err != nil {
		return err
	}
	return p.Send(Kernel{})
}

// PlanFrom returns the plan from have (its sets already dumped) for a
// backend of protection Owned.
func PlanFrom(t *Table, have *State) (*Plan, error) {
	fp, err := planFlags(Owned, t.Family, t.Name, have)
	if err != nil {
		return nil, err
	}
	return t.plan(have, t.setDigests(), fp), nil
}

// PlanFlags decides the table flags of a plan: what NEWTABLE sends, and
// whether the table must change, be adopted or be replaced for them.
func PlanFlags(p Protection, table string, have *State) (flags TableFlags, change, adopt, replace bool, err error) {
	fp, err := planFlags(p, FamilyInet, table, have)
	return fp.flags, fp.change, fp.adopt, fp.replace, err
}

// CommitVia commits tx over a netlink connection that dial answers in
// place of the kernel.
func CommitVia(dial nltest.Func, tx *Transaction) error {
	testDial = dial
	defer func() { testDial = nil }()
	return Kernel{}.Commit(tx)
}

// UpdateVia sends Kernel.Update over netlink connections that dial answers
// in place of the kernel.
func UpdateVia(dial nltest.Func, table, set string, add, del []Element) error {
	testDial = dial
	defer func() { testDial = nil }()
	return Kernel{}.Update(table, set, add, del)
}
