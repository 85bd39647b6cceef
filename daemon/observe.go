package daemon

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
)

// Reader reads the kernel's table; nft.Kernel is one.
type Reader interface {
	Read(table string) (*nft.State, error)
}

// Observer records what the daemon does, for the status endpoint, the
// metrics and the attribution of denials. Give its OnSync and OnDocker to
// Config. Its methods are safe for concurrent use.
type Observer struct {
	kernel  Reader
	metrics *Metrics
	since   time.Time

	mu        sync.Mutex
	pol       *policy.Policy
	table     *nft.Table
	source    string
	lastSync  *status.Apply
	lastApply *status.Apply
	dockerUp  bool

	denials, lost atomic.Uint64
}

// NewObserver returns an Observer that reads counters from k and, if m is
// not nil, keeps m up to date.
func NewObserver(k Reader, m *Metrics) *Observer {
	o := &Observer{kernel: k, metrics: m, since: time.Now()}
	if m != nil {
		m.observe(o)
	}
	return o
}

// ApplyOf describes a sync's result as status does.
func ApplyOf(r Result) status.Apply {
	a := status.Apply{Time: r.Time, By: "run", Trigger: r.Trigger, Reason: r.Reason, Result: "up to date", TookMS: float64(r.Took.Microseconds()) / 1000}
	if r.Policy != nil {
		a.Table = r.Policy.Settings.Table
	}
	switch {
	case r.Err != nil:
		a.Result, a.Error = "failed", r.Err.Error()
	case r.Changed:
		a.Result = "applied"
	}
	return a
}

// OnSync records a sync's result.
func (o *Observer) OnSync(r Result) {
	a := ApplyOf(r)
	o.mu.Lock()
	o.lastSync = &a
	if r.Changed || r.Err != nil {
		o.lastApply = &a
	}
	if r.Table != nil && r.Err == nil {
		o.pol, o.table, o.source = r.Policy, r.Table, r.Source
	}
	o.mu.Unlock()
	if o.metrics != nil {
		o.metrics.sync(r)
	}
}

// OnDocker records the state of Docker's event stream.
func (o *Observer) OnDocker(u docker.Update) {
	o.mu.Lock()
	switch u.Signal {
	case docker.Connected:
		o.dockerUp = true
	case docker.Lost:
		o.dockerUp = false
	}
	up := o.dockerUp
	o.mu.Unlock()
	if o.metrics != nil {
		o.metrics.dockerUp.Set(b2f(up))
	}
}

// Table returns the table the daemon last applied (or found up to date),
// nil before the first successful sync.
func (o *Observer) Table() *nft.Table {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.table
}

// Denial counts one denial event.
func (o *Observer) Denial(e denylog.Event) {
	o.denials.Add(1)
	if o.metrics != nil {
		o.metrics.denialEvents.WithLabelValues(e.Network, e.Rule).Inc()
	}
}

// Overrun counts a loss of denial events (the kernel dropped them).
func (o *Observer) Overrun() {
	o.lost.Add(1)
	if o.metrics != nil {
		o.metrics.lostEvents.Inc()
	}
}

// ErrNotSynced is returned by Status before the daemon's first good sync.
var ErrNotSynced = errors.New("the daemon has not applied the policy yet; see its log")

// Status reads the kernel's counters and returns the daemon's status.
func (o *Observer) Status() (status.Status, error) {
	o.mu.Lock()
	pol, t, source := o.pol, o.table, o.source
	d := &status.Daemon{PID: os.Getpid(), Since: o.since, DockerUp: o.dockerUp, LastSync: o.lastSync, Denials: o.denials.Load(), Lost: o.lost.Load()}
	last := o.lastApply
	o.mu.Unlock()
	if t == nil {
		return status.Status{}, ErrNotSynced
	}
	st, err := o.kernel.Read(t.Name)
	if err != nil {
		return status.Status{}, err
	}
	s := status.Make(pol, t, st, source)
	s.LastApply, s.Daemon = last, d
	return s, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
