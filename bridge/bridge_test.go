package bridge

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// comparePrefixes lets go-cmp compare netip.Prefix, whose fields are
// unexported.
var comparePrefixes = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestSubnetsOf(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	tests := []struct {
		name string
		in   []netip.Prefix
		want []netip.Prefix
	}{
		{name: "nil", in: nil, want: nil},
		{name: "masks host bits", in: pp("172.17.0.1/16", "fd00:5::1/64"), want: pp("172.17.0.0/16", "fd00:5::/64")},
		{name: "IPv4 before IPv6", in: pp("fd00::1/64", "10.0.0.1/8"), want: pp("10.0.0.0/8", "fd00::/64")},
		{name: "sorted by address then length", in: pp("192.168.0.1/24", "10.1.0.1/16", "10.1.0.1/24", "10.0.0.1/8"), want: pp("10.0.0.0/8", "10.1.0.0/16", "10.1.0.0/24", "192.168.0.0/24")},
		{name: "deduplicated", in: pp("172.31.5.1/24", "172.31.5.2/24", "172.31.5.0/24"), want: pp("172.31.5.0/24")},
		{name: "link-local skipped", in: pp("169.254.3.4/16", "fe80::1/64", "fe80::abcd/10", "172.18.0.1/16"), want: pp("172.18.0.0/16")},
		{name: "only link-local", in: pp("fe80::1/64"), want: nil},
		{name: "IPv4-mapped becomes IPv4", in: pp("::ffff:172.20.0.1/112"), want: pp("172.20.0.0/16")},
		{name: "IPv4-mapped too short dropped", in: pp("::ffff:172.20.0.1/64"), want: nil},
		{name: "invalid dropped", in: []netip.Prefix{{}, netip.MustParsePrefix("10.0.0.1/8")}, want: pp("10.0.0.0/8")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := SubnetsOf(tc.in)
			if diff := cmp.Diff(tc.want, got, comparePrefixes); diff != "" {
				t.Errorf("SubnetsOf(%v) mismatch (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestPrefixFromIPNet(t *testing.T) {
	tests := []struct {
		name   string
		in     *net.IPNet
		want   netip.Prefix
		wantOK bool
	}{
		{name: "nil", in: nil},
		{name: "IPv4", in: &net.IPNet{IP: net.IPv4(172, 31, 5, 1).To4(), Mask: net.CIDRMask(24, 32)}, want: netip.MustParsePrefix("172.31.5.1/24"), wantOK: true},
		{name: "IPv4 in 16 bytes", in: &net.IPNet{IP: net.IPv4(172, 31, 5, 1), Mask: net.CIDRMask(24, 32)}, want: netip.MustParsePrefix("172.31.5.1/24"), wantOK: true},
		{name: "IPv4 with 128-bit mask", in: &net.IPNet{IP: net.IPv4(172, 31, 5, 1), Mask: net.CIDRMask(120, 128)}, want: netip.MustParsePrefix("172.31.5.1/24"), wantOK: true},
		{name: "IPv6", in: &net.IPNet{IP: net.ParseIP("fd00:5::1"), Mask: net.CIDRMask(64, 128)}, want: netip.MustParsePrefix("fd00:5::1/64"), wantOK: true},
		{name: "non-canonical mask", in: &net.IPNet{IP: net.IPv4(10, 0, 0, 1).To4(), Mask: net.IPv4Mask(255, 0, 255, 0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := prefixFromIPNet(tc.in)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("prefixFromIPNet(%v) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// newNetns creates a throwaway network namespace and returns a handle to it.
// The calling goroutine's namespace is left alone: the namespace is created
// on a separate, locked OS thread that is switched back before it is
// released. The namespace and everything in it go away when the handle is
// closed at the end of the test.
func newNetns(t *testing.T) netns.NsHandle {
	t.Helper()
	type result struct {
		ns  netns.NsHandle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.New()
		if err != nil {
			// netns.New may have switched the thread before failing; the
			// thread stays locked so that it dies with this goroutine.
			ch <- result{err: err}
			return
		}
		if err := netns.Set(orig); err != nil {
			ns.Close()
			ch <- result{err: err}
			return // thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		ch <- result{ns: ns}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("create network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.ns.Close() })
	return r.ns
}

// inNetns runs fn on a locked OS thread switched into ns.
func inNetns(t *testing.T, ns netns.NsHandle, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return // thread stays locked and is discarded
		}
		fn()
		if err := netns.Set(orig); err != nil {
			errc <- err
			return // thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("switch network namespace: %v", err)
	}
}

func TestNetlinkBridges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a throwaway network namespace (CI runs as root)")
	}
	ns := newNetns(t)

	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in test namespace: %v", err)
	}
	defer h.Close()

	// Guard: a fresh namespace has only lo. Anything else means the handle
	// is not where we think it is, so create nothing.
	links, err := h.LinkList()
	if err != nil {
		t.Fatalf("list links in test namespace: %v", err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Fatalf("test namespace is not fresh (links %v); refusing to create interfaces", linkNames(links))
	}

	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-test1"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatalf("add bridge: %v", err)
	}
	// A non-bridge interface with an address that must not be reported. A
	// veth pair is used because some kernels lack the dummy driver.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth-test1"}, PeerName: "veth-test2"}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	addAddr(t, h, br, "172.31.5.1/24")
	addAddr(t, h, br, "172.31.5.2/24")
	addAddr(t, h, br, "fd00:5::1/64")
	addAddr(t, h, br, "169.254.9.1/16")
	addAddr(t, h, br, "fe80::1/64")
	addAddr(t, h, veth, "10.99.0.1/24")

	wantBridges := func(t *testing.T, got []Bridge) {
		t.Helper()
		want := []Bridge{{
			Name:    "br-test1",
			Index:   br.Attrs().Index,
			Subnets: []netip.Prefix{netip.MustParsePrefix("172.31.5.0/24"), netip.MustParsePrefix("fd00:5::/64")},
		}}
		if diff := cmp.Diff(want, got, comparePrefixes); diff != "" {
			t.Errorf("Bridges() mismatch (-want +got):\n%s", diff)
		}
	}

	t.Run("NS field", func(t *testing.T) {
		got, err := Netlink{NS: ns}.Bridges()
		if err != nil {
			t.Fatalf("Bridges: %v", err)
		}
		wantBridges(t, got)
	})
	t.Run("current namespace", func(t *testing.T) {
		var (
			got []Bridge
			err error
		)
		inNetns(t, ns, func() { got, err = Netlink{}.Bridges() })
		if err != nil {
			t.Fatalf("Bridges: %v", err)
		}
		wantBridges(t, got)
	})
}

func addAddr(t *testing.T, h *netlink.Handle, l netlink.Link, cidr string) {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatalf("add %s to %s: %v", cidr, l.Attrs().Name, err)
	}
}

func linkNames(links []netlink.Link) []string {
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names
}

func TestLocalHolds(t *testing.T) {
	a := netip.MustParseAddr
	l := LocalOf(map[netip.Addr]string{
		a("172.20.0.1"): "br-app", a("192.168.1.10"): "eth0", a("fd00:20::1"): "br-app",
		a("fe80::1"): "br-app", a("::ffff:10.9.0.1"): "eth1",
	})
	tests := []struct {
		iif  string
		dst  string
		want bool
	}{
		{"br-app", "172.20.0.1", true},
		{"br-app", "192.168.1.10", true}, // weak host: any interface's address
		{"br-other", "172.20.0.1", true},
		{"br-app", "fd00:20::1", true},
		{"br-app", "fe80::1", true},
		{"br-other", "fe80::1", false}, // link-local: only on its own link
		{"br-app", "fe80::1%br-app", true},
		{"br-app", "10.9.0.1", true}, // IPv4-mapped is IPv4
		{"br-app", "::ffff:172.20.0.1", true},
		{"br-app", "172.20.0.2", false},
		{"br-app", "8.8.8.8", false},
	}
	for _, tc := range tests {
		if got := l.Holds(tc.iif, a(tc.dst)); got != tc.want {
			t.Errorf("Holds(%s, %s) = %v, want %v", tc.iif, tc.dst, got, tc.want)
		}
	}
	if (Local{}).Holds("br-app", a("172.20.0.1")) {
		t.Error("the zero Local holds an address")
	}
}

func TestNetlinkLocal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a throwaway network namespace (CI runs as root)")
	}
	ns := newNetns(t)
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle in test namespace: %v", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil || len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Fatalf("test namespace is not fresh (links %v, %v); refusing to create interfaces", linkNames(links), err)
	}
	lo := links[0]
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-test1"}}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "veth-test1"}, PeerName: "veth-test2"}
	for _, l := range []netlink.Link{br, veth} {
		if err := h.LinkAdd(l); err != nil {
			t.Fatalf("add %s: %v", l.Attrs().Name, err)
		}
	}
	addAddr(t, h, br, "172.31.5.1/24")
	addAddr(t, h, veth, "10.99.0.1/24")
	addAddr(t, h, lo, "10.255.0.1/32") // not a loopback address, though on lo
	// Without nodad, an IPv6 address on a link that is down stays tentative.
	nodad := func(l netlink.Link, cidr string) {
		t.Helper()
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			t.Fatal(err)
		}
		a.Flags = unix.IFA_F_NODAD
		if err := h.AddrAdd(l, a); err != nil {
			t.Fatalf("add %s: %v", cidr, err)
		}
	}
	nodad(br, "fd00:5::1/64")
	nodad(br, "fe80::5/64")
	addAddr(t, h, veth, "fd00:99::1/64")

	got, err := Netlink{NS: ns}.Local()
	if err != nil {
		t.Fatalf("Local: %v", err)
	}
	a := netip.MustParseAddr
	for _, tc := range []struct {
		iif, dst string
		want     bool
	}{
		{"br-test1", "172.31.5.1", true},
		{"br-test1", "10.99.0.1", true},
		{"br-test1", "10.255.0.1", true},
		{"br-test1", "fd00:5::1", true},
		{"br-test1", "fe80::5", true},
		{"veth-test1", "fe80::5", false},
		{"br-test1", "127.0.0.1", false},  // a container's own loopback
		{"br-test1", "::1", false},        // likewise
		{"br-test1", "fd00:99::1", false}, // tentative: the kernel does not deliver to it yet
		{"br-test1", "172.31.5.2", false},
	} {
		if g := got.Holds(tc.iif, a(tc.dst)); g != tc.want {
			t.Errorf("Holds(%s, %s) = %v, want %v", tc.iif, tc.dst, g, tc.want)
		}
	}
}
