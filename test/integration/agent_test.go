package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2/ktesting"

	"github.com/switchyard-sched/switchyard/pkg/agent"
	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
	"github.com/switchyard-sched/switchyard/pkg/configurator/server"
	"github.com/switchyard-sched/switchyard/pkg/nodeusage"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// fakeNodeCgroups is a cgroup v2 tree in a temp dir laid out as the
// kubelet (systemd driver) and containerd lay out a real node; the test
// plays the kernel by advancing the counters.
type fakeNodeCgroups struct {
	root string
	mu   sync.Mutex
	// load per container path: CPU used per second (millicores), whether
	// throttled, and memory in use.
	load map[string]fakeLoad
	used map[string]time.Duration
}

type fakeLoad struct {
	milliCPU  int64
	throttled bool
	memory    int64
}

func newFakeNodeCgroups(t *testing.T) *fakeNodeCgroups {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &fakeNodeCgroups{root: root, load: map[string]fakeLoad{}, used: map[string]time.Duration{}}
}

// add creates the pod and container cgroups with the spec's limits.
func (f *fakeNodeCgroups) add(t *testing.T, pod *corev1.Pod, load fakeLoad) {
	t.Helper()
	_, id, err := cgroup.ParseContainerID(pod.Status.ContainerStatuses[0].ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	podPath := cgroup.PodPath(cgroup.Systemd, pod.Status.QOSClass, pod.UID)
	ctr := cgroup.ContainerPath(cgroup.Systemd, cgroup.Containerd, pod.Status.QOSClass, pod.UID, id)
	limits := pod.Spec.Containers[0].Resources.Limits
	cpuMax, memMax := "max 100000", "max"
	if q, ok := limits[corev1.ResourceCPU]; ok {
		cpuMax = fmt.Sprintf("%d 100000", q.MilliValue()*100)
	}
	if q, ok := limits[corev1.ResourceMemory]; ok {
		memMax = fmt.Sprint(q.Value())
	}
	for rel, files := range map[string]map[string]string{
		podPath: {"cpu.max": "max 100000", "memory.max": "max"},
		ctr:     {"cpu.max": cpuMax, "memory.max": memMax},
	} {
		dir := filepath.Join(f.root, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.mu.Lock()
	f.load[ctr] = load
	f.mu.Unlock()
	f.tick(0)
}

// tick advances every container's counters by d under its load.
func (f *fakeNodeCgroups) tick(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var total time.Duration
	var memory int64
	defer func() {
		// kubepods.slice holds every pod: the sum, as the kernel keeps it.
		_ = os.MkdirAll(filepath.Join(f.root, "kubepods.slice"), 0o755)
		atomicWrite(filepath.Join(f.root, "kubepods.slice", "cpu.stat"), fmt.Sprintf("usage_usec %d\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n", total.Microseconds()))
		atomicWrite(filepath.Join(f.root, "kubepods.slice", "memory.current"), fmt.Sprintln(memory))
	}()
	for ctr, l := range f.load {
		total += f.used[ctr] + time.Duration(l.milliCPU)*d/1000
		memory += l.memory
		f.used[ctr] += time.Duration(l.milliCPU) * d / 1000
		periods := int64(f.used[ctr] / (100 * time.Millisecond))
		throttled := int64(0)
		if l.throttled {
			throttled = periods
		}
		stat := fmt.Sprintf("usage_usec %d\nuser_usec %d\nsystem_usec 0\nnr_periods %d\nnr_throttled %d\nthrottled_usec %d\n",
			f.used[ctr].Microseconds(), f.used[ctr].Microseconds(), periods, throttled, throttled*1000)
		// The kernel never shows a half-written file: replace atomically.
		atomicWrite(filepath.Join(f.root, ctr, "cpu.stat"), stat)
		atomicWrite(filepath.Join(f.root, ctr, "memory.current"), fmt.Sprintln(l.memory))
	}
}

func autoscaledPod(ns, name, node string, requests, limits corev1.ResourceList, annotations map[string]string) *corev1.Pod {
	pod := localcluster.Pod(ns, name, localcluster.PodSpec{Labels: map[string]string{v1alpha1.AutoscaleLabel: "true", "app": "autoscaled"}})
	pod.Annotations = annotations
	pod.Spec.NodeName = node
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: requests, Limits: limits}
	return pod
}

func resources(cpu, memory string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)}
}

