package agent

import "github.com/prometheus/client_golang/prometheus/testutil"

func counter(m *Metrics, reason string) float64 {
	return testutil.ToFloat64(m.Errors.WithLabelValues(reason))
}
