package integration

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dockerfence/dockerfence/integration/dockerd"
	"github.com/dockerfence/dockerfence/integration/harness"
	"github.com/dockerfence/dockerfence/integration/topo"
	"golang.org/x/sys/unix"
)

// synFlood opens TCP connections without waiting for them, from the
// stranger's addresses in the outside namespace: each millisecond one to
// the denied published port over IPv4 and one over IPv6, and every tenth
// millisecond one to the allowed control port over IPv4. Every socket is
// closed 200 ms after its SYN, answered or not.
type synFlood struct {
	sent, ctlSent, failed atomic.Int64
	lastErr               atomic.Value // string
	stop, done            chan struct{}
}

// startSYNFlood starts the flood in x's outside namespace.
func (x *ingressEnv) startSYNFlood(t *testing.T, deny, control int) *synFlood {
	t.Helper()
	f := &synFlood{stop: make(chan struct{}), done: make(chan struct{})}
	stranger4 := netip.MustParseAddr(topo.OutStranger4).As4()
	stranger6 := netip.MustParseAddr(topo.OutStranger6).As16()
	host4 := netip.MustParseAddr(topo.HostOut4).As4()
	host6 := netip.MustParseAddr(topo.HostOut6).As16()
	go func() {
		defer close(f.done)
		// The whole loop runs on one thread inside the namespace: every
		// socket it opens is the outside's.
		err := x.out.Do(func() error {
			type sock struct {
				fd    int
				until time.Time
			}
			var open []sock
			defer func() {
				for _, s := range open {
					unix.Close(s.fd)
				}
			}()
			connect := func(family int, src, dst unix.Sockaddr, ctl bool) {
				fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					f.failed.Add(1)
					f.lastErr.Store(err.Error())
					return
				}
				if err := unix.Bind(fd, src); err != nil {
					unix.Close(fd)
					f.failed.Add(1)
					f.lastErr.Store(err.Error())
					return
				}
				if err := unix.Connect(fd, dst); err != nil && err != unix.EINPROGRESS {
					unix.Close(fd)
					f.failed.Add(1)
					f.lastErr.Store(err.Error())
					return
				}
				if ctl {
					f.ctlSent.Add(1)
				} else {
					f.sent.Add(1)
				}
				open = append(open, sock{fd, time.Now().Add(200 * time.Millisecond)})
			}
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-f.stop:
					return nil
				case <-tick.C:
				}
				connect(unix.AF_INET, &unix.SockaddrInet4{Addr: stranger4}, &unix.SockaddrInet4{Addr: host4, Port: deny}, false)
				connect(unix.AF_INET6, &unix.SockaddrInet6{Addr: stranger6}, &unix.SockaddrInet6{Addr: host6, Port: deny}, false)
				if i%10 == 0 {
					connect(unix.AF_INET, &unix.SockaddrInet4{Addr: stranger4}, &unix.SockaddrInet4{Addr: host4, Port: control}, true)
				}
				now := time.Now()
				for len(open) > 0 && open[0].until.Before(now) {
					unix.Close(open[0].fd)
					open = open[1:]
				}
			}
		})
		if err != nil {
			f.lastErr.Store(err.Error())
		}
	}()
	t.Cleanup(f.halt)
	return f
}

// halt stops the flood and waits for it; it may be called more than once.
func (f *synFlood) halt() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}

// lastError is the last error the flood met, "" if none.
func (f *synFlood) lastError() string {
	s, _ := f.lastErr.Load().(string)
	return s
}

// delivered is what arrived at the web container of one network: SYNs
// from the stranger counted in its namespace, and connections its server
// accepted, on the denied port and on the control port.
type delivered struct {
	syns, ctlSYNs         int64
	accepted, ctlAccepted int
}

func (d delivered) String() string {
	return fmt.Sprintf("%d SYNs from the stranger and %d connections accepted on the denied port; control: %d SYNs, %d connections",
		d.syns, d.accepted, d.ctlSYNs, d.ctlAccepted)
}

