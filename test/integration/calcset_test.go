package integration

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2/ktesting"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// setMember builds one member of a calculation set for switchyard-batch,
// the profile that ships with CalcSet enabled.
func setMember(ns, set string, i, size int, cpu string, selector map[string]string, extra map[string]string) *corev1.Pod {
	labels := map[string]string{v1alpha1.CalcSetLabel: set, v1alpha1.CalcSetSizeLabel: strconv.Itoa(size), "set": set}
	for k, v := range extra {
		labels[k] = v
	}
	return localcluster.Pod(ns, fmt.Sprintf("%s-%d", set, i), localcluster.PodSpec{
		SchedulerName: "switchyard-batch", CPU: cpu, Memory: "256Mi", Labels: labels, NodeSelector: selector,
	})
}

// fillNode binds a pod using cpu to the node directly, as a pod placed
// before the test, so that nodes start unevenly used.
func fillNode(ctx context.Context, t *testing.T, ns, node, cpu string) {
	t.Helper()
	pod := localcluster.Pod(ns, "filler-"+node, localcluster.PodSpec{CPU: cpu, Labels: map[string]string{"app": "filler"}})
	pod.Spec.NodeName = node
	if _, err := cluster.CreatePods(ctx, pod); err != nil {
		t.Fatal(err)
	}
}

// neverBound records every observed moment at which a member of the set
// has a node: stronger than polling, it sees binds a poll could miss.
func neverBound(set string) func(map[types.UID]*corev1.Pod, *corev1.Pod) error {
	return func(_ map[types.UID]*corev1.Pod, changed *corev1.Pod) error {
		if changed.Labels[v1alpha1.CalcSetLabel] == set && changed.Spec.NodeName != "" {
			return fmt.Errorf("member %s of set %s was bound to %s; the set cannot fit and must bind nothing", changed.Name, set, changed.Spec.NodeName)
		}
		return nil
	}
}

// assertNeverBound checks, for a while, that no pod matching the selector
// gets a node.
func assertNeverBound(ctx context.Context, t *testing.T, ns, selector string, d time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, d, true, func(ctx context.Context) (bool, error) {
		list, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		for _, p := range list.Items {
			if p.Spec.NodeName != "" {
				return true, fmt.Errorf("pod %s was bound to %s; want none of %q bound", p.Name, p.Spec.NodeName, selector)
			}
		}
		return false, nil
	})
	if !wait.Interrupted(err) {
		t.Fatal(err)
	}
}

