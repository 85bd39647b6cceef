package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// fakeKernel records applies; failures holds errors returned by the next applies.
type fakeKernel struct {
	mu       sync.Mutex
	applied  []*nft.Table
	failures []error
	present  bool
	watch    chan nft.Change
	watchErr chan error
	watches  int
	verified [][]string
}

func (k *fakeKernel) Apply(t *nft.Table, verify ...string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.verified = append(k.verified, verify)
	if len(k.failures) > 0 {
		err := k.failures[0]
		k.failures = k.failures[1:]
		return false, err
	}
	k.applied = append(k.applied, t)
	k.present = true
	return true, nil
}

func (k *fakeKernel) Read(string) (*nft.State, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.present {
		return nil, nil
	}
	return &nft.State{}, nil
}

func (k *fakeKernel) Watch(ctx context.Context, _ string, out chan<- nft.Change, ready func()) error {
	k.mu.Lock()
	k.watches++
	k.mu.Unlock()
	ready()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-k.watchErr:
			return err
		case ch := <-k.watch:
			select {
			case out <- ch:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// fakeDocker serves networks and forwards updates the test sends.
type fakeDocker struct {
	mu      sync.Mutex
	nets    []docker.Network
	err     error
	calls   int
	updates chan docker.Update
}

func (d *fakeDocker) Networks(context.Context) ([]docker.Network, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return d.nets, d.err
}

func (d *fakeDocker) Containers(context.Context) ([]docker.Container, error) { return nil, nil }

func (d *fakeDocker) Host() string { return "unix:///fake/docker.sock" }

func (d *fakeDocker) Follow(ctx context.Context, out chan<- docker.Update, _ docker.Backoff) {
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-d.updates:
			select {
			case out <- u:
			case <-ctx.Done():
				return
			}
		}
	}
}

const namedPolicy = `version: 1
networks:
  - match: {name: app}
    egress:
      - deny: 192.168.0.0/16
`

// harness runs a daemon with fakes and collects its sync results.
//
// Every test that starts one runs in a synctest bubble: the daemon's timers
// (debounce, retry backoff, lock polling, resync, the wait for Docker at
// start) and the harness's own timeouts run on the bubble's fake clock,
// which moves only once every goroutine of the bubble is durably blocked.
// A test waits for the daemon with next and none, or with synctest.Wait when
// it must let the daemon take an input before giving it the next one; never
// with real time.
type harness struct {
	t       *testing.T
	kernel  *fakeKernel
	docker  *fakeDocker
	results chan Result
	reload  chan os.Signal
	policy  string // YAML returned by LoadPolicy
	pmu     sync.Mutex
	done    chan error
	cancel  context.CancelFunc
	// first is the result of the sync at start.
	first Result
}

func start(t *testing.T, withDocker bool, edit func(*Config)) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		kernel:  &fakeKernel{watch: make(chan nft.Change), watchErr: make(chan error)},
		docker:  &fakeDocker{updates: make(chan docker.Update, 64), nets: []docker.Network{{ID: "1", Name: "app", Bridge: "br-1", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}}}},
		results: make(chan Result, 64),
		reload:  make(chan os.Signal, 1),
		policy:  namedPolicy,
		done:    make(chan error, 1),
	}
	cfg := Config{
		LoadPolicy: func() (*policy.Policy, error) {
			h.pmu.Lock()
			defer h.pmu.Unlock()
			return policy.Parse("p.yaml", []byte(h.policy), policy.Options{ResolvConf: os.DevNull})
		},
		Reload:   h.reload,
		Bridges:  func() ([]bridge.Bridge, error) { return nil, nil },
		Kernel:   h.kernel,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Debounce: 30 * time.Millisecond,
		RetryMin: 10 * time.Millisecond,
		RetryMax: 40 * time.Millisecond,
		Resync:   time.Hour,
		OnSync:   func(r Result) { h.results <- r },
	}
	if withDocker {
		cfg.Docker = h.docker
		h.docker.updates <- docker.Update{Signal: docker.Connected}
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- Run(ctx, cfg) }()
	t.Cleanup(h.stop)
	// The sync at start comes first, then the one the monitor asks for
	// once it is subscribed.
	h.first = h.next()
	if r := h.next(); r.Reason != "nftables monitor subscribed" {
		t.Fatalf("second sync = %+v, want the monitor's", r)
	}
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(2 * time.Second):
		h.t.Error("Run did not return within 2s of the cancel")
	}
	h.done <- nil
}

