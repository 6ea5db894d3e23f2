package admission

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// admittedPod is a routed pod of q whose gate is gone, admitted at when
// (its admission record), bound to node unless node is "".
func admittedPod(name, q string, when time.Time, node string) *corev1.Pod {
	p := routedPod(name, q, "switchyard-batch", "500m")
	p.Spec.SchedulingGates, p.Spec.NodeName = nil, node
	record, _ := json.Marshal(v1alpha1.AdmissionRecord{Queue: q, Time: metav1.NewTime(when)})
	p.Annotations[v1alpha1.AdmittedAnnotation] = string(record)
	return p
}

func timeoutQueue(timeout *int32) *v1alpha1.Queue {
	q := &v1alpha1.Queue{Spec: v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](1),
		Quota: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}, AdmittedTimeoutSeconds: timeout}}
	q.Name = "q"
	return q
}

// TestAdmittedTimeout: an admitted pod that stays unbound past the queue's
// admittedTimeoutSeconds stops counting against maxAdmitted (not against
// quota), once, at the right moment by the fake clock.
func TestAdmittedTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout *int32
		// steps, in order; each sets the pod (nil: no change) and expires
		// at t0+at, then expects the counts.
		steps []overdueStep
	}{
		{name: "no timeout: admitted until bound", timeout: nil, steps: []overdueStep{
			{pod: admittedPod("p", "q", t0, ""), at: time.Hour, admitted: 1},
		}},
		{name: "overdue at the deadline, not before", timeout: ptr.To[int32](30), steps: []overdueStep{
			{pod: admittedPod("p", "q", t0, ""), at: 29 * time.Second, admitted: 1, next: 30 * time.Second},
			{at: 30 * time.Second, overdue: 1, expired: 1},
			{at: time.Hour, overdue: 1},
		}},
		{name: "binding after the deadline counts it as scheduled", timeout: ptr.To[int32](30), steps: []overdueStep{
			{pod: admittedPod("p", "q", t0, ""), at: 31 * time.Second, overdue: 1, expired: 1},
			{pod: admittedPod("p", "q", t0, "n1"), at: 32 * time.Second, scheduled: 1},
		}},
		{name: "binding before the deadline: never overdue", timeout: ptr.To[int32](30), steps: []overdueStep{
			{pod: admittedPod("p", "q", t0, ""), at: 10 * time.Second, admitted: 1, next: 30 * time.Second},
			{pod: admittedPod("p", "q", t0, "n1"), at: time.Hour, scheduled: 1},
		}},
		{name: "updates before the deadline schedule it once", timeout: ptr.To[int32](30), steps: []overdueStep{
			{pod: admittedPod("p", "q", t0, ""), at: time.Second, admitted: 1, next: 30 * time.Second},
			{pod: admittedPod("p", "q", t0, ""), at: 2 * time.Second, admitted: 1, next: 30 * time.Second, heap: 1},
			{at: 30 * time.Second, overdue: 1, expired: 1},
		}},
		{name: "the record's time survives a restart", timeout: ptr.To[int32](30), steps: []overdueStep{
			// Seen first 40s after its admission: overdue at once.
			{pod: admittedPod("p", "q", t0.Add(-40*time.Second), ""), at: 0, overdue: 1, expired: 1},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewState()
			s.SetQueue("q", timeoutQueue(tc.timeout))
			for i, st := range tc.steps {
				now := t0.Add(st.at)
				if st.pod != nil {
					s.SetPod(st.pod, now)
				}
				expired, next := s.ExpireAdmitted(now)
				q := s.queues["q"]
				if q.admitted != st.admitted || q.overdue != st.overdue || q.scheduled != st.scheduled || len(expired) != st.expired {
					t.Errorf("step %d: admitted %d overdue %d scheduled %d expired %d; want %d %d %d %d",
						i, q.admitted, q.overdue, q.scheduled, len(expired), st.admitted, st.overdue, st.scheduled, st.expired)
				}
				if q.admitted+q.overdue+q.scheduled > 0 && q.usage[corev1.ResourceCPU] != 500 {
					t.Errorf("step %d: quota usage %dm, want 500m: an overdue pod still counts against quota", i, q.usage[corev1.ResourceCPU])
				}
				if st.next != 0 && !next.Equal(t0.Add(st.next)) {
					t.Errorf("step %d: next deadline %v, want t0+%v", i, next, st.next)
				}
				if st.heap != 0 && len(s.deadlines) != st.heap {
					t.Errorf("step %d: %d deadlines scheduled, want %d", i, len(s.deadlines), st.heap)
				}
			}
		})
	}
}

type overdueStep struct {
	pod                                   *corev1.Pod
	at                                    time.Duration
	admitted, overdue, scheduled, expired int
	next                                  time.Duration
	heap                                  int
}

// TestAdmittedTimeoutEdited: a timeout added to a Queue applies to the pods
// already admitted; removed, it makes overdue pods count again.
func TestAdmittedTimeoutEdited(t *testing.T) {
	s := NewState()
	s.SetQueue("q", timeoutQueue(nil))
	s.SetPod(admittedPod("p", "q", t0, ""), t0)
	s.SetQueue("q", timeoutQueue(ptr.To[int32](10)))
	if expired, _ := s.ExpireAdmitted(t0.Add(11 * time.Second)); len(expired) != 1 || s.queues["q"].overdue != 1 {
		t.Fatalf("a timeout added later: expired %d, overdue %d; want the admitted pod overdue", len(expired), s.queues["q"].overdue)
	}
	s.SetQueue("q", timeoutQueue(nil))
	if q := s.queues["q"]; q.overdue != 0 || q.admitted != 1 {
		t.Errorf("timeout removed: admitted %d overdue %d; want it admitted again", q.admitted, q.overdue)
	}
	// Decide sees only the counted pods: with the one pod overdue, a
	// queue of maxAdmitted 1 admits the next.
	s.SetQueue("q", timeoutQueue(ptr.To[int32](10)))
	s.ExpireAdmitted(t0.Add(time.Minute))
	s.SetPod(routedPod("next", "q", "switchyard-batch", "500m"), t0.Add(time.Minute))
	q := s.queues["q"]
	d := Decide(Input{Queues: []QueueView{{Name: "q", Spec: &q.queue.Spec, Usable: true, Pending: q.pending, Admitted: q.admitted, Usage: q.usage}}, Budget: 10}, t0.Add(time.Minute))
	if len(d.Admit) != 1 {
		t.Errorf("with the only admitted pod overdue, maxAdmitted 1 admits %d, want 1", len(d.Admit))
	}
}
