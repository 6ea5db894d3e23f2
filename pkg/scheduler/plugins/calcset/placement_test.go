package calcset

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"
	schedulerframework "k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// fakeNode is a NodeInfo with cpu cores, 16 GiB and 110 pods allocatable,
// in zone (no zone label when empty), already running pods asking
// usedMilliCPU in total.
func fakeNode(name, zone string, cores, usedMilliCPU int64) fwk.NodeInfo {
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	if zone != "" {
		node.Labels[v1alpha1.ZoneLabel] = zone
	}
	node.Status.Allocatable = v1.ResourceList{
		v1.ResourceCPU:    *resource.NewQuantity(cores, resource.DecimalSI),
		v1.ResourceMemory: resource.MustParse("16Gi"),
		v1.ResourcePods:   resource.MustParse("110"),
	}
	ni := schedulerframework.NewNodeInfo()
	ni.SetNode(node)
	if usedMilliCPU > 0 {
		ni.AddPod(&v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "filler-" + name, Namespace: "other", UID: types.UID("filler-" + name)},
			Spec: v1.PodSpec{NodeName: name, Containers: []v1.Container{{Name: "c", Resources: v1.ResourceRequirements{
				Requests: v1.ResourceList{v1.ResourceCPU: *resource.NewMilliQuantity(usedMilliCPU, resource.DecimalSI)},
			}}}},
		})
	}
	return ni
}

// cpus is a demand of n pods asking milliCPU each and no memory.
func cpus(n int, milliCPU int64) demand {
	return demand{milliCPU: milliCPU * int64(n), pods: n}
}

