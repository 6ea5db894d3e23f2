package admission

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// member is a gated pod of queue q in calculation set set of size.
func member(name, q, set string, size int, created time.Duration) *corev1.Pod {
	p := routedPod(name, q, "switchyard-batch", "500m")
	p.CreationTimestamp.Time = t0.Add(created)
	p.Labels = map[string]string{v1alpha1.CalcSetLabel: set, v1alpha1.CalcSetSizeLabel: strconv.Itoa(size)}
	return p
}

// members are count members of set (of size) created one second apart
// from start; admitted ones have their gate removed already.
func members(q, set string, size, count, admitted int, start time.Duration) []*corev1.Pod {
	out := make([]*corev1.Pod, count)
	for i := range out {
		out[i] = member(fmt.Sprintf("%s-%d", set, i), q, set, size, start+time.Duration(i)*time.Second)
		if i < admitted {
			out[i].Spec.SchedulingGates = nil
		}
	}
	return out
}

// batchQueueState is the state of queue q (spec, served by
// switchyard-batch, weight 1) once it has seen pods at t0.
func batchQueueState(spec v1alpha1.QueueSpec, pods []*corev1.Pod) *State {
	s := NewState()
	spec.Profile, spec.Weight = "switchyard-batch", 1
	queue := &v1alpha1.Queue{Spec: spec}
	queue.Name = "q"
	s.SetQueue("q", queue)
	for _, p := range pods {
		s.SetPod(p, t0)
	}
	return s
}

// inputOf is the decision input of s, as the controller builds it.
func inputOf(s *State, budget, maxTotal int) Input {
	in := Input{Budget: budget, MaxAdmittedTotal: maxTotal}
	for _, q := range s.queues {
		if q.queue != nil {
			in.Queues = append(in.Queues, QueueView{Name: q.name, Spec: &q.queue.Spec, Usable: true, Pending: q.pending, Admitted: q.admitted, Usage: q.usage})
		}
	}
	return in
}

