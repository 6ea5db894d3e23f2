package calcset

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/apis/config/validation"
)

// argsFrom takes the profile's CalcSetArgs, already decoded strictly and
// defaulted through the scheduler's configuration scheme, and validates them.
func argsFrom(obj runtime.Object) (*config.CalcSetArgs, error) {
	args, ok := obj.(*config.CalcSetArgs)
	if !ok {
		return nil, fmt.Errorf("want args of type CalcSetArgs, got %T", obj)
	}
	if err := validation.ValidateCalcSetArgs(field.NewPath("pluginConfig", Name, "args"), args); err != nil {
		return nil, err
	}
	return args, nil
}
