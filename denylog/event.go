// Package denylog turns the packets that dockerfence's deny chains log to
// NFLOG into denial events, attributed to a network, a policy rule and a
// container, and hands them to whoever follows them.
package denylog

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/ipproto"
	"github.com/dockerfence/dockerfence/nflog"
	"github.com/dockerfence/dockerfence/policy"
)

// Event is one denied packet. It is also the JSON schema of
// `dockerfence logs --json`: fields are only ever added.
type Event struct {
	Time time.Time `json:"time"`
	// Verdict is "deny", or "would deny" in audit mode (the packet passed).
	Verdict string `json:"verdict"`
	// Network is the Docker network's name; for a bridge dockerfence did not
	// know yet it is empty.
	Network   string `json:"network"`
	NetworkID string `json:"network_id,omitempty"`
	Bridge    string `json:"bridge"`
	// Section is the 1-based index of the policy section that fences the
	// network.
	Section int `json:"section"`
	// Hook is "egress" (to other hosts), "host" (to this host) or
	// "ingress" (a connection into a container).
	Hook string `json:"hook"`
	// Rule names the rule as status does: "egress 4", "host 1",
	// "egress_default", "host_default" or "anti-spoofing"; RuleIndex is its
	// 1-based index (0 for the others).
	Rule      string `json:"rule"`
	RuleIndex int    `json:"rule_index,omitempty"`
	// Comment is the rule's comment, or what it matches if it has none.
	Comment string `json:"comment"`
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	// Proto is "tcp", "udp", "sctp", "icmp", "icmpv6" or the protocol number.
	Proto string `json:"proto"`
	// Port is the destination port (tcp, udp, sctp), 0 otherwise.
	Port uint16 `json:"port,omitempty"`
	// Container and ContainerID name the container that owns Src (for
	// ingress, Dst: the container the connection goes to), looked up from
	// Docker; empty without Docker or for an unknown address.
	Container   string `json:"container"`
	ContainerID string `json:"container_id,omitempty"`
	// Layer says whose rules denied: "" for the network's section,
	// "container section" (then ContainerSection is its 1-based index) or
	// "label" for the container's own; the container is then the one the
	// compiler gave those rules, whatever the address lookup says.
	Layer            string `json:"layer,omitempty"`
	ContainerSection int    `json:"container_section,omitempty"`
	// PublishedPort is, for ingress, the port the client connected to
	// before Docker's DNAT (the connection's original destination port):
	// the published port, where Port is the container's. 0 when it is
	// Port, when it is not known, and when Docker's mapping gives several
	// (PublishedPorts); but for a connection through docker-proxy (denied
	// in the input hook, to the host's own address), it is Port, the
	// published port, and Container is the container that publishes it.
	PublishedPort uint16 `json:"published_port,omitempty"`
	// PublishedPorts are, when the kernel did not send the connection (no
	// ctnetlink) and the destination container publishes its port Port
	// on several host ports, all of them: the connection came through one
	// of them. Empty otherwise.
	PublishedPorts []uint16 `json:"published_ports,omitempty"`
	// PublishedPortFrom says where PublishedPort or PublishedPorts come
	// from: PortFromKernel (the connection's original destination port,
	// certain; for docker-proxy's, the packet's own destination port) or PortFromDocker (the destination container's published
	// ports as Docker lists them, the host ports that map to Port: a
	// connection routed to the container's address directly, without
	// DNAT, is named the same). "" when neither is set.
	PublishedPortFrom string `json:"published_port_from,omitempty"`
	// Name is, for egress to an address the daemon had learned from a DNS
	// answer and whose time ran out, the name that answer was for, and
	// NameExpired when its element expired: the container connected
	// without a fresh lookup. Empty otherwise.
	Name        string    `json:"name,omitempty"`
	NameExpired time.Time `json:"name_expired,omitzero"`
}

// Where an ingress denial's published port comes from (Event.PublishedPortFrom).
const (
	PortFromKernel = "kernel"
	PortFromDocker = "docker"
)

