package cgroup

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestContainerPath checks the layouts the kubelet (both drivers, every QoS
// class) and the runtimes (containerd, CRI-O) create.
func TestContainerPath(t *testing.T) {
	const uid = "8d2c5a4e-1b2c-4d5e-8f90-0123456789ab"
	for _, tc := range []struct {
		driver  Driver
		runtime Runtime
		qos     corev1.PodQOSClass
		want    string
	}{
		{Systemd, Containerd, corev1.PodQOSGuaranteed, "kubepods.slice/kubepods-pod8d2c5a4e_1b2c_4d5e_8f90_0123456789ab.slice/cri-containerd-abc.scope"},
		{Systemd, Containerd, corev1.PodQOSBurstable, "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d2c5a4e_1b2c_4d5e_8f90_0123456789ab.slice/cri-containerd-abc.scope"},
		{Systemd, CRIO, corev1.PodQOSBestEffort, "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod8d2c5a4e_1b2c_4d5e_8f90_0123456789ab.slice/crio-abc.scope"},
		{Cgroupfs, Containerd, corev1.PodQOSGuaranteed, "kubepods/pod8d2c5a4e-1b2c-4d5e-8f90-0123456789ab/abc"},
		{Cgroupfs, Containerd, corev1.PodQOSBurstable, "kubepods/burstable/pod8d2c5a4e-1b2c-4d5e-8f90-0123456789ab/abc"},
		{Cgroupfs, CRIO, corev1.PodQOSBestEffort, "kubepods/besteffort/pod8d2c5a4e-1b2c-4d5e-8f90-0123456789ab/crio-abc"},
	} {
		if got := ContainerPath(tc.driver, tc.runtime, tc.qos, uid, "abc"); got != tc.want {
			t.Errorf("%s %s %s: %s, want %s", tc.driver, tc.runtime, tc.qos, got, tc.want)
		}
	}
	if rt, id, err := ParseContainerID("cri-o://abc"); err != nil || rt != CRIO || id != "abc" {
		t.Errorf("ParseContainerID(cri-o://abc) = %s %s %v", rt, id, err)
	}
	if _, _, err := ParseContainerID("docker://abc"); err == nil {
		t.Error("docker:// accepted")
	}
}
