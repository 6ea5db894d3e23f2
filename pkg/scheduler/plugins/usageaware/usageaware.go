// Package usageaware is the UsageAware score plugin: it prefers nodes whose
// measured usage (reported by the Switchyard node agent, see
// pkg/nodeusage) is low, not only their requests, as scheduler-plugins'
// Trimaran does with a metrics server. Nodes without a fresh report get
// the middle score, so neither a missing agent, a stale report nor one
// dated in the future decides.
//
// A node's report is decoded once per node update, by a handler on the
// scheduler's node informer, and kept with the node's resourceVersion;
// Score only reads it. A node the handler has not seen yet (the scheduler's
// snapshot can be a moment ahead of this handler) is decoded in Score, so a
// score is never computed from an older report than the snapshot's.
package usageaware

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/apis/config/validation"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/nodeusage"
)

// Name is the plugin's name in the scheduler configuration.
const Name = "UsageAware"

// MaxClockSkew is how far in the future a report's time may lie and still
// count as fresh: the agent stamps reports with its node's clock, which
// may run a little ahead of the scheduler's. A report dated further ahead
// is not fresh (it would otherwise stay "fresh" until that date).
const MaxClockSkew = 5 * time.Second

// UsageAware scores nodes by their measured usage.
type UsageAware struct {
	args  *config.UsageAwareArgs
	now   func() time.Time
	nodes nodeReports
}

var (
	_ fwk.ScorePlugin = &UsageAware{}
	_ fwk.SignPlugin  = &UsageAware{}
)

// New builds the plugin for one profile from its validated args and
// registers its node handler with the scheduler's informers.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, ok := obj.(*config.UsageAwareArgs)
	if !ok {
		return nil, fmt.Errorf("want args of type UsageAwareArgs, got %T", obj)
	}
	if err := validation.ValidateUsageAwareArgs(field.NewPath("pluginConfig", Name, "args"), args); err != nil {
		return nil, err
	}
	registerMetrics()
	pl := newPlugin(args, time.Now)
	if h != nil && h.SharedInformerFactory() != nil {
		logger := klog.FromContext(ctx).WithValues("plugin", Name)
		if _, err := h.SharedInformerFactory().Core().V1().Nodes().Informer().AddEventHandler(pl.nodeHandler(logger)); err != nil {
			return nil, fmt.Errorf("watching nodes for usage reports: %w", err)
		}
	}
	return pl, nil
}

func newPlugin(args *config.UsageAwareArgs, now func() time.Time) *UsageAware {
	return &UsageAware{args: args, now: now, nodes: nodeReports{decode: nodeusage.Decode}}
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
	n := node.Node()
	if _, reported := n.Annotations[v1alpha1.MeasuredUsageAnnotation]; !reported {
		// A node without an agent: no lookup and no clock, the cheapest
		// answer for the nodes of a cluster that runs no agents.
		return middleScore, nil
	}
	return score(pl.nodes.usageOf(n, pl.args), pl.now(), pl.args.MaxReportAge.Duration), nil
}

// middleScore is what a node without a fresh report scores.
const middleScore = (fwk.MaxNodeScore + fwk.MinNodeScore) / 2

// ScoreExtensions: scores are already in range.
func (pl *UsageAware) ScoreExtensions() fwk.ScoreExtensions { return nil }

// nodeUsage is what Score needs of one node's report, computed from one
// version of the node.
type nodeUsage struct {
	// resourceVersion and raw identify the node version and the
	// annotation value this was computed from.
	resourceVersion string
	raw             string
	// reported is false when the node carries no report; err says why a
	// report it carries is unusable.
	reported bool
	err      error
	report   nodeusage.Report
	// used is the weighted fraction of allocatable in use, in [0, 1].
	used float64
}

// score is the pure decision: the middle score unless the report is usable
// and fresh at now (no older than maxAge, no further ahead than
// MaxClockSkew), else 100 scaled down by the fraction in use.
func score(u *nodeUsage, now time.Time, maxAge time.Duration) int64 {
	if !u.reported || u.err != nil || !fresh(u.report.At, now, maxAge) {
		return middleScore
	}
	return int64(float64(fwk.MaxNodeScore) * (1 - u.used))
}

// fresh says whether a report measured at `at` may be trusted at now.
func fresh(at, now time.Time, maxAge time.Duration) bool {
	return now.Sub(at) <= maxAge && !fromTheFuture(at, now)
}

// fromTheFuture says whether a report is dated further ahead of now than
// MaxClockSkew allows.
func fromTheFuture(at, now time.Time) bool { return at.Sub(now) > MaxClockSkew }

