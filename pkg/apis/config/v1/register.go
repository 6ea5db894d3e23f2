package v1

import (
	"k8s.io/apimachinery/pkg/runtime"
	schedconfigv1 "k8s.io/kube-scheduler/config/v1"
)

// SchemeGroupVersion is kubescheduler.config.k8s.io/v1.
var SchemeGroupVersion = schedconfigv1.SchemeGroupVersion

var (
	// localSchemeBuilder extends the upstream v1 scheme builder; the
	// generated conversion and defaulting functions register through it.
	localSchemeBuilder = &schedconfigv1.SchemeBuilder
	// AddToScheme registers the versioned Args, their defaults and
	// conversions with a scheme.
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
	// Generated functions register themselves in the generated files.
	localSchemeBuilder.Register(addKnownTypes)
	localSchemeBuilder.Register(RegisterDefaults)
}
