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
