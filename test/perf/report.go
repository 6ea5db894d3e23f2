package main

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Report is one `make bench` run.
type Report struct {
	Started   time.Time `json:"started"`
	Host      string    `json:"host"`
	Cores     int       `json:"cores"`
	GoVersion string    `json:"goVersion"`
	Pods      int       `json:"pods"`
	Rounds    int       `json:"rounds"`
	Results   []Result  `json:"results"`
}

// Run is one variant of one workload, once.
type Run struct {
	// ThroughputAvg is pods bound per second from the first create to the last bind.
	ThroughputAvg float64 `json:"throughputAvg"`
	// ThroughputP50/P90/P99 are percentiles of the pods bound in each full second.
	ThroughputP50 float64 `json:"throughputP50"`
	ThroughputP90 float64 `json:"throughputP90"`
	ThroughputP99 float64 `json:"throughputP99"`
	// LatencyP50Ms/P99Ms are create-to-bound times.
	LatencyP50Ms float64 `json:"latencyP50Ms"`
	LatencyP99Ms float64 `json:"latencyP99Ms"`
	// CreatePerSec is how fast the API server accepted the pods.
	CreatePerSec float64 `json:"createPerSec"`
	// CPU seconds per 1,000 pods during the run.
	SchedulerCPUPer1k   float64 `json:"schedulerCPUPer1k"`
	APIServerCPUPer1k   float64 `json:"apiserverCPUPer1k"`
	CoordinatorCPUPer1k float64 `json:"coordinatorCPUPer1k,omitempty"`
	// SchedulerPeakMB is the scheduler process's peak resident memory;
	// CoordinatorPeakMB the coordinator's (admission workloads).
	SchedulerPeakMB   float64 `json:"schedulerPeakMB"`
	CoordinatorPeakMB float64 `json:"coordinatorPeakMB,omitempty"`
	// APIServerRSSMB is the API server's resident memory at the end of the run.
	APIServerRSSMB float64 `json:"apiserverRSSMB"`
	// Plugins are the scheduler's per-plugin costs in this run.
	Plugins []PluginCost `json:"plugins,omitempty"`
}

// Result is the median over rounds of one variant of one workload.
type Result struct {
	Workload string `json:"workload"`
	// Mode is e2e (pods created while the scheduler runs) or drain (pods
	// created first, then the scheduler started).
	Mode    string `json:"mode"`
	Nodes   int    `json:"nodes"`
	Variant string `json:"variant"`
	Median  Run    `json:"median"`
	Runs    []Run  `json:"runs"`
	// Plugins are the scheduler's per-plugin costs in the last round.
	Plugins []PluginCost `json:"plugins,omitempty"`
	// Ratio is this variant's median average throughput over the
	// baseline's (upstream; for admission, raw PATCHes).
	Ratio float64 `json:"ratio"`
}

func median(runs []Run) Run {
	pick := func(get func(Run) float64) float64 {
		vals := make([]float64, len(runs))
		for i, r := range runs {
			vals[i] = get(r)
		}
		return percentile(vals, 50)
	}
	return Run{
		ThroughputAvg:       pick(func(r Run) float64 { return r.ThroughputAvg }),
		ThroughputP50:       pick(func(r Run) float64 { return r.ThroughputP50 }),
		ThroughputP90:       pick(func(r Run) float64 { return r.ThroughputP90 }),
		ThroughputP99:       pick(func(r Run) float64 { return r.ThroughputP99 }),
		LatencyP50Ms:        pick(func(r Run) float64 { return r.LatencyP50Ms }),
		LatencyP99Ms:        pick(func(r Run) float64 { return r.LatencyP99Ms }),
		CreatePerSec:        pick(func(r Run) float64 { return r.CreatePerSec }),
		SchedulerCPUPer1k:   pick(func(r Run) float64 { return r.SchedulerCPUPer1k }),
		APIServerCPUPer1k:   pick(func(r Run) float64 { return r.APIServerCPUPer1k }),
		CoordinatorCPUPer1k: pick(func(r Run) float64 { return r.CoordinatorCPUPer1k }),
		SchedulerPeakMB:     pick(func(r Run) float64 { return r.SchedulerPeakMB }),
		CoordinatorPeakMB:   pick(func(r Run) float64 { return r.CoordinatorPeakMB }),
		APIServerRSSMB:      pick(func(r Run) float64 { return r.APIServerRSSMB }),
	}
}