// TestAgentResizesPods runs the agent against pods on a simulated node in
// the real API server, with a faithful cgroup v2 tree: a throttled
// Guaranteed pod is resized up through pods/resize (requests follow, so it
// stays Guaranteed), a throttled Burstable pod up to its max-cpu annotation
// and no further, and an idle one's memory comes down but never below its
// usage plus headroom.
func TestAgentResizesPods(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nodes, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "8", Memory: "16Gi"})
	ns, node := selector["switchyard.io/test-nodes"], nodes[0]
	pods := []*corev1.Pod{
		autoscaledPod(ns, "guaranteed", node, resources("500m", "512Mi"), resources("500m", "512Mi"), nil),
		autoscaledPod(ns, "capped", node, resources("250m", "256Mi"), resources("500m", "512Mi"), map[string]string{v1alpha1.MaxCPUAnnotation: "800m"}),
		autoscaledPod(ns, "idle", node, resources("100m", "128Mi"), resources("500m", "1Gi"), nil),
	}
	if _, err := cluster.CreatePods(ctx, pods...); err != nil {
		t.Fatal(err)
	}
	fake := newFakeNodeCgroups(t)
	fake.add(t, waitRunning(ctx, t, ns, "guaranteed"), fakeLoad{milliCPU: 2000, throttled: true, memory: 300 << 20})
	fake.add(t, waitRunning(ctx, t, ns, "capped"), fakeLoad{milliCPU: 2000, throttled: true, memory: 300 << 20})
	fake.add(t, waitRunning(ctx, t, ns, "idle"), fakeLoad{milliCPU: 5, memory: 200 << 20})
	p := guardian.DefaultPolicy()
	p.Window, p.Windows, p.Cooldown, p.MaxChangesPerMinute = 300*time.Millisecond, 2, 0, 600
	defer runAgent(ctx, t, fake, node, p)()

	limit := func(name string, res corev1.ResourceName) (limit, request resource.Quantity, qos corev1.PodQOSClass) {
		pod, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := pod.Spec.Containers[0].Resources
		return r.Limits[res], r.Requests[res], pod.Status.QOSClass
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		g, _, _ := limit("guaranteed", corev1.ResourceCPU)
		c, _, _ := limit("capped", corev1.ResourceCPU)
		i, _, _ := limit("idle", corev1.ResourceMemory)
		return g.MilliValue() >= 1000 && c.MilliValue() == 800 && i.Value() < 1<<30, nil
	})
	g, gReq, gQoS := limit("guaranteed", corev1.ResourceCPU)
	c, _, _ := limit("capped", corev1.ResourceCPU)
	i, _, _ := limit("idle", corev1.ResourceMemory)
	t.Logf("after the agent: guaranteed cpu %s (request %s, %s), capped cpu %s, idle memory %s", g.String(), gReq.String(), gQoS, c.String(), i.String())
	if err != nil {
		t.Fatalf("resizes did not follow the policy: %v", err)
	}
	if gReq.Cmp(g) != 0 || gQoS != corev1.PodQOSGuaranteed {
		t.Errorf("guaranteed pod: request %s, limit %s, QoS %s; a resize must keep it Guaranteed", gReq.String(), g.String(), gQoS)
	}
	// Keep watching: the cap holds and memory never goes below usage + headroom.
	time.Sleep(2 * time.Second)
	c, _, _ = limit("capped", corev1.ResourceCPU)
	i, _, _ = limit("idle", corev1.ResourceMemory)
	if c.MilliValue() > 800 {
		t.Errorf("capped pod raised to %s, above its max-cpu annotation 800m", c.String())
	}
	if floor := int64(200<<20) + p.MemoryHeadroom; i.Value() < floor {
		t.Errorf("idle pod's memory limit %s is below its usage plus headroom (%d)", i.String(), floor)
	}

	// The node's measured usage is published for UsageAware: about
	// 4 CPUs (two pods at 2000m, one at 5m) and 800Mi.
	n, err := cluster.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	report, err := nodeusage.Decode(n.Annotations[v1alpha1.MeasuredUsageAnnotation])
	if err != nil {
		t.Fatalf("node usage report: %v", err)
	}
	t.Logf("node usage report: %+v", report)
	if report.MilliCPU < 3000 || report.MilliCPU > 5000 || report.MemoryBytes != 800<<20 {
		t.Errorf("node usage report %+v, want about 4005m and exactly 800Mi", report)
	}
}

