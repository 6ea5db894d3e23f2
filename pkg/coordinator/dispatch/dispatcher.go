package dispatch

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/broker"
	listers "github.com/switchyard-sched/switchyard/pkg/generated/listers/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/routing"
)

// RetryDelay is how long a message an external scheduler could not act on
// (no node fits yet, the API server refused the bind) waits in the
// queue's retry queue before it is delivered again.
const RetryDelay = 2 * time.Second

// defaultRepublishAfter applies when a Queue leaves republishAfterSeconds
// unset (the API server defaults it to 30).
const defaultRepublishAfter = 30 * time.Second

// Metrics of the dispatcher.
type Metrics struct {
	Published   *prometheus.CounterVec
	Republished *prometheus.CounterVec
	Errors      *prometheus.CounterVec
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
	if reg != nil {
		reg.MustRegister(m.Published, m.Republished, m.Errors)
	}
	return m
}

// Dispatcher publishes the admitted, unbound pods of external queues.
type Dispatcher struct {
	broker  broker.Broker
	pods    cache.Indexer
	queues  listers.QueueLister
	metrics *Metrics
	workers int

	wake chan struct{}
	work chan job

	mu sync.Mutex
	// sent remembers, per pod, the last confirmed publication; lost on
	// restart, which only means the pods are published once more.
	sent     map[types.UID]publication
	inflight sets.Set[types.UID]
	declared sets.Set[string]
}

type publication struct {
	at      time.Time
	attempt int
}

type job struct {
	pod     *corev1.Pod
	queue   *v1alpha1.Queue
	attempt int
}

// New wires a dispatcher to informers the caller starts afterwards.
func New(b broker.Broker, pods cache.SharedIndexInformer, queues cache.SharedIndexInformer, queueLister listers.QueueLister, metrics *Metrics) (*Dispatcher, error) {
	if err := routing.AddQueueIndex(pods); err != nil {
		return nil, err
	}
	d := &Dispatcher{
		broker: b, pods: pods.GetIndexer(), queues: queueLister, metrics: metrics, workers: 8,
		wake: make(chan struct{}, 1), work: make(chan job, 256),
		sent: map[types.UID]publication{}, inflight: sets.New[types.UID](), declared: sets.New[string](),
	}
	poke := func(any) { d.poke() }
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, UpdateFunc: func(_, obj any) { d.poke() }, DeleteFunc: poke,
	}); err != nil {
		return nil, err
	}
	if _, err := queues.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, UpdateFunc: func(_, obj any) { d.poke() }, DeleteFunc: poke,
	}); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends. Informers must have synced.
func (d *Dispatcher) Run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("dispatch")
	ctx = klog.NewContext(ctx, logger)
	var wg sync.WaitGroup
	defer wg.Wait()
	for range d.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-d.work:
					d.publish(ctx, j)
				}
			}
		}()
	}
	ticker := time.NewTicker(time.Second) // deadlines pass without events
	defer ticker.Stop()
	for {
		d.cycle(ctx)
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-ticker.C:
		}
		// One cycle serves a burst of pod events.
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// cycle finds what to publish now.
func (d *Dispatcher) cycle(ctx context.Context) {
	queues, err := d.queues.List(labels.Everything())
	if err != nil {
		return
	}
	now := time.Now()
	live := sets.New[types.UID]()
	for _, q := range queues {
		if q.Spec.External == nil || q.DeletionTimestamp != nil {
			continue
		}
		if !d.declare(ctx, q) {
			continue
		}
		republishAfter := time.Duration(q.Spec.External.RepublishAfterSeconds) * time.Second
		if republishAfter <= 0 {
			republishAfter = defaultRepublishAfter
		}
		objs, _ := d.pods.ByIndex(routing.QueueIndex, q.Name)
		for _, obj := range objs {
			pod, ok := obj.(*corev1.Pod)
			if !ok || !waitingForExternalScheduler(pod) {
				continue
			}
			live.Insert(pod.UID)
			d.mu.Lock()
			last, published := d.sent[pod.UID]
			due := !d.inflight.Has(pod.UID) && (!published || now.Sub(last.at) >= republishAfter)
			if due {
				d.inflight.Insert(pod.UID)
			}
			d.mu.Unlock()
			if !due {
				continue
			}
			select {
			case d.work <- job{pod: pod, queue: q, attempt: last.attempt + 1}:
			case <-ctx.Done():
				return
			}
		}
	}
	// Bound, deleted and re-queued pods are forgotten, and so are the
	// broker queues of deleted Queues (no longer re-declared on reconnect).
	external := sets.New[string]()
	for _, q := range queues {
		if q.Spec.External != nil && q.DeletionTimestamp == nil {
			external.Insert(q.Spec.External.AMQPQueue)
		}
	}
	d.mu.Lock()
	for name := range d.declared {
		if !external.Has(name) {
			d.declared.Delete(name)
			d.broker.Forget(broker.Topology{Queues: []broker.Queue{{Name: name}}})
		}
	}
	for uid := range d.sent {
		if !live.Has(uid) {
			delete(d.sent, uid)
		}
	}
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
func (d *Dispatcher) declare(ctx context.Context, q *v1alpha1.Queue) bool {
	name := q.Spec.External.AMQPQueue
	d.mu.Lock()
	done := d.declared.Has(name)
	d.mu.Unlock()
	if done {
		return true
	}
	if err := d.broker.Declare(ctx, broker.Topology{Queues: []broker.Queue{broker.WorkQueue(name, RetryDelay)}}); err != nil {
		klog.FromContext(ctx).Error(err, "Declaring the external scheduler's queue", "queue", q.Name, "amqpQueue", name)
		d.metrics.Errors.WithLabelValues(q.Name).Inc()
		return false
	}
	d.mu.Lock()
	d.declared.Insert(name)
	d.mu.Unlock()
	return true
}

func (d *Dispatcher) publish(ctx context.Context, j job) {
	defer func() {
		d.mu.Lock()
		d.inflight.Delete(j.pod.UID)
		d.mu.Unlock()
	}()
	now := time.Now()
	msg := PodMessage{
		UID: j.pod.UID, Namespace: j.pod.Namespace, Name: j.pod.Name, Queue: j.queue.Name,
		Attempt: j.attempt, CreatedAt: j.pod.CreationTimestamp.Time, PublishedAt: now,
	}
	body, err := msg.Encode()
	if err != nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = d.broker.Publish(pctx, "", j.queue.Spec.External.AMQPQueue, broker.Message{
		// One ID per publication: the consumer keys on the pod's UID.
		ContentType: "application/json", Type: MessageType, Body: body, Timestamp: now,
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			klog.FromContext(ctx).Error(err, "Publishing a pod to its external scheduler; will retry", "pod", klog.KObj(j.pod), "queue", j.queue.Name)
		}
		d.metrics.Errors.WithLabelValues(j.queue.Name).Inc()
		if errors.Is(err, broker.ErrUnroutable) {
			// The queue was deleted on the broker: declare it again.
			d.mu.Lock()
			d.declared.Delete(j.queue.Spec.External.AMQPQueue)
			d.mu.Unlock()
		}
		return
	}
	if j.attempt == 1 {
		d.metrics.Published.WithLabelValues(j.queue.Name).Inc()
	} else {
		d.metrics.Republished.WithLabelValues(j.queue.Name).Inc()
	}
	d.mu.Lock()
	d.sent[j.pod.UID] = publication{at: now, attempt: j.attempt}
	d.mu.Unlock()
}
