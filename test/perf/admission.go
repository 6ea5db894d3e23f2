package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/admission"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

const admissionQueue = "perf-admit"

// scaleQueues and scalePods size the admission-scale workload.
const (
	scaleQueues = 100
	scalePods   = 10_000
)

// admissionQueues are the workload's Queues: one whose maxAdmitted never
// binds (admission), or 100 with mixed limits that never bind either
// (admission-scale: maxAdmitted, quota, rate, weights and priorities, so
// every rule is checked on every decision).
func admissionQueues(workload string) []*v1alpha1.Queue {
	if workload != "admission-scale" {
		return []*v1alpha1.Queue{{ObjectMeta: metav1.ObjectMeta{Name: admissionQueue},
			Spec: v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](1 << 30)}}}
	}
	queues := make([]*v1alpha1.Queue, scaleQueues)
	for i := range queues {
		spec := v1alpha1.QueueSpec{Profile: "switchyard-batch", Weight: int32(1 + i%4), Priority: int32(i % 3)}
		switch i % 3 {
		case 0:
			spec.MaxAdmitted = ptr.To[int32](1 << 20)
		case 1:
			spec.Quota = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100k"), corev1.ResourcePods: resource.MustParse("1M")}
		case 2:
			spec.AdmissionRate = &v1alpha1.AdmissionRate{PodsPerSecond: resource.MustParse("10k"), Burst: 10_000}
		}
		queues[i] = &v1alpha1.Queue{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("perf-scale-%03d", i)}, Spec: spec}
	}
	return queues
}

// admit measures how fast gated pods are released: by the coordinator, or
// by this driver sending the same JSON patches (the API server's raw rate).
// No scheduler runs, so only admission is measured.
func (b *bench) admit(ctx context.Context, workload string, variant string, _ int) (Run, error) {
	var run Run
	queues := admissionQueues(workload)
	if err := b.ensureAdmissionQueues(ctx, queues); err != nil {
		return run, err
	}
	count := b.cfg.pods
	if workload == "admission-scale" {
		count = scalePods
	}
	pods := make([]*corev1.Pod, count)
	for i := range pods {
		pods[i] = localcluster.Pod(namespace, fmt.Sprintf("%s-%s-%d", workload, variant, i), localcluster.PodSpec{
			SchedulerName: v1alpha1.RouterSchedulerName, CPU: "10m",
			Labels: map[string]string{v1alpha1.QueueLabel: queues[i%len(queues)].Name},
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
	if coordinator != nil {
		// Let the status writes of the last admissions land in the figures.
		time.Sleep(2 * time.Second)
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

// ensureAdmissionQueues creates gated queues whose limits never bind, so
// every pod is gated and admission runs flat out.
func (b *bench) ensureAdmissionQueues(ctx context.Context, queues []*v1alpha1.Queue) error {
	sy, err := versioned.NewForConfig(b.cluster.Config)
	if err != nil {
		return err
	}
	for _, q := range queues {
		if _, err := sy.SwitchyardV1alpha1().Queues().Create(ctx, q, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	last := queues[len(queues)-1].Name
	// The routing policy must know the queue before pods are created; a
	// coordinator compiles it.
	coordinator, err := b.startCoordinator(ctx)
	if err != nil {
		return err
	}
	defer coordinator.Stop()
	probe := localcluster.Pod(namespace, "gate-probe", localcluster.PodSpec{SchedulerName: v1alpha1.RouterSchedulerName, Labels: map[string]string{v1alpha1.QueueLabel: last}})
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
	// The coordinator's client speaks protobuf; so does the baseline.
	config := rest.CopyConfig(b.cluster.Config)
	config.QPS, config.Burst = 5000, 5000
	config.ContentType = runtime.ContentTypeProtobuf
	config.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	if b.protobufClient, err = kubernetes.NewForConfig(config); err != nil {
		return err
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
	record := v1alpha1.AdmissionRecord{Queue: pod.Annotations[v1alpha1.RoutedQueueAnnotation], Time: metav1.Now(),
		Waited: time.Since(pod.CreationTimestamp.Time).Round(time.Millisecond).String(), Limits: "maxAdmitted 1/1073741824"}
	patch, ok := admission.GateRemovalPatch(pod, record)
	if !ok {
		return nil
	}
	_, err := b.protobufClient.CoreV1().Pods(namespace).Patch(ctx, pod.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
	return err
}
