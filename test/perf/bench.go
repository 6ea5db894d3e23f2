package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/coordinator"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

const (
	namespace = "perf"
	// workers create pods (and, for the raw baseline, remove gates) in parallel.
	createWorkers = 32
	// admissionWorkers matches the coordinator's default number of workers.
	admissionWorkers = 8
	zoneCount        = 3
	// calcSetSize is the size of the calculation sets of the calcset workload.
	calcSetSize = 8
)

// upstreamConfig is kube-scheduler's default configuration.
var upstreamConfig = []byte("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n")

// queues route the routed variant; none has limits, so no pod is gated and
// what is measured is the routing itself.
var benchQueues = []struct {
	name, profile string
	def           bool
	external      bool
}{
	{"perf-general", "switchyard", true, false},
	{"perf-batch", "switchyard-batch", false, false},
	{"perf-latency", "switchyard-latency", false, false},
	{"perf-external", v1alpha1.ExternalSchedulerName, false, true},
}

// externalAMQPQueue is the RabbitMQ queue of perf-external, unique per run.
var externalAMQPQueue = fmt.Sprintf("switchyard-perf-%d.external", time.Now().UnixNano())

type bench struct {
	cfg     config
	cluster *localcluster.Cluster
	nodes   []string
	// protobufClient is the raw-patch baseline's client.
	protobufClient kubernetes.Interface
}

func (b *bench) setNodes(ctx context.Context, count int) error {
	if err := b.cluster.DeleteNodes(ctx, b.nodes); err != nil {
		return err
	}
	b.nodes = nil
	for zone := range zoneCount {
		n := count / zoneCount
		if zone < count%zoneCount {
			n++
		}
		names, err := b.cluster.CreateNodes(ctx, fmt.Sprintf("perf-%d-z%d", count, zone), n, localcluster.NodeSpec{
			// scheduler_perf's node template (node-default.yaml).
			CPU: "4", Memory: "32Gi", Pods: 110,
			Labels: map[string]string{corev1.LabelTopologyZone: fmt.Sprintf("zone-%d", zone)},
		})
		b.nodes = append(b.nodes, names...)
		if err != nil {
			return err
		}
	}
	return b.cluster.CreateNamespace(ctx, namespace)
}

// Modes of a scheduling workload.
const (
	// modeE2E creates the pods while the scheduler runs and times the
	// first create to the last bind: what a user sees, API server included.
	modeE2E = "e2e"
	// modeDrain creates every pod first with no scheduler running, then
	// starts the scheduler and times the first bind to the last: what the
	// scheduler itself can do.
	modeDrain = "drain"
)

func (b *bench) workload(ctx context.Context, name string, nodes int) ([]Result, error) {
	variants := []string{"upstream", "direct", "routed"}
	runOnce := b.schedule
	modes := b.cfg.modes
	switch name {
	case "admission", "admission-scale":
		variants = []string{"raw-patch", "coordinator"}
		runOnce = func(ctx context.Context, workload, variant, _ string, nodes int) (Run, error) {
			return b.admit(ctx, workload, variant, nodes)
		}
		modes = []string{modeE2E}
	case "calcset":
		// The same pods in switchyard-batch, without and with set labels.
		variants = []string{"plain", "calcset"}
	case "external":
		// The same routed pods, to a profile or to an external queue.
		variants = []string{"profile", "external"}
		modes = []string{modeE2E}
	}
	var out []Result
	for _, mode := range modes {
		runs := map[string][]Run{}
		for round := range b.cfg.rounds {
			for i := range variants {
				// Rotate the order each round so no variant always runs first.
				v := variants[(i+round)%len(variants)]
				progress("  %s (%s), %s, round %d", name, mode, v, round+1)
				run, err := runOnce(ctx, name, v, mode, nodes)
				if err != nil {
					return nil, fmt.Errorf("%s (%s): %w", v, mode, err)
				}
				runs[v] = append(runs[v], run)
			}
		}
		base := median(runs[variants[0]]).ThroughputAvg
		for _, v := range variants {
			m := median(runs[v])
			ratio := 0.0
			if base > 0 {
				ratio = m.ThroughputAvg / base
			}
			last := runs[v][len(runs[v])-1]
			out = append(out, Result{Workload: name, Mode: mode, Nodes: nodes, Variant: v, Median: m, Runs: runs[v], Ratio: ratio, Plugins: last.Plugins})
		}
	}
	return out, nil
}

