package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/topo"
	"github.com/dockerfence/dockerfence/nfqueue"
	"golang.org/x/sys/unix"
)

// nfqueueNum and nfqueuePort are the queue number and the UDP port of
// TestNFQUEUE; its rule exists only in its Host namespace.
const (
	nfqueueNum  = 7
	nfqueuePort = 5353
	// nfqueueMaxLen is the length of the queue.
	nfqueueMaxLen = 4
)

// arrival is a datagram the listener received, and when.
type arrival struct {
	data string
	at   time.Time
}

// TestNFQUEUE queues the UDP datagrams that Host sends to a listener of
// its own (iptables ... -j NFQUEUE --queue-bypass in Host's OUTPUT chain)
// and checks what the nfqueue package does with the real kernel: the
// packets arrive with their payload; one held stays held until its accept;
// a dropped one never arrives; a batch verdict releases several; a full
// queue lets the next packet pass unqueued (fail-open); a second
// socket cannot bind the queue; closing the socket drops what it held;
// with no socket bound the bypass lets datagrams through. It logs the
// time from sending to the verdict for 1,000 packets.
//
// It needs root (network namespaces, iptables) and skips without; CI runs
// the integration tests as root.
func TestNFQUEUE(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds a network namespace and installs an iptables NFQUEUE rule in it (CI runs the integration tests as root)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Fatalf("iptables is needed (apt-get install iptables): %v", err)
	}
	tp := topo.New(t)
	host := tp.Host
	host.Run(t, "iptables", "-A", "OUTPUT", "-p", "udp", "--dport", fmt.Sprint(nfqueuePort),
		"-j", "NFQUEUE", "--queue-num", fmt.Sprint(nfqueueNum), "--queue-bypass")
	dst := net.JoinHostPort("127.0.0.1", fmt.Sprint(nfqueuePort))

	// The listener, in Host.
	var ln *net.UDPConn
	if err := host.Do(func() error {
		var err error
		ln, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: nfqueuePort})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	arrived := make(chan arrival, 2048)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				return
			}
			arrived <- arrival{string(buf[:n]), time.Now()}
		}
	}()
	expectArrival := func(t *testing.T, want string, within time.Duration) arrival {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case a := <-arrived:
				if a.data == want {
					return a
				}
				t.Errorf("listener received %q while waiting for %q", a.data, want)
			case <-deadline:
				t.Fatalf("%q did not reach the listener within %v", want, within)
			}
		}
	}
	expectNothing := func(t *testing.T, within time.Duration) {
		t.Helper()
		select {
		case a := <-arrived:
			t.Fatalf("listener received %q, want nothing", a.data)
		case <-time.After(within):
		}
	}

	send, err := host.DialUDP(dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { send.Close() })
	write := func(t *testing.T, s string) time.Time {
		t.Helper()
		now := time.Now()
		if _, err := send.Write([]byte(s)); err != nil {
			t.Fatalf("send %q: %v", s, err)
		}
		return now
	}

	var loIndex uint32
	if err := host.Do(func() error {
		ifc, err := net.InterfaceByName("lo")
		if err == nil {
			loIndex = uint32(ifc.Index)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}

	c := openNFQUEUE(t, host)
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan nfqueue.Packet, 2048)
	notices := make(chan error, 16)
	runDone := make(chan error, 1)
	go func() {
		runDone <- c.Run(ctx, func(p nfqueue.Packet) { queued <- p }, func(err error) { notices <- err })
	}()
	t.Cleanup(func() {
		cancel()
		c.Close()
	})
	next := func(t *testing.T, want string) nfqueue.Packet {
		t.Helper()
		select {
		case p := <-queued:
			if got := udpData(t, p.Payload); got != want {
				t.Fatalf("queued packet %d carries %q, want %q", p.ID, got, want)
			}
			return p
		case err := <-runDone:
			t.Fatalf("Run ended: %v", err)
		case <-time.After(2 * time.Second):
			t.Fatalf("%q was not queued within 2 s", want)
		}
		panic("unreachable")
	}

	t.Run("held until accepted", func(t *testing.T) {
		sent := write(t, "hold-1")
		p := next(t, "hold-1")
		if p.ID == 0 || p.Family != unix.NFPROTO_IPV4 || p.HWProto != 0x0800 || p.Hook != unix.NF_INET_LOCAL_OUT || p.OutDev != loIndex || p.InDev != 0 || p.Truncated() {
			t.Errorf("packet %+v; want an id, IPv4, hw protocol 0x0800, hook %d (output), out on lo (%d), no in device, not truncated",
				p, unix.NF_INET_LOCAL_OUT, loIndex)
		}
		if src, dport := udpPorts(t, p.Payload); dport != nfqueuePort || src != uint16(send.LocalAddr().(*net.UDPAddr).Port) {
			t.Errorf("UDP ports %d -> %d, want %d -> %d", src, dport, send.LocalAddr().(*net.UDPAddr).Port, nfqueuePort)
		}
		if p.Time.Before(sent.Add(-time.Second)) || p.Time.After(time.Now()) {
			t.Errorf("packet time %v (kernel's: %v), want about %v", p.Time, p.KernelTime, sent)
		}
		expectNothing(t, 300*time.Millisecond)
		accepted := time.Now()
		if err := c.SetVerdict(p.ID, nfqueue.Accept); err != nil {
			t.Fatal(err)
		}
		a := expectArrival(t, "hold-1", time.Second)
		t.Logf("held %v; arrived %v after the accept", accepted.Sub(sent).Round(time.Millisecond), a.at.Sub(accepted).Round(time.Microsecond))
	})

	t.Run("dropped", func(t *testing.T) {
		write(t, "drop-1")
		p := next(t, "drop-1")
		if err := c.SetVerdict(p.ID, nfqueue.Drop); err != nil {
			t.Fatal(err)
		}
		expectNothing(t, 300*time.Millisecond)

		// A verdict on a packet that had its verdict is refused, and
		// Run reports it and goes on.
		if err := c.SetVerdict(p.ID, nfqueue.Accept); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-notices:
			var ve *nfqueue.VerdictError
			if !errors.As(err, &ve) || ve.ID != p.ID || !errors.Is(err, unix.ENOENT) {
				t.Errorf("notice %v, want a *VerdictError for packet %d matching ENOENT", err, p.ID)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no notice of the refused verdict within 2 s")
		}
	})

	t.Run("batch", func(t *testing.T) {
		var last uint32
		for i := range 3 {
			write(t, fmt.Sprint("batch-", i))
		}
		for i := range 3 {
			last = next(t, fmt.Sprint("batch-", i)).ID
		}
		expectNothing(t, 200*time.Millisecond)
		if err := c.SetVerdictBatch(last, nfqueue.Accept); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			expectArrival(t, fmt.Sprint("batch-", i), time.Second)
		}
	})

	t.Run("full queue fails open", func(t *testing.T) {
		// The queue holds nfqueueMaxLen packets; the next one passes
		// unqueued (NFQA_CFG_F_FAIL_OPEN), not dropped.
		var last uint32
		for i := range nfqueueMaxLen {
			write(t, fmt.Sprint("full-", i))
			last = next(t, fmt.Sprint("full-", i)).ID
		}
		write(t, "over")
		expectArrival(t, "over", time.Second)
		select {
		case p := <-queued:
			t.Fatalf("packet %d (%q) was queued beyond the queue's length", p.ID, udpData(t, p.Payload))
		default:
		}
		if err := c.SetVerdictBatch(last, nfqueue.Accept); err != nil {
			t.Fatal(err)
		}
		for i := range nfqueueMaxLen {
			expectArrival(t, fmt.Sprint("full-", i), time.Second)
		}
	})

	t.Run("busy", func(t *testing.T) {
		var second *nfqueue.Conn
		err := host.Do(func() error {
			var err error
			second, err = nfqueue.Open(nfqueueNum, nfqueue.Options{})
			return err
		})
		if err == nil {
			second.Close()
			t.Fatal("a second Open of the queue in the same namespace succeeded, want ErrBusy")
		}
		if !errors.Is(err, nfqueue.ErrBusy) {
			t.Fatalf("second Open: %v, want an error matching ErrBusy", err)
		}
		t.Logf("second Open: %v", err)
	})

	t.Run("round trip", func(t *testing.T) {
		const n = 1000
		var toVerdict, toArrival, kernelToVerdict []time.Duration
		for i := range n {
			want := fmt.Sprint("rtt-", i)
			sent := write(t, want)
			p := next(t, want)
			if err := c.SetVerdict(p.ID, nfqueue.Accept); err != nil {
				t.Fatal(err)
			}
			judged := time.Now()
			a := expectArrival(t, want, time.Second)
			toVerdict = append(toVerdict, judged.Sub(sent))
			toArrival = append(toArrival, a.at.Sub(sent))
			if p.KernelTime {
				kernelToVerdict = append(kernelToVerdict, judged.Sub(p.Time))
			}
		}
		t.Logf("nfqueue round trip over %d packets: send -> verdict issued p50 %v p99 %v; send -> delivered p50 %v p99 %v; kernel timestamps on %d packets",
			n, pct(toVerdict, 50), pct(toVerdict, 99), pct(toArrival, 50), pct(toArrival, 99), len(kernelToVerdict))
		if len(kernelToVerdict) > 0 {
			t.Logf("kernel timestamp -> verdict issued p50 %v p99 %v", pct(kernelToVerdict, 50), pct(kernelToVerdict, 99))
		}
	})

	t.Run("ipv6 with GSO", func(t *testing.T) {
		// Another queue, bound with the other options, for IPv6.
		const queue6 = nfqueueNum + 1
		host.Run(t, "ip6tables", "-A", "OUTPUT", "-p", "udp", "--dport", fmt.Sprint(nfqueuePort),
			"-j", "NFQUEUE", "--queue-num", fmt.Sprint(queue6), "--queue-bypass")
		var ln6 *net.UDPConn
		var c6 *nfqueue.Conn
		if err := host.Do(func() error {
			var err error
			if ln6, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: nfqueuePort}); err != nil {
				return err
			}
			c6, err = nfqueue.Open(queue6, nfqueue.Options{CopyRange: 2048, MaxLen: 16, GSO: true})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer ln6.Close()
		defer c6.Close()
		send6, err := host.DialUDP(net.JoinHostPort("::1", fmt.Sprint(nfqueuePort)))
		if err != nil {
			t.Fatal(err)
		}
		defer send6.Close()
		if _, err := send6.Write([]byte("six")); err != nil {
			t.Fatal(err)
		}
		if err := c6.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
			t.Fatal(err)
		}
		pkts, err := c6.Receive()
		if err != nil || len(pkts) != 1 {
			t.Fatalf("Receive on the IPv6 queue = %d packets, %v; want 1", len(pkts), err)
		}
		p := pkts[0]
		if p.Family != unix.NFPROTO_IPV6 || p.HWProto != 0x86dd || p.Hook != unix.NF_INET_LOCAL_OUT || p.OutDev != loIndex || udpData(t, p.Payload) != "six" {
			t.Errorf("packet %+v, want IPv6, hw protocol 0x86dd, output hook, out on lo, carrying \"six\"", p)
		}
		t.Logf("IPv6 packet %d with GSO asked: %d bytes, SKB info %#x (checksum not ready: %v)", p.ID, len(p.Payload), p.SKBInfo, p.SKBInfo&nfqueue.SKBChecksumNotReady != 0)
		if err := c6.SetVerdict(p.ID, nfqueue.Accept); err != nil {
			t.Fatal(err)
		}
		if err := ln6.SetReadDeadline(time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := ln6.Read(buf)
		if err != nil || string(buf[:n]) != "six" {
			t.Fatalf("IPv6 listener read %q, %v; want \"six\" after the accept", buf[:n], err)
		}
	})

	t.Run("closed", func(t *testing.T) {
		// The socket closes with a packet held: the kernel drops it.
		write(t, "held-at-close")
		next(t, "held-at-close")
		cancel()
		select {
		case err := <-runDone:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run after cancel = %v, want context.Canceled", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Run still running 2 s after its context was cancelled")
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		expectNothing(t, 300*time.Millisecond)
		if err := c.SetVerdict(1, nfqueue.Accept); !errors.Is(err, net.ErrClosed) {
			t.Errorf("SetVerdict after Close = %v, want net.ErrClosed", err)
		}

		// No socket has the queue: --queue-bypass lets datagrams through.
		for i := range 5 {
			write(t, fmt.Sprint("bypass-", i))
			expectArrival(t, fmt.Sprint("bypass-", i), time.Second)
		}
		// Close released the queue: it can be bound again.
		openNFQUEUE(t, host).Close()
	})
}

