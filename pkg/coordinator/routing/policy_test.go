package routing

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

func queue(name, profile string, def bool, age time.Duration, limited bool) *v1alpha1.Queue {
	q := &v1alpha1.Queue{
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(time.Unix(1_000_000, 0).Add(-age))},
		Spec:       v1alpha1.QueueSpec{Profile: profile, Default: def},
	}
	if limited {
		q.Spec.MaxAdmitted = ptr.To[int32](3)
	}
	return q
}

func TestRoutes(t *testing.T) {
	routes, def := Routes([]*v1alpha1.Queue{
		queue("latency", "switchyard-latency", false, time.Hour, false),
		queue("general", "switchyard", true, time.Minute, false),
		queue("batch", "switchyard-batch", false, time.Hour, true),
		queue("older-default", "switchyard-batch", true, time.Hour, true),
	})
	var names []string
	for _, r := range routes {
		names = append(names, r.Queue)
	}
	if got := strings.Join(names, ","); got != "batch,general,latency,older-default" {
		t.Errorf("routes in order %s", got)
	}
	if def.Queue != "older-default" || def.Profile != "switchyard-batch" || !def.Gated {
		t.Errorf("with two defaults the oldest must win, got %+v", def)
	}
	if _, def := Routes(nil); def.Queue != "" || def.Profile != "switchyard" || def.Gated {
		t.Errorf("without Queues, pods keep the switchyard profile ungated, got %+v", def)
	}
}

func TestTable(t *testing.T) {
	contents := Table([]*v1alpha1.Queue{
		queue("batch", "switchyard-batch", false, 0, true),
		queue("general", "switchyard", true, 0, false),
	}, nil)
	table, def := contents.Routes, contents.DefaultQueue
	want := map[string]string{"batch": "+switchyard-batch", "general": "switchyard"}
	if !maps.Equal(table, want) || def != "general" {
		t.Errorf("table = %v default %q, want %v default general", table, def, want)
	}
	if !Routed(table, queue("batch", "switchyard-batch", false, 0, true)) {
		t.Error("batch is in the table as it is")
	}
	if Routed(table, queue("batch", "switchyard-batch", false, 0, false)) {
		t.Error("batch without limits is not routed as the table says (the table still gates it)")
	}
	if Routed(table, queue("new", "switchyard", false, 0, false)) {
		t.Error("a Queue missing from the table is not routed")
	}
	if got := Table(nil, nil); len(got.Routes) != 0 || got.DefaultQueue != "" || len(got.ServedProfiles) != 0 || len(got.NamespaceSelectors) != 0 {
		t.Errorf("no Queues: empty table, got %+v", got)
	}
}

