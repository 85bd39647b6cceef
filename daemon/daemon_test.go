package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
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
			out <- ch
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

func (d *fakeDocker) Follow(ctx context.Context, out chan<- docker.Update, _ docker.Backoff) {
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-d.updates:
			out <- u
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
	h := start(t, true, nil)
	r := h.first
	if r.Reason != "start" || r.Source != "docker" || r.Err != nil || len(r.Table.Fenced) != 1 || r.Table.Fenced[0].Network.Name != "app" {
		t.Fatalf("first sync = %+v", r)
	}
}

func TestBurstIsCoalesced(t *testing.T) {
	h := start(t, true, nil)
	for range 20 {
		h.docker.updates <- docker.Update{Signal: docker.Changed, Event: "network create x"}
	}
	r := h.next()
	if r.Reason != "20 Docker events" {
		t.Errorf("reason = %q, want one sync for the 20 events", r.Reason)
	}
	h.none(100 * time.Millisecond)
}

func TestDockerLostKeepsLastKnownNetworks(t *testing.T) {
	h := start(t, true, nil)
	h.docker.mu.Lock()
	calls := h.docker.calls
	h.docker.mu.Unlock()
	h.docker.updates <- docker.Update{Signal: docker.Lost, Err: docker.ErrUnreachable}
	time.Sleep(20 * time.Millisecond) // let the daemon take the update before the reload
	h.reload <- os.Interrupt          // any reload triggers a sync
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
}

func TestFailedApplyIsRetriedWithBackoff(t *testing.T) {
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
}

// A change of the table while a failed sync waits for its retry does not
// sync at once: a batch the kernel keeps refusing must not become a loop.
func TestKernelChangeWaitsForRetry(t *testing.T) {
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
}

func TestKernelChangeIsRepaired(t *testing.T) {
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
}

func TestBadReloadKeepsOldPolicy(t *testing.T) {
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
}

func TestPolicyFileChangeReloads(t *testing.T) {
	file := t.TempDir() + "/p.yaml"
	os.WriteFile(file, []byte("x"), 0o644)
	h := start(t, false, func(c *Config) { c.PolicyFile, c.PollPolicy = file, 10*time.Millisecond })
	os.WriteFile(file, []byte("changed"), 0o644)
	if r := h.next(); r.Reason != "policy reload" {
		t.Errorf("reason = %q", r.Reason)
	}
}

// A policy that needs Docker, with Docker never reached: an existing table
// is kept rather than rebuilt without names; a missing one is created.
func TestNoDockerYetKeepsExistingTable(t *testing.T) {
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
}