// watchWeb counts what reaches the container web from now on; the
// returned function reads the counts.
func (x *ingressEnv) watchWeb(t *testing.T) func() delivered {
	t.Helper()
	syns := harness.CountSYNs(t, x.dockerNS(t, x.d, "web"))
	acc, ctl := x.d.Accepted(t, "web", 80), x.d.Accepted(t, "web", 81)
	s4, s6 := netip.MustParseAddr(topo.OutStranger4), netip.MustParseAddr(topo.OutStranger6)
	return func() delivered {
		return delivered{
			syns: syns.Count(s4, 80) + syns.Count(s6, 80), ctlSYNs: syns.Count(s4, 81),
			accepted: x.d.Accepted(t, "web", 80) - acc, ctlAccepted: x.d.Accepted(t, "web", 81) - ctl,
		}
	}
}

// TestLeakIngress floods a denied published port with SYNs from a
// stranger, over IPv4 and IPv6, while the daemon re-applies the policy
// 100 times (alternating two policies that differ) and while the network
// is recreated compose-style, once with the daemon running and once with
// it stopped, and fails if one SYN reaches the container or one connection
// is accepted. A control stream to a port the stranger may reach, and the
// same flood without dockerfence, show that the counts see what passes.
//
// Docker runs without its userland proxy. With it, Docker 29 (not 20.10)
// lets docker-proxy on the host accept connections to a published port
// for a moment while it starts a container, before its DNAT takes them:
// measured here, 2 to 8 of ~4000 SYNs a recreate, with or without
// dockerfence, relayed to the container from the bridge's gateway. Those
// connections end on the host (the input hook), never pass the forward
// hook, and are not what ingress rules judge (the README says so of
// docker-proxy); "userland-proxy": false in daemon.json closes that window.
func TestLeakIngress(t *testing.T) {
	x := newIngressEnv(t, "--userland-proxy=false")

	t.Run("without dockerfence", func(t *testing.T) {
		read := x.watchWeb(t)
		f := x.startSYNFlood(t, webPort, webPort2)
		time.Sleep(300 * time.Millisecond)
		f.halt()
		time.Sleep(200 * time.Millisecond)
		got := read()
		t.Logf("without dockerfence, %d SYNs sent in 300 ms (%d control): %v", f.sent.Load(), f.ctlSent.Load(), got)
		if got.syns < f.sent.Load()/2 || got.accepted == 0 || got.ctlAccepted == 0 {
			t.Fatalf("without dockerfence the flood does not get through (%v; last error %q): the counts prove nothing", got, f.lastError())
		}
	})

	polA := fmt.Sprintf(dockerIngressPolicy, "allow")
	polB := strings.Replace(polA, "    ingress:\n", "    ingress:\n      - allow: 192.0.2.1\n        ports: [8080]\n        comment: makes the policies differ\n", 1)
	if polA == polB {
		t.Fatal("the two policies do not differ")
	}
	pol := x.write("policy.yaml", polA)
	df := x.fence(t, pol)

	// check fails if anything reached the denied port. The SYNs counted
	// in the new containers' namespaces from their creation on (early, by
	// source) tell a connection forwarded from the stranger from one that
	// docker-proxy on the host made for it (from the bridge's gateway).
	check := func(t *testing.T, what string, f *synFlood, got delivered, early map[netip.Addr]int64) {
		t.Helper()
		t.Logf("%s: %d SYNs sent to the denied port (%d to the control, %d sockets failed): %v", what, f.sent.Load(), f.ctlSent.Load(), f.failed.Load(), got)
		if got.syns != 0 || got.accepted != 0 {
			t.Errorf("%s: the denied port got %d SYNs from the stranger and accepted %d connections; want none (SYNs on port 80 in the new containers' namespaces from their creation, by source: %v; a gateway address there is docker-proxy on the host: the stranger's connection was not DNATed but delivered to the proxy, which the forward hook never sees)",
				what, got.syns, got.accepted, early)
		}
		if got.ctlAccepted == 0 || got.ctlSYNs == 0 {
			t.Errorf("%s: no control connection arrived (%v; last error %q): the counts prove nothing", what, got, f.lastError())
		}
	}

	t.Run("100 re-applies", func(t *testing.T) {
		read := x.watchWeb(t)
		f := x.startSYNFlood(t, webPort, webPort2)
		start := time.Now()
		for i := 1; i <= 100; i++ {
			x.reload(t, df, pol, []string{polA, polB}[i%2])
		}
		took := time.Since(start)
		time.Sleep(200 * time.Millisecond)
		f.halt()
		time.Sleep(200 * time.Millisecond)
		check(t, fmt.Sprintf("100 re-applies by SIGHUP in %v", took.Round(time.Millisecond)), f, read(), nil)
	})

	// A tier=db container's section denies the stranger, its network's
	// section allows it: until the daemon has classified a new db, only
	// holding its address (as issue 16 holds unclassified containers'
	// egress) keeps the stranger out.
	t.Run("a tier=db container's first moment, the daemon running", func(t *testing.T) {
		syns, span := x.watchSandboxes(t, dbPort)
		f := x.startSYNFlood(t, dbPort, webPort2)
		time.Sleep(100 * time.Millisecond)
		x.d.RemoveContainer(t, "db")
		start := time.Now()
		// When each container's chain appeared in the ingress container
		// layer's map (the new db's: when the daemon classified it).
		var mu sync.Mutex
		appeared := map[string]time.Time{}
		stop, done := make(chan struct{}), make(chan struct{})
		defer func() { close(stop); <-done }()
		mapName := "ingc_" + x.bridge + "_4"
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				if st, err := x.kernel().Read("dockerfence"); err == nil && st != nil {
					now := time.Now()
					for _, set := range st.Sets {
						if set.Name != mapName {
							continue
						}
						mu.Lock()
						for _, el := range set.VMap {
							if _, ok := appeared[el.Chain]; !ok {
								appeared[el.Chain] = now
							}
						}
						mu.Unlock()
					}
				}
			}
		}()
		id := x.d.Run(t, "db", "web", dockerd.RunOptions{Cmd: dockerd.EchoServer(dbPort), Labels: map[string]string{"tier": "db"},
			Publish: []string{fmt.Sprintf("%d:%d", dbPort, dbPort)}})
		started := time.Since(start)
		x.waitListening(t, "db", dbPort)
		listening := time.Since(start)
		time.Sleep(300 * time.Millisecond)
		f.halt()
		time.Sleep(200 * time.Millisecond)
		bySrc, watched := syns()
		if watched == 0 {
			t.Fatal("the new db's network namespace was never watched: the count proves nothing")
		}
		s4 := netip.MustParseAddr(topo.OutStranger4)
		stranger := bySrc[s4] + bySrc[netip.MustParseAddr(topo.OutStranger6)]
		acc := x.d.Accepted(t, "db", dbPort)
		mu.Lock()
		at, ok := appeared["ci_"+id[:12]]
		mu.Unlock()
		if !ok {
			t.Fatal("the new db never appeared in the ingress container layer")
		}
		in := at.Sub(start)
		first, last := span(s4)
		ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
		t.Logf("%d SYNs sent to db's published port: %d SYNs from the stranger reached db (by source: %v), %d connections accepted; from docker run: db started %v, its address in the ingress container layer %v, listening %v",
			f.sent.Load(), stranger, bySrc, acc, ms(started), ms(in), ms(listening))
		if !first.IsZero() {
			t.Logf("the stranger's IPv4 SYNs reached db from %v to %v after docker run", ms(first.Sub(start)), ms(last.Sub(start)))
		}
		if stranger != 0 || acc != 0 {
			t.Errorf("the stranger reached the new db before the daemon classified it: %d SYNs, %d connections accepted; want none", stranger, acc)
		}
		// The SYN counter follows the container's port, not the control:
		// show that the flood was aimed right by one allowed connection.
		if got := x.reach(topo.OutAllowed4, dbPort); got != "ok" {
			t.Errorf("the allowed client -> db after the flood: %s, want ok", got)
		}
	})

	for _, paused := range []bool{false, true} {
		name := "compose-style recreate"
		if paused {
			name += " while the daemon is stopped"
		}
		t.Run(name, func(t *testing.T) {
			old := x.watchWeb(t)
			f := x.startSYNFlood(t, webPort, webPort2)
			time.Sleep(100 * time.Millisecond)
			if paused {
				df.cmd.Process.Signal(syscall.SIGSTOP)
				defer df.cmd.Process.Signal(syscall.SIGCONT) // also when the test fails
			}
			before := old() // the last look at the old container
			x.removeWeb(t)
			subnet := 42
			if paused {
				subnet = 43
			}
			// Count the SYNs in the new containers' namespaces from the
			// moment Docker creates them, before their processes run.
			early, _ := x.watchSandboxes(t)
			start := time.Now()
			x.createWeb(t, fmt.Sprintf("10.%d.0.0/24", subnet), fmt.Sprintf("fd00:%d::/64", subnet))
			read := x.watchWeb(t)
			t.Logf("network and containers recreated in %v", time.Since(start).Round(time.Millisecond))
			if paused {
				time.Sleep(500 * time.Millisecond)
				if x.mapped(x.bridge) {
					t.Fatal("the new bridge has its own chain while the daemon is stopped: the test proves nothing")
				}
				df.cmd.Process.Signal(syscall.SIGCONT)
			}
			x.waitFenced(x.bridge, start)
			time.Sleep(300 * time.Millisecond)
			f.halt()
			time.Sleep(200 * time.Millisecond)
			got := read()
			syns, watched := early()
			if watched == 0 {
				t.Fatal("the new containers' network namespaces were never watched: the counts prove nothing")
			}
			// The new container's SYNs from the stranger, from its
			// creation on (read counts them only from its start).
			got.syns = before.syns + syns[netip.MustParseAddr(topo.OutStranger4)] + syns[netip.MustParseAddr(topo.OutStranger6)]
			got.accepted += before.accepted
			check(t, name, f, got, syns)
		})
	}
}