func TestTableServedProfiles(t *testing.T) {
	queues := []*v1alpha1.Queue{
		queue("b-batch", "switchyard-batch", false, 0, true),
		queue("a-batch", "switchyard-batch", false, 0, false),
		queue("general", "switchyard", true, 0, false),
		queue("latency", "switchyard-latency", false, 0, false),
		{ObjectMeta: metav1.ObjectMeta{Name: "jobs"}, Spec: v1alpha1.QueueSpec{External: &v1alpha1.ExternalScheduler{AMQPQueue: "jobs"}}},
	}
	for _, tc := range []struct {
		name string
		open []string
		want map[string]string
	}{
		{name: "every profile a Queue routes to, named by its first Queue", want: map[string]string{
			"switchyard-batch": "a-batch", "switchyard": "general", "switchyard-latency": "latency", v1alpha1.ExternalSchedulerName: "jobs"}},
		{name: "open profiles are left out", open: []string{"switchyard-latency", "unused"}, want: map[string]string{
			"switchyard-batch": "a-batch", "switchyard": "general", v1alpha1.ExternalSchedulerName: "jobs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Table(queues, sets.New(tc.open...)).ServedProfiles; !maps.Equal(got, tc.want) {
				t.Errorf("served profiles = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTableNamespaceSelectors(t *testing.T) {
	restricted := queue("team-a", "switchyard-batch", false, 0, true)
	restricted.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
	empty := queue("open", "switchyard-batch", false, 0, true)
	empty.Spec.NamespaceSelector = &metav1.LabelSelector{}
	deleted := queue("going", "switchyard-batch", false, 0, true)
	deleted.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "b"}}
	deleted.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
	contents := Table([]*v1alpha1.Queue{restricted, empty, deleted, queue("plain", "switchyard", false, 0, false)}, nil)
	if len(contents.NamespaceSelectors) != 1 || contents.NamespaceSelectors["team-a"].MatchLabels["team"] != "a" {
		t.Errorf("only team-a restricts its namespaces (an empty selector selects all), got %v", contents.NamespaceSelectors)
	}
	live := &v1alpha1.RoutingTable{Routes: contents.Routes, DefaultQueue: contents.DefaultQueue,
		ServedProfiles: contents.ServedProfiles, NamespaceSelectors: contents.NamespaceSelectors}
	if !contents.Matches(live) {
		t.Error("the table written from the contents matches them")
	}
	live.NamespaceSelectors = map[string]metav1.LabelSelector{"team-a": {MatchLabels: map[string]string{"team": "c"}}}
	if contents.Matches(live) {
		t.Error("a changed selector must be written again")
	}
	if contents.Matches(nil) {
		t.Error("a missing table must be written")
	}
	ac := contents.ApplyConfiguration()
	if got := ac.NamespaceSelectors["team-a"].MatchLabels["team"]; got != "a" {
		t.Errorf("apply configuration selector = %q", got)
	}
}

// TestTableHoldsTenThousandQueues: the ceiling the policy-embedded Queues
// had (about 1,000 with 63-character names) is gone; 10,000 Queues with
// maximal names fit in the routing table.
func TestTableHoldsTenThousandQueues(t *testing.T) {
	queues := make([]*v1alpha1.Queue, 10_000)
	for i := range queues {
		name := fmt.Sprintf("%s-%05d", strings.Repeat("q", 57), i)
		queues[i] = queue(name, "switchyard-latency", false, 0, i%2 == 0)
	}
	if size := Table(queues, nil).Bytes(); size > MaxTableBytes {
		t.Fatalf("10,000 Queues with 63-character names need %d bytes, more than %d", size, MaxTableBytes)
	} else {
		t.Logf("10,000 Queues with 63-character names: %d bytes of %d", size, MaxTableBytes)
	}
}

func TestPolicyIsStatic(t *testing.T) {
	policy, binding := Policy(), Binding()
	if *binding.Spec.PolicyName != *policy.Name || *policy.Name != v1alpha1.RoutingPolicyName {
		t.Errorf("binding %q does not bind policy %q", *binding.Spec.PolicyName, *policy.Name)
	}
	if ref := binding.Spec.ParamRef; ref == nil || *ref.Name != v1alpha1.RoutingPolicyName ||
		*ref.ParameterNotFoundAction != admissionregistrationv1.DenyAction {
		t.Errorf("the binding must read the routing table and fail closed without it: %+v", ref)
	}
	if got := *policy.Spec.MatchConditions[0].Expression; got != "object.spec.schedulerName == 'switchyard'" {
		t.Errorf("match condition = %s", got)
	}
	if n := len(policy.Spec.Mutations); n != 1 || *policy.Spec.Mutations[0].PatchType != admissionregistrationv1.PatchTypeJSONPatch {
		t.Errorf("want one JSON patch mutation (no structured merge), got %d", n)
	}
	expr := *policy.Spec.Mutations[0].JSONPatch.Expression
	for _, want := range []string{"/metadata/annotations/switchyard.io~1routed-queue", "/spec/schedulerName", "'switchyard.io/admission'"} {
		if !strings.Contains(expr, want) {
			t.Errorf("the patch does not mention %s: %s", want, expr)
		}
	}
}

func TestCELStringQuotes(t *testing.T) {
	for in, want := range map[string]string{
		"batch":   "'batch'",
		"it's":    `'it\'s'`,
		`back\sl`: `'back\\sl'`,
	} {
		if got := celString(in); got != want {
			t.Errorf("celString(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestGuardsAreStatic(t *testing.T) {
	if p, b := RoutingGuard(), RoutingGuardBinding(); *p.Name != v1alpha1.RoutingGuardPolicyName || *b.Spec.PolicyName != *p.Name ||
		*b.Spec.ParamRef.Name != v1alpha1.RoutingPolicyName || *b.Spec.ParamRef.ParameterNotFoundAction != admissionregistrationv1.AllowAction {
		t.Errorf("routing guard %q bound as %+v: want it bound to the routing table, allowing without it", *p.Name, b.Spec)
	}
	if p, b := AdmissionGuard(), AdmissionGuardBinding(); *p.Name != v1alpha1.AdmissionGuardPolicyName || *b.Spec.PolicyName != *p.Name || b.Spec.ParamRef != nil {
		t.Errorf("admission guard %q bound as %+v", *p.Name, b.Spec)
	}
	if ops := RoutingGuard().Spec.MatchConstraints.ResourceRules[0].Operations; !slices.Equal(ops, []admissionregistrationv1.OperationType{admissionregistrationv1.Create}) {
		t.Errorf("the routing guard checks pods as they are created, matches %v", ops)
	}
	if ops := AdmissionGuard().Spec.MatchConstraints.ResourceRules[0].Operations; !slices.Equal(ops, []admissionregistrationv1.OperationType{admissionregistrationv1.Update}) {
		t.Errorf("the admission guard checks pod updates, matches %v", ops)
	}
	// Every refusal is a 403 with a message computed for the pod.
	for _, p := range []*admissionregistrationv1ac.ValidatingAdmissionPolicyApplyConfiguration{RoutingGuard(), AdmissionGuard()} {
		for i, v := range p.Spec.Validations {
			if v.MessageExpression == nil || *v.Reason != metav1.StatusReasonForbidden {
				t.Errorf("%s validation %d: want a message expression and reason Forbidden", *p.Name, i)
			}
		}
	}
	if resources := AdmissionGuard().Spec.MatchConstraints.ResourceRules[0].Resources; !slices.Contains(resources, "pods/status") {
		t.Errorf("the admission guard must cover pods/status, which may change annotations: %v", resources)
	}
}
