package status

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/policy"
)

// Who may reach a published port, as PublishedStatus.Verdict says it.
const (
	// ReachOpen: every layer allows every source.
	ReachOpen = "open"
	// ReachRestricted: some sources are allowed, others denied.
	ReachRestricted = "restricted"
	// ReachClosed: a layer denies every source.
	ReachClosed = "closed"
	// ReachLocal: the port is bound to the loopback only: no outside
	// client reaches it, and the host's own connections are not
	// ingress.
	ReachLocal = "local"
)

// PublishedStatus is a port that Docker publishes for a container on a
// fenced network (docker run -p), and who the ingress rules let reach it.
type PublishedStatus struct {
	Container string `json:"container"`
	ID        string `json:"id"`
	Network   string `json:"network"`
	Bridge    string `json:"bridge"`
	// HostIPs are the host addresses Docker binds the port to, "0.0.0.0"
	// and "::" for all of a family's; empty when Docker does not say.
	HostIPs       []string `json:"host_ips"`
	HostPort      uint16   `json:"host_port"`
	ContainerPort uint16   `json:"container_port"`
	Proto         string   `json:"proto"`
	// Verdict is ReachOpen, ReachRestricted or ReachClosed: the
	// intersection of what each layer (the network's section, the
	// container's section) lets through to the port, over the address
	// families it is bound in (IPv4, IPv6); ReachLocal for a port bound
	// to the loopback only.
	Verdict string `json:"verdict"`
	// IPv4 and IPv6 say the same for a client of each family, whichever
	// way its connection takes (Docker's DNAT, or docker-proxy on the
	// host: both are judged by the ingress rules): a rule whose
	// addresses are all of the other family does not decide for it;
	// "" when the port is not bound in that family, ReachLocal when only
	// to its loopback address.
	IPv4 string `json:"ipv4"`
	IPv6 string `json:"ipv6"`
	// Rules are the rules that can decide a connection to the port, layer
	// by layer and in order, each ending with the layer's default: those
	// whose ports hold HostPort (or that have none) and whose protocol
	// covers Proto, e.g. "network section 1 ingress 1 allow
	// 198.51.100.10 tcp/8080". A layer without ingress keys says so.
	Rules []string `json:"rules"`
	// Denied sums the kernel's counters of the deny rules and defaults
	// among Rules that count per rule (those of the network's section;
	// a rule that covers other ports too counts theirs as well).
	Denied uint64 `json:"denied"`
}

// ContainerPorts are the published ports of a container, and the
// networks it is on, as discover found them.
type ContainerPorts struct {
	ID, Name string
	// Networks are the container's networks: by ID, and by name where
	// the ID is not known.
	Networks []NetworkRef
	Ports    []docker.PublishedPort
}

// NetworkRef names a network by ID, or by Name when ID is "".
type NetworkRef struct{ ID, Name string }

// SetPublished fills s.Published from the published ports of the
// containers that r's fenced networks hold, with s.Networks' counters
// (Make first). Containers on networks that r does not fence are left out.
func (s *Status) SetPublished(r *fence.Result, ctrs []ContainerPorts) {
	s.Published = []PublishedStatus{}
	if r == nil {
		return
	}
	sectionOf := map[string]*policy.ContainerSection{}
	for _, fc := range r.Containers {
		sectionOf[fc.Container.ID] = fc.Section
	}
	counters := map[string]map[string]uint64{} // bridge -> rule ID -> packets
	for _, n := range s.Networks {
		m := map[string]uint64{}
		for _, rs := range n.Rules {
			m[rs.ID] += rs.Packets
		}
		counters[n.Bridge] = m
	}
	for _, c := range ctrs {
		if len(c.Ports) == 0 {
			continue
		}
		for _, e := range c.Networks {
			f := fencedNetwork(r, e)
			if f == nil {
				continue
			}
			for _, p := range groupPorts(c.Ports) {
				ps := PublishedStatus{Container: c.Name, ID: c.ID, Network: f.Network.Name, Bridge: f.Network.Bridge,
					HostIPs: p.hostIPs, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Proto: p.Proto}
				fams := [2]string{ReachOpen, ReachOpen} // IPv4, IPv6
				layer := func(name string, rules []*policy.Rule, def policy.Verdict, given bool, counted map[string]uint64) {
					if !given {
						ps.Rules = append(ps.Rules, name+": no ingress rules")
						return
					}
					for i, v6 := range []bool{false, true} {
						v, _ := reach(inFamily(r.Policy, f.Network, rules, v6), def, p.HostPort, policy.Proto(p.Proto))
						fams[i] = intersect(fams[i], v)
					}
					_, decide := reach(rules, def, p.HostPort, policy.Proto(p.Proto))
					for _, r := range decide {
						ps.Rules = append(ps.Rules, fmt.Sprintf("%s %s %s %s", name, r.ID(), r.Verdict, fence.RuleMatch(r)))
						if r.Verdict == policy.Deny {
							ps.Denied += counted[r.ID()]
						}
					}
					ps.Rules = append(ps.Rules, fmt.Sprintf("%s ingress_default %s", name, def))
					if def == policy.Deny {
						ps.Denied += counted["ingress_default"]
					}
				}
				sec := f.Section
				layer(fmt.Sprintf("network section %d", sec.Index), sec.Rules(policy.Ingress), sec.Default(policy.Ingress), sec.Given(policy.Ingress), counters[f.Network.Bridge])
				if cs := sectionOf[c.ID]; cs != nil && cs.Ingress.Given {
					layer(fmt.Sprintf("container section %d", cs.Index), cs.Ingress.Rules, cs.Ingress.Default, true, nil)
				}
				ps.IPv4, ps.IPv6, ps.Verdict = bound(p.hostIPs, fams)
				s.Published = append(s.Published, ps)
			}
		}
	}
}

