// Command metricsdoc writes docs/metrics.md, the reference of every metric
// Switchyard's components register. It builds each component's metrics
// with the constructors the component itself calls, so the reference
// cannot drift from the code: hack/update-codegen.sh writes it, `make
// verify` fails when it is stale, and the integration scrape test fails
// when a running component exposes a metric it does not list.
//
//	go run ./hack/metricsdoc > docs/metrics.md
package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	k8smetrics "k8s.io/component-base/metrics"

	"github.com/switchyard-sched/switchyard/pkg/agent"
	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/configurator/server"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/admission"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/decisions"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/dispatch"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/reconcile"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/routing"
	"github.com/switchyard-sched/switchyard/pkg/scheduler/plugins/calcset"
	"github.com/switchyard-sched/switchyard/pkg/scheduler/plugins/usageaware"
	"github.com/switchyard-sched/switchyard/pkg/shortjob"
)

// Metric is one metric family as the reference shows it.
type Metric struct {
	Name, Type, Help string
	Labels           []string
}

// Component is one binary and the metrics its /metrics serves.
type Component struct {
	Name, Endpoint string
	Metrics        []Metric
}

// components lists every component with the constructors of its metrics.
func components() ([]Component, error) {
	type spec struct {
		name, endpoint string
		register       func(prometheus.Registerer)
	}
	specs := []spec{
		{"switchyard-coordinator", "`:8443/metrics` (HTTPS, delegated authentication and authorization, the visibility API's port)", func(r prometheus.Registerer) {
			admission.NewMetrics(r)
			routing.NewMetrics(r)
			dispatch.NewMetrics(r)
			decisions.NewMetrics(r)
			broker.NewMetrics(r)
			reconcile.NewWorkqueueMetrics(r)
		}},
		{"switchyard-shortjob", "`:8443/metrics` (HTTPS, delegated authentication and authorization)", func(r prometheus.Registerer) {
			shortjob.NewMetrics(r)
			broker.NewMetrics(r)
		}},
		{"switchyard-agent", "`:8444/metrics` (HTTPS, delegated authentication and authorization)", func(r prometheus.Registerer) { agent.NewMetrics(r) }},
		{"switchyard-configurator", "`:8090/metrics` (HTTPS, delegated authentication and authorization)", func(r prometheus.Registerer) {
			server.RegisterMetrics(r)
			broker.NewMetrics(r)
		}},
	}
	var out []Component
	for _, s := range specs {
		rec := &recorder{}
		s.register(rec)
		ms, err := rec.metrics()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		out = append(out, Component{Name: s.name, Endpoint: s.endpoint, Metrics: ms})
	}
	scheduler, err := schedulerMetrics()
	if err != nil {
		return nil, err
	}
	out = append(out, Component{Name: "switchyard-scheduler",
		Endpoint: "`:10259/metrics` (HTTPS, delegated authentication and authorization; also every upstream `scheduler_*` metric)",
		Metrics:  scheduler})
	return out, nil
}

// recorder is a Registerer that keeps what is registered.
type recorder struct{ collectors []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
}

func (r *recorder) Unregister(prometheus.Collector) bool { return false }

// descPattern reads client_golang's Desc.String(); a change of that format
// fails this command (and the test) rather than writing a wrong reference.
var descPattern = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), help: ("(?:[^"\\]|\\.)*"), unit: "(?:[^"\\]|\\.)*", constLabels: \{[^}]*\}, variableLabels: \{([^}]*)\}\}$`)

func (r *recorder) metrics() ([]Metric, error) {
	var out []Metric
	for _, c := range r.collectors {
		kind, err := typeOf(c)
		if err != nil {
			return nil, err
		}
		descs := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(descs); close(descs) }()
		for d := range descs {
			m := descPattern.FindStringSubmatch(d.String())
			if m == nil {
				return nil, fmt.Errorf("cannot read %s", d.String())
			}
			name, err := strconv.Unquote(m[1])
			if err != nil {
				return nil, err
			}
			help, err := strconv.Unquote(m[2])
			if err != nil {
				return nil, err
			}
			var labels []string
			if m[3] != "" {
				labels = strings.Split(m[3], ",")
			}
			out = append(out, Metric{Name: name, Type: kind, Help: help, Labels: labels})
		}
	}
	return out, nil
}

// typeOf is a collector's metric type. Gauges are tested before counters:
// a Gauge has every method of a Counter.
func typeOf(c prometheus.Collector) (string, error) {
	switch c.(type) {
	case *prometheus.CounterVec:
		return "counter", nil
	case *prometheus.GaugeVec:
		return "gauge", nil
	case *prometheus.HistogramVec:
		return "histogram", nil
	case prometheus.Gauge:
		return "gauge", nil
	case prometheus.Histogram:
		return "histogram", nil
	case prometheus.Counter:
		return "counter", nil
	}
	return "", fmt.Errorf("unknown collector type %T", c)
}

// schedulerMetrics are the scheduler plugins' metrics, which live in the
// scheduler's (component-base) registry: gathered once every series of a
// profile exists.
func schedulerMetrics() ([]Metric, error) {
	reg := k8smetrics.NewKubeRegistry()
	reg.MustRegister(calcset.Metrics()...)
	calcset.InitProfileMetrics("example")
	reg.MustRegister(usageaware.Metrics()...)
	usageaware.InitMetrics()
	families, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	var out []Metric
	for _, f := range families {
		var labels []string
		if len(f.GetMetric()) > 0 {
			for _, lp := range f.GetMetric()[0].GetLabel() {
				labels = append(labels, lp.GetName())
			}
		}
		out = append(out, Metric{Name: f.GetName(), Type: strings.ToLower(dto.MetricType_name[int32(f.GetType())]),
			Help: strings.TrimPrefix(f.GetHelp(), "[ALPHA] "), Labels: labels})
	}
	return out, nil
}

// markdown renders the reference.
func markdown(cs []Component) []byte {
	var b bytes.Buffer
	b.WriteString("# Metrics reference\n\n")
	b.WriteString("Generated by `go run ./hack/metricsdoc` from the components' own metric definitions (`hack/update-codegen.sh` runs it; do not edit). ")
	b.WriteString("`make verify` fails when it is stale, and the integration scrape test fails when a running component serves a `switchyard_` metric this page does not list. ")
	b.WriteString("Alerts and dashboard: `manifests/monitoring`.\n")
	for _, c := range cs {
		sort.Slice(c.Metrics, func(i, j int) bool { return c.Metrics[i].Name < c.Metrics[j].Name })
		fmt.Fprintf(&b, "\n## %s\n\nServed at %s.\n\n| metric | type | labels | meaning |\n|---|---|---|---|\n", c.Name, c.Endpoint)
		for _, m := range c.Metrics {
			labels := "—"
			if len(m.Labels) > 0 {
				labels = "`" + strings.Join(m.Labels, "`, `") + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m.Name, m.Type, labels, strings.ReplaceAll(m.Help, "|", "\\|"))
		}
	}
	return b.Bytes()
}

func main() {
	cs, err := components()
	if err != nil {
		fmt.Fprintln(os.Stderr, "metricsdoc:", err)
		os.Exit(1)
	}
	os.Stdout.Write(markdown(cs))
}
