package integration

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	coordinatorpkg "github.com/switchyard-sched/switchyard/pkg/coordinator"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/routing"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// TestQueueEditedToAnotherScheduler edits an external Queue into a profile
// Queue while pods wait in it. Those pods keep their immutable
// schedulerName switchyard-external, which no profile serves: they are
// reported (StrandedPods condition, a Warning Event) and never admitted, so
// they cannot hold maxAdmitted forever, while new pods are routed to the
// profile, admitted and bound.
func TestQueueEditedToAnotherScheduler(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "8", Memory: "32Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createRoutedQueue(ctx, t, ns, "edited", v1alpha1.QueueSpec{External: &v1alpha1.ExternalScheduler{AMQPQueue: runID + ".edited"}, MaxAdmitted: ptr.To[int32](0)})
	createQueuedPods(ctx, t, ns, "edited", 2, selector, func(p *corev1.Pod) { p.Labels["test"] = "stranded" })
	waitForQueueStatus(ctx, t, "edited", func(st v1alpha1.QueueStatus) bool { return st.Pending == 2 })

	sy := switchyardClient(t)
	q, err := sy.SwitchyardV1alpha1().Queues().Get(ctx, "edited", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q.Spec.External, q.Spec.Profile, q.Spec.MaxAdmitted = nil, "switchyard-batch", ptr.To[int32](1)
	if _, err := sy.SwitchyardV1alpha1().Queues().Update(ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitForQueueStatus(ctx, t, "edited", func(st v1alpha1.QueueStatus) bool {
		c := meta.FindStatusCondition(st.Conditions, v1alpha1.QueueStrandedPods)
		return st.Pending == 0 && st.Admitted == 0 && c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "2 pods")
	})
	waitForEvent(ctx, t, ns, "edited-0", "Stranded", "switchyard-external")
	if err := cluster.WaitForRouting(ctx, ns, "edited", "switchyard-batch"); err != nil {
		t.Fatal(err)
	}
	// New pods go to the profile and are admitted one at a time.
	for i := range 3 {
		if _, err := cluster.CreatePods(ctx, queuedPod(ns, fmt.Sprintf("after-%d", i), "edited", selector)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cluster.WaitForBound(ctx, ns, "test=queued", 3, time.Minute); err != nil {
		t.Fatal(err)
	}
	stranded, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "test=stranded"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range stranded.Items {
		if !v1alpha1.HasAdmissionGate(&p) {
			t.Errorf("stranded pod %s was admitted", p.Name)
		}
	}
	waitForQueueStatus(ctx, t, "edited", func(st v1alpha1.QueueStatus) bool {
		return st.Scheduled == 3 && meta.IsStatusConditionTrue(st.Conditions, v1alpha1.QueueReady)
	})
}

// recordingTransport delays pod PATCHes (gate removals) and records when
// each one returned, and when each lease update was sent.
type recordingTransport struct {
	next  http.RoundTripper
	delay time.Duration

	mu       sync.Mutex
	patches  []time.Time
	leasePut []time.Time
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	isPatch := req.Method == http.MethodPatch && strings.Contains(req.URL.Path, "/pods/")
	if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/leases/") {
		r.mu.Lock()
		r.leasePut = append(r.leasePut, time.Now())
		r.mu.Unlock()
	}
	if isPatch {
		time.Sleep(r.delay)
	}
	resp, err := r.next.RoundTrip(req)
	if isPatch {
		r.mu.Lock()
		r.patches = append(r.patches, time.Now())
		r.mu.Unlock()
	}
	return resp, err
}

// TestCoordinatorDrainsBeforeReleasingItsLease stops a coordinator while
// its gate removals are in flight: every removal returns before the lease
// is released, so a successor never starts from a count that is about to
// change.
func TestCoordinatorDrainsBeforeReleasingItsLease(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "drain"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cluster.Client.CoreV1().Pods(ns).DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{})
	})
	createRoutedQueue(ctx, t, ns, "drain", v1alpha1.QueueSpec{Profile: "no-such-profile-drain", MaxAdmitted: ptr.To[int32](1000)})
	restartCoordinator(ctx, t, nil)
	defer restartCoordinator(ctx, t, &coordinatorpkg.Options{})
	createQueuedPods(ctx, t, ns, "drain", 200, nil, nil)

	transport := &recordingTransport{delay: 300 * time.Millisecond}
	config := rest.CopyConfig(cluster.Config)
	config.QPS, config.Burst = 500, 1000
	config.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { transport.next = rt; return transport }
	shipped, err := localcluster.ShippedSchedulerConfig()
	if err != nil {
		t.Fatal(err)
	}
	profiles, err := coordinatorpkg.ProfilesFromSchedulerConfig(shipped)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- coordinatorpkg.Run(runCtx, config, coordinatorpkg.Options{
			Profiles: append(profiles, "no-such-profile-drain"), LeaderElect: true, LeaseName: "switchyard-coordinator",
			Registry: prometheus.NewRegistry(), Identity: "draining",
		})
	}()
	// Stop once removals are flowing.
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		transport.mu.Lock()
		defer transport.mu.Unlock()
		return len(transport.patches) >= 16, nil
	})
	if err != nil {
		stop()
		t.Fatal("no gate removal was sent")
	}
	stopped := time.Now()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the coordinator did not stop")
	}
	transport.mu.Lock()
	defer transport.mu.Unlock()
	if len(transport.leasePut) == 0 {
		t.Fatal("the lease was never written")
	}
	released := transport.leasePut[len(transport.leasePut)-1]
	inFlight, late := 0, 0
	for _, at := range transport.patches {
		if at.After(stopped) {
			inFlight++
		}
		if at.After(released) {
			late++
		}
	}
	t.Logf("%d gate removals returned after the stop, %d after the lease was released (%s after the stop)", inFlight, late, released.Sub(stopped).Round(time.Millisecond))
	if inFlight == 0 {
		t.Error("no removal was in flight at the stop; the test tested nothing")
	}
	if late > 0 {
		t.Errorf("%d gate removals returned after the lease was released", late)
	}
	lease, err := cluster.Client.CoordinationV1().Leases("switchyard-system").Get(ctx, "switchyard-coordinator", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); h != "" {
		t.Errorf("lease still held by %q after the stop", h)
	}
}