// waitRunning waits until the simulated kubelet runs the pod.
func waitRunning(ctx context.Context, t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) == 0 {
			return false, nil
		}
		pod = p
		return true, nil
	}); err != nil {
		t.Fatalf("pod %s not running: %v", name, err)
	}
	return pod
}

// runAgent runs the agent for node on the fake cgroups, with the resize
// actuator and 50ms samples, and the fake load ticking; the returned func
// stops both (the load first: it writes into the test's TempDir, which
// must outlive it).
func runAgent(ctx context.Context, t *testing.T, fake *fakeNodeCgroups, node string, p guardian.Policy) (stop func()) {
	return runAgentWith(ctx, t, fake, node, p, nil, "")
}

// runAgentWith is runAgent with the agent's metrics in reg (a new registry
// when nil), served on secureAddr when it is set.
func runAgentWith(ctx context.Context, t *testing.T, fake *fakeNodeCgroups, node string, p guardian.Policy, reg *prometheus.Registry, secureAddr string) (stop func()) {
	sy := switchyardClient(t)
	actx, cancel := context.WithCancel(ctx)
	ticking := make(chan struct{})
	go func() {
		defer close(ticking)
		for actx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			fake.tick(50 * time.Millisecond)
		}
	}()
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(actx, agent.RunOptions{Client: cluster.Client, Switchyard: sy, Node: node, CgroupRoot: fake.root, Driver: cgroup.Systemd,
			Actuator: "resize", Options: agent.Options{SampleInterval: 50 * time.Millisecond, Policy: p}, ReportInterval: 300 * time.Millisecond, Registry: reg,
			SecureServeAddress: secureAddr})
	}()
	return func() {
		cancel()
		<-ticking
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestAgentWaitsForADeferredResize: on a 2-CPU node where another pod
// holds 1200m, the agent's raise of a throttled Guaranteed pod does not
// fit beside it; the (simulated) kubelet defers it, as a kubelet does. The
// agent reports ResizeDeferred once, decides from the applied 500m and
// stacks no second change while the first is unfinished; once the other
// pod goes away the kubelet retries, the resize is applied, and the agent
// goes on from there.
func TestAgentWaitsForADeferredResize(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nodes, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "2", Memory: "8Gi"})
	ns, node := selector["switchyard.io/test-nodes"], nodes[0]
	hog := localcluster.Pod(ns, "hog", localcluster.PodSpec{})
	hog.Spec.NodeName = node
	hog.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: resources("1200m", "1Gi")}
	burst := autoscaledPod(ns, "burst", node, resources("500m", "512Mi"), resources("500m", "512Mi"), nil)
	if _, err := cluster.CreatePods(ctx, hog, burst); err != nil {
		t.Fatal(err)
	}
	get := func(name string) *corev1.Pod {
		pod, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return pod
	}
	var pod *corev1.Pod
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		pod = get("burst")
		return pod.Status.Phase == corev1.PodRunning && len(pod.Status.ContainerStatuses) == 1 && get("hog").Status.Phase == corev1.PodRunning, nil
	}); err != nil {
		t.Fatalf("pods not running: %v", err)
	}
	fake := newFakeNodeCgroups(t)
	fake.add(t, pod, fakeLoad{milliCPU: 2000, throttled: true, memory: 300 << 20})
	p := guardian.DefaultPolicy()
	p.Window, p.Windows, p.Cooldown, p.MaxChangesPerMinute = 300*time.Millisecond, 2, 0, 600
	defer runAgent(ctx, t, fake, node, p)()

	pending := func(pod *corev1.Pod) *corev1.PodCondition {
		for i, c := range pod.Status.Conditions {
			if c.Type == corev1.PodResizePending && c.Status == corev1.ConditionTrue {
				return &pod.Status.Conditions[i]
			}
		}
		return nil
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		pod = get("burst")
		return pending(pod) != nil, nil
	}); err != nil {
		t.Fatalf("the raise was never deferred: %v", err)
	}
	c := pending(pod)
	asked := pod.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU]
	t.Logf("resize to %s: %s: %s", asked.String(), c.Reason, c.Message)
	if c.Reason != corev1.PodReasonDeferred {
		t.Fatalf("PodResizePending reason %q, want Deferred", c.Reason)
	}
	// The agent keeps sampling the throttled container for 1.5s (30
	// samples) and changes nothing: the first resize is unfinished.
	time.Sleep(1500 * time.Millisecond)
	pod = get("burst")
	if now := pod.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU]; now.Cmp(asked) != 0 {
		t.Fatalf("the agent stacked a change on a deferred resize: %s, then %s", asked.String(), now.String())
	}
	if applied := pod.Status.ContainerStatuses[0].Resources.Limits[corev1.ResourceCPU]; applied.MilliValue() != 500 {
		t.Fatalf("applied cpu limit %s while deferred, want 500m", applied.String())
	}
	events := func(reason string) int {
		list, err := cluster.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + reason + ",regarding.name=burst"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range list.Items {
			n += max(1, int(e.DeprecatedCount))
			if e.Series != nil {
				n += int(e.Series.Count) - 1
			}
			t.Logf("event %s: %s", e.Reason, e.Note)
		}
		return n
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return events("ResizeDeferred") > 0, nil
	}); err != nil {
		t.Fatal("no ResizeDeferred event on the pod")
	}
	if n := events("ResizeDeferred"); n != 1 {
		t.Errorf("%d ResizeDeferred events, want 1 for one deferred resize", n)
	}

	// Room frees up: the kubelet retries and applies the resize.
	zero := int64(0)
	if err := cluster.Client.CoreV1().Pods(ns).Delete(ctx, "hog", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		pod = get("burst")
		applied := pod.Status.ContainerStatuses[0].Resources.Limits[corev1.ResourceCPU]
		return pending(pod) == nil && applied.MilliValue() >= asked.MilliValue(), nil
	}); err != nil {
		t.Fatalf("the deferred resize was never applied after the node freed up: %v (conditions %+v)", err, pod.Status.Conditions)
	}
	t.Logf("applied after the retry: cpu %s", pod.Status.ContainerStatuses[0].Resources.Limits.Cpu().String())
}

