// Package daemon keeps dockerfence's table true while Docker creates,
// removes and recreates networks, while Docker restarts, while the policy
// file changes and while other programs touch the ruleset.
//
// Every sync rebuilds the desired table from the policy and the networks
// found, and applies it; nft.Kernel.Apply sends nothing when the kernel
// already matches. Syncs are triggered by Docker events (coalesced), by
// changes of the table by other processes (at once), by a policy reload, by
// a periodic resync, and by the retry of a failed sync.
//
// Run is that loop; Serve runs it as dockerfence run does, with the status
// socket, the metrics and the denial log around it. The client of the
// socket API (GetStatus, Events) is here too.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/dockerfence/dockerfence/bridge"
	"github.com/dockerfence/dockerfence/discover"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/lock"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
)

// Kernel is what the daemon needs of nft.Kernel. A Kernel that is also a
// Planner and a Protector (nft.Kernel, nft/fake's) gets more: the daemon
// logs what differs before it repairs it, and skips the notifications of
// its own commits.
type Kernel interface {
	Apply(t *nft.Table, verify ...string) (bool, error)
	Read(table string) (*nft.State, error)
	Watch(ctx context.Context, table string, out chan<- nft.Change, ready func()) error
}

// Planner computes what Apply would change, without changing it.
type Planner interface {
	Plan(t *nft.Table, verify ...string) (*nft.Plan, error)
}

// Protector says how the kernel protects the table the Kernel writes, and
// the netlink port of its socket.
type Protector interface {
	Protection() (nft.Protection, error)
}

// Docker is what the daemon needs of docker.Client: what discovery needs,
// and its event stream.
type Docker interface {
	discover.Docker
	Follow(ctx context.Context, out chan<- docker.Update, b docker.Backoff)
}

// Config is what Run needs. Zero durations take the defaults.
type Config struct {
	// LoadPolicy loads the policy; it is called at start and on every
	// reload. The daemon logs the policy's warnings itself.
	LoadPolicy func() (*policy.Policy, error)
	// PolicyFile, if set, is watched: a change of it reloads the policy.
	PolicyFile string
	// Reload delivers reload requests (SIGHUP).
	Reload <-chan os.Signal
	// Docker is nil when the daemon runs without Docker.
	Docker Docker
	// Bridges lists the bridges over netlink.
	Bridges func() ([]bridge.Bridge, error)
	// Ports lists a bridge's container ports (bridge.Netlink.Ports), for
	// the identity check of containers; nil leaves it out.
	Ports  func(bridge string) ([]bridge.Port, error)
	Kernel Kernel
	Log    *slog.Logger
	// Resync is the period of the full resync (default 30 s); Debounce
	// coalesces bursts of Docker events (default 50 ms, at most 100 ms);
	// RetryMin and RetryMax bound the backoff of failed syncs (100 ms, 10 s).
	Resync, Debounce, RetryMin, RetryMax time.Duration
	// PollPolicy is how often PolicyFile is checked (default 1 s).
	PollPolicy time.Duration
	// OnSync, if set, is called after every sync, for tests and metrics.
	OnSync func(Result)
	// OnDocker, if set, is called with every update of Docker's event
	// stream.
	OnDocker func(docker.Update)
	// Ready, if set, is called once after the first sync, so that systemd
	// starts Docker only once the fence is up.
	Ready func()
	// Lock, if set, is taken around every change of the kernel's table, so
	// that no other dockerfence process (apply, delete) changes the table
	// between the moment a sync reads it and the moment it commits; it
	// returns the function that releases the lock. table is the table the
	// sync changes. When another process holds the lock, Lock must return
	// an error wrapping ErrBusy at once: the sync then tries again every few
	// milliseconds for up to LockWait.
	Lock func(table string) (unlock func(), err error)
	// LockWait is how long a sync waits for a busy Lock (default 2 s).
	// Past it, the sync counts as failed: the table stays as it is and the
	// sync is retried with the backoff of RetryMin and RetryMax.
	LockWait time.Duration
	// Requests delivers the socket's requests (apply, plan, delete),
	// served one at a time between syncs.
	Requests <-chan Request
}

// ErrBusy is what Config.Lock returns, wrapped, while another process holds
// the lock. It is lock.ErrBusy, so that the *lock.BusyError of lock.Take
// is one.
var ErrBusy = lock.ErrBusy