// TestRoutingHoldsTenThousandQueues creates 10,000 Queues with maximal
// (63-character) names: the API server routes a pod to the last one. Then
// Queues with 253-character profile names push the routing table past what
// a ConfigMap holds: the Queues that do not fit say so in their Routed
// condition and the coordinator counts the refusal, while every Queue that
// fit still routes.
func TestRoutingHoldsTenThousandQueues(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 Queues")
	}
	_, ctx := ktesting.NewTestContext(t)
	ns := "routing-scale"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	sy := switchyardClient(t)
	const label = "switchyard.io/test=routing-scale"
	// Later tests share the control plane: wait until every Queue is gone.
	t.Cleanup(func() {
		ctx := context.Background()
		_ = wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
			// One DeleteCollection of 10,000 objects can outlast the request
			// timeout; it goes on in the API server, so ask again and look.
			_ = sy.SwitchyardV1alpha1().Queues().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: label})
			left, err := sy.SwitchyardV1alpha1().Queues().List(ctx, metav1.ListOptions{LabelSelector: label, Limit: 1})
			return err == nil && len(left.Items) == 0, nil
		})
	})
	name := func(i int) string { return fmt.Sprintf("%s-%05d", strings.Repeat("r", 57), i) }
	create := func(from, to int, profile string) {
		t.Helper()
		work := make(chan int)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					q := &v1alpha1.Queue{ObjectMeta: metav1.ObjectMeta{Name: name(i), Labels: map[string]string{"switchyard.io/test": "routing-scale"}},
						Spec: v1alpha1.QueueSpec{Profile: profile, MaxAdmitted: ptr.To[int32](10)}}
					if _, err := sy.SwitchyardV1alpha1().Queues().Create(ctx, q, metav1.CreateOptions{}); err != nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
				}
			}()
		}
		for i := from; i < to; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
		if firstErr != nil {
			t.Fatal(firstErr)
		}
	}
	start := time.Now()
	create(0, 10_000, "switchyard-latency")
	t.Logf("created 10,000 Queues in %s", time.Since(start).Round(time.Millisecond))
	if err := cluster.WaitForRouting(ctx, ns, name(9_999), "switchyard-latency"); err != nil {
		t.Fatal(err)
	}
	t.Logf("the 10,000th Queue routes %s after the first was created", time.Since(start).Round(time.Millisecond))

	// Fill the table past 1 MiB with long profile names.
	table, err := sy.SwitchyardV1alpha1().RoutingTables().Get(ctx, v1alpha1.RoutingPolicyName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	used := routing.TableBytes(table.Routes)
	t.Logf("the routing table of %d Queues takes %d bytes of %d", len(table.Routes), used, routing.MaxTableBytes)
	longProfile := strings.Repeat("p", 253)
	extra := (routing.MaxTableBytes-used)/(63+len(longProfile)+7) + 2
	create(10_000, 10_000+extra, longProfile)
	// The Queues were created concurrently, so which of them the last table
	// that fit holds depends on the order they arrived in: look for one the
	// live table lacks.
	var last string
	var conditions []metav1.Condition
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		// Looked for again each time: a write may still be on its way.
		live, err := sy.SwitchyardV1alpha1().RoutingTables().Get(ctx, v1alpha1.RoutingPolicyName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = ""
		for i := 10_000; i < 10_000+extra && last == ""; i++ {
			if _, routed := live.Routes[name(i)]; !routed {
				last = name(i)
			}
		}
		if last == "" {
			return false, nil
		}
		q, err := sy.SwitchyardV1alpha1().Queues().Get(ctx, last, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conditions = q.Status.Conditions
		c := meta.FindStatusCondition(q.Status.Conditions, v1alpha1.QueueRouted)
		return c != nil && c.Status == metav1.ConditionFalse && strings.Contains(c.Message, "one object may hold") &&
			meta.IsStatusConditionFalse(q.Status.Conditions, v1alpha1.QueueReady), nil
	})
	if err != nil {
		t.Fatalf("Queue %s, past what the routing table holds, does not report Routed=False; conditions: %+v", last, conditions)
	}
	if got := gathered(t, "switchyard_routing_errors_total", "", "", coordinator.Registry); got == 0 {
		t.Error("switchyard_routing_errors_total did not count the refused table")
	}
	if err := cluster.WaitForRouting(ctx, ns, name(9_999), "switchyard-latency"); err != nil {
		t.Errorf("a Queue that fit stopped routing: %v", err)
	}
}