func orDash(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// percentile of vals (nearest rank, interpolated between neighbours).
func percentile(vals []float64, p float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	pos := p / 100 * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	frac := pos - float64(lo)
	return s[lo]*(1-frac) + s[lo+1]*frac
}

// Markdown renders the report as the table docs/performance.md quotes.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Switchyard vs upstream kube-scheduler (Kubernetes 1.37.2, same vendored tree), %s, %d cores, %s, %d pods per run, median of %d rounds, variants alternating.\n\n",
		r.Started.Format("2006-01-02 15:04 UTC"), r.Cores, r.GoVersion, r.Pods, r.Rounds)
	b.WriteString("| workload | mode | nodes | variant | pods/s avg | p50 | p90 | p99 | create->bound p50 | p99 | creates/s | scheduler CPU s/1k pods | apiserver CPU s/1k pods | scheduler peak MB | vs baseline |\n")
	b.WriteString("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, res := range r.Results {
		m := res.Median
		if strings.HasPrefix(res.Workload, "admission") {
			// The scheduler columns hold the coordinator's CPU and peak RSS.
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %.0f | %.0f | %.0f | %.0f | - | - | - | %s | %.2f | %s | %.2fx |\n",
				res.Workload, res.Mode, res.Nodes, res.Variant, m.ThroughputAvg, m.ThroughputP50, m.ThroughputP90, m.ThroughputP99,
				orDash(m.CoordinatorCPUPer1k, "coordinator %.2f"), m.APIServerCPUPer1k, orDash(m.CoordinatorPeakMB, "coordinator %.0f"), res.Ratio)
			continue
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %.0f | %.0f | %.0f | %.0f | %s | %s | %s | %.2f | %.2f | %.0f | %.2fx |\n",
			res.Workload, res.Mode, res.Nodes, res.Variant, m.ThroughputAvg, m.ThroughputP50, m.ThroughputP90, m.ThroughputP99,
			orDash(m.LatencyP50Ms, "%.0f ms"), orDash(m.LatencyP99Ms, "%.0f ms"), orDash(m.CreatePerSec, "%.0f"), m.SchedulerCPUPer1k, m.APIServerCPUPer1k, m.SchedulerPeakMB, res.Ratio)
	}
	// What routing costs the API server: routed against direct, per size.
	for _, res := range r.Results {
		if res.Variant != "routed" {
			continue
		}
		for _, d := range r.Results {
			if d.Workload == res.Workload && d.Mode == res.Mode && d.Nodes == res.Nodes && d.Variant == "direct" && d.Median.APIServerCPUPer1k > 0 {
				fmt.Fprintf(&b, "\nAPI server CPU per 1k pods, %s (%s) at %d nodes: routed %.2f s vs direct %.2f s = %.2fx.",
					res.Workload, res.Mode, res.Nodes, res.Median.APIServerCPUPer1k, d.Median.APIServerCPUPer1k, res.Median.APIServerCPUPer1k/d.Median.APIServerCPUPer1k)
			}
		}
	}
	b.WriteString("\n\nBaselines: `upstream` (kube-scheduler, default configuration) for scheduling workloads; `raw-patch` (this driver removing the same gates, with the same admission record, from as many workers) for admission and admission-scale (100 queues with mixed limits that never bind, 10,000 pods gated before the coordinator starts; for these the CPU and peak-MB columns are the coordinator's); `plain` (the same pods without set labels, switchyard-batch) for calcset (sets of 8, all or nothing, node locality); `profile` (routed to switchyard-batch) for external (routed to a RabbitMQ queue, bound by switchyard-shortjob; its CPU is in the scheduler column). ")
	b.WriteString("`direct`: switchyard-scheduler, pods name a profile. `routed`: pods name `switchyard` plus a queue label and the API server's MutatingAdmissionPolicy routes them (coordinator running). ")
	b.WriteString("Modes: `e2e` creates the pods (32 workers) while the scheduler runs and times the first create to the last bind; `drain` creates every pod first with no scheduler running, then starts the scheduler and times the first bind to the last (no create->bound latency). Every run starts from an API server without pods of the bench, and scheduling variants other than `routed` start with no routing policy. ")
	b.WriteString("Shapes as upstream scheduler_perf's SchedulingBasic templates: nodes of 4 CPUs, 32Gi and 110 pods (in 3 zones), pods asking 100m CPU and 500Mi (one container). ")
	b.WriteString("Throughput percentiles are over one-second samples of pods bound; no simulated kubelets run during measurement.\n")
	b.WriteString(pluginTable(r.Results, 5))
	return b.String()
}
