package v1alpha1

import corev1 "k8s.io/api/core/v1"

// HasAdmissionGate reports whether the pod still waits in its queue: it
// carries the AdmissionGate scheduling gate.
func HasAdmissionGate(pod *corev1.Pod) bool {
	for _, g := range pod.Spec.SchedulingGates {
		if g.Name == AdmissionGate {
			return true
		}
	}
	return false
}
