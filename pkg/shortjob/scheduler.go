// Package shortjob is a small external scheduler for short jobs (Epsilon's
// short-job scheduler, made safe) and the reference consumer of external
// queues: it takes pod messages from a RabbitMQ queue, picks a node that
// fits (requests against allocatable minus the pods bound there, taints,
// node selector and required node affinity), binds the pod through the
// Binding API, and acknowledges only after the bind succeeded. Pods already
// bound or deleted are skipped; a bind that loses a race to another
// replica is not repeated; anything else is retried after a delay.
package shortjob

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	resourcehelper "k8s.io/component-helpers/resource"
	schedulinghelper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/dispatch"
)

// Name is the reporting controller of the scheduler's Events.
const Name = "switchyard-shortjob"

// Outcomes of one message, the label of the handled metric.
const (
	OutcomeBound     = "bound"
	OutcomeAlready   = "already_bound"
	OutcomeLostRace  = "lost_race"
	OutcomeDeleted   = "deleted"
	OutcomeNoFit     = "no_fit"
	OutcomeError     = "error"
	OutcomeMalformed = "malformed"
)

// Metrics of the short-job scheduler.
type Metrics struct {
	Handled     *prometheus.CounterVec
	BindSeconds prometheus.Histogram
	// QueueToBind is from the pod's creation to its bind.
	QueueToBind prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_shortjob_messages_total", Help: "Pod messages handled, by outcome (bound, already_bound, lost_race, deleted, no_fit, error, malformed).",
		}, []string{"outcome"}),
		BindSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchyard_shortjob_bind_seconds", Help: "Duration of Binding API calls.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		QueueToBind: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "switchyard_shortjob_create_to_bind_seconds", Help: "From pod creation to its bind by this scheduler.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Handled, m.BindSeconds, m.QueueToBind)
	}
	return m
}

// Scheduler binds the pods of one external queue.
type Scheduler struct {
	client   kubernetes.Interface
	nodes    corelisters.NodeLister
	pods     cache.Indexer
	recorder events.EventRecorder
	metrics  *Metrics

	// placing serialises choosing a node and assuming the pod there, so
	// concurrent handlers never give the same room twice.
	placing sync.Mutex
	mu      sync.Mutex
	// assumed are this replica's binds the informer has not shown yet, so
	// that two binds in a row see each other's requests.
	assumed map[types.UID]assumedPod
}

type assumedPod struct {
	node     string
	requests corev1.ResourceList
	at       time.Time
}

// nodeIndex indexes bound pods by node name.
const nodeIndex = "spec.nodeName"

// New wires the scheduler to informers the caller starts afterwards.
func New(client kubernetes.Interface, nodes corelisters.NodeLister, pods cache.SharedIndexInformer, recorder events.EventRecorder, metrics *Metrics) (*Scheduler, error) {
	if _, exists := pods.GetIndexer().GetIndexers()[nodeIndex]; !exists {
		if err := pods.AddIndexers(cache.Indexers{nodeIndex: func(obj any) ([]string, error) {
			if p, ok := obj.(*corev1.Pod); ok && p.Spec.NodeName != "" {
				return []string{p.Spec.NodeName}, nil
			}
			return nil, nil
		}}); err != nil {
			return nil, err
		}
	}
	return &Scheduler{client: client, nodes: nodes, pods: pods.GetIndexer(), recorder: recorder, metrics: metrics, assumed: map[types.UID]assumedPod{}}, nil
}

// Run consumes the queue until ctx ends. Several replicas may consume the
// same queue.
func (s *Scheduler) Run(ctx context.Context, b broker.Broker, queue string, prefetch int) error {
	if err := b.Declare(ctx, broker.Topology{Queues: []broker.Queue{broker.WorkQueue(queue, dispatch.RetryDelay)}}); err != nil {
		return err
	}
	return b.Consume(ctx, queue, broker.ConsumeOptions{Prefetch: prefetch, Name: Name}, s.Handle)
}

// Handle places the pod one message names. Every message is acknowledged,
// placed or not: the coordinator publishes an unbound pod again at its
// queue's deadline, and that is the only retry, so a pod has one message in
// flight, not one more per retry. Only a malformed message is refused (to
// the dead-letter queue).
func (s *Scheduler) Handle(ctx context.Context, d broker.Delivery) error {
	err := s.handle(ctx, d)
	if err != nil && !broker.IsPermanent(err) {
		klog.FromContext(ctx).V(2).Info("Message not acted on; the coordinator publishes the pod again at its deadline", "err", err)
		return nil
	}
	return err
}

