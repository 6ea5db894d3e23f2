package v1alpha1

import corev1 "k8s.io/api/core/v1"

// The well-known names that pods, nodes and Queues carry. Every component
// and test reads them from here, so that no package imports another only for
// a constant and a rename happens in one place.

// Scheduler names a pod may carry in spec.schedulerName.
const (
	// RouterSchedulerName is what pods put in spec.schedulerName to be routed
	// by their queue label. It is also the default queue's profile, so that a
	// pod created before any routing policy existed is still scheduled.
	RouterSchedulerName = "switchyard"
	// ExternalSchedulerName is the spec.schedulerName of pods of external
	// queues: no in-cluster profile serves it, so only the external
	// scheduler that consumes the queue's messages binds them.
	ExternalSchedulerName = "switchyard-external"
)

// Queue routing and admission.
const (
	// QueueLabel is the pod label that names the pod's Queue.
	QueueLabel = "switchyard.io/queue"
	// AdmissionGate is the scheduling gate that holds a pod of a queue with
	// admission limits until the coordinator admits it.
	AdmissionGate = "switchyard.io/admission"
	// RoutedQueueAnnotation records the queue a pod was routed to, which
	// differs from its label when the label named no Queue.
	RoutedQueueAnnotation = "switchyard.io/routed-queue"
	// AdmittedAnnotation is the coordinator's record of a pod's admission
	// (AdmissionRecord as JSON). It travels in the same patch that removes
	// the admission gate, so admitting a pod is one API write.
	AdmittedAnnotation = "switchyard.io/admitted"
)

// Calculation sets (the CalcSet scheduler plugin).
const (
	// CalcSetLabel names the set; members share it within one namespace.
	CalcSetLabel = "switchyard.io/calcset"
	// CalcSetSizeLabel is the number of members the set needs, all or nothing.
	CalcSetSizeLabel = "switchyard.io/calcset-size"
	// CalcSetLocalityLabel is node, zone or none: how close members must be.
	CalcSetLocalityLabel = "switchyard.io/calcset-locality"
	// CalcSetWindowLabel is how long reserved members wait for the rest, e.g. "90s".
	CalcSetWindowLabel = "switchyard.io/calcset-window"
	// CalcSetAfterLabel names the set of the same namespace that this set
	// follows in a pipeline: its members are placed in the domain where
	// that set runs or ran (its data is there), when they fit.
	CalcSetAfterLabel = "switchyard.io/calcset-after"
	// CalcSetAfterModeLabel says what a following set does when it does not
	// fit where its predecessor ran: "preferred" (the default) waits for its
	// window, then is placed elsewhere with an Event; "required" waits.
	CalcSetAfterModeLabel = "switchyard.io/calcset-after-mode"
	// ZoneLabel is the node label that defines a zone for zone locality.
	ZoneLabel = corev1.LabelTopologyZone
)

// Vertical scaling by the node agent.
const (
	// AutoscaleLabel: pods labelled switchyard.io/autoscale=true are managed.
	AutoscaleLabel = "switchyard.io/autoscale"
	// Per-pod bounds, as quantities, e.g. switchyard.io/max-cpu: "2".
	MinCPUAnnotation    = "switchyard.io/min-cpu"
	MaxCPUAnnotation    = "switchyard.io/max-cpu"
	MinMemoryAnnotation = "switchyard.io/min-memory"
	MaxMemoryAnnotation = "switchyard.io/max-memory"
	// MeasuredUsageAnnotation on a Node holds the agent's usage report.
	MeasuredUsageAnnotation = "switchyard.io/measured-usage"
)

// ConfiguratorServiceLabel marks the ConfigMaps that hold a service's
// configuration, naming the service.
const ConfiguratorServiceLabel = "switchyard.io/configurator-service"

// What switchyard-configurator authorizes, through SubjectAccessReview: a
// verb on the resource configurations.switchyard.io, named by the service.
// No API server serves this resource; RBAC rules name it like any other, so
// an operator grants "update configurations/web" as they would a built-in.
const (
	// ConfiguratorAudience is the audience of the tokens the configurator
	// accepts (projected service account tokens requested for it), so a
	// token meant for the API server, or stolen from another service, is
	// refused.
	ConfiguratorAudience = "switchyard-configurator"
	// ConfigurationsResource is the resource of every check.
	ConfigurationsResource = "configurations"
	// ConfigurationsGroup is its API group.
	ConfigurationsGroup = "switchyard.io"
	// RegisterVerb lets a pod register as a replica of the named service
	// (and so receive its configuration and pushes).
	RegisterVerb = "register"
)

// Objects the coordinator owns.
const (
	// ManagedByLabel marks the objects the coordinator owns.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// CoordinatorName is the value of ManagedByLabel, the field manager of
	// the coordinator's writes and the source of its Events.
	CoordinatorName = "switchyard-coordinator"
	// RoutingPolicyName names the MutatingAdmissionPolicy, its binding and
	// the routing table ConfigMap.
	RoutingPolicyName = "switchyard-routing"
	// RoutingGuardPolicyName names the ValidatingAdmissionPolicy (and its
	// binding) that refuses, at pod creation, a pod that carries other than
	// what routing gives it, or whose namespace may not use its queue.
	RoutingGuardPolicyName = "switchyard-routing-guard"
	// AdmissionGuardPolicyName names the ValidatingAdmissionPolicy (and its
	// binding) that lets only an identity allowed to admit a queue's pods
	// remove their admission gate, and keeps the routed queue immutable.
	AdmissionGuardPolicyName = "switchyard-admission-guard"
)

// What admitting a pod takes, checked by the admission guard through the
// API server's authorizer: the verb admit on the resource queues (API group
// switchyard.io), named by the pod's queue. The coordinator's ClusterRole
// grants it; an operator grants it as any other RBAC verb, e.g. to admit
// one queue's pods by hand.
const (
	// AdmitVerb lets its holder remove the admission gate from pods of the
	// named queue, and write their admission record.
	AdmitVerb = "admit"
	// QueuesResource is the resource of the check.
	QueuesResource = "queues"
)

// Condition types of a Queue.
const (
	// QueueReady: pods are routed to the queue's scheduler and admitted.
	QueueReady = "Ready"
	// QueueProfileMissing: no scheduler profile of that name is configured
	// (or, for an external queue, no broker).
	QueueProfileMissing = "ProfileMissing"
	// QueueDuplicateDefault: another Queue is also the default.
	QueueDuplicateDefault = "DuplicateDefault"
	// QueueRouted: the API server's routing table holds this queue, so new
	// pods that name it reach its scheduler.
	QueueRouted = "Routed"
	// QueueStrandedPods: some gated pods carry a schedulerName the queue no
	// longer serves (its profile or external scheduler was changed after
	// they were created); they are not admitted.
	QueueStrandedPods = "StrandedPods"
	// QueueCalcSetsCannotFit: some waiting calculation sets are larger than
	// the queue's limits allow at once (maxAdmitted, the cluster-wide cap or
	// quota); they are never admitted until the set or the Queue changes.
	QueueCalcSetsCannotFit = "CalcSetsCannotFit"
	// QueueBrokerUnavailable: an external queue's broker is configured but
	// not reachable; its pods wait, gated, until it is.
	QueueBrokerUnavailable = "BrokerUnavailable"
)