func TestChooseDomain(t *testing.T) {
	// Three 4-core nodes: a and b in zone z1, c in z2; b half full.
	nodes := []fwk.NodeInfo{fakeNode("a", "z1", 4, 0), fakeNode("b", "z1", 4, 2000), fakeNode("c", "z2", 4, 0)}
	unzoned := []fwk.NodeInfo{fakeNode("a", "", 4, 0), fakeNode("b", "", 4, 0)}
	none := promises{}
	for _, tc := range []struct {
		name     string
		locality config.CalcSetLocality
		nodes    []fwk.NodeInfo
		placed   []string
		need     demand
		promised promises
		want     []string // nil: does not fit
		wantWhy  string
	}{
		{name: "node: every node with room", locality: config.CalcSetLocalityNode, need: cpus(4, 500), want: []string{"a", "b", "c"}},
		{name: "node: the half-full node is left out", locality: config.CalcSetLocalityNode, need: cpus(4, 1000), want: []string{"a", "c"}},
		{name: "node: exactly full fits", locality: config.CalcSetLocalityNode, need: cpus(2, 1000), placed: []string{"b"}, want: []string{"b"}},
		{name: "node: placed members fix the node", locality: config.CalcSetLocalityNode, need: cpus(1, 500), placed: []string{"c"}, want: []string{"c"}},
		{name: "node: no room left where placed", locality: config.CalcSetLocalityNode, need: cpus(3, 1000), placed: []string{"b"}, wantWhy: "node b where the set is placed"},
		{name: "node: placed on a node that is gone", locality: config.CalcSetLocalityNode, need: cpus(1, 100), placed: []string{"gone"}, wantWhy: "node gone where the set is placed"},
		{name: "node: placed on two nodes cannot complete", locality: config.CalcSetLocalityNode, need: cpus(1, 100), placed: []string{"c", "a"}, wantWhy: "already on 2 nodes ([a c])"},
		{name: "node: too big for any node", locality: config.CalcSetLocalityNode, need: cpus(5, 1000), wantWhy: "any single node"},
		{name: "node: room promised to a waiting set is taken", locality: config.CalcSetLocalityNode, need: cpus(4, 1000),
			promised: promises{node: map[string]demand{"a": cpus(1, 500)}}, want: []string{"c"}},
		{name: "node: pod count counts", locality: config.CalcSetLocalityNode, need: demand{pods: 111}, wantWhy: "any single node"},
		{name: "zone: sums the zone's nodes", locality: config.CalcSetLocalityZone, need: cpus(6, 1000), want: []string{"a", "b"}},
		{name: "zone: placed members fix the zone", locality: config.CalcSetLocalityZone, need: cpus(2, 1000), placed: []string{"c"}, want: []string{"c"}},
		{name: "zone: placed in two zones cannot complete", locality: config.CalcSetLocalityZone, need: cpus(1, 100), placed: []string{"a", "c"}, wantWhy: "already in 2 zones ([z1 z2])"},
		{name: "zone: a zone's promise is taken from the zone", locality: config.CalcSetLocalityZone, need: cpus(4, 1000),
			promised: promises{zone: map[string]demand{"z2": cpus(1, 100)}}, want: []string{"a", "b"}},
		{name: "zone: nodes without a zone never form one", locality: config.CalcSetLocalityZone, nodes: unzoned, need: cpus(1, 100), wantWhy: "any single zone"},
		{name: "none: the cluster's sum", locality: config.CalcSetLocalityNone, need: cpus(10, 1000), want: []string{}},
		{name: "none: beyond the cluster", locality: config.CalcSetLocalityNone, need: cpus(11, 1000), wantWhy: "the cluster"},
		{name: "none: every promise is taken", locality: config.CalcSetLocalityNone, need: cpus(10, 1000),
			promised: promises{node: map[string]demand{"a": cpus(1, 100)}}, wantWhy: "the cluster"},
		{name: "none: zone promises too", locality: config.CalcSetLocalityNone, need: cpus(10, 1000),
			promised: promises{zone: map[string]demand{"z1": cpus(1, 100)}}, wantWhy: "the cluster"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.nodes
			if in == nil {
				in = nodes
			}
			promised := tc.promised
			if promised.node == nil && promised.zone == nil {
				promised = none
			}
			got, why := chooseDomain(tc.locality, in, placement{nodes: sets.New(tc.placed...)}, tc.need, promised)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("chose %v, want no fit", sets.List(got))
				}
				if !strings.Contains(why, tc.wantWhy) {
					t.Errorf("why %q, want it to mention %q", why, tc.wantWhy)
				}
				return
			}
			if got == nil {
				t.Fatalf("no fit (%s), want %v", why, tc.want)
			}
			if !got.Equal(sets.New(tc.want...)) {
				t.Errorf("chose %v, want %v", sets.List(got), tc.want)
			}
		})
	}
}

