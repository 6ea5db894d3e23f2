package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Queue is a line that pods wait in: it names the scheduler profile that
// schedules its pods and the limits under which they are admitted.
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=swq,categories=switchyard
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Profile",type=string,JSONPath=`.spec.profile`
// +kubebuilder:printcolumn:name="External",type=string,JSONPath=`.spec.external.amqpQueue`,priority=1
// +kubebuilder:printcolumn:name="Default",type=boolean,JSONPath=`.spec.default`,priority=1
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.pending`
// +kubebuilder:printcolumn:name="Admitted",type=integer,JSONPath=`.status.admitted`
// +kubebuilder:printcolumn:name="Scheduled",type=integer,JSONPath=`.status.scheduled`,priority=1
// +kubebuilder:printcolumn:name="Overdue",type=integer,JSONPath=`.status.overdue`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="a Queue name is used as a label value, so it must be at most 63 characters"
type Queue struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   QueueSpec   `json:"spec"`
	Status QueueStatus `json:"status,omitempty"`
}

// QueueSpec is what a platform team decides about a queue.
//
// +kubebuilder:validation:XValidation:rule="has(self.profile) != has(self.external)",message="a Queue names either a scheduler profile (spec.profile) or an external scheduler (spec.external), exactly one"
type QueueSpec struct {
	// Profile is the scheduler profile (spec.schedulerName) that schedules
	// this queue's pods, e.g. switchyard-batch. Exactly one of profile and
	// external is set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="profile must be a scheduler name: lower-case letters, digits, '-' and '.'"
	Profile string `json:"profile,omitempty"`
	// External hands the queue's admitted pods to a scheduler outside the
	// cluster's profiles through a durable RabbitMQ queue (the coordinator
	// needs --amqp-url). Its pods get schedulerName switchyard-external.
	// +optional
	External *ExternalScheduler `json:"external,omitempty"`

	// NamespaceSelector chooses the namespaces whose pods may use this
	// queue, by the namespaces' labels. Unset or empty: every namespace.
	// The API server enforces it when a pod is created: a pod from another
	// namespace that names (or, as the default queue, falls to) this queue
	// is refused with a message naming the queue. Keys and values are
	// compared as written: a key that is no label key selects nothing (and
	// its NotIn or DoesNotExist everything).
	// +optional
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="namespaceSelector operators are In, NotIn, Exists and DoesNotExist"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn'] ? has(e.values) && size(e.values) > 0 : !has(e.values) || size(e.values) == 0)",message="namespaceSelector: In and NotIn need values, Exists and DoesNotExist take none"
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// Default makes this the queue of pods that carry no queue label or
	// name a queue that does not exist. At most one Queue may be the default.
	// +optional
	Default bool `json:"default,omitempty"`

	// Priority orders admission between queues: while a higher-priority
	// queue has admissible pods, lower ones wait. Pods within a queue are
	// ordered by their own priority, then by creation time.
	// +optional
	// +kubebuilder:default=0
	Priority int32 `json:"priority,omitempty"`

	// Weight is this queue's share of contended admission among queues of
	// the same priority: two queues with weights 3 and 1 are admitted 3:1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Weight int32 `json:"weight,omitempty"`

	// MaxAdmitted caps the pods admitted but not yet bound to a node. Unset
	// means no cap.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxAdmitted *int32 `json:"maxAdmitted,omitempty"`

	// Quota caps the sum of the requests of admitted pods that have not
	// terminated (bound or not), per resource, e.g. cpu: "64".
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(r, !string(self[r]).startsWith('-'))",message="quota quantities must not be negative"
	Quota corev1.ResourceList `json:"quota,omitempty"`

	// AdmissionRate caps how fast pods are admitted.
	// +optional
	AdmissionRate *AdmissionRate `json:"admissionRate,omitempty"`

	// AdmittedTimeoutSeconds: a pod admitted this long ago and still not
	// bound to a node (no node fits it, say) stops counting against
	// maxAdmitted and the cluster-wide cap, and gets an AdmittedTimeout
	// Warning Event, so that unschedulable pods cannot hold the queue shut.
	// It still counts against quota while it exists, and counts as
	// scheduled once it binds. Unset: admitted pods count until they bind.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=604800
	AdmittedTimeoutSeconds *int32 `json:"admittedTimeoutSeconds,omitempty"`
}

// ExternalScheduler is where an external queue's pods are published.
type ExternalScheduler struct {
	// AMQPQueue is the durable RabbitMQ queue the external scheduler
	// consumes; the coordinator declares it (with <name>.dead and
	// <name>.retry) and publishes one message per admitted pod.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9][-A-Za-z0-9_.:]*$')",message="amqpQueue must start with a letter or digit and hold only letters, digits, '-', '_', '.' and ':'"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('amq.')",message="amqpQueue must not start with 'amq.', which RabbitMQ reserves"
	AMQPQueue string `json:"amqpQueue"`
	// RepublishAfterSeconds: a pod still unbound this long after it was
	// published is published again: the external scheduler acknowledges
	// every message, placed or not, so this deadline is the only retry and
	// a pod has one message in flight at a time.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	RepublishAfterSeconds int32 `json:"republishAfterSeconds,omitempty"`
	// MaxAttempts caps the publications of one pod: a pod still unbound
	// after this many gets an ExternalSchedulingGaveUp Warning Event and is
	// published no more (it stays, admitted, for an operator to look at).
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxAttempts int32 `json:"maxAttempts,omitempty"`
}

// SchedulerName is the spec.schedulerName the routing policy gives the
// queue's pods: its profile, or ExternalSchedulerName.
func (s *QueueSpec) SchedulerName() string {
	if s.External != nil {
		return ExternalSchedulerName
	}
	return s.Profile
}

// AdmissionRate is a token bucket: pods are admitted at PodsPerSecond on
// average, and up to Burst at once.
type AdmissionRate struct {
	// PodsPerSecond may be fractional, e.g. "0.5" or "500m" for one pod
	// every two seconds.
	// +required
	// +kubebuilder:validation:XValidation:rule="sign(quantity(string(self))) > 0",message="podsPerSecond must be greater than zero"
	PodsPerSecond resource.Quantity `json:"podsPerSecond"`

	// Burst is how many pods may be admitted at once; defaults to 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	Burst int32 `json:"burst,omitempty"`
}

// HasLimits reports whether the queue holds its pods back at all; only then
// do its pods get the admission gate.
func (s *QueueSpec) HasLimits() bool {
	return s.MaxAdmitted != nil || len(s.Quota) > 0 || s.AdmissionRate != nil
}

// QueueStatus is what the coordinator observed about a queue.
type QueueStatus struct {
	// Pending counts pods waiting for admission (gated).
	// +optional
	Pending int32 `json:"pending"`
	// Admitted counts pods admitted and not yet bound to a node.
	// +optional
	Admitted int32 `json:"admitted"`
	// Scheduled counts pods bound to a node that have not terminated.
	// +optional
	Scheduled int32 `json:"scheduled"`
	// Overdue counts pods admitted longer than admittedTimeoutSeconds ago
	// and still not bound; they are not in Admitted.
	// +optional
	Overdue int32 `json:"overdue,omitempty"`
	// Used sums, for each resource in spec.quota, the requests of the
	// queue's admitted pods that have not terminated (bound or not): what
	// the quota is measured against. The node agent reads it before a
	// resize that would grow a pod's requests.
	// +optional
	Used corev1.ResourceList `json:"used,omitempty"`
	// OldestPendingSince is the creation time of the oldest waiting pod.
	// +optional
	OldestPendingSince *metav1.Time `json:"oldestPendingSince,omitempty"`
	// ObservedGeneration is the spec generation the status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (pods are routed to the profile and admitted),
	// ProfileMissing (no scheduler profile of that name is known) and
	// DuplicateDefault (another Queue is also the default).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// QueueList is a list of Queues.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type QueueList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Queue `json:"items"`
}

// RoutingTable is the parameter of the switchyard-routing
// MutatingAdmissionPolicy: where the API server sends the pods of each
// Queue. The coordinator writes the one RoutingTable, named
// switchyard-routing, from the Queues; nobody else should. Kept out of the
// policy's CEL so that a Queue change needs no policy recompilation and
// tens of thousands of Queues fit (a CEL program is capped at 100,000 code
// points; this object at what etcd stores in one request, 1.5 MiB).
//
// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=switchyard
// +kubebuilder:printcolumn:name="Default",type=string,JSONPath=`.defaultQueue`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RoutingTable struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Routes maps each Queue's name to the spec.schedulerName its pods get,
	// prefixed with "+" when its pods get the admission gate. Atomic: the
	// coordinator replaces it whole, and the API server tracks one field,
	// not one per Queue.
	// +optional
	// +mapType=atomic
	Routes map[string]string `json:"routes,omitempty"`
	// DefaultQueue receives pods without a queue label, or whose label names
	// no Queue. Empty: such pods keep schedulerName switchyard.
	// +optional
	DefaultQueue string `json:"defaultQueue,omitempty"`
	// NamespaceSelectors holds, for each Queue that restricts who may use
	// it, its spec.namespaceSelector; a Queue not here is open to every
	// namespace. The switchyard-routing-guard policy reads it. Atomic.
	// +optional
	// +mapType=atomic
	NamespaceSelectors map[string]metav1.LabelSelector `json:"namespaceSelectors,omitempty"`
	// ServedProfiles maps each scheduler name that routing gives pods (a
	// Queue's profile, or switchyard-external) to a Queue routed there,
	// except the profiles the coordinator runs as open. A pod created with
	// one of them must carry what routing would have given it, so that no
	// pod reaches a queue's scheduler past the queue's limits. Atomic.
	// +optional
	// +mapType=atomic
	ServedProfiles map[string]string `json:"servedProfiles,omitempty"`
}

// RoutingTableList is a list of RoutingTables.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
type RoutingTableList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RoutingTable `json:"items"`
}
