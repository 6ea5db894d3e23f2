// Package routing compiles Queues into the MutatingAdmissionPolicy that
// routes pods inside the API server. A pod created with schedulerName
// "switchyard" gets, at creation (the only moment spec.schedulerName may
// change), the profile of the queue its switchyard.io/queue label names, an
// annotation recording that queue, and the admission gate when the queue has
// limits. A missing label or one naming no Queue goes to the default queue.
package routing

import (
	"fmt"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

const (
	// PolicyName names the MutatingAdmissionPolicy and its binding.
	PolicyName = "switchyard-routing"
	// RoutedQueueAnnotation records the queue a pod was routed to, which
	// differs from its label when the label named no Queue.
	RoutedQueueAnnotation = "switchyard.io/routed-queue"
	// ManagedByLabel marks the objects the coordinator owns.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagerName is the value of ManagedByLabel and the field manager.
	ManagerName = "switchyard-coordinator"
)

// Route is where pods of one queue go.
type Route struct {
	Queue   string
	Profile string
	Gated   bool
}

// Routes turns Queues into routes, in name order, plus the default route.
// Without a default Queue, unlabelled pods keep schedulerName "switchyard",
// which is a profile of its own, so they are still scheduled.
func Routes(queues []*v1alpha1.Queue) (routes []Route, defaultRoute Route) {
	defaultRoute = Route{Profile: v1alpha1.RouterSchedulerName}
	var defaults []*v1alpha1.Queue
	for _, q := range queues {
		if q.DeletionTimestamp != nil {
			continue
		}
		routes = append(routes, Route{Queue: q.Name, Profile: q.Spec.SchedulerName(), Gated: q.Spec.HasLimits()})
		if q.Spec.Default {
			defaults = append(defaults, q)
		}
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].Queue < routes[j].Queue })
	if len(defaults) > 0 {
		// Two defaults are refused by the shipped ValidatingAdmissionPolicy
		// and reported on both Queues; until fixed, the oldest one wins.
		sort.Slice(defaults, func(i, j int) bool { return olderThan(defaults[i], defaults[j]) })
		d := defaults[0]
		defaultRoute = Route{Queue: d.Name, Profile: d.Spec.SchedulerName(), Gated: d.Spec.HasLimits()}
	}
	return routes, defaultRoute
}

// DefaultQueue returns the Queue that unlabelled pods go to, if any.
func DefaultQueue(queues []*v1alpha1.Queue) string {
	_, d := Routes(queues)
	return d.Queue
}

func olderThan(a, b *v1alpha1.Queue) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// Compile builds the routing policy and its binding for the given Queues.
func Compile(queues []*v1alpha1.Queue) (*admissionregistrationv1.MutatingAdmissionPolicy, *admissionregistrationv1.MutatingAdmissionPolicyBinding) {
	routes, def := Routes(queues)
	profiles := make([]string, 0, len(routes))
	var gated []string
	for _, r := range routes {
		profiles = append(profiles, fmt.Sprintf("%s: %s", celString(r.Queue), celString(r.Profile)))
		if r.Gated {
			gated = append(gated, celString(r.Queue))
		}
	}
	labels := map[string]string{ManagedByLabel: ManagerName, "app.kubernetes.io/part-of": "switchyard"}
	failClosed := admissionregistrationv1.Fail
	never := admissionregistrationv1.NeverReinvocationPolicy
	label := celString(v1alpha1.QueueLabel)
	policy := &admissionregistrationv1.MutatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: PolicyName, Labels: labels},
		Spec: admissionregistrationv1.MutatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule: admissionregistrationv1.Rule{
							APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
						},
					},
				}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "scheduler-name-is-switchyard",
				Expression: fmt.Sprintf("object.spec.schedulerName == %s", celString(v1alpha1.RouterSchedulerName)),
			}},
			Variables: []admissionregistrationv1.Variable{
				{Name: "profiles", Expression: "{" + strings.Join(profiles, ", ") + "}"},
				{Name: "requested", Expression: fmt.Sprintf("has(object.metadata.labels) && %s in object.metadata.labels ? object.metadata.labels[%s] : ''", label, label)},
				{Name: "queue", Expression: fmt.Sprintf("variables.requested in variables.profiles ? variables.requested : %s", celString(def.Queue))},
				{Name: "profile", Expression: fmt.Sprintf("variables.queue in variables.profiles ? variables.profiles[variables.queue] : %s", celString(def.Profile))},
				{Name: "gated", Expression: "variables.queue in [" + strings.Join(gated, ", ") + "]"},
			},
			Mutations: []admissionregistrationv1.Mutation{
				{
					PatchType: admissionregistrationv1.PatchTypeApplyConfiguration,
					ApplyConfiguration: &admissionregistrationv1.ApplyConfiguration{
						Expression: fmt.Sprintf("Object{metadata: Object.metadata{annotations: {%s: variables.queue}}, spec: Object.spec{schedulerName: variables.profile}}", celString(RoutedQueueAnnotation)),
					},
				},
				{
					PatchType: admissionregistrationv1.PatchTypeJSONPatch,
					JSONPatch: &admissionregistrationv1.JSONPatch{
						Expression: fmt.Sprintf(`!variables.gated ? [] : has(object.spec.schedulingGates) ? [JSONPatch{op: "add", path: "/spec/schedulingGates/-", value: Object.spec.schedulingGates{name: %[1]s}}] : [JSONPatch{op: "add", path: "/spec/schedulingGates", value: [Object.spec.schedulingGates{name: %[1]s}]}]`, celString(v1alpha1.AdmissionGate)),
					},
				},
			},
			FailurePolicy:      &failClosed,
			ReinvocationPolicy: never,
		},
	}
	binding := &admissionregistrationv1.MutatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: PolicyName, Labels: labels},
		Spec:       admissionregistrationv1.MutatingAdmissionPolicyBindingSpec{PolicyName: PolicyName},
	}
	return policy, binding
}

// celString quotes s as a CEL string literal. Queue names and profiles are
// validated DNS names, but quoting keeps any input from changing the program.
func celString(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\\', '\'':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}
