package agent

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	switchyardlisters "github.com/switchyard-sched/switchyard/pkg/generated/listers/switchyard/v1alpha1"
)

// Standalone manages every cgroup directly below Dir (relative to the
// hierarchy), on a host without Kubernetes: the Serverless Containers use
// case. Capacity is the host's CPUs and memory.
type Standalone struct {
	FS  cgroup.FS
	Dir string
}

// Targets lists the child cgroups of Dir.
func (s Standalone) Targets(context.Context) ([]Target, Capacity, error) {
	base := filepath.Join(s.FS.Root, s.Dir)
	if s.FS.Version == cgroup.V1 {
		base = filepath.Join(s.FS.Root, "cpu", s.Dir)
	}
	entries, err := os.ReadDir(base)
	if err != nil {
		return nil, Capacity{}, fmt.Errorf("listing cgroups below %s: %w", base, err)
	}
	var out []Target
	for _, e := range entries {
		if e.IsDir() {
			rel := path.Join(s.Dir, e.Name())
			out = append(out, Target{Key: rel, Path: rel})
		}
	}
	return out, HostCapacity(), nil
}

// HostCapacity is this machine's CPUs and memory (MemTotal).
func HostCapacity() Capacity {
	c := Capacity{MilliCPU: int64(runtime.NumCPU()) * 1000}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
					c.Memory = kb << 10
				}
			}
		}
	}
	return c
}

// Pods manages the opted-in running pods of one node, with the cgroup
// paths the kubelet's driver and the runtime give them.
type Pods struct {
	Pods   corelisters.PodLister
	Nodes  corelisters.NodeLister
	Node   string
	Driver cgroup.Driver
	// Warn reports a pod whose annotations cannot be used (an Event).
	Warn func(pod *corev1.Pod, reason, message string)
}

// Targets lists the containers of opted-in running pods on the node.
func (p Pods) Targets(context.Context) ([]Target, Capacity, error) {
	node, err := p.Nodes.Get(p.Node)
	if err != nil {
		return nil, Capacity{}, fmt.Errorf("reading node %s: %w", p.Node, err)
	}
	capacity := Capacity{MilliCPU: node.Status.Allocatable.Cpu().MilliValue(), Memory: node.Status.Allocatable.Memory().Value()}
	pods, err := p.Pods.List(labels.SelectorFromSet(labels.Set{v1alpha1.AutoscaleLabel: "true"}))
	if err != nil {
		return nil, capacity, err
	}
	var out []Target
	for _, pod := range pods {
		if pod.Spec.NodeName != p.Node || pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
			continue
		}
		bounds, err := boundsOf(pod)
		if err != nil && p.Warn != nil {
			p.Warn(pod, "InvalidAutoscaleBounds", err.Error()+"; those bounds are ignored")
		}
		class := pod.Status.QOSClass // set by the API server at creation
		if class == "" {
			continue
		}
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.ContainerID == "" || cs.State.Running == nil {
				continue
			}
			rt, id, err := cgroup.ParseContainerID(cs.ContainerID)
			if err != nil {
				continue
			}
			var spec *corev1.Container
			for i := range pod.Spec.Containers {
				if pod.Spec.Containers[i].Name == cs.Name {
					spec = &pod.Spec.Containers[i]
				}
			}
			if spec == nil {
				continue
			}
			// Decide from what the kubelet applied (status), not from
			// what was asked (spec): they differ while a resize is pending.
			applied := spec.Resources.Limits
			if cs.Resources != nil {
				applied = cs.Resources.Limits
			}
			lim := limitsOf(applied)
			out = append(out, Target{
				Key:  pod.Namespace + "/" + pod.Name + "/" + cs.Name,
				Path: cgroup.ContainerPath(p.Driver, rt, class, pod.UID, id), Bounds: bounds,
				Limits: &lim, Object: pod, Container: cs.Name,
				Unfinished: unfinished(pod, limitsOf(spec.Resources.Limits), lim),
				Queue:      pod.Annotations[v1alpha1.RoutedQueueAnnotation], RequestsFollowLimits: class == corev1.PodQOSGuaranteed,
				MilliCPURequest: spec.Resources.Requests.Cpu().MilliValue(), MemoryRequest: spec.Resources.Requests.Memory().Value(),
			})
		}
	}
	return out, capacity, nil
}

// QueueQuota reads what is left of a queue's quota from its status, which
// the coordinator keeps (status.used against spec.quota).
type QueueQuota struct {
	Queues switchyardlisters.QueueLister
}

