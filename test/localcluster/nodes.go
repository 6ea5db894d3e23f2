package localcluster

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SimulatedNodeLabel marks the nodes this package creates; the simulated
// kubelets act only for pods bound to such nodes.
const SimulatedNodeLabel = "switchyard.io/simulated-node"

// NodeSpec describes a simulated node.
type NodeSpec struct {
	// CPU and Memory are the node's capacity and allocatable, e.g. "4" and "16Gi".
	CPU, Memory string
	// Pods is the pod capacity; 110 when zero, as the kubelet's default.
	Pods int
	// Labels are added to the standard hostname and simulated-node labels.
	Labels map[string]string
	// Taints are copied to the node spec.
	Taints []corev1.Taint
}

// Node builds a Ready node the way a kubelet would register it.
func Node(name string, spec NodeSpec) *corev1.Node {
	pods := spec.Pods
	if pods == 0 {
		pods = 110
	}
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(spec.CPU),
		corev1.ResourceMemory: resource.MustParse(spec.Memory),
		corev1.ResourcePods:   *resource.NewQuantity(int64(pods), resource.DecimalSI),
	}
	labels := map[string]string{
		corev1.LabelHostname:   name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: "amd64",
		SimulatedNodeLabel:     "true",
	}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       corev1.NodeSpec{Taints: spec.Taints},
		Status: corev1.NodeStatus{
			Capacity:    resources,
			Allocatable: resources.DeepCopy(),
			Phase:       corev1.NodeRunning,
			Conditions: []corev1.NodeCondition{
				{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "simulated kubelet is posting ready status"},
				{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory"},
				{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure"},
				{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID"},
			},
			NodeInfo: corev1.NodeSystemInfo{
				KubeletVersion:  "v1.37.2",
				OperatingSystem: "linux",
				Architecture:    "amd64",
			},
		},
	}
}

// CreateNodes registers count simulated nodes named <prefix>-<i> and returns
// their names. Status is written through the status subresource, as a
// kubelet does, because create ignores it.
func (c *Cluster) CreateNodes(ctx context.Context, prefix string, count int, spec NodeSpec) ([]string, error) {
	names := make([]string, 0, count)
	for i := range count {
		node := Node(fmt.Sprintf("%s-%d", prefix, i), spec)
		status := node.Status
		created, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err != nil {
			return names, fmt.Errorf("creating node %s: %w", node.Name, err)
		}
		created.Status = status
		if _, err := c.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return names, fmt.Errorf("posting status of node %s: %w", node.Name, err)
		}
		names = append(names, node.Name)
	}
	return names, nil
}

// DeleteNodes removes the named nodes; missing ones are not an error.
func (c *Cluster) DeleteNodes(ctx context.Context, names []string) error {
	for _, name := range names {
		err := c.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("deleting node %s: %w", name, err)
		}
	}
	return nil
}
