package fence

import (
	"fmt"
	"slices"
	"strings"

	"github.com/dockerfence/dockerfence/policy"
)

// NotFenceable is a Docker network that the table cannot fence: its driver
// is not bridge, so its containers' packets do not enter from a bridge on
// this host, where the table's chains judge them.
type NotFenceable struct {
	Network policy.Network
	// Section is the first section whose match fits the network, nil if
	// none does. It does not fence the network: the table has no chain for
	// it.
	Section *policy.Section
	// Reason says why the network cannot be fenced (WhyNotFenceable).
	Reason string
}

// driverReasons say, by Docker driver, why the table cannot fence a network.
var driverReasons = map[string]string{
	"macvlan": "containers talk to the LAN directly through the parent interface, not through a bridge on this host: dockerfence cannot see their packets",
	"ipvlan":  "containers talk to the LAN directly through the parent interface, not through a bridge on this host: dockerfence cannot see their packets",
	"host":    "containers share the host's network stack: their traffic is the host's own",
	"null":    "no network: containers have only their loopback interface",
	"none":    "no network: containers have only their loopback interface",
	"overlay": "VXLAN between Docker hosts, not a local bridge: traffic between its containers is not fenced (their traffic to other networks leaves through docker_gwbridge, a bridge network that dockerfence can fence)",
}

// WhyNotFenceable says why the table cannot fence network n, starting with
// n's driver ("macvlan: containers talk to the LAN directly ..."); it is
// "" for a bridge network, or a bridge found over netlink, which the table
// can fence.
func WhyNotFenceable(n policy.Network) string {
	if n.IsBridge() {
		return ""
	}
	why, ok := driverReasons[n.Driver]
	if !ok {
		why = "not a bridge on this host; dockerfence fences only bridge networks"
	}
	return n.Driver + ": " + why
}

// carriesTraffic reports whether a network of the driver has packets that
// could need fencing: not Docker's "none" network (driver null).
func carriesTraffic(driver string) bool { return driver != "null" && driver != "none" }

// Warning is the line that apply and the daemon log for the network, or ""
// for one that carries no traffic (Docker's "none" network, driver null),
// which status lists all the same.
func (u NotFenceable) Warning() string {
	if !carriesTraffic(u.Network.Driver) {
		return ""
	}
	return fmt.Sprintf("network %q is not fenced: %s%s", networkLabel(u.Network), u.Reason, u.SectionNote())
}

// SectionNote says, when a section matches the network, that it does not
// fence it: "; section 1 {name: "*"} matches it but cannot fence it". It is
// "" when no section matches.
func (u NotFenceable) SectionNote() string {
	if u.Section == nil {
		return ""
	}
	return fmt.Sprintf("; section %d %s matches it but cannot fence it", u.Section.Index, u.Section.Match)
}

// notFenceable records the networks the table cannot fence, sorted by
// name, and returns the others.
func (b *builder) notFenceable(nets []policy.Network) []policy.Network {
	var rest []policy.Network
	for _, n := range nets {
		why := WhyNotFenceable(n)
		if why == "" {
			rest = append(rest, n)
			continue
		}
		b.r.NotFenceable = append(b.r.NotFenceable, NotFenceable{Network: n, Section: b.sectionFor(n), Reason: why})
	}
	slices.SortFunc(b.r.NotFenceable, func(x, y NotFenceable) int { return strings.Compare(x.Network.Name, y.Network.Name) })
	return rest
}
