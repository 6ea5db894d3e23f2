package coordinator

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// scheme knows core types (for Events about pods) and Switchyard's own.
func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}
