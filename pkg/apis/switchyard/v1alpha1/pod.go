package v1alpha1

import (
	"encoding/json"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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

// AdmissionRecord is the value of AdmittedAnnotation, as JSON: what a user
// needs to know about a pod's admission, written in the same patch that
// removes the gate.
//
// +k8s:deepcopy-gen=false
type AdmissionRecord struct {
	// Queue admitted the pod.
	Queue string `json:"queue"`
	// Time of the admission decision (RFC 3339).
	Time metav1.Time `json:"time"`
	// Waited is how long the pod waited from creation, e.g. "1.2s".
	Waited string `json:"waited"`
	// Limits are the queue's limits the admission was checked against and
	// what they stood at with this pod counted, e.g. "maxAdmitted 3/10".
	Limits string `json:"limits"`
}

// AdmissionRecordOf reads the pod's admission record; ok is false when it
// has none or it does not decode.
func AdmissionRecordOf(pod *corev1.Pod) (record AdmissionRecord, ok bool) {
	raw, found := pod.Annotations[AdmittedAnnotation]
	if !found || json.Unmarshal([]byte(raw), &record) != nil {
		return AdmissionRecord{}, false
	}
	return record, true
}

// CalcSetMembership reads a pod's calculation-set labels: the set's name
// and size, and ok when the pod is a member with a usable size (at least
// 1). A member with bad labels is refused by the CalcSet plugin, which says
// why; elsewhere it is treated as a pod of its own.
func CalcSetMembership(pod *corev1.Pod) (name string, size int, ok bool) {
	name = pod.Labels[CalcSetLabel]
	if name == "" {
		return "", 0, false
	}
	size, err := strconv.Atoi(pod.Labels[CalcSetSizeLabel])
	if err != nil || size < 1 {
		return "", 0, false
	}
	return name, size, true
}
