package localcluster

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

func TestKubeletAdmission(t *testing.T) {
	node := &corev1.Node{}
	node.Name = "n1"
	node.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("3")}
	pod := func(name, cpu, memory string, phase corev1.PodPhase) *corev1.Pod {
		p := Pod("ns", name, PodSpec{CPU: cpu, Memory: memory})
		p.UID, p.Spec.NodeName, p.Status.Phase = types.UID(name), "n1", phase
		return p
	}
	for _, tc := range []struct {
		name       string
		existing   []*corev1.Pod
		admitFirst []*corev1.Pod // admitted by this process, still Pending in the cache
		pod        *corev1.Pod
		wantReason string
		wantInMsg  string
	}{
		{name: "room beside a running pod", existing: []*corev1.Pod{pod("r", "3", "1Gi", corev1.PodRunning)}, pod: pod("p", "1", "1Gi", corev1.PodPending)},
		{name: "no CPU left", existing: []*corev1.Pod{pod("r", "3500m", "1Gi", corev1.PodRunning)}, pod: pod("p", "1", "1Gi", corev1.PodPending),
			wantReason: "OutOfcpu", wantInMsg: "Node didn't have enough resource: cpu, requested: 1000, used: 3500, capacity: 4000"},
		{name: "no memory left", existing: []*corev1.Pod{pod("r", "1", "7Gi", corev1.PodRunning)}, pod: pod("p", "1", "2Gi", corev1.PodPending), wantReason: "OutOfmemory"},
		{name: "finished pods free their room", existing: []*corev1.Pod{pod("done", "4", "1Gi", corev1.PodSucceeded), pod("failed", "4", "1Gi", corev1.PodFailed)}, pod: pod("p", "4", "1Gi", corev1.PodPending)},
		{name: "bound but not admitted pods do not count", existing: []*corev1.Pod{pod("other", "4", "1Gi", corev1.PodPending)}, pod: pod("p", "4", "1Gi", corev1.PodPending)},
		{name: "a pod admitted here counts before it shows Running", admitFirst: []*corev1.Pod{pod("first", "3", "1Gi", corev1.PodPending)}, pod: pod("second", "2", "1Gi", corev1.PodPending), wantReason: "OutOfcpu"},
		{name: "the node's pod count", existing: []*corev1.Pod{pod("a", "100m", "1Mi", corev1.PodRunning), pod("b", "100m", "1Mi", corev1.PodRunning), pod("c", "100m", "1Mi", corev1.PodRunning)},
			pod: pod("p", "100m", "1Mi", corev1.PodPending), wantReason: "OutOfpods"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{byNodeIndex: indexByNode})
			for _, p := range append(append(tc.existing, tc.admitFirst...), tc.pod) {
				if err := indexer.Add(p); err != nil {
					t.Fatal(err)
				}
			}
			k := newKubeletAdmission(indexer)
			for _, p := range tc.admitFirst {
				if ok, reason, _ := k.admit(p, node); !ok {
					t.Fatalf("%s refused: %s", p.Name, reason)
				}
			}
			ok, reason, message := k.admit(tc.pod, node)
			if ok != (tc.wantReason == "") || reason != tc.wantReason || !strings.Contains(message, tc.wantInMsg) {
				t.Errorf("admit = %v, %q, %q; want reason %q and a message with %q", ok, reason, message, tc.wantReason, tc.wantInMsg)
			}
			if ok {
				if again, _, _ := k.admit(tc.pod, node); !again {
					t.Error("an admitted pod was refused when its status write was retried")
				}
			}
		})
	}
}
