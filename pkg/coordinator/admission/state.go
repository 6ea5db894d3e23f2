package admission

import (
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// Resources are amounts in milli-units (resource.Quantity.MilliValue), so
// that sums and comparisons are integer arithmetic.
type Resources map[corev1.ResourceName]int64

// podRequests is what a pod counts against a quota: its effective requests
// plus one "pods".
func podRequests(pod *corev1.Pod) Resources {
	reqs := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	out := make(Resources, len(reqs)+1)
	for name, q := range reqs {
		out[name] = q.MilliValue()
	}
	out[corev1.ResourcePods] += 1000
	return out
}

func (r Resources) add(o Resources, sign int64) {
	for name, v := range o {
		r[name] += sign * v
		if r[name] == 0 {
			delete(r, name)
		}
	}
}

// class is where one pod stands in its queue.
type class uint8

const (
	// classNone: terminated, being deleted, or not known.
	classNone class = iota
	// classPending: gated, and its schedulerName is the queue's.
	classPending
	// classAdmitted: gate removed (or its removal sent), not yet bound.
	classAdmitted
	// classScheduled: bound to a node, not terminated.
	classScheduled
	// classStranded: its schedulerName is not the one its queue now gives
	// (the Queue was edited after the pod was created): never admitted.
	classStranded
	// classOverdue: admitted longer than the queue's admittedTimeoutSeconds
	// ago and still not bound; counts against quota, not maxAdmitted.
	classOverdue
)

// entry is what admission remembers of one routed pod: only what the
// decisions need, so that memory stays small per pod.
type entry struct {
	uid       types.UID
	namespace string
	name      string
	queue     string
	scheduler string
	priority  int32
	created   time.Time
	gated     bool
	bound     bool
	done      bool
	requests  Resources
	// pod is kept while the pod waits: the gate-removal patch needs it.
	pod *corev1.Pod
	// class is the pod's current standing; sending is true while its gate
	// removal is in flight (sent, not yet observed).
	class   class
	sending bool
	since   time.Time
	// admittedAt is when the pod was admitted (its admission record, or
	// when this process admitted or first saw it admitted); overdue is set
	// once it stayed unbound past its queue's admittedTimeoutSeconds.
	admittedAt time.Time
	overdue    bool
	// deadline is the last deadline scheduled for it.
	deadline time.Time
	// gang is the calculation set the pod belongs to in its queue; nil for
	// a pod admitted on its own.
	gang *gang
	// queued is true once the pod's Queued event was recorded, strandedSeen
	// once its Stranded event was.
	queued       bool
	strandedSeen bool
}

// ref is the pod, for Events about it.
func (e *entry) ref() *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: e.namespace, Name: e.name, UID: e.uid}
}

// orderBefore is the order within a queue: pod priority, then creation
// time, then namespace and name (unique, so the order is total).
func orderBefore(a, b *entry) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	if !a.created.Equal(b.created) {
		return a.created.Before(b.created)
	}
	if a.namespace != b.namespace {
		return a.namespace < b.namespace
	}
	return a.name < b.name
}

// queueState is one queue's pods and usage, kept up to date by events.
type queueState struct {
	name string
	// queue is the Queue object; nil while no Queue of this name exists
	// (its pods keep their gate until it returns).
	queue *v1alpha1.Queue
	pods  map[types.UID]*entry
	// pending is ordered by orderBefore.
	pending   []*entry
	admitted  int
	scheduled int
	stranded  int
	overdue   int
	// usage sums the requests of admitted and scheduled pods.
	usage Resources
	// unannounced are pending pods that have not had a Queued event yet.
	unannounced map[types.UID]*entry
	// unfit are the calculation sets reported as never fitting the queue.
	unfit map[gangKey]*gang
	// recent counts the queue's admissions of the last few minutes, for
	// admission estimates.
	recent throughput
	owner  *State
}

func newQueueState(owner *State, name string) *queueState {
	return &queueState{owner: owner, name: name, pods: map[types.UID]*entry{}, usage: Resources{}, unannounced: map[types.UID]*entry{}, unfit: map[gangKey]*gang{}}
}

// admittedTimeout is the queue's admittedTimeoutSeconds; 0: none.
func (q *queueState) admittedTimeout() time.Duration {
	if q.queue == nil || q.queue.Spec.AdmittedTimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*q.queue.Spec.AdmittedTimeoutSeconds) * time.Second
}

// schedulerName is the spec.schedulerName the queue gives its pods today.
func (q *queueState) schedulerName() string {
	if q.queue == nil {
		return ""
	}
	return q.queue.Spec.SchedulerName()
}