// next waits for the next sync result.
func (h *harness) next() Result {
	h.t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(3 * time.Second):
		h.t.Fatal("no sync within 3s")
		return Result{}
	}
}

// none checks that no sync happens for d.
func (h *harness) none(d time.Duration) {
	h.t.Helper()
	select {
	case r := <-h.results:
		h.t.Fatalf("unexpected sync: %+v", r)
	case <-time.After(d):
	}
}

func TestStartSyncsWithDockerNetworks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, true, nil)
		r := h.first
		if r.Reason != "start" || r.Source != "docker" || r.Err != nil || len(r.Table.Fenced) != 1 || r.Table.Fenced[0].Network.Name != "app" {
			t.Fatalf("first sync = %+v", r)
		}
	})
}

func TestBurstIsCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, true, nil)
		for range 20 {
			h.docker.updates <- docker.Update{Signal: docker.Changed, Event: "network create x"}
		}
		r := h.next()
		if r.Reason != "20 Docker events" {
			t.Errorf("reason = %q, want one sync for the 20 events", r.Reason)
		}
		h.none(100 * time.Millisecond)
	})
}

// A container's death syncs at once, without the debounce: the address it
// frees must leave the container layer before another container takes it.
func TestContainerDieSyncsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, true, func(c *Config) { c.Debounce = time.Hour })
		h.docker.updates <- docker.Update{Signal: docker.Changed, Event: "network connect app"}
		h.docker.updates <- docker.Update{Signal: docker.Changed, Event: "container die web-1", Died: true}
		began := time.Now()
		r := h.next()
		if r.Reason != "2 Docker events" || time.Since(began) > time.Minute {
			t.Errorf("sync %q after %v; want the two events at once", r.Reason, time.Since(began))
		}
		h.none(time.Minute)
	})
}

func TestDockerLostKeepsLastKnownNetworks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, true, nil)
		h.docker.mu.Lock()
		calls := h.docker.calls
		h.docker.mu.Unlock()
		h.docker.updates <- docker.Update{Signal: docker.Lost, Err: docker.ErrUnreachable}
		synctest.Wait()          // let the daemon take the update before the reload
		h.reload <- os.Interrupt // any reload triggers a sync
		r := h.next()
		if r.Source != "docker (last known)" || len(r.Table.Fenced) != 1 {
			t.Fatalf("sync while Docker is down = %+v", r)
		}
		h.docker.mu.Lock()
		if h.docker.calls != calls {
			t.Errorf("Networks called %d times while Docker was down", h.docker.calls-calls)
		}
		h.docker.mu.Unlock()
		h.docker.updates <- docker.Update{Signal: docker.Connected}
		if r := h.next(); r.Reason != "Docker connected" || r.Source != "docker" {
			t.Errorf("sync on reconnect = %+v", r)
		}
	})
}

// Docker's event stream is up but listing its networks fails: a Docker that
// cannot be reached leaves the last known networks in force; one that
// answers with an error fails the sync, which keeps the table.
func TestDockerListingFails(t *testing.T) {
	h := start(t, true, nil)
	h.docker.mu.Lock()
	h.docker.err = fmt.Errorf("list docker networks: %w: connection refused", docker.ErrUnreachable)
	h.docker.mu.Unlock()
	h.reload <- os.Interrupt
	if r := h.next(); r.Err != nil || r.Source != "docker (last known)" || len(r.Table.Fenced) != 1 {
		t.Fatalf("sync with Docker unreachable = %+v", r)
	}
	h.docker.mu.Lock()
	h.docker.err = errors.New("list docker networks: Error response from daemon: internal error")
	h.docker.mu.Unlock()
	h.reload <- os.Interrupt
	if r := h.next(); r.Err == nil || r.Err.Error() != "list docker networks: Error response from daemon: internal error" || r.Table != nil {
		t.Fatalf("sync with Docker answering an error = %+v", r)
	}
}

func TestFailedApplyIsRetriedWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, false, func(c *Config) {
			c.Kernel.(*fakeKernel).failures = []error{errors.New("EBUSY"), errors.New("EBUSY"), errors.New("EBUSY"), errors.New("EBUSY")}
		})
		// start and the monitor's sync failed; then retries after 20 and 40 ms.
		if h.first.Err == nil {
			t.Fatalf("first sync = %+v, want the fake's failure", h.first)
		}
		at := []time.Time{time.Now()}
		for i := 0; i < 3; i++ {
			r := h.next()
			at = append(at, time.Now())
			if (r.Err != nil) != (i < 2) || r.Reason != "retry" {
				t.Fatalf("retry %d: %+v", i, r)
			}
		}
		// Delays 20, 40, 40 ms (capped): the second gap is clearly longer than the first.
		if first, second := at[1].Sub(at[0]), at[2].Sub(at[1]); second < first+10*time.Millisecond {
			t.Errorf("retry gaps %v then %v: no backoff", first, second)
		}
		h.none(100 * time.Millisecond)
	})
}

