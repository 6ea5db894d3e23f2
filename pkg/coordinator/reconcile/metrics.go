package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// WorkqueueMetrics exports client-go's workqueue metrics (depth, adds,
// wait and work time, retries) for every Loop, labelled by the loop's
// name, into a Prometheus registry. client-go takes one provider per
// process (workqueue.SetProvider), so the coordinator binary sets it once
// for its registry.
type WorkqueueMetrics struct {
	depth, unfinished, longest *prometheus.GaugeVec
	adds, retries              *prometheus.CounterVec
	latency, work              *prometheus.HistogramVec
}

var _ workqueue.MetricsProvider = &WorkqueueMetrics{}

// NewWorkqueueMetrics creates the metrics and registers them with reg.
func NewWorkqueueMetrics(reg prometheus.Registerer) *WorkqueueMetrics {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "workqueue_" + name, Help: help}, []string{"name"})
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "workqueue_" + name, Help: help}, []string{"name"})
	}
	histogram := func(name, help string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "workqueue_" + name, Help: help,
			Buckets: prometheus.ExponentialBuckets(1e-6, 10, 9)}, []string{"name"})
	}
	m := &WorkqueueMetrics{
		depth:      gauge("depth", "Keys waiting in the loop's queue, by loop."),
		unfinished: gauge("unfinished_work_seconds", "Seconds of work in progress not yet finished, summed over workers, by loop; growth means a stuck sync."),
		longest:    gauge("longest_running_processor_seconds", "Seconds the longest-running sync has run, by loop."),
		adds:       counter("adds_total", "Keys added to the loop's queue, by loop."),
		retries:    counter("retries_total", "Keys requeued with backoff after a failed sync, by loop."),
		latency:    histogram("queue_duration_seconds", "Seconds a key waited in the queue before a worker took it, by loop."),
		work:       histogram("work_duration_seconds", "Seconds one sync took, by loop."),
	}
	if reg != nil {
		reg.MustRegister(m.depth, m.unfinished, m.longest, m.adds, m.retries, m.latency, m.work)
	}
	return m
}

// NewDepthMetric is the depth of the loop named name.
func (m *WorkqueueMetrics) NewDepthMetric(name string) workqueue.GaugeMetric {
	return m.depth.WithLabelValues(name)
}

// NewAddsMetric counts the loop's adds.
func (m *WorkqueueMetrics) NewAddsMetric(name string) workqueue.CounterMetric {
	return m.adds.WithLabelValues(name)
}

// NewLatencyMetric observes the loop's queue waits.
func (m *WorkqueueMetrics) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return m.latency.WithLabelValues(name)
}

// NewWorkDurationMetric observes the loop's syncs.
func (m *WorkqueueMetrics) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return m.work.WithLabelValues(name)
}

// NewUnfinishedWorkSecondsMetric is the loop's unfinished work.
func (m *WorkqueueMetrics) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return m.unfinished.WithLabelValues(name)
}

// NewLongestRunningProcessorSecondsMetric is the loop's longest sync.
func (m *WorkqueueMetrics) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return m.longest.WithLabelValues(name)
}

// NewRetriesMetric counts the loop's retries.
func (m *WorkqueueMetrics) NewRetriesMetric(name string) workqueue.CounterMetric {
	return m.retries.WithLabelValues(name)
}
