package nft

import "github.com/mdlayher/netlink/nltest"

// emptyBackend is a kernel without tables, of protection Owned, that
// takes every transaction.
type emptyBackend struct{}

func (emptyBackend) ReadFamily(Family, string) (*State, error) { return nil, nil }
func (emptyBackend) Dump(*State, []string) error               { return nil }
func (emptyBackend) Commit(*Transaction) error                 { return nil }
func (emptyBackend) Protection() (Protection, error)           { return Owned, nil }

// SendFreshPlan sends the plan that creates t, with the tables beside
// it, to dial, as Apply would to a kernel without them.
func SendFreshPlan(t *Table, dial nltest.Func) error {
	testDial = dial
	defer func() { testDial = nil }()
	p, err := MakePlan(emptyBackend{}, t)
	if err != nil {
		return err
	}
	return p.Send(Kernel{})
}
