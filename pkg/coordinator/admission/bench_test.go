package admission

import (
	"fmt"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// benchState is 100 quota queues holding running pods and waiting pods.
func benchState(b *testing.B, running, waiting int) (*State, *Controller) {
	b.Helper()
	s := NewState()
	const queues = 100
	for i := range queues {
		q := &v1alpha1.Queue{Spec: v1alpha1.QueueSpec{Profile: "switchyard-batch", Weight: int32(1 + i%3),
			MaxAdmitted: ptr.To[int32](1 << 20), Quota: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1M")}}}
		q.Name = fmt.Sprintf("q%03d", i)
		s.SetQueue(q.Name, q)
	}
	add := func(n int, prefix string, bound bool) {
		for i := range n {
			p := routedPod(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("q%03d", i%queues), "switchyard-batch", "100m")
			p.UID = types.UID(p.Name)
			if bound {
				p.Spec.SchedulingGates = nil
				p.Spec.NodeName = "n"
			}
			s.SetPod(p, t0)
		}
	}
	add(running, "running", true)
	add(waiting, "waiting", false)
	c := &Controller{state: s, work: make(chan Admission, 32), pass: map[string]float64{}, active: sets.New[string](), buckets: map[string]Bucket{}}
	return s, c
}

// BenchmarkDecisionCycle is one decision over 100 quota queues: building
// its input from the state and deciding up to a full budget (32). Its cost
// follows the pods that wait, not the pods that run: compare the running=
// sizes at one waiting= size.
func BenchmarkDecisionCycle(b *testing.B) {
	for _, size := range []struct{ running, waiting int }{
		{1_000, 1_000}, {10_000, 1_000}, {100_000, 1_000},
		{100_000, 10_000},
	} {
		b.Run(fmt.Sprintf("running=%d/waiting=%d", size.running, size.waiting), func(b *testing.B) {
			_, c := benchState(b, size.running, size.waiting)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				d := Decide(c.input(), t0)
				if len(d.Admit) != 32 {
					b.Fatalf("decided %d, want the full budget", len(d.Admit))
				}
			}
		})
	}
}

// BenchmarkPodEvent is the cost of one pod event (an update moving a pod
// from waiting to admitted and back) in a state of the given size.
func BenchmarkPodEvent(b *testing.B) {
	for _, running := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("running=%d", running), func(b *testing.B) {
			s, _ := benchState(b, running, 1_000)
			gated := routedPod("event", "q007", "switchyard-batch", "100m")
			ungated := gated.DeepCopy()
			ungated.Spec.SchedulingGates = nil
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if i%2 == 0 {
					s.SetPod(gated, t0)
				} else {
					s.SetPod(ungated, t0)
				}
			}
		})
	}
}

// BenchmarkStateMemory reports what the admission state keeps per running
// pod (the informer's own copy of the pod is not counted).
func BenchmarkStateMemory(b *testing.B) {
	const running = 100_000
	pods := make([]*corev1.Pod, running)
	for i := range pods {
		p := routedPod(fmt.Sprintf("running-%d", i), fmt.Sprintf("q%03d", i%100), "switchyard-batch", "100m")
		p.Spec.SchedulingGates, p.Spec.NodeName = nil, "n"
		pods[i] = p
	}
	var perPod float64
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := NewState()
		for _, p := range pods {
			s.SetPod(p, t0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perPod = float64(after.HeapAlloc-before.HeapAlloc) / running
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perPod, "B/pod")
}