// Quota is spec.quota and status.used for the resource.
func (q QueueQuota) Quota(queue, res string) (quota, used int64, version string, ok bool) {
	name := corev1.ResourceCPU
	if res == guardian.Memory {
		name = corev1.ResourceMemory
	}
	obj, err := q.Queues.Get(queue)
	if err != nil {
		return 0, 0, "", false
	}
	limit, ok := obj.Spec.Quota[name]
	if !ok {
		return 0, 0, "", false
	}
	inUse := obj.Status.Used[name]
	if name == corev1.ResourceCPU {
		return limit.MilliValue(), inUse.MilliValue(), obj.ResourceVersion, true
	}
	return limit.Value(), inUse.Value(), obj.ResourceVersion, true
}

// limitsOf is a container's CPU and memory limits as cgroup limits.
func limitsOf(l corev1.ResourceList) cgroup.Limits {
	lim := cgroup.Limits{CPUQuota: cgroup.Unlimited, CPUPeriod: 100000, MemoryMax: cgroup.Unlimited, MemoryHigh: cgroup.Unlimited}
	if q, ok := l[corev1.ResourceCPU]; ok {
		lim.CPUQuota = q.MilliValue() * 100 // per 100ms period
	}
	if q, ok := l[corev1.ResourceMemory]; ok {
		lim.MemoryMax = q.Value()
	}
	return lim
}

// unfinished says why a pod's resize is not done: its PodResizePending
// (Deferred, Infeasible) or PodResizeInProgress condition, or a spec that
// asks other limits than the kubelet applied; nil when it is done.
func unfinished(pod *corev1.Pod, asked, applied cgroup.Limits) *Unfinished {
	for _, c := range pod.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case corev1.PodResizePending:
			reason := c.Reason
			if reason == "" {
				reason = corev1.PodReasonDeferred
			}
			return &Unfinished{Reason: reason, Message: c.Message, Asked: asked}
		case corev1.PodResizeInProgress:
			return &Unfinished{Reason: "InProgress", Message: c.Message, Asked: asked}
		}
	}
	if asked != applied {
		return &Unfinished{Reason: "NotApplied", Message: "the pod's spec asks for other limits than its status shows applied", Asked: asked}
	}
	return nil
}

// The largest bounds an annotation may give: beyond them a quantity is not
// a container's size but a typo, and its milli-value could overflow.
var (
	maxBoundCPU    = resource.MustParse("100k") // cores
	maxBoundMemory = resource.MustParse("1Pi")
)

// boundsOf reads the per-pod bounds. A malformed, non-positive or absurdly
// large bound is reported and ignored; so are both bounds of a resource
// whose minimum exceeds its maximum. Nothing becomes 0 silently.
func boundsOf(pod *corev1.Pod) (guardian.Bounds, error) {
	var b guardian.Bounds
	var errs []string
	for _, a := range []struct {
		annotation string
		dst        *int64
		cpu        bool
	}{
		{v1alpha1.MinCPUAnnotation, &b.MinMilliCPU, true}, {v1alpha1.MaxCPUAnnotation, &b.MaxMilliCPU, true},
		{v1alpha1.MinMemoryAnnotation, &b.MinMemory, false}, {v1alpha1.MaxMemoryAnnotation, &b.MaxMemory, false},
	} {
		raw, ok := pod.Annotations[a.annotation]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(raw)
		limit := maxBoundMemory
		if a.cpu {
			limit = maxBoundCPU
		}
		switch {
		case err != nil || q.Sign() <= 0:
			errs = append(errs, fmt.Sprintf("annotation %s=%q is not a positive quantity", a.annotation, raw))
		case q.Cmp(limit) > 0:
			errs = append(errs, fmt.Sprintf("annotation %s=%q is larger than %s", a.annotation, raw, limit.String()))
		case a.cpu:
			*a.dst = q.MilliValue()
		default:
			*a.dst = q.Value()
		}
	}
	if b.MinMilliCPU > 0 && b.MaxMilliCPU > 0 && b.MinMilliCPU > b.MaxMilliCPU {
		errs = append(errs, fmt.Sprintf("annotation %s=%s is above %s=%s", v1alpha1.MinCPUAnnotation, pod.Annotations[v1alpha1.MinCPUAnnotation],
			v1alpha1.MaxCPUAnnotation, pod.Annotations[v1alpha1.MaxCPUAnnotation]))
		b.MinMilliCPU, b.MaxMilliCPU = 0, 0
	}
	if b.MinMemory > 0 && b.MaxMemory > 0 && b.MinMemory > b.MaxMemory {
		errs = append(errs, fmt.Sprintf("annotation %s=%s is above %s=%s", v1alpha1.MinMemoryAnnotation, pod.Annotations[v1alpha1.MinMemoryAnnotation],
			v1alpha1.MaxMemoryAnnotation, pod.Annotations[v1alpha1.MaxMemoryAnnotation]))
		b.MinMemory, b.MaxMemory = 0, 0
	}
	if len(errs) > 0 {
		return b, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return b, nil
}
