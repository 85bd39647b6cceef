package daemon

import (
	"errors"
	"net/http"
	"strings"

	"github.com/dockerfence/dockerfence/status"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the daemon's Prometheus metrics. Kernel counters (denied
// packets, table presence) are read at each scrape, so they are exact and
// not subject to the log rate limit.
type Metrics struct {
	// Registry holds the metrics, plus Go and process collectors.
	Registry *prometheus.Registry

	syncs        *prometheus.CounterVec
	failures     prometheus.Counter
	duration     prometheus.Histogram
	heals        *prometheus.CounterVec
	dockerUp     prometheus.Gauge
	denialEvents *prometheus.CounterVec
	lostEvents   prometheus.Counter
}

// NewMetrics returns the daemon's metrics in a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockerfence_applies_total",
			Help: "Syncs of the table by trigger and result: applied (the kernel was changed), unchanged or failed.",
		}, []string{"trigger", "result"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dockerfence_apply_failures_total",
			Help: "Syncs that failed; the table stayed as it was and the sync is retried.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dockerfence_apply_duration_seconds",
			Help:    "Time of one sync: list the networks, build the table, read the kernel and apply the difference.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		heals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockerfence_heals_total",
			Help: "Syncs that repaired the table after someone else changed it, by cause: kernel (a change seen on the nftables monitor), monitor (the resync after the monitor was (re)subscribed), resync (the periodic resync).",
		}, []string{"cause"}),
		dockerUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dockerfence_docker_up",
			Help: "1 while Docker's event stream is connected, else 0.",
		}),
		denialEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockerfence_denial_events_total",
			Help: "Denial events read from NFLOG, by network and rule. The log rules are rate limited; dockerfence_denied_packets_total counts every packet.",
		}, []string{"network", "rule"}),
		lostEvents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dockerfence_denial_events_lost_total",
			Help: "Times the kernel dropped denial events because the reader fell behind.",
		}),
	}
	m.Registry.MustRegister(m.syncs, m.failures, m.duration, m.heals, m.dockerUp, m.denialEvents, m.lostEvents,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// sync records one sync.
func (m *Metrics) sync(r Result) {
	result := "unchanged"
	switch {
	case r.Err != nil:
		result = "failed"
		m.failures.Inc()
	case r.Changed:
		result = "applied"
	}
	m.syncs.WithLabelValues(r.Trigger, result).Inc()
	m.duration.Observe(r.Took.Seconds())
	if r.Changed && r.Err == nil {
		switch r.Trigger {
		case TriggerKernel, TriggerMonitor, TriggerResync:
			m.heals.WithLabelValues(r.Trigger).Inc()
		}
	}
}

// observe registers the metrics read from the kernel at each scrape.
func (m *Metrics) observe(o *Observer) {
	m.Registry.MustRegister(kernelCollector{o})
}

var (
	tablePresentDesc = prometheus.NewDesc("dockerfence_table_present",
		"1 if dockerfence's table is in the kernel, else 0.", nil, nil)
	tableInSyncDesc = prometheus.NewDesc("dockerfence_table_in_sync",
		"1 if the kernel's table is what the policy wants now, else 0.", nil, nil)
	deniedPacketsDesc = prometheus.NewDesc("dockerfence_denied_packets_total",
		"Packets denied (verdict deny) or that would have been denied in audit mode (verdict would_deny), by network and rule, from the kernel's counters.",
		[]string{"network", "bridge", "rule", "verdict"}, nil)
	deniedBytesDesc = prometheus.NewDesc("dockerfence_denied_bytes_total",
		"Bytes of the packets in dockerfence_denied_packets_total.",
		[]string{"network", "bridge", "rule", "verdict"}, nil)
	rulePacketsDesc = prometheus.NewDesc("dockerfence_rule_packets_total",
		"Packets matched by each rule of each fenced network, allow rules included, from the kernel's counters.",
		[]string{"network", "bridge", "rule", "verdict"}, nil)
	containerPacketsDesc = prometheus.NewDesc("dockerfence_container_rule_packets_total",
		"Packets matched by each rule of a container's own layers (its container section, its label), from the kernel's counters.",
		[]string{"container", "rule", "verdict"}, nil)
	labelInvalidDesc = prometheus.NewDesc("dockerfence_container_label_invalid",
		"1 for each running container whose label dockerfence.egress does not parse: it is cut off (all its egress denied) until the label is fixed.",
		[]string{"container", "error"}, nil)
	heldPacketsDesc = prometheus.NewDesc("dockerfence_held_packets_total",
		"Packets dropped by the container layer because no known container held their source address yet, or their bridge port's identity check was not in yet, by network.",
		[]string{"network", "bridge"}, nil)
	scrapeErrorDesc = prometheus.NewDesc("dockerfence_kernel_read_error",
		"1 if reading the table from the kernel for this scrape failed, else 0.", nil, nil)
)

// kernelCollector reads the table's counters at each scrape.
type kernelCollector struct{ o *Observer }

// Describe sends the descriptions of the metrics read from the kernel.
func (c kernelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tablePresentDesc, tableInSyncDesc, deniedPacketsDesc, deniedBytesDesc, rulePacketsDesc, containerPacketsDesc, labelInvalidDesc, heldPacketsDesc, scrapeErrorDesc} {
		ch <- d
	}
}