// TestDecideGangs: a calculation set in a gated queue is admitted whole or
// not at all, checked as one unit against every limit.
func TestDecideGangs(t *testing.T) {
	plain := func(name string, created time.Duration) *corev1.Pod {
		p := routedPod(name, "q", "switchyard-batch", "500m")
		p.CreationTimestamp.Time = t0.Add(created)
		return p
	}
	with := func(pods ...[]*corev1.Pod) []*corev1.Pod {
		var out []*corev1.Pod
		for _, p := range pods {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		spec     v1alpha1.QueueSpec
		pods     []*corev1.Pod
		budget   int
		maxTotal int
		want     string // admitted pod names, in order
		unfit    string // reason fragment of the one unfit set, or ""
		held     string // fragment of the queue's hold message, or ""
	}{
		{name: "a complete set of 4 under maxAdmitted 5 goes whole", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](5)},
			pods: members("q", "s", 4, 4, 0, 0), budget: 32, want: "s-0,s-1,s-2,s-3"},
		{name: "an incomplete set waits without blocking the pod behind it", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](5)},
			pods: with(members("q", "s", 4, 3, 0, 0), []*corev1.Pod{plain("p", time.Minute)}), budget: 32, want: "p"},
		{name: "a set larger than maxAdmitted is reported and passed over", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](5)},
			pods: with(members("q", "s", 8, 8, 0, 0), []*corev1.Pod{plain("p", time.Minute)}), budget: 32, want: "p",
			unfit: "the set has 8 members and the queue's maxAdmitted is 5"},
		{name: "a set larger than the cluster cap is reported", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](50)},
			pods: members("q", "s", 8, 8, 0, 0), budget: 32, maxTotal: 4, want: "", unfit: "--max-admitted is 4"},
		{name: "a set asking more than the quota is reported once complete", spec: v1alpha1.QueueSpec{Quota: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}},
			pods: members("q", "s", 4, 4, 0, 0), budget: 32, want: "", unfit: "asks 2 cpu in all and the queue's quota is 1"},
		{name: "no room for the whole set: held, nothing partial, the queue blocked behind it",
			spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](5)},
			pods: with([]*corev1.Pod{func() *corev1.Pod { p := plain("running", -time.Hour); p.Spec.SchedulingGates = nil; return p }(),
				func() *corev1.Pod { p := plain("running2", -time.Hour); p.Spec.SchedulingGates = nil; return p }()},
				members("q", "s", 4, 4, 0, 0), []*corev1.Pod{plain("p", time.Minute)}),
			budget: 32, want: "", held: "maxAdmitted (2/5)"},
		{name: "a set takes one token of the rate", spec: v1alpha1.QueueSpec{AdmissionRate: &v1alpha1.AdmissionRate{PodsPerSecond: resource.MustParse("1"), Burst: 1}},
			pods: with(members("q", "s", 4, 4, 0, 0), []*corev1.Pod{plain("p", time.Minute)}), budget: 32, want: "s-0,s-1,s-2,s-3", held: "admissionRate"},
		{name: "members admitted before count: the rest go", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](5)},
			pods: members("q", "s", 4, 4, 2, 0), budget: 32, want: "s-2,s-3"},
		{name: "a set larger than the budget goes alone as the first unit", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](50)},
			pods: with(members("q", "s", 4, 4, 0, 0), []*corev1.Pod{plain("p", time.Minute)}), budget: 2, want: "s-0,s-1,s-2,s-3"},
		{name: "after another unit, a set larger than what is left waits for the next decision", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](50)},
			pods: with([]*corev1.Pod{plain("p", -time.Minute)}, members("q", "s", 4, 4, 0, 0)), budget: 2, want: "p"},
		{name: "members interleaved with other pods keep the set's place", spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](50)},
			pods:   with(members("q", "s", 2, 1, 0, 0), []*corev1.Pod{plain("p", time.Second/2)}, []*corev1.Pod{member("s-1", "q", "s", 2, time.Minute)}),
			budget: 32, want: "s-0,s-1,p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := batchQueueState(tc.spec, tc.pods)
			d := Decide(inputOf(s, tc.budget, tc.maxTotal), t0.Add(time.Hour))
			var got []string
			for _, a := range d.Admit {
				got = append(got, a.entry.name)
			}
			if strings.Join(got, ",") != tc.want {
				t.Errorf("admitted %v, want %s", got, tc.want)
			}
			switch {
			case tc.unfit == "" && len(d.Unfit) > 0:
				t.Errorf("unexpected unfit sets: %+v", d.Unfit)
			case tc.unfit != "" && (len(d.Unfit) != 1 || !strings.Contains(d.Unfit[0].Reason, tc.unfit)):
				t.Errorf("unfit %+v, want one saying %q", d.Unfit, tc.unfit)
			}
			if tc.held != "" && !strings.Contains(d.Held["q"], tc.held) {
				t.Errorf("held by %q, want %q", d.Held["q"], tc.held)
			}
			for _, a := range d.Admit {
				if a.entry.gang != nil && !strings.Contains(a.Limits, "calculation set s of") {
					t.Errorf("%s admitted with limits %q, want the set named", a.entry.name, a.Limits)
				}
			}
		})
	}
}

// TestDecideGangReportedOnce: an unfit set is reported until the
// controller marks it, then passed over silently.
func TestDecideGangReportedOnce(t *testing.T) {
	s := batchQueueState(v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](2)}, members("q", "s", 3, 3, 0, 0))
	d := Decide(inputOf(s, 32, 0), t0)
	if len(d.Unfit) != 1 {
		t.Fatalf("want the set reported, got %+v", d.Unfit)
	}
	d.Unfit[0].gang.unfitReported = true
	if d := Decide(inputOf(s, 32, 0), t0); len(d.Unfit) != 0 || len(d.Admit) != 0 {
		t.Errorf("second decision: unfit %d admitted %d, want neither", len(d.Unfit), len(d.Admit))
	}
}
