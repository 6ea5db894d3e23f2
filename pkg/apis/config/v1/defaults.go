package v1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Defaults of CalcSetArgs, documented in docs/scheduler.md.
var (
	DefaultCalcSetWindow              = metav1.Duration{Duration: 60 * time.Second}
	DefaultCalcSetMaxWindow           = metav1.Duration{Duration: 10 * time.Minute}
	DefaultCalcSetLocality            = "node"
	DefaultCalcSetMaxSetSize    int32 = 1000
	DefaultCalcSetMisfitBackoff       = metav1.Duration{Duration: 2 * time.Second}
)

// SetDefaults_CalcSetArgs fills what the profile left out.
func SetDefaults_CalcSetArgs(obj *CalcSetArgs) { //nolint:revive // name required by defaulter-gen
	if obj.DefaultWindow == nil {
		obj.DefaultWindow = ptr.To(DefaultCalcSetWindow)
	}
	if obj.MaxWindow == nil {
		obj.MaxWindow = ptr.To(DefaultCalcSetMaxWindow)
	}
	if obj.DefaultLocality == nil {
		obj.DefaultLocality = ptr.To(DefaultCalcSetLocality)
	}
	if obj.MaxSetSize == nil {
		obj.MaxSetSize = ptr.To(DefaultCalcSetMaxSetSize)
	}
	if obj.BackoffAfterMisfit == nil {
		obj.BackoffAfterMisfit = ptr.To(DefaultCalcSetMisfitBackoff)
	}
}

// DefaultUsageAwareMaxReportAge is how old a node usage report may be.
var DefaultUsageAwareMaxReportAge = metav1.Duration{Duration: time.Minute}

// SetDefaults_UsageAwareArgs fills what the profile left out.
func SetDefaults_UsageAwareArgs(obj *UsageAwareArgs) { //nolint:revive // name required by defaulter-gen
	if obj.MaxReportAge == nil {
		obj.MaxReportAge = ptr.To(DefaultUsageAwareMaxReportAge)
	}
	if obj.CPUWeight == nil {
		obj.CPUWeight = ptr.To[int64](1)
	}
	if obj.MemoryWeight == nil {
		obj.MemoryWeight = ptr.To[int64](1)
	}
}
