// Package admission holds pods back in their queues and lets them go while
// the queue's limits allow: pods admitted but not yet bound (maxAdmitted),
// summed requests (quota), admission rate, and a cluster-wide cap shared
// between queues by weight. A pod waits as long as it carries the
// switchyard.io/admission scheduling gate; admitting it means removing the
// gate. The API server is the only state: a restarted controller rebuilds
// every queue from the gated pods, so nothing is lost.
package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	listers "github.com/switchyard-sched/switchyard/pkg/generated/listers/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/routing"
)

// Event reasons recorded on pods.
const (
	ReasonQueued       = "Queued"
	ReasonAdmitted     = "Admitted"
	ReasonUnknownQueue = "UnknownQueue"
)

// Options tunes the controller.
type Options struct {
	// MaxAdmittedTotal caps pods admitted but not yet bound over all gated
	// queues; when queues compete for it, their weights share it. 0: no cap.
	MaxAdmittedTotal int
	// Profiles are the scheduler profiles that exist; a Queue naming another
	// one gets the ProfileMissing condition and its pods stay held.
	Profiles sets.Set[string]
	// ExternalQueues is true when a broker is configured, so that Queues
	// with spec.external can hand their pods to an external scheduler;
	// without one such Queues are not usable and their pods stay held.
	ExternalQueues bool
	// Workers remove gates concurrently; 8 when zero.
	Workers int
	// StatusInterval is how often changed Queue status is written; 1s when zero.
	StatusInterval time.Duration
}

// Controller admits gated pods. Create it with New, then Run it.
type Controller struct {
	client   kubernetes.Interface
	sy       versioned.Interface
	pods     cache.Indexer
	queues   listers.QueueLister
	recorder events.EventRecorder
	metrics  *Metrics
	opts     Options

	wake  chan struct{}
	work  chan admission
	mu    sync.Mutex
	state *state
}

// state is what the controller remembers between cycles; all of it can be
// lost without losing a pod.
type state struct {
	// inflight are pods whose gate removal was sent and not yet observed.
	inflight map[types.UID]inflight
	// pass is each queue's stride-scheduling pass: it grows by 1/weight per
	// admission, and the contending queue with the lowest pass goes next.
	pass     map[string]float64
	active   sets.Set[string]
	limiters map[string]*queueLimiter
	// announced are pods that already got their UnknownQueue check, queued
	// those that got their Queued event.
	announced sets.Set[types.UID]
	queued    sets.Set[types.UID]
	status    map[string]v1alpha1.QueueStatus
}

type inflight struct {
	queue    string
	requests corev1.ResourceList
	since    time.Time
}

type queueLimiter struct {
	spec    v1alpha1.AdmissionRate
	limiter *rate.Limiter
}

type admission struct {
	pod     *corev1.Pod
	queue   string
	decided time.Time
}

// minCycleGap bounds how often admission recomputes its view: pod events
// arrive by the thousand per second, and one cycle serves them all.
const minCycleGap = 10 * time.Millisecond

// New wires the controller to informers the caller starts afterwards.
func New(client kubernetes.Interface, sy versioned.Interface, pods cache.SharedIndexInformer,
	queues cache.SharedIndexInformer, queueLister listers.QueueLister, recorder events.EventRecorder, metrics *Metrics, opts Options) (*Controller, error) {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = time.Second
	}
	if err := routing.AddQueueIndex(pods); err != nil {
		return nil, err
	}
	c := &Controller{
		client: client, sy: sy, pods: pods.GetIndexer(), queues: queueLister, recorder: recorder, metrics: metrics, opts: opts,
		wake: make(chan struct{}, 1),
		work: make(chan admission, 1024),
		state: &state{
			inflight:  map[types.UID]inflight{},
			pass:      map[string]float64{},
			active:    sets.New[string](),
			limiters:  map[string]*queueLimiter{},
			announced: sets.New[types.UID](),
			queued:    sets.New[types.UID](),
			status:    map[string]v1alpha1.QueueStatus{},
		},
	}
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.podChanged(obj, false) },
		UpdateFunc: func(_, obj any) { c.podChanged(obj, false) },
		DeleteFunc: func(obj any) { c.podChanged(obj, true) },
	}); err != nil {
		return nil, err
	}
	if _, err := queues.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.poke() },
		UpdateFunc: func(any, any) { c.poke() },
		DeleteFunc: func(any) { c.poke() },
	}); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Controller) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Controller) podChanged(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if _, routed := pod.Annotations[routing.RoutedQueueAnnotation]; !routed {
		return
	}
	c.mu.Lock()
	if _, ok := c.state.inflight[pod.UID]; ok && (!v1alpha1.HasAdmissionGate(pod) || pod.DeletionTimestamp != nil) {
		delete(c.state.inflight, pod.UID)
	}
	if deleted {
		c.state.announced.Delete(pod.UID)
		c.state.queued.Delete(pod.UID)
	}
	c.mu.Unlock()
	c.poke()
}

