package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// PluginCost is what one plugin cost at one extension point during a run,
// from the scheduler's own scheduler_plugin_execution_duration_seconds
// (which upstream samples: about one scheduling cycle in ten is timed).
type PluginCost struct {
	Plugin         string  `json:"plugin"`
	ExtensionPoint string  `json:"extensionPoint"`
	SampledCalls   uint64  `json:"sampledCalls"`
	MeanMicros     float64 `json:"meanMicros"`
	// SampledSeconds is the sum over the sampled calls.
	SampledSeconds float64 `json:"sampledSeconds"`
}

// loopbackClient talks to a scheduler process of this bench, which serves
// a self-signed certificate on loopback.
func loopbackClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback scheduler with a self-signed certificate
}

// pluginCosts reads a scheduler process's /metrics at the end of a run.
// The process is new for every run, so its counters cover that run only.
func pluginCosts(metricsURL string) ([]PluginCost, error) {
	resp, err := loopbackClient(10 * time.Second).Get(metricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", metricsURL, resp.Status)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", metricsURL, err)
	}
	family, ok := families["scheduler_plugin_execution_duration_seconds"]
	if !ok {
		return nil, nil
	}
	byKey := map[string]*PluginCost{}
	for _, m := range family.GetMetric() {
		labels := labelMap(m)
		key := labels["extension_point"] + "/" + labels["plugin"]
		c := byKey[key]
		if c == nil {
			c = &PluginCost{Plugin: labels["plugin"], ExtensionPoint: labels["extension_point"]}
			byKey[key] = c
		}
		c.SampledCalls += m.GetHistogram().GetSampleCount()
		c.SampledSeconds += m.GetHistogram().GetSampleSum()
	}
	out := make([]PluginCost, 0, len(byKey))
	for _, c := range byKey {
		if c.SampledCalls > 0 {
			c.MeanMicros = c.SampledSeconds / float64(c.SampledCalls) * 1e6
		}
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SampledSeconds > out[j].SampledSeconds })
	return out, nil
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// switchyardPlugins are always shown in the per-plugin table, beside the
// costliest in-tree ones.
var switchyardPlugins = map[string]bool{"CalcSet": true, "UsageAware": true}

// pluginTable renders the per-plugin costs of the results that have them:
// the costliest top plugin/extension-point pairs of each, plus every
// Switchyard plugin.
func pluginTable(results []Result, top int) string {
	var b strings.Builder
	for _, res := range results {
		if len(res.Plugins) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s (%s), %d nodes, %s:", res.Workload, res.Mode, res.Nodes, res.Variant)
		var parts []string
		for i, c := range res.Plugins {
			if i < top || switchyardPlugins[c.Plugin] {
				parts = append(parts, fmt.Sprintf("%s/%s %.1f µs x %d", c.ExtensionPoint, c.Plugin, c.MeanMicros, c.SampledCalls))
			}
		}
		b.WriteString(" " + strings.Join(parts, "; ") + ".")
	}
	if b.Len() == 0 {
		return ""
	}
	return "\n\nPer-plugin cost, last round (scheduler_plugin_execution_duration_seconds: mean per call x sampled calls, costliest first; upstream times about one cycle in ten):" + b.String() + "\n"
}

// saveProfile fetches a CPU profile of the scheduler process for d into
// path, in the background; the channel closes when it is written (or
// failed, which is reported and does not fail the run).
func (b *bench) saveProfile(metricsURL, path string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	url := strings.TrimSuffix(metricsURL, "/metrics") + fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds()))
	go func() {
		defer close(done)
		resp, err := loopbackClient(d + 30*time.Second).Get(url)
		if err != nil {
			progress("  profile: %v", err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			progress("  profile: GET %s: %s", url, resp.Status)
			return
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			progress("  profile: %v", err)
			return
		}
		f, err := os.Create(path)
		if err != nil {
			progress("  profile: %v", err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			progress("  profile: %v", err)
			return
		}
		progress("  profile: %s", path)
	}()
	return done
}
