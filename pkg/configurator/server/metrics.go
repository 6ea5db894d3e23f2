package server

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	replicas        *prometheus.GaugeVec
	behind          *prometheus.GaugeVec
	registrations   *prometheus.CounterVec
	broadcasts      *prometheus.CounterVec
	broadcastErrors *prometheus.CounterVec
	checkFailures   *prometheus.CounterVec
	deliverySeconds prometheus.Histogram
	refused         *prometheus.CounterVec
}

// RegisterMetrics registers the configurator's metrics with reg, for a
// registry other than a running server's (the generated metrics reference).
func RegisterMetrics(reg prometheus.Registerer) { newMetrics(reg) }

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_configurator_replicas", Help: "Registered replicas, by service and state (healthy, pruned).",
		}, []string{"service", "state"}),
		behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchyard_configurator_replicas_behind", Help: "Healthy replicas that have not yet applied the latest configuration meant for them, by service (the stragglers `kubectl switchyard config status` lists).",
		}, []string{"service"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_configurator_registrations_total", Help: "Registrations (first and repeated), by service.",
		}, []string{"service"}),
		broadcasts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_configurator_broadcasts_total", Help: "Configuration changes broadcast, by service and scope (service, pod).",
		}, []string{"service", "scope"}),
		broadcastErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_configurator_broadcast_errors_total", Help: "Broadcasts that did not reach every target, by service.",
		}, []string{"service"}),
		checkFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_configurator_health_check_failures_total", Help: "Failed health checks, by service.",
		}, []string{"service"}),
		deliverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchyard_configurator_delivery_seconds", Help: "From a change to a replica reporting it applied (seen at the next health check).",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_configurator_refused_total",
			Help: "Requests refused before they touched anything, by reason: unauthenticated (no or bad token), forbidden (SubjectAccessReview said no), identity (a registration not matching the token's pod), limit (too many services or replicas).",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.replicas, m.behind, m.registrations, m.broadcasts, m.broadcastErrors, m.checkFailures, m.deliverySeconds, m.refused)
	}
	return m
}