// openNFQUEUE binds the test's queue in ns.
func openNFQUEUE(t *testing.T, ns *topo.NS) *nfqueue.Conn {
	t.Helper()
	var c *nfqueue.Conn
	err := ns.Do(func() error {
		var err error
		c, err = nfqueue.Open(nfqueueNum, nfqueue.Options{MaxLen: nfqueueMaxLen})
		return err
	})
	if err != nil {
		t.Fatalf("open queue %d in %s: %v", nfqueueNum, ns.Name, err)
	}
	return c
}

// udpHeader returns the offset of the UDP header in an IPv4 packet, or in
// an IPv6 packet without extension headers.
func udpHeader(t *testing.T, pkt []byte) int {
	t.Helper()
	off := 0
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4 && pkt[9] == unix.IPPROTO_UDP:
		off = int(pkt[0]&0xf) * 4
	case len(pkt) >= 40 && pkt[0]>>4 == 6 && pkt[6] == unix.IPPROTO_UDP:
		off = 40
	default:
		t.Fatalf("payload % x is not a UDP packet", pkt[:min(len(pkt), 40)])
	}
	if len(pkt) < off+8 {
		t.Fatalf("payload of %d bytes is cut in its UDP header", len(pkt))
	}
	return off
}

// udpData returns the data of the UDP datagram in an IP packet.
func udpData(t *testing.T, pkt []byte) string {
	t.Helper()
	return string(pkt[udpHeader(t, pkt)+8:])
}

// udpPorts returns the ports of the UDP datagram in an IP packet.
func udpPorts(t *testing.T, pkt []byte) (src, dst uint16) {
	t.Helper()
	off := udpHeader(t, pkt)
	return uint16(pkt[off])<<8 | uint16(pkt[off+1]), uint16(pkt[off+2])<<8 | uint16(pkt[off+3])
}

// pct returns the p-th percentile of d.
func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(i, len(s))-1)].Round(time.Microsecond)
}
