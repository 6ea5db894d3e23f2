package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/decisions"
	"github.com/switchyard-sched/switchyard/pkg/lease"
	"github.com/switchyard-sched/switchyard/pkg/shortjob"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// externalQueue creates a Queue handing its pods to the RabbitMQ queue it
// returns, unique to this run, and removes both when the test ends. The
// other fields of spec.External, when set, are kept.
func externalQueue(ctx context.Context, t *testing.T, name string, spec v1alpha1.QueueSpec) string {
	t.Helper()
	amqpQueue := runID + "." + name
	external := v1alpha1.ExternalScheduler{}
	if spec.External != nil {
		external = *spec.External
	}
	external.AMQPQueue = amqpQueue
	spec.External = &external
	// Cleanups run last first: the RabbitMQ queues go after the Queue.
	t.Cleanup(func() { deleteAMQPQueues(amqpQueue) })
	createQueue(ctx, t, name, spec)
	return amqpQueue
}

func deleteAMQPQueues(queue string) {
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		for _, q := range []string{queue, broker.DeadLetterQueue(queue), broker.RetryQueue(queue)} {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
	}
}

// startShortJob runs one switchyard-shortjob replica in this process.
func startShortJob(ctx context.Context, t *testing.T, queue, identity string) *prometheus.Registry {
	t.Helper()
	reg, _ := startShortJobWith(ctx, t, shortjob.Options{Queue: queue, Identity: identity})
	return reg
}

