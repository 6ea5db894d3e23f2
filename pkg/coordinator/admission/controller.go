// Package admission holds pods back in their queues and lets them go while
// the queue's limits allow: pods admitted but not yet bound (maxAdmitted),
// summed requests (quota), admission rate, and a cluster-wide cap shared
// between queues by weight. A pod waits as long as it carries the
// switchyard.io/admission scheduling gate; admitting it is one patch that
// removes the gate and records the admission in an annotation.
//
// It is built as Kueue splits admission: State is what waits and what is
// used, kept incrementally from pod and Queue events; Decide is a pure
// function of that state and the time; the controller applies decisions,
// and a status reconciler writes Queue status. The API server is the only
// durable state: a restarted controller rebuilds every queue from the pods.
package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/reconcile"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/routing"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	listers "github.com/switchyard-sched/switchyard/pkg/generated/listers/switchyard/v1alpha1"
)

// Event reasons recorded on pods.
const (
	ReasonQueued       = "Queued"
	ReasonUnknownQueue = "UnknownQueue"
	ReasonStranded     = "Stranded"
	ReasonAdmitFailed  = "AdmissionFailed"
	// ReasonCalcSetCannotFit: a calculation set is larger than its queue's
	// limits allow at once; recorded once per set, on one member.
	ReasonCalcSetCannotFit = "CalcSetCannotFit"
	// ReasonAdmittedTimeout: admitted longer than the queue's
	// admittedTimeoutSeconds ago and still not bound.
	ReasonAdmittedTimeout = "AdmittedTimeout"
)

// Options tunes the controller.
type Options struct {
	// MaxAdmittedTotal caps pods admitted but not yet bound over all gated
	// queues; when queues compete for it, their weights share it. 0: no cap.
	MaxAdmittedTotal int
	// Profiles are the scheduler profiles that exist; a Queue naming another
	// one gets the ProfileMissing condition and its pods stay held. nil:
	// every profile is taken to exist.
	Profiles sets.Set[string]
	// ExternalQueues is true when a broker is configured, so that Queues
	// with spec.external can hand their pods to an external scheduler;
	// without one such Queues are not usable and their pods stay held.
	ExternalQueues bool
	// BrokerConnected says whether the broker is up now; while it is not,
	// external queues admit nothing (their pods wait, gated) and show the
	// BrokerUnavailable condition. nil: always up.
	BrokerConnected func() bool
	// Workers remove gates concurrently; 8 when zero.
	Workers int
	// StatusInterval is how often a queue's changed status is written at
	// most; 1s when zero.
	StatusInterval time.Duration
	// RouteStatus tells whether the live routing table routes a Queue (the
	// Routed condition); nil: taken as routed.
	RouteStatus func(*v1alpha1.Queue) (bool, string)
	// Clock is the time source; the real clock when nil.
	Clock clock.Clock
}

// minCycleGap bounds how often admission decides: pod events arrive by the
// thousand per second, and one decision serves them all.
const minCycleGap = 5 * time.Millisecond

// sendingMaxAge is how long a sent gate removal whose outcome was never
// observed holds its queue's capacity.
const sendingMaxAge = time.Minute

// cycleKey is the one work item of the decision loop.
const cycleKey = "admission"

// Controller admits gated pods. Create it with New, then Run it.
type Controller struct {
	client   kubernetes.Interface
	sy       versioned.Interface
	queues   listers.QueueLister
	recorder events.EventRecorder
	metrics  *Metrics
	opts     Options
	clock    clock.Clock

	cycles *reconcile.Loop[string]
	status *reconcile.Loop[string]
	work   chan Admission

	mu      sync.Mutex
	state   *State
	pass    map[string]float64
	active  sets.Set[string]
	buckets map[string]Bucket
	// held is what held each queue's next pod at the last decision.
	held map[string]string
}