// schedule runs one variant of a scheduling workload.
func (b *bench) schedule(ctx context.Context, workload, variant, mode string, nodes int) (Run, error) {
	var run Run
	var coordinator *localcluster.Process
	routed := variant == "routed" || workload == "external"
	if !routed {
		// Start clean: no routing policy left by a routed variant, so that
		// these pods are not routed (nor their cost counted) at all.
		if err := b.removeRouting(ctx); err != nil {
			return run, err
		}
	}
	if routed {
		var err error
		if coordinator, err = b.startCoordinator(ctx); err != nil {
			return run, err
		}
		defer coordinator.Stop()
		for _, q := range benchQueues {
			if err := b.cluster.WaitForRouting(ctx, namespace, q.name, q.profile); err != nil {
				return run, err
			}
		}
	}
	pods := b.pods(workload, variant, nodes)
	// Binds are observed from before the scheduler starts, so none is
	// first seen late.
	bound, stop, err := b.observeBinds(ctx)
	if err != nil {
		return run, err
	}
	defer stop()
	if mode == modeDrain {
		// Every pod exists before any scheduler runs.
		if _, _, err := b.create(ctx, pods); err != nil {
			return run, err
		}
	}
	binary, config := filepath.Join(b.cluster.ToolsDir, "kube-scheduler"), upstreamConfig
	if variant != "upstream" {
		shipped, err := localcluster.ShippedSchedulerConfig()
		if err != nil {
			return run, err
		}
		binary, config = b.cfg.switchyard, shipped
	}
	scheduler, err := b.cluster.StartSchedulerProcess(ctx, variant+"-scheduler", binary, localcluster.SchedulerOptions{
		Config: config, QPS: b.cfg.schedulerQPS, Burst: int32(2 * b.cfg.schedulerQPS), OpenMetrics: true,
	})
	if err != nil {
		return run, err
	}
	defer scheduler.Stop()
	// What binds the pods: the external variant's scheduler is shortjob.
	binder := scheduler
	if variant == "external" {
		if binder, err = b.startShortJob(ctx); err != nil {
			return run, err
		}
		defer binder.Stop()
	}

	usage := b.snapshotUsage(binder, coordinator)
	if mode == modeDrain && b.cfg.profile {
		name := fmt.Sprintf("cpu-%s-%s-%d-%d.pprof", workload, variant, nodes, time.Now().Unix())
		profiled := b.saveProfile(scheduler.MetricsURL, filepath.Join(b.cfg.outDir, name), 5*time.Second)
		defer func() { <-profiled }()
	}
	var created map[string]time.Time
	var createSecs float64
	if mode == modeE2E {
		if created, createSecs, err = b.create(ctx, pods); err != nil {
			return run, err
		}
	}
	if err := waitAll(ctx, bound, len(pods), 10*time.Minute); err != nil {
		return run, err
	}
	run = usage.delta(b, binder, coordinator, len(pods))
	if run.Plugins, err = pluginCosts(scheduler.MetricsURL); err != nil {
		return run, fmt.Errorf("reading the scheduler's plugin metrics: %w", err)
	}
	if mode == modeE2E {
		run.CreatePerSec = float64(len(pods)) / createSecs
		fillThroughput(&run, created, bound.times())
	} else {
		fillDrain(&run, bound.times())
	}
	return run, b.deletePods(ctx)
}

