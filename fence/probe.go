package fence

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dockerfence/dockerfence/policy"
)

// ParseAddr parses an address; an IPv4-mapped one becomes IPv4 and a zone
// is dropped, as the kernel's rules never see either.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	return a.Unmap().WithZone(""), nil
}

// ParseProbe parses ADDR[:PORT][/PROTO], as explain's --to gives it.
func ParseProbe(s string) (Probe, error) {
	var pr Probe
	bad := func(why string) (Probe, error) {
		return pr, fmt.Errorf("--to %q: %s; expected ADDR[:PORT][/PROTO], e.g. 192.168.1.5:5432/tcp or [2001:db8::1]:53/udp", s, why)
	}
	rest, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		switch policy.Proto(proto) {
		case policy.ProtoTCP, policy.ProtoUDP, policy.ProtoSCTP, policy.ProtoICMP, policy.ProtoICMPv6:
			pr.Proto = policy.Proto(proto)
		default:
			return bad(fmt.Sprintf("unknown protocol %q", proto))
		}
	}
	addr, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return bad("missing ]")
		}
		addr, port = rest[1:end], rest[end+1:]
		if port != "" {
			if !strings.HasPrefix(port, ":") {
				return bad(fmt.Sprintf("%q after ] is not :PORT", port))
			}
			port = port[1:]
			if port == "" {
				return bad("no port after :")
			}
		}
	} else if strings.Count(rest, ":") == 1 {
		addr, port, _ = strings.Cut(rest, ":")
		if port == "" {
			return bad("no port after :")
		}
	}
	a, err := ParseAddr(addr)
	if err != nil {
		return bad(fmt.Sprintf("%q is not an address", addr))
	}
	pr.Dst = a
	if port != "" {
		v, err := strconv.Atoi(port)
		if err != nil || v < 1 || v > 65535 {
			return bad(fmt.Sprintf("port %q is not 1..65535", port))
		}
		pr.Port = uint16(v)
		if !hasProto {
			pr.Proto = policy.ProtoTCP
		}
	}
	if pr.Proto == "" {
		pr.Proto = policy.ProtoAny
	}
	if pr.Port != 0 && !pr.Proto.HasPorts() {
		return bad(string(pr.Proto) + " has no ports")
	}
	if pr.Proto == policy.ProtoICMP && !pr.Dst.Is4() || pr.Proto == policy.ProtoICMPv6 && pr.Dst.Is4() {
		return bad(fmt.Sprintf("%s does not go to %s addresses; use %s", pr.Proto, familyOf(pr.Dst), map[bool]string{true: "icmp", false: "icmpv6"}[pr.Dst.Is4()]))
	}
	return pr, nil
}

// familyOf names the address family of a.
func familyOf(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// ParseIngressProbe parses explain --ingress's --to (ADDR, the container's
// address; "" for one inside the network) and --to-port (PORT[/PROTO],
// the published port; tcp unless PROTO says).
func ParseIngressProbe(to, toPort string) (Probe, error) {
	pr := Probe{Hook: policy.Ingress, Proto: policy.ProtoTCP}
	port, proto, hasProto := strings.Cut(toPort, "/")
	if hasProto {
		switch policy.Proto(proto) {
		case policy.ProtoTCP, policy.ProtoUDP, policy.ProtoSCTP:
			pr.Proto = policy.Proto(proto)
		default:
			return pr, fmt.Errorf("--to-port %q: protocol %q has no ports; expected PORT[/tcp|udp|sctp], e.g. 8080 or 5353/udp", toPort, proto)
		}
	}
	v, err := strconv.Atoi(port)
	if err != nil || v < 1 || v > 65535 {
		return pr, fmt.Errorf("--to-port %q: port %q is not 1..65535; expected PORT[/PROTO], e.g. 8080 or 5353/udp", toPort, port)
	}
	pr.Port = uint16(v)
	if to != "" {
		if pr.Dst, err = ParseAddr(to); err != nil {
			return pr, fmt.Errorf("--to %q: with --ingress, the address of the container the connection goes to (its port is --to-port's)", to)
		}
	}
	return pr, nil
}