// Line renders the event as one readable line:
//
//	12:04:05 deny        app-web-1 (app_default) 172.20.0.2 -> 192.168.100.50:5432/tcp  rule 4 "private network"
func (e Event) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-10s ", e.Time.Local().Format(time.TimeOnly), e.Verdict)
	who := e.Container
	if who == "" {
		who = "-"
	}
	where := e.Network
	if where == "" {
		where = e.Bridge
	}
	published := ""
	switch {
	case e.PublishedPort != 0:
		published = fmt.Sprintf(" (published port %d)", e.PublishedPort)
	case len(e.PublishedPorts) > 0:
		ports := make([]string, len(e.PublishedPorts))
		for i, p := range e.PublishedPorts {
			ports[i] = strconv.Itoa(int(p))
		}
		published = " (published port " + strings.Join(ports, " or ") + ")"
	}
	fmt.Fprintf(&b, "%s (%s) %s -> %s%s  ", who, where, e.Src, e.destination(), published)
	switch {
	case e.RuleIndex > 0 && e.Hook == policy.Egress.String():
		fmt.Fprintf(&b, "rule %d %q", e.RuleIndex, e.Comment)
	case e.RuleIndex > 0:
		fmt.Fprintf(&b, "%s rule %d %q", e.Hook, e.RuleIndex, e.Comment)
	default:
		fmt.Fprintf(&b, "%s %q", e.Rule, e.Comment)
	}
	if e.Name != "" {
		fmt.Fprintf(&b, "  (learned for %s, expired %s)", e.Name, e.NameExpired.Local().Format(time.TimeOnly))
	}
	return b.String()
}

// destination renders the destination as ADDR[:PORT]/PROTO.
func (e Event) destination() string {
	if e.Port == 0 {
		return e.Dst + "/" + e.Proto
	}
	a, err := netip.ParseAddr(e.Dst)
	if err == nil && a.Is6() {
		return fmt.Sprintf("[%s]:%d/%s", e.Dst, e.Port, e.Proto)
	}
	return fmt.Sprintf("%s:%d/%s", e.Dst, e.Port, e.Proto)
}

// Resolver finds the container that owns an address.
type Resolver interface {
	Container(addr netip.Addr) (name, id string)
}

// PortResolver is a Resolver that also knows the ports that the container
// which owns an address publishes: where the kernel does not send a
// logged packet's connection (no ctnetlink), an ingress denial's
// published port is found from them. Containers is one.
type PortResolver interface {
	Resolver
	PublishedPorts(addr netip.Addr) []docker.PublishedPort
}

// Attribute turns a logged packet into an Event with the table that logged
// it. It reports false for packets whose prefix is not one of the table's
// deny chains (another table's log rule using the same group, or a table
// replaced since). ifname names an interface index (the bridge of a network
// dockerfence did not know yet); res may be nil.
//
// Without a table that knows the prefix (the daemon keeps a table it did
// not build, or the table changed since), an event is still made from the
// prefix alone: the deny chain's name stands in for the rule and the
// interface for the network.
func Attribute(p nflog.Packet, t *fence.Result, res Resolver, ifname func(uint32) string) (Event, bool) {
	chain, audit, ok := fence.ParseLogPrefix(p.Prefix)
	if !ok {
		return Event{}, false
	}
	var d *fence.Denial
	if t != nil {
		d = t.Denial(p.Prefix)
	}
	e := Event{Time: p.Time, Verdict: "deny"}
	if audit {
		e.Verdict = "would deny"
	}
	if d == nil {
		e.Rule, e.Comment = chain, "deny chain "+chain+" (rule not known: the table was not built by this process)"
		d = &fence.Denial{}
	} else {
		e.Hook, e.Rule, e.Comment = d.Hook.String(), d.RuleID(), d.Comment()
	}
	if d.Rule != nil {
		e.RuleIndex = d.Rule.Index
	}
	if d.Section != nil {
		e.Section = d.Section.Index
	}
	if d.Network != nil {
		e.Network, e.NetworkID, e.Bridge = d.Network.Name, d.Network.ID, d.Network.Bridge
	} else if dev := p.InDev; ifname != nil {
		if d.Hook == policy.Ingress {
			// Into the bridge: the bridge is the output device.
			dev = p.OutDev
		}
		if dev != 0 {
			e.Bridge = ifname(dev)
		}
		// A container's denial (its section's, its label's) names no
		// network: the bridge it crossed does, where the table fences it.
		if f := fencedBridge(t, e.Bridge); f != nil {
			e.Network, e.NetworkID = f.Network.Name, f.Network.ID
			if f.Section != nil {
				e.Section = f.Section.Index
			}
		}
	}
	f, _ := nflog.Decode(p.Family, p.Payload) // a truncated packet still gives its addresses
	// The container is the sender's, or for ingress the receiver's: a
	// connection into it, after Docker's DNAT (so Dst and Port are the
	// container's, not the published ones).
	own := f.Src
	if d.Hook == policy.Ingress {
		own = f.Dst
	}
	if f.Src.IsValid() {
		e.Src = f.Src.String()
	}
	if own.IsValid() && res != nil {
		e.Container, e.ContainerID = res.Container(own)
	}
	if c := d.Container; c != nil {
		e.Container, e.ContainerID, e.Layer = c.Name, c.ID, string(d.Layer)
		if d.ContainerSection != nil {
			e.ContainerSection = d.ContainerSection.Index
		}
	}
	if f.Dst.IsValid() {
		e.Dst = f.Dst.String()
	}
	e.Proto = protoName(f.Proto)
	if ipproto.HasPorts(f.Proto) {
		e.Port = f.DstPort
		if d.Hook == policy.Ingress {
			e.published(p.OrigDstPort, own, e.Proto, res)
		}
		if d.Hook == policy.Ingress && p.OutDev == 0 && t != nil {
			proxied(&e, t, f.Proto, f.Dst)
		}
	}
	return e, true
}