// lockPoll is how often a sync tries a busy lock again.
const lockPoll = 5 * time.Millisecond

// Triggers of a sync, as Result.Trigger gives them.
const (
	TriggerStart   = "start"
	TriggerDocker  = "docker"
	TriggerKernel  = "kernel"
	TriggerMonitor = "monitor"
	TriggerReload  = "reload"
	TriggerResync  = "resync"
	TriggerRetry   = "retry"
	TriggerApply   = "apply"
)

// Result is the outcome of one sync.
type Result struct {
	// Time is when the sync started.
	Time time.Time
	// Trigger is what made the daemon sync, one of the Trigger constants,
	// and Reason says it in words.
	Trigger, Reason string
	// Policy is the policy the sync applied.
	Policy *policy.Policy
	// Changed says whether the kernel's table was changed.
	Changed bool
	// Source says where the networks came from: "docker", "docker (last
	// known)", "netlink" or "" when the sync was skipped.
	Source string
	// Table is the table the sync built (applied, or not if Err is set);
	// nil if it built none.
	Table *fence.Result
	// Kept is set when the sync kept the kernel's table as it was without
	// building one: Docker has not answered yet and the policy needs it.
	Kept bool
	// Containers are the containers the sync's inventory listed, with
	// their published ports, for status; nil when Docker did not answer.
	Containers []discover.Container
	Err        error
	Took       time.Duration
}

func (c *Config) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.Resync, 30*time.Second)
	set(&c.Debounce, 50*time.Millisecond)
	set(&c.RetryMin, 100*time.Millisecond)
	set(&c.RetryMax, 10*time.Second)
	set(&c.PollPolicy, time.Second)
	set(&c.LockWait, 2*time.Second)
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// daemon is the state of one Run, owned by its loop goroutine.
type daemon struct {
	cfg Config
	pol *policy.Policy
	// disc takes the inventory and remembers what Docker last reported.
	disc *discover.Discoverer
	// dockerUp says whether Docker's event stream is up.
	dockerUp bool
	// lostTries counts the failed attempts to reach Docker since it was
	// lost at lostAt (0 while it is up); lostLogged is when the log last
	// said so.
	lostTries          int
	lostAt, lostLogged time.Time
	// warned holds the table's warnings that the log told of last, sorted,
	// so that it tells of them again only when they change.
	warned []string
	// retry is the current backoff after failed syncs (0 after a success),
	// and retryAt when the next retry is due.
	retry   time.Duration
	retryAt time.Time
	// verify names sets whose elements some process changed: the next
	// sync reads and compares them.
	verify []string
	// ready is true once a sync has succeeded (or kept the table).
	ready bool
	// told holds, by ID (or name), the networks the table cannot fence
	// that the log has told of, so that it tells of each once.
	told map[string]bool
	// deleted is set once a delete request removed the table: syncs then
	// leave the kernel alone until the next reload.
	deleted bool
	// port is the netlink port of the Kernel's socket (0 if unknown): the
	// monitor's notifications from it are the daemon's own commits.
	port uint32
}

