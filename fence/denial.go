package fence

import (
	"strings"

	"github.com/dockerfence/dockerfence/policy"
)

// LogPrefix starts the NFLOG prefix of every dockerfence denial; the deny
// chain's name follows it.
const LogPrefix = "df "

// AuditLogPrefix starts the NFLOG prefix of would-be denials in audit mode.
const AuditLogPrefix = "df-audit "

// Reason is why a deny chain denies.
type Reason int

// Reasons.
const (
	// ReasonRule is a deny rule of the policy.
	ReasonRule Reason = iota
	// ReasonSpoof is a source outside the network (anti-spoofing).
	ReasonSpoof
	// ReasonDefault is a section's default verdict.
	ReasonDefault
	// ReasonTunnel is a packet that a tunnel on the host decapsulated
	// from a packet a container sent to the host (the tunnel fence).
	ReasonTunnel
	// ReasonTunnelEndpoint is a container's packet to a tunnel endpoint
	// on the host (a tunnel protocol, or a tunnel's UDP port) that only
	// the host's default would allow: what the endpoint decapsulates is
	// not fenced where the tunnel clears the packet mark (WireGuard).
	ReasonTunnelEndpoint
	// ReasonHeld is a source address of a network with container rules
	// that no container is known to hold yet: dropped until the container
	// is classified.
	ReasonHeld
	// ReasonCutOff is a container whose label does not parse: all its
	// egress is denied until the label is fixed.
	ReasonCutOff
	// ReasonIdentity is a packet that enters by a container's bridge port
	// from another source address than the container's own (the identity
	// check): a forged one.
	ReasonIdentity
)

// String returns the reason's short name, as deny chain names carry it.
func (r Reason) String() string {
	switch r {
	case ReasonSpoof:
		return "spoof"
	case ReasonDefault:
		return "default"
	case ReasonTunnel:
		return "tunnel"
	case ReasonTunnelEndpoint:
		return "tunnel-endpoint"
	case ReasonHeld:
		return "held"
	case ReasonCutOff:
		return "cutoff"
	case ReasonIdentity:
		return "identity"
	}
	return "rule"
}

// forged reports whether the packets denied for this reason carry a source
// address that the container chose, not its own (a tunnelled packet's is
// whatever the container wrote inside): a denial must not answer them.
func (r Reason) forged() bool {
	return r == ReasonSpoof || r == ReasonTunnel || r == ReasonIdentity
}

// drops reports whether the packets denied for this reason are dropped
// whatever deny_action says: forged ones, and those of a container not
// classified yet, whose connection should retry once it is rather than
// fail at once.
func (r Reason) drops() bool { return r.forged() || r == ReasonHeld }

// Denial is what one deny chain stands for.
type Denial struct {
	// Chain is the deny chain's name; its log prefix is LogPrefix (or
	// AuditLogPrefix) followed by Chain and a space.
	Chain string
	// Network is the fenced network, nil for the chains that fence
	// bridges not known yet and for the tunnel fence.
	Network *policy.Network
	// Section is the network's section, nil for the tunnel fence.
	Section *policy.Section
	Hook    policy.Hook
	// Rule is the policy rule that denies, nil for anti-spoofing, the
	// tunnel fence and the hook's default.
	Rule   *policy.Rule
	Reason Reason
	// Container is the container whose own rules deny (its section's or
	// its label's, as Layer says): for ingress, the destination
	// container; nil for a network's denial;
	// ContainerSection is that section, nil for the label.
	Container        *Container
	ContainerSection *policy.ContainerSection
	Layer            ContainerLayer
	// Audit is set in audit mode: the packet was let through.
	Audit bool
}

// RuleID names the denial as status does: "egress 4", "egress_default",
// "anti-spoofing", "tunnel", "tunnel endpoint".
func (d *Denial) RuleID() string {
	if d.Layer != "" {
		switch d.Reason {
		case ReasonCutOff:
			return "cut off"
		case ReasonDefault:
			return string(d.Layer) + " " + d.Hook.String() + "_default"
		}
		return string(d.Layer) + " " + d.Rule.ID()
	}
	switch d.Reason {
	case ReasonHeld:
		return "held"
	case ReasonIdentity:
		return "identity"
	case ReasonSpoof:
		return "anti-spoofing"
	case ReasonTunnel:
		return "tunnel"
	case ReasonTunnelEndpoint:
		return TunnelEndpointRuleID
	case ReasonDefault:
		return d.Hook.String() + "_default"
	}
	return d.Rule.ID()
}

// Comment is the denial's human reason: the rule's comment if it has one.
func (d *Denial) Comment() string {
	switch {
	case d.Reason == ReasonSpoof:
		return "source outside the network"
	case d.Reason == ReasonTunnel:
		return "decapsulated on the host from a container's packet"
	case d.Reason == ReasonHeld:
		return "container not classified yet (held)"
	case d.Reason == ReasonIdentity:
		return "source is not the container's own address (identity)"
	case d.Reason == ReasonCutOff:
		return "label " + policy.EgressLabel + " does not parse: container cut off"
	case d.Reason == ReasonTunnelEndpoint:
		return "to a tunnel endpoint on the host (tunnel protocol or UDP port), which host_default does not cover"
	case d.Reason == ReasonDefault:
		return d.Hook.String() + "_default deny"
	case d.Rule.Comment != "":
		return d.Rule.Comment
	}
	return RuleMatch(d.Rule)
}

// RuleMatch renders what a policy rule matches, as written: "@private",
// "192.168.100.2 udp/53", "10.0.0.0/8 tcp+udp/80,443".
func RuleMatch(r *policy.Rule) string {
	s := r.Addrs.Text
	if r.Proto != policy.ProtoAny {
		s += " " + string(r.Proto)
	}
	if len(r.Ports) > 0 {
		ports := make([]string, len(r.Ports))
		for i, p := range r.Ports {
			ports[i] = p.String()
		}
		if r.Proto == policy.ProtoAny {
			s += " tcp+udp"
		}
		s += "/" + strings.Join(ports, ",")
	}
	return s
}

// Denial returns what the deny chain named by an NFLOG prefix stands for,
// or nil if the prefix is not one of this table's.
func (r *Result) Denial(prefix string) *Denial {
	chain, _, ok := ParseLogPrefix(prefix)
	if !ok {
		return nil
	}
	return r.Denials[chain]
}

// ParseLogPrefix reads the deny chain's name from a dockerfence NFLOG
// prefix, and whether it is an audit-mode one. ok is false for a prefix
// that is not dockerfence's.
func ParseLogPrefix(prefix string) (chain string, audit, ok bool) {
	rest, audit := strings.CutPrefix(prefix, AuditLogPrefix)
	if !audit {
		if rest, ok = strings.CutPrefix(prefix, LogPrefix); !ok {
			return "", false, false
		}
	}
	chain = strings.TrimSuffix(rest, " ")
	return chain, audit, chain != ""
}