// gathered sums a counter or gauge over the registries, only its series whose
// label has value when label is set.
func gathered(t *testing.T, name, label, value string, regs ...prometheus.Gatherer) float64 {
	t.Helper()
	sum := 0.0
	for _, reg := range regs {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != name {
				continue
			}
			for _, m := range f.GetMetric() {
				if label == "" || labelValue(m, label) == value {
					sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

// boundOnce fails the test if any pod, once bound, is seen on another node.
func boundOnce() func(map[types.UID]*corev1.Pod, *corev1.Pod) error {
	var mu sync.Mutex
	nodeOf := map[types.UID]string{}
	return func(_ map[types.UID]*corev1.Pod, p *corev1.Pod) error {
		if p.Spec.NodeName == "" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if prev, ok := nodeOf[p.UID]; ok && prev != p.Spec.NodeName {
			return fmt.Errorf("pod %s bound to %s and then %s", p.Name, prev, p.Spec.NodeName)
		}
		nodeOf[p.UID] = p.Spec.NodeName
		return nil
	}
}

func createExternalPods(ctx context.Context, t *testing.T, ns, queue string, count int, selector map[string]string) {
	t.Helper()
	for i := range count {
		if _, err := cluster.CreatePods(ctx, queuedPod(ns, fmt.Sprintf("job-%d", i), queue, selector)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExternalQueueBindsEveryPodOnce sends 300 pods through an external
// queue to two short-job replicas: every pod is bound, by exactly one bind.
func TestExternalQueueBindsEveryPodOnce(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 10, localcluster.NodeSpec{CPU: "32", Memory: "64Gi"})
	ns := selector["switchyard.io/test-nodes"]
	amqpQueue := externalQueue(ctx, t, "ext-once", v1alpha1.QueueSpec{})
	if err := cluster.WaitForRouting(ctx, ns, "ext-once", v1alpha1.ExternalSchedulerName); err != nil {
		t.Fatal(err)
	}
	regA := startShortJob(ctx, t, amqpQueue, "shortjob-a")
	regB := startShortJob(ctx, t, amqpQueue, "shortjob-b")
	observer, err := cluster.ObservePods(ctx, ns, boundOnce())
	if err != nil {
		t.Fatal(err)
	}
	createExternalPods(ctx, t, ns, "ext-once", 300, selector)
	pods, err := cluster.WaitForBound(ctx, ns, "test=queued", 300, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if p.Spec.SchedulerName != v1alpha1.ExternalSchedulerName {
			t.Fatalf("pod %s has schedulerName %q, want %q", p.Name, p.Spec.SchedulerName, v1alpha1.ExternalSchedulerName)
		}
	}
	for _, err := range observer.Stop() {
		t.Error(err)
	}
	bound := gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeBound, regA, regB)
	if bound != 300 {
		t.Errorf("the short-job replicas made %v successful binds, want exactly 300", bound)
	}
	t.Logf("binds: a=%v b=%v; duplicates skipped: already bound %v, lost race %v",
		gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeBound, regA),
		gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeBound, regB),
		gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeAlready, regA, regB),
		gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeLostRace, regA, regB))
}

// TestExternalConsumerDiesBeforeAck: a consumer that received a pod's
// message and died before acknowledging it loses nothing: the broker
// redelivers it and the short-job scheduler binds the pod.
func TestExternalConsumerDiesBeforeAck(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "4", Memory: "8Gi"})
	ns := selector["switchyard.io/test-nodes"]
	amqpQueue := externalQueue(ctx, t, "ext-dies", v1alpha1.QueueSpec{})
	if err := cluster.WaitForRouting(ctx, ns, "ext-dies", v1alpha1.ExternalSchedulerName); err != nil {
		t.Fatal(err)
	}
	doomed, err := broker.DialAMQP(ctx, broker.AMQPOptions{URL: amqpURL(), Name: "doomed-consumer",
		Topology: broker.Topology{Queues: []broker.Queue{broker.WorkQueue(amqpQueue, 2*time.Second)}}})
	if err != nil {
		t.Fatal(err)
	}
	received := make(chan string, 1)
	go func() {
		_ = doomed.Consume(ctx, amqpQueue, broker.ConsumeOptions{Prefetch: 1}, func(_ context.Context, d broker.Delivery) error {
			received <- string(d.Body)
			_ = doomed.Close() // the process dies before it acknowledges
			return nil
		})
	}()
	createExternalPods(ctx, t, ns, "ext-dies", 1, selector)
	select {
	case body := <-received:
		if !strings.Contains(body, "job-0") {
			t.Fatalf("doomed consumer received %s, want the message for job-0", body)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the pod's message never reached the first consumer")
	}
	reg := startShortJob(ctx, t, amqpQueue, "shortjob-after-crash")
	if _, err := cluster.WaitForBound(ctx, ns, "test=queued", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if r := gathered(t, "switchyard_broker_redelivered_total", "", "", reg); r < 1 {
		t.Errorf("the short-job scheduler saw %v redeliveries, want the unacknowledged message redelivered", r)
	}
}

// TestExternalSurvivesDroppedConnections drops every connection on the
// broker while 200 pods flow: the coordinator and the short-job scheduler
// reconnect and declare their queues again, and every pod is bound once.
func TestExternalSurvivesDroppedConnections(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Skip("rabbitmqctl not found: cannot drop the broker's connections from here")
	}
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 10, localcluster.NodeSpec{CPU: "32", Memory: "64Gi"})
	ns := selector["switchyard.io/test-nodes"]
	amqpQueue := externalQueue(ctx, t, "ext-drop", v1alpha1.QueueSpec{})
	if err := cluster.WaitForRouting(ctx, ns, "ext-drop", v1alpha1.ExternalSchedulerName); err != nil {
		t.Fatal(err)
	}
	reg := startShortJob(ctx, t, amqpQueue, "shortjob-drop")
	observer, err := cluster.ObservePods(ctx, ns, boundOnce())
	if err != nil {
		t.Fatal(err)
	}
	reconnectsBefore := gathered(t, "switchyard_broker_reconnects_total", "", "", coordinator.Registry)
	createExternalPods(ctx, t, ns, "ext-drop", 100, selector)
	if out, err := exec.CommandContext(ctx, "rabbitmqctl", "close_all_connections", "switchyard integration test").CombinedOutput(); err != nil {
		t.Fatalf("rabbitmqctl close_all_connections: %v: %s", err, out)
	}
	for i := 100; i < 200; i++ {
		if _, err := cluster.CreatePods(ctx, queuedPod(ns, fmt.Sprintf("job-%d", i), "ext-drop", selector)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cluster.WaitForBound(ctx, ns, "test=queued", 200, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, err := range observer.Stop() {
		t.Error(err)
	}
	if r := gathered(t, "switchyard_broker_reconnects_total", "", "", coordinator.Registry) - reconnectsBefore; r < 1 {
		t.Errorf("coordinator reconnected %v times, want at least once", r)
	}
	if r := gathered(t, "switchyard_broker_reconnects_total", "", "", reg); r < 1 {
		t.Errorf("short-job scheduler reconnected %v times, want at least once", r)
	}
	t.Logf("200 pods bound once each; harmless duplicates: republished %v, already bound %v, lost race %v, redelivered %v",
		gathered(t, "switchyard_dispatch_republished_total", "queue", "ext-drop", coordinator.Registry),
		gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeAlready, reg),
		gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeLostRace, reg),
		gathered(t, "switchyard_broker_redelivered_total", "", "", reg))
}

