package dnslearn

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the learner's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	heldTotal  prometheus.Counter
	holdTime   prometheus.Histogram
	overBound  prometheus.Counter
	learned    prometheus.Counter
	expired    prometheus.Counter
	failures   prometheus.Counter
	unreadable *prometheus.CounterVec
	queries    prometheus.Counter
}

// NewMetrics returns the learner's metrics, registered with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		heldTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dockerfence_dns_answers_held_total",
			Help: "DNS answers (packets) the kernel held for the learner of names.",
		}),
		holdTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dockerfence_dns_hold_seconds",
			Help:    "How long a DNS answer was held: from the kernel's timestamp of the packet (else from when the learner read it) until its verdict, after the set update for an answer that taught addresses.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5},
		}),
		overBound: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dockerfence_dns_answers_over_bound_total",
			Help: "DNS answers let pass at the bound (settings), before the kernel had committed their addresses.",
		}),
		learned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dockerfence_dns_elements_learned_total",
			Help: "Addresses added to (or renewed in) the name sets, one per name list and address.",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dockerfence_dns_elements_expired_total",
			Help: "Learned addresses whose timeout ran out without a new answer renewing them.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dockerfence_dns_set_update_failures_total",
			Help: "Set updates the kernel refused; their answers passed without their addresses learned.",
		}),
		unreadable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dockerfence_dns_messages_not_learned_total",
			Help: "Held packets or DNS messages that taught nothing, by reason: packet (not a whole UDP datagram with a payload or TCP segment), checksum (a UDP or TCP checksum that does not add up: the receiver drops the packet), unsolicited (a UDP answer that matches no query waiting for it: address, port, DNS ID and question), hairpin (an answer routed back out of the interface it came in by: a container's own forgery), tcp-unknown (a TCP segment of a stream whose start the learner did not see), tcp-lost (a TCP segment of a stream the learner gave up: bytes it cannot place), malformed (not a DNS message), ignored (not an answer to learn from), not-a-query (a UDP datagram to port 53 that came by the rules of the queries but is no DNS query: it passes at once and is not counted among the answers held).",
		}, []string{"reason"}),
		queries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dockerfence_dns_queries_held_total",
			Help: "DNS queries over UDP the kernel held for the learner of names, which records them for their answers and lets them go on at once.",
		}),
	}
	reg.MustRegister(m.heldTotal, m.holdTime, m.overBound, m.learned, m.expired, m.failures, m.unreadable, m.queries)
	return m
}

func (m *Metrics) held() {
	if m != nil {
		m.heldTotal.Inc()
	}
}

func (m *Metrics) released(d time.Duration, over bool) {
	if m == nil {
		return
	}
	m.holdTime.Observe(d.Seconds())
	if over {
		m.overBound.Inc()
	}
}

func (m *Metrics) unreadableInc(reason string) {
	if m != nil {
		m.unreadable.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) failed() {
	if m != nil {
		m.failures.Inc()
	}
}

func (m *Metrics) learnedN(n int) {
	if m != nil {
		m.learned.Add(float64(n))
	}
}

func (m *Metrics) expiredN(n int) {
	if m != nil && n > 0 {
		m.expired.Add(float64(n))
	}
}

func (m *Metrics) queryInc() {
	if m != nil {
		m.queries.Inc()
	}
}
