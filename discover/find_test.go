package discover

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/policy"
)

func TestFind(t *testing.T) {
	late := policy.Network{Name: "br-late", Bridge: "br-late", Subnets: pfxs("172.21.0.0/16")}
	brApp := policy.Network{Name: "br-app", Bridge: "br-app", Subnets: pfxs("172.20.0.0/16", "fd00:20::/64")}
	pfx := netip.MustParsePrefix
	tests := []struct {
		name       string
		arg        string
		dockerDown bool
		bridgeErr  error
		want       Found
	}{
		{name: "docker: by name", arg: "app_default", want: Found{Network: appNet, Source: SourceDocker}},
		{name: "docker: by bridge", arg: "br-app", want: Found{Network: appNet, Source: SourceDocker}},
		{name: "docker: a name before a bridge", arg: "db", want: Found{Network: dbNet, Source: SourceDocker}},
		{name: "docker: subnet stands for the whole network", arg: "fd00:20::/64", want: Found{Network: appNet, Source: SourceDocker, Prefix: pfx("fd00:20::/64"), Subnet: pfx("fd00:20::/64")}},
		{name: "docker: subnet with host bits", arg: "172.20.9.9/16", want: Found{Network: appNet, Source: SourceDocker, Prefix: pfx("172.20.0.0/16"), Subnet: pfx("172.20.0.0/16")}},
		{name: "docker: part of a subnet", arg: "172.20.5.0/24", want: Found{Network: appNet, Source: SourceDocker, Prefix: pfx("172.20.5.0/24"), Subnet: pfx("172.20.0.0/16")}},
		{name: "docker: subnets from the bridge", arg: "10.77.0.0/24", want: Found{Network: dbNet, Source: SourceDocker, Prefix: pfx("10.77.0.0/24"), Subnet: pfx("10.77.0.0/24")}},
		{name: "docker: a subnet of the bridge that Docker does not list", arg: "fd00:22::/64", want: Found{Network: webNet, Source: SourceDocker, Prefix: pfx("fd00:22::/64"), Subnet: pfx("fd00:22::/64"), Unlisted: true}},
		{name: "docker: unknown br-* bridge", arg: "br-late", want: Found{Network: late, Source: SourceNetlink, CatchAllOnly: true}},
		{name: "docker: unknown br-* bridge by subnet", arg: "172.21.0.0/16", want: Found{Network: late, Source: SourceNetlink, Prefix: pfx("172.21.0.0/16"), Subnet: pfx("172.21.0.0/16"), CatchAllOnly: true}},
		{name: "docker: unknown other bridge", arg: "lxcbr0", want: Found{Network: policy.Network{Bridge: "lxcbr0", Subnets: pfxs("10.0.3.0/24")}, Source: SourceNetlink, Unfenced: true}},
		{name: "docker: no such name", arg: "nope", want: Found{Network: policy.Network{Name: "nope"}}},
		{name: "docker: no such subnet", arg: "192.0.2.0/24", want: Found{Network: policy.Network{Subnets: pfxs("192.0.2.0/24")}, Prefix: pfx("192.0.2.0/24")}},
		{name: "docker: a subnet wider than any network's", arg: "172.16.0.0/12", want: Found{Network: policy.Network{Subnets: pfxs("172.16.0.0/12")}, Prefix: pfx("172.16.0.0/12")}},
		{name: "netlink: br-* bridge by name", arg: "br-app", dockerDown: true, want: Found{Network: brApp, Source: SourceNetlink}},
		{name: "netlink: subnet stands for the whole bridge", arg: "172.20.0.0/16", dockerDown: true, want: Found{Network: brApp, Source: SourceNetlink, Prefix: pfx("172.20.0.0/16"), Subnet: pfx("172.20.0.0/16")}},
		{name: "netlink: other bridge has no name", arg: "dbbr", dockerDown: true, want: Found{Network: policy.Network{Bridge: "dbbr", Subnets: pfxs("10.77.0.0/24", "fd00:77::/64")}, Source: SourceNetlink}},
		{name: "netlink: Docker's name is unknown", arg: "app_default", dockerDown: true, want: Found{Network: policy.Network{Name: "app_default"}}},
		{name: "netlink: no such subnet", arg: "192.0.2.0/24", dockerDown: true, want: Found{Network: policy.Network{Subnets: pfxs("192.0.2.0/24")}, Prefix: pfx("192.0.2.0/24")}},
		{name: "neither", arg: "br-app", dockerDown: true, bridgeErr: errors.New("netlink: permission denied"), want: Found{Network: policy.Network{Name: "br-app"}}},
		{name: "docker without bridges", arg: "br-late", bridgeErr: errors.New("netlink: permission denied"), want: Found{Network: policy.Network{Name: "br-late"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd := &fakeDocker{nets: testDocker}
			if tt.dockerDown {
				fd.netErr = errDown
			}
			inv, _ := (&Discoverer{Docker: fd, Bridges: lister(tt.bridgeErr)}).Discover(context.Background())
			if got := inv.Find(tt.arg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Find(%q) = %+v, want %+v", tt.arg, got, tt.want)
			}
		})
	}
}

// The daemon's last known networks are found as Docker's.
func TestFindLastKnown(t *testing.T) {
	fd := &fakeDocker{nets: testDocker}
	d := &Discoverer{Docker: fd, Bridges: lister(nil)}
	discover(t, d)
	fd.set(func(f *fakeDocker) { f.netErr = errDown })
	inv := discover(t, d)
	if got := inv.Find("br-app"); got.Source != SourceDockerLast || !reflect.DeepEqual(got.Network, appNet) {
		t.Errorf("Find(br-app) = %+v, want app_default, last known", got)
	}
	if got := inv.Find("br-late"); got.Source != SourceNetlink || !got.CatchAllOnly {
		t.Errorf("Find(br-late) = %+v, want a bridge Docker does not report", got)
	}
}

// Networks of other drivers than bridge are in the inventory, with their
// driver and no bridge, and found by name and subnet like the others.
func TestOtherDrivers(t *testing.T) {
	lan := docker.Network{ID: "m1", Name: "lan", Driver: "macvlan", Subnets: pfxs("192.168.1.0/24")}
	host := docker.Network{ID: "h1", Name: "host", Driver: "host"}
	// A network named like a bridge: its name is a name, not a bridge's.
	odd := docker.Network{ID: "o1", Name: "lxcbr0", Driver: "ipvlan"}
	fd := &fakeDocker{nets: append([]docker.Network{host, lan, odd}, testDocker...)}
	inv := discover(t, &Discoverer{Docker: fd, Bridges: lister(nil)})
	for _, n := range []policy.Network{host, lan, odd} {
		if !slices.ContainsFunc(inv.Networks, func(m policy.Network) bool { return reflect.DeepEqual(m, n) }) {
			t.Errorf("inventory lacks %+v: %+v", n, inv.Networks)
		}
	}
	pfx := netip.MustParsePrefix
	for arg, want := range map[string]Found{
		"lan":            {Network: lan, Source: SourceDocker},
		"host":           {Network: host, Source: SourceDocker},
		"lxcbr0":         {Network: odd, Source: SourceDocker},
		"192.168.1.0/24": {Network: lan, Source: SourceDocker, Prefix: pfx("192.168.1.0/24"), Subnet: pfx("192.168.1.0/24")},
		"192.168.1.9/32": {Network: lan, Source: SourceDocker, Prefix: pfx("192.168.1.9/32"), Subnet: pfx("192.168.1.0/24")},
	} {
		if got := inv.Find(arg); !reflect.DeepEqual(got, want) {
			t.Errorf("Find(%q) = %+v, want %+v", arg, got, want)
		}
	}
}