// A change of the table while a failed sync waits for its retry does not
// sync at once: a batch the kernel keeps refusing must not become a loop.
func TestKernelChangeWaitsForRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, false, func(c *Config) {
			c.RetryMin, c.RetryMax = 200*time.Millisecond, 200*time.Millisecond
			c.Kernel.(*fakeKernel).failures = []error{errors.New("EINVAL"), errors.New("EINVAL"), errors.New("EINVAL")}
		})
		at := time.Now()
		h.kernel.watch <- nft.Change{Pid: 4242, Proc: "nft", Sets: []string{"l_x_4"}}
		r := h.next()
		if r.Reason != "retry" || time.Since(at) < 100*time.Millisecond {
			t.Errorf("sync %+v after %v, want the retry, not an immediate sync", r, time.Since(at))
		}
		h.kernel.mu.Lock()
		defer h.kernel.mu.Unlock()
		if last := h.kernel.verified[len(h.kernel.verified)-1]; !slices.Equal(last, []string{"l_x_4"}) {
			t.Errorf("the retry verified %q, want the set another process changed", last)
		}
	})
}

func TestKernelChangeIsRepaired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, false, nil)
		h.kernel.watch <- nft.Change{Pid: 4242, Proc: "nft", Sets: []string{"l_private_4"}}
		if r := h.next(); r.Reason != "table changed by pid 4242 (nft)" {
			t.Errorf("reason = %q", r.Reason)
		}
		h.kernel.mu.Lock()
		if last := h.kernel.verified[len(h.kernel.verified)-1]; !slices.Equal(last, []string{"l_private_4"}) {
			t.Errorf("Apply verified %q, want the set whose elements changed", last)
		}
		h.kernel.mu.Unlock()
		// A failing monitor subscribes again, then asks for a full resync.
		h.kernel.watchErr <- nft.ErrOverrun
		if r := h.next(); r.Reason != "nftables monitor restarted" {
			t.Errorf("reason = %q", r.Reason)
		}
		h.kernel.mu.Lock()
		defer h.kernel.mu.Unlock()
		if h.kernel.watches != 2 {
			t.Errorf("%d subscriptions, want 2", h.kernel.watches)
		}
		if last := h.kernel.verified[len(h.kernel.verified)-1]; len(last) != 0 {
			t.Errorf("verified %q again after a successful sync", last)
		}
	})
}

func TestBadReloadKeepsOldPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, true, nil)
		h.pmu.Lock()
		h.policy = "version: 1\nnetworks:\n  - match: {name: app}\n    egress:\n      - deny: 999.0.0.0/8\n"
		h.pmu.Unlock()
		h.reload <- os.Interrupt
		h.none(100 * time.Millisecond)
		h.pmu.Lock()
		h.policy = strings.Replace(namedPolicy, "192.168.0.0/16", "10.0.0.0/8", 1)
		h.pmu.Unlock()
		h.reload <- os.Interrupt
		r := h.next()
		if r.Reason != "policy reload" || !strings.Contains(r.Table.Text(), "10.0.0.0/8") {
			t.Errorf("sync after a good reload = %+v", r)
		}
	})
}

func TestPolicyFileChangeReloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		file := t.TempDir() + "/p.yaml"
		os.WriteFile(file, []byte("x"), 0o644)
		h := start(t, false, func(c *Config) { c.PolicyFile, c.PollPolicy = file, 10*time.Millisecond })
		os.WriteFile(file, []byte("changed"), 0o644)
		if r := h.next(); r.Reason != "policy reload" {
			t.Errorf("reason = %q", r.Reason)
		}
	})
}

