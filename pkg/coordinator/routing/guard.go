package routing

import (
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// The guards are two ValidatingAdmissionPolicies that make a queue's limits
// hold for every pod, not only for pods that follow the rules:
//
//   - the routing guard, at pod creation, refuses a pod that carries other
//     than routing would give it (a queue's profile without an annotation
//     naming a Queue routed there, an annotated Queue's pod with another
//     scheduler name or without its gate) and a pod whose namespace may not
//     use its queue;
//   - the admission guard, at pod update, lets only an identity allowed to
//     admit the pod's queue (the verb admit on queues/<queue>) remove the
//     admission gate or write the admission record, and keeps the routed
//     queue as routing wrote it.
//
// A pod that carries exactly what routing would give it is accepted: it is
// indistinguishable from a routed pod, and its queue's limits apply to it.

// celAnnotation is the CEL of the optional value of annotation key of obj
// ("object" or "oldObject").
func celAnnotation(obj, key string) string {
	return fmt.Sprintf("%s.metadata.?annotations[?%s]", obj, celString(key))
}

// celHasGate is the CEL of "obj carries the admission gate".
func celHasGate(obj string) string {
	return fmt.Sprintf("has(%[1]s.spec.schedulingGates) && %[1]s.spec.schedulingGates.exists(g, g.name == %[2]s)", obj, celString(v1alpha1.AdmissionGate))
}

// celSelectorMatches is the CEL of "the LabelSelector sel selects labels",
// with the semantics of metav1.LabelSelectorAsSelector: every matchLabels
// pair and every expression must hold; NotIn and DoesNotExist hold for an
// absent key.
func celSelectorMatches(sel, labels string) string {
	return fmt.Sprintf(`(!has(%[1]s.matchLabels) || %[1]s.matchLabels.all(k, k in %[2]s && %[2]s[k] == %[1]s.matchLabels[k])) && `+
		`(!has(%[1]s.matchExpressions) || %[1]s.matchExpressions.all(e, `+
		`e.operator == 'In' ? e.key in %[2]s && has(e.values) && %[2]s[e.key] in e.values : `+
		`e.operator == 'NotIn' ? !(e.key in %[2]s) || !has(e.values) || !(%[2]s[e.key] in e.values) : `+
		`e.operator == 'Exists' ? e.key in %[2]s : `+
		`e.operator == 'DoesNotExist' ? !(e.key in %[2]s) : false))`, sel, labels)
}

// RoutingGuard is the apply configuration of the routing guard policy.
//
// It checks a pod against the route of the queue its annotation names, not
// against the route its label would get now: the routing policy and this
// one each read the routing table from their own cache, which may be one
// update apart while a Queue changes, and a pod routed by the one must not
// be refused by the other. What it holds to: a queue-served scheduler name
// only with an annotation naming a Queue routed there (with the gate if
// that Queue has limits, from a namespace it selects); an annotation naming
// no Queue only without a queue-served scheduler name. A pod that names a
// Queue in its annotation by hand is in that Queue, under its limits, as if
// labelled for it.
func RoutingGuard() *admissionregistrationv1ac.ValidatingAdmissionPolicyApplyConfiguration {
	variables := []*admissionregistrationv1ac.VariableApplyConfiguration{
		admissionregistrationv1ac.Variable().WithName("requested").WithExpression(fmt.Sprintf(exprRequested, celString(v1alpha1.QueueLabel))),
		admissionregistrationv1ac.Variable().WithName("table").WithExpression(exprTable),
		admissionregistrationv1ac.Variable().WithName("marked").WithExpression(celAnnotation("object", v1alpha1.RoutedQueueAnnotation) + ".hasValue()"),
		// The queue is the annotation's: the route, gating and profile
		// below are routing's expressions over it.
		admissionregistrationv1ac.Variable().WithName("queue").WithExpression(celAnnotation("object", v1alpha1.RoutedQueueAnnotation) + ".orValue('')"),
		admissionregistrationv1ac.Variable().WithName("route").WithExpression(exprRoute),
		admissionregistrationv1ac.Variable().WithName("gated").WithExpression(fmt.Sprintf(exprGated, celString(GatedPrefix))),
		admissionregistrationv1ac.Variable().WithName("profile").WithExpression(fmt.Sprintf(exprProfile, celString(v1alpha1.RouterSchedulerName), len(GatedPrefix))),
		admissionregistrationv1ac.Variable().WithName("known").WithExpression(`variables.queue != '' && variables.queue in variables.table`),
		admissionregistrationv1ac.Variable().WithName("served").WithExpression(`has(params.servedProfiles) && object.spec.schedulerName in params.servedProfiles`),
		admissionregistrationv1ac.Variable().WithName("restricted").WithExpression(`variables.queue != '' && has(params.namespaceSelectors) && variables.queue in params.namespaceSelectors`),
		admissionregistrationv1ac.Variable().WithName("namespaceLabels").WithExpression(`has(namespaceObject.metadata.labels) ? namespaceObject.metadata.labels : {}`),
		admissionregistrationv1ac.Variable().WithName("namespaceAllowed").WithExpression(
			`!variables.restricted || ` + celSelectorMatches("params.namespaceSelectors[variables.queue]", "variables.namespaceLabels")),
	}
	return admissionregistrationv1ac.ValidatingAdmissionPolicy(v1alpha1.RoutingGuardPolicyName).
		WithLabels(objectLabels()).
		WithSpec(admissionregistrationv1ac.ValidatingAdmissionPolicySpec().
			WithParamKind(tableParamKind()).
			WithMatchConstraints(podRules([]admissionregistrationv1.OperationType{admissionregistrationv1.Create}, "pods")).
			// Most pods of a cluster name the default scheduler and carry
			// no routed queue: they are not evaluated.
			WithMatchConditions(admissionregistrationv1ac.MatchCondition().
				WithName("may-reach-a-queue").
				WithExpression(fmt.Sprintf("object.spec.schedulerName != 'default-scheduler' || %s.hasValue()", celAnnotation("object", v1alpha1.RoutedQueueAnnotation)))).
			WithVariables(variables...).
			WithValidations(
				forbidden(`variables.marked || !variables.served`,
					fmt.Sprintf(`'schedulerName ' + object.spec.schedulerName + ' is the scheduler of Queue ' + params.servedProfiles[object.spec.schedulerName] + `+
						`', whose pods come through routing so that its limits apply: create the pod with schedulerName %[1]s and the label %[2]s=' + params.servedProfiles[object.spec.schedulerName]`,
						v1alpha1.RouterSchedulerName, v1alpha1.QueueLabel)),
				forbidden(`!variables.marked || variables.known || !variables.served`,
					fmt.Sprintf(`'the annotation %[1]s is written by routing alone, and here it names no Queue routed to schedulerName ' + object.spec.schedulerName + `+
						`': remove it, set schedulerName %[2]s and the label %[3]s=' + params.servedProfiles[object.spec.schedulerName]`,
						v1alpha1.RoutedQueueAnnotation, v1alpha1.RouterSchedulerName, v1alpha1.QueueLabel)),
				forbidden(`!variables.known || object.spec.schedulerName == variables.profile`,
					fmt.Sprintf(`'pods of Queue ' + variables.queue + ' get schedulerName ' + variables.profile + ' from routing, not ' + object.spec.schedulerName + `+
						`': create the pod with schedulerName %[1]s and the label %[2]s=' + variables.queue + ', without the annotation %[3]s'`,
						v1alpha1.RouterSchedulerName, v1alpha1.QueueLabel, v1alpha1.RoutedQueueAnnotation)),
				forbidden(`!variables.known || !variables.gated || (`+celHasGate("object")+`)`,
					fmt.Sprintf(`'pods of Queue ' + variables.queue + ' wait for admission under its limits: they carry the scheduling gate %[1]s, which routing adds to pods created with schedulerName %[2]s'`,
						v1alpha1.AdmissionGate, v1alpha1.RouterSchedulerName)),
				forbidden(`!variables.marked || variables.namespaceAllowed`,
					fmt.Sprintf(`'namespace ' + namespaceObject.metadata.name + ' may not use Queue ' + variables.queue + `+
						`(variables.requested == variables.queue ? '' : ' (the default queue: the pod names no existing Queue)') + `+
						`': the Queue\'s spec.namespaceSelector does not select this namespace. Label the pod %[1]s=<a queue open to this namespace>, `+
						`or ask the Queue\'s owner to select it (kubectl get queue ' + variables.queue + ' -o jsonpath={.spec.namespaceSelector})'`,
						v1alpha1.QueueLabel)),
			).
			WithFailurePolicy(admissionregistrationv1.Fail))
}

// forbidden is a validation refused with 403 Forbidden, as the API server
// refuses a pod over its namespace's ResourceQuota, so that controllers
// report it (FailedCreate) and clients do not retry it as a conflict.
func forbidden(expression, message string) *admissionregistrationv1ac.ValidationApplyConfiguration {
	return admissionregistrationv1ac.Validation().WithExpression(expression).WithMessageExpression(message).WithReason(metav1.StatusReasonForbidden)
}

// RoutingGuardBinding binds the routing guard to the routing table. Without
// the table (the coordinator writes it before this binding, and puts it back
// at once when deleted, which takes the rights of a cluster administrator)
// the guard allows: refusing would stop every pod of every other scheduler.
func RoutingGuardBinding() *admissionregistrationv1ac.ValidatingAdmissionPolicyBindingApplyConfiguration {
	return admissionregistrationv1ac.ValidatingAdmissionPolicyBinding(v1alpha1.RoutingGuardPolicyName).
		WithLabels(objectLabels()).
		WithSpec(admissionregistrationv1ac.ValidatingAdmissionPolicyBindingSpec().
			WithPolicyName(v1alpha1.RoutingGuardPolicyName).
			WithValidationActions(admissionregistrationv1.Deny).
			WithParamRef(admissionregistrationv1ac.ParamRef().
				WithName(v1alpha1.RoutingPolicyName).
				WithParameterNotFoundAction(admissionregistrationv1.AllowAction)))
}

// AdmissionGuard is the apply configuration of the admission guard policy.
// It matches pods/status too: that subresource may change annotations.
func AdmissionGuard() *admissionregistrationv1ac.ValidatingAdmissionPolicyApplyConfiguration {
	oldRouted, newRouted := celAnnotation("oldObject", v1alpha1.RoutedQueueAnnotation), celAnnotation("object", v1alpha1.RoutedQueueAnnotation)
	admit := fmt.Sprintf("authorizer.group(%s).resource(%s).name(variables.queue).check(%s).allowed()",
		celString(v1alpha1.GroupName), celString(v1alpha1.QueuesResource), celString(v1alpha1.AdmitVerb))
	return admissionregistrationv1ac.ValidatingAdmissionPolicy(v1alpha1.AdmissionGuardPolicyName).
		WithLabels(objectLabels()).
		WithSpec(admissionregistrationv1ac.ValidatingAdmissionPolicySpec().
			WithMatchConstraints(podRules([]admissionregistrationv1.OperationType{admissionregistrationv1.Update}, "pods", "pods/status")).
			// Only pods that are, or would become, routed are evaluated.
			WithMatchConditions(admissionregistrationv1ac.MatchCondition().
				WithName("routed").
				WithExpression(oldRouted+".hasValue() || "+newRouted+".hasValue()")).
			WithVariables(
				admissionregistrationv1ac.Variable().WithName("queue").WithExpression(oldRouted+".orValue('')"),
				admissionregistrationv1ac.Variable().WithName("gateRemoved").WithExpression("("+celHasGate("oldObject")+") && !("+celHasGate("object")+")"),
				admissionregistrationv1ac.Variable().WithName("recordChanged").WithExpression(
					celAnnotation("oldObject", v1alpha1.AdmittedAnnotation)+" != "+celAnnotation("object", v1alpha1.AdmittedAnnotation)),
			).
			WithValidations(
				forbidden(oldRouted+" == "+newRouted,
					fmt.Sprintf(`'the annotation %s records the queue routing sent the pod to when it was created; it cannot be added, changed or removed'`,
						v1alpha1.RoutedQueueAnnotation)),
				forbidden("variables.queue == '' || !(variables.gateRemoved || variables.recordChanged) || "+admit,
					fmt.Sprintf(`'only the coordinator admits pods of Queue ' + variables.queue + ': removing the scheduling gate %[1]s or writing the annotation %[2]s `+
						`takes the verb %[3]s on %[4]s/' + variables.queue + ' (API group %[5]s), which ' + request.userInfo.username + ' is not granted'`,
						v1alpha1.AdmissionGate, v1alpha1.AdmittedAnnotation, v1alpha1.AdmitVerb, v1alpha1.QueuesResource, v1alpha1.GroupName)),
			).
			WithFailurePolicy(admissionregistrationv1.Fail))
}

// AdmissionGuardBinding binds the admission guard; it has no parameter.
func AdmissionGuardBinding() *admissionregistrationv1ac.ValidatingAdmissionPolicyBindingApplyConfiguration {
	return admissionregistrationv1ac.ValidatingAdmissionPolicyBinding(v1alpha1.AdmissionGuardPolicyName).
		WithLabels(objectLabels()).
		WithSpec(admissionregistrationv1ac.ValidatingAdmissionPolicyBindingSpec().
			WithPolicyName(v1alpha1.AdmissionGuardPolicyName).
			WithValidationActions(admissionregistrationv1.Deny))
}
