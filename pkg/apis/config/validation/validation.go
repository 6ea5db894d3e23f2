// Package validation checks Switchyard's plugin Args after defaulting, so a
// bad profile stops the scheduler at start with every problem listed.
package validation

import (
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
)

// ValidateCalcSetArgs reports every invalid field of CalcSetArgs at once.
func ValidateCalcSetArgs(path *field.Path, args *config.CalcSetArgs) error {
	var errs field.ErrorList
	if args.DefaultWindow.Duration < time.Second {
		errs = append(errs, field.Invalid(path.Child("defaultWindow"), args.DefaultWindow.String(), "must be at least 1s"))
	}
	if args.MaxWindow.Duration < args.DefaultWindow.Duration {
		errs = append(errs, field.Invalid(path.Child("maxWindow"), args.MaxWindow.String(), "must not be below defaultWindow"))
	}
	switch args.DefaultLocality {
	case config.CalcSetLocalityNode, config.CalcSetLocalityZone, config.CalcSetLocalityNone:
	default:
		errs = append(errs, field.NotSupported(path.Child("defaultLocality"), args.DefaultLocality,
			[]config.CalcSetLocality{config.CalcSetLocalityNode, config.CalcSetLocalityZone, config.CalcSetLocalityNone}))
	}
	if args.MaxSetSize < 1 {
		errs = append(errs, field.Invalid(path.Child("maxSetSize"), args.MaxSetSize, "must be at least 1"))
	}
	if args.BackoffAfterMisfit.Duration < 0 {
		errs = append(errs, field.Invalid(path.Child("backoffAfterMisfit"), args.BackoffAfterMisfit.String(), "must not be negative"))
	}
	return errs.ToAggregate()
}

// ValidateUsageAwareArgs reports every invalid field of UsageAwareArgs.
func ValidateUsageAwareArgs(path *field.Path, args *config.UsageAwareArgs) error {
	var errs field.ErrorList
	if args.MaxReportAge.Duration < time.Second {
		errs = append(errs, field.Invalid(path.Child("maxReportAge"), args.MaxReportAge.String(), "must be at least 1s"))
	}
	if args.CPUWeight < 0 || args.CPUWeight > 100 {
		errs = append(errs, field.Invalid(path.Child("cpuWeight"), args.CPUWeight, "must be between 0 and 100"))
	}
	if args.MemoryWeight < 0 || args.MemoryWeight > 100 {
		errs = append(errs, field.Invalid(path.Child("memoryWeight"), args.MemoryWeight, "must be between 0 and 100"))
	}
	if args.CPUWeight+args.MemoryWeight == 0 {
		errs = append(errs, field.Invalid(path.Child("cpuWeight"), args.CPUWeight, "cpuWeight and memoryWeight must not both be 0"))
	}
	return errs.ToAggregate()
}
