package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"

	switchyardconfig "github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/scheduler"
	"github.com/switchyard-sched/switchyard/pkg/scheduler/plugins/calcset"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// fakeKubeconfig lets app.Setup build clients; nothing connects to it.
const fakeKubeconfig = `apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://127.0.0.1:1
    insecure-skip-tls-verify: true
  name: unused
contexts:
- context: {cluster: unused, user: unused}
  name: unused
current-context: unused
users:
- name: unused
  user: {token: unused}
`

// TestShippedConfiguration loads manifests/scheduler/config.yaml through
// app.Setup, exactly as the binary does at start, and checks every profile.
func TestShippedConfiguration(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fakeKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	shipped, err := localcluster.ShippedSchedulerConfig()
	if err != nil {
		t.Fatal(err)
	}
	configFile, err := localcluster.WriteSchedulerConfig(dir, shipped, kubeconfig, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	opts := options.NewOptions()
	opts.ConfigFile = configFile
	opts.SecureServing.BindPort = 0
	cc, sched, err := app.Setup(ctx, opts, scheduler.Options()...)
	if err != nil {
		t.Fatalf("the shipped configuration does not load: %v", err)
	}

	for _, name := range []string{"switchyard", "switchyard-batch", "switchyard-latency"} {
		if _, ok := sched.Profiles[name]; !ok {
			t.Errorf("profile %q missing", name)
		}
	}
	for name, fw := range sched.Profiles {
		plugins := fw.ListPlugins()
		if got := plugins.QueueSort.Enabled; len(got) != 1 || got[0].Name != "PrioritySort" {
			t.Errorf("profile %q: QueueSort = %v, want PrioritySort (all profiles share one queue)", name, got)
		}
	}

	batch := sched.Profiles["switchyard-batch"].ListPlugins()
	if weight, ok := scoreWeight(batch, "NodeResourcesFit"); !ok || weight != 5 {
		t.Errorf("switchyard-batch: NodeResourcesFit score weight = %d (enabled %v), want 5", weight, ok)
	}
	if _, ok := scoreWeight(batch, "NodeResourcesBalancedAllocation"); ok {
		t.Errorf("switchyard-batch: NodeResourcesBalancedAllocation must be off, it works against packing")
	}
	if got := fitStrategy(t, cc.ComponentConfig.Profiles, "switchyard-batch"); got != config.MostAllocated {
		t.Errorf("switchyard-batch: scoring strategy %q, want MostAllocated", got)
	}
	if got := fitStrategy(t, cc.ComponentConfig.Profiles, "switchyard-latency"); got != config.LeastAllocated {
		t.Errorf("switchyard-latency: scoring strategy %q, want LeastAllocated", got)
	}
	for _, ext := range []struct {
		name    string
		enabled []config.Plugin
	}{{"preEnqueue", batch.PreEnqueue.Enabled}, {"preFilter", batch.PreFilter.Enabled}, {"reserve", batch.Reserve.Enabled}, {"permit", batch.Permit.Enabled}} {
		if !hasPlugin(ext.enabled, calcset.Name) {
			t.Errorf("switchyard-batch: CalcSet missing from %s", ext.name)
		}
	}
	var calcSetArgs *switchyardconfig.CalcSetArgs
	for _, p := range profileByName(t, cc.ComponentConfig.Profiles, "switchyard-batch").PluginConfig {
		if args, ok := p.Args.(*switchyardconfig.CalcSetArgs); ok {
			calcSetArgs = args
		}
	}
	if calcSetArgs == nil {
		t.Errorf("switchyard-batch: CalcSet args did not decode as typed CalcSetArgs")
	} else if calcSetArgs.DefaultWindow.Duration != time.Minute || calcSetArgs.DefaultLocality != switchyardconfig.CalcSetLocalityNode {
		t.Errorf("switchyard-batch: CalcSet args = %+v, want the shipped 60s window and node locality", calcSetArgs)
	}
	if weight, ok := scoreWeight(sched.Profiles["switchyard"].ListPlugins(), "UsageAware"); !ok || weight != 2 {
		t.Errorf("switchyard: UsageAware score weight = %d (enabled %v), want 2", weight, ok)
	}
	latency := sched.Profiles["switchyard-latency"].ListPlugins()
	if weight, ok := scoreWeight(latency, "PodTopologySpread"); !ok || weight != 5 {
		t.Errorf("switchyard-latency: PodTopologySpread score weight = %d (enabled %v), want 5", weight, ok)
	}
	for _, p := range profileByName(t, cc.ComponentConfig.Profiles, "switchyard-latency").PluginConfig {
		if args, ok := p.Args.(*config.PodTopologySpreadArgs); ok {
			if args.DefaultingType != config.ListDefaulting || len(args.DefaultConstraints) != 2 {
				t.Errorf("switchyard-latency: PodTopologySpread defaults = %s %v, want two listed constraints", args.DefaultingType, args.DefaultConstraints)
			}
		}
	}
}

// TestCalcSetArgsRejected checks that a profile with bad CalcSet args stops
// the scheduler at start with a message naming the field, and that a
// profile which enables CalcSet without args gets the documented defaults.
func TestCalcSetArgsRejected(t *testing.T) {
	profile := func(args string) string {
		return `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: sets
  plugins:
    multiPoint:
      enabled:
      - name: CalcSet
` + args
	}
	for _, tc := range []struct {
		name, config, wantErr string
	}{
		{name: "defaults", config: profile("")},
		{name: "misspelt field", config: profile("  pluginConfig:\n  - name: CalcSet\n    args:\n      defaultWindw: 30s\n"), wantErr: "unknown field"},
		{name: "window too short", config: profile("  pluginConfig:\n  - name: CalcSet\n    args:\n      defaultWindow: 10ms\n"), wantErr: "defaultWindow"},
		{name: "unknown locality", config: profile("  pluginConfig:\n  - name: CalcSet\n    args:\n      defaultLocality: rack\n"), wantErr: "defaultLocality"},
		{name: "max below default", config: profile("  pluginConfig:\n  - name: CalcSet\n    args:\n      defaultWindow: 5m\n      maxWindow: 1m\n"), wantErr: "maxWindow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			dir := t.TempDir()
			kubeconfig := filepath.Join(dir, "kubeconfig")
			if err := os.WriteFile(kubeconfig, []byte(fakeKubeconfig), 0o600); err != nil {
				t.Fatal(err)
			}
			configFile, err := localcluster.WriteSchedulerConfig(dir, []byte(tc.config), kubeconfig, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			opts := options.NewOptions()
			opts.ConfigFile = configFile
			opts.SecureServing.BindPort = 0
			cc, _, err := app.Setup(ctx, opts, scheduler.Options()...)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("valid configuration refused: %v", err)
				}
				var args *switchyardconfig.CalcSetArgs
				for _, p := range cc.ComponentConfig.Profiles[0].PluginConfig {
					if a, ok := p.Args.(*switchyardconfig.CalcSetArgs); ok {
						args = a
					}
				}
				if args == nil {
					t.Fatalf("no defaulted CalcSetArgs in %+v", cc.ComponentConfig.Profiles[0].PluginConfig)
				}
				if args.DefaultWindow.Duration != time.Minute || args.MaxWindow.Duration != 10*time.Minute ||
					args.DefaultLocality != switchyardconfig.CalcSetLocalityNode || args.MaxSetSize != 1000 || args.BackoffAfterMisfit.Duration != 2*time.Second {
					t.Errorf("defaults = %+v, want 60s, 10m, node, 1000, 2s as documented", args)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func hasPlugin(plugins []config.Plugin, name string) bool {
	for _, p := range plugins {
		if p.Name == name {
			return true
		}
	}
	return false
}

func scoreWeight(plugins *config.Plugins, name string) (int32, bool) {
	for _, p := range plugins.Score.Enabled {
		if p.Name == name {
			return p.Weight, true
		}
	}
	return 0, false
}

func profileByName(t *testing.T, profiles []config.KubeSchedulerProfile, name string) config.KubeSchedulerProfile {
	t.Helper()
	for _, p := range profiles {
		if p.SchedulerName == name {
			return p
		}
	}
	t.Fatalf("profile %q missing", name)
	return config.KubeSchedulerProfile{}
}

func fitStrategy(t *testing.T, profiles []config.KubeSchedulerProfile, name string) config.ScoringStrategyType {
	t.Helper()
	for _, p := range profileByName(t, profiles, name).PluginConfig {
		if args, ok := p.Args.(*config.NodeResourcesFitArgs); ok && args.ScoringStrategy != nil {
			return args.ScoringStrategy.Type
		}
	}
	t.Fatalf("profile %q: no NodeResourcesFit args", name)
	return ""
}
