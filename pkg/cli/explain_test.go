package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	visibility "github.com/switchyard-sched/switchyard/pkg/apis/visibility/v1alpha1"
)

func TestExplain(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	pod := func(mutate func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "job", UID: "u1",
			CreationTimestamp: metav1.NewTime(now.Add(-5 * time.Minute)),
			Labels:            map[string]string{v1alpha1.QueueLabel: "batch"},
			Annotations:       map[string]string{v1alpha1.RoutedQueueAnnotation: "batch"}},
			Spec: corev1.PodSpec{SchedulerName: "switchyard-batch", SchedulingGates: []corev1.PodSchedulingGate{{Name: v1alpha1.AdmissionGate}}}}
		if mutate != nil {
			mutate(p)
		}
		return p
	}
	event := func(reason, typ, message string, ago time.Duration) corev1.Event {
		return corev1.Event{Reason: reason, Type: typ, Message: message, EventTime: metav1.NewMicroTime(now.Add(-ago))}
	}
	batch := &v1alpha1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "batch"},
		Spec:   v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](10)},
		Status: v1alpha1.QueueStatus{Pending: 7, Admitted: 10, Conditions: []metav1.Condition{{Type: v1alpha1.QueueReady, Status: metav1.ConditionTrue}}}}
	for _, tc := range []struct {
		name string
		x    Explanation
		want []string
	}{
		{name: "waiting, held by maxAdmitted", x: Explanation{Pod: pod(nil), Queue: batch, Events: []corev1.Event{
			event("Queued", corev1.EventTypeNormal, `Waiting for admission in queue "batch", held by maxAdmitted (10/10)`, 4*time.Minute)}},
			want: []string{"Route:     Queue batch, profile switchyard-batch", "7 pending, 10 admitted", "limits maxAdmitted=10",
				"waiting for admission; held by maxAdmitted (10/10) (4m ago", "Position:  not in the coordinator's queues yet"}},
		{name: "waiting, with its standing and an estimate", x: Explanation{Pod: pod(nil), Queue: batch, Standing: &visibility.PendingPod{
			Queue: "batch", Position: 3, HeldBy: "2 pods ahead in the queue, whose next pod is held by maxAdmitted (10/10)",
			EstimatedAdmission: ptr.To(metav1.NewTime(now.Add(90 * time.Second))), EstimateBasis: "12 admitted in the last 5m0s"}},
			want: []string{"Position:  3 in queue batch; held by 2 pods ahead", "Estimate:  in about 90s (12 admitted in the last 5m0s)"}},
		{name: "waiting, no estimate", x: Explanation{Pod: pod(nil), Queue: batch, Standing: &visibility.PendingPod{
			Queue: "batch", Position: 1, HeldBy: "maxAdmitted (0/0)", EstimateBasis: "no estimate: nothing admitted in the last 5m0s"}},
			want: []string{"Position:  1 in queue batch; held by maxAdmitted (0/0)", "Estimate:  no estimate: nothing admitted"}},
		{name: "waiting, visibility API not registered", x: Explanation{Pod: pod(nil), Queue: batch,
			StandingErr: apiServerNotFound},
			want: []string{"Position:  not available: the visibility API (v1alpha1.visibility.switchyard.io) is not registered"}},
		{name: "waiting, not allowed to list pendingpods", x: Explanation{Pod: pod(nil), Queue: batch,
			StandingErr: apierrors.NewForbidden(schema.GroupResource{Group: visibility.GroupName, Resource: "pendingpods"}, "", errors.New("RBAC"))},
			want: []string{"may not list pendingpods.visibility.switchyard.io in namespace team-a (the view role grants it)"}},
		{name: "admitted, the scheduler cannot place it", x: Explanation{Pod: pod(func(p *corev1.Pod) {
			p.Spec.SchedulingGates = nil
			p.Annotations[v1alpha1.AdmittedAnnotation] = `{"queue":"batch","time":"2026-12-02T11:58:00Z","waited":"3m","limits":"maxAdmitted 10/10"}`
		}), Queue: batch, Events: []corev1.Event{
			event("FailedScheduling", corev1.EventTypeWarning, "0/3 nodes are available: 3 Insufficient cpu.", time.Minute),
			event("AdmittedTimeout", corev1.EventTypeWarning, "Admitted 10m ago ...", 30*time.Second)}},
			want: []string{"admitted 2m ago by Queue batch after waiting 3m (maxAdmitted 10/10), not yet bound",
				"Scheduler: 0/3 nodes are available: 3 Insufficient cpu. (60s ago)", "Warning:   AdmittedTimeout"}},
		{name: "bound", x: Explanation{Pod: pod(func(p *corev1.Pod) { p.Spec.SchedulingGates, p.Spec.NodeName = nil, "node-1" }), Queue: batch},
			want: []string{"State:     scheduled on node node-1"}},
		{name: "a label naming no Queue", x: Explanation{Pod: pod(func(p *corev1.Pod) {
			p.Labels[v1alpha1.QueueLabel] = "btach"
			p.Annotations[v1alpha1.RoutedQueueAnnotation] = "general"
			p.Spec.SchedulerName = "switchyard"
		})}, want: []string{"label switchyard.io/queue=btach names no Queue; routed to the default Queue general"}},
		{name: "not routed", x: Explanation{Pod: pod(func(p *corev1.Pod) { p.Annotations = nil; p.Spec.SchedulerName = "default-scheduler" })},
			want: []string{"not routed by Switchyard"}},
		{name: "the Queue is not readable", x: Explanation{Pod: pod(nil),
			QueueErr: apierrors.NewForbidden(schema.GroupResource{Group: "switchyard.io", Resource: "queues"}, "batch", errors.New("no"))},
			want: []string{"cannot read Queue batch with your credentials"}},
		{name: "a Queue that cannot take the pod's set", x: Explanation{Pod: pod(nil), Queue: &v1alpha1.Queue{Spec: batch.Spec, Status: v1alpha1.QueueStatus{
			Conditions: []metav1.Condition{{Type: v1alpha1.QueueCalcSetsCannotFit, Status: metav1.ConditionTrue, Message: "1 calculation sets can never be admitted whole"}}}}},
			want: []string{"CalcSetsCannotFit: 1 calculation sets can never be admitted whole", "not known yet (no Queued Event)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Explain(&out, tc.x, now); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}
