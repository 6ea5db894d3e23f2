package admission

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the admission controller's Prometheus metrics.
type Metrics struct {
	Pending          *prometheus.GaugeVec
	Admitted         *prometheus.GaugeVec
	Scheduled        *prometheus.GaugeVec
	Stranded         *prometheus.GaugeVec
	Overdue          *prometheus.GaugeVec
	AdmittedTimeouts *prometheus.CounterVec
	CycleSeconds     prometheus.Histogram
	Admissions       *prometheus.CounterVec
	WaitSeconds      *prometheus.HistogramVec
	AdmissionErrors  *prometheus.CounterVec
	PatchSeconds     prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with reg. Each
// controller gets its own registry, so that a restarted controller in the
// same process (as in tests) does not collide with the old one.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_queue_pending_pods", Help: "Pods waiting for admission (gated), by queue.",
		}, []string{"queue"}),
		Admitted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_queue_admitted_pods", Help: "Pods admitted and not yet bound to a node, by queue.",
		}, []string{"queue"}),
		Scheduled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_queue_scheduled_pods", Help: "Pods bound to a node and not terminated, by queue.",
		}, []string{"queue"}),
		Stranded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_queue_stranded_pods", Help: "Pods that carry a schedulerName their queue no longer gives (the Queue was edited after they were created); they are never admitted. By queue.",
		}, []string{"queue"}),
		Overdue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_queue_overdue_pods", Help: "Pods admitted longer than their queue's admittedTimeoutSeconds ago and still not bound; not counted against maxAdmitted. By queue.",
		}, []string{"queue"}),
		AdmittedTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_queue_admitted_timeouts_total", Help: "Admitted pods that stayed unbound past their queue's admittedTimeoutSeconds, by queue.",
		}, []string{"queue"}),
		CycleSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_admission_cycle_seconds",
			Help:    "Time one admission decision takes, from the queue state to the gate removals it starts.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 12),
		}),
		Admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_queue_admissions_total", Help: "Pods admitted (scheduling gate removed), by queue.",
		}, []string{"queue"}),
		WaitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_queue_wait_seconds",
			Help:    "Time from pod creation to admission, by queue.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 18),
		}, []string{"queue"}),
		AdmissionErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_queue_admission_errors_total", Help: "Failed attempts to remove the admission gate, by queue and reason (stale: the pod changed under the removal; api: the API server did not answer).",
		}, []string{"queue", "reason"}),
		PatchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchyard_admission_latency_seconds",
			Help:    "Time from the admission decision to the API server accepting the gate removal.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	reg.MustRegister(m.Pending, m.Admitted, m.Scheduled, m.Stranded, m.Overdue, m.AdmittedTimeouts, m.CycleSeconds, m.Admissions, m.WaitSeconds, m.AdmissionErrors, m.PatchSeconds)
	return m
}

// Reasons of switchyard_queue_admission_errors_total.
const (
	// admissionErrorStale: the pod changed under the gate removal (a
	// conflict or an invalid patch); it is looked at again.
	admissionErrorStale = "stale"
	// admissionErrorAPI: the API server did not answer the removal.
	admissionErrorAPI = "api"
)

// initQueueCounters makes a queue's counters exist at zero from the moment
// the queue is seen, so that increase() and rate() in alerts see the first
// admission or error rather than a series that starts at one.
func (m *Metrics) initQueueCounters(queue string) {
	m.Admissions.WithLabelValues(queue)
	m.AdmittedTimeouts.WithLabelValues(queue)
	for _, reason := range []string{admissionErrorStale, admissionErrorAPI} {
		m.AdmissionErrors.WithLabelValues(queue, reason)
	}
}
