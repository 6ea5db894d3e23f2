package admission

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

func pod(name string, priority int32, created time.Time, cpu string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: metav1.NewTime(created)},
		Spec: corev1.PodSpec{
			Priority:        &priority,
			SchedulingGates: []corev1.PodSchedulingGate{{Name: v1alpha1.AdmissionGate}},
			Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)},
			}}},
		},
	}
}

func TestQueueOrder(t *testing.T) {
	t0 := time.Unix(1000, 0)
	highLate := pod("high-late", 10, t0.Add(time.Minute), "1")
	lowEarly := pod("low-early", 0, t0, "1")
	lowLate := pod("low-late", 0, t0.Add(time.Second), "1")
	if !queueOrder(highLate, lowEarly) || queueOrder(lowEarly, highLate) {
		t.Error("pod priority must come before arrival")
	}
	if !queueOrder(lowEarly, lowLate) || queueOrder(lowLate, lowEarly) {
		t.Error("within a priority, earlier pods go first")
	}
}

func TestBetterWeightsAndPriority(t *testing.T) {
	heavy := &queueView{queue: &v1alpha1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "heavy"}, Spec: v1alpha1.QueueSpec{Weight: 3}}}
	light := &queueView{queue: &v1alpha1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "light"}, Spec: v1alpha1.QueueSpec{Weight: 1}}}
	urgent := &queueView{queue: &v1alpha1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "urgent"}, Spec: v1alpha1.QueueSpec{Weight: 1, Priority: 5}}}
	pass := map[string]float64{}
	counts := map[string]int{}
	for range 400 {
		next := heavy
		if better(light, heavy, pass) {
			next = light
		}
		counts[next.queue.Name]++
		pass[next.queue.Name] += 1 / float64(next.queue.Spec.Weight)
	}
	if counts["heavy"] != 300 || counts["light"] != 100 {
		t.Errorf("weights 3:1 gave %v, want 300:100", counts)
	}
	pass["urgent"] = 1e9
	if !better(urgent, heavy, pass) {
		t.Error("a higher-priority queue goes first whatever its pass")
	}
}

func TestAdmissibleLimits(t *testing.T) {
	now := time.Unix(2000, 0)
	c := &Controller{state: &state{limiters: map[string]*queueLimiter{}}}
	view := func(spec v1alpha1.QueueSpec, admitted int, usedCPU string) *queueView {
		return &queueView{
			queue:    &v1alpha1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "q"}, Spec: spec},
			pending:  []*corev1.Pod{pod("p", 0, now, "500m")},
			admitted: admitted,
			usage:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(usedCPU)},
		}
	}
	if _, ok := c.admissible(view(v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](2)}, 2, "0"), 0, now); ok {
		t.Error("maxAdmitted reached, yet admissible")
	}
	if _, ok := c.admissible(view(v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](2)}, 1, "0"), 0, now); !ok {
		t.Error("below maxAdmitted, yet held")
	}
	quota := v1alpha1.QueueSpec{Quota: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}
	if _, ok := c.admissible(view(quota, 0, "600m"), 0, now); ok {
		t.Error("600m used + 500m requested exceeds a quota of 1 CPU, yet admissible")
	}
	if _, ok := c.admissible(view(quota, 0, "500m"), 0, now); !ok {
		t.Error("500m used + 500m requested fits a quota of 1 CPU exactly, yet held")
	}
	c.opts.MaxAdmittedTotal = 3
	if _, ok := c.admissible(view(v1alpha1.QueueSpec{}, 0, "0"), 3, now); ok {
		t.Error("cluster-wide cap reached, yet admissible")
	}
	c.opts.MaxAdmittedTotal = 0

	rated := v1alpha1.QueueSpec{AdmissionRate: &v1alpha1.AdmissionRate{PodsPerSecond: resource.MustParse("2"), Burst: 1}}
	v := view(rated, 0, "0")
	if _, ok := c.admissible(v, 0, now); !ok {
		t.Fatal("a full bucket must admit")
	}
	c.state.limiters["q"].limiter.AllowN(now, 1)
	wait, ok := c.admissible(v, 0, now)
	if ok || wait < 400*time.Millisecond || wait > 600*time.Millisecond {
		t.Errorf("after one admission at 2/s: admissible=%v, wait=%s, want held for about 500ms", ok, wait)
	}
	if _, ok := c.admissible(v, 0, now.Add(time.Second)); !ok {
		t.Error("the bucket must refill")
	}
}

func TestGateRemovalPatch(t *testing.T) {
	p := pod("p", 0, time.Unix(0, 0), "1")
	p.UID = "uid-1"
	p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "other"}, {Name: v1alpha1.AdmissionGate}}
	patch, ok := GateRemovalPatch(p)
	want := `[{"op":"test","path":"/metadata/uid","value":"uid-1"},{"op":"test","path":"/spec/schedulingGates/1/name","value":"switchyard.io/admission"},{"op":"remove","path":"/spec/schedulingGates/1"}]`
	if !ok || string(patch) != want {
		t.Errorf("patch = %s (ok %v), want %s", patch, ok, want)
	}
	p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "other"}}
	if _, ok := GateRemovalPatch(p); ok {
		t.Error("a pod without the admission gate needs no patch")
	}
}
