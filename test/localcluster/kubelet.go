package localcluster

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
)

// StartKubelets runs one controller that does, for every simulated node,
// what the node's kubelet would do to pods bound to it: admit them if the
// node's allocatable has room (else reject them, Failed with reason
// OutOfcpu, OutOfmemory or OutOfpods), report them Running and Ready, and
// finish their graceful deletion. It stops with ctx.
func (c *Cluster) StartKubelets(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithName("simulated-kubelets")
	factory := informers.NewSharedInformerFactoryWithOptions(c.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermNotEqualSelector("spec.nodeName", "").String()
		}))
	nodes := informers.NewSharedInformerFactory(c.Client, 0).Core().V1().Nodes()
	pods := factory.Core().V1().Pods()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			queue.Add(key)
		}
	}
	if err := pods.Informer().AddIndexers(cache.Indexers{byNodeIndex: indexByNode}); err != nil {
		return err
	}
	admission := newKubeletAdmission(pods.Informer().GetIndexer())
	if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: func(obj any) {
			if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tombstone.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				admission.forget(pod.UID)
			}
		},
	}); err != nil {
		return err
	}
	nodeInformer := nodes.Informer()
	go nodeInformer.Run(ctx.Done())
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), nodeInformer.HasSynced, pods.Informer().HasSynced) {
		return fmt.Errorf("simulated kubelets: caches did not sync")
	}
	var podIP atomic.Uint32
	podIP.Store(0x0a800000) // 10.128.0.0/9 for simulated pods
	sync := func(key string) error {
		namespace, name, err := cache.SplitMetaNamespaceKey(key)
		if err != nil {
			return nil
		}
		pod, err := pods.Lister().Pods(namespace).Get(name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		node, err := nodes.Lister().Get(pod.Spec.NodeName)
		if err != nil || node.Labels[SimulatedNodeLabel] != "true" {
			return nil // not ours: a real kubelet (or nobody) owns it
		}
		if pod.DeletionTimestamp != nil {
			zero := int64(0)
			err := c.Client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{
				GracePeriodSeconds: &zero,
				Preconditions:      &metav1.Preconditions{UID: &pod.UID},
			})
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				return nil
			}
			return err
		}
		if pod.Status.Phase == corev1.PodRunning {
			if done, err := c.actuateResize(ctx, pod, node, pods.Informer().GetIndexer(), queue); done || err != nil {
				return err
			}
			return c.completeIfDone(ctx, pod, queue)
		}
		if pod.Status.Phase != corev1.PodPending {
			if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
				admission.forget(pod.UID)
			}
			return nil
		}
		if ok, reason, message := admission.admit(pod, node); !ok {
			rejected := pod.DeepCopy()
			markRejected(rejected, reason, message)
			_, err = c.Client.CoreV1().Pods(namespace).UpdateStatus(ctx, rejected, metav1.UpdateOptions{})
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				return nil
			}
			return err
		}
		ip := podIP.Add(1)
		running := pod.DeepCopy()
		markRunning(running, node, net.IPv4(byte(ip>>24), byte(ip>>16), byte(ip>>8), byte(ip)).String())
		_, err = c.Client.CoreV1().Pods(namespace).UpdateStatus(ctx, running, metav1.UpdateOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil // a newer version or a deletion is already queued
		}
		return err
	}
	for range 4 {
		go func() {
			for {
				key, shutdown := queue.Get()
				if shutdown {
					return
				}
				if err := sync(key); err != nil {
					logger.V(2).Info("Retrying pod", "pod", key, "err", err)
					queue.AddRateLimited(key)
				} else {
					queue.Forget(key)
				}
				queue.Done(key)
			}
		}()
	}
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	return nil
}

// RunForAnnotation makes a simulated kubelet finish a pod this long after it
// started (a Go duration, e.g. "500ms"): its containers exit 0 and the pod
// Succeeds, as a batch job would.
const RunForAnnotation = "switchyard.io/simulated-run-for"

// completeIfDone reports a running pod Succeeded once its RunForAnnotation
// time has passed, or looks again when it will have.
func (c *Cluster) completeIfDone(ctx context.Context, pod *corev1.Pod, queue workqueue.TypedRateLimitingInterface[string]) error {
	runFor, err := time.ParseDuration(pod.Annotations[RunForAnnotation])
	if err != nil || pod.Status.StartTime == nil {
		return nil // runs until deleted
	}
	if left := time.Until(pod.Status.StartTime.Add(runFor)); left > 0 {
		queue.AddAfter(pod.Namespace+"/"+pod.Name, left)
		return nil
	}
	done := pod.DeepCopy()
	now := metav1.NewTime(time.Now())
	done.Status.Phase = corev1.PodSucceeded
	for _, t := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		setCondition(done, corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, Reason: "PodCompleted", LastTransitionTime: now})
	}
	for i := range done.Status.ContainerStatuses {
		cs := &done.Status.ContainerStatuses[i]
		started := now
		if cs.State.Running != nil {
			started = cs.State.Running.StartedAt
		}
		cs.Ready, cs.Started = false, ptrTo(false)
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: started, FinishedAt: now}}
	}
	_, err = c.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, done, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// actuateResize does what a kubelet does with an in-place resize (a spec