// New wires the controller to informers the caller starts afterwards.
func New(client kubernetes.Interface, sy versioned.Interface, pods cache.SharedIndexInformer,
	queues cache.SharedIndexInformer, queueLister listers.QueueLister, recorder events.EventRecorder, metrics *Metrics, opts Options) (*Controller, error) {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = time.Second
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	c := &Controller{
		client: client, sy: sy, queues: queueLister, recorder: recorder, metrics: metrics, opts: opts, clock: opts.Clock,
		// Room for four decisions per worker: enough to keep every worker
		// busy between two cycles, and the budget of each decision.
		work:    make(chan Admission, 4*opts.Workers),
		state:   NewState(),
		pass:    map[string]float64{},
		active:  sets.New[string](),
		buckets: map[string]Bucket{},
	}
	c.cycles = reconcile.New("switchyard_admission", c.cycle)
	c.status = reconcile.New("switchyard_queue_status", c.syncStatus)
	if _, err := pods.AddEventHandler(routing.RoutedPodHandler(c.podChanged)); err != nil {
		return nil, err
	}
	if _, err := queues.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.queueChanged(obj, false) },
		UpdateFunc: func(old, obj any) {
			// Its own status writes are most Queue updates: they change no
			// decision, and the status they wrote is the one desired.
			if o, n := old.(*v1alpha1.Queue), obj.(*v1alpha1.Queue); o.Generation != n.Generation || !o.DeletionTimestamp.Equal(n.DeletionTimestamp) {
				c.queueChanged(obj, false)
			}
		},
		DeleteFunc: func(obj any) { c.queueChanged(obj, true) },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Controller) podChanged(pod *corev1.Pod, queue string, deleted bool) {
	c.mu.Lock()
	var added bool
	if deleted {
		c.state.DeletePod(pod.UID)
	} else {
		_, added = c.state.SetPod(pod, c.clock.Now())
	}
	stranded := c.state.takeStranded()
	c.mu.Unlock()
	if added {
		if requested, ok := pod.Labels[v1alpha1.QueueLabel]; ok && requested != queue {
			c.recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonUnknownQueue, "Route",
				"Label %s=%q names no Queue; the pod was routed to the default queue %q", v1alpha1.QueueLabel, requested, queue)
		}
	}
	c.announceStranded(stranded)
	c.cycles.AddAfter(cycleKey, minCycleGap)
	c.status.AddAfter(queue, c.opts.StatusInterval)
}

func (c *Controller) queueChanged(obj any, deleted bool) {
	q, ok := reconcile.Object[*v1alpha1.Queue](obj)
	if !ok {
		return
	}
	c.mu.Lock()
	if deleted {
		c.state.SetQueue(q.Name, nil)
	} else {
		c.state.SetQueue(q.Name, q)
	}
	stranded := c.state.takeStranded()
	c.mu.Unlock()
	c.announceStranded(stranded)
	c.cycles.Add(cycleKey)
	c.status.Add(q.Name)
}

func (c *Controller) brokerUp() bool {
	return c.opts.BrokerConnected == nil || c.opts.BrokerConnected()
}

// BrokerChanged is told when the broker comes or goes: external queues'
// pods are decided on again and their status refreshed.
func (c *Controller) BrokerChanged() {
	queues, err := c.queues.List(labels.Everything())
	if err != nil {
		return
	}
	for _, q := range queues {
		if q.Spec.External != nil {
			c.status.Add(q.Name)
		}
	}
	c.cycles.Add(cycleKey)
}

// RefreshStatus asks for the status of the named Queues to be looked at
// again (their route in the routing table changed).
func (c *Controller) RefreshStatus(queues []string) {
	for _, name := range queues {
		c.status.AddAfter(name, c.opts.StatusInterval)
	}
}

// Run admits pods until ctx ends, then waits for the gate removals it
// started: their outcome is known and counted before it returns, so a
// successor never over-admits.
func (c *Controller) Run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("admission")
	ctx = klog.NewContext(ctx, logger)
	logger.Info("Admission controller started", "maxAdmittedTotal", c.opts.MaxAdmittedTotal, "profiles", sets.List(c.opts.Profiles))
	var workers sync.WaitGroup
	for range c.opts.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for a := range c.work {
				c.admit(ctx, a)
			}
		}()
	}
	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); c.status.Run(ctx, 2) }()
	go func() { defer loops.Done(); c.cycles.Run(ctx, 1) }()
	c.cycles.Add(cycleKey)
	loops.Wait()
	// The decision loop has stopped: nothing sends any more.
	close(c.work)
	workers.Wait()
}

