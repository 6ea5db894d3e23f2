package localcluster

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// PodObserver sees every change to the pods of one namespace, in the order
// the API server made them, and calls a check after each one. Tests use it
// to assert invariants "at every observed moment", not only at the end.
type PodObserver struct {
	mu     sync.Mutex
	pods   map[types.UID]*corev1.Pod
	check  func(pods map[types.UID]*corev1.Pod, changed *corev1.Pod) error
	errors []error
	stop   context.CancelFunc
}

// ObservePods starts observing; check runs under a lock after each change,
// and the errors it returns are collected for Errors.
func (c *Cluster) ObservePods(ctx context.Context, namespace string, check func(pods map[types.UID]*corev1.Pod, changed *corev1.Pod) error) (*PodObserver, error) {
	ctx, cancel := context.WithCancel(ctx)
	o := &PodObserver{pods: map[types.UID]*corev1.Pod{}, check: check, stop: cancel}
	factory := informers.NewSharedInformerFactoryWithOptions(c.Client, 0, informers.WithNamespace(namespace))
	informer := factory.Core().V1().Pods().Informer()
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { o.observe(obj, false) },
		UpdateFunc: func(_, obj any) { o.observe(obj, false) },
		DeleteFunc: func(obj any) { o.observe(obj, true) },
	})
	if err != nil {
		cancel()
		return nil, err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		cancel()
		return nil, fmt.Errorf("pod observer did not sync")
	}
	return o, nil
}

func (o *PodObserver) observe(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if deleted {
		delete(o.pods, pod.UID)
	} else {
		o.pods[pod.UID] = pod
	}
	if o.check != nil {
		if err := o.check(o.pods, pod); err != nil && len(o.errors) < 20 {
			o.errors = append(o.errors, err)
		}
	}
}

// Stop ends the observation and returns what the checks reported.
func (o *PodObserver) Stop() []error {
	o.stop()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.errors
}