// TestAgentStaysInsideTheQueueQuota: a throttled Guaranteed pod of a queue
// with a quota of one CPU, holding 500m of it, is raised by the agent to
// no more than the 500m left (a Guaranteed pod's requests follow its
// limits, so a raise uses quota); the next raise is refused with a
// QueueQuotaExceeded Event, and the Queue's status.used shows the quota
// taken.
func TestAgentStaysInsideTheQueueQuota(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nodes, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "8", Memory: "16Gi"})
	ns, node := selector["switchyard.io/test-nodes"], nodes[0]
	createRoutedQueue(ctx, t, ns, "agent-quota", v1alpha1.QueueSpec{Profile: "switchyard-batch", Quota: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}})
	pod := queuedPod(ns, "guaranteed", "agent-quota", selector)
	pod.Labels[v1alpha1.AutoscaleLabel] = "true"
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: resources("500m", "512Mi"), Limits: resources("500m", "512Mi")}
	if _, err := cluster.CreatePods(ctx, pod); err != nil {
		t.Fatal(err)
	}
	get := func() *corev1.Pod {
		p, err := cluster.Client.CoreV1().Pods(ns).Get(ctx, "guaranteed", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		pod = get()
		return pod.Status.Phase == corev1.PodRunning && len(pod.Status.ContainerStatuses) == 1, nil
	}); err != nil {
		t.Fatalf("queued pod not running: %v", err)
	}
	if pod.Spec.NodeName != node {
		t.Fatalf("pod bound to %s, want the test node %s", pod.Spec.NodeName, node)
	}
	fake := newFakeNodeCgroups(t)
	fake.add(t, pod, fakeLoad{milliCPU: 4000, throttled: true, memory: 300 << 20})
	p := guardian.DefaultPolicy()
	p.Window, p.Windows, p.Cooldown, p.MaxChangesPerMinute = 300*time.Millisecond, 2, 0, 600
	defer runAgent(ctx, t, fake, node, p)()

	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		list, err := cluster.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=QueueQuotaExceeded,regarding.name=guaranteed"})
		if err != nil || len(list.Items) == 0 {
			return false, nil
		}
		t.Logf("event: %s", list.Items[0].Note)
		return true, nil
	}); err != nil {
		t.Fatalf("no QueueQuotaExceeded event: %v", err)
	}
	// Keep throttling for a while: the quota holds.
	time.Sleep(time.Second)
	pod = get()
	limit, request := pod.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU], pod.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]
	t.Logf("after the agent: cpu limit %s, request %s", limit.String(), request.String())
	if request.MilliValue() > 1000 || limit.MilliValue() > 1000 {
		t.Fatalf("the agent raised the pod to request %s / limit %s, past its queue's quota of 1 CPU", request.String(), limit.String())
	}
	if limit.MilliValue() <= 500 {
		t.Errorf("limit %s: the 500m left in the quota was not used", limit.String())
	}
	waitForQueueStatus(ctx, t, "agent-quota", func(st v1alpha1.QueueStatus) bool {
		used := st.Used[corev1.ResourceCPU]
		return used.MilliValue() == request.MilliValue()
	})
}