// A policy that needs Docker, with Docker never reached: an existing table
// is kept rather than rebuilt without names; a missing one is created.
func TestNoDockerYetKeepsExistingTable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, false, func(c *Config) { c.Docker = &fakeDocker{updates: make(chan docker.Update)} })
		if r := h.first; r.Err != nil || r.Source != "netlink" {
			t.Fatalf("first sync without a table = %+v", r)
		}
		h.reload <- os.Interrupt
		if r := h.next(); r.Source != "" {
			t.Errorf("sync with a table and no Docker = %+v, want skipped", r)
		}
		h.kernel.mu.Lock()
		defer h.kernel.mu.Unlock()
		if len(h.kernel.applied) != 1 {
			t.Errorf("%d applies, want 1", len(h.kernel.applied))
		}
	})
}

// applies counts the tables applied.
func (k *fakeKernel) applies() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.applied)
}

// fakeLock is the table lock, which the test, playing another dockerfence
// process, can hold.
type fakeLock struct {
	mu sync.Mutex
	// other says that another process holds the lock; held that the
	// daemon does.
	other, held bool
	// refused counts the calls refused as busy; tables lists the tables of
	// the calls granted.
	refused int
	tables  []string
	// errs lists what went wrong: a lock taken twice, an apply without it.
	errs []string
}

func (l *fakeLock) Lock(table string) (func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.other {
		l.refused++
		return nil, fmt.Errorf("another dockerfence is changing table inet %s (pid 4242, dockerfence apply): %w", table, ErrBusy)
	}
	if l.held {
		l.errs = append(l.errs, "the daemon took the lock it already held")
	}
	l.held = true
	l.tables = append(l.tables, table)
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.held {
			l.errs = append(l.errs, "the daemon released a lock it did not hold")
		}
		l.held = false
	}, nil
}

func (l *fakeLock) setOther(v bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.other = v
}

// check fails the test if the lock was misused, or is still held by the
// daemon (which releases it at the end of each sync).
func (l *fakeLock) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errs {
		t.Error(e)
	}
	if l.held {
		t.Error("the daemon still holds the lock after its syncs")
	}
}

// lockedKernel is a fakeKernel that checks every apply is made under the
// daemon's lock.
type lockedKernel struct {
	*fakeKernel
	lock *fakeLock
}

func (k lockedKernel) Apply(t *nft.Table, verify ...string) (bool, error) {
	k.lock.mu.Lock()
	if !k.lock.held || k.lock.other {
		k.lock.errs = append(k.lock.errs, fmt.Sprintf("apply without the lock (daemon holds it: %v, another process: %v)", k.lock.held, k.lock.other))
	}
	k.lock.mu.Unlock()
	return k.fakeKernel.Apply(t, verify...)
}

// withLock makes the harness's daemon take l around its applies.
func withLock(l *fakeLock, wait time.Duration) func(*Config) {
	return func(c *Config) {
		c.Kernel = lockedKernel{c.Kernel.(*fakeKernel), l}
		c.Lock = l.Lock
		c.LockWait = wait
	}
}

// A sync that finds the lock held by another process waits for it, and
// then applies without counting as failed.
func TestBusyLockIsWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &fakeLock{other: true}
		go func() { // another process holds the lock for 80ms of the bubble's clock
			time.Sleep(80 * time.Millisecond)
			l.setOther(false)
		}()
		h := start(t, false, withLock(l, time.Second))
		if r := h.first; r.Err != nil || !r.Changed || r.Took < 60*time.Millisecond {
			t.Fatalf("first sync = %+v, want an apply after waiting about 80ms for the lock", r)
		}
		h.none(100 * time.Millisecond) // no retry: nothing failed
		l.check(t)
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.refused < 5 || !slices.Equal(l.tables, []string{"dockerfence", "dockerfence"}) {
			t.Errorf("lock refused %d times, then granted for %q; want it tried every 5ms, then granted to both syncs for table dockerfence", l.refused, l.tables)
		}
	})
}

// A sync that finds the lock held longer than LockWait fails with ErrBusy,
// changes nothing, and is retried with backoff until the lock is free.
func TestBusyLockPastWaitIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := &fakeLock{other: true}
		h := start(t, false, withLock(l, 15*time.Millisecond))
		if r := h.first; !errors.Is(r.Err, ErrBusy) || r.Changed || r.Table == nil {
			t.Fatalf("first sync = %+v, want it failed with ErrBusy", r)
		}
		for i := range 2 {
			if r := h.next(); r.Reason != "retry" || !errors.Is(r.Err, ErrBusy) {
				t.Fatalf("retry %d = %+v, want a retry failed with ErrBusy", i, r)
			}
		}
		if n := h.kernel.applies(); n != 0 {
			t.Fatalf("%d applies while another process held the lock", n)
		}
		l.setOther(false)
		r := h.next()
		if r.Reason != "retry" || r.Err != nil || !r.Changed {
			t.Fatalf("retry after the lock was freed = %+v, want an apply", r)
		}
		h.none(100 * time.Millisecond)
		l.check(t)
	})
}

