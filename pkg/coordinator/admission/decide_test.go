package admission

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// waiting returns n pending entries of queue, each asking for cpu milli-CPU.
func waiting(queue string, n int, cpu int64) []*entry {
	out := make([]*entry, n)
	for i := range out {
		out[i] = &entry{uid: types.UID(fmt.Sprintf("%s-%d", queue, i)), namespace: "ns", name: fmt.Sprintf("%s-%d", queue, i), queue: queue,
			created: t0.Add(time.Duration(i) * time.Second), gated: true, class: classPending,
			requests: Resources{corev1.ResourceCPU: cpu, corev1.ResourcePods: 1000}}
	}
	return out
}

type queueCase struct {
	name     string
	spec     v1alpha1.QueueSpec
	pending  int
	cpu      int64 // milli-CPU per pending pod
	admitted int
	usage    Resources
	unusable bool
}

func views(qs []queueCase) []QueueView {
	out := make([]QueueView, len(qs))
	for i, q := range qs {
		spec := q.spec
		if spec.Weight == 0 {
			spec.Weight = 1
		}
		usage := q.usage
		if usage == nil {
			usage = Resources{}
		}
		out[i] = QueueView{Name: q.name, Spec: &spec, Usable: !q.unusable, Pending: waiting(q.name, q.pending, q.cpu), Admitted: q.admitted, Usage: usage}
	}
	return out
}

func admittedPerQueue(d Decision) map[string]int {
	out := map[string]int{}
	for _, a := range d.Admit {
		out[a.Queue]++
	}
	return out
}

func rate(perSecond string, burst int32) *v1alpha1.AdmissionRate {
	return &v1alpha1.AdmissionRate{PodsPerSecond: resource.MustParse(perSecond), Burst: burst}
}

