package routing

import (
	"strings"
	"testing"
	"time"

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

func TestCompile(t *testing.T) {
	policy, binding := Compile([]*v1alpha1.Queue{
		queue("batch", "switchyard-batch", false, 0, true),
		queue("general", "switchyard", true, 0, false),
	})
	if binding.Spec.PolicyName != policy.Name || policy.Name != PolicyName {
		t.Errorf("binding %q does not bind policy %q", binding.Spec.PolicyName, policy.Name)
	}
	vars := map[string]string{}
	for _, v := range policy.Spec.Variables {
		vars[v.Name] = v.Expression
	}
	if got := vars["profiles"]; got != "{'batch': 'switchyard-batch', 'general': 'switchyard'}" {
		t.Errorf("profiles = %s", got)
	}
	if got := vars["gated"]; got != "variables.queue in ['batch']" {
		t.Errorf("gated = %s", got)
	}
	if !strings.Contains(vars["queue"], ": 'general'") {
		t.Errorf("unknown queues must fall back to the default queue: %s", vars["queue"])
	}
	if got := policy.Spec.MatchConditions[0].Expression; got != "object.spec.schedulerName == 'switchyard'" {
		t.Errorf("match condition = %s", got)
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
