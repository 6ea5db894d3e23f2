package calcset

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// setIndex indexes the scheduler's pod informer by calculation set
// (namespace/name), so that a set's members are found without listing the
// namespace: the informer keeps the index as pods come and go, and it is
// current before any event handler (the scheduling queue's included) sees
// the change, so what PreEnqueue counts is never behind what woke it.
const setIndex = "switchyard.io/calcset"

func setIndexFunc(obj any) ([]string, error) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return nil, nil
	}
	name, member := pod.Labels[v1alpha1.CalcSetLabel]
	if !member || name == "" {
		return nil, nil
	}
	return []string{pod.Namespace + "/" + name}, nil
}

// addSetIndex adds the index to the pod informer once: every profile with
// CalcSet shares the scheduler's informer.
func addSetIndex(informer cache.SharedIndexInformer) error {
	if _, exists := informer.GetIndexer().GetIndexers()[setIndex]; exists {
		return nil
	}
	if err := informer.AddIndexers(cache.Indexers{setIndex: setIndexFunc}); err != nil {
		return fmt.Errorf("indexing pods by calculation set: %w", err)
	}
	return nil
}

// liveMembers are the set's members that can still run: not being deleted
// and not finished.
func liveMembers(indexer cache.Indexer, key string) ([]*v1.Pod, error) {
	objs, err := indexer.ByIndex(setIndex, key)
	if err != nil {
		return nil, err
	}
	live := make([]*v1.Pod, 0, len(objs))
	for _, obj := range objs {
		if p, ok := obj.(*v1.Pod); ok && p.DeletionTimestamp == nil && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			live = append(live, p)
		}
	}
	return live, nil
}
