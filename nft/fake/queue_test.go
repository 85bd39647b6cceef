package fake_test

import (
	"testing"

	"github.com/dockerfence/dockerfence/nft"
)

// The fake kernel takes an output base chain whose rule queues with
// bypass, and gives it back as applied: a plan of the same table is
// empty, and the table reads back equal.
func TestQueueOutputChain(t *testing.T) {
	tbl := &nft.Table{Name: "df_queue", Priority: -10, Chains: []*nft.Chain{
		{Name: "output", Hook: nft.HookOutput, Rules: []*nft.Rule{
			{Matches: []nft.Match{nft.CtReply{}, nft.L4Proto{Protos: []uint8{6, 17}}, nft.SPort{Range: nft.PortRange{First: 53, Last: 53}}, nft.IfName{Name: "br-x", Out: true}}, Counter: true, Verdict: nft.Verdict{Kind: nft.Queue, QueueNum: 53, Bypass: true}, ID: "dns hold"},
		}},
	}}
	k := applied(t, tbl)
	sameTable(t, k, tbl)
	if p, err := k.Plan(tbl); err != nil || !p.Empty() {
		t.Fatalf("plan of the same table = %v, %v; want empty", p, err)
	}
	other := &nft.Table{Name: tbl.Name, Priority: -10, Chains: []*nft.Chain{{Name: "output", Hook: nft.HookOutput, Rules: []*nft.Rule{
		{Matches: tbl.Chains[0].Rules[0].Matches, Counter: true, Verdict: nft.Verdict{Kind: nft.Queue, QueueNum: 54, Bypass: true}, ID: "dns hold"},
	}}}}
	if p, err := k.Plan(other); err != nil || p.Empty() {
		t.Fatalf("plan of another queue = %v, %v; want a change", p, err)
	}
}