func TestDecide(t *testing.T) {
	cpu := func(q string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(q)}
	}
	cases := []struct {
		name     string
		queues   []queueCase
		maxTotal int
		budget   int
		buckets  map[string]Bucket
		now      time.Time
		want     map[string]int
		held     map[string]string // queue -> substring of the holding limit
		next     time.Duration
		order    []string // queues of the admissions, in order
		noBudget bool
	}{
		{
			name:   "no limits admits everything",
			queues: []queueCase{{name: "a", spec: v1alpha1.QueueSpec{}, pending: 3}},
			budget: 10, want: map[string]int{"a": 3},
		},
		{
			name:   "maxAdmitted counts pods already admitted",
			queues: []queueCase{{name: "a", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](3)}, pending: 5, admitted: 1}},
			budget: 10, want: map[string]int{"a": 2}, held: map[string]string{"a": "maxAdmitted (3/3)"},
		},
		{
			name:   "maxAdmitted 0 holds every pod",
			queues: []queueCase{{name: "a", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](0)}, pending: 2}},
			budget: 10, want: map[string]int{}, held: map[string]string{"a": "maxAdmitted (0/0)"},
		},
		{
			name: "quota counts usage and the pod's own requests",
			queues: []queueCase{{name: "a", spec: v1alpha1.QueueSpec{Quota: cpu("1")}, pending: 3, cpu: 300,
				usage: Resources{corev1.ResourceCPU: 300}}},
			budget: 10, want: map[string]int{"a": 2}, held: map[string]string{"a": "quota cpu (900m used + 300m asked > 1)"},
		},
		{
			name:   "quota on pods counts one per pod",
			queues: []queueCase{{name: "a", spec: v1alpha1.QueueSpec{Quota: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("2")}}, pending: 5}},
			budget: 10, want: map[string]int{"a": 2}, held: map[string]string{"a": "quota pods"},
		},
		{
			name:   "a head pod that does not fit blocks its queue (no skipping ahead)",
			queues: []queueCase{{name: "a", spec: v1alpha1.QueueSpec{Quota: cpu("1")}, pending: 2, cpu: 2000}},
			budget: 10, want: map[string]int{}, held: map[string]string{"a": "quota cpu"},
		},
		{
			name:   "a fresh rate bucket admits its burst, then says when the next token comes",
			queues: []queueCase{{name: "a", spec: v1alpha1.QueueSpec{AdmissionRate: rate("2", 3)}, pending: 5}},
			budget: 10, want: map[string]int{"a": 3}, held: map[string]string{"a": "admissionRate (2/s)"}, next: 500 * time.Millisecond,
		},
		{
			name:    "an empty bucket refills with time",
			queues:  []queueCase{{name: "a", spec: v1alpha1.QueueSpec{AdmissionRate: rate("1", 5)}, pending: 5}},
			buckets: map[string]Bucket{"a": {Tokens: 0, At: t0, Rate: 1, Burst: 5}}, now: t0.Add(2500 * time.Millisecond),
			budget: 10, want: map[string]int{"a": 2}, held: map[string]string{"a": "admissionRate"}, next: 500 * time.Millisecond,
		},
		{
			name:    "a changed rate starts a full bucket",
			queues:  []queueCase{{name: "a", spec: v1alpha1.QueueSpec{AdmissionRate: rate("1", 4)}, pending: 5}},
			buckets: map[string]Bucket{"a": {Tokens: 0, At: t0, Rate: 1, Burst: 2}},
			budget:  10, want: map[string]int{"a": 4}, held: map[string]string{"a": "admissionRate"}, next: time.Second,
		},
		{
			name: "higher queue priority goes first while it may admit",
			queues: []queueCase{
				{name: "low", spec: v1alpha1.QueueSpec{}, pending: 3},
				{name: "high", spec: v1alpha1.QueueSpec{Priority: 5, MaxAdmitted: ptr.To[int32](2)}, pending: 3},
			},
			budget: 4, want: map[string]int{"high": 2, "low": 2}, order: []string{"high", "high", "low", "low"}, noBudget: true,
			held: map[string]string{"high": "maxAdmitted"},
		},
		{
			name: "equal priority and pass: name order breaks the tie",
			queues: []queueCase{
				{name: "b", spec: v1alpha1.QueueSpec{}, pending: 2},
				{name: "a", spec: v1alpha1.QueueSpec{}, pending: 2},
			},
			budget: 1, want: map[string]int{"a": 1}, order: []string{"a"}, noBudget: true,
		},
		{
			name: "weights share one decision 3:1",
			queues: []queueCase{
				{name: "heavy", spec: v1alpha1.QueueSpec{Weight: 3}, pending: 100},
				{name: "light", spec: v1alpha1.QueueSpec{Weight: 1}, pending: 100},
			},
			budget: 40, want: map[string]int{"heavy": 30, "light": 10}, noBudget: true,
		},
		{
			name:   "the budget (free workers) bounds a decision",
			queues: []queueCase{{name: "a", spec: v1alpha1.QueueSpec{}, pending: 5}},
			budget: 2, want: map[string]int{"a": 2}, noBudget: true,
		},
		{
			name:   "no budget, no admission, nothing to undo",
			queues: []queueCase{{name: "a", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](5)}, pending: 5}},
			budget: 0, want: map[string]int{}, noBudget: true,
		},
		{
			name: "the cluster-wide cap counts admitted pods of every queue with limits",
			queues: []queueCase{
				{name: "a", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](100)}, pending: 5, admitted: 2},
				{name: "b", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](100)}, pending: 5},
				{name: "free", spec: v1alpha1.QueueSpec{}, pending: 2, admitted: 50},
			},
			maxTotal: 4, budget: 10, want: map[string]int{"a": 1, "b": 1, "free": 2},
			held: map[string]string{"a": "--max-admitted (4/4)", "b": "--max-admitted"},
		},
		{
			name: "a queue held at the cluster-wide cap names the higher-priority queues that took it",
			queues: []queueCase{
				{name: "urgent", spec: v1alpha1.QueueSpec{Priority: 10, MaxAdmitted: ptr.To[int32](100)}, pending: 5, admitted: 1},
				{name: "also-urgent", spec: v1alpha1.QueueSpec{Priority: 5, MaxAdmitted: ptr.To[int32](100)}, admitted: 1},
				{name: "peer", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](100)}, admitted: 1},
				{name: "batch", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](100)}, pending: 5},
			},
			maxTotal: 4, budget: 10, want: map[string]int{"urgent": 1},
			held: map[string]string{
				"batch":  "cluster-wide cap --max-admitted (4/4), taken first by higher-priority queues urgent (2), also-urgent (1)",
				"urgent": "cluster-wide cap --max-admitted (4/4)",
			},
		},
		{
			name: "at most three holders are named, highest priority first, and how many more",
			queues: []queueCase{
				{name: "p1", spec: v1alpha1.QueueSpec{Priority: 1, MaxAdmitted: ptr.To[int32](100)}, admitted: 1},
				{name: "p2", spec: v1alpha1.QueueSpec{Priority: 2, MaxAdmitted: ptr.To[int32](100)}, admitted: 1},
				{name: "p3", spec: v1alpha1.QueueSpec{Priority: 3, MaxAdmitted: ptr.To[int32](100)}, admitted: 1},
				{name: "p4", spec: v1alpha1.QueueSpec{Priority: 4, MaxAdmitted: ptr.To[int32](100)}, admitted: 1},
				{name: "p5", spec: v1alpha1.QueueSpec{Priority: 5, MaxAdmitted: ptr.To[int32](100)}, admitted: 1},
				{name: "low", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](100)}, pending: 1},
			},
			maxTotal: 5, budget: 10, want: map[string]int{},
			held: map[string]string{"low": "cluster-wide cap --max-admitted (5/5), taken first by higher-priority queues p5 (1), p4 (1), p3 (1) and 2 more"},
		},
		{
			name: "no higher-priority queue to name: the cap alone",
			queues: []queueCase{
				{name: "a", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](100)}, pending: 1, admitted: 2},
			},
			maxTotal: 2, budget: 10, want: map[string]int{},
			held: map[string]string{"a": "cluster-wide cap --max-admitted (2/2)"},
		},
		{
			name:   "a queue whose scheduler is missing admits nothing",
			queues: []queueCase{{name: "a", spec: v1alpha1.QueueSpec{}, pending: 2, unusable: true}},
			budget: 10, want: map[string]int{}, held: map[string]string{"a": "scheduler missing"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			in := Input{Queues: views(tc.queues), MaxAdmittedTotal: tc.maxTotal, Budget: tc.budget,
				Pass: map[string]float64{}, Active: sets.New[string](), Buckets: tc.buckets}
			passBefore := maps.Clone(in.Pass)
			d := Decide(in, now)
			if got := admittedPerQueue(d); !maps.Equal(got, tc.want) {
				t.Errorf("admitted %v, want %v", got, tc.want)
			}
			for q, want := range tc.held {
				if !strings.Contains(d.Held[q], want) {
					t.Errorf("queue %s held by %q, want it to mention %q", q, d.Held[q], want)
				}
			}
			if tc.held == nil && len(d.Held) > 0 && !tc.noBudget {
				t.Errorf("held %v, want nothing held", d.Held)
			}
			if d.Next != tc.next {
				t.Errorf("next = %v, want %v", d.Next, tc.next)
			}
			if d.OutOfBudget != tc.noBudget {
				t.Errorf("out of budget = %v, want %v", d.OutOfBudget, tc.noBudget)
			}
			if tc.order != nil {
				var order []string
				for _, a := range d.Admit {
					order = append(order, a.Queue)
				}
				if strings.Join(order, ",") != strings.Join(tc.order, ",") {
					t.Errorf("order %v, want %v", order, tc.order)
				}
			}
			if !maps.Equal(in.Pass, passBefore) {
				t.Errorf("Decide changed its input's passes")
			}
			for _, v := range in.Queues {
				for i, e := range v.Pending {
					if e.class != classPending || (i > 0 && orderBefore(e, v.Pending[i-1])) {
						t.Errorf("Decide changed its input's pending pods")
					}
				}
			}
		})
	}
}

