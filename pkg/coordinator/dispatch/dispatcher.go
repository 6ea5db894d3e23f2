package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/reconcile"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/routing"
	listers "github.com/switchyard-sched/switchyard/pkg/generated/listers/switchyard/v1alpha1"
)

// RetryDelay is how long a message an external scheduler could not act on
// (no node fits yet, the API server refused the bind) waits in the
// queue's retry queue before it is delivered again.
const RetryDelay = 2 * time.Second

// defaultRepublishAfter and defaultMaxAttempts apply when a Queue leaves
// republishAfterSeconds or maxAttempts unset (the API server defaults them
// to 30 and 20).
const (
	defaultRepublishAfter = 30 * time.Second
	defaultMaxAttempts    = 20
)

// ReasonGaveUp is the Event reason on a pod published maxAttempts times
// without being bound.
const ReasonGaveUp = "ExternalSchedulingGaveUp"

// Metrics of the dispatcher.
type Metrics struct {
	Published   *prometheus.CounterVec
	Republished *prometheus.CounterVec
	Errors      *prometheus.CounterVec
	GaveUp      *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_dispatch_published_total", Help: "Pods published to their external scheduler, by queue (first publications).",
		}, []string{"queue"}),
		Republished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_dispatch_republished_total", Help: "Pods published again because they were still unbound after the queue's deadline, by queue.",
		}, []string{"queue"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_dispatch_errors_total", Help: "Publications that failed and will be retried, by queue.",
		}, []string{"queue"}),
	}
	m.GaveUp = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_dispatch_gave_up_total", Help: "Pods published maxAttempts times and still unbound, no longer published, by queue.",
	}, []string{"queue"})
	if reg != nil {
		reg.MustRegister(m.Published, m.Republished, m.Errors, m.GaveUp)
	}
	return m
}

// initQueue makes an external queue's counters exist at zero as soon as
// the queue is seen, so that alerts on increase() count the first event.
func (m *Metrics) initQueue(queue string) {
	for _, c := range []*prometheus.CounterVec{m.Published, m.Republished, m.Errors, m.GaveUp} {
		c.WithLabelValues(queue)
	}
}

// Dispatcher publishes the admitted, unbound pods of external queues. It
// is a workqueue controller keyed by pod: a pod event enqueues the pod, a
// publication schedules the pod's next look with AddAfter at its queue's
// republish deadline, and nothing rescans the pods.
type Dispatcher struct {
	broker   broker.Broker
	recorder events.EventRecorder
	pods     cache.Indexer
	queues   listers.QueueLister
	metrics  *Metrics
	workers  int
	loop     *reconcile.Loop[string]

	mu sync.Mutex
	// sent remembers, per pod, the last confirmed publication; lost on
	// restart, which only means the pods are published once more.
	sent     map[types.UID]publication
	declared sets.Set[string]
}

type publication struct {
	at      time.Time
	attempt int
	// gaveUp: published maxAttempts times; not published again.
	gaveUp bool
}

// New wires a dispatcher to informers the caller starts afterwards.
func New(b broker.Broker, pods cache.SharedIndexInformer, queues cache.SharedIndexInformer, queueLister listers.QueueLister, recorder events.EventRecorder, metrics *Metrics) (*Dispatcher, error) {
	if err := routing.AddQueueIndex(pods); err != nil {
		return nil, err
	}
	d := &Dispatcher{
		broker: b, recorder: recorder, pods: pods.GetIndexer(), queues: queueLister, metrics: metrics, workers: 8,
		sent: map[types.UID]publication{}, declared: sets.New[string](),
	}
	d.loop = reconcile.New("switchyard_dispatch", d.sync)
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    d.podChanged,
		UpdateFunc: func(_, obj any) { d.podChanged(obj) },
		DeleteFunc: d.podChanged,
	}); err != nil {
		return nil, err
	}
	if _, err := queues.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    d.queueChanged,
		UpdateFunc: func(_, obj any) { d.queueChanged(obj) },
		DeleteFunc: d.queueChanged,
	}); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Dispatcher) podChanged(obj any) {
	pod, ok := reconcile.Object[*corev1.Pod](obj)
	if !ok || pod.Spec.SchedulerName != v1alpha1.ExternalSchedulerName {
		return
	}
	if key, err := cache.MetaNamespaceKeyFunc(pod); err == nil {
		d.loop.Add(key)
	}
}

