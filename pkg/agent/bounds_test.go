package agent

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// TestBoundsOf: good bounds are read; bad ones are reported (the caller
// records InvalidAutoscaleBounds) and ignored, never turned into 0 or a
// wrapped-around number.
func TestBoundsOf(t *testing.T) {
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		want        guardian.Bounds
		err         string
	}{
		{name: "all four", annotations: map[string]string{v1alpha1.MinCPUAnnotation: "100m", v1alpha1.MaxCPUAnnotation: "2",
			v1alpha1.MinMemoryAnnotation: "64Mi", v1alpha1.MaxMemoryAnnotation: "1Gi"},
			want: guardian.Bounds{MinMilliCPU: 100, MaxMilliCPU: 2000, MinMemory: 64 << 20, MaxMemory: 1 << 30}},
		{name: "not a quantity", annotations: map[string]string{v1alpha1.MaxCPUAnnotation: "two"}, err: `switchyard.io/max-cpu="two" is not a positive quantity`},
		{name: "zero", annotations: map[string]string{v1alpha1.MaxMemoryAnnotation: "0"}, err: "is not a positive quantity"},
		{name: "overflows a milli-value", annotations: map[string]string{v1alpha1.MaxCPUAnnotation: "9223372036854775807", v1alpha1.MinCPUAnnotation: "1"},
			want: guardian.Bounds{MinMilliCPU: 1000}, err: `switchyard.io/max-cpu="9223372036854775807" is larger than 100k`},
		{name: "absurd memory", annotations: map[string]string{v1alpha1.MaxMemoryAnnotation: "1e30"}, err: "is larger than 1Pi"},
		{name: "min above max drops both", annotations: map[string]string{v1alpha1.MinCPUAnnotation: "4", v1alpha1.MaxCPUAnnotation: "1",
			v1alpha1.MaxMemoryAnnotation: "1Gi"}, want: guardian.Bounds{MaxMemory: 1 << 30}, err: "switchyard.io/min-cpu=4 is above switchyard.io/max-cpu=1"},
		{name: "memory min above max", annotations: map[string]string{v1alpha1.MinMemoryAnnotation: "2Gi", v1alpha1.MaxMemoryAnnotation: "1Gi"},
			err: "switchyard.io/min-memory=2Gi is above switchyard.io/max-memory=1Gi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{}
			pod.Annotations = tc.annotations
			got, err := boundsOf(pod)
			if got != tc.want {
				t.Errorf("bounds %+v, want %+v", got, tc.want)
			}
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want one with %q", err, tc.err)
			}
		})
	}
}
