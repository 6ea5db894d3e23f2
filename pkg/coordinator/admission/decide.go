package admission

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// QueueView is what Decide sees of one queue.
type QueueView struct {
	Name string
	Spec *v1alpha1.QueueSpec
	// Usable is false while the queue's scheduler does not exist (a missing
	// profile, or an external queue without a broker): its pods are held.
	Usable bool
	// Pending are the pods waiting, in queue order; Decide does not change it.
	Pending []*entry
	// Admitted counts pods admitted and not yet bound; Usage sums the
	// requests of admitted and scheduled pods.
	Admitted int
	Usage    Resources
}

// Bucket is a queue's admission-rate token bucket at a moment.
type Bucket struct {
	Tokens float64
	At     time.Time
	// Rate and Burst are the spec the bucket was made for; a changed spec
	// starts a new, full bucket.
	Rate  float64
	Burst int
}

// tokensAt is the bucket refilled up to now.
func (b Bucket) tokensAt(now time.Time) float64 {
	elapsed := now.Sub(b.At).Seconds()
	if elapsed < 0 {
		elapsed = 0
	}
	return math.Min(float64(b.Burst), b.Tokens+elapsed*b.Rate)
}

// Input is everything one admission decision depends on.
type Input struct {
	Queues []QueueView
	// MaxAdmittedTotal caps admitted-but-unbound pods of all queues with
	// limits together; 0: no cap.
	MaxAdmittedTotal int
	// Budget is how many gate removals may be started now (free workers);
	// Decide never decides more, so nothing decided has to be undone.
	Budget int
	// Pass is each queue's stride-scheduling pass: it grows by 1/weight per
	// admission, and among contending queues of one priority the lowest
	// goes next. Active are the queues that were contending last time.
	Pass    map[string]float64
	Active  sets.Set[string]
	Buckets map[string]Bucket
}

// Admission is one pod to let go.
type Admission struct {
	entry *entry
	Queue string
	// Limits says which limits the admission was checked against and how
	// much of each was used, e.g. "maxAdmitted 3/10, quota cpu 500m/1".
	Limits string
	// decided is when the decision was made; the controller sets it.
	decided time.Time
}

// Decision is what Decide concluded; the caller applies it.
type Decision struct {
	Admit []Admission
	// Pass, Active and Buckets replace the Input's.
	Pass    map[string]float64
	Active  sets.Set[string]
	Buckets map[string]Bucket
	// Held names, for each queue left with waiting pods, the limit that
	// holds its next pod; a queue missing here was held only by the budget.
	Held map[string]string
	// Next is when to decide again if nothing else changes (a rate limit
	// refilling); 0 when only an event can change the outcome.
	Next time.Duration
	// OutOfBudget is true when admissible pods were left for lack of budget.
	OutOfBudget bool
	// Unfit are calculation sets found to never fit their queue's limits
	// that were not reported before; they are skipped, not held for.
	Unfit []UnfitSet
}

// UnfitSet is a calculation set that can never be admitted whole.
type UnfitSet struct {
	Queue  string
	Reason string
	gang   *gang
	// member is one waiting member, for the Event.
	member *entry
}

// SetCannotFit says why a calculation set of size members asking requests
// in all (known once the set is complete) can never be admitted whole under
// spec, or "" when it can.
func SetCannotFit(spec *v1alpha1.QueueSpec, size int, requests Resources, complete bool, maxTotal int) string {
	if spec.MaxAdmitted != nil && size > int(*spec.MaxAdmitted) {
		return fmt.Sprintf("the set has %d members and the queue's maxAdmitted is %d", size, *spec.MaxAdmitted)
	}
	if spec.HasLimits() && maxTotal > 0 && size > maxTotal {
		return fmt.Sprintf("the set has %d members and the cluster-wide cap --max-admitted is %d", size, maxTotal)
	}
	if complete {
		for _, name := range sortedNames(spec.Quota) {
			limit := spec.Quota[name]
			if requests[name] > limit.MilliValue() {
				return fmt.Sprintf("the set asks %s %s in all and the queue's quota is %s", quantity(requests[name], name), name, limit.String())
			}
		}
	}
	return ""
}