// An error of the lock other than busy (say, the lock file cannot be
// opened) fails the sync at once, without waiting.
func TestLockErrorFailsSync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		h := start(t, false, func(c *Config) {
			c.LockWait = time.Hour
			c.Lock = func(string) (func(), error) {
				calls++
				if calls <= 2 { // the sync at start and the monitor's
					return nil, errors.New("lock file: permission denied")
				}
				return func() {}, nil
			}
		})
		if r := h.first; r.Err == nil || r.Took > time.Second || h.kernel.applies() != 0 {
			t.Fatalf("first sync = %+v, want it failed at once", r)
		}
		if r := h.next(); r.Reason != "retry" || r.Err != nil {
			t.Fatalf("retry = %+v, want an apply", r)
		}
	})
}

// The daemon logs each network the table cannot fence once, when a sync
// first sees it, and never Docker's "none" network, which has no traffic.
func TestNotFenceableLoggedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log lockedBuffer
		h := start(t, true, func(c *Config) {
			c.Log = slog.New(slog.NewTextHandler(&log, nil))
			c.Docker.(*fakeDocker).nets = []docker.Network{
				{ID: "1", Name: "app", Bridge: "br-1", Driver: "bridge", Subnets: []netip.Prefix{netip.MustParsePrefix("172.20.0.0/16")}},
				{ID: "2", Name: "lan", Driver: "macvlan", Subnets: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}},
				{ID: "3", Name: "none", Driver: "null"},
			}
		})
		if r := h.first; len(r.Table.Fenced) != 1 || len(r.Table.NotFenceable) != 2 {
			t.Fatalf("first sync: fenced %+v, not fenceable %+v", r.Table.Fenced, r.Table.NotFenceable)
		}
		h.docker.mu.Lock()
		h.docker.nets = append(h.docker.nets, docker.Network{ID: "4", Name: "vx", Driver: "overlay"})
		h.docker.mu.Unlock()
		h.docker.updates <- docker.Update{Signal: docker.Changed, Event: "network create vx"}
		h.next()
		var lines []string
		for l := range strings.Lines(log.String()) {
			if strings.Contains(l, "is not fenced") {
				lines = append(lines, l)
			}
		}
		want := []string{
			`level=WARN msg="network \"lan\" is not fenced: macvlan: containers talk to the LAN directly through the parent interface, not through a bridge on this host: dockerfence cannot see their packets" driver=macvlan` + "\n",
			`level=WARN msg="network \"vx\" is not fenced: overlay: VXLAN between Docker hosts, not a local bridge: traffic between its containers is not fenced (their traffic to other networks leaves through docker_gwbridge, a bridge network that dockerfence can fence)" driver=overlay` + "\n",
		}
		for i := range lines {
			_, lines[i], _ = strings.Cut(lines[i], " ") // the time
		}
		if !slices.Equal(lines, want) {
			t.Errorf("log lines about networks not fenced:\n%s\nwant\n%s", strings.Join(lines, ""), strings.Join(want, ""))
		}
	})
}

// portKernel is a fakeKernel whose socket has a netlink port.
type portKernel struct{ *fakeKernel }

func (portKernel) Protection() (nft.Protection, error) {
	return nft.Protection{Port: 77, Why: "test"}, nil
}

// The monitor's notifications of the daemon's own commits (its socket's
// port) are skipped; another port's are a change to repair.
func TestOwnCommitsSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, true, func(c *Config) { c.Kernel = portKernel{c.Kernel.(*fakeKernel)} })
		h.kernel.watch <- nft.Change{Pid: 1, Proc: "dockerfence", Port: 77}
		h.none(100 * time.Millisecond)
		h.kernel.watch <- nft.Change{Pid: 4242, Proc: "nft", Port: 78}
		if r := h.next(); r.Trigger != TriggerKernel {
			t.Errorf("sync after another port's change = %+v", r)
		}
	})
}

// Plan makes the fake kernel a Planner whose plan always changes the
// table: one empty transaction against what Read returns.
func (k *fakeKernel) Plan(t *nft.Table, _ ...string) (*nft.Plan, error) {
	st, err := k.Read(t.Name)
	return &nft.Plan{Table: t, Have: st, Txs: []*nft.Transaction{{}}}, err
}