// fencedNetwork returns the fenced network of the endpoint, nil if r does
// not fence it.
func fencedNetwork(r *fence.Result, e NetworkRef) *fence.Fenced {
	for i := range r.Fenced {
		f := &r.Fenced[i]
		if e.ID != "" && f.Network.ID == e.ID || e.ID == "" && f.Network.Name == e.Name {
			return f
		}
	}
	return nil
}

// groupedPort is a published port with the host addresses it is bound to.
type groupedPort struct {
	docker.PublishedPort
	hostIPs []string
}

// groupPorts merges the bindings of one port to several host addresses
// (Docker binds -p 8080:80 to 0.0.0.0 and ::), keeping their order.
func groupPorts(ports []docker.PublishedPort) []groupedPort {
	var out []groupedPort
	for _, p := range ports {
		i := slices.IndexFunc(out, func(g groupedPort) bool {
			return g.HostPort == p.HostPort && g.ContainerPort == p.ContainerPort && g.Proto == p.Proto
		})
		if i < 0 {
			out = append(out, groupedPort{PublishedPort: p, hostIPs: []string{}})
			i = len(out) - 1
		}
		if p.HostIP.IsValid() {
			out[i].hostIPs = append(out[i].hostIPs, p.HostIP.String())
		}
	}
	return out
}

// reach judges a port of protocol proto by a layer's ingress rules and
// default: which of the rules can decide a connection to it, in order up
// to the first that matches every source, and whether the layer lets
// every source through (ReachOpen), none (ReachClosed) or some.
func reach(rules []*policy.Rule, def policy.Verdict, port uint16, proto policy.Proto) (string, []*policy.Rule) {
	var decide []*policy.Rule
	allowed, denied := false, false
	for _, r := range rules {
		if !coversPort(r, port, proto) {
			continue
		}
		decide = append(decide, r)
		if r.Addrs.Any {
			def = r.Verdict // it decides every source the rules above left
			break
		}
		if r.Verdict == policy.Allow {
			allowed = true
		} else {
			denied = true
		}
	}
	switch {
	case def == policy.Allow && !denied:
		return ReachOpen, decide
	case def == policy.Deny && !allowed:
		return ReachClosed, decide
	}
	return ReachRestricted, decide
}

// coversPort reports whether rule r can match a connection to port over
// proto: it names no ports or one range holds port, and its protocols
// include proto.
func coversPort(r *policy.Rule, port uint16, proto policy.Proto) bool {
	if protos := r.Protos(); protos != nil && !slices.Contains(protos, proto) {
		return false
	}
	if len(r.Ports) == 0 {
		return true
	}
	for _, pr := range r.Ports {
		if pr.First <= port && port <= pr.Last {
			return true
		}
	}
	return false
}

// intersect is the verdict of two layers that must both allow.
func intersect(a, b string) string {
	switch {
	case a == ReachClosed || b == ReachClosed:
		return ReachClosed
	case a == ReachOpen && b == ReachOpen:
		return ReachOpen
	}
	return ReachRestricted
}

// publishedLine renders a published port for the text status:
// "0.0.0.0,:: 8080->80/tcp".
func publishedLine(p PublishedStatus) string {
	return fmt.Sprintf("%s %d->%d/%s", OrDash(strings.Join(p.HostIPs, ",")), p.HostPort, p.ContainerPort, p.Proto)
}

// inFamily returns the rules that can match a client of one family (IPv6
// if v6): those for any address, and those whose addresses (resolved
// with network n for "self") hold some of that family. The kernel has no
// rule of a family for the others. Without the policy, all of them.
func inFamily(pol *policy.Policy, n policy.Network, rules []*policy.Rule, v6 bool) []*policy.Rule {
	if pol == nil {
		return rules
	}
	var out []*policy.Rule
	for _, r := range rules {
		if r.Addrs.Any || slices.ContainsFunc(pol.Resolve(r.Addrs, n), func(p netip.Prefix) bool { return p.Addr().Is6() == v6 }) {
			out = append(out, r)
		}
	}
	return out
}

// bound returns what a client of each family gets from a port bound to
// hostIPs (none: all of the host's addresses, as an engine that does not
// say binds it), given what the rules let each family reach (fams,
// IPv4 first), and the port's verdict over the families it is bound in:
// a family it is not bound in is "", one bound to the loopback only
// ReachLocal (the host's own connections are not ingress).
func bound(hostIPs []string, fams [2]string) (v4, v6, verdict string) {
	var out [2]string
	for i, v := range fams {
		is6 := i == 1
		if len(hostIPs) == 0 {
			out[i] = v
			continue
		}
		for _, h := range hostIPs {
			a, err := netip.ParseAddr(h)
			if err != nil || a.Unmap().Is6() != is6 {
				continue
			}
			if a.IsLoopback() {
				if out[i] == "" {
					out[i] = ReachLocal
				}
				continue
			}
			out[i] = v
		}
	}
	for _, v := range out {
		switch {
		case v == "":
		case verdict == "" || verdict == ReachLocal:
			verdict = v
		case v != ReachLocal && v != verdict:
			verdict = ReachRestricted
		}
	}
	if verdict == "" {
		verdict = intersect(fams[0], fams[1])
	}
	return out[0], out[1], verdict
}

// reachText renders a port's verdict for the text status, with each
// family's where they differ: "restricted (IPv4 restricted, IPv6 closed)".
func reachText(p PublishedStatus) string {
	if p.IPv4 == "" || p.IPv6 == "" || p.IPv4 == p.IPv6 {
		return p.Verdict
	}
	return fmt.Sprintf("%s (IPv4 %s, IPv6 %s)", p.Verdict, p.IPv4, p.IPv6)
}
