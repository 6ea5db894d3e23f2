package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// testNodes creates a private set of nodes for one test and selects them
// for its pods, so that tests sharing the control plane never see each
// other's placements.
func testNodes(ctx context.Context, t *testing.T, count int, spec localcluster.NodeSpec) (names []string, selector map[string]string) {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("_", "-", "/", "-").Replace(t.Name()))
	selector = map[string]string{"switchyard.io/test-nodes": name}
	spec.Labels = selector
	names, err := cluster.CreateNodes(ctx, name, count, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cluster.DeleteNodes(context.Background(), names); err != nil {
			t.Error(err)
		}
	})
	if err := cluster.CreateNamespace(ctx, name); err != nil {
		t.Fatal(err)
	}
	return names, selector
}

func createPods(ctx context.Context, t *testing.T, namespace, prefix string, count int, spec localcluster.PodSpec) {
	t.Helper()
	for i := range count {
		if _, err := cluster.CreatePods(ctx, localcluster.Pod(namespace, fmt.Sprintf("%s-%d", prefix, i), spec)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBatchProfilePacksPods checks that switchyard-batch (MostAllocated)
// fills nodes before it opens new ones: 16 one-CPU pods on 20 four-CPU
// nodes need exactly 4 nodes.
func TestBatchProfilePacksPods(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 20, localcluster.NodeSpec{CPU: "4", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createPods(ctx, t, ns, "batch", 16, localcluster.PodSpec{
		SchedulerName: "switchyard-batch", CPU: "1", Memory: "1Gi",
		Labels: map[string]string{"app": "batch"}, NodeSelector: selector,
	})
	pods, err := cluster.WaitForBound(ctx, ns, "app=batch", 16, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	perNode := localcluster.PodsPerNode(pods)
	if len(perNode) != 4 {
		t.Errorf("switchyard-batch used %d nodes for 16 one-CPU pods on four-CPU nodes, want 4: %v", len(perNode), perNode)
	}
	for node, n := range perNode {
		if n != 4 {
			t.Errorf("node %s holds %d pods, want 4 (full)", node, n)
		}
	}
	assertScheduledBy(ctx, t, pods, "switchyard-batch")
}

// TestLatencyProfileSpreadsPods checks that switchyard-latency
// (LeastAllocated + spreading) gives each of 16 pods its own node when 20
// are free.
func TestLatencyProfileSpreadsPods(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 20, localcluster.NodeSpec{CPU: "4", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createPods(ctx, t, ns, "web", 16, localcluster.PodSpec{
		SchedulerName: "switchyard-latency", CPU: "500m", Memory: "512Mi",
		Labels: map[string]string{"app": "web"}, NodeSelector: selector,
	})
	pods, err := cluster.WaitForBound(ctx, ns, "app=web", 16, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	perNode := localcluster.PodsPerNode(pods)
	if len(perNode) != 16 {
		t.Errorf("switchyard-latency put 16 pods on %d nodes, want 16 (one each): %v", len(perNode), perNode)
	}
	assertScheduledBy(ctx, t, pods, "switchyard-latency")
}

// TestUnknownProfileStaysPending checks that a pod naming a scheduler no
// profile serves is left alone: no node, no scheduling condition, while a
// pod for a real profile, created after it, is bound.
func TestUnknownProfileStaysPending(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "4", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createPods(ctx, t, ns, "orphan", 1, localcluster.PodSpec{
		SchedulerName: "no-such-profile", CPU: "100m",
		Labels: map[string]string{"app": "orphan"}, NodeSelector: selector,
	})
	createPods(ctx, t, ns, "known", 1, localcluster.PodSpec{
		SchedulerName: "switchyard", CPU: "100m",
		Labels: map[string]string{"app": "known"}, NodeSelector: selector,
	})
	if _, err := cluster.WaitForBound(ctx, ns, "app=known", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	// The known pod is bound, so the scheduler has seen both; give it a few
	// more seconds to (wrongly) act on the orphan.
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 3*time.Second, true, func(ctx context.Context) (bool, error) {
		pod, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "orphan-0", metav1.GetOptions{})
		if err != nil {
			return false, nil // includes the poll's own deadline cutting a request short
		}
		if pod.Spec.NodeName != "" {
			return true, fmt.Errorf("pod for an unknown profile was bound to %s", pod.Spec.NodeName)
		}
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled {
				return true, fmt.Errorf("pod for an unknown profile got a PodScheduled condition: %s %s", c.Status, c.Message)
			}
		}
		if pod.Status.Phase != corev1.PodPending {
			return true, fmt.Errorf("pod for an unknown profile is %s, want Pending", pod.Status.Phase)
		}
		return false, nil
	})
	if !wait.Interrupted(err) {
		t.Fatal(err)
	}
}

// assertScheduledBy checks the Scheduled events: the profile that bound
// each pod reports itself as the event's source.
func assertScheduledBy(ctx context.Context, t *testing.T, pods []corev1.Pod, profile string) {
	t.Helper()
	for _, pod := range pods {
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			events, err := cluster.Client.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{
				FieldSelector: "involvedObject.name=" + pod.Name + ",reason=Scheduled",
			})
			if err != nil || len(events.Items) == 0 {
				return false, nil
			}
			for _, e := range events.Items {
				if e.ReportingController != profile {
					return true, fmt.Errorf("pod %s was scheduled by %q, want %q", pod.Name, e.ReportingController, profile)
				}
			}
			return true, nil
		})
		if err != nil {
			t.Error(err)
		}
	}
}
