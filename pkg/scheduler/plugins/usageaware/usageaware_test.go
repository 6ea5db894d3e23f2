package usageaware

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	schedulerframework "k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/nodeusage"
)

var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func testArgs(cpuWeight, memoryWeight int64) *config.UsageAwareArgs {
	return &config.UsageAwareArgs{MaxReportAge: metav1.Duration{Duration: time.Minute}, CPUWeight: cpuWeight, MemoryWeight: memoryWeight}
}

// testNode is a node with 4 CPUs and 8 GiB, at resourceVersion rv, with
// the annotation when it is not empty.
func testNode(name, rv, annotation string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: rv, Annotations: map[string]string{}}}
	if annotation != "" {
		n.Annotations[v1alpha1.MeasuredUsageAnnotation] = annotation
	}
	n.Status.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("8Gi")}
	return n
}

func report(milliCPU, memory int64, at time.Time) string {
	return nodeusage.Report{MilliCPU: milliCPU, MemoryBytes: memory, Window: 10 * time.Second, At: at}.Encode()
}

func TestScore(t *testing.T) {
	for _, tc := range []struct {
		name       string
		annotation string
		args       *config.UsageAwareArgs
		node       func(*v1.Node)
		want       int64
	}{
		{name: "no report", want: 50},
		{name: "malformed report", annotation: "{cpu: lots", want: 50},
		{name: "negative usage", annotation: report(-1, 0, testNow), want: 50},
		{name: "no time", annotation: `{"milliCPU":0,"memoryBytes":0,"window":0}`, want: 50},
		{name: "stale report", annotation: report(0, 0, testNow.Add(-2*time.Minute)), want: 50},
		{name: "exactly max age", annotation: report(0, 0, testNow.Add(-time.Minute)), want: 100},
		{name: "dated in year 9999", annotation: report(0, 0, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)), want: 50},
		{name: "ahead beyond clock skew", annotation: report(0, 0, testNow.Add(MaxClockSkew+time.Millisecond)), want: 50},
		{name: "ahead within clock skew", annotation: report(0, 0, testNow.Add(MaxClockSkew)), want: 100},
		{name: "idle", annotation: report(0, 0, testNow), want: 100},
		{name: "a quarter used", annotation: report(1000, 2<<30, testNow), want: 75},
		{name: "over allocatable", annotation: report(8000, 16<<30, testNow), want: 0},
		{name: "cpu weighed only", annotation: report(2000, 0, testNow), args: testArgs(1, 0), want: 50},
		{name: "memory weighed three to one", annotation: report(0, 8<<30, testNow), args: testArgs(1, 3), want: 25},
		{name: "no allocatable cpu counts as full", annotation: report(0, 0, testNow), node: func(n *v1.Node) {
			delete(n.Status.Allocatable, v1.ResourceCPU)
		}, want: 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				args = testArgs(1, 1)
			}
			node := testNode("n", "1", tc.annotation)
			if tc.node != nil {
				tc.node(node)
			}
			pl := newPlugin(args, func() time.Time { return testNow })
			// The same answer whether the handler saw the node first or
			// Score computes it.
			direct := scoreNode(t, pl, node)
			pl.nodeHandler(ktesting.NewLogger(t, ktesting.NewConfig())).OnAdd(node, true)
			if cached := scoreNode(t, pl, node); cached != tc.want || direct != tc.want {
				t.Errorf("score %d (computed in Score) and %d (from the node handler), want %d", direct, cached, tc.want)
			}
		})
	}
}

func scoreNode(t *testing.T, pl *UsageAware, node *v1.Node) int64 {
	t.Helper()
	ni := schedulerframework.NewNodeInfo()
	ni.SetNode(node)
	got, status := pl.Score(context.Background(), nil, &v1.Pod{}, ni)
	if !status.IsSuccess() {
		t.Fatalf("Score: %v", status)
	}
	return got
}