// Input is the decision input for the current state; the caller holds mu.
func (c *Controller) input() Input {
	in := Input{
		Queues:           make([]QueueView, 0, len(c.state.queues)),
		MaxAdmittedTotal: c.opts.MaxAdmittedTotal,
		Budget:           cap(c.work) - len(c.work),
		Pass:             c.pass,
		Active:           c.active,
		Buckets:          c.buckets,
	}
	for _, q := range c.state.queues {
		if q.queue == nil {
			continue
		}
		in.Queues = append(in.Queues, QueueView{
			Name: q.name, Spec: &q.queue.Spec, Usable: c.usable(q.queue),
			Pending: q.pending, Admitted: q.admitted, Usage: q.usage,
		})
	}
	return in
}

func (c *Controller) usable(q *v1alpha1.Queue) bool {
	if q.Spec.External != nil {
		return c.opts.ExternalQueues && c.brokerUp()
	}
	return c.opts.Profiles == nil || c.opts.Profiles.Has(q.Spec.Profile)
}

// cycle decides once and starts the gate removals decided.
func (c *Controller) cycle(ctx context.Context, _ string) (time.Duration, error) {
	if ctx.Err() != nil {
		return 0, nil
	}
	start := c.clock.Now()
	c.mu.Lock()
	c.state.expireSending(start, sendingMaxAge)
	overdue, nextDue := c.state.ExpireAdmitted(start)
	d := Decide(c.input(), start)
	if !nextDue.IsZero() {
		if wait := nextDue.Sub(start); d.Next == 0 || wait < d.Next {
			d.Next = wait
		}
	}
	c.pass, c.active, c.buckets, c.held = d.Pass, d.Active, d.Buckets, d.Held
	// Budget guarantees room for all but a calculation set larger than it,
	// which is sent once the lock is released (workers need it).
	var overflow []Admission
	for _, a := range d.Admit {
		c.state.markSending(a.entry, start)
		a.decided = start
		select {
		case c.work <- a:
		default:
			overflow = append(overflow, a)
		}
	}
	for _, u := range d.Unfit {
		u.gang.unfitReported = true
		if q := c.state.queues[u.Queue]; q != nil {
			q.unfit[u.gang.key] = u.gang
		}
	}
	var announce []*entry
	for name := range d.Held {
		if q := c.state.queues[name]; q != nil {
			for uid, e := range q.unannounced {
				e.queued = true
				delete(q.unannounced, uid)
				announce = append(announce, e)
			}
		}
	}
	held := d.Held
	c.mu.Unlock()
	c.metrics.CycleSeconds.Observe(c.clock.Since(start).Seconds())
	for _, a := range overflow {
		c.work <- a
	}
	c.announceOverdue(overdue, start)
	for _, u := range d.Unfit {
		c.recorder.Eventf(u.member.ref(), nil, corev1.EventTypeWarning, ReasonCalcSetCannotFit, "Admit",
			"Calculation set %q can never be admitted whole by queue %q: %s. Its members wait until the set or the queue is changed", u.gang.key.name, u.Queue, u.Reason)
		c.status.Add(u.Queue)
	}
	for _, e := range announce {
		c.recordQueued(e, held[e.queue])
	}
	return d.Next, nil
}

// recordQueued tells a pod, once, that it waits and which limit holds it.
func (c *Controller) recordQueued(e *entry, limit string) {
	c.recorder.Eventf(e.ref(), nil, corev1.EventTypeNormal, ReasonQueued, "Queue",
		"Waiting for admission in queue %q, held by %s", e.queue, limit)
}

// announceOverdue tells each pod that went overdue, once, that it no
// longer holds its queue's maxAdmitted, and counts it.
func (c *Controller) announceOverdue(overdue []*entry, now time.Time) {
	for _, e := range overdue {
		c.recorder.Eventf(e.ref(), nil, corev1.EventTypeWarning, ReasonAdmittedTimeout, "Admit",
			"Admitted %s ago by queue %q and still not bound to a node (see its FailedScheduling Events); it no longer counts against the queue's maxAdmitted, only against its quota",
			now.Sub(e.admittedAt).Round(time.Second), e.queue)
		c.metrics.AdmittedTimeouts.WithLabelValues(e.queue).Inc()
		c.status.AddAfter(e.queue, c.opts.StatusInterval)
	}
}