// pods builds the workload's pods for a variant: the same pods, only the
// scheduler name (and, when routed, the queue label) differ.
func (b *bench) pods(workload, variant string, nodes int) []*corev1.Pod {
	profiles := []string{"switchyard", "switchyard-batch", "switchyard-latency"}
	count := b.cfg.pods
	if workload == "calcset" {
		count -= count % calcSetSize // whole sets only
	}
	out := make([]*corev1.Pod, 0, count)
	for i := range count {
		// scheduler_perf's pod template (pod-default.yaml) asks the same.
		spec := localcluster.PodSpec{CPU: "100m", Memory: "500Mi", Labels: map[string]string{"perf": workload}}
		switch variant {
		case "upstream":
			spec.SchedulerName = corev1.DefaultSchedulerName
		case "direct":
			spec.SchedulerName = "switchyard"
			if workload == "queues-mix" {
				spec.SchedulerName = profiles[i%3]
			}
		case "routed":
			spec.SchedulerName = v1alpha1.RouterSchedulerName
			spec.Labels[v1alpha1.QueueLabel] = benchQueues[0].name
			if workload == "queues-mix" {
				spec.Labels[v1alpha1.QueueLabel] = benchQueues[i%3].name
			}
		case "profile":
			spec.SchedulerName = v1alpha1.RouterSchedulerName
			spec.Labels[v1alpha1.QueueLabel] = "perf-batch"
		case "external":
			spec.SchedulerName = v1alpha1.RouterSchedulerName
			spec.Labels[v1alpha1.QueueLabel] = "perf-external"
		case "plain":
			spec.SchedulerName = "switchyard-batch"
		case "calcset":
			spec.SchedulerName = "switchyard-batch"
			spec.Labels[v1alpha1.CalcSetLabel] = fmt.Sprintf("set-%d", i/calcSetSize)
			spec.Labels[v1alpha1.CalcSetSizeLabel] = strconv.Itoa(calcSetSize)
		}
		pod := localcluster.Pod(namespace, fmt.Sprintf("%s-%s-%d", workload, variant, i), spec)
		switch workload {
		case "anti-affinity":
			// Groups as large as the cluster: no two pods of a group share a node.
			group := fmt.Sprintf("g%d", i/nodes)
			pod.Labels["group"] = group
			pod.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"group": group}},
					TopologyKey:   corev1.LabelHostname,
				}},
			}}
		case "topology-spread":
			pod.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: corev1.LabelTopologyZone, WhenUnsatisfiable: corev1.DoNotSchedule,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"perf": workload}},
			}}
		}
		out = append(out, pod)
	}
	return out
}

// bindLog records when this process first saw each pod bound.
type bindLog struct {
	mu    sync.Mutex
	bound map[string]time.Time
}

func (l *bindLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.bound)
}

func (l *bindLog) times() map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]time.Time, len(l.bound))
	for k, v := range l.bound {
		out[k] = v
	}
	return out
}

func (b *bench) observeBinds(ctx context.Context) (*bindLog, func(), error) {
	log := &bindLog{bound: map[string]time.Time{}}
	observer, err := b.cluster.ObservePods(ctx, namespace, func(_ map[types.UID]*corev1.Pod, p *corev1.Pod) error {
		if p.Spec.NodeName != "" {
			now := time.Now()
			log.mu.Lock()
			if _, seen := log.bound[p.Name]; !seen {
				log.bound[p.Name] = now
			}
			log.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return log, func() { observer.Stop() }, nil
}

func waitAll(ctx context.Context, log *bindLog, count int, timeout time.Duration) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		return log.count() >= count, nil
	})
}

// create sends the pods with createWorkers in parallel and returns when
// each create call started, and how long the whole batch took.
func (b *bench) create(ctx context.Context, pods []*corev1.Pod) (map[string]time.Time, float64, error) {
	created := make(map[string]time.Time, len(pods))
	var mu sync.Mutex
	var firstErr error
	work := make(chan *corev1.Pod)
	var wg sync.WaitGroup
	start := time.Now()
	for range createWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pod := range work {
				at := time.Now()
				_, err := b.cluster.Client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
				mu.Lock()
				created[pod.Name] = at
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("creating %s: %w", pod.Name, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range pods {
		work <- p
	}
	close(work)
	wg.Wait()
	return created, time.Since(start).Seconds(), firstErr
}

func (b *bench) deletePods(ctx context.Context) error {
	return wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		// Deleting 10,000 pods can outlast one request's timeout; the API
		// server goes on deleting, so ask again until none is left.
		// Its error (a timeout, a reset stream) says nothing the list below
		// does not.
		_ = b.cluster.Client.CoreV1().Pods(namespace).DeleteCollection(ctx,
			metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}, metav1.ListOptions{})
		list, err := b.cluster.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil && len(list.Items) == 0, nil
	})
}