// Run admits pods until ctx ends. Informers must have synced.
func (c *Controller) Run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("admission")
	ctx = klog.NewContext(ctx, logger)
	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case a := <-c.work:
					c.admit(ctx, a)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.statusLoop(ctx)
	}()
	logger.Info("Admission controller started", "maxAdmittedTotal", c.opts.MaxAdmittedTotal, "profiles", sets.List(c.opts.Profiles))
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	c.poke()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-c.wake:
		case <-timer.C:
		}
		next := c.cycle(ctx)
		timer.Reset(next)
		select {
		case <-ctx.Done():
		case <-time.After(minCycleGap):
		}
	}
}

// queueView is one queue as seen in one cycle.
type queueView struct {
	queue     *v1alpha1.Queue
	usable    bool
	pending   []*corev1.Pod
	admitted  int
	scheduled int
	usage     corev1.ResourceList
}

// cycle admits as many pods as the limits allow and returns when to look
// again if nothing else changes (a rate limit refilling, an expiry).
func (c *Controller) cycle(ctx context.Context) time.Duration {
	logger := klog.FromContext(ctx)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()

	views, totalAdmitted, err := c.snapshot(now)
	if err != nil {
		logger.Error(err, "Listing pods and queues")
		return time.Second
	}
	next := 30 * time.Second
	for uid, in := range c.state.inflight {
		// A removal whose outcome was never observed: the informer will tell,
		// but do not hold capacity for it forever.
		if now.Sub(in.since) > time.Minute {
			delete(c.state.inflight, uid)
		}
	}

	// Queues that start contending join at the current pass, so that an idle
	// queue cannot claim a burst for the time it was idle.
	minPass, found := 0.0, false
	for name, v := range views {
		if len(v.pending) > 0 && c.state.active.Has(name) {
			if !found || c.state.pass[name] < minPass {
				minPass, found = c.state.pass[name], true
			}
		}
	}
	active := sets.New[string]()
	for name, v := range views {
		if len(v.pending) == 0 {
			continue
		}
		active.Insert(name)
		if !c.state.active.Has(name) && found && c.state.pass[name] < minPass {
			c.state.pass[name] = minPass
		}
	}
	c.state.active = active

	for {
		var best *queueView
		for _, v := range views {
			if !v.usable || len(v.pending) == 0 {
				continue
			}
			if wait, ok := c.admissible(v, totalAdmitted, now); !ok {
				if wait > 0 && wait < next {
					next = wait
				}
				continue
			}
			if best == nil || better(v, best, c.state.pass) {
				best = v
			}
		}
		if best == nil {
			break
		}
		pod := best.pending[0]
		best.pending = best.pending[1:]
		name := best.queue.Name
		if l := c.state.limiters[name]; l != nil {
			l.limiter.AllowN(now, 1)
		}
		requests := podRequests(pod)
		best.admitted++
		addTo(best.usage, requests)
		totalAdmitted++
		c.state.pass[name] += 1 / float64(max(best.queue.Spec.Weight, 1))
		c.state.inflight[pod.UID] = inflight{queue: name, requests: requests, since: now}
		select {
		case c.work <- admission{pod: pod, queue: name, decided: now}:
		default:
			// Workers are saturated: undo and try again shortly.
			delete(c.state.inflight, pod.UID)
			return 10 * time.Millisecond
		}
	}
	c.announceWaiting(views)
	c.recordStatus(views)
	return next
}

// better orders contending queues: higher spec.priority first, then the
// lower stride pass (weighted fair share), then name for determinism.
func better(a, b *queueView, pass map[string]float64) bool {
	if a.queue.Spec.Priority != b.queue.Spec.Priority {
		return a.queue.Spec.Priority > b.queue.Spec.Priority
	}
	pa, pb := pass[a.queue.Name], pass[b.queue.Name]
	if pa != pb {
		return pa < pb
	}
	return a.queue.Name < b.queue.Name
}