func (c *Controller) announceStranded(stranded []*entry) {
	for _, e := range stranded {
		c.recorder.Eventf(e.ref(), nil, corev1.EventTypeWarning, ReasonStranded, "Admit",
			"The pod has schedulerName %q, which queue %q no longer gives its pods; it will not be admitted. Delete it and create it again to be routed anew", e.scheduler, e.queue)
	}
}

// GateRemovalPatch is the JSON patch that admits a pod: it tests the pod's
// UID and the gate's position, so it never touches a recreated pod or
// another gate, removes the gate and adds the admission record. It is the
// only write an admission makes. ok is false when the pod carries no
// admission gate.
func GateRemovalPatch(pod *corev1.Pod, record v1alpha1.AdmissionRecord) (patch []byte, ok bool) {
	for i, g := range pod.Spec.SchedulingGates {
		if g.Name != v1alpha1.AdmissionGate {
			continue
		}
		value, err := json.Marshal(record)
		if err != nil {
			return nil, false
		}
		gatePath := fmt.Sprintf("/spec/schedulingGates/%d", i)
		ops := []map[string]any{
			{"op": "test", "path": "/metadata/uid", "value": pod.UID},
			{"op": "test", "path": gatePath + "/name", "value": v1alpha1.AdmissionGate},
			{"op": "remove", "path": gatePath},
		}
		if pod.Annotations == nil {
			ops = append(ops, map[string]any{"op": "add", "path": "/metadata/annotations", "value": map[string]string{v1alpha1.AdmittedAnnotation: string(value)}})
		} else {
			ops = append(ops, map[string]any{"op": "add", "path": routing.AnnotationPath(v1alpha1.AdmittedAnnotation), "value": string(value)})
		}
		patch, _ = json.Marshal(ops)
		return patch, true
	}
	return nil, false
}

// admit removes the admission gate with GateRemovalPatch.
func (c *Controller) admit(ctx context.Context, a Admission) {
	logger := klog.FromContext(ctx)
	pod := a.entry.pod
	if pod == nil {
		c.unsend(a.entry.uid)
		return
	}
	record := v1alpha1.AdmissionRecord{Queue: a.Queue, Time: metav1.NewTime(a.decided), Waited: a.decided.Sub(pod.CreationTimestamp.Time).Round(time.Millisecond).String(), Limits: a.Limits}
	patch, ok := GateRemovalPatch(pod, record)
	if !ok {
		c.unsend(pod.UID)
		return
	}
	// A removal already decided completes even when the controller is
	// stopping, so that its outcome is known and counted exactly once.
	patchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := c.client.CoreV1().Pods(pod.Namespace).Patch(patchCtx, pod.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: v1alpha1.CoordinatorName})
	now := c.clock.Now()
	switch {
	case err == nil:
		c.metrics.PatchSeconds.Observe(now.Sub(a.decided).Seconds())
		c.metrics.Admissions.WithLabelValues(a.Queue).Inc()
		c.metrics.WaitSeconds.WithLabelValues(a.Queue).Observe(a.decided.Sub(pod.CreationTimestamp.Time).Seconds())
	case apierrors.IsNotFound(err):
		c.unsend(pod.UID)
	case apierrors.IsInvalid(err), apierrors.IsConflict(err):
		// The pod changed under us (gate moved or removed, pod recreated):
		// look again with fresh data.
		c.metrics.AdmissionErrors.WithLabelValues(a.Queue, admissionErrorStale).Inc()
		c.unsend(pod.UID)
	default:
		// The outcome is unknown (timeout, API server busy): keep counting the
		// pod as admitted until the informer says otherwise or it expires.
		c.metrics.AdmissionErrors.WithLabelValues(a.Queue, admissionErrorAPI).Inc()
		logger.Error(err, "Removing the admission gate", "pod", klog.KObj(pod), "queue", a.Queue)
		c.recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonAdmitFailed, "Admit", "Removing the admission gate failed (%v); the queue retries", err)
	}
	// A worker is free: the next decision may start one more removal.
	c.cycles.AddAfter(cycleKey, minCycleGap)
}

func (c *Controller) unsend(uid types.UID) {
	c.mu.Lock()
	c.state.unsend(uid)
	c.mu.Unlock()
}
