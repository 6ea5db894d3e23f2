package calcset

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// Metrics live in the scheduler's registry, as upstream plugins' do. They
// are registered once per process: the plugin is built once per profile.
var (
	registerOnce sync.Once

	setsWaiting = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Subsystem: "switchyard_calcset", Name: "sets_waiting",
		Help: "Calculation sets with members reserved and waiting in Permit for the rest, by profile.", StabilityLevel: metrics.ALPHA,
	}, []string{"profile"})
	setsScheduled = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem: "switchyard_calcset", Name: "sets_scheduled_total",
		Help: "Calculation sets whose members were all released to bind, by profile.", StabilityLevel: metrics.ALPHA,
	}, []string{"profile"})
	timeToComplete = metrics.NewHistogramVec(&metrics.HistogramOpts{
		Subsystem: "switchyard_calcset", Name: "time_to_complete_seconds",
		Help:    "Time from a set's first reserved member to the release of all of them, by profile.",
		Buckets: metrics.ExponentialBuckets(0.01, 2, 16), StabilityLevel: metrics.ALPHA,
	}, []string{"profile"})
	setsRejected = metrics.NewCounterVec(&metrics.CounterOpts{
		Subsystem: "switchyard_calcset", Name: "sets_rejected_total",
		Help: "Calculation sets whose waiting members were all rejected, by profile and reason (timeout: not all placed within the window; member_lost: a reserved member was unreserved; misfit: the set can never fit).", StabilityLevel: metrics.ALPHA,
	}, []string{"profile", "reason"})
)

func registerMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(Metrics()...)
	})
}

// Reasons of switchyard_calcset_sets_rejected_total.
const (
	rejectedTimeout    = "timeout"
	rejectedMemberLost = "member_lost"
	rejectedMisfit     = "misfit"
)

// Metrics are the plugin's metrics, for a registry other than the
// scheduler's (the generated metrics reference).
func Metrics() []metrics.Registerable {
	return []metrics.Registerable{setsWaiting, setsScheduled, timeToComplete, setsRejected}
}

// InitProfileMetrics makes a profile's series exist at zero from the
// start, so that dashboards show the profile and alerts on increase()
// count its first rejection. The plugin calls it for its profile.
func InitProfileMetrics(profile string) {
	setsWaiting.WithLabelValues(profile)
	setsScheduled.WithLabelValues(profile)
	timeToComplete.WithLabelValues(profile)
	for _, reason := range []string{rejectedTimeout, rejectedMemberLost, rejectedMisfit} {
		setsRejected.WithLabelValues(profile, reason)
	}
}
