package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
)

func TestPrintQueues(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	queues := []v1alpha1.Queue{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "general"},
			Spec:       v1alpha1.QueueSpec{Profile: "switchyard", Default: true, Weight: 1},
			Status: v1alpha1.QueueStatus{Scheduled: 3, Conditions: []metav1.Condition{
				{Type: v1alpha1.QueueReady, Status: metav1.ConditionTrue, Reason: "Ready"},
			}},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "batch"},
			Spec: v1alpha1.QueueSpec{Profile: "switchyard-batch", Weight: 2, MaxAdmitted: ptr.To[int32](5),
				Quota: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")}},
			Status: v1alpha1.QueueStatus{Pending: 7, Admitted: 5, OldestPendingSince: &metav1.Time{Time: now.Add(-90 * time.Second)},
				Conditions: []metav1.Condition{
					{Type: v1alpha1.QueueReady, Status: metav1.ConditionFalse, Reason: "NotReady"},
					{Type: v1alpha1.QueueProfileMissing, Status: metav1.ConditionTrue, Reason: "ProfileMissing"},
				}},
		},
	}
	var out bytes.Buffer
	if err := PrintQueues(&out, queues, "wide", now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want header and two rows, got:\n%s", out.String())
	}
	for _, want := range []string{"batch", "switchyard-batch", "7", "5", "90s", "False (ProfileMissing)", "maxAdmitted=5,cpu=8"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row for batch %q lacks %q", lines[1], want)
		}
	}
	if !strings.Contains(lines[2], "general (default)") || !strings.Contains(lines[2], "True") {
		t.Errorf("row for general: %q", lines[2])
	}
	out.Reset()
	if err := PrintQueues(&out, queues, "json", now); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"profile": "switchyard-batch"`) {
		t.Errorf("json output lacks the profile:\n%s", out.String())
	}
}

func TestPrintReplicasAndServices(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var b strings.Builder
	err := PrintReplicas(&b, []configurator.ReplicaInfo{
		{PodNumber: 1, Pod: "web-b", State: configurator.StatePruned, Failures: 2, LastSeen: now.Add(-30 * time.Second), AppliedVersion: 4},
		{PodNumber: 0, Pod: "web-a", State: configurator.StateHealthy, LastSeen: now.Add(-time.Second), AppliedVersion: 5},
	}, "", now)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "0 ") || !strings.Contains(lines[2], "pruned") || !strings.Contains(lines[2], "30s ago") {
		t.Errorf("replicas table:\n%s", b.String())
	}
	b.Reset()
	if err := PrintServices(&b, []configurator.ServiceInfo{{Name: "web", Replicas: 2, Healthy: 1, Pruned: 1, Version: 5}}, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "web") || !strings.Contains(b.String(), "VERSION") {
		t.Errorf("services table:\n%s", b.String())
	}
}