// fillThroughput computes throughput samples and create-to-bound latency.
func fillThroughput(run *Run, created, bound map[string]time.Time) {
	var first, last time.Time
	var latencies []float64
	var binds []time.Time
	for name, c := range created {
		if first.IsZero() || c.Before(first) {
			first = c
		}
		if t, ok := bound[name]; ok {
			latencies = append(latencies, float64(t.Sub(c).Microseconds())/1000)
			binds = append(binds, t)
			if t.After(last) {
				last = t
			}
		}
	}
	if len(binds) == 0 {
		return
	}
	run.ThroughputAvg = float64(len(binds)) / last.Sub(first).Seconds()
	run.ThroughputP50, run.ThroughputP90, run.ThroughputP99 = perSecond(binds)
	run.LatencyP50Ms = percentile(latencies, 50)
	run.LatencyP99Ms = percentile(latencies, 99)
}

// fillDrain computes throughput from the first bind to the last, for the
// drain mode (no create-to-bound latency: every pod waited for the
// scheduler to start).
func fillDrain(run *Run, bound map[string]time.Time) {
	binds := make([]time.Time, 0, len(bound))
	for _, t := range bound {
		binds = append(binds, t)
	}
	if len(binds) < 2 {
		return
	}
	run.ThroughputP50, run.ThroughputP90, run.ThroughputP99 = perSecond(binds) // sorts binds
	run.ThroughputAvg = float64(len(binds)-1) / binds[len(binds)-1].Sub(binds[0]).Seconds()
}

// perSecond buckets events into full seconds from the first one and returns
// the 50th, 90th and 99th percentiles of the per-second counts.
func perSecond(events []time.Time) (p50, p90, p99 float64) {
	sort.Slice(events, func(i, j int) bool { return events[i].Before(events[j]) })
	start := events[0]
	full := int(events[len(events)-1].Sub(start) / time.Second)
	if full == 0 {
		// Everything happened within one second: one (partial) sample.
		rate := float64(len(events)) / max(events[len(events)-1].Sub(start).Seconds(), 0.001)
		return rate, rate, rate
	}
	counts := make([]float64, full)
	for _, e := range events {
		if i := int(e.Sub(start) / time.Second); i < full {
			counts[i]++
		}
	}
	return percentile(counts, 50), percentile(counts, 90), percentile(counts, 99)
}

type usageSnapshot struct {
	scheduler, coordinator, apiserver localcluster.ProcessUsage
	apiserverPID                      int
}

func (b *bench) snapshotUsage(scheduler, coordinator *localcluster.Process) usageSnapshot {
	var s usageSnapshot
	if scheduler != nil {
		s.scheduler, _ = localcluster.Usage(scheduler.PID())
	}
	if coordinator != nil {
		s.coordinator, _ = localcluster.Usage(coordinator.PID())
	}
	if pid, err := b.cluster.APIServerPID(); err == nil {
		s.apiserverPID = pid
		s.apiserver, _ = localcluster.Usage(pid)
	}
	return s
}

func (s usageSnapshot) delta(b *bench, scheduler, coordinator *localcluster.Process, pods int) Run {
	after := b.snapshotUsage(scheduler, coordinator)
	per1k := float64(pods) / 1000
	run := Run{
		SchedulerCPUPer1k:   (after.scheduler.CPUSeconds - s.scheduler.CPUSeconds) / per1k,
		CoordinatorCPUPer1k: (after.coordinator.CPUSeconds - s.coordinator.CPUSeconds) / per1k,
		APIServerCPUPer1k:   (after.apiserver.CPUSeconds - s.apiserver.CPUSeconds) / per1k,
		SchedulerPeakMB:     float64(after.scheduler.PeakRSSBytes) / (1 << 20),
		CoordinatorPeakMB:   float64(after.coordinator.PeakRSSBytes) / (1 << 20),
		APIServerRSSMB:      float64(after.apiserver.RSSBytes) / (1 << 20),
	}
	return run
}

