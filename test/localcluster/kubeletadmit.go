package localcluster

import (
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	resourcehelper "k8s.io/component-helpers/resource"
)

// byNodeIndex indexes the simulated kubelets' pods by spec.nodeName.
const byNodeIndex = "spec.nodeName"

func indexByNode(obj any) ([]string, error) {
	if pod, ok := obj.(*corev1.Pod); ok && pod.Spec.NodeName != "" {
		return []string{pod.Spec.NodeName}, nil
	}
	return nil, nil
}

// kubeletAdmission is what a kubelet checks before it runs a pod bound to
// its node (the resource part of its admit handler): the requests of the
// pods it already admitted plus the new one's must fit the node's
// allocatable CPU, memory and pod count, or the pod is rejected, Failed with
// reason OutOf<resource>, as a real kubelet does when two binders give the
// same room away. Pods are admitted one at a time per process, so of two
// pods racing for a node's last room exactly one runs.
type kubeletAdmission struct {
	pods cache.Indexer
	mu   sync.Mutex
	// admitted are the pods this process let run that have not ended.
	admitted map[types.UID]bool
}

func newKubeletAdmission(pods cache.Indexer) *kubeletAdmission {
	return &kubeletAdmission{pods: pods, admitted: map[types.UID]bool{}}
}

// forget drops a pod that is gone.
func (k *kubeletAdmission) forget(uid types.UID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.admitted, uid)
}

// admit says whether pod may run on node and, if not, the reason and
// message its status gets. A pod once admitted stays admitted (a status
// write that failed is retried without a second check).
func (k *kubeletAdmission) admit(pod *corev1.Pod, node *corev1.Node) (ok bool, reason, message string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.admitted[pod.UID] {
		return true, "", ""
	}
	// Running pods count (admitted by an earlier process, or seen so
	// since), and those this process admitted whose Running status the
	// informer has not shown yet.
	var admitted []*corev1.Pod
	for _, other := range podsOnNode(k.pods, node.Name, pod.UID) {
		if other.Status.Phase == corev1.PodRunning || k.admitted[other.UID] {
			admitted = append(admitted, other)
		}
	}
	used, count := allocated(admitted), int64(len(admitted))
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	if capacity, ok := node.Status.Allocatable[corev1.ResourcePods]; ok && count+1 > capacity.Value() {
		return false, "OutOfpods", fmt.Sprintf("Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: %d, capacity: %d", count, capacity.Value())
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		want, capacity, inUse := requests[name], node.Status.Allocatable[name], used[name]
		if want.IsZero() {
			continue
		}
		value := func(q *resource.Quantity) int64 {
			if name == corev1.ResourceCPU {
				return q.MilliValue()
			}
			return q.Value()
		}
		if value(&want)+value(&inUse) > value(&capacity) {
			return false, "OutOf" + string(name), fmt.Sprintf("Pod was rejected: Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d",
				name, value(&want), value(&inUse), value(&capacity))
		}
	}
	k.admitted[pod.UID] = true
	return true, "", ""
}

// markRejected fills in the status a kubelet reports for a pod it rejects.
func markRejected(pod *corev1.Pod, reason, message string) {
	pod.Status.Phase = corev1.PodFailed
	pod.Status.Reason = reason
	pod.Status.Message = message
	now := metav1.NewTime(time.Now())
	if pod.Status.StartTime == nil {
		pod.Status.StartTime = &now
	}
}

// podsOnNode are the pods bound to node that have not finished, but skip.
func podsOnNode(pods cache.Indexer, node string, skip types.UID) []*corev1.Pod {
	objs, _ := pods.ByIndex(byNodeIndex, node)
	out := make([]*corev1.Pod, 0, len(objs))
	for _, obj := range objs {
		if p, ok := obj.(*corev1.Pod); ok && p.UID != skip && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

// allocated sums the pods' requests as the kubelet allocated them (their
// status resources, where it reported them).
func allocated(pods []*corev1.Pod) corev1.ResourceList {
	used := corev1.ResourceList{}
	for _, p := range pods {
		for name, q := range resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{UseStatusResources: true}) {
			sum := used[name]
			sum.Add(q)
			used[name] = sum
		}
	}
	return used
}