func atomicWrite(path, content string) {
	tmp := path + ".tmp"
	if os.WriteFile(tmp, []byte(content), 0o644) == nil {
		_ = os.Rename(tmp, path)
	}
}

// TestUsageAwarePrefersLessUsedNode: two otherwise equal nodes, one
// reported (as the agent reports) at 90% measured usage, one at 10%: the
// default profile's UsageAware sends new pods to the less used one.
func TestUsageAwarePrefersLessUsedNode(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nodes, selector := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "8", Memory: "16Gi"})
	for i, cpu := range []int64{7200, 800} {
		reportUsage(ctx, t, nodes[i], cpu, 8, time.Now())
	}
	if perNode := placeWebPods(ctx, t, selector, 4); perNode[nodes[1]] != 4 {
		t.Errorf("pods per node %v, want all 4 on %s (10%% measured usage) rather than %s (90%%)", perNode, nodes[1], nodes[0])
	}
}

// TestUsageAwareDistrustsAFutureReport: a report dated in year 9999 claims
// an idle node; it is not fresh (it would otherwise score 100 until then),
// so the node scores as unknown, below a fresh report at 10%, and the
// scheduler counts the rejection once per report.
func TestUsageAwareDistrustsAFutureReport(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	rejected := func() float64 {
		return gathered(t, "switchyard_usageaware_reports_rejected_total", "reason", "future", legacyregistry.DefaultGatherer)
	}
	before := rejected()
	nodes, selector := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "8", Memory: "16Gi"})
	reportUsage(ctx, t, nodes[0], 0, 8, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	reportUsage(ctx, t, nodes[1], 800, 8, time.Now())
	if perNode := placeWebPods(ctx, t, selector, 4); perNode[nodes[1]] != 4 {
		t.Errorf("pods per node %v, want all 4 on %s (fresh, 10%% used) rather than %s (a report dated 9999 claiming 0%%)", perNode, nodes[1], nodes[0])
	}
	// Every in-process profile with UsageAware handles the node update
	// once; at least one counted it.
	if got := rejected() - before; got < 1 {
		t.Errorf("switchyard_usageaware_reports_rejected_total{reason=future} rose by %v, want at least 1", got)
	}
}

// reportUsage writes a node's usage report as the agent does: milliCPU in
// use of a node with cores CPUs, and memory in the same proportion of 2 GiB
// per core.
func reportUsage(ctx context.Context, t *testing.T, node string, milliCPU, cores int64, at time.Time) {
	t.Helper()
	report := nodeusage.Report{MilliCPU: milliCPU, MemoryBytes: int64(float64(cores*2<<30) * float64(milliCPU) / float64(cores*1000)), Window: 10 * time.Second, At: at}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.MeasuredUsageAnnotation, report.Encode())
	if _, err := cluster.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// placeWebPods creates n small pods of the default profile on the selected
