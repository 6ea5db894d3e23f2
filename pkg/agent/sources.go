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
			p.Warn(pod, "InvalidAutoscaleBounds", err.Error()+"; the bound is ignored")
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
			lim := cgroup.Limits{CPUQuota: cgroup.Unlimited, CPUPeriod: 100000, MemoryMax: cgroup.Unlimited}
			if q, ok := spec.Resources.Limits[corev1.ResourceCPU]; ok {
				lim.CPUQuota = q.MilliValue() * 100 // per 100ms period
			}
			if q, ok := spec.Resources.Limits[corev1.ResourceMemory]; ok {
				lim.MemoryMax = q.Value()
			}
			out = append(out, Target{
				Key:  pod.Namespace + "/" + pod.Name + "/" + cs.Name,
				Path: cgroup.ContainerPath(p.Driver, rt, class, pod.UID, id), Bounds: bounds,
				Limits: &lim, Object: pod, Container: cs.Name,
			})
		}
	}
	return out, capacity, nil
}

// boundsOf reads the per-pod bounds; a malformed one is reported and skipped.
func boundsOf(pod *corev1.Pod) (guardian.Bounds, error) {
	var b guardian.Bounds
	var errs []string
	for ann, dst := range map[string]*int64{v1alpha1.MinCPUAnnotation: &b.MinMilliCPU, v1alpha1.MaxCPUAnnotation: &b.MaxMilliCPU, v1alpha1.MinMemoryAnnotation: &b.MinMemory, v1alpha1.MaxMemoryAnnotation: &b.MaxMemory} {
		raw, ok := pod.Annotations[ann]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(raw)
		if err != nil || q.Sign() <= 0 {
			errs = append(errs, fmt.Sprintf("annotation %s=%q is not a positive quantity", ann, raw))
			continue
		}
		if strings.Contains(ann, "cpu") {
			*dst = q.MilliValue()
		} else {
			*dst = q.Value()
		}
	}
	if len(errs) > 0 {
		return b, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return b, nil
}
