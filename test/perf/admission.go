package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/admission"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

const admissionQueue = "perf-admit"

// admit measures how fast gated pods are released: by the coordinator, or
// by this driver sending the same JSON patches (the API server's raw rate).
// No scheduler runs, so only admission is measured.
func (b *bench) admit(ctx context.Context, _ string, variant string, _ int) (Run, error) {
	var run Run
	if err := b.ensureAdmissionQueue(ctx); err != nil {
		return run, err
	}
	pods := make([]*corev1.Pod, b.cfg.pods)
	for i := range pods {
		pods[i] = localcluster.Pod(namespace, fmt.Sprintf("admit-%s-%d", variant, i), localcluster.PodSpec{
			SchedulerName: v1alpha1.RouterSchedulerName, CPU: "10m",
			Labels: map[string]string{v1alpha1.QueueLabel: admissionQueue},
		})
	}
	if _, _, err := b.create(ctx, pods); err != nil {
		return run, err
	}
	ungated := &bindLog{bound: map[string]time.Time{}}
	observer, err := b.cluster.ObservePods(ctx, namespace, func(_ map[types.UID]*corev1.Pod, p *corev1.Pod) error {
		if !v1alpha1.HasAdmissionGate(p) {
			ungated.mu.Lock()
			if _, ok := ungated.bound[p.Name]; !ok {
				ungated.bound[p.Name] = time.Now()
			}
			ungated.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return run, err
	}
	defer observer.Stop()
	before := b.snapshotUsage(nil, nil)
	var coordinator *localcluster.Process
	if variant == "coordinator" {
		if coordinator, err = b.startCoordinator(ctx); err != nil {
			return run, err
		}
		defer coordinator.Stop()
		before.coordinator, _ = localcluster.Usage(coordinator.PID())
	} else if err := b.removeGates(ctx, pods); err != nil {
		return run, err
	}
	if err := waitAll(ctx, ungated, len(pods), 10*time.Minute); err != nil {
		return run, fmt.Errorf("%d of %d pods ungated: %w", ungated.count(), len(pods), err)
	}
	run = before.delta(b, nil, coordinator, len(pods))
	times := ungated.times()
	var events []time.Time
	var first, last time.Time
	for _, t := range times {
		events = append(events, t)
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	// From the first to the last gate removal: start-up of either side
	// (informer sync, connection set-up) is not admission throughput.
	run.ThroughputAvg = float64(len(events)) / max(last.Sub(first).Seconds(), 0.001)
	run.ThroughputP50, run.ThroughputP90, run.ThroughputP99 = perSecond(events)
	run.CreatePerSec = 0
	return run, b.deletePods(ctx)
}

// ensureAdmissionQueue creates a gated queue whose limit never binds, so
// every pod is gated and admission runs flat out.
func (b *bench) ensureAdmissionQueue(ctx context.Context) error {
	sy, err := versioned.NewForConfig(b.cluster.Config)
	if err != nil {
		return err
	}
	_, err = sy.SwitchyardV1alpha1().Queues().Create(ctx, &v1alpha1.Queue{
		ObjectMeta: metav1.ObjectMeta{Name: admissionQueue},
		Spec:       v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](1 << 30)},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	// The routing policy must know the queue before pods are created; a
	// coordinator compiles it.
	coordinator, err := b.startCoordinator(ctx)
	if err != nil {
		return err
	}
	defer coordinator.Stop()
	probe := localcluster.Pod(namespace, "gate-probe", localcluster.PodSpec{SchedulerName: v1alpha1.RouterSchedulerName, Labels: map[string]string{v1alpha1.QueueLabel: admissionQueue}})
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		created, err := b.cluster.Client.CoreV1().Pods(namespace).Create(ctx, probe.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && v1alpha1.HasAdmissionGate(created), nil
	})
}

// removeGates is the baseline: the same test-and-remove JSON patch the
// coordinator sends, from as many workers, with nothing else to decide.
func (b *bench) removeGates(ctx context.Context, pods []*corev1.Pod) error {
	// One list first (the coordinator has its informer cache), so the timed
	// part is only the PATCHes.
	list, err := b.cluster.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	if len(list.Items) < len(pods) {
		return fmt.Errorf("listed %d pods, created %d", len(list.Items), len(pods))
	}
	work := make(chan *corev1.Pod)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range admissionWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pod := range work {
				if err := removeGate(ctx, b, pod); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range list.Items {
		work <- &list.Items[i]
	}
	close(work)
	wg.Wait()
	return firstErr
}

// removeGate sends the very patch the coordinator sends.
func removeGate(ctx context.Context, b *bench, pod *corev1.Pod) error {
	patch, ok := admission.GateRemovalPatch(pod)
	if !ok {
		return nil
	}
	_, err := b.cluster.Client.CoreV1().Pods(namespace).Patch(ctx, pod.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
	return err
}