// Decide is the admission policy: a pure function of the queues' state and
// the time. Rules, in order:
//   - a queue whose scheduler does not exist admits nothing;
//   - the cluster-wide cap (MaxAdmittedTotal) counts admitted pods of every
//     queue with limits;
//   - maxAdmitted caps a queue's admitted-but-unbound pods;
//   - quota caps the summed requests of a queue's admitted and running pods;
//   - admissionRate is a token bucket per queue;
//   - among queues that may admit, higher spec.priority first, then the
//     lowest stride pass (weights), then name; within a queue, pod priority
//     then creation time; a queue's head pod that does not fit blocks the
//     queue (no skipping ahead, so big pods are not starved);
//   - the members of a calculation set are one unit, at the place of its
//     first waiting member: admitted all together once every member exists,
//     checked as a whole against maxAdmitted, the cluster cap and quota,
//     one token of the rate and one stride step; a set not complete yet
//     waits without blocking its queue, and one that can never fit is
//     reported (Unfit) and skipped. A set larger than the budget is admitted
//     alone, as the first unit of a decision.
//
// Queues that start contending join at the lowest pass among those already
// contending, so an idle queue cannot claim a burst for the time it was idle.
func Decide(in Input, now time.Time) Decision {
	d := Decision{
		Pass:    make(map[string]float64, len(in.Pass)),
		Active:  sets.New[string](),
		Buckets: make(map[string]Bucket, len(in.Buckets)),
		Held:    map[string]string{},
	}
	for k, v := range in.Pass {
		d.Pass[k] = v
	}
	views := make([]*decideView, 0, len(in.Queues))
	totalAdmitted := 0
	for i := range in.Queues {
		q := &in.Queues[i]
		if q.Spec == nil {
			continue
		}
		v := &decideView{QueueView: q, admitted: q.Admitted, usage: Resources{}, quotaNames: sortedNames(q.Spec.Quota), unitAt: -1}
		v.usage.add(q.Usage, 1)
		for _, name := range v.quotaNames {
			limit := q.Spec.Quota[name]
			v.quota = append(v.quota, limit.MilliValue())
		}
		if r := q.Spec.AdmissionRate; r != nil {
			rate, burst := r.PodsPerSecond.AsApproximateFloat64(), int(max(r.Burst, 1))
			b, ok := in.Buckets[q.Name]
			if !ok || b.Rate != rate || b.Burst != burst {
				b = Bucket{Tokens: float64(burst), At: now, Rate: rate, Burst: burst}
			}
			b.Tokens, b.At = b.tokensAt(now), now
			v.bucket = &b
		}
		if q.Spec.HasLimits() {
			totalAdmitted += q.Admitted
		}
		views = append(views, v)
	}
	sort.Slice(views, func(i, j int) bool { return views[i].Name < views[j].Name })

	// Stride bookkeeping: who contends now, and where newcomers join.
	minPass, found := 0.0, false
	for _, v := range views {
		if len(v.Pending) > 0 && in.Active.Has(v.Name) && (!found || d.Pass[v.Name] < minPass) {
			minPass, found = d.Pass[v.Name], true
		}
	}
	for _, v := range views {
		if len(v.Pending) == 0 {
			continue
		}
		d.Active.Insert(v.Name)
		if !in.Active.Has(v.Name) && found && d.Pass[v.Name] < minPass {
			d.Pass[v.Name] = minPass
		}
	}
	for name := range d.Pass {
		if !d.Active.Has(name) {
			// A queue that stops contending keeps nothing: it rejoins at the
			// current minimum next time.
			delete(d.Pass, name)
		}
	}

	decided := map[*gang]bool{}
	for {
		var best *decideView
		for _, v := range views {
			if !v.headUnit(&d, decided, in.MaxAdmittedTotal) {
				continue
			}
			v.hold, v.wait = v.admissible(in.MaxAdmittedTotal, totalAdmitted)
			if v.hold != holdNone {
				continue
			}
			if best == nil || before(v, best, d.Pass) {
				best = v
			}
		}
		if best == nil {
			break
		}
		n := len(best.unit)
		if in.Budget <= 0 || (len(d.Admit) > 0 && len(d.Admit)+n > in.Budget) {
			d.OutOfBudget = true
			break
		}
		limits := best.limits(in.MaxAdmittedTotal, totalAdmitted)
		for _, e := range best.unit {
			d.Admit = append(d.Admit, Admission{entry: e, Queue: best.Name, Limits: limits})
		}
		if g := best.unit[0].gang; g != nil {
			decided[g] = true
		}
		best.next++
		best.unitAt = -1
		best.admitted += n
		best.usage.add(best.unitRequests, 1)
		if best.Spec.HasLimits() {
			totalAdmitted += n
		}
		if best.bucket != nil {
			best.bucket.Tokens--
		}
		d.Pass[best.Name] += 1 / float64(max(best.Spec.Weight, 1))
	}
	var holders []*decideView
	for _, v := range views {
		if v.bucket != nil {
			d.Buckets[v.Name] = *v.bucket
		}
		if v.headUnit(&d, decided, in.MaxAdmittedTotal) && v.hold != holdNone {
			d.Held[v.Name] = v.holdMessage(in.MaxAdmittedTotal, totalAdmitted)
			if v.hold == holdClusterCap {
				if holders == nil {
					holders = capHolders(views)
				}
				d.Held[v.Name] += higherPriorityShare(holders, v)
			}
			if v.wait > 0 && (d.Next == 0 || v.wait < d.Next) {
				d.Next = v.wait
			}
		}
	}
	return d
}

