// Package v1alpha1 is the switchyard.io/v1alpha1 API: Queues that pods pick
// with the switchyard.io/queue label.
//
// +k8s:deepcopy-gen=package
// +groupName=switchyard.io
// +kubebuilder:object:generate=false
package v1alpha1