// queueChanged looks again at the pods of a Queue that changed, and stops
// re-declaring broker queues no external Queue uses any more.
func (d *Dispatcher) queueChanged(obj any) {
	q, ok := reconcile.Object[*v1alpha1.Queue](obj)
	if !ok {
		return
	}
	if q.Spec.External != nil {
		d.metrics.initQueue(q.Name)
	}
	objs, _ := d.pods.ByIndex(routing.QueueIndex, q.Name)
	for _, obj := range objs {
		d.podChanged(obj)
	}
	queues, err := d.queues.List(labels.Everything())
	if err != nil {
		return
	}
	external := sets.New[string]()
	for _, q := range queues {
		if q.Spec.External != nil && q.DeletionTimestamp == nil {
			external.Insert(q.Spec.External.AMQPQueue)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for name := range d.declared {
		if !external.Has(name) {
			d.declared.Delete(name)
			d.broker.Forget(broker.Topology{Queues: []broker.Queue{{Name: name}}})
		}
	}
}

// Run publishes until ctx ends. Informers must have synced.
func (d *Dispatcher) Run(ctx context.Context) {
	ctx = klog.NewContext(ctx, klog.FromContext(ctx).WithName("dispatch"))
	d.loop.Run(ctx, d.workers)
}

// sync publishes one pod if it waits for its external scheduler and is due,
// and says when to look at it again.
func (d *Dispatcher) sync(ctx context.Context, key string) (time.Duration, error) {
	if ctx.Err() != nil {
		return 0, nil
	}
	obj, exists, err := d.pods.GetByKey(key)
	if err != nil {
		return 0, err
	}
	pod, ok := obj.(*corev1.Pod)
	if !exists || !ok || !waitingForExternalScheduler(pod) {
		if ok {
			d.forget(pod.UID)
		}
		return 0, nil
	}
	q, err := d.queues.Get(pod.Annotations[v1alpha1.RoutedQueueAnnotation])
	if err != nil || q.Spec.External == nil || q.DeletionTimestamp != nil {
		// No external Queue (any more): nothing to publish to. A Queue
		// event brings the pod back.
		return 0, nil
	}
	republishAfter := time.Duration(q.Spec.External.RepublishAfterSeconds) * time.Second
	if republishAfter <= 0 {
		republishAfter = defaultRepublishAfter
	}
	now := time.Now()
	d.mu.Lock()
	last, published := d.sent[pod.UID]
	d.mu.Unlock()
	if last.gaveUp {
		return 0, nil
	}
	if published && now.Sub(last.at) < republishAfter {
		return republishAfter - now.Sub(last.at), nil
	}
	maxAttempts := int(q.Spec.External.MaxAttempts)
	if maxAttempts <= 0 {
		maxAttempts = defaultMaxAttempts
	}
	if last.attempt >= maxAttempts {
		d.mu.Lock()
		last.gaveUp = true
		d.sent[pod.UID] = last
		d.mu.Unlock()
		d.metrics.GaveUp.WithLabelValues(q.Name).Inc()
		if d.recorder != nil {
			d.recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonGaveUp, "Dispatch",
				"Published %d times to the external scheduler of queue %q (RabbitMQ queue %s), every %s, and still not bound; not published again. See its FailedScheduling Events; delete and recreate it once it can be placed",
				last.attempt, q.Name, q.Spec.External.AMQPQueue, republishAfter)
		}
		return 0, nil
	}
	if err := d.declare(ctx, q); err != nil {
		return 0, err
	}
	if err := d.publish(ctx, pod, q, last.attempt+1); err != nil {
		return 0, err
	}
	return republishAfter, nil
}

func (d *Dispatcher) forget(uid types.UID) {
	d.mu.Lock()
	delete(d.sent, uid)
	d.mu.Unlock()
}

// waitingForExternalScheduler: admitted (no gate), not bound, not gone.
func waitingForExternalScheduler(pod *corev1.Pod) bool {
	if pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil || pod.Spec.SchedulerName != v1alpha1.ExternalSchedulerName {
		return false
	}
	return pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed && !v1alpha1.HasAdmissionGate(pod)
}

// declare makes the queue's RabbitMQ queue (with its dead-letter and retry
// queues) exist before anything is published to it.
func (d *Dispatcher) declare(ctx context.Context, q *v1alpha1.Queue) error {
	name := q.Spec.External.AMQPQueue
	d.mu.Lock()
	done := d.declared.Has(name)
	d.mu.Unlock()
	if done {
		return nil
	}
	if err := d.broker.Declare(ctx, broker.Topology{Queues: []broker.Queue{broker.WorkQueue(name, RetryDelay)}}); err != nil {
		d.metrics.Errors.WithLabelValues(q.Name).Inc()
		return fmt.Errorf("declaring the external scheduler's queue %q of Queue %s: %w", name, q.Name, err)
	}
	d.mu.Lock()
	d.declared.Insert(name)
	d.mu.Unlock()
	return nil
}

func (d *Dispatcher) publish(ctx context.Context, pod *corev1.Pod, q *v1alpha1.Queue, attempt int) error {
	now := time.Now()
	msg := PodMessage{
		UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name, Queue: q.Name,
		Attempt: attempt, CreatedAt: pod.CreationTimestamp.Time, PublishedAt: now,
	}
	body, err := msg.Encode()
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = d.broker.Publish(pctx, "", q.Spec.External.AMQPQueue, broker.Message{
		// One ID per publication: the consumer keys on the pod's UID.
		ContentType: "application/json", Type: MessageType, Body: body, Timestamp: now,
	})
	if err != nil {
		d.metrics.Errors.WithLabelValues(q.Name).Inc()
		if errors.Is(err, broker.ErrUnroutable) {
			// The queue was deleted on the broker: declare it again.
			d.mu.Lock()
			d.declared.Delete(q.Spec.External.AMQPQueue)
			d.mu.Unlock()
		}
		return fmt.Errorf("publishing pod %s to its external scheduler (queue %s): %w", klog.KObj(pod), q.Name, err)
	}
	if attempt == 1 {
		d.metrics.Published.WithLabelValues(q.Name).Inc()
	} else {
		d.metrics.Republished.WithLabelValues(q.Name).Inc()
	}
	d.mu.Lock()
	d.sent[pod.UID] = publication{at: now, attempt: attempt}
	d.mu.Unlock()
	return nil
}
