package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// CalcSetArgs configure the CalcSet plugin in one profile:
//
//	pluginConfig:
//	- name: CalcSet
//	  args:
//	    defaultWindow: 60s
//	    defaultLocality: node
type CalcSetArgs struct {
	metav1.TypeMeta `json:",inline"`

	// DefaultWindow is how long reserved members wait for the rest of their
	// set when the set's pods do not say. Default 60s.
	DefaultWindow *metav1.Duration `json:"defaultWindow,omitempty"`
	// MaxWindow caps the window a set may ask for. Default 10m.
	MaxWindow *metav1.Duration `json:"maxWindow,omitempty"`
	// DefaultLocality (node, zone or none) applies to sets without a
	// locality label. Default node.
	DefaultLocality *string `json:"defaultLocality,omitempty"`
	// MaxSetSize refuses sets larger than this. Default 1000.
	MaxSetSize *int32 `json:"maxSetSize,omitempty"`
	// BackoffAfterMisfit is how long a set that did not fit waits before its
	// members are tried again. Default 2s.
	BackoffAfterMisfit *metav1.Duration `json:"backoffAfterMisfit,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// UsageAwareArgs configure the UsageAware score plugin:
//
//	pluginConfig:
//	- name: UsageAware
//	  args:
//	    maxReportAge: 1m
//	    cpuWeight: 1
//	    memoryWeight: 1
type UsageAwareArgs struct {
	metav1.TypeMeta `json:",inline"`

	// MaxReportAge: older node usage reports count as unknown. Default 1m.
	MaxReportAge *metav1.Duration `json:"maxReportAge,omitempty"`
	// CPUWeight of the measured CPU fraction. Default 1.
	CPUWeight *int64 `json:"cpuWeight,omitempty"`
	// MemoryWeight of the measured memory fraction. Default 1.
	MemoryWeight *int64 `json:"memoryWeight,omitempty"`
}
