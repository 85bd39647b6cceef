package discover

import (
	"net/netip"

	"github.com/dockerfence/dockerfence/policy"
)

// Found is the network that an argument (a network name, a bridge name or a
// subnet) stands for in an inventory, and how it was found.
type Found struct {
	// Network is the network found. When nothing holds the argument, it
	// is the argument alone: a network of that name, or of that one
	// subnet (masked).
	Network policy.Network
	// Source is where Network came from: the inventory's Source for one of
	// Docker's networks (SourceDocker or SourceDockerLast), SourceNetlink
	// for a bridge found over netlink that is not one of them, SourceNone
	// for the argument alone.
	Source Source
	// Prefix is the argument as a masked subnet; the zero Prefix when the
	// argument is a name.
	Prefix netip.Prefix
	// Subnet is the subnet of Network that holds Prefix: Prefix itself,
	// else the narrowest one of Network's subnets that contains it. It is
	// the zero Prefix when the argument is a name or nothing holds it.
	Subnet netip.Prefix
	// Unlisted is set when one of Docker's networks was found through a
	// subnet of its bridge that Docker does not list for it: the kernel
	// fences the bridge's packets as that network's, and Subnet is the
	// bridge's subnet.
	Unlisted bool
	// CatchAllOnly is set for a docker0 or br-* bridge that Docker, though
	// it answered, does not report: the table does not fence it as a
	// network, so only its rules for bridges not known yet, those of the
	// {name: "*"} section, judge its packets.
	CatchAllOnly bool
	// Unfenced is set for a bridge that Docker, though it answered, does
	// not report and that is not docker0 or br-*: the table does not
	// fence it at all.
	Unfenced bool
}

// Find finds the network that arg stands for, as the table built from the
// inventory fences it. arg is a network name, a bridge name or a subnet. A
// name is looked up among network names first, then among bridge names. A
// subnet stands for the network that holds it: the one with exactly that
// subnet, else the one with the narrowest subnet that contains it.
//
// With Docker's networks (FromDocker), arg is looked up among them first,
// then among the bridges that Docker does not report (or, for a subnet,
// does not list on the bridge of one of its networks). Otherwise it is
// looked up among the bridges.
func (inv *Inventory) Find(arg string) Found {
	pfx, err := netip.ParsePrefix(arg)
	isSubnet := err == nil
	if isSubnet {
		pfx = pfx.Masked()
	}
	find := func(nets []policy.Network) (Found, bool) {
		if isSubnet {
			n, sub, ok := findSubnet(nets, pfx)
			return Found{Network: n, Prefix: pfx, Subnet: sub}, ok
		}
		for _, n := range nets {
			if n.Name == arg {
				return Found{Network: n}, true
			}
		}
		for _, n := range nets {
			if n.Bridge == arg {
				return Found{Network: n}, true
			}
		}
		return Found{}, false
	}
	bridges := fromBridges(inv.Bridges)
	if inv.FromDocker() {
		if f, ok := find(inv.Networks); ok {
			f.Source = inv.Source
			return f
		}
		if f, ok := find(bridges); ok {
			for _, k := range inv.Networks {
				if k.Bridge == f.Network.Bridge {
					f.Network, f.Source, f.Unlisted = k, inv.Source, true
					return f
				}
			}
			f.Source = SourceNetlink
			if IsDockerBridge(f.Network.Bridge) {
				f.CatchAllOnly = true
			} else {
				f.Unfenced = true
			}
			return f
		}
	} else if f, ok := find(bridges); ok {
		f.Source = SourceNetlink
		return f
	}
	if isSubnet {
		return Found{Network: policy.Network{Subnets: []netip.Prefix{pfx}}, Prefix: pfx}
	}
	return Found{Network: policy.Network{Name: arg}}
}

// findSubnet returns the network that holds the subnet pfx, and its subnet
// that does: the one with exactly that subnet, else the one with the
// narrowest subnet that contains it.
func findSubnet(nets []policy.Network, pfx netip.Prefix) (policy.Network, netip.Prefix, bool) {
	for _, n := range nets {
		for _, s := range n.Subnets {
			if s == pfx {
				return n, s, true
			}
		}
	}
	best, bestSub, found := policy.Network{}, netip.Prefix{}, false
	for _, n := range nets {
		for _, s := range n.Subnets {
			if s.Addr().Is4() == pfx.Addr().Is4() && s.Bits() <= pfx.Bits() && s.Contains(pfx.Addr()) && (!found || s.Bits() > bestSub.Bits()) {
				best, bestSub, found = n, s, true
			}
		}
	}
	return best, bestSub, found
}
