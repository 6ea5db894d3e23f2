// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=github.com/switchyard-sched/switchyard/pkg/apis/config
// +k8s:defaulter-gen=TypeMeta
// +k8s:defaulter-gen-input=github.com/switchyard-sched/switchyard/pkg/apis/config/v1
// +groupName=kubescheduler.config.k8s.io

// Package v1 is the versioned form (kubescheduler.config.k8s.io/v1) of
// Switchyard's plugin Args, as written in a KubeSchedulerConfiguration:
// pointer fields, so that defaults can tell "unset" from zero.
package v1
