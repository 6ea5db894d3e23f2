package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	visibility "github.com/switchyard-sched/switchyard/pkg/apis/visibility/v1alpha1"
	coordinatorpkg "github.com/switchyard-sched/switchyard/pkg/coordinator"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

func switchyardClient(t *testing.T) versioned.Interface {
	t.Helper()
	sy, err := versioned.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	return sy
}

// createQueue creates a Queue and deletes it when the test ends.
func createQueue(ctx context.Context, t *testing.T, name string, spec v1alpha1.QueueSpec) *v1alpha1.Queue {
	t.Helper()
	sy := switchyardClient(t)
	q, err := sy.SwitchyardV1alpha1().Queues().Create(ctx, &v1alpha1.Queue{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating queue %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = sy.SwitchyardV1alpha1().Queues().Delete(context.Background(), name, metav1.DeleteOptions{})
		waitUnguarded(t, name, spec.SchedulerName())
	})
	return q
}

// waitUnguarded waits (up to 30 s) until the API server's routing guard no
// longer refuses direct pods of profile in the deleted queue's name: the
// coordinator rewrites the guard a moment after the Queue goes, and a later
// test may name that profile directly.
func waitUnguarded(t *testing.T, queue, profile string) {
	if profile == "" || profile == "switchyard" || profile == v1alpha1.ExternalSchedulerName {
		return
	}
	probe := localcluster.Pod(metav1.NamespaceDefault, "guard-probe", localcluster.PodSpec{SchedulerName: profile})
	mention := "the scheduler of Queue " + queue + ","
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, last = cluster.Client.CoreV1().Pods(metav1.NamespaceDefault).Create(ctx, probe.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return last == nil || !strings.Contains(last.Error(), mention), nil
	})
	if err != nil {
		t.Logf("profile %s still guarded for deleted Queue %s: %v", profile, queue, last)
	}
}

// createRoutedQueue creates a Queue (deleted when the test ends) and waits
// until the API server routes pods of namespace ns to its scheduler.
func createRoutedQueue(ctx context.Context, t *testing.T, ns, name string, spec v1alpha1.QueueSpec) *v1alpha1.Queue {
	t.Helper()
	q := createQueue(ctx, t, name, spec)
	if err := cluster.WaitForRouting(ctx, ns, name, spec.SchedulerName()); err != nil {
		t.Fatal(err)
	}
	return q
}

func queuedPod(ns, name, queue string, selector map[string]string) *corev1.Pod {
	spec := localcluster.PodSpec{SchedulerName: "switchyard", CPU: "10m", Memory: "16Mi", NodeSelector: selector, Labels: map[string]string{"test": "queued"}}
	if queue != "" {
		spec.Labels[v1alpha1.QueueLabel] = queue
	}
	return localcluster.Pod(ns, name, spec)
}