// removeRouting deletes the routing policy, the guards, their bindings and
// the routing table, as if no coordinator had ever run.
func (b *bench) removeRouting(ctx context.Context) error {
	api := b.cluster.Client.AdmissionregistrationV1()
	ignore := func(err error) error {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	if err := ignore(api.MutatingAdmissionPolicyBindings().Delete(ctx, v1alpha1.RoutingPolicyName, metav1.DeleteOptions{})); err != nil {
		return err
	}
	if err := ignore(api.MutatingAdmissionPolicies().Delete(ctx, v1alpha1.RoutingPolicyName, metav1.DeleteOptions{})); err != nil {
		return err
	}
	for _, guard := range []string{v1alpha1.RoutingGuardPolicyName, v1alpha1.AdmissionGuardPolicyName} {
		if err := ignore(api.ValidatingAdmissionPolicyBindings().Delete(ctx, guard, metav1.DeleteOptions{})); err != nil {
			return err
		}
		if err := ignore(api.ValidatingAdmissionPolicies().Delete(ctx, guard, metav1.DeleteOptions{})); err != nil {
			return err
		}
	}
	sy, err := versioned.NewForConfig(b.cluster.Config)
	if err != nil {
		return err
	}
	if err := ignore(sy.SwitchyardV1alpha1().RoutingTables().Delete(ctx, v1alpha1.RoutingPolicyName, metav1.DeleteOptions{})); err != nil {
		return err
	}
	// The API server's policy plugin sees the deletion a moment later.
	probe := localcluster.Pod(namespace, "routing-probe", localcluster.PodSpec{SchedulerName: v1alpha1.RouterSchedulerName})
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		created, err := b.cluster.Client.CoreV1().Pods(namespace).Create(ctx, probe.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && created.Annotations[v1alpha1.RoutedQueueAnnotation] == "", nil
	})
}

// startCoordinator runs switchyard-coordinator as a process and makes sure
// the bench Queues exist.
func (b *bench) startCoordinator(ctx context.Context) (*localcluster.Process, error) {
	sy, err := versioned.NewForConfig(b.cluster.Config)
	if err != nil {
		return nil, err
	}
	for _, q := range benchQueues {
		_, err := sy.SwitchyardV1alpha1().Queues().Create(ctx, &v1alpha1.Queue{
			ObjectMeta: metav1.ObjectMeta{Name: q.name},
			Spec:       queueSpec(q.profile, q.def, q.external),
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
	}
	port, err := localcluster.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	shipped, err := localcluster.ShippedSchedulerConfig()
	if err != nil {
		return nil, err
	}
	profiles, err := coordinator.ProfilesFromSchedulerConfig(shipped)
	if err != nil {
		return nil, err
	}
	return b.cluster.StartProcess(ctx, "coordinator", b.cfg.coordinator, []string{
		"--kubeconfig=" + b.cluster.KubeconfigPath, "--leader-elect=false", "--serve-address=" + addr,
		"--profiles=" + strings.Join(profiles, ","),
		"--kube-api-qps=1000", "--kube-api-burst=2000", "--profiling",
		// No decision stream: no workload measures it, and at full speed it
		// costs about a fifth of the coordinator's CPU and RabbitMQ's.
		"--amqp-url=" + b.cfg.amqpURL,
	}, "http://"+addr+"/readyz")
}

func queueSpec(profile string, def, external bool) v1alpha1.QueueSpec {
	if external {
		return v1alpha1.QueueSpec{External: &v1alpha1.ExternalScheduler{AMQPQueue: externalAMQPQueue}}
	}
	return v1alpha1.QueueSpec{Profile: profile, Default: def}
}

// startShortJob runs one switchyard-shortjob process on the external queue.
func (b *bench) startShortJob(ctx context.Context) (*localcluster.Process, error) {
	port, err := localcluster.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return b.cluster.StartProcess(ctx, "shortjob", b.cfg.shortjob, []string{
		"--kubeconfig=" + b.cluster.KubeconfigPath, "--serve-address=" + addr, "--queue=" + externalAMQPQueue,
		"--amqp-url=" + b.cfg.amqpURL, "--kube-api-qps=1000", "--kube-api-burst=2000", "--prefetch=32",
		// One process per run: nothing to take turns with.
		"--leader-elect=false",
	}, "http://"+addr+"/readyz")
}
