package main

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler/apis/config"

	"github.com/switchyard-sched/switchyard/pkg/registry"
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
	cc, sched, err := app.Setup(ctx, opts, registry.Options()...)
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
