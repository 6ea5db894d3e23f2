package routing

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
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