// published fills the published port of an ingress denial to port e.Port
// of the container at dst over proto: the connection's original
// destination port origDst where the kernel gave it, else the host ports
// that the container's published ports map to e.Port (res must be a
// PortResolver), all of them if several.
func (e *Event) published(origDst uint16, dst netip.Addr, proto string, res Resolver) {
	if origDst != 0 {
		if origDst != e.Port {
			e.PublishedPort, e.PublishedPortFrom = origDst, PortFromKernel
		}
		return
	}
	pr, ok := res.(PortResolver)
	if !ok || !dst.IsValid() {
		return
	}
	hosts := hostPorts(pr.PublishedPorts(dst), dst.Is6(), e.Port, proto)
	switch {
	case len(hosts) == 0 || len(hosts) == 1 && hosts[0] == e.Port:
		// Not published, or published on the same port: nothing to add.
	case len(hosts) == 1:
		e.PublishedPort, e.PublishedPortFrom = hosts[0], PortFromDocker
	default:
		e.PublishedPorts, e.PublishedPortFrom = hosts, PortFromDocker
	}
}

// hostPorts returns the host ports, sorted and without duplicates, that
// Docker's DNAT sends to port ctrPort/proto of a container that publishes
// ports, for a connection of the family given by v6: those bound to a host
// address of that family (or to none, where the engine does not say).
func hostPorts(ports []docker.PublishedPort, v6 bool, ctrPort uint16, proto string) []uint16 {
	var out []uint16
	for _, p := range ports {
		if p.ContainerPort != ctrPort || p.Proto != proto {
			continue
		}
		if p.HostIP.IsValid() && p.HostIP.Unmap().Is6() != v6 {
			continue
		}
		out = append(out, p.HostPort)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// fencedBridge returns the network that table t fences on bridge, nil if
// none (or t is nil).
func fencedBridge(t *fence.Result, bridge string) *fence.Fenced {
	if t == nil || bridge == "" {
		return nil
	}
	for i := range t.Fenced {
		if t.Fenced[i].Network.Bridge == bridge {
			return &t.Fenced[i]
		}
	}
	return nil
}

// proxied attributes an ingress denial in the input hook (no output
// device): a connection to a published port on the host's own address,
// which docker-proxy would have accepted. The port is the published one,
// and the container the one that publishes it there (the address
// lookup found none: the destination is the host's).
func proxied(e *Event, t *fence.Result, proto uint8, dst netip.Addr) {
	pps := t.ProxiedTo(proto, e.Port, dst)
	if len(pps) == 0 {
		return
	}
	e.PublishedPort, e.PublishedPorts, e.PublishedPortFrom = e.Port, nil, PortFromKernel
	pp := pps[0]
	if e.Container == "" {
		e.Container, e.ContainerID = pp.Container.Name, pp.Container.ID
	}
	if e.Bridge == "" {
		e.Network, e.NetworkID, e.Bridge = pp.Network.Name, pp.Network.ID, pp.Network.Bridge
	}
}

func protoName(p uint8) string { return ipproto.Name(p) }
