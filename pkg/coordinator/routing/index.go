package routing

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/reconcile"
)

// QueueIndex indexes pods by the queue the routing policy sent them to, so
// that controllers look only at one queue's pods, not at every pod.
const QueueIndex = v1alpha1.RoutedQueueAnnotation

// AddQueueIndex adds QueueIndex to a pod informer, once however many
// controllers share the informer.
func AddQueueIndex(pods cache.SharedIndexInformer) error {
	if _, exists := pods.GetIndexer().GetIndexers()[QueueIndex]; exists {
		return nil
	}
	return pods.AddIndexers(cache.Indexers{QueueIndex: func(obj any) ([]string, error) {
		if pod, ok := obj.(*corev1.Pod); ok {
			if q := pod.Annotations[v1alpha1.RoutedQueueAnnotation]; q != "" {
				return []string{q}, nil
			}
		}
		return nil, nil
	}})
}

// RoutedPodHandler calls fn for every informer event of a pod the routing
// policy routed, with the queue it was routed to; deleted is true for a
// delete (tombstones included). Other pods are not passed on.
func RoutedPodHandler(fn func(pod *corev1.Pod, queue string, deleted bool)) cache.ResourceEventHandler {
	handle := func(obj any, deleted bool) {
		pod, ok := reconcile.Object[*corev1.Pod](obj)
		if !ok {
			return
		}
		if queue, routed := pod.Annotations[v1alpha1.RoutedQueueAnnotation]; routed {
			fn(pod, queue, deleted)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { handle(obj, false) },
		UpdateFunc: func(_, obj any) { handle(obj, false) },
		DeleteFunc: func(obj any) { handle(obj, true) },
	}
}
