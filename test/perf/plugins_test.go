package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestPluginCosts(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`# HELP scheduler_plugin_execution_duration_seconds [ALPHA] Duration for running a plugin at a specific extension point.
# TYPE scheduler_plugin_execution_duration_seconds histogram
scheduler_plugin_execution_duration_seconds_bucket{extension_point="Score",plugin="UsageAware",status="Success",le="+Inf"} 10
scheduler_plugin_execution_duration_seconds_sum{extension_point="Score",plugin="UsageAware",status="Success"} 0.0001
scheduler_plugin_execution_duration_seconds_count{extension_point="Score",plugin="UsageAware",status="Success"} 10
scheduler_plugin_execution_duration_seconds_bucket{extension_point="PreFilter",plugin="CalcSet",status="Success",le="+Inf"} 3
scheduler_plugin_execution_duration_seconds_sum{extension_point="PreFilter",plugin="CalcSet",status="Success"} 0.003
scheduler_plugin_execution_duration_seconds_count{extension_point="PreFilter",plugin="CalcSet",status="Success"} 3
scheduler_plugin_execution_duration_seconds_bucket{extension_point="PreFilter",plugin="CalcSet",status="UnschedulableAndUnresolvable",le="+Inf"} 1
scheduler_plugin_execution_duration_seconds_sum{extension_point="PreFilter",plugin="CalcSet",status="UnschedulableAndUnresolvable"} 0.001
scheduler_plugin_execution_duration_seconds_count{extension_point="PreFilter",plugin="CalcSet",status="UnschedulableAndUnresolvable"} 1
`))
	}))
	defer srv.Close()
	costs, err := pluginCosts(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(costs) != 2 {
		t.Fatalf("costs %+v, want 2 plugin/extension-point pairs (statuses summed)", costs)
	}
	first := costs[0]
	if first.Plugin != "CalcSet" || first.ExtensionPoint != "PreFilter" || first.SampledCalls != 4 || first.MeanMicros != 1000 {
		t.Errorf("costliest %+v, want CalcSet PreFilter, 4 calls of 1000 µs", first)
	}
	if costs[1].Plugin != "UsageAware" || costs[1].MeanMicros != 10 {
		t.Errorf("second %+v, want UsageAware Score at 10 µs", costs[1])
	}
}

func TestFillDrain(t *testing.T) {
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	bound := map[string]time.Time{}
	for i := range 101 {
		bound[string(rune('a'+i%26))+string(rune('0'+i/26))] = start.Add(time.Duration(i) * 10 * time.Millisecond)
	}
	var run Run
	fillDrain(&run, bound)
	if run.ThroughputAvg < 99.9 || run.ThroughputAvg > 100.1 {
		t.Errorf("throughput %.2f pods/s, want 100 (101 binds 10 ms apart, first to last)", run.ThroughputAvg)
	}
	if run.LatencyP50Ms != 0 || run.CreatePerSec != 0 {
		t.Errorf("drain reports latency %v and creates/s %v, want neither", run.LatencyP50Ms, run.CreatePerSec)
	}
}