// TestExternalMalformedMessageDeadLettered: a message that does not decode
// goes to the dead-letter queue, and the consumer keeps binding pods.
func TestExternalMalformedMessageDeadLettered(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "4", Memory: "8Gi"})
	ns := selector["switchyard.io/test-nodes"]
	amqpQueue := externalQueue(ctx, t, "ext-bad", v1alpha1.QueueSpec{})
	if err := cluster.WaitForRouting(ctx, ns, "ext-bad", v1alpha1.ExternalSchedulerName); err != nil {
		t.Fatal(err)
	}
	reg := startShortJob(ctx, t, amqpQueue, "shortjob-bad")
	b, err := broker.DialAMQP(ctx, broker.AMQPOptions{URL: amqpURL(), Name: "test-publisher",
		Topology: broker.Topology{Queues: []broker.Queue{broker.WorkQueue(amqpQueue, 2*time.Second)}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Publish(ctx, "", amqpQueue, broker.Message{ID: "garbage", Body: []byte("{not json")}); err != nil {
		t.Fatal(err)
	}
	dead := make(chan broker.Delivery, 1)
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = b.Consume(dctx, broker.DeadLetterQueue(amqpQueue), broker.ConsumeOptions{}, func(_ context.Context, d broker.Delivery) error {
			dead <- d
			return nil
		})
	}()
	select {
	case d := <-dead:
		if d.ID != "garbage" {
			t.Errorf("dead-letter queue holds %q, want the malformed message", d.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the malformed message never reached the dead-letter queue")
	}
	createExternalPods(ctx, t, ns, "ext-bad", 5, selector)
	if _, err := cluster.WaitForBound(ctx, ns, "test=queued", 5, time.Minute); err != nil {
		t.Fatalf("the consumer stopped binding after a malformed message: %v", err)
	}
	if n := gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeMalformed, reg); n != 1 {
		t.Errorf("malformed messages counted: %v, want 1", n)
	}
}

// TestDecisionStream follows the decision stream as an audit tool would:
// one routing and one admission message per pod, routing first.
func TestDecisionStream(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "8", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createRoutedQueue(ctx, t, ns, "audited", v1alpha1.QueueSpec{Profile: "switchyard", MaxAdmitted: ptrTo[int32](5)})
	tap := runID + ".audit"
	b, err := broker.DialAMQP(ctx, broker.AMQPOptions{URL: amqpURL(), Name: "audit-tool", Topology: broker.Topology{
		Exchanges: []broker.Exchange{{Name: decisionExchange, Kind: "topic"}},
		Queues:    []broker.Queue{{Name: tap}},
		Bindings:  []broker.Binding{{Exchange: decisionExchange, Queue: tap, Key: "audited.*"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close(); deleteAMQPQueues(tap) }()
	var mu sync.Mutex
	got := map[string][]string{}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = b.Consume(dctx, tap, broker.ConsumeOptions{Prefetch: 1}, func(_ context.Context, d broker.Delivery) error {
			var dec decisions.Decision
			if err := json.Unmarshal(d.Body, &dec); err != nil {
				return broker.Permanent(err)
			}
			if d.RoutingKey != dec.Queue+"."+dec.Decision {
				t.Errorf("routing key %q for a %s decision of queue %s", d.RoutingKey, dec.Decision, dec.Queue)
			}
			mu.Lock()
			got[dec.Name] = append(got[dec.Name], dec.Decision)
			mu.Unlock()
			return nil
		})
	}()
	createExternalPods(ctx, t, ns, "audited", 20, selector)
	if _, err := cluster.WaitForBound(ctx, ns, "test=queued", 20, time.Minute); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		complete := 0
		for _, ds := range got {
			if len(ds) >= 2 {
				complete++
			}
		}
		mu.Unlock()
		if complete == 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 20 {
		t.Errorf("decisions for %d pods, want 20 (coordinator published %v, errors %v)", len(got),
			gathered(t, "switchyard_decisions_published_total", "", "", coordinator.Registry),
			gathered(t, "switchyard_decisions_publish_errors_total", "", "", coordinator.Registry))
	}
	for pod, ds := range got {
		if strings.Join(ds, ",") != "routed,admitted" {
			t.Errorf("pod %s: decisions %v, want exactly [routed admitted] in that order", pod, ds)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// TestExternalRepublishesUnboundPods: with no consumer, a pod still unbound
// after the queue's deadline is published again; once a consumer runs the
// pod is bound once and the extra messages are skipped as already bound.
func TestExternalRepublishesUnboundPods(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "4", Memory: "8Gi"})
	ns := selector["switchyard.io/test-nodes"]
	amqpQueue := externalQueue(ctx, t, "ext-republish", v1alpha1.QueueSpec{External: &v1alpha1.ExternalScheduler{RepublishAfterSeconds: 1}})
	if err := cluster.WaitForRouting(ctx, ns, "ext-republish", v1alpha1.ExternalSchedulerName); err != nil {
		t.Fatal(err)
	}
	createExternalPods(ctx, t, ns, "ext-republish", 1, selector)
	waitFor(ctx, t, "the pod published again after its deadline", 30*time.Second, func() bool {
		return gathered(t, "switchyard_dispatch_republished_total", "queue", "ext-republish", coordinator.Registry) >= 2
	})
	reg := startShortJob(ctx, t, amqpQueue, "shortjob-republish")
	if _, err := cluster.WaitForBound(ctx, ns, "test=queued", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	// Duplicates handled after the bind find the pod bound; those handled
	// at the same time lose the bind race (409). Both are skipped.
	waitFor(ctx, t, "the duplicates consumed", 30*time.Second, func() bool {
		return gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeAlready, reg)+
			gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeLostRace, reg) >= 2
	})
	if bound := gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeBound, reg); bound != 1 {
		t.Errorf("%v successful binds of one pod, want exactly 1", bound)
	}
}

// queueDepth is how many messages wait in a RabbitMQ queue (ready, not
// being handled).
func queueDepth(t *testing.T, ch *amqp.Channel, name string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspecting RabbitMQ queue %s: %v", name, err)
	}
	return q.Messages
}

// TestExternalOneCopyPerPod: a pod no node fits, with a consumer running and
// republishAfterSeconds 1, never has more than one message in RabbitMQ (its
// queue or the retry queue) at any look; each attempt is reported on the
// pod; after maxAttempts the coordinator gives up with a Warning Event and a
// metric and publishes it no more, and the pod is still there.
func TestExternalOneCopyPerPod(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "4", Memory: "8Gi"})
	ns := selector["switchyard.io/test-nodes"]
	amqpQueue := externalQueue(ctx, t, "ext-one-copy", v1alpha1.QueueSpec{External: &v1alpha1.ExternalScheduler{RepublishAfterSeconds: 1, MaxAttempts: 6}})
	if err := cluster.WaitForRouting(ctx, ns, "ext-one-copy", v1alpha1.ExternalSchedulerName); err != nil {
		t.Fatal(err)
	}
	reg := startShortJob(ctx, t, amqpQueue, "shortjob-one-copy")
	// No node carries this label: the pod never fits.
	if _, err := cluster.CreatePods(ctx, queuedPod(ns, "unplaceable", "ext-one-copy", map[string]string{"switchyard.io/test-nodes": "nowhere"})); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The consumer declares the queues as it starts; a failed passive
	// declare closes the channel, so each look until then takes a new one.
	var ch *amqp.Channel
	waitFor(ctx, t, "the consumer's queues declared", 30*time.Second, func() bool {
		if ch, err = conn.Channel(); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclarePassive(broker.RetryQueue(amqpQueue), true, false, false, false, nil); err != nil {
			return false
		}
		_, err := ch.QueueDeclarePassive(amqpQueue, true, false, false, false, nil)
		return err == nil
	})
	published := func() float64 {
		return gathered(t, "switchyard_dispatch_published_total", "queue", "ext-one-copy", coordinator.Registry) +
			gathered(t, "switchyard_dispatch_republished_total", "queue", "ext-one-copy", coordinator.Registry)
	}
	peak := 0
	deadline := time.Now().Add(time.Minute)
	for gathered(t, "switchyard_dispatch_gave_up_total", "queue", "ext-one-copy", coordinator.Registry) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the coordinator never gave up (published %v times)", published())
		}
		depth := queueDepth(t, ch, amqpQueue) + queueDepth(t, ch, broker.RetryQueue(amqpQueue))
		peak = max(peak, depth)
		if depth > 1 {
			t.Errorf("%d copies of one pod's message in RabbitMQ at once, want at most 1", depth)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := published(); got != 6 {
		t.Errorf("published %v times, want maxAttempts (6)", got)
	}
	waitFor(ctx, t, "every attempt handled", 10*time.Second, func() bool {
		return gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeNoFit, reg) == 6
	})
	waitForEvent(ctx, t, ns, "unplaceable", "ExternalSchedulingGaveUp", "Published 6 times")
	// Later attempts join the first Event's series (events.k8s.io
	// aggregates repeats by reason and object); the metric counted each.
	waitForEvent(ctx, t, ns, "unplaceable", "FailedScheduling", "(attempt 1)")
	// Given up: no more publications, nothing left in RabbitMQ, the pod kept.
	time.Sleep(3 * time.Second)
	if got := published(); got != 6 {
		t.Errorf("published %v times after giving up, want 6", got)
	}
	if depth := queueDepth(t, ch, amqpQueue) + queueDepth(t, ch, broker.RetryQueue(amqpQueue)) + queueDepth(t, ch, broker.DeadLetterQueue(amqpQueue)); depth != 0 {
		t.Errorf("%d messages left in RabbitMQ after giving up, want 0", depth)
	}
	if _, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "unplaceable", metav1.GetOptions{}); err != nil {
		t.Errorf("the pod is gone: %v", err)
	}
	t.Logf("peak copies in RabbitMQ: %d over 6 attempts at republishAfterSeconds 1", peak)
}