// test nodes and returns how many bound on each.
func placeWebPods(ctx context.Context, t *testing.T, selector map[string]string, n int) map[string]int {
	t.Helper()
	ns := selector["switchyard.io/test-nodes"]
	createPods(ctx, t, ns, "web", n, localcluster.PodSpec{SchedulerName: "switchyard", CPU: "100m", Memory: "128Mi",
		Labels: map[string]string{"app": "web"}, NodeSelector: selector})
	pods, err := cluster.WaitForBound(ctx, ns, "app=web", n, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return localcluster.PodsPerNode(pods)
}

// TestAgentPolicyFromConfigurator changes the policy of every agent at
// once, then of one node's agent, through the configurator.
func TestAgentPolicyFromConfigurator(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "agent-policy"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	rc := startConfigurator(ctx, t, ns, "", false, server.Options{CheckInterval: 200 * time.Millisecond})
	if err := cluster.BindClusterRole(ctx, ns+"-agent-config", "switchyard-agent-config", ns, "switchyard-agent"); err != nil {
		t.Fatal(err)
	}
	policyURL := map[string]string{}
	for _, node := range []string{"node-a", "node-b"} {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu memory\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, "managed"), 0o755); err != nil {
			t.Fatal(err)
		}
		addr := freeAddress(t)
		// The agent's pod, running as the agent's service account, which
		// the shipped switchyard-agent-config ClusterRole lets register
		// for the service switchyard-agent only.
		token, err := cluster.PodToken(ctx, ns, node, "switchyard-agent", "127.0.0.1", v1alpha1.ConfiguratorAudience)
		if err != nil {
			t.Fatal(err)
		}
		policyURL[node] = "http://" + addr + "/policy"
		actx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			err := agent.Run(actx, agent.RunOptions{CgroupRoot: root, StandaloneDir: "managed", Actuator: "cgroup", ServeAddress: addr,
				Options: agent.Options{Policy: guardian.DefaultPolicy()},
				Configurator: &configurator.ClientOptions{URL: rc.URL, Service: "switchyard-agent", Address: "http://" + addr, Token: token,
					HTTPClient: rc.HTTP, HeartbeatInterval: 200 * time.Millisecond}})
			if err != nil {
				t.Error(err)
			}
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
	policy := func(node string) guardian.Policy {
		var p guardian.Policy
		status, body := doJSON(t, http.MethodGet, policyURL[node], "", nil)
		if status == http.StatusOK {
			_ = json.Unmarshal(body, &p)
		}
		return p
	}
	waitFor(ctx, t, "both agents registered", 20*time.Second, func() bool { return len(replicasOf(t, rc, "switchyard-agent")) == 2 })
	setConfig(t, rc, "switchyard-agent", nil, map[string]string{"window": "5s", "upper": "0.9"})
	waitFor(ctx, t, "every agent on the new policy", 20*time.Second, func() bool {
		return policy("node-a").Window == 5*time.Second && policy("node-b").Window == 5*time.Second && policy("node-b").Upper == 0.9
	})
	var nodeB int
	for _, r := range replicasOf(t, rc, "switchyard-agent") {
		if r.Pod == "node-b" {
			nodeB = r.PodNumber
		}
	}
	setConfig(t, rc, "switchyard-agent", &nodeB, map[string]string{"cooldown": "2m"})
	waitFor(ctx, t, "node-b's agent on its own cooldown", 20*time.Second, func() bool { return policy("node-b").Cooldown == 2*time.Minute })
	if c := policy("node-a").Cooldown; c != guardian.DefaultPolicy().Cooldown {
		t.Errorf("node-a's cooldown changed to %s by a change for node-b", c)
	}
	// A bad policy is refused and the old one kept.
	setConfig(t, rc, "switchyard-agent", nil, map[string]string{"lower": "0.95"})
	time.Sleep(time.Second)
	if p := policy("node-a"); p.Lower != guardian.DefaultPolicy().Lower || p.Window != 5*time.Second {
		t.Errorf("node-a took an invalid policy: %+v", p)
	}
}