// TestCalcSetNodeLocality checks that a set of 4 with node locality lands
// on one node, even though bin-packing alone would have spread its members
// over the nodes already half full.
func TestCalcSetNodeLocality(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nodes, selector := testNodes(ctx, t, 4, localcluster.NodeSpec{CPU: "4", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]
	for _, node := range nodes[:3] {
		fillNode(ctx, t, ns, node, "2") // two CPUs left: room for two members each
	}
	for i := range 4 {
		if _, err := cluster.CreatePods(ctx, setMember(ns, "snapshot", i, 4, "1", selector, nil)); err != nil {
			t.Fatal(err)
		}
	}
	pods, err := cluster.WaitForBound(ctx, ns, "set=snapshot", 4, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	perNode := localcluster.PodsPerNode(pods)
	if len(perNode) != 1 || perNode[nodes[3]] != 4 {
		t.Errorf("set of 4 with node locality placed as %v, want all 4 on the empty node %s", perNode, nodes[3])
	}
}

// TestCalcSetZoneLocality checks that a set with zone locality stays in one
// zone: only zone c has room for all four members, spread over its nodes.
func TestCalcSetZoneLocality(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	name := "test-calcset-zone-locality"
	selector, nodes, zoneOf := zonedNodes(ctx, t, name, "zone-a", "zone-b", "zone-c")
	for _, n := range nodes {
		used := "3" // zones a and b: one CPU free per node, two per zone
		if zoneOf[n] == "zone-c" {
			used = "1500m" // zone c: 2.5 CPUs free per node, five in the zone
		}
		fillNode(ctx, t, name, n, used)
	}
	for i := range 4 {
		pod := setMember(name, "shards", i, 4, "1", selector, map[string]string{v1alpha1.CalcSetLocalityLabel: "zone"})
		if _, err := cluster.CreatePods(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	pods, err := cluster.WaitForBound(ctx, name, "set=shards", 4, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if zoneOf[p.Spec.NodeName] != "zone-c" {
			t.Errorf("member %s on %s in %s, want zone-c (the only zone with room for the whole set)", p.Name, p.Spec.NodeName, zoneOf[p.Spec.NodeName])
		}
	}
	if n := len(localcluster.PodsPerNode(pods)); n != 2 {
		t.Errorf("set used %d nodes, want both nodes of zone-c (no single node has room for four)", n)
	}
}

// TestCalcSetNeverPartial checks that a set which cannot fit on any single
// node binds no member at all, while ordinary pods on the same nodes are
// scheduled, and that the user is told why.
func TestCalcSetNeverPartial(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "4", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]
	observer, err := cluster.ObservePods(ctx, ns, neverBound("toolarge"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := cluster.CreatePods(ctx, setMember(ns, "toolarge", i, 5, "1", selector, nil)); err != nil {
			t.Fatal(err)
		}
	}
	createPods(ctx, t, ns, "plain", 4, localcluster.PodSpec{
		SchedulerName: "switchyard-batch", CPU: "1", Memory: "256Mi", Labels: map[string]string{"app": "plain"}, NodeSelector: selector,
	})
	if _, err := cluster.WaitForBound(ctx, ns, "app=plain", 4, time.Minute); err != nil {
		t.Fatal(err)
	}
	waitForEvent(ctx, t, ns, "", "CalcSetDoesNotFit", "do not fit any single node")
	assertNeverBound(ctx, t, ns, "set=toolarge", 5*time.Second)
	for _, err := range observer.Stop() {
		t.Error(err)
	}
}

// TestCalcSetCompetingSets checks that two sets which each fit alone, but
// not together, do not deadlock: one completes while the other binds
// nothing, and the other completes once the first one's pods go away.
func TestCalcSetCompetingSets(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "4", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]
	// Interleave the members so that both sets reserve before either completes.
	for i := range 3 {
		for _, set := range []string{"red", "blue"} {
			if _, err := cluster.CreatePods(ctx, setMember(ns, set, i, 3, "1", selector, nil)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var winner, loser string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, set := range []string{"red", "blue"} {
			list, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "set=" + set})
			if err != nil {
				return false, nil
			}
			bound := 0
			for _, p := range list.Items {
				if p.Spec.NodeName != "" {
					bound++
				}
			}
			if bound == 3 {
				winner = set
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("neither competing set completed: %v", err)
	}
	loser = map[string]string{"red": "blue", "blue": "red"}[winner]
	assertNeverBound(ctx, t, ns, "set="+loser, 3*time.Second)

	// The winner finishes: its pods go away, and the loser takes the room.
	if err := cluster.Client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)},
		metav1.ListOptions{LabelSelector: "set=" + winner}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.WaitForBound(ctx, ns, "set="+loser, 3, time.Minute); err != nil {
		t.Fatalf("set %s did not complete after %s freed the node: %v", loser, winner, err)
	}
}

// TestCalcSetMemberDeleted checks that when a member that cannot be placed
// is deleted while the others wait in Permit, the set waits for its
// replacement and binds nothing early, then completes with it.
func TestCalcSetMemberDeleted(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 2, localcluster.NodeSpec{CPU: "4", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]
	window := map[string]string{v1alpha1.CalcSetWindowLabel: "5m"}
	for i := range 3 {
		if _, err := cluster.CreatePods(ctx, setMember(ns, "etl", i, 4, "500m", selector, window)); err != nil {
			t.Fatal(err)
		}
	}
	// The fourth member asks for a node label no node has: it cannot be
	// placed, so the other three are reserved and wait for it.
	stuck := setMember(ns, "etl", 3, 4, "500m", map[string]string{"switchyard.io/test-nodes": ns, "disk": "none-has-it"}, window)
	if _, err := cluster.CreatePods(ctx, stuck); err != nil {
		t.Fatal(err)
	}
	assertNeverBound(ctx, t, ns, "set=etl", 3*time.Second)
	if err := cluster.Client.CoreV1().Pods(ns).Delete(ctx, stuck.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	assertNeverBound(ctx, t, ns, "set=etl", 3*time.Second)
	replacement := setMember(ns, "etl", 4, 4, "500m", selector, window)
	if _, err := cluster.CreatePods(ctx, replacement); err != nil {
		t.Fatal(err)
	}
	pods, err := cluster.WaitForBound(ctx, ns, "set=etl", 4, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if perNode := localcluster.PodsPerNode(pods); len(perNode) != 1 {
		t.Errorf("set with its replacement member placed as %v, want one node", perNode)
	}
}

// TestCalcSetBadLabels checks that members with labels the plugin cannot
// use are held with an InvalidCalcSet event that says what to fix, that the
// scheduler keeps serving other pods, and that fixing the label releases
// the pod.
func TestCalcSetBadLabels(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "4", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]
	cases := []struct {
		name, mention string
		labels        map[string]string
	}{
		{"size-nan", "is not a number", map[string]string{v1alpha1.CalcSetSizeLabel: "four"}},
		{"size-zero", "must be at least 1", map[string]string{v1alpha1.CalcSetSizeLabel: "0"}},
		{"size-missing", "is missing", map[string]string{}},
		{"bad-locality", "must be node, zone or none", map[string]string{v1alpha1.CalcSetSizeLabel: "1", v1alpha1.CalcSetLocalityLabel: "rack"}},
		{"bad-window", "must be a duration", map[string]string{v1alpha1.CalcSetSizeLabel: "1", v1alpha1.CalcSetWindowLabel: "soon"}},
	}
	for _, tc := range cases {
		labels := map[string]string{v1alpha1.CalcSetLabel: tc.name, "app": "bad"}
		for k, v := range tc.labels {
			labels[k] = v
		}
		pod := localcluster.Pod(ns, tc.name, localcluster.PodSpec{SchedulerName: "switchyard-batch", CPU: "100m", Labels: labels, NodeSelector: selector})
		if _, err := cluster.CreatePods(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	createPods(ctx, t, ns, "plain", 1, localcluster.PodSpec{SchedulerName: "switchyard-batch", CPU: "100m", Labels: map[string]string{"app": "plain"}, NodeSelector: selector})
	if _, err := cluster.WaitForBound(ctx, ns, "app=plain", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		waitForEvent(ctx, t, ns, tc.name, "InvalidCalcSet", tc.mention)
	}
	assertNeverBound(ctx, t, ns, "app=bad", 2*time.Second)

	// Fixing the size releases the pod: a set of one is a plain pod.
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:"1"}}}`, v1alpha1.CalcSetSizeLabel)
	if _, err := cluster.Client.CoreV1().Pods(ns).Patch(ctx, "size-nan", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.WaitForBound(ctx, ns, v1alpha1.CalcSetLabel+"=size-nan", 1, time.Minute); err != nil {
		t.Fatalf("fixing the size label did not release the pod: %v", err)
	}
}

// TestCalcSetInterleavedSetsDoNotCollide makes 10 sets of 8 half-CPU
// members schedulable at the same moment (their nodes get the label the
// pods select only once every pod exists), so the queue interleaves them
// member by member, on 10 six-CPU nodes: a node fits one set and a half,
// and packing pulls every set to the fullest node. Every set lands whole on
// one node, and no set backs off because another had promised the room.
func TestCalcSetInterleavedSetsDoNotCollide(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nodes, selector := testNodes(ctx, t, 10, localcluster.NodeSpec{CPU: "6", Memory: "64Gi"})
	ns := selector["switchyard.io/test-nodes"]
	closed := map[string]string{"switchyard.io/test-open": "yes"}
	for k, v := range selector {
		closed[k] = v
	}
	misfitsBefore := gathered(t, "switchyard_calcset_sets_rejected_total", "reason", "misfit", legacyregistry.DefaultGatherer)
	for i := range 8 {
		for s := range 10 {
			if _, err := cluster.CreatePods(ctx, setMember(ns, fmt.Sprintf("set%02d", s), i, 8, "500m", closed, nil)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, n := range nodes {
		if _, err := cluster.Client.CoreV1().Nodes().Patch(ctx, n, types.MergePatchType, []byte(`{"metadata":{"labels":{"switchyard.io/test-open":"yes"}}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pods, err := cluster.WaitForBound(ctx, ns, v1alpha1.CalcSetLabel, 80, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	nodeOf := map[string]map[string]bool{}
	for _, p := range pods {
		set := p.Labels[v1alpha1.CalcSetLabel]
		if nodeOf[set] == nil {
			nodeOf[set] = map[string]bool{}
		}
		nodeOf[set][p.Spec.NodeName] = true
	}
	for set, nodes := range nodeOf {
		if len(nodes) != 1 {
			t.Errorf("set %s spread over %d nodes, want one", set, len(nodes))
		}
	}
	if n := gathered(t, "switchyard_calcset_sets_rejected_total", "reason", "misfit", legacyregistry.DefaultGatherer) - misfitsBefore; n != 0 {
		t.Errorf("%v sets backed off after a misfit; promised room should prevent collisions", n)
	}
}

// TestCalcSetStrayMemberPromisesNothing: a pod bound by hand in another
// namespace that carries set labels (set of 8, one member) is not a set
// waiting in Permit, so it promises no room on its node. The node's room
// after it (3.9 CPUs) fits a set of 4 x 900m; counting the stray pod's 7
// "missing" members (700m) as promised would make the set back off forever.
func TestCalcSetStrayMemberPromisesNothing(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	nodes, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "4", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]
	stray := setMember("default", "stray-"+ns, 0, 8, "100m", nil, nil)
	stray.Spec.NodeName = nodes[0]
	if _, err := cluster.CreatePods(ctx, stray); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cluster.Client.CoreV1().Pods("default").Delete(context.Background(), stray.Name, metav1.DeleteOptions{GracePeriodSeconds: ptrTo[int64](0)})
	})
	for i := range 4 {
		if _, err := cluster.CreatePods(ctx, setMember(ns, "beside-stray", i, 4, "900m", selector, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cluster.WaitForBound(ctx, ns, "set=beside-stray", 4, time.Minute); err != nil {
		t.Fatal(err)
	}
	events, err := cluster.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=CalcSetDoesNotFit"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		t.Errorf("the set backed off (%s: %s); the stray pod promised room it has no right to", e.InvolvedObject.Name, e.Message)
	}
}

// zonedNodes makes the namespace name and two 4-CPU nodes in each of the
// zones, and returns the node selector, the nodes in the zones' order and
// each node's zone.
func zonedNodes(ctx context.Context, t *testing.T, name string, zones ...string) (map[string]string, []string, map[string]string) {
	t.Helper()
	selector := map[string]string{"switchyard.io/test-nodes": name}
	if err := cluster.CreateNamespace(ctx, name); err != nil {
		t.Fatal(err)
	}
	var nodes []string
	zoneOf := map[string]string{}
	for _, zone := range zones {
		labels := map[string]string{corev1.LabelTopologyZone: zone}
		for k, v := range selector {
			labels[k] = v
		}
		names, err := cluster.CreateNodes(ctx, name+"-"+zone, 2, localcluster.NodeSpec{CPU: "4", Memory: "16Gi", Labels: labels})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cluster.DeleteNodes(context.Background(), names) })
		for _, n := range names {
			zoneOf[n] = zone
		}
		nodes = append(nodes, names...)
	}
	return selector, nodes, zoneOf
}

// pipelineStep creates a set of size members asking cpu each that follows
// the set after (none when empty), with extra labels and annotations.
func pipelineStep(ctx context.Context, t *testing.T, ns, set, after string, size int, cpu string, selector, extra, annotations map[string]string) {
	t.Helper()
	labels := map[string]string{}
	for k, v := range extra {
		labels[k] = v
	}
	if after != "" {
		labels[v1alpha1.CalcSetAfterLabel] = after
	}
	for i := range size {
		pod := setMember(ns, set, i, size, cpu, selector, labels)
		pod.Annotations = annotations
		if _, err := cluster.CreatePods(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCalcSetPipelineKeepsDataClose runs a three-step flow on the packing
// profile, which on its own would pull every step to the fullest node:
// extract (node locality) runs and finishes; transform follows it and lands
// on extract's node although another node is fuller (the scheduler
// remembers where a finished set ran); load (zone locality) follows
// transform, still running, and stays in its zone although a node of the
// other zone is fuller still.
func TestCalcSetPipelineKeepsDataClose(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "test-calcset-pipeline"
	selector, nodes, zoneOf := zonedNodes(ctx, t, ns, "zone-a", "zone-b")

	pipelineStep(ctx, t, ns, "extract", "", 2, "1", selector, nil, map[string]string{localcluster.RunForAnnotation: "1s"})
	extracted, err := cluster.WaitForBound(ctx, ns, "set=extract", 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pond := extracted[0].Spec.NodeName
	waitFor(ctx, t, "extract to finish", time.Minute, func() bool {
		list, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "set=extract"})
		if err != nil {
			return false
		}
		for _, p := range list.Items {
			if p.Status.Phase != corev1.PodSucceeded {
				return false
			}
		}
		return true
	})
	// Make other nodes fuller than the pond, so packing alone would leave it:
	// one in the pond's zone (2 CPUs used), one in the other zone (3 CPUs).
	var mate, far string
	for _, n := range nodes {
		switch {
		case n == pond:
		case zoneOf[n] == zoneOf[pond] && mate == "":
			mate = n
		case zoneOf[n] != zoneOf[pond] && far == "":
			far = n
		}
	}
	fillNode(ctx, t, ns, mate, "2")
	fillNode(ctx, t, ns, far, "3")

	pipelineStep(ctx, t, ns, "transform", "extract", 2, "1", selector, nil, nil)
	transformed, err := cluster.WaitForBound(ctx, ns, "set=transform", 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range transformed {
		if p.Spec.NodeName != pond {
			t.Errorf("transform member %s on %s, want %s where extract ran (packing alone picks %s)", p.Name, p.Spec.NodeName, pond, mate)
		}
	}

	pipelineStep(ctx, t, ns, "load", "transform", 2, "500m", selector, map[string]string{v1alpha1.CalcSetLocalityLabel: "zone"}, nil)
	loaded, err := cluster.WaitForBound(ctx, ns, "set=load", 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range loaded {
		if zoneOf[p.Spec.NodeName] != zoneOf[pond] {
			t.Errorf("load member %s on %s in %s, want %s where transform runs (packing alone picks %s)", p.Name, p.Spec.NodeName, zoneOf[p.Spec.NodeName], zoneOf[pond], far)
		}
	}
}

// TestCalcSetFollowerWithoutRoom: where the predecessor runs there is no
// room for the follower. A preferred follower waits its window (2s), then
// is placed elsewhere with a Warning Event that says so; a required one
// keeps waiting past its window, and lands where the predecessor ran once
// room appears there.
func TestCalcSetFollowerWithoutRoom(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "test-calcset-follower-without-room"
	selector, _, _ := zonedNodes(ctx, t, ns, "zone-a", "zone-b")

	pipelineStep(ctx, t, ns, "first", "", 1, "3", selector, nil, nil)
	first, err := cluster.WaitForBound(ctx, ns, "set=first", 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	pond := first[0].Spec.NodeName
	window := map[string]string{v1alpha1.CalcSetWindowLabel: "2s"}
	pipelineStep(ctx, t, ns, "preferred", "first", 2, "1", selector, window, nil)
	required := map[string]string{v1alpha1.CalcSetWindowLabel: "2s", v1alpha1.CalcSetAfterModeLabel: "required"}
	pipelineStep(ctx, t, ns, "required", "first", 2, "1", selector, required, nil)

	moved, err := cluster.WaitForBound(ctx, ns, "set=preferred", 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range moved {
		if p.Spec.NodeName == pond {
			t.Errorf("preferred member %s on %s, which has no room for the set", p.Name, pond)
		}
	}
	waitForEvent(ctx, t, ns, "", "CalcSetPlacedAwayFromPredecessor", "placing it elsewhere")
	waitForEvent(ctx, t, ns, "", "CalcSetWaitingForPredecessor", "required")
	assertNeverBound(ctx, t, ns, "set=required", 4*time.Second)

	if err := cluster.Client.CoreV1().Pods(ns).Delete(ctx, first[0].Name, metav1.DeleteOptions{GracePeriodSeconds: ptrTo[int64](0)}); err != nil {
		t.Fatal(err)
	}
	stayed, err := cluster.WaitForBound(ctx, ns, "set=required", 2, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range stayed {
		if p.Spec.NodeName != pond {
			t.Errorf("required member %s on %s, want %s where set first ran", p.Name, p.Spec.NodeName, pond)
		}
	}
}
