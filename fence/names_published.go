package fence

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/dockerfence/dockerfence/ipproto"
)

// hostDNSProtos returns the protocols (of TCP and UDP) on which the output
// hook holds DNS answers from the host's port 53 for the daemon to learn
// from (see holdDNS): those on which no container publishes port 53.
//
// A container that publishes port 53 (docker run -p 53:53/udp, on any
// host address) answers its neighbours' queries to the host's port 53
// through docker-proxy, which relays its answers from the host's port 53:
// in the output hook they look like those of a resolver on the host
// itself. Held, they would let that container (a Pi-hole, or an
// attacker's DNS server) teach every fenced network that uses names any
// address for a listed name. So on that protocol they pass unheld and
// teach nothing, and, when rules use names, a warning names the
// container. With containers nil (not known), both protocols are held,
// and a warning says what that leaves open.
func (b *builder) hostDNSProtos(containers []Container) []uint8 {
	held := []uint8{ipproto.TCP, ipproto.UDP}
	if containers == nil {
		if len(b.r.NameSets) > 0 {
			b.r.Warnings = append(b.r.Warnings, "the containers are not known (Docker not asked), so answers from the host's port 53 are held and teach as a resolver's on the host would; a container that publishes port 53 could relay its own through docker-proxy: run with Docker, or give containers a resolver in @resolvers")
		}
		return held
	}
	ctrs := slices.Clone(containers)
	slices.SortFunc(ctrs, func(x, y Container) int {
		return cmp.Or(strings.Compare(x.Name, y.Name), strings.Compare(x.ID, y.ID))
	})
	for _, c := range ctrs {
		var protos []string
		for _, p := range c.Ports {
			num := map[string]uint8{"tcp": ipproto.TCP, "udp": ipproto.UDP}[p.Proto]
			if p.HostPort != 53 || num == 0 || slices.Contains(protos, p.Proto) {
				continue
			}
			protos = append(protos, p.Proto)
			held = slices.DeleteFunc(held, func(n uint8) bool { return n == num })
		}
		if len(b.r.NameSets) == 0 {
			continue
		}
		slices.Sort(protos)
		for _, p := range protos {
			b.r.Warnings = append(b.r.Warnings, fmt.Sprintf("container %s (%s) publishes port 53/%s on the host: answers from the host's port 53 over %s may be container %s's (relayed by docker-proxy), so they are not held and teach nothing, not even a resolver's on the host itself; give containers a resolver in @resolvers",
				strconv.Quote(c.Name), shortID(c), p, strings.ToUpper(p), strconv.Quote(c.Name)))
		}
	}
	return held
}
