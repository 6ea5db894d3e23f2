package admission

import (
	"container/heap"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// admittedAt is when pod's admission record says it was admitted, or now
// when it has none (admitted by a coordinator that wrote no record).
func admittedAt(pod *corev1.Pod, now time.Time) time.Time {
	if record, ok := v1alpha1.AdmissionRecordOf(pod); ok && !record.Time.IsZero() && !record.Time.After(now) {
		return record.Time.Time
	}
	return now
}

// deadline is when one admitted pod becomes overdue.
type deadline struct {
	at time.Time
	e  *entry
}

// deadlineHeap is a min-heap of deadlines (container/heap).
type deadlineHeap []deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h deadlineHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)        { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = deadline{}
	*h = old[:len(old)-1]
	return d
}

// watchDeadline schedules e, admitted in q, to become overdue at its
// admission time plus q's timeout, if q has one.
func (s *State) watchDeadline(q *queueState, e *entry) {
	timeout := q.admittedTimeout()
	if timeout <= 0 {
		return
	}
	// Every update of an admitted pod counts it again: schedule each
	// deadline once.
	if at := e.admittedAt.Add(timeout); !at.Equal(e.deadline) {
		e.deadline = at
		heap.Push(&s.deadlines, deadline{at: at, e: e})
	}
}

// ExpireAdmitted marks overdue the admitted pods whose queue's
// admittedTimeoutSeconds has passed since their admission, so that they no
// longer count against maxAdmitted. It returns them (to be reported) and
// when the next one comes due (zero: none is waiting).
func (s *State) ExpireAdmitted(now time.Time) (expired []*entry, next time.Time) {
	for len(s.deadlines) > 0 && !s.deadlines[0].at.After(now) {
		d := heap.Pop(&s.deadlines).(deadline)
		e := d.e
		if e.deadline.Equal(d.at) {
			e.deadline = time.Time{} // no longer scheduled: it may be again
		}
		if s.pods[e.uid] != e || e.class != classAdmitted {
			continue // bound, gone or already overdue since it was scheduled
		}
		q := s.queues[e.queue]
		timeout := q.admittedTimeout()
		if timeout == 0 {
			continue
		}
		if e.admittedAt.Add(timeout).After(now) {
			continue // the timeout grew since; a later deadline is scheduled
		}
		e.overdue = true
		q.reclassify(e)
		expired = append(expired, e)
	}
	if len(s.deadlines) > 0 {
		next = s.deadlines[0].at
	}
	return expired, next
}