// TestQueueRoutingByLabel checks routing inside the API server: the pod
// returned by create already carries its queue's profile (and the gate when
// the queue has limits), the profile binds it, and a label naming no queue
// goes to the default queue with a Warning Event.
func TestQueueRoutingByLabel(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 4, localcluster.NodeSpec{CPU: "8", Memory: "32Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createQueue(ctx, t, "rt-general", v1alpha1.QueueSpec{Profile: "switchyard", Default: true})
	createQueue(ctx, t, "rt-batch", v1alpha1.QueueSpec{Profile: "switchyard-batch"})
	createQueue(ctx, t, "rt-latency", v1alpha1.QueueSpec{Profile: "switchyard-latency"})
	// maxAdmitted 0 holds every pod until the test raises it.
	createQueue(ctx, t, "rt-held", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](0)})
	for queue, profile := range map[string]string{"rt-batch": "switchyard-batch", "rt-latency": "switchyard-latency", "rt-held": "switchyard-batch", "": "switchyard"} {
		if err := cluster.WaitForRouting(ctx, ns, queue, profile); err != nil {
			t.Fatal(err)
		}
	}

	cases := []struct {
		pod, label, wantProfile, wantQueue string
		wantGate                           bool
	}{
		{"batch", "rt-batch", "switchyard-batch", "rt-batch", false},
		{"latency", "rt-latency", "switchyard-latency", "rt-latency", false},
		{"held", "rt-held", "switchyard-batch", "rt-held", true},
		{"unlabelled", "", "switchyard", "rt-general", false},
		{"unknown", "no-such-queue", "switchyard", "rt-general", false},
	}
	for _, tc := range cases {
		created, err := cluster.CreatePods(ctx, queuedPod(ns, tc.pod, tc.label, selector))
		if err != nil {
			t.Fatal(err)
		}
		pod := created[0]
		if pod.Spec.SchedulerName != tc.wantProfile {
			t.Errorf("pod %s (label %q) created with schedulerName %q, want %q", tc.pod, tc.label, pod.Spec.SchedulerName, tc.wantProfile)
		}
		if got := pod.Annotations["switchyard.io/routed-queue"]; got != tc.wantQueue {
			t.Errorf("pod %s routed to queue %q, want %q", tc.pod, got, tc.wantQueue)
		}
		if got := v1alpha1.HasAdmissionGate(pod); got != tc.wantGate {
			t.Errorf("pod %s: admission gate present = %v, want %v", tc.pod, got, tc.wantGate)
		}
	}
	// The held pod waits (and says so) until its queue admits one more.
	waitForEvent(ctx, t, ns, "held", "Queued", "rt-held")
	waitForQueueStatus(ctx, t, "rt-held", func(st v1alpha1.QueueStatus) bool { return st.Pending == 1 && st.OldestPendingSince != nil })
	if _, err := cluster.WaitForBound(ctx, ns, "test=queued", len(cases)-1, time.Minute); err != nil {
		t.Fatal(err)
	}
	held, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "held", metav1.GetOptions{})
	if err != nil || held.Spec.NodeName != "" || !v1alpha1.HasAdmissionGate(held) {
		t.Fatalf("the held pod must stay gated and unbound while maxAdmitted is 0 (err %v)", err)
	}
	sy := switchyardClient(t)
	q, err := sy.SwitchyardV1alpha1().Queues().Get(ctx, "rt-held", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q.Spec.MaxAdmitted = ptr.To[int32](2)
	if _, err := sy.SwitchyardV1alpha1().Queues().Update(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods, err := cluster.WaitForBound(ctx, ns, "test=queued", len(cases), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		for _, p := range pods {
			if p.Name == tc.pod {
				assertScheduledBy(ctx, t, []corev1.Pod{p}, tc.wantProfile)
			}
		}
	}
	waitForEvent(ctx, t, ns, "unknown", "UnknownQueue", "no-such-queue")
	// The admission is recorded on the pod by the same patch that removed
	// the gate (one write per admission), not by an Event.
	held, err = cluster.Client.CoreV1().Pods(ns).Get(ctx, "held", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var record v1alpha1.AdmissionRecord
	if err := json.Unmarshal([]byte(held.Annotations[v1alpha1.AdmittedAnnotation]), &record); err != nil {
		t.Fatalf("the admitted pod has no readable %s annotation: %v", v1alpha1.AdmittedAnnotation, err)
	}
	if record.Queue != "rt-held" || record.Time.IsZero() || !strings.Contains(record.Limits, "maxAdmitted 1/2") {
		t.Errorf("admission record %+v, want queue rt-held, a time and limits naming maxAdmitted 1/2", record)
	}
}

// TestPodBeforeAnyQueue checks that with no Queue at all, a pod that asks
// for the router is still scheduled, by the profile named switchyard.
func TestPodBeforeAnyQueue(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	queues, err := switchyardClient(t).SwitchyardV1alpha1().Queues().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(queues.Items); n > 0 {
		t.Fatalf("%d Queues left over by other tests; this test needs none", n)
	}
	_, selector := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "4", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]
	if _, err := cluster.CreatePods(ctx, queuedPod(ns, "early", "batch", selector)); err != nil {
		t.Fatal(err)
	}
	pods, err := cluster.WaitForBound(ctx, ns, "test=queued", 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	assertScheduledBy(ctx, t, pods, "switchyard")
}

// admittedCheck fails when more than max pods of the namespace are admitted
// (no gate) and not yet bound, at any observed moment.
func admittedCheck(max int) func(map[types.UID]*corev1.Pod, *corev1.Pod) error {
	peak := 0
	return func(pods map[types.UID]*corev1.Pod, _ *corev1.Pod) error {
		n := 0
		for _, p := range pods {
			if !v1alpha1.HasAdmissionGate(p) && p.Spec.NodeName == "" && p.DeletionTimestamp == nil {
				n++
			}
		}
		if n > peak {
			peak = n
		}
		if n > max {
			return fmt.Errorf("%d pods admitted and unbound at once, maxAdmitted is %d", n, max)
		}
		return nil
	}
}

func createQueuedPods(ctx context.Context, t *testing.T, ns, queue string, count int, selector map[string]string, mutate func(*corev1.Pod)) {
	t.Helper()
	for i := range count {
		pod := queuedPod(ns, fmt.Sprintf("%s-%d", queue, i), queue, selector)
		if mutate != nil {
			mutate(pod)
		}
		if _, err := cluster.CreatePods(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMaxAdmittedNeverExceeded drains 500 pods through a queue with
// maxAdmitted 10 and checks the limit at every change the API server made.
func TestMaxAdmittedNeverExceeded(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 20, localcluster.NodeSpec{CPU: "32", Memory: "128Gi", Pods: 110})
	ns := selector["switchyard.io/test-nodes"]
	createRoutedQueue(ctx, t, ns, "max-admitted", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](10)})
	observer, err := cluster.ObservePods(ctx, ns, admittedCheck(10))
	if err != nil {
		t.Fatal(err)
	}
	createQueuedPods(ctx, t, ns, "max-admitted", 500, selector, nil)
	_, err = cluster.WaitForBound(ctx, ns, "test=queued", 500, 3*time.Minute)
	for _, e := range observer.Stop() {
		t.Error(e)
	}
	if err != nil {
		t.Fatal(err)
	}
	waitForQueueStatus(ctx, t, "max-admitted", func(st v1alpha1.QueueStatus) bool {
		return st.Pending == 0 && st.Admitted == 0 && st.Scheduled == 500
	})
}

// TestQuotaNeverExceeded drains 100 short jobs of 100m CPU through a queue
// with a quota of one CPU: admitted, unfinished pods never ask for more.
func TestQuotaNeverExceeded(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 4, localcluster.NodeSpec{CPU: "32", Memory: "128Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createRoutedQueue(ctx, t, ns, "quota", v1alpha1.QueueSpec{Profile: "switchyard-batch", Quota: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}})
	limit := resource.MustParse("1")
	observer, err := cluster.ObservePods(ctx, ns, func(pods map[types.UID]*corev1.Pod, _ *corev1.Pod) error {
		used := resource.Quantity{}
		for _, p := range pods {
			running := p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
			if running && !v1alpha1.HasAdmissionGate(p) {
				used.Add(*p.Spec.Containers[0].Resources.Requests.Cpu())
			}
		}
		if used.Cmp(limit) > 0 {
			return fmt.Errorf("admitted, unfinished pods request %s CPU, quota is %s", used.String(), limit.String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	createQueuedPods(ctx, t, ns, "quota", 100, selector, func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("100m")
		p.Annotations = map[string]string{localcluster.RunForAnnotation: "300ms"}
	})
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "test=queued"})
		if err != nil {
			return false, nil
		}
		done := 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodSucceeded {
				done++
			}
		}
		return done == 100, nil
	})
	for _, e := range observer.Stop() {
		t.Error(e)
	}
	if err != nil {
		t.Fatalf("not all 100 quota-limited jobs finished: %v", err)
	}
}

// TestWeightedShare lets two backlogged queues with weights 3 and 1 compete
// for a cluster-wide cap of 4 admitted-but-unbound pods and checks that the
// first 80 admissions split about 3:1.
func TestWeightedShare(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 10, localcluster.NodeSpec{CPU: "32", Memory: "128Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createQueue(ctx, t, "share-heavy", v1alpha1.QueueSpec{Profile: "switchyard-batch", Weight: 3, MaxAdmitted: ptr.To[int32](1000)})
	createQueue(ctx, t, "share-light", v1alpha1.QueueSpec{Profile: "switchyard-batch", Weight: 1, MaxAdmitted: ptr.To[int32](1000)})
	for _, q := range []string{"share-heavy", "share-light"} {
		if err := cluster.WaitForRouting(ctx, ns, q, "switchyard-batch"); err != nil {
			t.Fatal(err)
		}
	}
	// With no coordinator running, pods queue up gated; then both queues are
	// backlogged from the first admission on.
	restartCoordinator(ctx, t, nil)
	createQueuedPods(ctx, t, ns, "share-heavy", 120, selector, nil)
	createQueuedPods(ctx, t, ns, "share-light", 120, selector, nil)

	var mu sync.Mutex
	var order []string
	seen := map[types.UID]bool{}
	observer, err := cluster.ObservePods(ctx, ns, func(_ map[types.UID]*corev1.Pod, p *corev1.Pod) error {
		if !seen[p.UID] && !v1alpha1.HasAdmissionGate(p) {
			seen[p.UID] = true
			mu.Lock()
			order = append(order, p.Labels[v1alpha1.QueueLabel])
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	restartCoordinator(ctx, t, &coordinatorpkg.Options{MaxAdmittedTotal: 4})
	_, err = cluster.WaitForBound(ctx, ns, "test=queued", 240, 3*time.Minute)
	observer.Stop()
	restartCoordinator(ctx, t, &coordinatorpkg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	heavy := 0
	for _, q := range order[:80] {
		if q == "share-heavy" {
			heavy++
		}
	}
	share := float64(heavy) / 80
	t.Logf("first 80 admissions: %d share-heavy (weight 3), %d share-light (weight 1): %.0f%% (want 75%% ± 10%%)", heavy, 80-heavy, share*100)
	if share < 0.65 || share > 0.85 {
		t.Errorf("share-heavy got %.0f%% of the first 80 admissions, want 75%% ± 10%% for weights 3:1", share*100)
	}
}

// TestCoordinatorRestartLosesNothing stops the coordinator in the middle of
// draining 1,000 gated pods and starts a new one: every pod is admitted
// exactly once and bound, and maxAdmitted holds throughout.
func TestCoordinatorRestartLosesNothing(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 20, localcluster.NodeSpec{CPU: "32", Memory: "128Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createRoutedQueue(ctx, t, ns, "restart", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](20)})
	check := admittedCheck(20)
	var mu sync.Mutex
	ungated := 0
	observer, err := cluster.ObservePods(ctx, ns, func(pods map[types.UID]*corev1.Pod, p *corev1.Pod) error {
		n := 0
		for _, p := range pods {
			if !v1alpha1.HasAdmissionGate(p) {
				n++
			}
		}
		mu.Lock()
		ungated = n
		mu.Unlock()
		return check(pods, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Queue all 1,000 pods first (gated by the policy in the API server, with
	// no coordinator to admit them), then drain, then kill mid-drain.
	restartCoordinator(ctx, t, nil)
	createQueuedPods(ctx, t, ns, "restart", 1000, selector, nil)
	restartCoordinator(ctx, t, &coordinatorpkg.Options{})
	first := coordinator
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 3*time.Minute, true, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return ungated >= 300, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	restartCoordinator(ctx, t, &coordinatorpkg.Options{})
	firstAdmitted := gathered(t, "switchyard_queue_admissions_total", "queue", "restart", first.Registry)
	mu.Lock()
	t.Logf("first coordinator stopped after admitting %d of 1000 pods (%d observed ungated then)", int(firstAdmitted), ungated)
	if firstAdmitted >= 1000 {
		t.Errorf("the first coordinator drained everything; the restart tested nothing")
	}
	mu.Unlock()
	_, err = cluster.WaitForBound(ctx, ns, "test=queued", 1000, 4*time.Minute)
	for _, e := range observer.Stop() {
		t.Error(e)
	}
	if err != nil {
		t.Fatal(err)
	}
	secondAdmitted := gathered(t, "switchyard_queue_admissions_total", "queue", "restart", coordinator.Registry)
	if total := int(firstAdmitted + secondAdmitted); total != 1000 {
		t.Errorf("the two coordinators admitted %d + %d = %d pods, want exactly 1000", int(firstAdmitted), int(secondAdmitted), total)
	}
}

// restartCoordinator stops the running coordinator and, unless opts is nil,
// starts a new one with opts.
func restartCoordinator(ctx context.Context, t *testing.T, opts *coordinatorpkg.Options) {
	t.Helper()
	if coordinator != nil {
		if err := coordinator.Stop(); err != nil {
			t.Fatalf("stopping the coordinator: %v", err)
		}
		coordinator = nil
	}
	if opts == nil {
		return
	}
	var err error
	if coordinator, err = cluster.StartCoordinator(ctx, coordinatorOptions(*opts)); err != nil {
		t.Fatal(err)
	}
	// The API server marked the visibility API unavailable while no
	// coordinator listened; wait until it reaches the new one.
	if err := cluster.WaitForAPIService(ctx, visibility.APIServiceName); err != nil {
		t.Fatal(err)
	}
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func waitForQueueStatus(ctx context.Context, t *testing.T, name string, ok func(v1alpha1.QueueStatus) bool) {
	t.Helper()
	sy := switchyardClient(t)
	var last v1alpha1.QueueStatus
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		q, err := sy.SwitchyardV1alpha1().Queues().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = q.Status
		return ok(q.Status), nil
	})
	if err != nil {
		t.Fatalf("queue %s status never matched; last: pending=%d admitted=%d scheduled=%d conditions=%v", name, last.Pending, last.Admitted, last.Scheduled, last.Conditions)
	}
}

// waitForEvent waits for an event on the pod (any pod of the namespace
// when pod is empty) with the reason and a note that mentions the text.
func waitForEvent(ctx context.Context, t *testing.T, ns, pod, reason, mention string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		events, err := cluster.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, e := range events.Items {
			if (pod == "" || e.Regarding.Name == pod) && e.Reason == reason && strings.Contains(e.Note, mention) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("pod %s: no %s event mentioning %q", pod, reason, mention)
	}
}

// TestInvalidQueues checks that the API server refuses bad Queues with a
// message a user understands, and that what it cannot refuse (a profile no
// scheduler serves) is reported as a condition.
func TestInvalidQueues(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	sy := switchyardClient(t)
	cases := []struct {
		name string
		spec v1alpha1.QueueSpec
		want string
	}{
		{"neither-profile-nor-external", v1alpha1.QueueSpec{}, "either a scheduler profile (spec.profile) or an external scheduler (spec.external), exactly one"},
		{"profile-and-external", v1alpha1.QueueSpec{Profile: "switchyard", External: &v1alpha1.ExternalScheduler{AMQPQueue: "jobs"}}, "exactly one"},
		{"reserved-amqp-queue", v1alpha1.QueueSpec{External: &v1alpha1.ExternalScheduler{AMQPQueue: "amq.jobs"}}, "RabbitMQ reserves"},
		{"bad-amqp-queue", v1alpha1.QueueSpec{External: &v1alpha1.ExternalScheduler{AMQPQueue: "jobs queue"}}, "amqpQueue must start with a letter or digit"},
		{"bad-profile", v1alpha1.QueueSpec{Profile: "Batch_Profile"}, "profile must be a scheduler name"},
		{"negative-max", v1alpha1.QueueSpec{Profile: "switchyard", MaxAdmitted: ptr.To[int32](-1)}, "spec.maxAdmitted"},
		{"zero-weight", v1alpha1.QueueSpec{Profile: "switchyard", Weight: -2}, "spec.weight"},
		{"negative-quota", v1alpha1.QueueSpec{Profile: "switchyard", Quota: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("-1")}}, "quota quantities must not be negative"},
		{"zero-rate", v1alpha1.QueueSpec{Profile: "switchyard", AdmissionRate: &v1alpha1.AdmissionRate{PodsPerSecond: resource.MustParse("0")}}, "podsPerSecond must be greater than zero"},
	}
	for _, tc := range cases {
		_, err := sy.SwitchyardV1alpha1().Queues().Create(ctx, &v1alpha1.Queue{ObjectMeta: metav1.ObjectMeta{Name: tc.name}, Spec: tc.spec}, metav1.CreateOptions{})
		if err == nil {
			_ = sy.SwitchyardV1alpha1().Queues().Delete(ctx, tc.name, metav1.DeleteOptions{})
			t.Errorf("%s: accepted, want rejected with %q", tc.name, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: rejected with %q, want a message mentioning %q", tc.name, err, tc.want)
		}
		t.Logf("%s: %v", tc.name, err)
	}

	// At most one default: the shipped ValidatingAdmissionPolicy refuses a
	// second one. Policies take a moment to reach the admission chain.
	policy, err := localcluster.LoadManifests("manifests/coordinator/single-default-queue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.Apply(ctx, policy); err != nil {
		t.Fatal(err)
	}
	createQueue(ctx, t, "first-default", v1alpha1.QueueSpec{Profile: "switchyard", Default: true})
	var lastErr error
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, lastErr = sy.SwitchyardV1alpha1().Queues().Create(ctx, &v1alpha1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "second-default"}, Spec: v1alpha1.QueueSpec{Profile: "switchyard", Default: true}}, metav1.CreateOptions{})
		if lastErr == nil {
			_ = sy.SwitchyardV1alpha1().Queues().Delete(ctx, "second-default", metav1.DeleteOptions{})
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("a second default Queue was never refused")
	}
	if !strings.Contains(lastErr.Error(), "first-default is already the default queue") {
		t.Errorf("second default refused with %q, want it to name first-default", lastErr)
	}
	t.Logf("second-default: %v", lastErr)

	createQueue(ctx, t, "unknown-profile", v1alpha1.QueueSpec{Profile: "no-such-profile"})
	waitForQueueStatus(ctx, t, "unknown-profile", func(st v1alpha1.QueueStatus) bool {
		return meta.IsStatusConditionTrue(st.Conditions, v1alpha1.QueueProfileMissing) && meta.IsStatusConditionFalse(st.Conditions, v1alpha1.QueueReady)
	})
}

// TestAdmittedTimeoutFreesTheQueue: a queue of maxAdmitted 1 whose admitted
// pod can never bind would hold every later pod forever; with
// admittedTimeoutSeconds the stuck pod stops counting after the timeout (an
// AdmittedTimeout Event, the Overdue count and the metric say so) and the
// next pod is admitted and bound.
func TestAdmittedTimeoutFreesTheQueue(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "8", Memory: "32Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createRoutedQueue(ctx, t, ns, "admitted-timeout", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](1), AdmittedTimeoutSeconds: ptr.To[int32](2)})
	// No node carries this label: admitted, never bound.
	stuck := queuedPod(ns, "stuck", "admitted-timeout", map[string]string{"switchyard.io/test-nodes": "nowhere"})
	if _, err := cluster.CreatePods(ctx, stuck); err != nil {
		t.Fatal(err)
	}
	waitForQueueStatus(ctx, t, "admitted-timeout", func(st v1alpha1.QueueStatus) bool { return st.Admitted == 1 })
	if _, err := cluster.CreatePods(ctx, queuedPod(ns, "next", "admitted-timeout", selector)); err != nil {
		t.Fatal(err)
	}
	bound, err := cluster.WaitForBound(ctx, ns, "test=queued", 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if bound[0].Name != "next" {
		t.Errorf("bound %s, want next", bound[0].Name)
	}
	waitForEvent(ctx, t, ns, "stuck", "AdmittedTimeout", "no longer counts against the queue's maxAdmitted")
	waitForQueueStatus(ctx, t, "admitted-timeout", func(st v1alpha1.QueueStatus) bool {
		return st.Overdue == 1 && st.Admitted == 0 && st.Scheduled == 1
	})
	families, err := coordinator.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() != "switchyard_queue_admitted_timeouts_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelValue(m, "queue") == "admitted-timeout" && m.GetCounter().GetValue() == 1 {
				found = true
			}
		}
	}
	if !found {
		t.Error("switchyard_queue_admitted_timeouts_total{queue=\"admitted-timeout\"} is not 1")
	}
}

// gangMember is a queued pod of set (of size) with no locality, so that
// the CalcSet plugin may spread it anywhere.
func gangMember(ns, name, queue, set string, size int, selector map[string]string) *corev1.Pod {
	p := queuedPod(ns, name, queue, selector)
	p.Labels[v1alpha1.CalcSetLabel] = set
	p.Labels[v1alpha1.CalcSetSizeLabel] = strconv.Itoa(size)
	p.Labels[v1alpha1.CalcSetLocalityLabel] = "none"
	return p
}

// sameDecision checks, at every observed change, that the members of each
// set that have an admission record were admitted by one decision (one
// record time), and that maxAdmitted holds.
func sameDecision(max int) func(map[types.UID]*corev1.Pod, *corev1.Pod) error {
	admitted := admittedCheck(max)
	return func(pods map[types.UID]*corev1.Pod, changed *corev1.Pod) error {
		if err := admitted(pods, changed); err != nil {
			return err
		}
		set := changed.Labels[v1alpha1.CalcSetLabel]
		if set == "" {
			return nil
		}
		times := map[string]bool{}
		for _, p := range pods {
			if p.Labels[v1alpha1.CalcSetLabel] != set {
				continue
			}
			if raw, ok := p.Annotations[v1alpha1.AdmittedAnnotation]; ok {
				var record v1alpha1.AdmissionRecord
				if err := json.Unmarshal([]byte(raw), &record); err != nil {
					return err
				}
				times[record.Time.UTC().Format(time.RFC3339Nano)] = true
			}
		}
		if len(times) > 1 {
			return fmt.Errorf("set %s was admitted by %d decisions, want one: %v", set, len(times), times)
		}
		return nil
	}
}

// TestGangAdmission: calculation sets in a gated queue are admitted whole.
// A set larger than maxAdmitted is reported (Event and Queue condition) and
// does not block the queue; a set that fits goes in one decision; 50 sets
// drain through maxAdmitted 5 with every set admitted by one decision and
// the limit holding at every change the API server made.
func TestGangAdmission(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 10, localcluster.NodeSpec{CPU: "32", Memory: "128Gi", Pods: 110})
	ns := selector["switchyard.io/test-nodes"]
	createRoutedQueue(ctx, t, ns, "gangs", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](5)})
	observer, err := cluster.ObservePods(ctx, ns, sameDecision(5))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := cluster.CreatePods(ctx, gangMember(ns, fmt.Sprintf("big-%d", i), "gangs", "big", 8, selector)); err != nil {
			t.Fatal(err)
		}
	}
	waitForEvent(ctx, t, ns, "", "CalcSetCannotFit", "the set has 8 members and the queue's maxAdmitted is 5")
	waitForQueueStatus(ctx, t, "gangs", func(st v1alpha1.QueueStatus) bool {
		return meta.IsStatusConditionTrue(st.Conditions, v1alpha1.QueueCalcSetsCannotFit) && st.Pending == 8
	})
	// pending and explain say why the set waits, through the visibility API.
	out, err := kubectlSwitchyard(ctx, "pending", "gangs", "-o", "wide", "--kubeconfig", cluster.KubeconfigPath)
	t.Logf("$ kubectl switchyard pending gangs -o wide\n%s", out)
	if err != nil || strings.Count(out, "calculation set big can never be admitted whole: the set has 8 members and the queue's maxAdmitted is 5") != 8 {
		t.Errorf("pending gangs does not show each member of the set that cannot fit: %v", err)
	}
	out, err = kubectlSwitchyard(ctx, "explain", ns+"/big-0", "--kubeconfig", cluster.KubeconfigPath)
	t.Logf("$ kubectl switchyard explain %s/big-0\n%s", ns, out)
	if err != nil || !strings.Contains(out, "held by calculation set big can never be admitted whole") {
		t.Errorf("explain big-0 does not say the set cannot fit: %v", err)
	}
	// The unfit set holds nothing: a set of 4 behind it goes, whole.
	for i := range 4 {
		if _, err := cluster.CreatePods(ctx, gangMember(ns, fmt.Sprintf("small-%d", i), "gangs", "small", 4, selector)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cluster.WaitForBound(ctx, ns, v1alpha1.CalcSetLabel+"=small", 4, time.Minute); err != nil {
		t.Fatal(err)
	}
	// 50 sets of 4, one at a time through maxAdmitted 5.
	for set := range 50 {
		for i := range 4 {
			name := fmt.Sprintf("drain-%d", set)
			if _, err := cluster.CreatePods(ctx, gangMember(ns, fmt.Sprintf("%s-%d", name, i), "gangs", name, 4, selector)); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, err = cluster.WaitForBound(ctx, ns, "test=queued", 4+200, 3*time.Minute)
	for _, e := range observer.Stop() {
		t.Error(e)
	}
	if err != nil {
		t.Fatal(err)
	}
	big, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.CalcSetLabel + "=big"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range big.Items {
		if !v1alpha1.HasAdmissionGate(&p) {
			t.Errorf("member %s of the set that cannot fit was admitted", p.Name)
		}
	}
}

// TestExplainHeldPod runs `kubectl switchyard explain` against the real API
// server for a pod its queue holds, and for one the scheduler cannot place.
func TestExplainHeldPod(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "1", Memory: "4Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createRoutedQueue(ctx, t, ns, "explain-held", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](0)})
	createRoutedQueue(ctx, t, ns, "explain-open", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](5)})
	big := queuedPod(ns, "too-big", "explain-open", selector)
	big.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}
	if _, err := cluster.CreatePods(ctx, queuedPod(ns, "held", "explain-held", selector), big); err != nil {
		t.Fatal(err)
	}
	waitForEvent(ctx, t, ns, "held", "Queued", "maxAdmitted")
	waitForEvent(ctx, t, ns, "too-big", "FailedScheduling", "Insufficient cpu")
	explain := func(pod string) string {
		out, err := kubectlSwitchyard(ctx, "explain", ns+"/"+pod, "--kubeconfig", cluster.KubeconfigPath)
		if err != nil {
			t.Fatalf("explain %s: %v\n%s", pod, err, out)
		}
		t.Logf("$ kubectl switchyard explain %s/%s\n%s", ns, pod, out)
		return out
	}
	for pod, wants := range map[string][]string{
		"held": {"Route:     Queue explain-held, profile switchyard-batch", "waiting for admission; held by maxAdmitted (0/0)",
			"Position:  1 in queue explain-held; held by maxAdmitted (0/0)", "Estimate:  no estimate"},
		"too-big": {"admitted", "by Queue explain-open", "Scheduler: 0/1 nodes are available", "Insufficient cpu"},
	} {
		out := explain(pod)
		for _, want := range wants {
			if !strings.Contains(out, want) {
				t.Errorf("explain %s lacks %q", pod, want)
			}
		}
	}
}

// TestCLIVersionAndErrors: `kubectl switchyard version` reads the real API
// server's version and sees Switchyard's API served; explain of a missing
// pod says how to name one.
func TestCLIVersionAndErrors(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	run := func(args ...string) (string, error) {
		return kubectlSwitchyard(ctx, append(args, "--kubeconfig", cluster.KubeconfigPath)...)
	}
	out, err := run("version")
	// The API server built from vendor/ carries no release version stamp
	// (v0.0.0-master): check the shape, not the number.
	if err != nil || !strings.Contains(out, "Server: Kubernetes v") || !strings.Contains(out, ", Switchyard API switchyard.io/v1alpha1") {
		t.Errorf("kubectl switchyard version: %v\n%s", err, out)
	}
	t.Logf("$ kubectl switchyard version\n%s", out)
	if _, err := run("explain", "default/no-such-pod"); err == nil || !strings.Contains(err.Error(), "name it as NAMESPACE/POD or pass -n NAMESPACE") {
		t.Errorf("explain of a missing pod: %v, want a hint", err)
	}
}
