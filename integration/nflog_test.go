package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nflog"
	"golang.org/x/sys/unix"
)

// nflogGroup, nflogPrefix and nflogTable are the NFLOG group, log prefix and
// nftables table of TestNFLOG. They exist only in its Host namespace.
const (
	nflogGroup  = 77
	nflogPrefix = "df test "
	nflogTable  = "dftest_nflog"
	nflogRange  = 256
)

// nflogProbe is one connection attempt from Ctr that the test table logs
// and drops.
type nflogProbe struct {
	name    string
	network string // "udp" or "tcp"
	family  uint8
	hwProto uint16
	flow    nflog.Flow
}

// TestNFLOG receives the packets an inet table logs to an NFLOG group in
// Host: forwarded UDP and TCP, IPv4 and IPv6, from Ctr to the LAN database.
// It also checks that a second socket cannot bind the group, that a group is
// per namespace, and that Close ends a blocked Receive and frees the group.
func TestNFLOG(t *testing.T) {
	e := newEnv(t)
	tp := e.tp
	start := time.Now()

	rules := fmt.Sprintf(`table inet %[1]s {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ip daddr %[2]s log prefix %[4]q group %[5]d drop
		ip6 daddr %[3]s log prefix %[4]q group %[5]d drop
	}
}
`, nflogTable, topo.LANDB4, topo.LANDB6, nflogPrefix, nflogGroup)
	tp.Host.Run(t, "nft", "-f", e.write("nflog.nft", rules))
	t.Cleanup(func() {
		if _, err := tp.Host.Try("nft", "delete", "table", "inet", nflogTable); err != nil {
			t.Errorf("remove the test table: %v", err)
		}
	})

	var brIndex, lanIndex, vethIndex uint32
	err := tp.Host.Do(func() error {
		for _, x := range []struct {
			name  string
			index *uint32
		}{{topo.BridgeName, &brIndex}, {topo.LANIf, &lanIndex}, {tp.Ctr.HostIf, &vethIndex}} {
			ifc, err := net.InterfaceByName(x.name)
			if err != nil {
				return err
			}
			*x.index = uint32(ifc.Index)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	c := openNFLOG(t, tp.Host)
	t.Cleanup(func() { c.Close() })

	probes := []nflogProbe{
		{"udp4", "udp", unix.NFPROTO_IPV4, 0x0800, nflog.Flow{
			Src: netip.MustParseAddr(topo.CtrIP4), Dst: netip.MustParseAddr(topo.LANDB4), Proto: unix.IPPROTO_UDP, SrcPort: 40001, DstPort: 5432}},
		{"tcp4", "tcp", unix.NFPROTO_IPV4, 0x0800, nflog.Flow{
			Src: netip.MustParseAddr(topo.CtrIP4), Dst: netip.MustParseAddr(topo.LANDB4), Proto: unix.IPPROTO_TCP, SrcPort: 40002, DstPort: 5432}},
		{"udp6", "udp", unix.NFPROTO_IPV6, 0x86dd, nflog.Flow{
			Src: netip.MustParseAddr(topo.CtrIP6), Dst: netip.MustParseAddr(topo.LANDB6), Proto: unix.IPPROTO_UDP, SrcPort: 40003, DstPort: 5432}},
		{"tcp6", "tcp", unix.NFPROTO_IPV6, 0x86dd, nflog.Flow{
			Src: netip.MustParseAddr(topo.CtrIP6), Dst: netip.MustParseAddr(topo.LANDB6), Proto: unix.IPPROTO_TCP, SrcPort: 40004, DstPort: 5432}},
	}
	for _, pr := range probes {
		t.Run(pr.name, func(t *testing.T) {
			p := sendAndReceive(t, tp.Ctr, c, pr, probes)
			if p.Prefix != nflogPrefix || p.Family != pr.family || p.HWProto != pr.hwProto || p.Hook != unix.NF_INET_FORWARD {
				t.Errorf("prefix %q, family %d, hw protocol %#04x, hook %d; want %q, %d, %#04x, %d (forward)",
					p.Prefix, p.Family, p.HWProto, p.Hook, nflogPrefix, pr.family, pr.hwProto, unix.NF_INET_FORWARD)
			}
			if p.InDev != brIndex || p.OutDev != lanIndex {
				t.Errorf("in/out interface %d/%d, want %d/%d (%s/%s in Host)", p.InDev, p.OutDev, brIndex, lanIndex, topo.BridgeName, topo.LANIf)
			}
			// The bridge port is known only with br_netfilter active.
			if (p.PhysInDev != 0 && p.PhysInDev != vethIndex) || p.PhysOutDev != 0 {
				t.Errorf("physical in/out interface %d/%d, want %d (%s, or 0 without br_netfilter)/0", p.PhysInDev, p.PhysOutDev, vethIndex, tp.Ctr.HostIf)
			}
			if len(p.Payload) == 0 || len(p.Payload) > nflogRange {
				t.Errorf("payload of %d bytes, want 1 to %d (the copy range)", len(p.Payload), nflogRange)
			}
			if p.Time.Before(start.Add(-time.Second)) || p.Time.After(time.Now().Add(time.Second)) {
				t.Errorf("time %v, want between the start of the test (%v) and now", p.Time, start)
			}
		})
	}

	t.Run("busy", func(t *testing.T) {
		var second *nflog.Conn
		err := tp.Host.Do(func() error {
			var err error
			second, err = nflog.Open(nflogGroup, nflogRange)
			return err
		})
		if err == nil {
			second.Close()
			t.Fatal("a second Open of the group in the same namespace succeeded, want ErrBusy")
		}
		if !errors.Is(err, nflog.ErrBusy) {
			t.Fatalf("second Open: %v, want an error matching ErrBusy", err)
		}
		t.Logf("second Open: %v", err)
		// Groups are per network namespace: Ctr has a group 77 of its own.
		openNFLOG(t, tp.Ctr).Close()
	})

	t.Run("deadline", func(t *testing.T) {
		if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		pkts, err := c.Receive()
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Receive after the deadline = %d packets, %v; want os.ErrDeadlineExceeded", len(pkts), err)
		}
		if err := c.SetReadDeadline(time.Time{}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("close", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			_, err := c.Receive()
			done <- err
		}()
		time.Sleep(50 * time.Millisecond) // let Receive block
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Receive after Close: %v, want an error matching net.ErrClosed", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Receive still blocked 2 s after Close")
		}
		// Close released the group.
		openNFLOG(t, tp.Host).Close()
	})
}

// openNFLOG binds the test's group in ns.
func openNFLOG(t *testing.T, ns *topo.NS) *nflog.Conn {
	t.Helper()
	var c *nflog.Conn
	err := ns.Do(func() error {
		var err error
		c, err = nflog.Open(nflogGroup, nflogRange)
		return err
	})
	if err != nil {
		t.Fatalf("open NFLOG group %d in %s: %v", nflogGroup, ns.Name, err)
	}
	return c
}

// sendAndReceive sends pr from ctr and returns the logged packet of its flow.
// Logged packets of the other probes (a retransmitted SYN) are skipped;
// any other packet fails the test.
func sendAndReceive(t *testing.T, ctr *topo.NS, c *nflog.Conn, pr nflogProbe, all []nflogProbe) nflog.Packet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	sent := make(chan error, 1)
	go func() {
		sent <- ctr.Do(func() error {
			d := net.Dialer{LocalAddr: localAddr(pr)}
			conn, err := d.DialContext(ctx, pr.network, net.JoinHostPort(pr.flow.Dst.String(), fmt.Sprint(pr.flow.DstPort)))
			if err != nil {
				return err // TCP: the context ends the dial once the SYN is logged
			}
			defer conn.Close()
			_, err = conn.Write([]byte("ping"))
			return err
		})
	}()
	defer func() {
		cancel()
		if err := <-sent; err != nil && pr.network == "udp" {
			t.Errorf("send %s: %v", pr.name, err)
		} else if err == nil && pr.network == "tcp" {
			t.Errorf("the %s connection succeeded although the rule drops it", pr.name)
		}
	}()

	if err := c.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for {
		pkts, err := c.Receive()
		if err != nil {
			t.Fatalf("no logged packet of %s: %v", pr.name, err)
		}
		for _, p := range pkts {
			f, err := nflog.Decode(p.Family, p.Payload)
			if err != nil {
				t.Fatalf("decode %+v: %v", p, err)
			}
			if f == pr.flow {
				return p
			}
			if !isProbeFlow(f, all) {
				t.Fatalf("logged a packet of an unexpected flow %+v, want %+v", f, pr.flow)
			}
		}
	}
}

func localAddr(pr nflogProbe) net.Addr {
	ip := net.IP(pr.flow.Src.AsSlice())
	if pr.network == "udp" {
		return &net.UDPAddr{IP: ip, Port: int(pr.flow.SrcPort)}
	}
	return &net.TCPAddr{IP: ip, Port: int(pr.flow.SrcPort)}
}

func isProbeFlow(f nflog.Flow, all []nflogProbe) bool {
	for _, pr := range all {
		if f == pr.flow {
			return true
		}
	}
	return false
}
