package topo

// Names and addresses of the outside namespace built by AddOutside: a
// client network in front of the Docker host, the "world" from which
// published ports are reached.
const (
	// OutsideIf is the name of Host's interface towards Outside.
	OutsideIf = "out0"

	// HostOut4 is Host's IPv4 address on out0, where Outside's clients
	// reach published ports.
	HostOut4 = "198.51.100.254"

	// HostOut6 is Host's IPv6 address on out0.
	HostOut6 = "2001:db8:51::fe"

	// OutAllowed4 is an IPv4 address of Outside that policies allow.
	OutAllowed4 = "198.51.100.10"

	// OutAllowed6 is an IPv6 address of Outside that policies allow.
	OutAllowed6 = "2001:db8:51::10"

	// OutStranger4 is an IPv4 address of Outside that no policy allows.
	OutStranger4 = "198.51.100.66"

	// OutStranger6 is an IPv6 address of Outside that no policy allows.
	OutStranger6 = "2001:db8:51::66"
)

// AddOutside creates the namespace "outside", connected to Host by a veth
// pair (out0 in Host, eth0 in Outside) on 198.51.100.0/24 and
// 2001:db8:51::/64, with the addresses OutAllowed4, OutStranger4,
// OutAllowed6 and OutStranger6 on its eth0; a client chooses its source by
// binding to one of them. Outside has no default route, only the two
// subnets on the link: it reaches Host's addresses on out0 (and so the
// ports Docker publishes there), and Host reaches it, nothing else.
func (tp *Topo) AddOutside(t T) *NS {
	t.Helper()
	out := tp.newNS(t, "outside")
	out.HostIf = OutsideIf
	if err := tp.Host.ipBatch(
		"link add "+OutsideIf+" type veth peer name eth0 netns "+out.Name,
		"addr add "+HostOut4+"/24 dev "+OutsideIf,
		"addr add "+HostOut6+"/64 dev "+OutsideIf+" nodad",
		"link set "+OutsideIf+" up",
	); err != nil {
		t.Fatalf("topo: AddOutside: %v", err)
	}
	if err := out.ipBatch(
		"addr add "+OutAllowed4+"/24 dev eth0",
		"addr add "+OutStranger4+"/24 dev eth0",
		"addr add "+OutAllowed6+"/64 dev eth0 nodad",
		"addr add "+OutStranger6+"/64 dev eth0 nodad",
		"link set eth0 up",
	); err != nil {
		t.Fatalf("topo: AddOutside: %v", err)
	}
	return out
}