// classify says where a pod stands in q now.
func (q *queueState) classify(e *entry) class {
	switch {
	case e.done:
		return classNone
	case e.bound:
		return classScheduled
	case q.queue != nil && e.scheduler != q.schedulerName():
		return classStranded
	case (e.sending || !e.gated) && e.overdue:
		return classOverdue
	case e.sending || !e.gated:
		return classAdmitted
	default:
		return classPending
	}
}

// count adds (sign 1) or removes (sign -1) e's contribution to q.
func (q *queueState) count(e *entry, sign int) {
	switch e.class {
	case classPending:
		if sign > 0 {
			q.insertPending(e)
			if !e.queued {
				q.unannounced[e.uid] = e
			}
		} else {
			q.removePending(e)
			delete(q.unannounced, e.uid)
		}
	case classAdmitted:
		q.admitted += sign
		q.usage.add(e.requests, int64(sign))
		if sign > 0 {
			q.owner.watchDeadline(q, e)
		}
	case classOverdue:
		q.overdue += sign
		q.usage.add(e.requests, int64(sign))
	case classScheduled:
		q.scheduled += sign
		q.usage.add(e.requests, int64(sign))
	case classStranded:
		q.stranded += sign
		if sign > 0 && !e.strandedSeen {
			e.strandedSeen = true
			q.owner.newlyStranded = append(q.owner.newlyStranded, e)
		}
	}
}

// reclassify moves e to the class the current facts give it.
func (q *queueState) reclassify(e *entry) {
	q.count(e, -1)
	e.class = q.classify(e)
	q.count(e, 1)
}

func (q *queueState) pendingIndex(e *entry) int {
	return sort.Search(len(q.pending), func(i int) bool { return !orderBefore(q.pending[i], e) })
}

func (q *queueState) insertPending(e *entry) {
	i := q.pendingIndex(e)
	q.pending = append(q.pending, nil)
	copy(q.pending[i+1:], q.pending[i:])
	q.pending[i] = e
}

func (q *queueState) removePending(e *entry) {
	i := q.pendingIndex(e)
	if i < len(q.pending) && q.pending[i] == e {
		copy(q.pending[i:], q.pending[i+1:])
		q.pending[len(q.pending)-1] = nil
		q.pending = q.pending[:len(q.pending)-1]
	}
}

// State is every queue's pods and usage, updated incrementally from pod
// and Queue events: nothing walks all pods to answer a question. It is not
// safe for concurrent use; the controller serialises access.
type State struct {
	queues map[string]*queueState
	// pods maps each routed pod to its entry, for updates and deletes.
	pods map[types.UID]*entry
	// sending are the entries whose gate removal is in flight.
	sending map[types.UID]*entry
	// newlyStranded are pods that became stranded and were not told so.
	newlyStranded []*entry
	// gangs are the calculation sets with members in a queue.
	gangs map[gangKey]*gang
	// deadlines orders admitted pods of queues with admittedTimeoutSeconds
	// by when they become overdue. Entries are checked when they come due
	// and dropped if the pod bound or left in the meantime, so a pod leaving
	// costs nothing here.
	deadlines deadlineHeap
}

// NewState returns an empty State.
func NewState() *State {
	return &State{queues: map[string]*queueState{}, pods: map[types.UID]*entry{}, sending: map[types.UID]*entry{}, gangs: map[gangKey]*gang{}}
}

func (s *State) queue(name string) *queueState {
	q := s.queues[name]
	if q == nil {
		q = newQueueState(s, name)
		s.queues[name] = q
	}
	return q
}

// forgetIfEmpty drops a queue's state once it has neither a Queue nor pods.
func (s *State) forgetIfEmpty(q *queueState) {
	if q.queue == nil && len(q.pods) == 0 {
		delete(s.queues, q.name)
	}
}

// SetQueue records a Queue's current spec, or its deletion when queue is
// nil. A change of the scheduler name it gives re-classifies its pods: the
// one walk over a queue's pods, on a rare edit, never per cycle.
func (s *State) SetQueue(name string, queue *v1alpha1.Queue) {
	q := s.queue(name)
	before, timeoutBefore := q.schedulerName(), q.admittedTimeout()
	q.queue = queue
	if q.schedulerName() != before {
		for _, e := range q.pods {
			q.reclassify(e)
		}
	}
	if timeout := q.admittedTimeout(); timeout != timeoutBefore {
		for _, e := range q.pods {
			switch {
			case e.class == classAdmitted:
				s.watchDeadline(q, e)
			case e.class == classOverdue && timeout == 0:
				// The timeout was removed: overdue pods count again.
				e.overdue = false
				q.reclassify(e)
			}
		}
	}
	s.forgetIfEmpty(q)
}

