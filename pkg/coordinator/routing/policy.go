// Package routing routes pods inside the API server. One static
// MutatingAdmissionPolicy reads a routing table (a ConfigMap the coordinator
// keeps in step with the Queues) as its parameter: a pod created with
// schedulerName "switchyard" gets, at creation (the only moment
// spec.schedulerName may change), the profile of the queue its
// switchyard.io/queue label names, an annotation recording that queue, and
// the admission gate when the queue has limits. A missing label or one
// naming no Queue goes to the default queue.
//
// The Queues live in the table, not in the policy's CEL: a CEL program is
// capped at 100,000 code points, which embedded Queues outgrow at a few
// thousand, and a table edit needs no recompilation of the policy in the
// API server. The RoutingTable's routes are one atomic field, so the API
// server's field tracking adds one entry, not one per Queue; it holds what
// etcd takes in one request, about 15,000 Queues with 63-character names.
package routing

import (
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	syac "github.com/switchyard-sched/switchyard/pkg/generated/applyconfiguration/switchyard/v1alpha1"
)

// GatedPrefix marks, in a route, a queue whose pods get the admission gate.
// Profile names are DNS names, so it cannot clash with one.
const GatedPrefix = "+"

// MaxTableBytes bounds the routes' encoded size: etcd refuses requests over
// 1.5 MiB (its default --max-request-bytes), and the object's metadata
// needs some of that.
const MaxTableBytes = 1_400_000

// Route is where pods of one queue go.
type Route struct {
	Queue   string
	Profile string
	Gated   bool
}

// value is the route's entry in the table.
func (r Route) value() string {
	if r.Gated {
		return GatedPrefix + r.Profile
	}
	return r.Profile
}