// startShortJobWith runs one switchyard-shortjob replica with opts (its
// queue, broker and registry filled in) and returns its registry and a
// stop that waits for it.
func startShortJobWith(ctx context.Context, t *testing.T, opts shortjob.Options) (*prometheus.Registry, func()) {
	t.Helper()
	opts.AMQPURL, opts.Registry = amqpURL(), prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := shortjob.Run(ctx, cluster.Client, opts); err != nil && ctx.Err() == nil {
			t.Errorf("shortjob %s: %v", opts.Identity, err)
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return opts.Registry, stop
}

// notOverfilled fails the observation when the pods bound to a node ask
// for more CPU than the node has (milliCPU per node).
func notOverfilled(milliCPU int64, overfilled map[string]bool) func(map[types.UID]*corev1.Pod, *corev1.Pod) error {
	return func(pods map[types.UID]*corev1.Pod, changed *corev1.Pod) error {
		node := changed.Spec.NodeName
		if node == "" {
			return nil
		}
		var used int64
		for _, p := range pods {
			if p.Spec.NodeName == node && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
				used += p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue()
			}
		}
		if used > milliCPU {
			overfilled[node] = true
			return fmt.Errorf("node %s holds %dm of CPU requests, more than its %dm", node, used, milliCPU)
		}
		return nil
	}
}