// SetPod records what a pod's latest version says. It returns the entry's
// queue name ("" when the pod is not routed) and whether the pod is new.
func (s *State) SetPod(pod *corev1.Pod, now time.Time) (e *entry, added bool) {
	queueName, routed := pod.Annotations[v1alpha1.RoutedQueueAnnotation]
	old := s.pods[pod.UID]
	if !routed || queueName == "" {
		if old != nil {
			s.DeletePod(pod.UID)
		}
		return nil, false
	}
	if old != nil && old.queue != queueName {
		// The annotation never changes on a real pod; treat it as a new pod.
		s.DeletePod(pod.UID)
		old = nil
	}
	q := s.queue(queueName)
	e = old
	if e == nil {
		e = &entry{uid: pod.UID, namespace: pod.Namespace, name: pod.Name, queue: queueName, created: pod.CreationTimestamp.Time}
		if pod.Spec.Priority != nil {
			e.priority = *pod.Spec.Priority
		}
		s.pods[pod.UID] = e
		q.pods[pod.UID] = e
		added = true
		if name, size, ok := v1alpha1.CalcSetMembership(pod); ok {
			s.join(e, name, size)
		}
	} else {
		q.count(e, -1)
	}
	e.scheduler = pod.Spec.SchedulerName
	e.gated = v1alpha1.HasAdmissionGate(pod)
	if added && !e.gated {
		if record, ok := v1alpha1.AdmissionRecordOf(pod); ok {
			// Admitted before this process saw it (a restart, a new
			// leader): the record says when, for the recent throughput.
			q.recent.add(record.Time.Time, now)
		}
	}
	if !e.gated && pod.Spec.NodeName == "" && e.admittedAt.IsZero() {
		e.admittedAt = admittedAt(pod, now)
	}
	e.bound = pod.Spec.NodeName != ""
	e.done = pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
	if e.sending && (!e.gated || e.done) {
		// The removal we sent was observed (or the pod went away).
		e.sending = false
		delete(s.sending, e.uid)
	}
	e.pod = nil
	if e.gated && !e.done {
		e.pod = pod
	}
	if !e.done {
		e.requests = podRequests(pod)
	}
	e.class = q.classify(e)
	q.count(e, 1)
	return e, added
}

// takeStranded returns the pods that became stranded since the last call.
func (s *State) takeStranded() []*entry {
	out := s.newlyStranded
	s.newlyStranded = nil
	return out
}

// DeletePod forgets a pod.
func (s *State) DeletePod(uid types.UID) {
	e := s.pods[uid]
	if e == nil {
		return
	}
	q := s.queues[e.queue]
	q.count(e, -1)
	delete(q.pods, uid)
	delete(s.pods, uid)
	delete(s.sending, uid)
	if g := e.gang; g != nil {
		delete(g.members, uid)
		if len(g.members) == 0 {
			delete(s.gangs, g.key)
			delete(q.unfit, g.key)
		}
	}
	s.forgetIfEmpty(q)
}

// markSending counts a pod as admitted from the moment its gate removal is
// decided, so that limits hold while the informer catches up.
func (s *State) markSending(e *entry, now time.Time) {
	q := s.queues[e.queue]
	q.count(e, -1)
	e.sending, e.since, e.admittedAt = true, now, now
	s.sending[e.uid] = e
	// Counted when decided: a removal that fails later (rare) still counts.
	q.recent.add(now, now)
	e.class = q.classify(e)
	q.count(e, 1)
}

// unsend puts a pod whose gate removal failed back where its last known
// version says it stands.
func (s *State) unsend(uid types.UID) {
	e := s.sending[uid]
	if e == nil {
		return
	}
	delete(s.sending, uid)
	q := s.queues[e.queue]
	q.count(e, -1)
	e.sending = false
	e.class = q.classify(e)
	q.count(e, 1)
}

// expireSending gives up on removals whose outcome was never observed
// after maxAge: the informer will tell, but capacity is not held forever.
func (s *State) expireSending(now time.Time, maxAge time.Duration) {
	for uid, e := range s.sending {
		if now.Sub(e.since) > maxAge {
			s.unsend(uid)
		}
	}
}

// quantity turns a milli-value back into a Quantity for messages.
func quantity(milli int64, name corev1.ResourceName) *resource.Quantity {
	if name == corev1.ResourceCPU {
		return resource.NewMilliQuantity(milli, resource.DecimalSI)
	}
	if milli%1000 == 0 {
		format := resource.DecimalSI
		if name == corev1.ResourceMemory || name == corev1.ResourceEphemeralStorage {
			format = resource.BinarySI
		}
		return resource.NewQuantity(milli/1000, format)
	}
	return resource.NewMilliQuantity(milli, resource.DecimalSI)
}
