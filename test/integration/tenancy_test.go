package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/routing"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// teamLabel is the namespace label the tenancy tests' Queues select on.
const teamLabel = "switchyard-test/team"

func createTeamNamespace(ctx context.Context, t *testing.T, name, team string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if team != "" {
		ns.Labels = map[string]string{teamLabel: team}
	}
	if _, err := cluster.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// refusedWith waits until creating pod (a server-side dry run) is refused
// with a message holding want, and returns the error: policy and table
// changes reach the API server's admission chain a moment after they are
// written.
func refusedWith(ctx context.Context, t *testing.T, pod *corev1.Pod, want string) error {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, last = cluster.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return last != nil && strings.Contains(last.Error(), want), nil
	})
	if err != nil {
		t.Errorf("pod %s/%s: want it refused with %q, got %v", pod.Namespace, pod.Name, want, last)
		return last
	}
	if !apierrors.IsForbidden(last) {
		t.Errorf("pod %s/%s refused with %v, want 403 Forbidden (as a ResourceQuota refusal)", pod.Namespace, pod.Name, last)
	}
	return last
}

// TestQueueTenancy: who may use a queue, and that no pod reaches a queue's
// scheduler past routing. Every refusal comes from the real API server's
// ValidatingAdmissionPolicies, as a user's kubectl would show it.
func TestQueueTenancy(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "8", Memory: "32Gi"})
	createTeamNamespace(ctx, t, "tenancy-a", "a")
	createTeamNamespace(ctx, t, "tenancy-b", "b")
	createTeamNamespace(ctx, t, "tenancy-none", "")
	createQueue(ctx, t, "tn-team-a", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](100),
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{teamLabel: "a"}}})
	createQueue(ctx, t, "tn-not-b", v1alpha1.QueueSpec{Profile: "switchyard-latency",
		NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: teamLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"b"}}}}})
	for queue, profile := range map[string]string{"tn-team-a": "switchyard-batch", "tn-not-b": "switchyard-latency"} {
		if err := cluster.WaitForRouting(ctx, "tenancy-a", queue, profile); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(ns, name, queue string, mutate func(*corev1.Pod)) *corev1.Pod {
		p := queuedPod(ns, name, queue, selector)
		if mutate != nil {
			mutate(p)
		}
		return p
	}
	direct := func(schedulerName string, annotations map[string]string, gated bool) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.SchedulerName = schedulerName
			p.Annotations = annotations
			if gated {
				p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: v1alpha1.AdmissionGate}}
			}
		}
	}
	routedTo := func(q string) map[string]string { return map[string]string{v1alpha1.RoutedQueueAnnotation: q} }

	refused := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"namespace outside the selector", pod("tenancy-b", "outsider", "tn-team-a", nil),
			"namespace tenancy-b may not use Queue tn-team-a"},
		{"namespace outside a NotIn selector", pod("tenancy-b", "not-b", "tn-not-b", nil),
			"namespace tenancy-b may not use Queue tn-not-b"},
		{"a queue's profile named directly", pod("tenancy-a", "direct", "", direct("switchyard-batch", nil, false)),
			"schedulerName switchyard-batch is the scheduler of Queue"},
		{"a queue's profile named directly, with the queue's label", pod("tenancy-a", "direct-labelled", "tn-team-a", direct("switchyard-batch", nil, true)),
			"whose pods come through routing"},
		{"a routed-queue annotation forged on another scheduler's pod", pod("tenancy-a", "forged", "", direct(corev1.DefaultSchedulerName, routedTo("tn-team-a"), false)),
			"pods of Queue tn-team-a get schedulerName switchyard-batch from routing, not default-scheduler"},
		{"an annotation naming no Queue, with a queue's profile", pod("tenancy-a", "ghost", "", direct("switchyard-batch", routedTo("no-such-queue"), true)),
			"the annotation switchyard.io/routed-queue is written by routing alone, and here it names no Queue routed to schedulerName switchyard-batch"},
		{"routing's result spelled out, without the gate", pod("tenancy-a", "ungated", "tn-team-a", direct("switchyard-batch", routedTo("tn-team-a"), false)),
			"wait for admission under its limits"},
		{"routing's result spelled out, in a namespace outside the selector", pod("tenancy-b", "spelled-outsider", "tn-team-a", direct("switchyard-batch", routedTo("tn-team-a"), true)),
			"namespace tenancy-b may not use Queue tn-team-a"},
	}
	for _, tc := range refused {
		err := refusedWith(ctx, t, tc.pod, tc.want)
		t.Logf("%s: %v", tc.name, err)
	}

	accepted := []struct {
		name      string
		pod       *corev1.Pod
		wantQueue string
	}{
		{"namespace inside the selector", pod("tenancy-a", "member", "tn-team-a", nil), "tn-team-a"},
		{"unlabelled namespace inside a NotIn selector", pod("tenancy-none", "not-b", "tn-not-b", nil), "tn-not-b"},
		// Routing overwrites what the pod claimed: the forgery has no effect.
		{"a forged annotation on a routed pod", pod("tenancy-a", "claims", "tn-team-a", func(p *corev1.Pod) { p.Annotations = routedTo("tn-not-b") }), "tn-team-a"},
		// Indistinguishable from a routed pod, and held by the queue alike.
		{"routing's result spelled out in full", pod("tenancy-a", "spelled", "tn-team-a", direct("switchyard-batch", routedTo("tn-team-a"), true)), "tn-team-a"},
		{"another scheduler's pod", pod("tenancy-b", "default", "", direct(corev1.DefaultSchedulerName, nil, false)), ""},
		// What a routing policy whose cache still holds a just-deleted Queue
		// writes: the guard's fresher table lacks the Queue, and the pod
		// names no queue-served profile, so it is not refused.
		{"routed to a Queue the guard's table no longer holds", pod("tenancy-a", "stale", "", direct(localcluster.UnscheduledSchedulerName, routedTo("just-deleted"), false)), "just-deleted"},
	}
	for _, tc := range accepted {
		created, err := cluster.Client.CoreV1().Pods(tc.pod.Namespace).Create(ctx, tc.pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Errorf("%s: refused: %v", tc.name, err)
			continue
		}
		if got := created.Annotations[v1alpha1.RoutedQueueAnnotation]; got != tc.wantQueue {
			t.Errorf("%s: routed to %q, want %q", tc.name, got, tc.wantQueue)
		}
	}

	// A member's pod is admitted and bound for real.
	if _, err := cluster.CreatePods(ctx, pod("tenancy-a", "bound", "tn-team-a", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.WaitForBound(ctx, "tenancy-a", "test=queued", 1, time.Minute); err != nil {
		t.Fatal(err)
	}

	// Through a Deployment, as most pods are made: the ReplicaSet
	// controller's creates are refused, and it says so in a FailedCreate
	// Event with the policy's message; in a member namespace they run.
	controllers, stopControllers := context.WithCancel(klog.NewContext(ctx, klog.Background()))
	t.Cleanup(stopControllers)
	if err := cluster.StartWorkloadControllers(controllers); err != nil {
		t.Fatal(err)
	}
	deploy := func(ns string) {
		t.Helper()
		template := pod(ns, "", "tn-team-a", nil)
		template.Labels["app"] = "tenancy"
		d := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenancy"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "tenancy"}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: template.Labels}, Spec: template.Spec},
			},
		}
		if _, err := cluster.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deploy("tenancy-b")
	deploy("tenancy-a")
	if _, err := cluster.WaitForBound(ctx, "tenancy-a", "app=tenancy", 2, time.Minute); err != nil {
		t.Errorf("the member namespace's Deployment: %v", err)
	}
	waitForEvent(ctx, t, "tenancy-b", "", "FailedCreate", "namespace tenancy-b may not use Queue tn-team-a")
	if pods, err := cluster.Client.CoreV1().Pods("tenancy-b").List(ctx, metav1.ListOptions{LabelSelector: "app=tenancy"}); err != nil || len(pods.Items) != 0 {
		t.Errorf("the outsider's Deployment made pods: %v %v", pods, err)
	}
	for _, ns := range []string{"tenancy-a", "tenancy-b"} {
		_ = cluster.Client.AppsV1().Deployments(ns).Delete(ctx, "tenancy", metav1.DeleteOptions{})
	}
}

