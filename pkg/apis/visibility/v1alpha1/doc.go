// Package v1alpha1 is the read-only visibility API of Switchyard's queues
// (group visibility.switchyard.io): which pods wait in a queue, in what
// order, held by which limit, and when each is expected to be admitted.
// The coordinator serves it behind the API server's aggregation layer, so
// kubectl credentials and RBAC decide who may read it:
//
//	GET /apis/visibility.switchyard.io/v1alpha1/queues/{queue}/pendingpods
//	GET /apis/visibility.switchyard.io/v1alpha1/namespaces/{namespace}/pendingpods
//
// The first (verb get on queues/pendingpods) shows every pod of a queue and
// is for queue operators; the second (verb list on pendingpods in a
// namespace) shows a namespace's own pods, each with its position in its
// queue, and is what a tenant is granted.
package v1alpha1
