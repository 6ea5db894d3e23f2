package config

import (
	"k8s.io/apimachinery/pkg/runtime"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
)

// SchemeGroupVersion is the scheduler configuration's internal version,
// which the plugins receive their Args in.
var SchemeGroupVersion = schedconfig.SchemeGroupVersion

var (
	// localSchemeBuilder extends the upstream scheduler's internal scheme
	// builder, so every scheme built from it knows Switchyard's Args.
	localSchemeBuilder = &schedconfig.SchemeBuilder
	// AddToScheme registers the internal Args types with a scheme.
	AddToScheme = localSchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion,
		&CalcSetArgs{},
		&UsageAwareArgs{},
	)
	return nil
}

func init() {
	localSchemeBuilder.Register(addKnownTypes)
}
