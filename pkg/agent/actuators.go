package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
)

// ErrAboveParent: the change would raise a container above its parent
// cgroup's limit; it is refused (the parent is the pod's or the host's
// share, not the agent's to change).
var ErrAboveParent = errors.New("would exceed the parent cgroup's limit")

// CgroupActuator writes the cgroup files directly (standalone hosts, or
// nodes where in-place resize is not available).
type CgroupActuator struct {
	FS cgroup.FS
}

// Apply writes the new CPU quota or memory limit, never above the parent's.
func (c CgroupActuator) Apply(_ context.Context, t Target, d guardian.Decision) error {
	parent, perr := c.FS.ReadLimits(path.Dir(t.Path))
	switch d.Resource {
	case guardian.CPU:
		own, err := c.FS.ReadLimits(t.Path)
		if err != nil {
			return err
		}
		if perr == nil && parent.MilliCPU() != cgroup.Unlimited && d.To > parent.MilliCPU() {
			return fmt.Errorf("cpu %dm for %s: %w (%dm)", d.To, t.Key, ErrAboveParent, parent.MilliCPU())
		}
		_, err = c.FS.WriteCPUQuota(t.Path, d.To*own.CPUPeriod/1000)
		return err
	case guardian.Memory:
		if d.Soft {
			// A squeeze (memory.high down) or its release (back to max).
			_, err := c.FS.WriteMemoryHigh(t.Path, d.To)
			return err
		}
		if perr == nil && parent.MemoryMax != cgroup.Unlimited && d.To > parent.MemoryMax {
			return fmt.Errorf("memory %d for %s: %w (%d)", d.To, t.Key, ErrAboveParent, parent.MemoryMax)
		}
		if _, err := c.FS.WriteMemoryMax(t.Path, d.To); err != nil {
			return err
		}
		if d.Reason == guardian.ReasonSqueezeHeld {
			// memory.max took over from memory.high.
			_, err := c.FS.WriteMemoryHigh(t.Path, cgroup.Unlimited)
			return err
		}
		return nil
	}
	return fmt.Errorf("unknown resource %q", d.Resource)
}

// SoftMemory: memory.high exists on cgroup v2.
func (c CgroupActuator) SoftMemory() bool { return c.FS.Version == cgroup.V2 }

// ResizeActuator patches the pod's resize subresource (in-place pod
// resize, GA since Kubernetes 1.35): the kubelet changes the cgroup and
// the scheduler sees the new resources. Requests above the new limit come
// down with it.
type ResizeActuator struct {
	Client kubernetes.Interface
}

// SoftMemory: the kubelet owns the pod's cgroups; a resize sets limits only.
func (ResizeActuator) SoftMemory() bool { return false }

// Apply sends the resize.
func (r ResizeActuator) Apply(ctx context.Context, t Target, d guardian.Decision) error {
	pod, ok := t.Object.(*corev1.Pod)
	if !ok {
		return fmt.Errorf("resize needs a pod target, %s is not one", t.Key)
	}
	if d.Soft {
		return fmt.Errorf("resize cannot set memory.high (%s)", d)
	}
	name := corev1.ResourceCPU
	q := *resource.NewMilliQuantity(d.To, resource.DecimalSI)
	if d.Resource == guardian.Memory {
		name, q = corev1.ResourceMemory, *resource.NewQuantity(d.To, resource.BinarySI)
	}
	res := map[string]map[string]string{"limits": {string(name): q.String()}}
	for _, c := range pod.Spec.Containers {
		if c.Name != t.Container {
			continue
		}
		// A resize may not change the QoS class: a Guaranteed pod keeps
		// requests equal to limits; elsewhere requests only come down.
		if req, ok := c.Resources.Requests[name]; ok && (req.Cmp(q) > 0 || pod.Status.QOSClass == corev1.PodQOSGuaranteed) {
			res["requests"] = map[string]string{string(name): q.String()}
		}
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"containers": []map[string]any{{"name": t.Container, "resources": res}}}})
	if err != nil {
		return err
	}
	_, err = r.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "switchyard-agent"}, "resize")
	if err != nil {
		return fmt.Errorf("resizing %s: %w", t.Key, err)
	}
	return nil
}
