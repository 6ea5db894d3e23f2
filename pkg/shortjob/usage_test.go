package shortjob

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
)

func testNode(name, cpu string, pods int64) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse("8Gi"),
			corev1.ResourcePods: *resource.NewQuantity(pods, resource.DecimalSI)},
		Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
	}}
}

func testPod(uid, node, cpu string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "ns", UID: types.UID(uid)},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}}}}},
		Status: corev1.PodStatus{Phase: phase}}
}

// TestUsage: the per-node sums follow every kind of pod event and this
// replica's own binds, with the informer's view winning once it has one.
func TestUsage(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	node := testNode("n1", "4", 3)
	cpu := func(m int64) map[corev1.ResourceName]int64 {
		return map[corev1.ResourceName]int64{corev1.ResourceCPU: m}
	}
	for _, tc := range []struct {
		name     string
		steps    func(u *usage)
		wantFree int64
		fits     map[corev1.ResourceName]int64
		wantFits bool
	}{
		{"empty node", func(*usage) {}, 4000, cpu(4000), true},
		{"a bound pod holds its requests", func(u *usage) { u.observe(testPod("a", "n1", "1", corev1.PodRunning)) }, 3000, cpu(3001), false},
		{"an update moves nothing twice", func(u *usage) {
			u.observe(testPod("a", "n1", "1", corev1.PodPending))
			u.observe(testPod("a", "n1", "1", corev1.PodRunning))
		}, 3000, cpu(3000), true},
		{"a finished pod frees its room", func(u *usage) {
			u.observe(testPod("a", "n1", "1", corev1.PodRunning))
			u.observe(testPod("a", "n1", "1", corev1.PodSucceeded))
		}, 4000, cpu(4000), true},
		{"a deleted pod frees its room", func(u *usage) {
			u.observe(testPod("a", "n1", "1", corev1.PodRunning))
			u.forgetPod("a")
		}, 4000, cpu(4000), true},
		{"an unbound pod holds nothing", func(u *usage) { u.observe(testPod("a", "", "1", corev1.PodPending)) }, 4000, cpu(4000), true},
		{"an assumed bind holds room before the informer shows it", func(u *usage) {
			u.assume("b", "n1", testPod("b", "", "2", "").Spec.Containers[0].Resources.Requests, now)
		}, 2000, cpu(2001), false},
		{"a stale unbound event keeps the assumed charge", func(u *usage) {
			u.assume("b", "n1", testPod("b", "", "2", "").Spec.Containers[0].Resources.Requests, now)
			u.observe(testPod("b", "", "2", corev1.PodPending))
		}, 2000, cpu(2000), true},
		{"the informer's bound pod replaces the assumed charge", func(u *usage) {
			u.assume("b", "n1", testPod("b", "", "2", "").Spec.Containers[0].Resources.Requests, now)
			u.observe(testPod("b", "n1", "2", corev1.PodRunning))
			u.unassume("b") // a late failure report must not free a pod the informer shows
		}, 2000, cpu(2000), true},
		{"a failed bind frees its assumed room", func(u *usage) {
			u.assume("b", "n1", testPod("b", "", "2", "").Spec.Containers[0].Resources.Requests, now)
			u.unassume("b")
		}, 4000, cpu(4000), true},
		{"an assumed bind never shown expires", func(u *usage) {
			u.assume("b", "n1", testPod("b", "", "2", "").Spec.Containers[0].Resources.Requests, now)
			u.expire(now.Add(assumeTTL + time.Second))
		}, 4000, cpu(4000), true},
		{"an assumed bind within its TTL stays", func(u *usage) {
			u.assume("b", "n1", testPod("b", "", "2", "").Spec.Containers[0].Resources.Requests, now)
			u.expire(now.Add(assumeTTL - time.Second))
		}, 2000, cpu(2000), true},
		{"assuming a pod the informer shows bound changes nothing", func(u *usage) {
			u.observe(testPod("a", "n1", "1", corev1.PodRunning))
			u.assume("a", "n1", testPod("a", "", "1", "").Spec.Containers[0].Resources.Requests, now)
			u.expire(now.Add(2 * assumeTTL))
		}, 3000, cpu(3000), true},
		{"the pod count is a limit", func(u *usage) {
			for i := range 3 {
				u.observe(testPod(fmt.Sprint("p", i), "n1", "0", corev1.PodRunning))
			}
		}, 4000, cpu(1), false},
		{"an unknown resource does not fit", func(*usage) {}, 4000, map[corev1.ResourceName]int64{"example.com/gpu": 1000}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUsage()
			tc.steps(u)
			fits, free := u.fit(node, tc.fits)
			if free != tc.wantFree || fits != tc.wantFits {
				t.Errorf("fit = %v with %dm CPU free, want %v with %dm", fits, free, tc.wantFits, tc.wantFree)
			}
		})
	}
}

// BenchmarkPick100kPods is one placement's cost on 1,000 nodes holding
// 100,000 bound pods: before the sums were kept from events, each
// placement added up every bound pod (0.63 s and 194 MB per message,
// measured 2026-12-01).
func BenchmarkPick100kPods(b *testing.B) {
	_, ctx := ktesting.NewTestContext(b)
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes()
	s, err := New(client, nodes.Lister(), factory.Core().V1().Pods().Informer(), nil, NewMetrics(nil))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if err := nodes.Informer().GetIndexer().Add(testNode(fmt.Sprint("n", i), "64", 200)); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 100_000 {
		s.usage.observe(testPod(fmt.Sprint("p", i), fmt.Sprint("n", i%1000), "100m", corev1.PodRunning))
	}
	pod := testPod("new", "", "100m", corev1.PodPending)
	want := chargeOf("", pod.Spec.Containers[0].Resources.Requests).milli
	b.ReportAllocs()
	for b.Loop() {
		if node, why := s.pick(klog.FromContext(ctx), pod, want); node == "" {
			b.Fatal(why)
		}
	}
}

func TestLeaseName(t *testing.T) {
	for queue, want := range map[string]string{
		"switchyard.short-jobs": "switchyard-shortjob-switchyard.short-jobs",
		"Team_A:jobs":           "switchyard-shortjob-team-a-jobs",
		"trailing.":             "switchyard-shortjob-trailing",
	} {
		if got := LeaseName(queue); got != want {
			t.Errorf("LeaseName(%q) = %q, want %q", queue, got, want)
		}
	}
}
