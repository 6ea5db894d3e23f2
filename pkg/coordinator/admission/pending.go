package admission

import (
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	visibility "github.com/switchyard-sched/switchyard/pkg/apis/visibility/v1alpha1"
)

// queueStanding is what the standings of one queue's pending pods depend
// on: its pods in order, what held its next pod at the last decision, its
// expected admission speed, and the cluster-wide cap.
type queueStanding struct {
	Queue            string
	Spec             *v1alpha1.QueueSpec
	Pending          []*entry
	Held             string
	Estimate         Estimate
	MaxAdmittedTotal int
}

// standings says where each pending pod of a queue stands, in queue order,
// for the pods keep accepts (nil: all), at most limit of them (0: no
// limit). It is a pure function of its input and the time. A pod's
// estimated admission is now plus its position over the queue's expected
// admissions per second; members of a calculation set that waits for its
// other members, or can never fit, get none.
func standings(in queueStanding, now time.Time, keep func(*entry) bool, limit int) []visibility.PendingPod {
	var out []visibility.PendingPod
	type setStanding struct{ waiting, unfit string }
	sets := map[*gang]setStanding{}
	head := in.Held
	if head == "" {
		head = "nothing: it is next to be admitted"
	}
	for i, e := range in.Pending {
		if keep != nil && !keep(e) {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		position := i + 1
		p := visibility.PendingPod{
			Namespace: e.namespace, Name: e.name, UID: e.uid, Queue: in.Queue,
			Position: int32(position), Priority: e.priority, CreationTimestamp: metav1.NewTime(e.created),
			EstimateBasis: in.Estimate.Basis,
		}
		switch {
		case position == 1:
			p.HeldBy = head
		case in.Held == "":
			p.HeldBy = podsAhead(position-1) + " in the queue, which is admitting"
		default:
			p.HeldBy = podsAhead(position-1) + " in the queue, whose next pod is held by " + in.Held
		}
		if g := e.gang; g != nil {
			p.CalcSet = g.key.name
			st, seen := sets[g]
			if !seen {
				pending, past, requests := g.standing()
				complete := pending+past >= g.size
				if in.Spec != nil {
					if reason := SetCannotFit(in.Spec, g.size, requests, complete, in.MaxAdmittedTotal); reason != "" {
						st.unfit = fmt.Sprintf("calculation set %s can never be admitted whole: %s", g.key.name, reason)
					}
				}
				if st.unfit == "" && !complete {
					st.waiting = fmt.Sprintf("calculation set %s waits for its other members (%d of %d exist)", g.key.name, pending+past, g.size)
				}
				sets[g] = st
			}
			switch {
			case st.unfit != "":
				p.HeldBy, p.EstimateBasis = st.unfit, "no estimate: the set or the queue must change first"
				out = append(out, p)
				continue
			case st.waiting != "":
				p.HeldBy, p.EstimateBasis = st.waiting, "no estimate until every member exists"
				out = append(out, p)
				continue
			}
		}
		if rate := in.Estimate.PerSecond; rate > 0 {
			eta := metav1.NewTime(now.Add(time.Duration(float64(position) / rate * float64(time.Second))).Truncate(time.Second))
			p.EstimatedAdmission = &eta
		}
		out = append(out, p)
	}
	return out
}

// PendingInQueue lists the pending pods of queue in queue order, at most
// limit (0: all); found is false when neither the Queue nor pods of it
// are known.
func (c *Controller) PendingInQueue(queue string, limit int) (pods []visibility.PendingPod, found bool) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.state.queues[queue]
	if q == nil {
		return nil, false
	}
	return standings(c.standingOf(q, now), now, nil, limit), true
}

// PendingInNamespace lists the pending pods of one namespace in every
// queue, by queue name and then position, at most limit (0: all). It looks
// at every queue's pending pods: a read on request, never on the
// admission path.
func (c *Controller) PendingInNamespace(namespace string, limit int) []visibility.PendingPod {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.state.queues))
	for name, q := range c.state.queues {
		if len(q.pending) > 0 {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	inNamespace := func(e *entry) bool { return e.namespace == namespace }
	var out []visibility.PendingPod
	for _, name := range names {
		left := 0
		if limit > 0 {
			if left = limit - len(out); left <= 0 {
				break
			}
		}
		out = append(out, standings(c.standingOf(c.state.queues[name], now), now, inNamespace, left)...)
	}
	return out
}

// standingOf is the input of standings for q; the caller holds mu.
func (c *Controller) standingOf(q *queueState, now time.Time) queueStanding {
	in := queueStanding{Queue: q.name, Pending: q.pending, Held: c.held[q.name], MaxAdmittedTotal: c.opts.MaxAdmittedTotal}
	if q.queue == nil {
		in.Held = fmt.Sprintf("no Queue %q exists: its pods keep their gate until it is created again", q.name)
	} else {
		in.Spec = &q.queue.Spec
	}
	count, span := q.recent.recent(now)
	in.Estimate = EstimateRate(count, span, in.Spec, in.Held)
	return in
}

// podsAhead counts the pods ahead of one, in words.
func podsAhead(n int) string {
	if n == 1 {
		return "1 pod ahead"
	}
	return fmt.Sprintf("%d pods ahead", n)
}