// admissible reports whether the head pod of v may be admitted now, and if
// only time stands in the way, how long to wait.
func (c *Controller) admissible(v *queueView, totalAdmitted int, now time.Time) (time.Duration, bool) {
	spec := v.queue.Spec
	if c.opts.MaxAdmittedTotal > 0 && totalAdmitted >= c.opts.MaxAdmittedTotal {
		return 0, false
	}
	if spec.MaxAdmitted != nil && v.admitted >= int(*spec.MaxAdmitted) {
		return 0, false
	}
	if len(spec.Quota) > 0 {
		requests := podRequests(v.pending[0])
		for name, limit := range spec.Quota {
			used := v.usage[name]
			used.Add(requests[name])
			if used.Cmp(limit) > 0 {
				return 0, false
			}
		}
	}
	if l := c.limiter(v.queue); l != nil {
		if tokens := l.limiter.TokensAt(now); tokens < 1 {
			wait := time.Duration((1 - tokens) / float64(l.limiter.Limit()) * float64(time.Second))
			return max(wait, time.Millisecond), false
		}
	}
	return 0, true
}

func (c *Controller) limiter(q *v1alpha1.Queue) *queueLimiter {
	r := q.Spec.AdmissionRate
	if r == nil {
		delete(c.state.limiters, q.Name)
		return nil
	}
	l := c.state.limiters[q.Name]
	if l == nil || l.spec.PodsPerSecond.Cmp(r.PodsPerSecond) != 0 || l.spec.Burst != r.Burst {
		burst := int(max(r.Burst, 1))
		l = &queueLimiter{spec: *r.DeepCopy(), limiter: rate.NewLimiter(rate.Limit(r.PodsPerSecond.AsApproximateFloat64()), burst)}
		c.state.limiters[q.Name] = l
	}
	return l
}

// snapshot groups the routed pods by queue. Pods sent for admission but not
// yet seen ungated count as admitted, so limits hold while the informer
// catches up.
func (c *Controller) snapshot(now time.Time) (map[string]*queueView, int, error) {
	queues, err := c.queues.List(labels.Everything())
	if err != nil {
		return nil, 0, err
	}
	views := make(map[string]*queueView, len(queues))
	for _, q := range queues {
		usable := c.opts.Profiles == nil || c.opts.Profiles.Has(q.Spec.Profile)
		if q.Spec.External != nil {
			usable = c.opts.ExternalQueues
		}
		views[q.Name] = &queueView{queue: q, usage: corev1.ResourceList{}, usable: usable}
	}
	totalAdmitted := 0
	for name, v := range views {
		objs, err := c.pods.ByIndex(routing.QueueIndex, name)
		if err != nil {
			return nil, 0, err
		}
		for _, obj := range objs {
			pod, ok := obj.(*corev1.Pod)
			if !ok || pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
				continue
			}
			totalAdmitted += c.classify(v, pod)
		}
	}
	for _, v := range views {
		sort.Slice(v.pending, func(i, j int) bool { return queueOrder(v.pending[i], v.pending[j]) })
	}
	return views, totalAdmitted, nil
}

// classify counts one routed pod into its queue's view and returns 1 if it
// counts against the cluster-wide cap. Pods of a deleted Queue are not
// looked at: their gate stays until the Queue returns.
func (c *Controller) classify(v *queueView, pod *corev1.Pod) int {
	c.announce(pod, v.queue.Name)
	if _, sent := c.state.inflight[pod.UID]; v1alpha1.HasAdmissionGate(pod) && !sent {
		v.pending = append(v.pending, pod)
		return 0
	}
	if len(v.queue.Spec.Quota) > 0 {
		// Summing requests is the costliest part of a cycle: only quota needs it.
		addTo(v.usage, podRequests(pod))
	}
	if pod.Spec.NodeName != "" {
		v.scheduled++
		return 0
	}
	v.admitted++
	if v.queue.Spec.HasLimits() {
		return 1
	}
	return 0
}

