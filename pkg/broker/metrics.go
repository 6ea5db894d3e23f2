package broker

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count what the broker did, for every implementation alike.
type Metrics struct {
	Published    *prometheus.CounterVec
	Confirmed    *prometheus.CounterVec
	Returned     *prometheus.CounterVec
	Nacked       *prometheus.CounterVec
	Redelivered  *prometheus.CounterVec
	DeadLettered *prometheus.CounterVec
	Retried      *prometheus.CounterVec
	Reconnects   prometheus.Counter
	// Connected is 1 while the connection to the broker is up, 0 while it
	// is being re-established.
	Connected prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg (none when
// reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_broker_" + name, Help: help}, labels)
	}
	m := &Metrics{
		Published:    counter("published_total", "Messages sent to the broker, by exchange.", "exchange"),
		Confirmed:    counter("confirmed_total", "Messages the broker confirmed, by exchange.", "exchange"),
		Returned:     counter("returned_total", "Messages returned as unroutable, by exchange.", "exchange"),
		Nacked:       counter("nacked_total", "Messages the broker refused or did not confirm before the connection dropped, by exchange.", "exchange"),
		Redelivered:  counter("redelivered_total", "Deliveries the broker marked as redelivered, by queue.", "queue"),
		DeadLettered: counter("dead_lettered_total", "Deliveries rejected to the dead-letter queue, by queue.", "queue"),
		Retried:      counter("retried_total", "Deliveries sent to delayed retry, by queue.", "queue"),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_broker_reconnects_total", Help: "Connections re-established after the broker connection dropped.",
		}),
		Connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_broker_connected", Help: "1 while the connection to RabbitMQ is up, 0 while it is down and being re-established.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Published, m.Confirmed, m.Returned, m.Nacked, m.Redelivered, m.DeadLettered, m.Retried, m.Reconnects, m.Connected)
	}
	return m
}
