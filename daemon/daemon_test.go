package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
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
}

func (k *fakeKernel) Apply(t *nft.Table) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
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

func (k *fakeKernel) Watch(ctx context.Context, _ string, out chan<- nft.Change) error {
	k.mu.Lock()
	k.watches++
	k.mu.Unlock()
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
	r := h.next()
	if r.Reason != "start" || r.Source != "docker" || r.Err != nil || len(r.Table.Fenced) != 1 || r.Table.Fenced[0].Network.Name != "app" {
		t.Fatalf("first sync = %+v", r)
	}
}

func TestBurstIsCoalesced(t *testing.T) {
	h := start(t, true, nil)
	h.next()
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
	h.next()
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
		c.Kernel.(*fakeKernel).failures = []error{errors.New("EBUSY"), errors.New("EBUSY"), errors.New("EBUSY")}
	})
	var at []time.Time
	for i := 0; i < 4; i++ {
		r := h.next()
		at = append(at, time.Now())
		if (r.Err != nil) != (i < 3) {
			t.Fatalf("sync %d: %+v", i, r)
		}
		if i > 0 && r.Reason != "retry" {
			t.Errorf("sync %d reason = %q, want retry", i, r.Reason)
		}
	}
	// Delays 10, 20, 40 ms: the last gap is clearly longer than the first.
	if first, last := at[1].Sub(at[0]), at[3].Sub(at[2]); last < first+15*time.Millisecond {
		t.Errorf("retry gaps %v then %v: no backoff", first, last)
	}
	h.none(100 * time.Millisecond)
}

func TestKernelChangeByOthersIsRepaired(t *testing.T) {
	h := start(t, false, nil)
	h.next()
	h.kernel.watch <- nft.Change{Pid: uint32(os.Getpid()), Proc: "self"}
	h.none(50 * time.Millisecond)
	h.kernel.watch <- nft.Change{Pid: 4242, Proc: "nft"}
	if r := h.next(); r.Reason != "table changed by pid 4242 (nft)" {
		t.Errorf("reason = %q", r.Reason)
	}
	// A failing monitor leads to a full resync and a new subscription.
	h.kernel.watchErr <- nft.ErrOverrun
	if r := h.next(); r.Reason != "nftables monitor restarted" {
		t.Errorf("reason = %q", r.Reason)
	}
	deadline := time.Now().Add(time.Second)
	for {
		h.kernel.mu.Lock()
		n := h.kernel.watches
		h.kernel.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the monitor was not subscribed again")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBadReloadKeepsOldPolicy(t *testing.T) {
	h := start(t, true, nil)
	h.next()
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
	h.next()
	os.WriteFile(file, []byte("changed"), 0o644)
	if r := h.next(); r.Reason != "policy reload" {
		t.Errorf("reason = %q", r.Reason)
	}
}

// A policy that needs Docker, with Docker never reached: an existing table
// is kept rather than rebuilt without names; a missing one is created.
func TestNoDockerYetKeepsExistingTable(t *testing.T) {
	h := start(t, false, func(c *Config) { c.Docker = &fakeDocker{updates: make(chan docker.Update)} })
	r := h.next()
	if r.Err != nil || r.Source != "netlink" || len(h.kernel.applied) != 1 {
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