// TestAgentNodeScope: the shipped switchyard-agent-node-scope policy lets an
// agent, authenticated by the token bound to its pod on a node, report on
// its own Node and resize its own node's pods, and refuses everything else
// the agent's ClusterRole would allow, through the real agent actuator.
func TestAgentNodeScope(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nodes, _ := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "4", Memory: "8Gi"})
	mine, other := nodes[0], nodes[1]
	ns := "switchyard-agent" // where the manifests run the agent; the policy names its account
	for _, file := range []string{"manifests/agent/namespace.yaml", "manifests/agent/node-scope.yaml"} {
		objs, err := localcluster.LoadManifests(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := cluster.Apply(ctx, objs); err != nil {
			t.Fatal(err)
		}
	}
	if err := cluster.ApplyKind(ctx, "ClusterRole", "manifests/agent/rbac.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.BindClusterRole(ctx, "test-switchyard-agent", "switchyard-agent", ns, "switchyard-agent"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.CreateServiceAccount(ctx, ns, "switchyard-agent"); err != nil {
		t.Fatal(err)
	}
	// The agent's own pod, on its node, as the DaemonSet would place it.
	agentPod := localcluster.Pod(ns, "switchyard-agent-"+mine, localcluster.PodSpec{})
	agentPod.Spec.ServiceAccountName, agentPod.Spec.NodeName = "switchyard-agent", mine
	created, err := cluster.CreatePods(ctx, agentPod)
	if err != nil {
		t.Fatal(err)
	}
	clientWith := func(token string) kubernetes.Interface {
		config := rest.AnonymousClientConfig(cluster.Config)
		config.BearerToken = token
		c, err := kubernetes.NewForConfig(config)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	bound, err := cluster.Token(ctx, ns, "switchyard-agent", "", created[0])
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := cluster.Token(ctx, ns, "switchyard-agent", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	agentClient, unboundClient := clientWith(bound), clientWith(unbound)

	// Workload pods on both nodes, bound there directly.
	work := map[string]*corev1.Pod{}
	for _, node := range []string{mine, other} {
		p := autoscaledPod(ns, "work-"+node, node, resources("100m", "64Mi"), resources("200m", "64Mi"), nil)
		created, err := cluster.CreatePods(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		work[node] = created[0]
	}
	report := func(client kubernetes.Interface, node string, extra map[string]string) error {
		annotations := map[string]string{v1alpha1.MeasuredUsageAnnotation: `{"milliCPU":100}`}
		for k, v := range extra {
			annotations[k] = v
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
		_, err := client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	label := func(client kubernetes.Interface, node string) error {
		patch := []byte(`{"metadata":{"labels":{"switchyard-test/stolen":"yes"}}}`)
		_, err := client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	resize := func(client kubernetes.Interface, node string) error {
		pod := work[node]
		// The agent's own actuator, with the resize sent as a dry run.
		dry := dryRunClient{Interface: client}
		return agent.ResizeActuator{Client: dry}.Apply(ctx, agent.Target{Key: pod.Namespace + "/" + pod.Name, Object: pod, Container: pod.Spec.Containers[0].Name},
			guardian.Decision{Resource: guardian.CPU, To: 300})
	}
	cases := []struct {
		name string
		do   func() error
		want string // "" means allowed
	}{
		{"report on its own Node", func() error { return report(agentClient, mine, nil) }, ""},
		{"resize a pod on its node", func() error { return resize(agentClient, mine) }, ""},
		{"report on another Node", func() error { return report(agentClient, other, nil) }, "may not update Node " + other},
		{"change another annotation of its Node", func() error { return report(agentClient, mine, map[string]string{"switchyard-test/other": "x"}) }, "only the switchyard.io/measured-usage"},
		{"label its Node", func() error { return label(agentClient, mine) }, "only the switchyard.io/measured-usage"},
		{"resize a pod on another node", func() error { return resize(agentClient, other) }, "which is on node " + other},
		{"report without a pod-bound token", func() error { return report(unboundClient, mine, nil) }, "token bound to its pod on a node"},
	}
	for _, tc := range cases {
		var err error
		// The policy reaches the admission chain a moment after it is written.
		_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			err = tc.do()
			return tc.want == "" || err != nil, nil
		})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want 403 Forbidden with %q", tc.name, err, tc.want)
		default:
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

// dryRunClient sends every pod patch as a server-side dry run: admission
// runs in full, nothing is stored.
type dryRunClient struct{ kubernetes.Interface }

func (c dryRunClient) CoreV1() corev1client.CoreV1Interface { return dryRunCore{c.Interface.CoreV1()} }

type dryRunCore struct{ corev1client.CoreV1Interface }

func (c dryRunCore) Pods(namespace string) corev1client.PodInterface {
	return dryRunPods{c.CoreV1Interface.Pods(namespace)}
}

type dryRunPods struct{ corev1client.PodInterface }

func (p dryRunPods) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, subresources ...string) (*corev1.Pod, error) {
	opts.DryRun = []string{metav1.DryRunAll}
	return p.PodInterface.Patch(ctx, name, pt, data, opts, subresources...)
}
