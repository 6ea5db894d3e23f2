package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Names of the visibility API, declared once.
const (
	// GroupName is the API group the coordinator serves.
	GroupName = "visibility.switchyard.io"
	// Version is the group's only version.
	Version = "v1alpha1"
	// APIServiceName is the APIService that registers the group with the
	// API server's aggregation layer.
	APIServiceName = Version + "." + GroupName
	// QueuesResource is the resource whose PendingPodsSubresource lists a
	// queue's pending pods.
	QueuesResource = "queues"
	// PendingPodsSubresource is queues/{queue}/pendingpods.
	PendingPodsSubresource = "pendingpods"
	// PendingPodsResource is namespaces/{namespace}/pendingpods: a
	// namespace's pending pods in every queue.
	PendingPodsResource = "pendingpods"
	// PendingPodListKind is the kind of both answers.
	PendingPodListKind = "PendingPodList"
	// DefaultLimit is how many pods an answer holds without ?limit=, and
	// MaxLimit the most a request may ask for.
	DefaultLimit = 500
	MaxLimit     = 10000
)

// PendingPodList is the answer of both endpoints: pods in queue order
// (a queue's endpoint) or by queue, then position (a namespace's).
type PendingPodList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the pods, at most the request's limit of them.
	Items []PendingPod `json:"items"`
}

// PendingPod is where one pod waiting for admission stands.
type PendingPod struct {
	// Namespace, Name and UID identify the pod.
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	UID       types.UID `json:"uid"`
	// Queue is the queue the pod was routed to.
	Queue string `json:"queue"`
	// Position is the pod's place in its queue, 1 for the next one to go.
	Position int32 `json:"position"`
	// Priority is the pod's priority, the first key of the queue's order.
	Priority int32 `json:"priority"`
	// CreationTimestamp is the pod's, the second key of the order.
	CreationTimestamp metav1.Time `json:"creationTimestamp"`
	// CalcSet names the pod's calculation set, admitted as one unit.
	CalcSet string `json:"calcSet,omitempty"`
	// HeldBy says what keeps the pod waiting: the limit that holds the
	// queue's next pod (maxAdmitted, quota of which resource, admission
	// rate, the cluster-wide cap, a missing scheduler), the pods ahead of
	// it, or its calculation set's missing members.
	HeldBy string `json:"heldBy"`
	// EstimatedAdmission is when the pod is expected to be admitted if the
	// queue keeps admitting as it has; unset when there is no basis.
	EstimatedAdmission *metav1.Time `json:"estimatedAdmission,omitempty"`
	// EstimateBasis says what the estimate rests on, or why there is none.
	EstimateBasis string `json:"estimateBasis"`
}
