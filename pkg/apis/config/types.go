package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CalcSetLocality says how close the members of a calculation set must be.
type CalcSetLocality string

// Localities a calculation set may ask for.
const (
	// CalcSetLocalityNode puts every member on one node.
	CalcSetLocalityNode CalcSetLocality = "node"
	// CalcSetLocalityZone puts every member in one zone
	// (node label topology.kubernetes.io/zone).
	CalcSetLocalityZone CalcSetLocality = "zone"
	// CalcSetLocalityNone only asks for all or nothing.
	CalcSetLocalityNone CalcSetLocality = "none"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// CalcSetArgs configure the CalcSet plugin in one profile.
type CalcSetArgs struct {
	metav1.TypeMeta

	// DefaultWindow is how long reserved members wait for the rest of their
	// set when the set's pods do not say (label switchyard.io/calcset-window).
	DefaultWindow metav1.Duration
	// MaxWindow caps the window a set may ask for, so that a set cannot
	// hold capacity indefinitely.
	MaxWindow metav1.Duration
	// DefaultLocality applies to sets without a locality label.
	DefaultLocality CalcSetLocality
	// MaxSetSize refuses sets larger than this many members.
	MaxSetSize int32
	// BackoffAfterMisfit is how long a set that did not fit waits before its
	// members are tried again, so that a competing set can complete first.
	BackoffAfterMisfit metav1.Duration
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// UsageAwareArgs configure the UsageAware score plugin in one profile.
type UsageAwareArgs struct {
	metav1.TypeMeta

	// MaxReportAge: a node whose usage report is older than this scores as
	// if unknown (the middle score), so a dead agent cannot attract pods.
	MaxReportAge metav1.Duration
	// CPUWeight and MemoryWeight weigh the measured CPU and memory
	// fractions of allocatable in the score.
	CPUWeight    int64
	MemoryWeight int64
}
