// Package usageaware is the UsageAware score plugin: it prefers nodes whose
// measured usage (reported by the Switchyard node agent, see
// pkg/nodeusage) is low, not only their requests, as scheduler-plugins'
// Trimaran does with a metrics server. Nodes without a fresh report get
// the middle score, so neither a missing agent nor a stale report decides.
package usageaware

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/apis/config/validation"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/nodeusage"
)

// Name is the plugin's name in the scheduler configuration.
const Name = "UsageAware"

// UsageAware scores nodes by their measured usage.
type UsageAware struct {
	args *config.UsageAwareArgs
	now  func() time.Time
}

var (
	_ fwk.ScorePlugin = &UsageAware{}
	_ fwk.SignPlugin  = &UsageAware{}
)

// New builds the plugin for one profile from its validated args.
func New(_ context.Context, obj runtime.Object, _ fwk.Handle) (fwk.Plugin, error) {
	args, ok := obj.(*config.UsageAwareArgs)
	if !ok {
		return nil, fmt.Errorf("want args of type UsageAwareArgs, got %T", obj)
	}
	if err := validation.ValidateUsageAwareArgs(field.NewPath("pluginConfig", Name, "args"), args); err != nil {
		return nil, err
	}
	return &UsageAware{args: args, now: time.Now}, nil
}

// Name returns the plugin's name.
func (pl *UsageAware) Name() string { return Name }

// SignPod: the score depends on the node only, so every pod may share
// results (opportunistic batching stays on).
func (pl *UsageAware) SignPod(context.Context, *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	return []fwk.SignFragment{}, nil
}

// Score is 100 for an idle node, 0 for one using all its allocatable, and
// the middle score without a fresh report.
func (pl *UsageAware) Score(_ context.Context, _ fwk.CycleState, _ *v1.Pod, node fwk.NodeInfo) (int64, *fwk.Status) {
	return pl.score(node.Node()), nil
}

func (pl *UsageAware) score(node *v1.Node) int64 {
	middle := (fwk.MaxNodeScore + fwk.MinNodeScore) / 2
	raw, ok := node.Annotations[v1alpha1.MeasuredUsageAnnotation]
	if !ok {
		return middle
	}
	report, err := nodeusage.Decode(raw)
	if err != nil || pl.now().Sub(report.At) > pl.args.MaxReportAge.Duration {
		return middle
	}
	fraction := func(used int64, allocatable int64) float64 {
		if allocatable <= 0 {
			return 1
		}
		return min(float64(used)/float64(allocatable), 1)
	}
	cpu := fraction(report.MilliCPU, node.Status.Allocatable.Cpu().MilliValue())
	mem := fraction(report.MemoryBytes, node.Status.Allocatable.Memory().Value())
	used := (float64(pl.args.CPUWeight)*cpu + float64(pl.args.MemoryWeight)*mem) / float64(pl.args.CPUWeight+pl.args.MemoryWeight)
	return int64(float64(fwk.MaxNodeScore) * (1 - used))
}

// ScoreExtensions: scores are already in range.
func (pl *UsageAware) ScoreExtensions() fwk.ScoreExtensions { return nil }
