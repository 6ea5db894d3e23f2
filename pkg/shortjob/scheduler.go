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

// handleTimeout bounds one message's placement (a GET when the informer
// lacks the pod, and the bind).
const handleTimeout = 30 * time.Second

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

// Where a message's pod was read, the label of the lookups metric.
const (
	// LookupInformer: the informer held the pod.
	LookupInformer = "informer"
	// LookupAPI: it did not (yet); one GET.
	LookupAPI = "api"
)

// Metrics of the short-job scheduler.
type Metrics struct {
	Handled     *prometheus.CounterVec
	BindSeconds prometheus.Histogram
	// QueueToBind is from the pod's creation to its bind.
	QueueToBind prometheus.Histogram
	// Lookups counts where pods were read.
	Lookups *prometheus.CounterVec
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
		Lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_shortjob_pod_lookups_total", Help: "Pods of messages read from the informer (no API call) or, when it did not hold them yet, from the API server, by source (informer, api).",
		}, []string{"source"}),
	}
	for _, source := range []string{LookupInformer, LookupAPI} {
		m.Lookups.WithLabelValues(source)
	}
	if reg != nil {
		reg.MustRegister(m.Handled, m.BindSeconds, m.QueueToBind, m.Lookups)
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
	// usage is what each node's pods hold, kept from pod events, with this
	// replica's binds the informer has not shown yet.
	usage *usage
}

// New wires the scheduler to informers the caller starts afterwards.
func New(client kubernetes.Interface, nodes corelisters.NodeLister, pods cache.SharedIndexInformer, recorder events.EventRecorder, metrics *Metrics) (*Scheduler, error) {
	s := &Scheduler{client: client, nodes: nodes, pods: pods.GetIndexer(), recorder: recorder, metrics: metrics, usage: newUsage()}
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.podChanged(obj) },
		UpdateFunc: func(_, obj any) { s.podChanged(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				s.usage.forgetPod(p.UID)
			}
		},
	}); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Scheduler) podChanged(obj any) {
	if p, ok := obj.(*corev1.Pod); ok {
		s.usage.observe(p)
	}
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
	// A placement that started finishes even when this replica is being
	// stopped or steps down: its lease is released only after it, so the
	// next leader sees the bind instead of racing it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), handleTimeout)
	defer cancel()
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
	pod, err := s.lookup(ctx, msg)
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
	node, why := s.pick(logger, pod, chargeOf("", requests).milli)
	if node != "" {
		s.usage.assume(pod.UID, node, requests, time.Now())
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

func (s *Scheduler) forget(uid types.UID) { s.usage.unassume(uid) }

// lookup finds the message's pod: in the informer when it holds this pod
// (its UID), from the API server otherwise (the message may be newer than
// the informer). An informer copy that is stale shows "unbound" for a pod
// just bound elsewhere; the bind then fails with a conflict, which is
// counted as a lost race, as a second replica's would be.
func (s *Scheduler) lookup(ctx context.Context, msg dispatch.PodMessage) (*corev1.Pod, error) {
	if obj, exists, err := s.pods.GetByKey(msg.Namespace + "/" + msg.Name); err == nil && exists {
		if p, ok := obj.(*corev1.Pod); ok && p.UID == msg.UID {
			s.metrics.Lookups.WithLabelValues(LookupInformer).Inc()
			return p, nil
		}
	}
	s.metrics.Lookups.WithLabelValues(LookupAPI).Inc()
	return s.client.CoreV1().Pods(msg.Namespace).Get(ctx, msg.Name, metav1.GetOptions{})
}

// pick returns the fitting node with the most free CPU, or "" and why none
// fits. want is the pod's requests in milli-units.
func (s *Scheduler) pick(logger klog.Logger, pod *corev1.Pod, want map[corev1.ResourceName]int64) (string, string) {
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil || len(nodes) == 0 {
		return "", "no nodes"
	}
	s.usage.expire(time.Now())
	affinity := nodeaffinity.GetRequiredNodeAffinity(pod)
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
		fits, free := s.usage.fit(node, want)
		if !fits {
			reasons["insufficient resources"]++
			continue
		}
		if free > bestFree {
			best, bestFree = node.Name, free
		}
	}
	if best == "" {
		return "", fmt.Sprint(reasons)
	}
	return best, ""
}

func ready(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
