// Package scheme adds Switchyard's plugin Args to the upstream scheduler's
// configuration scheme. Importing it (the registry does) is what lets a
// KubeSchedulerConfiguration carry typed, strictly decoded CalcSetArgs.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	configv1 "github.com/switchyard-sched/switchyard/pkg/apis/config/v1"
)

func init() {
	AddToScheme(schedscheme.Scheme)
}

// AddToScheme registers the internal and v1 Args with a scheme.
func AddToScheme(scheme *runtime.Scheme) {
	utilruntime.Must(config.AddToScheme(scheme))
	utilruntime.Must(configv1.AddToScheme(scheme))
}