// TestDecideWithinAQueueFollowsPodOrder: pod priority, then creation.
func TestDecideWithinAQueueFollowsPodOrder(t *testing.T) {
	q := newQueueState(NewState(), "a")
	late := &entry{uid: "late", name: "late", priority: 10, created: t0.Add(time.Minute), class: classPending}
	early := &entry{uid: "early", name: "early", created: t0, class: classPending}
	later := &entry{uid: "later", name: "later", created: t0.Add(time.Second), class: classPending}
	for _, e := range []*entry{later, early, late} {
		q.count(e, 1)
	}
	spec := v1alpha1.QueueSpec{Weight: 1}
	d := Decide(Input{Queues: []QueueView{{Name: "a", Spec: &spec, Usable: true, Pending: q.pending, Usage: Resources{}}}, Budget: 3, Active: sets.New[string]()}, t0)
	var got []string
	for _, a := range d.Admit {
		got = append(got, a.entry.name)
	}
	if strings.Join(got, ",") != "late,early,later" {
		t.Errorf("admitted in order %v, want pod priority first, then creation", got)
	}
}

// TestDecideStrideOverCycles plays many one-admission decisions, as a busy
// controller makes them, and checks weights, priority and newcomers.
func TestDecideStrideOverCycles(t *testing.T) {
	clock := testingclock.NewFakeClock(t0)
	qs := views([]queueCase{
		{name: "heavy", spec: v1alpha1.QueueSpec{Weight: 3}, pending: 1000},
		{name: "light", spec: v1alpha1.QueueSpec{Weight: 1}, pending: 1000},
	})
	in := Input{Queues: qs, Budget: 1, Pass: map[string]float64{}, Active: sets.New[string]()}
	counts := map[string]int{}
	play := func(n int) {
		for range n {
			d := Decide(in, clock.Now())
			for _, a := range d.Admit {
				counts[a.Queue]++
				for i := range in.Queues {
					if in.Queues[i].Name == a.Queue {
						in.Queues[i].Pending = in.Queues[i].Pending[1:]
					}
				}
			}
			in.Pass, in.Active, in.Buckets = d.Pass, d.Active, d.Buckets
			clock.Step(time.Millisecond)
		}
	}
	play(400)
	if counts["heavy"] != 300 || counts["light"] != 100 {
		t.Errorf("weights 3:1 gave %v, want 300:100", counts)
	}
	// A newcomer joins at the current lowest pass: it does not get a burst
	// for the time it was idle, but its share from now on.
	in.Queues = append(in.Queues, views([]queueCase{{name: "newcomer", spec: v1alpha1.QueueSpec{Weight: 1}, pending: 1000}})...)
	counts = map[string]int{}
	play(500)
	if counts["newcomer"] < 90 || counts["newcomer"] > 110 {
		t.Errorf("newcomer of weight 1 next to weights 3 and 1 got %d of 500, want about 100", counts["newcomer"])
	}
}

