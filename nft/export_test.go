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

// SendPlan runs Apply's flow from have (nil for no table; its sets already
// dumped as Apply would) over netlink connections that dial answers in
// place of the kernel.
func SendPlan(t *Table, have *State, dial nltest.Func) error {
	testDial = dial
	defer func() { testDial = nil }()
	k := Kernel{}
	digests := t.setDigests()
	send := func(fill func(*batch) error) error { return k.send(t, digests, fill) }
	if have == nil || !t.baseChainsMatch(have) {
		return send(func(b *batch) error { return b.enqueue(t.fresh(), have != nil) })
	}
	ch := t.changes(have, digests)
	if len(ch.Stage) > 0 {
		if err := send(func(b *batch) error { return b.stage(ch) }); err != nil {
			return err
		}
	}
	return send(func(b *batch) error { return b.enqueue(ch, false) })
}