func (s *Scheduler) handle(ctx context.Context, d broker.Delivery) error {
	logger := klog.FromContext(ctx)
	msg, err := dispatch.Decode(d.Body)
	if err != nil {
		s.metrics.Handled.WithLabelValues(OutcomeMalformed).Inc()
		return broker.Permanent(err)
	}
	// The API server, not the cache: the message may be newer than the
	// informer, and a stale "unbound" would cause a pointless bind.
	pod, err := s.client.CoreV1().Pods(msg.Namespace).Get(ctx, msg.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || (err == nil && pod.UID != msg.UID):
		s.metrics.Handled.WithLabelValues(OutcomeDeleted).Inc()
		return nil
	case err != nil:
		s.metrics.Handled.WithLabelValues(OutcomeError).Inc()
		return err
	case pod.Spec.NodeName != "":
		s.metrics.Handled.WithLabelValues(OutcomeAlready).Inc()
		return nil
	case pod.DeletionTimestamp != nil:
		s.metrics.Handled.WithLabelValues(OutcomeDeleted).Inc()
		return nil
	case len(pod.Spec.SchedulingGates) > 0:
		s.metrics.Handled.WithLabelValues(OutcomeError).Inc()
		return fmt.Errorf("pod %s/%s still has scheduling gates", pod.Namespace, pod.Name)
	}
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	s.placing.Lock()
	node, why := s.pick(logger, pod, requests)
	if node != "" {
		s.mu.Lock()
		s.assumed[pod.UID] = assumedPod{node: node, requests: requests, at: time.Now()}
		s.mu.Unlock()
	}
	s.placing.Unlock()
	if node == "" {
		s.metrics.Handled.WithLabelValues(OutcomeNoFit).Inc()
		s.recorder.Eventf(pod, nil, corev1.EventTypeWarning, "FailedScheduling", "Scheduling", "%s: no node fits (attempt %d): %s; the coordinator publishes the pod again at its queue's deadline", Name, msg.Attempt, why)
		return fmt.Errorf("no node fits pod %s/%s: %s", pod.Namespace, pod.Name, why)
	}
	start := time.Now()
	err = s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}, metav1.CreateOptions{})
	s.metrics.BindSeconds.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		s.metrics.Handled.WithLabelValues(OutcomeBound).Inc()
		s.metrics.QueueToBind.Observe(time.Since(pod.CreationTimestamp.Time).Seconds())
		s.recorder.Eventf(pod, nil, corev1.EventTypeNormal, "Scheduled", "Binding", "Successfully assigned %s/%s to %s by %s", pod.Namespace, pod.Name, node, Name)
		return nil
	case apierrors.IsConflict(err):
		// Another replica (or a duplicate message) bound it first.
		s.forget(pod.UID)
		s.metrics.Handled.WithLabelValues(OutcomeLostRace).Inc()
		return nil
	case apierrors.IsNotFound(err):
		s.forget(pod.UID)
		s.metrics.Handled.WithLabelValues(OutcomeDeleted).Inc()
		return nil
	default:
		s.forget(pod.UID)
		s.metrics.Handled.WithLabelValues(OutcomeError).Inc()
		return fmt.Errorf("binding pod %s/%s to %s: %w", pod.Namespace, pod.Name, node, err)
	}
}

func (s *Scheduler) forget(uid types.UID) {
	s.mu.Lock()
	delete(s.assumed, uid)
	s.mu.Unlock()
}

// pick returns the fitting node with the most free CPU, or "" and why none
// fits.
func (s *Scheduler) pick(logger klog.Logger, pod *corev1.Pod, requests corev1.ResourceList) (string, string) {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil || len(nodes) == 0 {
		return "", "no nodes"
	}
	affinity := nodeaffinity.GetRequiredNodeAffinity(pod)
	used := s.usage()
	best, bestFree := "", int64(-1)
	reasons := map[string]int{}
	for _, node := range nodes {
		if node.Spec.Unschedulable || !ready(node) {
			reasons["not ready or unschedulable"]++
			continue
		}
		if match, _ := affinity.Match(node); !match {
			reasons["node selector or affinity"]++
			continue
		}
		if _, untolerated := schedulinghelper.FindMatchingUntoleratedTaint(logger, node.Spec.Taints, pod.Spec.Tolerations, func(t *corev1.Taint) bool {
			return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
		}, true); untolerated {
			reasons["untolerated taint"]++
			continue
		}
		u := used[node.Name]
		alloc := node.Status.Allocatable
		free := func(name corev1.ResourceName) int64 {
			q := alloc[name]
			have := q.MilliValue()
			if r, ok := u.requests[name]; ok {
				have -= r.MilliValue()
			}
			return have
		}
		fits := u.pods+1 <= alloc.Pods().Value()
		for name, want := range requests {
			if _, known := alloc[name]; !known && !want.IsZero() {
				fits = false
			} else if free(name) < want.MilliValue() {
				fits = false
			}
		}
		if !fits {
			reasons["insufficient resources"]++
			continue
		}
		if f := free(corev1.ResourceCPU); f > bestFree {
			best, bestFree = node.Name, f
		}
	}
	if best == "" {
		return "", fmt.Sprint(reasons)
	}
	return best, ""
}

type nodeUsage struct {
	requests corev1.ResourceList
	pods     int64
}

// usage sums the requests of non-terminal pods per node, the informer's
// view plus this replica's recent binds it does not show yet.
func (s *Scheduler) usage() map[string]nodeUsage {
	out := map[string]nodeUsage{}
	add := func(node string, req corev1.ResourceList) {
		u := out[node]
		if u.requests == nil {
			u.requests = corev1.ResourceList{}
		}
		for name, q := range req {
			sum := u.requests[name]
			sum.Add(q)
			u.requests[name] = sum
		}
		u.pods++
		out[node] = u
	}
	seen := map[types.UID]bool{}
	for _, node := range s.pods.ListIndexFuncValues(nodeIndex) {
		objs, _ := s.pods.ByIndex(nodeIndex, node)
		for _, obj := range objs {
			p := obj.(*corev1.Pod)
			if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			seen[p.UID] = true
			add(node, resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{}))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid, a := range s.assumed {
		if seen[uid] || time.Since(a.at) > time.Minute {
			delete(s.assumed, uid) // the informer has it, or it never came
			continue
		}
		add(a.node, a.requests)
	}
	return out
}

func ready(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