// watchSandboxes counts the SYNs in every network namespace Docker creates
// from now on, as soon as it appears; the returned function stops it and
// returns the SYNs to port (80 if not given) by source, and how many
// namespaces it watched; span then says when the first and the last SYN
// from a source arrived.
func (x *ingressEnv) watchSandboxes(t *testing.T, port ...uint16) (read func() (map[netip.Addr]int64, int), span func(src netip.Addr) (first, last time.Time)) {
	t.Helper()
	old := sandboxes(x.d)
	stop, done := make(chan struct{}), make(chan struct{})
	var counters []*harness.SYNCounter
	var stops []func()
	go func() {
		defer close(done)
		seen := map[string]bool{}
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			for name := range sandboxes(x.d) {
				if old[name] || seen[name] {
					continue
				}
				n, err := x.openSandbox(filepath.Join(x.d.Dir, "exec", "netns", name))
				if err != nil {
					continue // not mounted yet
				}
				c, s, err := harness.StartSYNCounter(n)
				if err != nil {
					continue
				}
				seen[name] = true
				counters, stops = append(counters, c), append(stops, s)
			}
		}
	}()
	var once sync.Once
	halt := func() {
		once.Do(func() {
			close(stop)
			<-done
		})
	}
	t.Cleanup(func() {
		halt()
		for _, s := range stops {
			s()
		}
	})
	p := uint16(80)
	if len(port) > 0 {
		p = port[0]
	}
	read = func() (map[netip.Addr]int64, int) {
		halt()
		m := map[netip.Addr]int64{}
		for _, c := range counters {
			for a, n := range c.Sources(p) {
				m[a] += n
			}
		}
		return m, len(counters)
	}
	span = func(src netip.Addr) (first, last time.Time) {
		halt()
		for _, c := range counters {
			f, l := c.Span(src, p)
			if !f.IsZero() && (first.IsZero() || f.Before(first)) {
				first = f
			}
			if l.After(last) {
				last = l
			}
		}
		return first, last
	}
	return read, span
}