// RouteOf is the route of one Queue.
func RouteOf(q *v1alpha1.Queue) Route {
	return Route{Queue: q.Name, Profile: q.Spec.SchedulerName(), Gated: q.Spec.HasLimits()}
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
		routes = append(routes, RouteOf(q))
		if q.Spec.Default {
			defaults = append(defaults, q)
		}
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].Queue < routes[j].Queue })
	if len(defaults) > 0 {
		// Two defaults are refused by the shipped ValidatingAdmissionPolicy
		// and reported on both Queues; until fixed, the oldest one wins.
		sort.Slice(defaults, func(i, j int) bool { return olderThan(defaults[i], defaults[j]) })
		defaultRoute = RouteOf(defaults[0])
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

// Contents is what the routing table holds for a set of Queues.
type Contents struct {
	// Routes maps each Queue to its route's value (see RoutingTable.Routes).
	Routes map[string]string
	// DefaultQueue is the Queue of unlabelled pods, or "".
	DefaultQueue string
	// NamespaceSelectors are the selectors of the Queues that restrict who
	// may use them.
	NamespaceSelectors map[string]metav1.LabelSelector
	// ServedProfiles maps the scheduler names routing gives, except the
	// open ones, to the first Queue (by name) routed there.
	ServedProfiles map[string]string
}

// Table is the routing table for the given Queues. Pods may be created
// naming one of the open profiles directly even when a Queue routes there.
func Table(queues []*v1alpha1.Queue, open sets.Set[string]) Contents {
	list, def := Routes(queues)
	c := Contents{Routes: make(map[string]string, len(list)), DefaultQueue: def.Queue, ServedProfiles: map[string]string{}}
	for _, r := range list {
		c.Routes[r.Queue] = r.value()
		if _, seen := c.ServedProfiles[r.Profile]; !seen && !open.Has(r.Profile) {
			c.ServedProfiles[r.Profile] = r.Queue
		}
	}
	for _, q := range queues {
		if sel := q.Spec.NamespaceSelector; q.DeletionTimestamp == nil && sel != nil && (len(sel.MatchLabels) > 0 || len(sel.MatchExpressions) > 0) {
			if c.NamespaceSelectors == nil {
				c.NamespaceSelectors = map[string]metav1.LabelSelector{}
			}
			c.NamespaceSelectors[q.Name] = *sel
		}
	}
	return c
}

// Bytes is about what the contents take as JSON.
func (c Contents) Bytes() int {
	n := TableBytes(c.Routes) + TableBytes(c.ServedProfiles)
	if len(c.NamespaceSelectors) > 0 {
		data, _ := json.Marshal(c.NamespaceSelectors)
		n += len(data)
	}
	return n
}

// Matches reports whether the live table holds these contents.
func (c Contents) Matches(live *v1alpha1.RoutingTable) bool {
	return live != nil && maps.Equal(live.Routes, c.Routes) && live.DefaultQueue == c.DefaultQueue &&
		maps.Equal(live.ServedProfiles, c.ServedProfiles) &&
		len(live.NamespaceSelectors) == len(c.NamespaceSelectors) &&
		(len(c.NamespaceSelectors) == 0 || apiequality.Semantic.DeepEqual(live.NamespaceSelectors, c.NamespaceSelectors))
}

// ApplyConfiguration is the apply configuration of the routing table.
func (c Contents) ApplyConfiguration() *syac.RoutingTableApplyConfiguration {
	t := syac.RoutingTable(v1alpha1.RoutingPolicyName).WithLabels(objectLabels()).
		WithRoutes(c.Routes).WithDefaultQueue(c.DefaultQueue).WithServedProfiles(c.ServedProfiles)
	if len(c.NamespaceSelectors) > 0 {
		selectors := make(map[string]metav1ac.LabelSelectorApplyConfiguration, len(c.NamespaceSelectors))
		for queue, sel := range c.NamespaceSelectors {
			selectors[queue] = *selectorApplyConfiguration(sel)
		}
		t.WithNamespaceSelectors(selectors)
	}
	return t
}

func selectorApplyConfiguration(sel metav1.LabelSelector) *metav1ac.LabelSelectorApplyConfiguration {
	ac := metav1ac.LabelSelector()
	if len(sel.MatchLabels) > 0 {
		ac.WithMatchLabels(sel.MatchLabels)
	}
	for _, e := range sel.MatchExpressions {
		ac.WithMatchExpressions(metav1ac.LabelSelectorRequirement().WithKey(e.Key).WithOperator(e.Operator).WithValues(e.Values...))
	}
	return ac
}

// TableBytes is about what a map of names takes as JSON.
func TableBytes(routes map[string]string) int {
	n := 0
	for k, v := range routes {
		n += len(k) + len(v) + 6 // quotes, colon, comma
	}
	return n
}

// Routed reports whether routes send q's pods where q says: its entry is
// there with q's current profile and gating.
func Routed(routes map[string]string, q *v1alpha1.Queue) bool {
	v, ok := routes[q.Name]
	return ok && v == RouteOf(q).value()
}

func objectLabels() map[string]string {
	return map[string]string{v1alpha1.ManagedByLabel: v1alpha1.CoordinatorName, "app.kubernetes.io/part-of": "switchyard"}
}

// The policy's CEL, over the routing table as params.
const (
	exprRequested = `has(object.metadata.labels) && %[1]s in object.metadata.labels ? object.metadata.labels[%[1]s] : ''`
	exprTable     = `has(params.routes) ? params.routes : {}`
	exprQueue     = `variables.requested != '' && variables.requested in variables.table ? variables.requested : (has(params.defaultQueue) ? params.defaultQueue : '')`
	exprRoute     = `variables.queue != '' && variables.queue in variables.table ? variables.table[variables.queue] : ''`
	exprGated     = `variables.route.startsWith(%[1]s)`
	exprProfile   = `variables.route == '' ? %[1]s : (variables.gated ? variables.route.substring(%[2]d) : variables.route)`
	// One JSON patch: set the profile, record the queue, add the gate. (An
	// ApplyConfiguration mutation costs the API server a structured merge.)
	exprPatch = `[JSONPatch{op: "replace", path: "/spec/schedulerName", value: variables.profile}] + ` +
		`(has(object.metadata.annotations) ? [JSONPatch{op: "add", path: %[1]s, value: variables.queue}] : [JSONPatch{op: "add", path: "/metadata/annotations", value: {%[2]s: variables.queue}}]) + ` +
		`(!variables.gated ? [] : has(object.spec.schedulingGates) ? [JSONPatch{op: "add", path: "/spec/schedulingGates/-", value: Object.spec.schedulingGates{name: %[3]s}}] : [JSONPatch{op: "add", path: "/spec/schedulingGates", value: [Object.spec.schedulingGates{name: %[3]s}]}])`
)

// routeVariables compute, from the routing table (params) and the pod's
// label, where routing sends the pod: variables.queue, variables.profile and
// variables.gated. The routing policy sets them; the routing guard checks
// that a pod carries them, with the same expressions.
func routeVariables() []*admissionregistrationv1ac.VariableApplyConfiguration {
	return []*admissionregistrationv1ac.VariableApplyConfiguration{
		admissionregistrationv1ac.Variable().WithName("requested").WithExpression(fmt.Sprintf(exprRequested, celString(v1alpha1.QueueLabel))),
		admissionregistrationv1ac.Variable().WithName("table").WithExpression(exprTable),
		admissionregistrationv1ac.Variable().WithName("queue").WithExpression(exprQueue),
		admissionregistrationv1ac.Variable().WithName("route").WithExpression(exprRoute),
		admissionregistrationv1ac.Variable().WithName("gated").WithExpression(fmt.Sprintf(exprGated, celString(GatedPrefix))),
		admissionregistrationv1ac.Variable().WithName("profile").WithExpression(fmt.Sprintf(exprProfile, celString(v1alpha1.RouterSchedulerName), len(GatedPrefix))),
	}
}

// tableParamKind is the routing table as a policy's parameter kind.
func tableParamKind() *admissionregistrationv1ac.ParamKindApplyConfiguration {
	return admissionregistrationv1ac.ParamKind().WithAPIVersion(v1alpha1.SchemeGroupVersion.String()).WithKind("RoutingTable")
}

// podRules matches the operations on the pod resources (pods, pods/status).
func podRules(ops []admissionregistrationv1.OperationType, resources ...string) *admissionregistrationv1ac.MatchResourcesApplyConfiguration {
	return admissionregistrationv1ac.MatchResources().WithResourceRules(
		admissionregistrationv1ac.NamedRuleWithOperations().WithOperations(ops...).
			WithAPIGroups("").WithAPIVersions("v1").WithResources(resources...))
}

// Policy is the apply configuration of the routing policy. It does not
// depend on the Queues: they are in the table.
func Policy() *admissionregistrationv1ac.MutatingAdmissionPolicyApplyConfiguration {
	annotationPath := AnnotationPath(v1alpha1.RoutedQueueAnnotation)
	return admissionregistrationv1ac.MutatingAdmissionPolicy(v1alpha1.RoutingPolicyName).
		WithLabels(objectLabels()).
		WithSpec(admissionregistrationv1ac.MutatingAdmissionPolicySpec().
			WithParamKind(tableParamKind()).
			WithMatchConstraints(podRules([]admissionregistrationv1.OperationType{admissionregistrationv1.Create}, "pods")).
			WithMatchConditions(admissionregistrationv1ac.MatchCondition().
				WithName("scheduler-name-is-switchyard").
				WithExpression(fmt.Sprintf("object.spec.schedulerName == %s", celString(v1alpha1.RouterSchedulerName)))).
			WithVariables(routeVariables()...).
			WithMutations(admissionregistrationv1ac.Mutation().
				WithPatchType(admissionregistrationv1.PatchTypeJSONPatch).
				WithJSONPatch(admissionregistrationv1ac.JSONPatch().WithExpression(
					fmt.Sprintf(exprPatch, celString(annotationPath), celString(v1alpha1.RoutedQueueAnnotation), celString(v1alpha1.AdmissionGate))))).
			WithFailurePolicy(admissionregistrationv1.Fail).
			WithReinvocationPolicy(admissionregistrationv1.NeverReinvocationPolicy))
}

// Binding is the apply configuration of the policy's binding. A missing
// table refuses routed pods (fail closed, as the policy's failurePolicy)
// rather than letting them skip their queue's limits; the coordinator
// writes the table before the binding and restores it when deleted.
func Binding() *admissionregistrationv1ac.MutatingAdmissionPolicyBindingApplyConfiguration {
	return admissionregistrationv1ac.MutatingAdmissionPolicyBinding(v1alpha1.RoutingPolicyName).
		WithLabels(objectLabels()).
		WithSpec(admissionregistrationv1ac.MutatingAdmissionPolicyBindingSpec().
			WithPolicyName(v1alpha1.RoutingPolicyName).
			WithParamRef(admissionregistrationv1ac.ParamRef().
				WithName(v1alpha1.RoutingPolicyName).
				WithParameterNotFoundAction(admissionregistrationv1.DenyAction)))
}

// AnnotationPath is the JSON pointer (RFC 6901) of an annotation key, for
// the JSON patches that routing and admission send.
func AnnotationPath(key string) string {
	return "/metadata/annotations/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
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

// routesOf returns a table's routes, or nil.
func routesOf(t *v1alpha1.RoutingTable) map[string]string {
	if t == nil {
		return nil
	}
	return t.Routes
}