// jsonPatch sends a JSON patch to a pod (or its status) as client does.
func jsonPatch(ctx context.Context, t *testing.T, client interface {
	Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*corev1.Pod, error)
}, name string, ops []map[string]any, subresources ...string) error {
	t.Helper()
	data, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Patch(ctx, name, types.JSONPatchType, data, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}, subresources...)
	return err
}

// TestAdmissionGateGuarded: a user who may edit pods still cannot admit
// them (remove the admission gate, write the admission record) or move them
// to another queue; an identity holding the shipped coordinator ClusterRole
// can admit. Every answer comes from the real API server: its
// ValidatingAdmissionPolicy asks its authorizer (RBAC) per request.
func TestAdmissionGateGuarded(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "tenancy-guard"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	createRoutedQueue(ctx, t, ns, "tn-held", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](0)})
	created, err := cluster.CreatePods(ctx, queuedPod(ns, "held", "tn-held", nil),
		localcluster.Pod(ns, "plain", localcluster.PodSpec{SchedulerName: localcluster.UnscheduledSchedulerName}))
	if err != nil {
		t.Fatal(err)
	}
	if !v1alpha1.HasAdmissionGate(created[0]) {
		t.Fatalf("pod held was not gated: %+v", created[0].Spec.SchedulingGates)
	}

	// An editor of pods in the namespace (what "edit" gives a team).
	if _, err := cluster.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-editor"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "pods/status"}, Verbs: []string{"get", "patch", "update"}}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := cluster.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-editor"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-editor"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "editor"}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	editor, err := cluster.ClientFor(ctx, ns, "editor")
	if err != nil {
		t.Fatal(err)
	}
	// The shipped coordinator ClusterRole, held by another account.
	if err := cluster.ApplyKind(ctx, "ClusterRole", "manifests/coordinator/rbac.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.BindClusterRole(ctx, ns+"-admitter", v1alpha1.CoordinatorName, ns, "admitter"); err != nil {
		t.Fatal(err)
	}
	admitter, err := cluster.ClientFor(ctx, ns, "admitter")
	if err != nil {
		t.Fatal(err)
	}

	removeGate := []map[string]any{
		{"op": "test", "path": "/spec/schedulingGates/0/name", "value": v1alpha1.AdmissionGate},
		{"op": "remove", "path": "/spec/schedulingGates/0"},
	}
	annotate := func(key, value string) []map[string]any {
		return []map[string]any{{"op": "add", "path": routing.AnnotationPath(key), "value": value}}
	}
	editorPods, admitterPods := editor.CoreV1().Pods(ns), admitter.CoreV1().Pods(ns)
	cases := []struct {
		name string
		pods interface {
			Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*corev1.Pod, error)
		}
		pod         string
		ops         []map[string]any
		subresource []string
		want        string // "" means allowed
	}{
		{"the editor removes the gate", editorPods, "held", removeGate, nil, "only the coordinator admits pods of Queue tn-held"},
		{"the editor writes an admission record", editorPods, "held", annotate(v1alpha1.AdmittedAnnotation, `{"queue":"tn-held"}`), nil, "takes the verb admit on queues/tn-held"},
		{"the editor moves the pod to another queue", editorPods, "held", annotate(v1alpha1.RoutedQueueAnnotation, "tn-other"), nil, "cannot be added, changed or removed"},
		{"the editor moves it through pods/status", editorPods, "held", annotate(v1alpha1.RoutedQueueAnnotation, "tn-other"), []string{"status"}, "cannot be added, changed or removed"},
		{"the editor puts another pod in a queue", editorPods, "plain", []map[string]any{
			{"op": "add", "path": "/metadata/annotations", "value": map[string]string{v1alpha1.RoutedQueueAnnotation: "tn-held"}}}, nil, "cannot be added, changed or removed"},
		{"the editor labels the pod", editorPods, "held", []map[string]any{{"op": "add", "path": "/metadata/labels/owner", "value": "team"}}, nil, ""},
		{"the coordinator's role removes the gate", admitterPods, "held", append(removeGate, annotate(v1alpha1.AdmittedAnnotation, `{"queue":"tn-held"}`)...), nil, ""},
	}
	for _, tc := range cases {
		var err error
		// The guard reaches the admission chain with the coordinator's
		// start; a refusal that should come may need a moment.
		_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			err = jsonPatch(ctx, t, tc.pods, tc.pod, tc.ops, tc.subresource...)
			return tc.want == "" || err != nil, nil
		})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !apierrors.IsForbidden(err)):
			t.Errorf("%s: got %v, want 403 Forbidden with %q", tc.name, err, tc.want)
		default:
			t.Logf("%s: %v", tc.name, err)
		}
	}
	if err == nil {
		// Nothing above changed the pod: every patch was a dry run.
		if pod, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "held", metav1.GetOptions{}); err != nil || !v1alpha1.HasAdmissionGate(pod) {
			t.Errorf("pod held lost its gate: %v", err)
		}
	}
}
