package daemon

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dockerfence/dockerfence/denylog"
	"github.com/dockerfence/dockerfence/discover"
	"github.com/dockerfence/dockerfence/docker"
	"github.com/dockerfence/dockerfence/fence"
	"github.com/dockerfence/dockerfence/nft"
	"github.com/dockerfence/dockerfence/policy"
	"github.com/dockerfence/dockerfence/status"
	"github.com/prometheus/client_golang/prometheus"
)

// Reader reads the kernel's table; nft.Kernel is one.
type Reader interface {
	Read(table string) (*nft.State, error)
}

// Observer records what the daemon does, for the status endpoint, the
// metrics and the attribution of denials. Give its OnSync and OnDocker to
// Config. Its methods are safe for concurrent use.
type Observer struct {
	// RunDir, if set, is where apply records its last apply; Status shows
	// that record when it is newer than the daemon's own last apply.
	RunDir string
	// Names, if set, gives Status the names lists with what was learned
	// for them (the learner's, checked against the kernel's state st).
	Names func(t *fence.Result, st *nft.State, s *status.Status) []status.NameListStatus

	kernel  Reader
	metrics *Metrics
	since   time.Time

	mu  sync.Mutex
	pol *policy.Policy
	// table is the table last applied (or found up to date): denials are
	// attributed with it. desired is the table the last sync built, applied
	// or not: status compares the kernel with it.
	table, desired *fence.Result
	source         string
	// containers are those of the sync that built desired, with their
	// published ports.
	containers []discover.Container
	// kept is set while the daemon keeps the kernel's table without
	// knowing what it fences (Docker has not answered yet).
	kept      bool
	lastSync  *status.Apply
	lastApply *status.Apply
	dockerUp  bool
	// networks are the metric label values of the fenced networks.
	networks map[string]bool

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
	if r.Policy != nil {
		o.pol = r.Policy
	}
	o.kept = r.Kept
	if r.Table != nil {
		o.desired, o.source, o.containers = r.Table, r.Source, r.Containers
		if r.Err == nil {
			o.table = r.Table
		}
	}
	var gone []string
	if r.Table != nil && r.Err == nil {
		now := map[string]bool{}
		for _, f := range r.Table.Fenced {
			now[networkLabel(f.Network.Name, f.Network.Bridge)] = true
		}
		for n := range o.networks {
			if !now[n] {
				gone = append(gone, n)
			}
		}
		o.networks = now
	}
	o.mu.Unlock()
	if o.metrics != nil {
		o.metrics.sync(r)
		for _, n := range gone {
			o.metrics.denialEvents.DeletePartialMatch(prometheus.Labels{"network": n})
		}
	}
}

// networkLabel is a network's name in metric labels: the bridge's name for
// a network without a name.
func networkLabel(name, bridge string) string {
	if name == "" {
		return bridge
	}
	return name
}

// ruleLabel is a rule's name in metric labels: anti-spoofing exists once
// per hook, so it carries the hook.
func ruleLabel(rule, hook string) string {
	if rule == "anti-spoofing" {
		return rule + " " + hook
	}
	return rule
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
func (o *Observer) Table() *fence.Result {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.table
}

// Denial counts one denial event.
func (o *Observer) Denial(e denylog.Event) {
	o.denials.Add(1)
	if o.metrics != nil {
		o.metrics.denialEvents.WithLabelValues(networkLabel(e.Network, e.Bridge), ruleLabel(e.Rule, e.Hook)).Inc()
	}
}

// Overrun counts a loss of denial events: the kernel dropped some because
// the reader fell behind (how many is not known).
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
	pol, t, source, kept, ctrs := o.pol, o.desired, o.source, o.kept, o.containers
	d := &status.Daemon{PID: os.Getpid(), Since: o.since, DockerUp: o.dockerUp, LastSync: o.lastSync, Denials: o.denials.Load(), Lost: o.lost.Load()}
	last := o.lastApply
	o.mu.Unlock()
	if o.RunDir != "" && pol != nil {
		if rec, err := status.LoadLastApply(o.RunDir, pol.Settings.Table); err == nil && rec != nil && (last == nil || rec.Time.After(last.Time)) {
			last = rec
		}
	}
	if pol == nil || t == nil && !kept {
		return status.Status{}, ErrNotSynced
	}
	var s status.Status
	if t == nil || kept {
		// The table is kept as it was; what it fences is not known until
		// Docker answers.
		st, err := o.kernel.Read(pol.Settings.Table)
		if err != nil {
			return status.Status{}, err
		}
		s = status.Status{Policy: pol.Source, Mode: string(pol.Settings.Mode), Source: status.SourceKept,
			Networks: []status.NetworkStatus{}, Unfenced: []status.NetworkStatus{}, NotFenceable: []status.NotFenceableStatus{}, Published: []status.PublishedStatus{},
			Table: status.TableStatus{Name: pol.Settings.Table, Priority: pol.Settings.Priority}}
		s.Table.SetKernel(st)
		s.SetState()
	} else {
		// Every set's elements too, so that the drift shows an element
		// deleted behind the daemon's back.
		st, err := readAll(o.kernel, t.Name)
		if err != nil {
			return status.Status{}, err
		}
		s = status.Make(pol, t, st, source)
		s.SetPublished(t, PublishedPorts(ctrs))
		if o.Names != nil {
			s.Names = o.Names(t, st, &s)
		}
	}
	s.LastApply, s.Daemon = last, d
	return s, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// PublishedPorts gives status the published ports of the containers, and
// their networks.
func PublishedPorts(ctrs []discover.Container) []status.ContainerPorts {
	out := make([]status.ContainerPorts, 0, len(ctrs))
	for _, c := range ctrs {
		cp := status.ContainerPorts{ID: c.ID, Name: c.Name, Ports: c.Ports}
		for _, e := range c.Endpoints {
			cp.Networks = append(cp.Networks, status.NetworkRef{ID: e.NetworkID, Name: e.Network})
		}
		out = append(out, cp)
	}
	return out
}

// readAll reads table with every set's elements where k can (nft.Kernel's
// ReadAll), else as k.Read does.
func readAll(k Reader, table string) (*nft.State, error) {
	if ra, ok := k.(interface {
		ReadAll(string) (*nft.State, error)
	}); ok {
		return ra.ReadAll(table)
	}
	return k.Read(table)
}
