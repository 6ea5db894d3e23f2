package localcluster

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// PodSpec describes a test pod.
type PodSpec struct {
	SchedulerName string
	// CPU and Memory are the single container's requests, e.g. "500m" and "256Mi".
	CPU, Memory  string
	Labels       map[string]string
	NodeSelector map[string]string
}

// Pod builds a one-container pod with the given requests.
func Pod(namespace, name string, spec PodSpec) *corev1.Pod {
	requests := corev1.ResourceList{}
	if spec.CPU != "" {
		requests[corev1.ResourceCPU] = resource.MustParse(spec.CPU)
	}
	if spec.Memory != "" {
		requests[corev1.ResourceMemory] = resource.MustParse(spec.Memory)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: spec.Labels},
		Spec: corev1.PodSpec{
			SchedulerName: spec.SchedulerName,
			NodeSelector:  spec.NodeSelector,
			Containers: []corev1.Container{{
				Name:      "app",
				Image:     "registry.k8s.io/pause:3.10",
				Resources: corev1.ResourceRequirements{Requests: requests},
			}},
		},
	}
}

// CreateNamespace creates a namespace (an existing one is fine).
func (c *Cluster) CreateNamespace(ctx context.Context, name string) error {
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// CreatePods creates the pods in order and returns the created objects.
func (c *Cluster) CreatePods(ctx context.Context, pods ...*corev1.Pod) ([]*corev1.Pod, error) {
	out := make([]*corev1.Pod, 0, len(pods))
	for _, pod := range pods {
		created, err := c.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			return out, fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		out = append(out, created)
	}
	return out, nil
}

// WaitForBound waits until count pods in the namespace that match the label
// selector are bound to a node, and returns all matching pods.
func (c *Cluster) WaitForBound(ctx context.Context, namespace, selector string, count int, timeout time.Duration) ([]corev1.Pod, error) {
	var pods []corev1.Pod
	var bound int
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := c.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil // the API server may be busy; try again
		}
		pods, bound = list.Items, 0
		for _, p := range pods {
			if p.Spec.NodeName != "" {
				bound++
			}
		}
		return bound >= count, nil
	})
	if err != nil {
		return pods, fmt.Errorf("%d of %d pods matching %q in %s bound: %w", bound, count, selector, namespace, err)
	}
	return pods, nil
}

// PodsPerNode counts bound pods by node name.
func PodsPerNode(pods []corev1.Pod) map[string]int {
	out := map[string]int{}
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			out[p.Spec.NodeName]++
		}
	}
	return out
}
