package usageaware

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Metrics live in the scheduler's registry, registered once per process:
// the plugin is built once per profile.
var (
	registerOnce sync.Once

	reportsRejected = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem: "switchyard_usageaware", Name: "reports_rejected_total",
		Help: "Node usage reports UsageAware ignores (the node scores as if it had none), counted once per new report, by reason (malformed: the annotation does not decode; future: dated more than the allowed clock skew ahead).", StabilityLevel: metrics.ALPHA,
	}, []string{"reason"})
)

// Reasons of switchyard_usageaware_reports_rejected_total.
const (
	rejectedMalformed = "malformed"
	rejectedFuture    = "future"
)

func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(Metrics()...)
		InitMetrics()
	})
}

// InitMetrics makes every series exist at zero from the start, so that an
// alert on increase() counts the first rejection.
func InitMetrics() {
	for _, reason := range []string{rejectedMalformed, rejectedFuture} {
		reportsRejected.WithLabelValues(reason)
	}
}

// Metrics are the plugin's metrics, for a registry other than the
// scheduler's (the generated metrics reference).
func Metrics() []metrics.Registerable {
	return []metrics.Registerable{reportsRejected}
}
