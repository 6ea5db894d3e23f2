package agent

import (
	"context"
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/nodeusage"
)

// KubepodsPath is the cgroup holding every pod of the node.
func KubepodsPath(driver cgroup.Driver) string {
	if driver == cgroup.Systemd {
		return "kubepods.slice"
	}
	return "kubepods"
}

// Reporter publishes the node's measured pod usage (the kubepods cgroup)
// as the nodeusage annotation, for the UsageAware score plugin.
type Reporter struct {
	Client   kubernetes.Interface
	Node     string
	FS       cgroup.FS
	Path     string
	Interval time.Duration

	last    cgroup.Stats
	lastAt  time.Time
	started bool
}

// Run reports every Interval until ctx ends.
func (r *Reporter) Run(ctx context.Context) {
	ticker := time.NewTicker(r.Interval)
	defer ticker.Stop()
	for {
		if err := r.Report(ctx, time.Now()); err != nil {
			klog.FromContext(ctx).V(2).Info("Node usage report skipped", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Report measures since the previous call and patches the annotation.
func (r *Reporter) Report(ctx context.Context, now time.Time) error {
	st, err := r.FS.ReadStats(r.Path)
	if err != nil {
		return err
	}
	prev, prevAt, started := r.last, r.lastAt, r.started
	r.last, r.lastAt, r.started = st, now, true
	if !started || !now.After(prevAt) || st.CPUUsage < prev.CPUUsage {
		return nil // nothing to average over yet
	}
	window := now.Sub(prevAt)
	report := nodeusage.Report{
		MilliCPU: int64(st.CPUUsage-prev.CPUUsage) * 1000 / int64(window), MemoryBytes: st.MemoryUsage, Window: window, At: now,
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{v1alpha1.MeasuredUsageAnnotation: report.Encode()}}})
	_, err = r.Client.CoreV1().Nodes().Patch(ctx, r.Node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "switchyard-agent"})
	return err
}