// TestExternalReplicasNeverOverfillANode: two switchyard-shortjob replicas
// taking turns through their Lease place 1,000 pods onto 10 nodes that
// hold exactly 1,000 of them; the leader is stopped half-way and the
// stand-by finishes. Every pod is bound and no node ever holds more than
// its CPU, at any change the API server made. The same run with both
// replicas consuming at once (no Lease) is measured beside it: how many
// nodes they overfill between them.
func TestExternalReplicasNeverOverfillANode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		elect bool
	}{{"lease", true}, {"both-active", false}} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			_, selector := testNodes(ctx, t, 10, localcluster.NodeSpec{CPU: "4", Memory: "64Gi", Pods: 200})
			ns := selector["switchyard.io/test-nodes"]
			queue := "ext-full-" + tc.name
			amqpQueue := externalQueue(ctx, t, queue, v1alpha1.QueueSpec{})
			if err := cluster.WaitForRouting(ctx, ns, queue, v1alpha1.ExternalSchedulerName); err != nil {
				t.Fatal(err)
			}
			var le *lease.Config
			if tc.elect {
				le = &lease.Config{Namespace: ns, Name: shortjob.LeaseName(amqpQueue),
					LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}
			}
			leaseFor := func(identity string) *lease.Config {
				if le == nil {
					return nil
				}
				c := *le
				c.Identity = identity
				return &c
			}
			overfilled := map[string]bool{}
			observer, err := cluster.ObservePods(ctx, ns, notOverfilled(4000, overfilled))
			if err != nil {
				t.Fatal(err)
			}
			// Every message waits in RabbitMQ before a replica starts, so
			// the replicas bind as fast as they can, at the same time.
			const total = 1000
			for i := range total {
				pod := queuedPod(ns, fmt.Sprintf("full-%d", i), queue, selector)
				pod.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU] = resource.MustParse("40m")
				if _, err := cluster.CreatePods(ctx, pod); err != nil {
					t.Fatal(err)
				}
			}
			regA, stopA := startShortJobWith(ctx, t, shortjob.Options{Queue: amqpQueue, Identity: "full-a", Prefetch: 32, LeaderElection: leaseFor("full-a")})
			if tc.elect {
				waitFor(ctx, t, "full-a holds the lease", 20*time.Second, func() bool {
					l, err := cluster.Client.CoordinationV1().Leases(ns).Get(ctx, le.Name, metav1.GetOptions{})
					return err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == "full-a"
				})
			}
			regB, _ := startShortJobWith(ctx, t, shortjob.Options{Queue: amqpQueue, Identity: "full-b", Prefetch: 32, LeaderElection: leaseFor("full-b")})
			if tc.elect {
				// The leader steps down half-way, draining its binds first.
				waitFor(ctx, t, "half the pods bound", time.Minute, func() bool {
					return gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeBound, regA, regB) >= total/2
				})
				stopA()
			}
			pods, waitErr := cluster.WaitForBound(ctx, ns, "test=queued", total, 2*time.Minute)
			errs := observer.Stop()
			bound := gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeBound, regA, regB)
			t.Logf("%s: %d of %d pods bound (a %v, b %v), %d nodes overfilled",
				tc.name, len(pods), total,
				gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeBound, regA),
				gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeBound, regB), len(overfilled))
			if !tc.elect {
				return // measured, not asserted: two independent binders race for the last room
			}
			for _, err := range errs {
				t.Error(err)
			}
			if waitErr != nil {
				t.Fatal(waitErr)
			}
			if bound != total {
				t.Errorf("%v binds, want exactly %d", bound, total)
			}
			if gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeBound, regA) == 0 ||
				gathered(t, "switchyard_shortjob_messages_total", "outcome", shortjob.OutcomeBound, regB) == 0 {
				t.Error("the leader did not bind first and the stand-by take over")
			}
		})
	}
}
