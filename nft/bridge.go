package nft

// BridgeTable returns the bridge table (Bridge) as it is applied: a copy
// with the inet table's name and priority. It is nil if there is none.
func (t *Table) BridgeTable() *Table {
	if t.Bridge == nil {
		return nil
	}
	bt := *t.Bridge
	bt.Name, bt.Family, bt.Priority, bt.Netdev, bt.Bridge = t.Name, FamilyBridge, t.Priority, nil, nil
	return &bt
}

// sideFamilies are the families of the tables beside the inet one.
var sideFamilies = []Family{FamilyNetdev, FamilyBridge}

// side returns the table of family f beside t as it is applied
// (NetdevTable, BridgeTable), nil if there is none.
func (t *Table) side(f Family) *Table {
	switch f {
	case FamilyNetdev:
		return t.NetdevTable()
	case FamilyBridge:
		return t.BridgeTable()
	}
	return nil
}

// Side returns the kernel's table of family f beside the inet one st
// (State.Netdev, State.Bridge), nil if there is none or it was not read.
func (st *State) Side(f Family) *State {
	if st == nil {
		return nil
	}
	switch f {
	case FamilyNetdev:
		return st.Netdev
	case FamilyBridge:
		return st.Bridge
	}
	return nil
}

// setSide records s as the kernel's table of family f beside st.
func (st *State) setSide(f Family, s *State) {
	switch f {
	case FamilyNetdev:
		st.Netdev = s
	case FamilyBridge:
		st.Bridge = s
	}
}

// nfBridgePrerouting is NF_BR_PRE_ROUTING, the bridge family's hook of
// frames entering a bridge port.
const nfBridgePrerouting = 0