// queueOrder is the order within a queue: pod priority, then creation time,
// then name.
func queueOrder(a, b *corev1.Pod) bool {
	pa, pb := podPriority(a), podPriority(b)
	if pa != pb {
		return pa > pb
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

func podPriority(p *corev1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

// announce warns, once per pod and controller lifetime, when a pod's label
// named a queue that does not exist.
func (c *Controller) announce(pod *corev1.Pod, queue string) {
	if c.state.announced.Has(pod.UID) {
		return
	}
	c.state.announced.Insert(pod.UID)
	if requested, ok := pod.Labels[v1alpha1.QueueLabel]; ok && requested != queue {
		c.recorder.Eventf(pod, nil, corev1.EventTypeWarning, ReasonUnknownQueue, "Route",
			"Label %s=%q names no Queue; the pod was routed to the default queue %q", v1alpha1.QueueLabel, requested, queue)
	}
}

// announceWaiting records a Queued event, once per pod and controller
// lifetime, for pods a cycle left waiting. A pod admitted in the cycle that
// first saw it gets only its Admitted event: every Event is an API write,
// and a queue that is not holding anything back should cost one per pod.
func (c *Controller) announceWaiting(views map[string]*queueView) {
	for name, v := range views {
		for _, pod := range v.pending {
			if c.state.queued.Has(pod.UID) {
				continue
			}
			c.state.queued.Insert(pod.UID)
			c.recorder.Eventf(pod, nil, corev1.EventTypeNormal, ReasonQueued, "Queue",
				"Waiting for admission in queue %q (%d pending, %d admitted)", name, len(v.pending), v.admitted)
		}
	}
}

// GateRemovalPatch is the JSON patch that admits a pod: it tests the pod's
// UID and the gate's position, so it never touches a recreated pod or
// another gate. ok is false when the pod carries no admission gate.
func GateRemovalPatch(pod *corev1.Pod) (patch []byte, ok bool) {
	for i, g := range pod.Spec.SchedulingGates {
		if g.Name != v1alpha1.AdmissionGate {
			continue
		}
		gatePath := fmt.Sprintf("/spec/schedulingGates/%d", i)
		patch, _ = json.Marshal([]map[string]any{
			{"op": "test", "path": "/metadata/uid", "value": pod.UID},
			{"op": "test", "path": gatePath + "/name", "value": v1alpha1.AdmissionGate},
			{"op": "remove", "path": gatePath},
		})
		return patch, true
	}
	return nil, false
}

// admit removes the admission gate with GateRemovalPatch.
func (c *Controller) admit(ctx context.Context, a admission) {
	logger := klog.FromContext(ctx)
	patch, ok := GateRemovalPatch(a.pod)
	if !ok {
		c.forget(a.pod.UID)
		return
	}
	// A removal already decided completes even when the controller is
	// stopping, so that its outcome is known and counted exactly once.
	patchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := c.client.CoreV1().Pods(a.pod.Namespace).Patch(patchCtx, a.pod.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: routing.ManagerName})
	switch {
	case err == nil:
		now := time.Now()
		c.metrics.PatchSeconds.Observe(now.Sub(a.decided).Seconds())
		c.metrics.Admissions.WithLabelValues(a.queue).Inc()
		c.metrics.WaitSeconds.WithLabelValues(a.queue).Observe(now.Sub(a.pod.CreationTimestamp.Time).Seconds())
		c.recorder.Eventf(a.pod, nil, corev1.EventTypeNormal, ReasonAdmitted, "Admit", "Admitted by queue %q after %s", a.queue, now.Sub(a.pod.CreationTimestamp.Time).Round(time.Millisecond))
	case apierrors.IsNotFound(err):
		c.forget(a.pod.UID)
	case apierrors.IsInvalid(err), apierrors.IsConflict(err):
		// The pod changed under us (gate moved or removed, pod recreated):
		// look again with fresh data.
		c.metrics.AdmissionErrors.WithLabelValues(a.queue, "stale").Inc()
		c.forget(a.pod.UID)
	default:
		// The outcome is unknown (timeout, API server busy): keep counting the
		// pod as admitted until the informer says otherwise or it expires.
		c.metrics.AdmissionErrors.WithLabelValues(a.queue, "api").Inc()
		logger.Error(err, "Removing the admission gate", "pod", klog.KObj(a.pod), "queue", a.queue)
	}
}

func (c *Controller) forget(uid types.UID) {
	c.mu.Lock()
	delete(c.state.inflight, uid)
	c.mu.Unlock()
	c.poke()
}

func podRequests(pod *corev1.Pod) corev1.ResourceList {
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	reqs[corev1.ResourcePods] = *resource.NewQuantity(1, resource.DecimalSI)
	return reqs
}

func addTo(sum, add corev1.ResourceList) {
	for name, q := range add {
		cur := sum[name]
		cur.Add(q)
		sum[name] = cur
	}
}

// recordStatus computes each queue's status from the cycle's view; the
// status loop writes what changed.
func (c *Controller) recordStatus(views map[string]*queueView) {
	defaults := 0
	for _, v := range views {
		if v.queue.Spec.Default {
			defaults++
		}
	}
	for name, v := range views {
		st := v1alpha1.QueueStatus{
			Pending:            int32(len(v.pending)),
			Admitted:           int32(v.admitted),
			Scheduled:          int32(v.scheduled),
			ObservedGeneration: v.queue.Generation,
			Conditions:         append([]metav1.Condition(nil), v.queue.Status.Conditions...),
		}
		for _, p := range v.pending {
			if st.OldestPendingSince == nil || p.CreationTimestamp.Before(st.OldestPendingSince) {
				t := p.CreationTimestamp
				st.OldestPendingSince = &t
			}
		}
		gen := v.queue.Generation
		missing := !v.usable
		if v.queue.Spec.External != nil {
			setCondition(&st, v1alpha1.QueueProfileMissing, missing, "BrokerNotConfigured",
				fmt.Sprintf("external queue %q needs a broker: start switchyard-coordinator with --amqp-url; pods are held", v.queue.Spec.External.AMQPQueue),
				"BrokerConfigured", "admitted pods are published to the external scheduler's queue", gen)
		} else {
			setCondition(&st, v1alpha1.QueueProfileMissing, missing, "ProfileMissing", fmt.Sprintf("no scheduler profile named %q is configured; pods are held", v.queue.Spec.Profile), "ProfileFound", "the profile is configured", gen)
		}
		dup := v.queue.Spec.Default && defaults > 1
		setCondition(&st, v1alpha1.QueueDuplicateDefault, dup, "DuplicateDefault", "more than one Queue has spec.default=true; the oldest one receives unlabelled pods", "SingleDefault", "at most one default Queue", gen)
		ready := !missing && !dup
		msg := "pods are routed to the profile and admitted within the limits"
		if !ready {
			msg = "see the ProfileMissing and DuplicateDefault conditions"
		}
		setCondition(&st, v1alpha1.QueueReady, ready, "Ready", msg, "NotReady", msg, gen)
		c.state.status[name] = st
		c.metrics.Pending.WithLabelValues(name).Set(float64(st.Pending))
		c.metrics.Admitted.WithLabelValues(name).Set(float64(st.Admitted))
		c.metrics.Scheduled.WithLabelValues(name).Set(float64(st.Scheduled))
	}
	for name := range c.state.status {
		if views[name] == nil {
			delete(c.state.status, name)
			c.metrics.Pending.DeleteLabelValues(name)
			c.metrics.Admitted.DeleteLabelValues(name)
			c.metrics.Scheduled.DeleteLabelValues(name)
		}
	}
}

func setCondition(st *v1alpha1.QueueStatus, condType string, isTrue bool, trueReason, trueMsg, falseReason, falseMsg string, gen int64) {
	cond := metav1.Condition{Type: condType, Status: metav1.ConditionFalse, Reason: falseReason, Message: falseMsg, ObservedGeneration: gen}
	if isTrue {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, trueReason, trueMsg
	}
	meta.SetStatusCondition(&st.Conditions, cond)
}

// statusLoop writes the status computed by the cycles, at most once per
// StatusInterval per queue, and only when it changed.
func (c *Controller) statusLoop(ctx context.Context) {
	logger := klog.FromContext(ctx)
	ticker := time.NewTicker(c.opts.StatusInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		c.poke() // refresh counts even when no pod event arrived
		c.mu.Lock()
		desired := make(map[string]v1alpha1.QueueStatus, len(c.state.status))
		for k, v := range c.state.status {
			desired[k] = *v.DeepCopy()
		}
		c.mu.Unlock()
		for name, st := range desired {
			q, err := c.queues.Get(name)
			if err != nil {
				continue
			}
			if statusEqual(q.Status, st) {
				continue
			}
			updated := q.DeepCopy()
			updated.Status = st
			if _, err := c.sy.SwitchyardV1alpha1().Queues().UpdateStatus(ctx, updated, metav1.UpdateOptions{FieldManager: routing.ManagerName}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
				logger.Error(err, "Updating queue status", "queue", name)
			}
		}
	}
}

func statusEqual(a, b v1alpha1.QueueStatus) bool {
	if a.Pending != b.Pending || a.Admitted != b.Admitted || a.Scheduled != b.Scheduled || a.ObservedGeneration != b.ObservedGeneration {
		return false
	}
	if (a.OldestPendingSince == nil) != (b.OldestPendingSince == nil) || (a.OldestPendingSince != nil && !a.OldestPendingSince.Equal(b.OldestPendingSince)) {
		return false
	}
	if len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for _, cb := range b.Conditions {
		ca := meta.FindStatusCondition(a.Conditions, cb.Type)
		if ca == nil || ca.Status != cb.Status || ca.Reason != cb.Reason || ca.Message != cb.Message || ca.ObservedGeneration != cb.ObservedGeneration {
			return false
		}
	}
	return true
}
