package admission

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	syac "github.com/switchyard-sched/switchyard/pkg/generated/applyconfiguration/switchyard/v1alpha1"
)

// syncStatus is the status reconciler: it writes one Queue's status from
// the admission state when it differs from what the Queue shows. Pod
// events ask for it at most once per StatusInterval per queue.
func (c *Controller) syncStatus(ctx context.Context, name string) (time.Duration, error) {
	if ctx.Err() != nil {
		return 0, nil
	}
	q, err := c.queues.Get(name)
	if apierrors.IsNotFound(err) {
		c.forgetStatus(name)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	desired := c.desiredStatus(q)
	c.metrics.Pending.WithLabelValues(name).Set(float64(desired.Pending))
	c.metrics.Admitted.WithLabelValues(name).Set(float64(desired.Admitted))
	c.metrics.Scheduled.WithLabelValues(name).Set(float64(desired.Scheduled))
	c.metrics.Overdue.WithLabelValues(name).Set(float64(desired.Overdue))
	c.metrics.Stranded.WithLabelValues(name).Set(float64(c.strandedCount(name)))
	c.metrics.initQueueCounters(name)
	if statusEqual(q.Status, desired) {
		return 0, nil
	}
	_, err = c.sy.SwitchyardV1alpha1().Queues().ApplyStatus(ctx, syac.Queue(name).WithStatus(statusApplyConfiguration(desired)),
		metav1.ApplyOptions{FieldManager: v1alpha1.CoordinatorName, Force: true})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	return 0, err
}

func (c *Controller) strandedCount(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if q := c.state.queues[name]; q != nil {
		return q.stranded
	}
	return 0
}

func (c *Controller) forgetStatus(name string) {
	c.metrics.Pending.DeleteLabelValues(name)
	c.metrics.Admitted.DeleteLabelValues(name)
	c.metrics.Scheduled.DeleteLabelValues(name)
	c.metrics.Overdue.DeleteLabelValues(name)
	c.metrics.AdmittedTimeouts.DeleteLabelValues(name)
	c.metrics.Stranded.DeleteLabelValues(name)
	c.metrics.Admissions.DeleteLabelValues(name)
	c.metrics.WaitSeconds.DeleteLabelValues(name)
	c.metrics.AdmissionErrors.DeletePartialMatch(prometheus.Labels{"queue": name})
}

// desiredStatus is q's status as the admission state and the routing table
// say it is now.
func (c *Controller) desiredStatus(q *v1alpha1.Queue) v1alpha1.QueueStatus {
	st := v1alpha1.QueueStatus{
		ObservedGeneration: q.Generation,
		Conditions:         append([]metav1.Condition(nil), q.Status.Conditions...),
	}
	stranded := 0
	var unfit []string
	c.mu.Lock()
	if qs := c.state.queues[q.Name]; qs != nil {
		// Sets reported as never fitting, while they still wait and the
		// Queue (perhaps edited since) still cannot take them.
		for key, g := range qs.unfit {
			pending, past, requests := g.standing()
			reason := SetCannotFit(&q.Spec, g.size, requests, pending+past >= g.size, c.opts.MaxAdmittedTotal)
			if pending == 0 || reason == "" {
				delete(qs.unfit, key)
				g.unfitReported = false
				continue
			}
			unfit = append(unfit, fmt.Sprintf("%s/%s (%s)", key.namespace, key.name, reason))
		}
		st.Pending, st.Admitted, st.Scheduled, st.Overdue = int32(len(qs.pending)), int32(qs.admitted), int32(qs.scheduled), int32(qs.overdue)
		st.Used = usedOf(q.Spec.Quota, qs.usage)
		stranded = qs.stranded
		for _, e := range qs.pending {
			if st.OldestPendingSince == nil || e.created.Before(st.OldestPendingSince.Time) {
				st.OldestPendingSince = &metav1.Time{Time: e.created}
			}
		}
	}
	c.mu.Unlock()

	gen := q.Generation
	missing := !c.usable(q)
	if q.Spec.External != nil {
		setCondition(&st, v1alpha1.QueueProfileMissing, !c.opts.ExternalQueues, "BrokerNotConfigured",
			fmt.Sprintf("external queue %q needs a broker: start switchyard-coordinator with --amqp-url; pods are held", q.Spec.External.AMQPQueue),
			"BrokerConfigured", "admitted pods are published to the external scheduler's queue", gen)
		setCondition(&st, v1alpha1.QueueBrokerUnavailable, c.opts.ExternalQueues && !c.brokerUp(), "BrokerUnreachable",
			"RabbitMQ is not reachable; pods wait, gated, and are admitted when it is back", "BrokerReachable", "RabbitMQ is reachable", gen)
	} else {
		setCondition(&st, v1alpha1.QueueProfileMissing, missing, "ProfileMissing", fmt.Sprintf("no scheduler profile named %q is configured; pods are held", q.Spec.Profile), "ProfileFound", "the profile is configured", gen)
	}
	dup := q.Spec.Default && c.otherDefaultExists(q.Name)
	setCondition(&st, v1alpha1.QueueDuplicateDefault, dup, "DuplicateDefault", "more than one Queue has spec.default=true; the oldest one receives unlabelled pods", "SingleDefault", "at most one default Queue", gen)
	routed, routeMsg := true, "routed"
	if c.opts.RouteStatus != nil {
		routed, routeMsg = c.opts.RouteStatus(q)
	}
	setCondition(&st, v1alpha1.QueueRouted, routed, "InRoutingTable", routeMsg, "NotInRoutingTable", routeMsg, gen)
	setCondition(&st, v1alpha1.QueueStrandedPods, stranded > 0, "SchedulerNameChanged",
		fmt.Sprintf("%d pods carry a schedulerName other than %q, which the queue gives its pods now; they are not admitted: delete and recreate them", stranded, q.Spec.SchedulerName()),
		"NoStrandedPods", "every pod carries the queue's schedulerName", gen)
	sort.Strings(unfit)
	unfitMsg := "every waiting calculation set can be admitted whole"
	if len(unfit) > 0 {
		shown := unfit[:min(len(unfit), 3)]
		unfitMsg = fmt.Sprintf("%d calculation sets can never be admitted whole: %s", len(unfit), strings.Join(shown, "; "))
	}
	setCondition(&st, v1alpha1.QueueCalcSetsCannotFit, len(unfit) > 0, "SetLargerThanLimits", unfitMsg, "SetsFit", unfitMsg, gen)
	ready := !missing && !dup && routed
	msg := "pods are routed to the queue's scheduler and admitted within the limits"
	if !ready {
		msg = "see the ProfileMissing, BrokerUnavailable, DuplicateDefault and Routed conditions"
	}
	setCondition(&st, v1alpha1.QueueReady, ready, "Ready", msg, "NotReady", msg, gen)
	return st
}

// usedOf is usage for the resources the quota names (nil without a quota).
func usedOf(quota corev1.ResourceList, usage Resources) corev1.ResourceList {
	if len(quota) == 0 {
		return nil
	}
	used := make(corev1.ResourceList, len(quota))
	for name := range quota {
		used[name] = *quantity(usage[name], name)
	}
	return used
}

// otherDefaultExists is only asked about default Queues, so it lists the
// Queues only for those.
func (c *Controller) otherDefaultExists(name string) bool {
	queues, err := c.queues.List(labels.Everything())
	if err != nil {
		return false
	}
	for _, q := range queues {
		if q.Name != name && q.Spec.Default && q.DeletionTimestamp == nil {
			return true
		}
	}
	return false
}

func setCondition(st *v1alpha1.QueueStatus, condType string, isTrue bool, trueReason, trueMsg, falseReason, falseMsg string, gen int64) {
	cond := metav1.Condition{Type: condType, Status: metav1.ConditionFalse, Reason: falseReason, Message: falseMsg, ObservedGeneration: gen}
	if isTrue {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, trueReason, trueMsg
	}
	meta.SetStatusCondition(&st.Conditions, cond)
}

// statusApplyConfiguration is st as the apply configuration that owns it.
func statusApplyConfiguration(st v1alpha1.QueueStatus) *syac.QueueStatusApplyConfiguration {
	ac := syac.QueueStatus().WithPending(st.Pending).WithAdmitted(st.Admitted).WithScheduled(st.Scheduled).WithObservedGeneration(st.ObservedGeneration)
	if st.OldestPendingSince != nil {
		ac.WithOldestPendingSince(*st.OldestPendingSince)
	}
	if st.Overdue > 0 {
		ac.WithOverdue(st.Overdue)
	}
	if st.Used != nil {
		ac.WithUsed(st.Used)
	}
	for _, cond := range st.Conditions {
		ac.WithConditions(metav1ac.Condition().WithType(cond.Type).WithStatus(cond.Status).WithReason(cond.Reason).
			WithMessage(cond.Message).WithObservedGeneration(cond.ObservedGeneration).WithLastTransitionTime(cond.LastTransitionTime))
	}
	return ac
}

func statusEqual(a, b v1alpha1.QueueStatus) bool {
	if a.Pending != b.Pending || a.Admitted != b.Admitted || a.Scheduled != b.Scheduled || a.Overdue != b.Overdue || a.ObservedGeneration != b.ObservedGeneration {
		return false
	}
	if len(a.Used) != len(b.Used) {
		return false
	}
	for name, q := range b.Used {
		if p, ok := a.Used[name]; !ok || p.Cmp(q) != 0 {
			return false
		}
	}
	if (a.OldestPendingSince == nil) != (b.OldestPendingSince == nil) || (a.OldestPendingSince != nil && !a.OldestPendingSince.Equal(b.OldestPendingSince)) {
		return false
	}
	if len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for _, cb := range b.Conditions {
		ca := meta.FindStatusCondition(a.Conditions, cb.Type)
		if ca == nil || ca.Status != cb.Status || ca.Reason != cb.Reason || ca.Message != cb.Message || ca.ObservedGeneration != cb.ObservedGeneration {
			return false
		}
	}
	return true
}