// hold is the limit that holds a queue's next pod.
type hold uint8

const (
	holdNone hold = iota
	holdUnusable
	holdClusterCap
	holdMaxAdmitted
	holdQuota
	holdRate
)

// decideView is a queue's running totals within one Decide call.
type decideView struct {
	*QueueView
	next     int
	admitted int
	usage    Resources
	bucket   *Bucket
	// quotaNames are the quota's resources in name order, quota their limits.
	quotaNames []corev1.ResourceName
	quota      []int64
	// hold is what held the next pod at the last look; wait, when only time
	// stands in the way, how long; overQuota the resource over quota.
	hold      hold
	wait      time.Duration
	overQuota int
	// unit is what the queue would admit next (see headUnit): the pod at
	// next, or the waiting members of its complete set; unitRequests sums
	// their requests, unitAt is the next it was found for.
	unit         []*entry
	unitRequests Resources
	unitAt       int
}

// headUnit finds the queue's next unit from v.next on and reports whether
// there is one. Members of a set already admitted in this decision, of a
// set whose other members do not exist yet, and of a set that can never
// fit are passed over; the last are reported once in d.Unfit.
func (v *decideView) headUnit(d *Decision, decided map[*gang]bool, maxTotal int) bool {
	if v.unitAt == v.next && len(v.unit) > 0 {
		return true
	}
	v.unit = v.unit[:0]
	for ; v.next < len(v.Pending); v.next++ {
		e := v.Pending[v.next]
		g := e.gang
		if g == nil {
			v.unit, v.unitRequests, v.unitAt = append(v.unit, e), e.requests, v.next
			return true
		}
		if decided[g] {
			continue
		}
		pending, past, requests := g.standing()
		complete := pending+past >= g.size
		if reason := SetCannotFit(v.Spec, g.size, requests, complete, maxTotal); reason != "" {
			decided[g] = true
			if !g.unfitReported {
				d.Unfit = append(d.Unfit, UnfitSet{Queue: v.Name, Reason: reason, gang: g, member: e})
			}
			continue
		}
		if !complete {
			decided[g] = true // waits for its other members, holding nothing
			continue
		}
		v.unitRequests = Resources{}
		for _, m := range g.members {
			if m.class == classPending {
				v.unit = append(v.unit, m)
				v.unitRequests.add(m.requests, 1)
			}
		}
		sort.Slice(v.unit, func(i, j int) bool { return orderBefore(v.unit[i], v.unit[j]) })
		v.unitAt = v.next
		return true
	}
	return false
}

// before orders contending queues: higher spec.priority first, then the
// lower stride pass, then name.
func before(a, b *decideView, pass map[string]float64) bool {
	if a.Spec.Priority != b.Spec.Priority {
		return a.Spec.Priority > b.Spec.Priority
	}
	if pa, pb := pass[a.Name], pass[b.Name]; pa != pb {
		return pa < pb
	}
	return a.Name < b.Name
}

// admissible returns holdNone if the queue's next pod may go now, else
// the limit that holds it and, when only time stands in the way, how long
// to wait. It allocates nothing: it runs for every queue at every step.
func (v *decideView) admissible(maxTotal, totalAdmitted int) (hold, time.Duration) {
	spec := v.Spec
	switch {
	case !v.Usable:
		return holdUnusable, 0
	case spec.HasLimits() && maxTotal > 0 && totalAdmitted+len(v.unit) > maxTotal:
		return holdClusterCap, 0
	case spec.MaxAdmitted != nil && v.admitted+len(v.unit) > int(*spec.MaxAdmitted):
		return holdMaxAdmitted, 0
	}
	if len(v.quota) > 0 {
		reqs := v.unitRequests
		for i, name := range v.quotaNames {
			if v.usage[name]+reqs[name] > v.quota[i] {
				v.overQuota = i
				return holdQuota, 0
			}
		}
	}
	if v.bucket != nil && v.bucket.Tokens < 1 {
		wait := time.Duration((1 - v.bucket.Tokens) / v.bucket.Rate * float64(time.Second))
		return holdRate, max(wait, time.Millisecond)
	}
	return holdNone, 0
}

