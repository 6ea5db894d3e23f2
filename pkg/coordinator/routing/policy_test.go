package routing

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	table, def := Table([]*v1alpha1.Queue{
		queue("batch", "switchyard-batch", false, 0, true),
		queue("general", "switchyard", true, 0, false),
	})
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
	if got, def := Table(nil); len(got) != 0 || def != "" {
		t.Errorf("no Queues: empty table, got %v default %q", got, def)
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
	table, _ := Table(queues)
	if size := TableBytes(table); size > MaxTableBytes {
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