// TestReportsDecodeOncePerUpdate: Score never decodes a report the handler
// has seen, a node update that keeps the annotation costs no decode, and a
// node the handler has not seen yet is computed without being stored.
func TestReportsDecodeOncePerUpdate(t *testing.T) {
	pl := newPlugin(testArgs(1, 1), func() time.Time { return testNow })
	decodes := 0
	pl.nodes.decode = func(raw string) (nodeusage.Report, error) {
		decodes++
		return nodeusage.Decode(raw)
	}
	handler := pl.nodeHandler(ktesting.NewLogger(t, ktesting.NewConfig()))
	step := func(what string, wantDecodes int, wantScore int64, node *v1.Node) {
		t.Helper()
		if got := scoreNode(t, pl, node); got != wantScore {
			t.Errorf("%s: score %d, want %d", what, got, wantScore)
		}
		if decodes != wantDecodes {
			t.Errorf("%s: %d decodes so far, want %d", what, decodes, wantDecodes)
		}
	}

	v1node := testNode("n", "1", report(1000, 2<<30, testNow))
	handler.OnAdd(v1node, false)
	for range 10 {
		step("scores of a seen node", 1, 75, v1node)
	}

	heartbeat := v1node.DeepCopy()
	heartbeat.ResourceVersion = "2"
	heartbeat.Status.Allocatable[v1.ResourceMemory] = resource.MustParse("4Gi")
	handler.OnUpdate(v1node, heartbeat)
	step("an update that keeps the report but halves memory", 1, 62, heartbeat)

	ahead := testNode("n", "3", report(0, 0, testNow))
	step("a node version the handler has not seen", 2, 100, ahead)
	step("it was not stored", 3, 100, ahead)
	handler.OnUpdate(heartbeat, ahead)
	step("once seen, it is decoded no more", 4, 100, ahead)

	handler.OnDelete(cache.DeletedFinalStateUnknown{Key: "n", Obj: ahead})
	if _, ok := pl.nodes.byNode.Load("n"); ok {
		t.Error("a deleted node's report is still held")
	}
}

// TestRejectedReportsAreCountedOncePerReport: a malformed or future-dated
// report counts once when it arrives, not once per Score or heartbeat.
func TestRejectedReportsAreCountedOncePerReport(t *testing.T) {
	registerMetrics()
	pl := newPlugin(testArgs(1, 1), func() time.Time { return testNow })
	handler := pl.nodeHandler(ktesting.NewLogger(t, ktesting.NewConfig()))
	count := func(reason string) float64 {
		v, err := testutil.GetCounterMetricValue(reportsRejected.WithLabelValues(reason))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	malformed, future := count(rejectedMalformed), count(rejectedFuture)
	for i, annotation := range []string{"not json", "not json", report(0, 0, testNow.Add(time.Hour)), report(0, 0, testNow.Add(time.Hour))} {
		node := testNode("n", fmt.Sprint(i), annotation)
		handler.OnUpdate(nil, node)
		scoreNode(t, pl, node)
	}
	if got := count(rejectedMalformed) - malformed; got != 1 {
		t.Errorf("malformed rejections rose by %v, want 1", got)
	}
	if got := count(rejectedFuture) - future; got != 1 {
		t.Errorf("future rejections rose by %v, want 1", got)
	}
}

// BenchmarkScore scores 1,000 reported nodes per op, as one scheduling
// cycle's Score phase does: decodePerCall is how the plugin worked before
// reports were kept per node update (every Score decoded the JSON),
// cached is the plugin now, and noReport the plugin on nodes without an
// agent.
func BenchmarkScore(b *testing.B) {
	const nodes = 1000
	args := testArgs(1, 1)
	infos := make([]fwk.NodeInfo, nodes)
	pl := newPlugin(args, func() time.Time { return testNow })
	handler := pl.nodeHandler(klog.Background())
	for i := range infos {
		node := testNode(fmt.Sprintf("node-%d", i), "1", report(int64(i%4000), int64(i)<<20, testNow))
		ni := schedulerframework.NewNodeInfo()
		ni.SetNode(node)
		infos[i] = ni
		handler.OnAdd(node, true)
	}
	ctx, pod := context.Background(), &v1.Pod{}
	b.Run("decodePerCall", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, ni := range infos {
				node := ni.Node()
				r, err := nodeusage.Decode(node.Annotations[v1alpha1.MeasuredUsageAnnotation])
				_ = score(&nodeUsage{reported: true, err: err, report: r, used: usedFraction(node, r, args)}, testNow, args.MaxReportAge.Duration)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, ni := range infos {
				_, _ = pl.Score(ctx, nil, pod, ni)
			}
		}
	})
	unreported := make([]fwk.NodeInfo, nodes)
	for i := range unreported {
		ni := schedulerframework.NewNodeInfo()
		ni.SetNode(testNode(fmt.Sprintf("bare-%d", i), "1", ""))
		unreported[i] = ni
	}
	b.Run("noReport", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, ni := range unreported {
				_, _ = pl.Score(ctx, nil, pod, ni)
			}
		}
	})
}