// holdMessage says what holds the queue's next pod, for Events and status.
func (v *decideView) holdMessage(maxTotal, totalAdmitted int) string {
	spec := v.Spec
	switch v.hold {
	case holdUnusable:
		return "scheduler missing"
	case holdClusterCap:
		return fmt.Sprintf("cluster-wide cap --max-admitted (%d/%d)", totalAdmitted, maxTotal)
	case holdMaxAdmitted:
		return fmt.Sprintf("maxAdmitted (%d/%d)", v.admitted, *spec.MaxAdmitted)
	case holdQuota:
		name := v.quotaNames[v.overQuota]
		limit := spec.Quota[name]
		asked := v.unitRequests[name]
		return fmt.Sprintf("quota %s (%s used + %s asked > %s)", name, quantity(v.usage[name], name), quantity(asked, name), limit.String())
	case holdRate:
		return holdRateMessage(spec)
	}
	return ""
}

// capHolders are the queues with limits that hold admitted pods, by
// priority (highest first), then name: who takes the cluster-wide cap.
func capHolders(views []*decideView) []*decideView {
	var out []*decideView
	for _, v := range views {
		if v.Spec.HasLimits() && v.admitted > 0 {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Spec.Priority != out[j].Spec.Priority {
			return out[i].Spec.Priority > out[j].Spec.Priority
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// maxNamedHolders bounds how many queues a hold message names.
const maxNamedHolders = 3

// higherPriorityShare names the queues of higher spec.priority than v's
// that hold part of the cluster-wide cap, with how many admitted pods each
// holds: ", taken first by higher-priority queue urgent (3)", at most
// maxNamedHolders of them and how many more; nothing when none does.
// holders is capHolders' order, so this costs a binary search.
func higherPriorityShare(holders []*decideView, v *decideView) string {
	n := sort.Search(len(holders), func(i int) bool { return holders[i].Spec.Priority <= v.Spec.Priority })
	if n == 0 {
		return ""
	}
	parts := make([]string, 0, min(n, maxNamedHolders))
	for _, h := range holders[:min(n, maxNamedHolders)] {
		parts = append(parts, fmt.Sprintf("%s (%d)", h.Name, h.admitted))
	}
	word, more := "queue", ""
	if n > 1 {
		word = "queues"
	}
	if n > maxNamedHolders {
		more = fmt.Sprintf(" and %d more", n-maxNamedHolders)
	}
	return fmt.Sprintf(", taken first by higher-priority %s %s%s", word, strings.Join(parts, ", "), more)
}

// holdRateMessage is the hold message of a queue waiting for its
// admissionRate's next token.
func holdRateMessage(spec *v1alpha1.QueueSpec) string {
	if spec == nil || spec.AdmissionRate == nil {
		return ""
	}
	return fmt.Sprintf("admissionRate (%s/s)", spec.AdmissionRate.PodsPerSecond.String())
}

// limits describes the limits an admission of the head unit was checked
// against, with what they stood at once the unit is counted.
func (v *decideView) limits(maxTotal, totalAdmitted int) string {
	spec := v.Spec
	n := len(v.unit)
	var parts []string
	if g := v.unit[0].gang; g != nil {
		parts = append(parts, fmt.Sprintf("calculation set %s of %d, admitted whole", g.key.name, g.size))
	}
	if spec.MaxAdmitted != nil {
		parts = append(parts, fmt.Sprintf("maxAdmitted %d/%d", v.admitted+n, *spec.MaxAdmitted))
	}
	for _, name := range v.quotaNames {
		limit := spec.Quota[name]
		parts = append(parts, fmt.Sprintf("quota %s %s/%s", name, quantity(v.usage[name]+v.unitRequests[name], name), limit.String()))
	}
	if r := spec.AdmissionRate; r != nil {
		parts = append(parts, fmt.Sprintf("admissionRate %s/s burst %d", r.PodsPerSecond.String(), max(r.Burst, 1)))
	}
	if spec.HasLimits() && maxTotal > 0 {
		parts = append(parts, fmt.Sprintf("--max-admitted %d/%d", totalAdmitted+n, maxTotal))
	}
	if len(parts) == 0 {
		return "no limits"
	}
	return strings.Join(parts, ", ")
}

func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for name := range l {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}
