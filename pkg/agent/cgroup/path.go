package cgroup

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Driver is the kubelet's cgroup driver.
type Driver string

// Cgroup drivers.
const (
	Cgroupfs Driver = "cgroupfs"
	Systemd  Driver = "systemd"
)

// Runtime is the container runtime, which names container cgroups.
type Runtime string

// Container runtimes.
const (
	Containerd Runtime = "containerd"
	CRIO       Runtime = "cri-o"
)

// ParseContainerID splits a pod status container ID such as
// containerd://4f3c... into the runtime and the bare ID.
func ParseContainerID(id string) (Runtime, string, error) {
	scheme, bare, ok := strings.Cut(id, "://")
	if !ok || bare == "" {
		return "", "", fmt.Errorf("container ID %q is not <runtime>://<id>", id)
	}
	switch scheme {
	case "containerd":
		return Containerd, bare, nil
	case "cri-o":
		return CRIO, bare, nil
	}
	return "", "", fmt.Errorf("container runtime %q is not supported (containerd, cri-o)", scheme)
}

// PodPath is the pod's cgroup, relative to the hierarchy, as the kubelet
// names it for the QoS class and driver.
func PodPath(driver Driver, qos corev1.PodQOSClass, podUID types.UID) string {
	if driver == Systemd {
		uid := strings.ReplaceAll(string(podUID), "-", "_")
		switch qos {
		case corev1.PodQOSGuaranteed:
			return path.Join("kubepods.slice", "kubepods-pod"+uid+".slice")
		case corev1.PodQOSBurstable:
			return path.Join("kubepods.slice", "kubepods-burstable.slice", "kubepods-burstable-pod"+uid+".slice")
		default:
			return path.Join("kubepods.slice", "kubepods-besteffort.slice", "kubepods-besteffort-pod"+uid+".slice")
		}
	}
	switch qos {
	case corev1.PodQOSGuaranteed:
		return path.Join("kubepods", "pod"+string(podUID))
	case corev1.PodQOSBurstable:
		return path.Join("kubepods", "burstable", "pod"+string(podUID))
	default:
		return path.Join("kubepods", "besteffort", "pod"+string(podUID))
	}
}

// ContainerPath is the container's cgroup, relative to the hierarchy.
func ContainerPath(driver Driver, runtime Runtime, qos corev1.PodQOSClass, podUID types.UID, containerID string) string {
	var leaf string
	switch {
	case driver == Systemd && runtime == CRIO:
		leaf = "crio-" + containerID + ".scope"
	case driver == Systemd:
		leaf = "cri-containerd-" + containerID + ".scope"
	case runtime == CRIO:
		leaf = "crio-" + containerID
	default:
		leaf = containerID
	}
	return path.Join(PodPath(driver, qos, podUID), leaf)
}
