// Package ipproto is dockerfence's one table of IP protocol numbers: what
// each is called in policies and logs, in nft syntax, and whether it has
// ports.
package ipproto

import "fmt"

// IANA protocol numbers dockerfence names.
const (
	ICMP    uint8 = 1
	TCP     uint8 = 6
	UDP     uint8 = 17
	ICMPv6  uint8 = 58
	SCTP    uint8 = 132
	UDPLite uint8 = 136
	// Tunnels: IPv4 in IP (IPIP), IPv6 in IP (6in4 or ip6ip6), GRE and
	// MPLS in IP carry whole packets, which the host decapsulates.
	IPIP     uint8 = 4
	IPv6     uint8 = 41
	GRE      uint8 = 47
	MPLSInIP uint8 = 137
)

// Protocol is one row of the table.
type Protocol struct {
	Num uint8
	// Name is the policy's and the logs' name ("icmpv6").
	Name string
	// NFT is nft's name ("ipv6-icmp").
	NFT string
	// Title is the name in messages ("ICMPv6").
	Title string
	// Ports says whether the transport header starts with source and
	// destination ports.
	Ports bool
}

// Table lists the protocols, by number.
var Table = []Protocol{
	{ICMP, "icmp", "icmp", "ICMP", false},
	{TCP, "tcp", "tcp", "TCP", true},
	{UDP, "udp", "udp", "UDP", true},
	{ICMPv6, "icmpv6", "ipv6-icmp", "ICMPv6", false},
	{SCTP, "sctp", "sctp", "SCTP", true},
	{UDPLite, "udplite", "udplite", "UDP-Lite", true},
	{IPIP, "ipip", "ipencap", "IPIP", false},
	{IPv6, "ipv6", "ipv6", "IPv6-in-IP", false},
	{GRE, "gre", "gre", "GRE", false},
	{MPLSInIP, "mpls-in-ip", "mpls-in-ip", "MPLS-in-IP", false},
}

// Tunnels are the protocols that carry whole IP packets, which a tunnel
// endpoint on the host decapsulates.
var Tunnels = []uint8{IPIP, IPv6, GRE, MPLSInIP}

// ByNum returns the row of protocol number p.
func ByNum(p uint8) (Protocol, bool) {
	for _, r := range Table {
		if r.Num == p {
			return r, true
		}
	}
	return Protocol{}, false
}

// ByName returns the row of the protocol the policy calls name.
func ByName(name string) (Protocol, bool) {
	for _, r := range Table {
		if r.Name == name {
			return r, true
		}
	}
	return Protocol{}, false
}

// Name returns the policy's name of protocol p, or its number.
func Name(p uint8) string {
	if r, ok := ByNum(p); ok {
		return r.Name
	}
	return fmt.Sprint(p)
}

// HasPorts reports whether protocol p has ports.
func HasPorts(p uint8) bool {
	r, ok := ByNum(p)
	return ok && r.Ports
}