// Collect reads the table and sends its metrics.
func (c kernelCollector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.o.Status()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(scrapeErrorDesc, prometheus.GaugeValue, b2f(!errors.Is(err, ErrNotSynced)))
		return
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrorDesc, prometheus.GaugeValue, 0)
	ch <- prometheus.MustNewConstMetric(tablePresentDesc, prometheus.GaugeValue, b2f(s.Table.Present))
	ch <- prometheus.MustNewConstMetric(tableInSyncDesc, prometheus.GaugeValue, b2f(s.Table.InSync))
	rules := func(network, bridge string, rs []status.RuleStatus) {
		for _, r := range rs {
			verdict := r.Verdict
			if verdict == "would deny" {
				verdict = "would_deny"
			}
			labels := []string{network, bridge, ruleLabel(r.ID, r.Hook), verdict}
			ch <- prometheus.MustNewConstMetric(rulePacketsDesc, prometheus.CounterValue, float64(r.Packets), labels...)
			if verdict != "allow" {
				ch <- prometheus.MustNewConstMetric(deniedPacketsDesc, prometheus.CounterValue, float64(r.Packets), labels...)
				ch <- prometheus.MustNewConstMetric(deniedBytesDesc, prometheus.CounterValue, float64(r.Bytes), labels...)
			}
		}
	}
	for _, n := range s.Networks {
		rules(networkLabel(n.Name, n.Bridge), n.Bridge, n.Rules)
		if n.Held > 0 {
			ch <- prometheus.MustNewConstMetric(heldPacketsDesc, prometheus.CounterValue, float64(n.Held), networkLabel(n.Name, n.Bridge), n.Bridge)
		}
	}
	for _, c := range s.Containers {
		if c.LabelError != "" {
			ch <- prometheus.MustNewConstMetric(labelInvalidDesc, prometheus.GaugeValue, 1, c.Name, c.LabelError)
		}
		for _, r := range c.Rules {
			verdict := strings.ReplaceAll(r.Verdict, " ", "_")
			ch <- prometheus.MustNewConstMetric(containerPacketsDesc, prometheus.CounterValue, float64(r.Packets), c.Name, r.ID, verdict)
		}
	}
	if ca := s.CatchAll; ca != nil {
		rules(catchAllLabel, catchAllLabel, ca.Rules)
	}
}

// catchAllLabel is the network and bridge label of the catch-all's rules,
// which judge every docker0 and br-* bridge the table does not know: no
// Docker network or bridge can be named "*".
const catchAllLabel = "*"

// promHandler serves m's registry.
func promHandler(m *Metrics) http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return promHandler(m) }
