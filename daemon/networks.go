package daemon

import (
	"os"
	"syscall"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/policy"
)

// FromDocker turns Docker's networks into policy networks. A network without
// IPAM subnets gets those of its bridge.
func FromDocker(dn []docker.Network, bridges []bridge.Bridge) []policy.Network {
	by := map[string]bridge.Bridge{}
	for _, b := range bridges {
		by[b.Name] = b
	}
	out := make([]policy.Network, len(dn))
	for i, n := range dn {
		out[i] = policy.Network{ID: n.ID, Name: n.Name, Bridge: n.Bridge, Labels: n.Labels, Subnets: n.Subnets}
		if len(out[i].Subnets) == 0 {
			out[i].Subnets = by[n.Bridge].Subnets
		}
	}
	return out
}

// FromBridges turns bridges found over netlink into networks. Only docker0
// and br-* look like Docker's, and only they get a name (the bridge's) that
// name patterns can match.
func FromBridges(bridges []bridge.Bridge) []policy.Network {
	out := make([]policy.Network, 0, len(bridges))
	for _, b := range bridges {
		n := policy.Network{Bridge: b.Name, Subnets: b.Subnets}
		if IsDockerBridge(b.Name) {
			n.Name = b.Name
		}
		out = append(out, n)
	}
	return out
}

// IsDockerBridge reports whether a bridge name is one Docker gives.
func IsDockerBridge(name string) bool {
	return name == "docker0" || len(name) > 3 && name[:3] == "br-"
}

func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