// TestCoordinatorWithBrokerDown: the broker is optional at run time. A
// coordinator whose RabbitMQ is unreachable starts, admits the pods of a
// gated profile queue, publishes no decision yet blocks nothing, and holds
// an external queue's pods gated with BrokerUnavailable=True.
func TestCoordinatorWithBrokerDown(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "8", Memory: "32Gi"})
	ns := selector["switchyard.io/test-nodes"]
	restartCoordinator(ctx, t, nil)
	defer restartCoordinator(ctx, t, &coordinatorpkg.Options{})
	var err error
	// Port 1 on loopback: nothing listens, every dial is refused.
	coordinator, err = cluster.StartCoordinator(ctx, coordinatorpkg.Options{AMQPURL: "amqp://guest:guest@127.0.0.1:1/", DecisionExchange: decisionExchange})
	if err != nil {
		t.Fatalf("the coordinator did not start without its broker: %v", err)
	}
	createQueue(ctx, t, "nobroker-profile", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](10)})
	// With a limit, its pods are gated: they wait in the queue, not in the
	// dispatcher (an external queue without limits admits at creation, and
	// its pods wait unpublished until the broker is back).
	createQueue(ctx, t, "nobroker-external", v1alpha1.QueueSpec{External: &v1alpha1.ExternalScheduler{AMQPQueue: runID + ".nobroker"}, MaxAdmitted: ptr.To[int32](10)})
	if err := cluster.WaitForRouting(ctx, ns, "nobroker-profile", "switchyard-batch"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WaitForRouting(ctx, ns, "nobroker-external", v1alpha1.ExternalSchedulerName); err != nil {
		t.Fatal(err)
	}
	createQueuedPods(ctx, t, ns, "nobroker-profile", 20, selector, nil)
	createQueuedPods(ctx, t, ns, "nobroker-external", 3, selector, nil)
	if _, err := cluster.WaitForBound(ctx, ns, "test=queued,"+v1alpha1.QueueLabel+"=nobroker-profile", 20, time.Minute); err != nil {
		t.Fatalf("profile queue with the broker down: %v", err)
	}
	waitForQueueStatus(ctx, t, "nobroker-external", func(st v1alpha1.QueueStatus) bool {
		return meta.IsStatusConditionTrue(st.Conditions, v1alpha1.QueueBrokerUnavailable) &&
			meta.IsStatusConditionFalse(st.Conditions, v1alpha1.QueueReady) && st.Pending == 3 && st.Admitted == 0
	})
	if published := gathered(t, "switchyard_decisions_published_total", "", "", coordinator.Registry); published != 0 {
		t.Errorf("%v decisions published to an unreachable broker", published)
	}
}