// Run keeps the table true until ctx ends, and then returns nil, leaving
// the table in place so that the fence stays closed. It returns an error
// only if the policy cannot be loaded at start.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	pol, err := cfg.LoadPolicy()
	if err != nil {
		return err
	}
	d := &daemon{cfg: cfg, pol: pol, disc: &discover.Discoverer{Docker: cfg.Docker, Bridges: bridge.ListerFunc(cfg.Bridges), Ports: cfg.Ports, ListContainers: true}}
	log := cfg.Log
	attrs := []any{"policy", pol.Origin()}
	if cfg.PolicyFile != "" {
		attrs = append(attrs, "watching", cfg.PolicyFile)
	}
	if from := pol.ResolversFrom(); from != "" {
		attrs = append(attrs, "resolvers_from", from)
	}
	log.Info("policy loaded", attrs...)
	if p, ok := cfg.Kernel.(Protector); ok {
		if prot, err := p.Protection(); err == nil {
			d.port = prot.Port
			log.Info("table protection", "table", pol.Settings.Table, "protection", prot.Why)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dockerCh := make(chan docker.Update, 16)
	if cfg.Docker != nil {
		go cfg.Docker.Follow(ctx, dockerCh, docker.Backoff{Min: cfg.RetryMin, Max: 5 * time.Second})
		// Give Docker a moment to answer before the first sync, so that a
		// running Docker's names and labels are known from the start.
		select {
		case u := <-dockerCh:
			d.docker(u)
		case <-time.After(2 * time.Second):
			log.Warn("Docker does not answer yet; fencing what is known without it until it does")
		case <-ctx.Done():
			return nil
		}
	}
	kernelCh := make(chan nft.Change, 16)
	resyncCh := make(chan string, 1)
	go d.watchKernel(ctx, pol.Settings.Table, kernelCh, resyncCh)
	policyCh := make(chan struct{}, 1)
	if cfg.PolicyFile != "" {
		last := fileStamp(cfg.PolicyFile) // now, so that no change after Run starts is missed
		go watchFile(ctx, cfg.PolicyFile, last, cfg.PollPolicy, policyCh)
	}
	// The built-in @resolvers is read with the policy: a change of the
	// host's resolvers (DHCP, a VPN, systemd-resolved) reloads the policy
	// if a rule uses it.
	resolvCh := make(chan struct{}, 1)
	for _, f := range pol.ResolvFiles() {
		go watchFile(ctx, f, fileStamp(f), cfg.PollPolicy, resolvCh)
	}

	d.sync(ctx, TriggerStart, "start")
	resync := time.NewTicker(cfg.Resync)
	defer resync.Stop()
	var debounce <-chan time.Time
	debounceReasons := 0
	for {
		if d.ready && cfg.Ready != nil {
			cfg.Ready()
			cfg.Ready = nil
		}
		// A failed sync is retried when its backoff is over, unless
		// another trigger syncs first.
		var retry <-chan time.Time
		if !d.retryAt.IsZero() {
			retry = time.After(time.Until(d.retryAt))
		}
		select {
		case <-ctx.Done():
			log.Info("stopping; the table stays in place, so the fence stays closed (dockerfence delete removes it)")
			return nil
		case u := <-dockerCh:
			switch d.docker(u) {
			case docker.Connected:
				d.sync(ctx, TriggerDocker, "Docker connected")
			case docker.Changed:
				debounceReasons++
				if u.Died {
					// The address a dying container frees may go to
					// the next container at once: it leaves the
					// container layer now, not after the debounce, so
					// that no one is judged by the dead one's rules.
					debounce = nil
					d.sync(ctx, TriggerDocker, fmt.Sprintf("%d Docker events", debounceReasons))
					debounceReasons = 0
					break
				}
				if debounce == nil {
					debounce = time.After(cfg.Debounce)
				}
			}
		case <-debounce:
			debounce = nil
			d.sync(ctx, TriggerDocker, fmt.Sprintf("%d Docker events", debounceReasons))
			debounceReasons = 0
		case ch := <-kernelCh:
			// Our own commits come back here too: the notification names
			// the port of the socket that sent them, ours. While a failed
			// sync waits for its retry, a change only marks what to verify,
			// so that a batch the kernel keeps refusing cannot turn into a
			// loop.
			if d.port != 0 && ch.Port == d.port {
				log.Debug("the table changed by this daemon's own transaction", "pid", ch.Pid, "port", ch.Port)
				continue
			}
			for _, s := range ch.Sets {
				if !slices.Contains(d.verify, s) {
					d.verify = append(d.verify, s)
				}
			}
			if d.retryAt.IsZero() {
				d.sync(ctx, TriggerKernel, fmt.Sprintf("table changed by pid %d (%s)", ch.Pid, ch.Proc))
			}
		case why := <-resyncCh:
			d.sync(ctx, TriggerMonitor, why)
		case r := <-cfg.Requests:
			d.request(ctx, r)
		case <-cfg.Reload:
			d.reload(ctx, "SIGHUP")
		case <-policyCh:
			d.reload(ctx, "policy file changed")
		case <-resolvCh:
			if d.resolversChanged() {
				d.reload(ctx, "resolv.conf changed")
			}
		case <-resync.C:
			d.sync(ctx, TriggerResync, "periodic resync")
		case <-retry:
			d.sync(ctx, TriggerRetry, "retry")
		}
	}
}

// docker records what an update says about Docker and returns its signal.
// An outage is logged when it starts, then at most once every
// dockerLogEvery with the count of failed attempts, and when Docker is
// back: Follow retries within seconds, and a line each time would bury
// the rest of the log.
func (d *daemon) docker(u docker.Update) docker.Signal {
	if d.cfg.OnDocker != nil {
		d.cfg.OnDocker(u)
	}
	log := d.cfg.Log
	switch u.Signal {
	case docker.Connected:
		switch {
		case d.lostTries > 0:
			log.Info("Docker connected again; resyncing all networks", "failed_attempts", d.lostTries, "unreachable_for", time.Since(d.lostAt).Round(time.Second))
		case !d.dockerUp:
			log.Info("Docker connected; resyncing all networks")
		}
		d.dockerUp, d.lostTries = true, 0
	case docker.Lost:
		what, follows := "Docker is unreachable", "the bridges found over netlink"
		if d.disc.HasLastKnown() {
			what, follows = "lost Docker's event stream", "the last known networks"
		}
		now := time.Now()
		switch {
		case d.dockerUp || d.lostTries == 0:
			d.lostAt, d.lostLogged, d.lostTries = now, now, 1
			log.Warn(what+"; the fence stays as it is and follows "+follows+" until Docker is back (retrying; logged again once a minute while it lasts)", "err", u.Err)
		default:
			d.lostTries++
			if now.Sub(d.lostLogged) >= dockerLogEvery {
				d.lostLogged = now
				log.Warn("Docker is still unreachable; the fence follows "+follows, "failed_attempts", d.lostTries, "unreachable_for", now.Sub(d.lostAt).Round(time.Second), "err", u.Err)
			}
		}
		d.dockerUp = false
	case docker.Changed:
		log.Debug("Docker event", "event", u.Event)
	}
	return u.Signal
}

// resolversChanged reports whether a rule uses the built-in @resolvers and
// the host's resolvers are no longer those it holds: another file, other
// addresses, or a file that cannot be read (the reload then says why). A
// resolv.conf written again as it was changes nothing.
func (d *daemon) resolversChanged() bool {
	from := d.pol.ResolversFrom()
	files := d.pol.ResolvFiles()
	if from == "" || len(files) != 2 {
		return false
	}
	file, _ := policy.ResolversFile(files[0], files[1])
	now, err := policy.ReadResolvers(file)
	return err != nil || file != from || !slices.Equal(now, d.pol.Lists["resolvers"].Prefixes)
}

// dockerLogEvery is how often the daemon says that Docker is still
// unreachable.
const dockerLogEvery = time.Minute

// reload loads the policy again; a bad policy is logged and the old one kept.
func (d *daemon) reload(ctx context.Context, why string) {
	pol, err := d.cfg.LoadPolicy()
	if err != nil {
		d.cfg.Log.Error("policy reload failed; the previous policy stays in force", "trigger", why, "err", err)
		return
	}
	if pol.Settings.Table != d.pol.Settings.Table {
		d.cfg.Log.Error("policy reload refused: settings.table changed; restart the daemon to move the fence to another table (and delete the old one)", "trigger", why, "table", d.pol.Settings.Table, "new", pol.Settings.Table)
		return
	}
	d.pol = pol
	d.deleted = false
	if from := pol.ResolversFrom(); from != "" {
		d.cfg.Log.Info("policy reloaded", "trigger", why, "policy", pol.Origin(), "resolvers_from", from)
	} else {
		d.cfg.Log.Info("policy reloaded", "trigger", why, "policy", pol.Origin())
	}
	d.sync(ctx, TriggerReload, "policy reload")
}

// sync rebuilds the table and applies it; a failure schedules a retry. It
// returns the sync's Result.
func (d *daemon) sync(ctx context.Context, trigger, reason string) (res Result) {
	start := time.Now()
	if d.deleted {
		d.cfg.Log.Debug("the table was deleted on request; not recreating it until the next reload", "reason", reason)
		return Result{Trigger: trigger, Reason: reason, Policy: d.pol, Time: start}
	}
	res = Result{Trigger: trigger, Reason: reason, Policy: d.pol, Time: start}
	unlock := func() {}
	defer func() {
		res.Took = time.Since(start)
		if d.cfg.OnSync != nil {
			d.cfg.OnSync(res)
		}
		// Released after OnSync, which records the apply: the last apply
		// recorded is then the last one made.
		unlock()
	}()
	inv, err := d.inventory(ctx)
	if err != nil {
		res.Err = err
		d.failed(reason, err)
		return
	}
	if inv.Source == discover.SourceNetlink && d.pol.NeedsDocker() && d.cfg.Docker != nil {
		// Without Docker, sections that match by name or label match
		// nothing; an existing table fences better than a rebuilt one.
		st, err := d.cfg.Kernel.Read(d.pol.Settings.Table)
		if err != nil {
			res.Err = err
			d.failed(reason, err)
			return
		}
		if st != nil {
			d.cfg.Log.Info("Docker has not answered yet; the existing table stays as it is until it does (policy reloads and repairs wait for Docker too)", "reason", reason)
			res.Kept = true
			d.succeeded()
			return
		}
	}
	res.Source = inv.Source.String()
	res.Containers = inv.Containers
	t := compile(d.pol, inv)
	res.Table = t
	d.tellNotFenceable(t)
	if unlock, res.Err = d.lock(ctx, t.Name); res.Err != nil {
		unlock = func() {}
		d.failed(reason, res.Err)
		return
	}
	res.Changed, res.Err = d.apply(trigger, reason, t)
	if res.Err != nil {
		d.failed(reason, res.Err)
		return
	}
	d.succeeded()
	d.verify = nil
	if res.Changed {
		d.cfg.Log.Info("table applied", "reason", reason, "networks", len(t.Fenced), "unfenced", len(t.Unfenced), "source", res.Source, "took", time.Since(start).Round(time.Microsecond))
	} else {
		d.cfg.Log.Debug("table up to date", "reason", reason)
	}
	d.tellWarnings(warnings(d.pol, t))
	return res
}

// tellWarnings logs the warnings of the policy and of the table when they
// differ from those it logged last: each new one, and each one gone, so
// that an unchanged finding is told of once, not at every sync, reload or
// request.
func (d *daemon) tellWarnings(warnings []string) {
	now := slices.Clone(warnings)
	slices.Sort(now)
	now = slices.Compact(now)
	if slices.Equal(now, d.warned) {
		return
	}
	told := map[string]bool{}
	for _, w := range d.warned {
		told[w] = true
	}
	for _, w := range warnings {
		if !told[w] {
			told[w] = true
			d.cfg.Log.Warn(w)
		}
	}
	for _, w := range d.warned {
		if _, found := slices.BinarySearch(now, w); !found {
			d.cfg.Log.Info("no longer the case: " + w)
		}
	}
	d.warned = now
}

// apply makes the kernel's table equal to t. A sync at start, at the
// periodic resync or after the monitor (re)subscribed verifies the whole
// table: flags, base chains, every rule's expressions and every set's
// elements (nft.Kernel.Verify). A sync other than one for Docker or a
// reload first plans, and logs what differs, where, before it repairs it.
func (d *daemon) apply(trigger, reason string, t *fence.Result) (bool, error) {
	verify := d.verify
	full := trigger == TriggerStart || trigger == TriggerResync || trigger == TriggerMonitor || trigger == TriggerApply
	if full {
		verify = t.OwnedSets()
	}
	pl, ok := d.cfg.Kernel.(Planner)
	if !ok || trigger == TriggerDocker || trigger == TriggerReload {
		return d.cfg.Kernel.Apply(t.Table, verify...)
	}
	p, err := pl.Plan(t.Table, verify...)
	if err != nil {
		return false, err
	}
	if p.Empty() {
		return false, nil
	}
	if p.Adopts {
		d.cfg.Log.Info("adopting the orphaned table: this daemon's socket owns it from now on", "table", t.Name, "flags", p.Have.Flags)
	}
	diff := nft.Diff(t.Table, p.Have)
	if p.Have != nil && len(diff) > 0 {
		d.cfg.Log.Warn("the kernel's table differs from the policy; repairing it", "table", t.Name, "reason", reason, "verified", map[bool]string{true: "in full", false: "changed parts"}[full], "differences", len(diff))
		for _, l := range diff {
			d.cfg.Log.Warn("table differs: "+l, "table", t.Name)
		}
	}
	return d.cfg.Kernel.Apply(t.Table, verify...)
}

// compile builds the table of pol for the networks of inv.
func compile(pol *policy.Policy, inv *discover.Inventory) *fence.Result {
	return inv.CompileHolding(pol)
}

// tellNotFenceable logs, the first time a sync sees it, each network that
// the table cannot fence (apply warns of them in the same words).
func (d *daemon) tellNotFenceable(t *fence.Result) {
	for _, u := range t.NotFenceable {
		key := cmp.Or(u.Network.ID, u.Network.Name)
		if d.told[key] {
			continue
		}
		if d.told == nil {
			d.told = map[string]bool{}
		}
		d.told[key] = true
		if w := u.Warning(); w != "" {
			d.cfg.Log.Warn(w, "driver", u.Network.Driver)
		}
	}
}

// lock takes Config.Lock, if set. While another process holds it, lock
// tries again every lockPoll for up to LockWait: a holder keeps it for one
// apply, milliseconds (about a second for a table of 100k prefixes), so a
// short wait gets the lock without logging or recording a failure. A holder
// that keeps it longer (a stopped or hung process) makes the sync fail, to
// be retried with backoff, rather than block the daemon: between retries it
// still follows Docker, signals and the kernel.
func (d *daemon) lock(ctx context.Context, table string) (unlock func(), err error) {
	if d.cfg.Lock == nil {
		return func() {}, nil
	}
	start := time.Now()
	for tries := 0; ; tries++ {
		unlock, err = d.cfg.Lock(table)
		if !errors.Is(err, ErrBusy) {
			if err == nil && tries > 0 {
				d.cfg.Log.Info("waited for another dockerfence to finish changing the table", "waited", time.Since(start).Round(time.Millisecond))
			}
			return unlock, err
		}
		if tries == 0 {
			d.cfg.Log.Debug("the table lock is busy; waiting", "err", err)
		}
		if time.Since(start) >= d.cfg.LockWait {
			return nil, fmt.Errorf("waited %v for the table lock: %w", d.cfg.LockWait, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped while waiting for the table lock: %w", err)
		case <-time.After(lockPoll):
		}
	}
}

// succeeded clears the backoff.
func (d *daemon) succeeded() {
	d.retry, d.retryAt, d.ready = 0, time.Time{}, true
}

// failed grows the backoff and schedules the retry.
func (d *daemon) failed(reason string, err error) {
	if d.retry == 0 {
		d.retry = d.cfg.RetryMin
	} else {
		d.retry = min(2*d.retry, d.cfg.RetryMax)
	}
	d.retryAt = time.Now().Add(d.retry)
	d.cfg.Log.Error("sync failed; the table stays as it was, retrying", "reason", reason, "err", err, "retry_in", d.retry)
}

// inventory returns what to fence: Docker's networks while its event
// stream is up, else (and when Docker cannot be reached) those it last
// reported, or the bridges if it never did. Docker answering with an error
// fails the sync, as the bridges not being listed does.
func (d *daemon) inventory(ctx context.Context) (*discover.Inventory, error) {
	if d.cfg.Docker == nil || !d.dockerUp {
		return d.disc.Known()
	}
	inv, err := d.disc.Discover(ctx)
	if err != nil {
		return nil, err
	}
	if inv.DockerErr != nil {
		if !discover.Unreachable(inv.DockerErr) {
			return nil, inv.DockerErr
		}
		// The cause: the error itself only names the host.
		d.cfg.Log.Warn("Docker unreachable while listing networks", "err", errors.Unwrap(inv.DockerErr))
	}
	return inv, nil
}

// watchKernel runs Kernel.Watch, forwarding changes to out. Each time the
// subscription is in place (at start, and again after the watch failed or
// overran) it asks for a full resync, so that no change in between is missed.
func (d *daemon) watchKernel(ctx context.Context, table string, out chan<- nft.Change, resync chan<- string) {
	why := "nftables monitor subscribed"
	ready := func() {
		select {
		case resync <- why:
		default: // a resync is already pending
		}
	}
	delay := d.cfg.RetryMin
	for {
		err := d.cfg.Kernel.Watch(ctx, table, out, ready)
		if ctx.Err() != nil {
			return
		}
		d.cfg.Log.Warn("nftables monitor stopped; subscribing again, then resyncing", "err", err)
		why = "nftables monitor restarted"
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		if !errors.Is(err, nft.ErrOverrun) {
			delay = min(2*delay, d.cfg.RetryMax)
		}
	}
}

// fileStamp identifies a file's version by its size, time and inode.
func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	return fmt.Sprintf("%d %d %v", fi.Size(), fi.ModTime().UnixNano(), inode(fi))
}

// watchFile signals out when the file's stamp is no longer last.
func watchFile(ctx context.Context, path, last string, every time.Duration, out chan<- struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s := fileStamp(path); s != last {
				last = s
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}
}

// inode returns a file's inode number, 0 where the system has none.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
