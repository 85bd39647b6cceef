package bridge

import (
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// TestNetlinkPorts builds, in throwaway namespaces, a bridge with two
// container-like ports (veth pairs whose peers are in other namespaces),
// a veth port whose peer stays in the bridge's namespace, and a veth pair
// outside the bridge; Ports lists the first two with their peers' hardware
// addresses, as the containers' namespaces see them.
func TestNetlinkPorts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create throwaway network namespaces (CI runs as root)")
	}
	host, ctr1, ctr2 := newNetns(t), newNetns(t), newNetns(t)
	h, err := netlink.NewHandleAt(host)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if links, err := h.LinkList(); err != nil || len(links) != 1 {
		t.Fatalf("the test namespace is not fresh: %v, %v", linkNames(links), err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-ports"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	brLink, err := h.LinkByName("br-ports")
	if err != nil {
		t.Fatal(err)
	}
	add := func(name, peer string, peerNS any, master bool) {
		t.Helper()
		la := netlink.LinkAttrs{Name: name}
		if master {
			la.MasterIndex = brLink.Attrs().Index
		}
		v := &netlink.Veth{LinkAttrs: la, PeerName: peer}
		if peerNS != nil {
			v.PeerNamespace = peerNS
		}
		if err := h.LinkAdd(v); err != nil {
			t.Fatalf("add veth %s: %v", name, err)
		}
	}
	add("vctr1", "eth0", netlink.NsFd(ctr1), true)
	add("vctr2", "eth0", netlink.NsFd(ctr2), true)
	add("vlocal", "vlocal-peer", nil, true)
	add("voutside", "eth1", netlink.NsFd(ctr1), false)
	mac := func(ns netns.NsHandle) string {
		t.Helper()
		hc, err := netlink.NewHandleAt(ns)
		if err != nil {
			t.Fatal(err)
		}
		defer hc.Close()
		l, err := hc.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().HardwareAddr.String()
	}
	want := map[string]string{"vctr1": mac(ctr1), "vctr2": mac(ctr2)}
	ports, err := Netlink{NS: host}.Ports("br-ports")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range ports {
		got[p.Name] = p.PeerMAC.String()
	}
	if len(got) != 2 || got["vctr1"] != want["vctr1"] || got["vctr2"] != want["vctr2"] {
		t.Errorf("ports %v; want %v", got, want)
	}
	if _, err := (Netlink{NS: host}).Ports("br-none"); err == nil {
		t.Error("Ports of a bridge that does not exist: no error")
	}
}