// TestStateFollowsEvents checks the incremental state: every event moves a
// pod's contribution, and nothing is counted twice.
func TestStateFollowsEvents(t *testing.T) {
	s := NewState()
	queue := &v1alpha1.Queue{Spec: v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](10), Quota: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}}}
	queue.Name = "q"
	s.SetQueue("q", queue)
	p := routedPod("p1", "q", "switchyard-batch", "500m")
	s.SetPod(p, t0)
	qs := s.queues["q"]
	check := func(step string, pending, admitted, scheduled, stranded int, cpu int64) {
		t.Helper()
		if len(qs.pending) != pending || qs.admitted != admitted || qs.scheduled != scheduled || qs.stranded != stranded || qs.usage[corev1.ResourceCPU] != cpu {
			t.Errorf("%s: pending %d admitted %d scheduled %d stranded %d cpu %dm; want %d %d %d %d %dm", step,
				len(qs.pending), qs.admitted, qs.scheduled, qs.stranded, qs.usage[corev1.ResourceCPU], pending, admitted, scheduled, stranded, cpu)
		}
	}
	check("created gated", 1, 0, 0, 0, 0)
	s.markSending(s.pods[p.UID], t0)
	check("removal sent", 0, 1, 0, 0, 500)
	s.SetPod(p, t0) // a status update that still shows the gate
	check("update before the removal shows", 0, 1, 0, 0, 500)
	s.unsend(p.UID)
	check("removal refused", 1, 0, 0, 0, 0)
	s.markSending(s.pods[p.UID], t0)
	s.expireSending(t0.Add(2*sendingMaxAge), sendingMaxAge)
	check("removal never observed", 1, 0, 0, 0, 0)

	ungated := p.DeepCopy()
	ungated.Spec.SchedulingGates = nil
	s.SetPod(ungated, t0)
	check("gate removed", 0, 1, 0, 0, 500)
	bound := ungated.DeepCopy()
	bound.Spec.NodeName = "n1"
	s.SetPod(bound, t0)
	check("bound", 0, 0, 1, 0, 500)
	done := bound.DeepCopy()
	done.Status.Phase = corev1.PodSucceeded
	s.SetPod(done, t0)
	check("succeeded", 0, 0, 0, 0, 0)
	s.DeletePod(p.UID)
	check("deleted", 0, 0, 0, 0, 0)

	// A Queue edited from one scheduler to another strands the pods created
	// before: they are neither pending nor admitted, and told once.
	s.SetPod(routedPod("p2", "q", "switchyard-batch", "1"), t0)
	s.SetPod(func() *corev1.Pod {
		p := routedPod("p3", "q", "switchyard-batch", "1")
		p.Spec.SchedulingGates = nil
		return p
	}(), t0)
	check("two more", 1, 1, 0, 0, 1000)
	edited := queue.DeepCopy()
	edited.Spec.Profile = ""
	edited.Spec.External = &v1alpha1.ExternalScheduler{AMQPQueue: "jobs"}
	s.SetQueue("q", edited)
	check("queue made external", 0, 0, 0, 2, 0)
	if got := len(s.takeStranded()); got != 2 {
		t.Errorf("%d pods told they are stranded, want 2", got)
	}
	s.SetQueue("q", queue)
	check("queue edited back", 1, 1, 0, 0, 1000)
	s.SetQueue("q", edited)
	if got := len(s.takeStranded()); got != 0 {
		t.Errorf("stranded again: %d told again, want each pod told once", got)
	}
	// A deleted Queue keeps its pods' state until it returns.
	s.SetQueue("q", nil)
	if s.queues["q"] == nil || len(s.queues["q"].pods) != 2 {
		t.Errorf("a deleted Queue's pods are forgotten")
	}
}

func routedPod(name, queue, scheduler, cpu string) *corev1.Pod {
	p := &corev1.Pod{}
	p.Name, p.Namespace, p.UID = name, "ns", types.UID(name)
	p.CreationTimestamp.Time = t0
	p.Annotations = map[string]string{v1alpha1.RoutedQueueAnnotation: queue}
	p.Spec.SchedulerName = scheduler
	p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: v1alpha1.AdmissionGate}}
	p.Spec.Containers = []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}
	return p
}