// whose resources differ from those its status shows allocated): it
// applies it when the node's allocatable has room beside the other pods'
// allocated requests, reports PodResizePending with reason Deferred (and
// looks again shortly) when it would fit an emptier node, and Infeasible
// when it exceeds the node. It reports whether it wrote the status.
func (c *Cluster) actuateResize(ctx context.Context, pod *corev1.Pod, node *corev1.Node, pods cache.Indexer, queue workqueue.TypedRateLimitingInterface[string]) (bool, error) {
	asked := false
	for _, ctr := range pod.Spec.Containers {
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name == ctr.Name && cs.Resources != nil && (!equality.Semantic.DeepEqual(cs.Resources.Limits, ctr.Resources.Limits) || !equality.Semantic.DeepEqual(cs.Resources.Requests, ctr.Resources.Requests)) {
				asked = true
			}
		}
	}
	pending := podCondition(pod, corev1.PodResizePending)
	if !asked {
		if pending == nil {
			return false, nil
		}
		updated := pod.DeepCopy()
		removeCondition(updated, corev1.PodResizePending) // the spec was set back
		return true, c.updateStatus(ctx, updated)
	}
	requests := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	used := allocated(podsOnNode(pods, node.Name, pod.UID))
	updated := pod.DeepCopy()
	now := metav1.NewTime(time.Now())
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		want, capacity := requests[name], node.Status.Allocatable[name]
		inUse := used[name]
		switch {
		case want.Cmp(capacity) > 0:
			setCondition(updated, corev1.PodCondition{Type: corev1.PodResizePending, Status: corev1.ConditionTrue, Reason: corev1.PodReasonInfeasible, LastTransitionTime: now,
				Message: fmt.Sprintf("Node didn't have enough capacity: %s, requested: %d, capacity: %d", name, want.MilliValue(), capacity.MilliValue())})
			return true, c.updateStatus(ctx, updated)
		case want.MilliValue()+inUse.MilliValue() > capacity.MilliValue():
			setCondition(updated, corev1.PodCondition{Type: corev1.PodResizePending, Status: corev1.ConditionTrue, Reason: corev1.PodReasonDeferred, LastTransitionTime: now,
				Message: fmt.Sprintf("Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d", name, want.MilliValue(), inUse.MilliValue(), capacity.MilliValue())})
			queue.AddAfter(pod.Namespace+"/"+pod.Name, 200*time.Millisecond) // the kubelet retries deferred resizes
			if pending != nil && pending.Reason == corev1.PodReasonDeferred && pending.Message == podCondition(updated, corev1.PodResizePending).Message {
				return true, nil
			}
			return true, c.updateStatus(ctx, updated)
		}
	}
	for i := range updated.Status.ContainerStatuses {
		cs := &updated.Status.ContainerStatuses[i]
		for _, ctr := range updated.Spec.Containers {
			if ctr.Name == cs.Name {
				cs.Resources = &corev1.ResourceRequirements{Requests: ctr.Resources.Requests, Limits: ctr.Resources.Limits}
			}
		}
	}
	removeCondition(updated, corev1.PodResizePending)
	removeCondition(updated, corev1.PodResizeInProgress)
	return true, c.updateStatus(ctx, updated)
}

func (c *Cluster) updateStatus(ctx context.Context, pod *corev1.Pod) error {
	_, err := c.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // a newer version or a deletion is already queued
	}
	return err
}

func podCondition(pod *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == t {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

func removeCondition(pod *corev1.Pod, t corev1.PodConditionType) {
	kept := pod.Status.Conditions[:0]
	for _, c := range pod.Status.Conditions {
		if c.Type != t {
			kept = append(kept, c)
		}
	}
	pod.Status.Conditions = kept
}

// markRunning fills in the status a kubelet reports once every container of
// the pod has started.
func markRunning(pod *corev1.Pod, node *corev1.Node, podIP string) {
	now := metav1.NewTime(time.Now())
	hostIP := "127.0.0.1"
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			hostIP = a.Address
		}
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.HostIP = hostIP
	pod.Status.HostIPs = []corev1.HostIP{{IP: hostIP}}
	pod.Status.PodIP = podIP
	pod.Status.PodIPs = []corev1.PodIP{{IP: podIP}}
	pod.Status.StartTime = &now
	for _, t := range []corev1.PodConditionType{corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		setCondition(pod, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	pod.Status.ContainerStatuses = nil
	for _, ctr := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name:        ctr.Name,
			Image:       ctr.Image,
			ImageID:     ctr.Image,
			ContainerID: "containerd://" + string(pod.UID) + "-" + ctr.Name,
			Ready:       true,
			Started:     ptrTo(true),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			Resources:   &corev1.ResourceRequirements{Requests: ctr.Resources.Requests, Limits: ctr.Resources.Limits},
		})
	}
}

func setCondition(pod *corev1.Pod, cond corev1.PodCondition) {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == cond.Type {
			pod.Status.Conditions[i] = cond
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, cond)
}

func ptrTo[T any](v T) *T { return &v }

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