// usedFraction weighs a report's CPU and memory fractions of the node's
// allocatable as the profile's args say; a resource the node does not
// declare counts as fully used.
func usedFraction(node *v1.Node, report nodeusage.Report, args *config.UsageAwareArgs) float64 {
	fraction := func(used int64, allocatable int64) float64 {
		if allocatable <= 0 {
			return 1
		}
		return min(float64(used)/float64(allocatable), 1)
	}
	cpu := fraction(report.MilliCPU, node.Status.Allocatable.Cpu().MilliValue())
	mem := fraction(report.MemoryBytes, node.Status.Allocatable.Memory().Value())
	return (float64(args.CPUWeight)*cpu + float64(args.MemoryWeight)*mem) / float64(args.CPUWeight+args.MemoryWeight)
}

// nodeReports holds each node's usage, keyed by node name, as of the last
// node event this plugin handled.
type nodeReports struct {
	decode func(string) (nodeusage.Report, error)
	byNode sync.Map // node name -> *nodeUsage
}

// compute builds a node's usage; prev (may be nil) is the node's last one,
// whose decoded report is reused when the annotation did not change, so a
// node update that only moved allocatable or status costs no decode.
// decoded says whether the annotation was decoded.
func (r *nodeReports) compute(node *v1.Node, prev *nodeUsage, args *config.UsageAwareArgs) (u *nodeUsage, decoded bool) {
	u = &nodeUsage{resourceVersion: node.ResourceVersion}
	raw, ok := node.Annotations[v1alpha1.MeasuredUsageAnnotation]
	if !ok {
		return u, false
	}
	u.raw, u.reported = raw, true
	if prev != nil && prev.reported && prev.raw == raw {
		u.report, u.err = prev.report, prev.err
	} else {
		u.report, u.err = r.decode(raw)
		decoded = true
	}
	if u.err == nil {
		u.used = usedFraction(node, u.report, args)
	}
	return u, decoded
}

// usageOf is the node's usage for Score: the handler's entry when it was
// computed from this very node version, else computed now (the snapshot
// is ahead of the handler) without storing it, so that only informer
// events decide what the map holds.
func (r *nodeReports) usageOf(node *v1.Node, args *config.UsageAwareArgs) *nodeUsage {
	var prev *nodeUsage
	if v, ok := r.byNode.Load(node.Name); ok {
		prev = v.(*nodeUsage)
		if prev.resourceVersion == node.ResourceVersion {
			return prev
		}
	}
	u, _ := r.compute(node, prev, args)
	return u
}

// observe handles a node add or update: its usage is recomputed and
// stored, and a report that cannot be trusted is logged and counted once
// per new annotation value, not once per Score.
func (r *nodeReports) observe(logger klog.Logger, node *v1.Node, args *config.UsageAwareArgs, now time.Time) {
	if _, reported := node.Annotations[v1alpha1.MeasuredUsageAnnotation]; !reported {
		// Score answers such a node without a lookup: nothing to keep.
		r.forget(node.Name)
		return
	}
	var prev *nodeUsage
	if v, ok := r.byNode.Load(node.Name); ok {
		prev = v.(*nodeUsage)
	}
	u, decoded := r.compute(node, prev, args)
	r.byNode.Store(node.Name, u)
	if !decoded {
		return
	}
	switch {
	case u.err != nil:
		reportsRejected.WithLabelValues(rejectedMalformed).Inc()
		logger.V(2).Info("Ignoring a node usage report that does not decode", "node", klog.KObj(node), "err", u.err)
	case fromTheFuture(u.report.At, now):
		reportsRejected.WithLabelValues(rejectedFuture).Inc()
		logger.V(2).Info("Ignoring a node usage report dated in the future", "node", klog.KObj(node), "at", u.report.At, "maxClockSkew", MaxClockSkew)
	}
}

// forget drops a deleted node's usage.
func (r *nodeReports) forget(name string) { r.byNode.Delete(name) }

// nodeHandler keeps pl.nodes current from the node informer.
func (pl *UsageAware) nodeHandler(logger klog.Logger) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if node, ok := obj.(*v1.Node); ok {
				pl.nodes.observe(logger, node, pl.args, pl.now())
			}
		},
		UpdateFunc: func(_, obj any) {
			if node, ok := obj.(*v1.Node); ok {
				pl.nodes.observe(logger, node, pl.args, pl.now())
			}
		},
		DeleteFunc: func(obj any) {
			switch t := obj.(type) {
			case *v1.Node:
				pl.nodes.forget(t.Name)
			case cache.DeletedFinalStateUnknown:
				if node, ok := t.Obj.(*v1.Node); ok {
					pl.nodes.forget(node.Name)
				}
			}
		},
	}
}
