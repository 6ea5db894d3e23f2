package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	visibility "github.com/switchyard-sched/switchyard/pkg/apis/visibility/v1alpha1"
)

// apiServerNotFound is the API server's answer for a path no handler
// serves, as for a group whose APIService is not registered.
var apiServerNotFound = &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 404,
	Reason: metav1.StatusReasonNotFound, Message: "the server could not find the requested resource", Details: &metav1.StatusDetails{}}}

func TestDescribeVisibilityError(t *testing.T) {
	queue, namespace := PendingTarget{Queue: "batch"}, PendingTarget{Namespace: "team-a"}
	unknownQueue := &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 404, Reason: metav1.StatusReasonNotFound,
		Message: `queue "nope" has no pending pods and no Queue object: list the queues with kubectl get queues.switchyard.io`,
		Details: &metav1.StatusDetails{Group: visibility.GroupName, Kind: visibility.QueuesResource, Name: "nope"}}}
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: visibility.GroupName, Resource: "pendingpods"}, "", errors.New("RBAC"))
	for _, tc := range []struct {
		name   string
		err    error
		target PendingTarget
		want   string
	}{
		{name: "group not registered", err: apiServerNotFound, target: queue, want: "the visibility API (v1alpha1.visibility.switchyard.io) is not registered"},
		{name: "unknown queue, from the coordinator", err: unknownQueue, target: queue, want: `queue "nope" has no pending pods and no Queue object`},
		{name: "queue forbidden", err: forbidden, target: queue, want: "may not get queues/pendingpods.visibility.switchyard.io for queue batch (the switchyard-queue-pending-viewer ClusterRole"},
		{name: "namespace forbidden", err: forbidden, target: namespace, want: "may not list pendingpods.visibility.switchyard.io in namespace team-a (the view role grants it)"},
		{name: "no leader", err: apierrors.NewServiceUnavailable("this coordinator replica does not lead"), target: queue,
			want: "the visibility API is unavailable: this coordinator replica does not lead (is switchyard-coordinator running?"},
		{name: "anything else passes through", err: errors.New("dial tcp: connection refused"), target: namespace, want: "dial tcp: connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DescribeVisibilityError(tc.err, tc.target); !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

func TestPrintPending(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	list := &visibility.PendingPodList{Items: []visibility.PendingPod{
		{Namespace: "team-a", Name: "first", UID: "u1", Queue: "batch", Position: 1, Priority: 10,
			CreationTimestamp: metav1.NewTime(now.Add(-3 * time.Minute)), HeldBy: "maxAdmitted (5/5)",
			EstimatedAdmission: ptr.To(metav1.NewTime(now.Add(40 * time.Second))), EstimateBasis: "12 admitted in the last 5m0s"},
		{Namespace: "team-b", Name: "second", UID: "u2", Queue: "batch", Position: 2, CalcSet: "sweep",
			CreationTimestamp: metav1.NewTime(now.Add(-time.Minute)), HeldBy: "1 pod ahead in the queue, whose next pod is held by maxAdmitted (5/5)",
			EstimateBasis: "no estimate: nothing admitted in the last 5m0s"},
	}}
	for _, tc := range []struct {
		name    string
		target  PendingTarget
		output  string
		want    []string
		notWant []string
	}{
		{name: "a queue's table names namespaces", target: PendingTarget{Queue: "batch"},
			want:    []string{"POSITION  NAMESPACE  NAME    PRIORITY  AGE  HELD BY", "1         team-a     first   10        3m   maxAdmitted (5/5)", "in 40s", "2         team-b     second  0         60s  1 pod ahead"},
			notWant: []string{"CALCSET", "12 admitted"}},
		{name: "a namespace's table names queues", target: PendingTarget{Namespace: "team-a"},
			want: []string{"POSITION  QUEUE  NAME", "1         batch  first"}},
		{name: "wide adds the set and the estimate's basis", target: PendingTarget{Queue: "batch"}, output: outputWide,
			want: []string{"CALCSET  ESTIMATE BASIS", "-        12 admitted in the last 5m0s", "sweep    no estimate: nothing admitted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := PrintPending(&out, list, tc.target, tc.output, now); err != nil {
				t.Fatal(err)
			}
			for _, want := range tc.want {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
			for _, notWant := range tc.notWant {
				if strings.Contains(out.String(), notWant) {
					t.Errorf("output has %q:\n%s", notWant, out.String())
				}
			}
		})
	}
	t.Run("json is the API's list", func(t *testing.T) {
		var out bytes.Buffer
		if err := PrintPending(&out, list, PendingTarget{Queue: "batch"}, outputJSON, now); err != nil {
			t.Fatal(err)
		}
		var back visibility.PendingPodList
		if err := json.Unmarshal(out.Bytes(), &back); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out.String())
		}
		if len(back.Items) != 2 || back.Items[1].CalcSet != "sweep" || back.Items[0].EstimatedAdmission == nil {
			t.Errorf("round trip lost data: %+v", back.Items)
		}
	})
}