func TestPromisedRoom(t *testing.T) {
	zoneOf := func(node string) string { return map[string]string{"a": "z1", "b": "z1", "c": "z2"}[node] }
	set := func(name string, size, waiting int, locality config.CalcSetLocality, node string) waitingSet {
		return waitingSet{set: name, size: size, waiting: waiting, locality: locality, node: node, request: cpus(1, 500)}
	}
	for _, tc := range []struct {
		name    string
		waiting []waitingSet
		want    promises
	}{
		{name: "nothing waits", want: promises{}},
		{name: "a node set of 4 with 1 waiting promises 3 members on its node",
			waiting: []waitingSet{set("ns/s", 4, 1, config.CalcSetLocalityNode, "a")},
			want:    promises{node: map[string]demand{"a": cpus(3, 500)}}},
		{name: "a set with every member waiting promises nothing",
			waiting: []waitingSet{set("ns/s", 2, 2, config.CalcSetLocalityNode, "a")}, want: promises{}},
		{name: "sets of the same name in two namespaces are two sets",
			waiting: []waitingSet{set("ns1/s", 2, 1, config.CalcSetLocalityNode, "a"), set("ns2/s", 2, 1, config.CalcSetLocalityNode, "a")},
			want:    promises{node: map[string]demand{"a": cpus(2, 500)}}},
		{name: "a zone set promises to its zone",
			waiting: []waitingSet{set("ns/z", 3, 1, config.CalcSetLocalityZone, "b")},
			want:    promises{zone: map[string]demand{"z1": cpus(2, 500)}}},
		{name: "a set without locality promises to the cluster",
			waiting: []waitingSet{set("ns/n", 3, 1, config.CalcSetLocalityNone, "c")},
			want:    promises{cluster: cpus(2, 500)}},
		{name: "two sets on one node add up",
			waiting: []waitingSet{set("ns/s1", 2, 1, config.CalcSetLocalityNode, "c"), set("ns/s2", 3, 1, config.CalcSetLocalityNode, "c")},
			want:    promises{node: map[string]demand{"c": cpus(3, 500)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := promisedRoom(tc.waiting, zoneOf)
			if fmt.Sprint(normalized(got)) != fmt.Sprint(normalized(tc.want)) {
				t.Errorf("promised %+v, want %+v", got, tc.want)
			}
		})
	}
}

// normalized drops empty maps, so that a nil and an empty map compare equal.
func normalized(p promises) promises {
	if len(p.node) == 0 {
		p.node = nil
	}
	if len(p.zone) == 0 {
		p.zone = nil
	}
	return p
}

func TestSetIndexFunc(t *testing.T) {
	for _, tc := range []struct {
		name   string
		obj    any
		labels map[string]string
		want   []string
	}{
		{name: "a member", labels: map[string]string{v1alpha1.CalcSetLabel: "s"}, want: []string{"ns/s"}},
		{name: "not a member", labels: map[string]string{"app": "x"}},
		{name: "an empty set name is not indexed", labels: map[string]string{v1alpha1.CalcSetLabel: ""}},
		{name: "not a pod", obj: "tombstone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj
			if obj == nil {
				obj = &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", Labels: tc.labels}}
			}
			got, err := setIndexFunc(obj)
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("index keys %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

func TestNearPredecessor(t *testing.T) {
	nodes := []fwk.NodeInfo{fakeNode("a", "z1", 4, 0), fakeNode("b", "z1", 4, 0), fakeNode("c", "z2", 4, 0), fakeNode("d", "", 4, 0)}
	for _, tc := range []struct {
		name     string
		locality config.CalcSetLocality
		ran      []string
		want     []string
	}{
		{name: "not run yet", locality: config.CalcSetLocalityNode},
		{name: "node: the nodes it ran on", locality: config.CalcSetLocalityNode, ran: []string{"b"}, want: []string{"b"}},
		{name: "node: a node that is gone is no domain", locality: config.CalcSetLocalityNode, ran: []string{"gone"}},
		{name: "zone: every node of its zone", locality: config.CalcSetLocalityZone, ran: []string{"b"}, want: []string{"a", "b"}},
		{name: "zone: of each zone it ran in", locality: config.CalcSetLocalityZone, ran: []string{"a", "c"}, want: []string{"a", "b", "c"}},
		{name: "zone: a node without a zone gives none", locality: config.CalcSetLocalityZone, ran: []string{"d"}},
		{name: "none: the nodes it ran on", locality: config.CalcSetLocalityNone, ran: []string{"a", "d"}, want: []string{"a", "d"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := sets.New[string]()
			for _, n := range nearPredecessor(tc.locality, nodes, sets.New(tc.ran...)) {
				got.Insert(n.Node().Name)
			}
			if !got.Equal(sets.New(tc.want...)) {
				t.Errorf("near %v, want %v", sets.List(got), tc.want)
			}
		})
	}
}

func TestKeepWaitingNear(t *testing.T) {
	since := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		required bool
		after    time.Duration
		want     bool
	}{
		{name: "preferred, just started", after: 0, want: true},
		{name: "preferred, inside the window", after: 59 * time.Second, want: true},
		{name: "preferred, window over", after: time.Minute, want: false},
		{name: "required, window over", required: true, after: time.Hour, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wait, until := keepWaitingNear(tc.required, since, since.Add(tc.after), time.Minute)
			if wait != tc.want || !until.Equal(since.Add(time.Minute)) {
				t.Errorf("wait %v until %s, want %v until %s", wait, until, tc.want, since.Add(time.Minute))
			}
		})
	}
}
