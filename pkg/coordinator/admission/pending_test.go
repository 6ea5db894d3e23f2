package admission

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// TestThroughputCountsTheLastWindow: admissions are counted over the last
// five minutes, in ten-second buckets, whatever order they arrive in.
func TestThroughputCountsTheLastWindow(t *testing.T) {
	for _, tc := range []struct {
		name      string
		at        []time.Duration // admission times relative to t0
		now       time.Duration
		wantCount int
		wantSpan  time.Duration
	}{
		{name: "nothing admitted", now: time.Minute},
		{name: "a burst just now counts over one bucket at least", at: []time.Duration{0, 0, 0}, now: time.Second, wantCount: 3, wantSpan: throughputBucket},
		{name: "spread over a minute", at: []time.Duration{0, 20 * time.Second, 40 * time.Second, 60 * time.Second}, now: 60 * time.Second, wantCount: 4, wantSpan: 60 * time.Second},
		{name: "older than the window: dropped", at: []time.Duration{0, 6 * time.Minute}, now: 6 * time.Minute, wantCount: 1, wantSpan: throughputBucket},
		{name: "all of it aged out", at: []time.Duration{0, time.Second}, now: time.Hour},
		{name: "a record dated in the future counts as now", at: []time.Duration{time.Hour}, now: time.Minute, wantCount: 1, wantSpan: throughputBucket},
		{name: "a late record of a restart counts at its time", at: []time.Duration{2 * time.Minute, 0}, now: 2 * time.Minute, wantCount: 2, wantSpan: 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tp throughput
			for _, at := range tc.at {
				now := t0.Add(at)
				if at > tc.now {
					now = t0.Add(tc.now)
				}
				tp.add(t0.Add(at), now)
			}
			count, span := tp.recent(t0.Add(tc.now))
			if count != tc.wantCount || span != tc.wantSpan {
				t.Errorf("recent = %d over %s, want %d over %s", count, span, tc.wantCount, tc.wantSpan)
			}
		})
	}
}

func TestEstimateRate(t *testing.T) {
	limited := &v1alpha1.QueueSpec{AdmissionRate: &v1alpha1.AdmissionRate{PodsPerSecond: resource.MustParse("2"), Burst: 1}}
	for _, tc := range []struct {
		name   string
		count  int
		span   time.Duration
		spec   *v1alpha1.QueueSpec
		held   string
		want   float64
		reason string
	}{
		{name: "measured", count: 30, span: time.Minute, spec: &v1alpha1.QueueSpec{}, want: 0.5, reason: "recent throughput: 30 admitted in the last 1m0s"},
		{name: "measured above the rate is capped", count: 600, span: time.Minute, spec: limited, want: 2, reason: "capped by admissionRate 2/s"},
		{name: "measured below the rate stays measured", count: 60, span: time.Minute, spec: limited, want: 1, reason: "recent throughput"},
		{name: "nothing measured, held by the rate only: the rate", spec: limited, held: "admissionRate (2/s)", want: 2, reason: "admissionRate 2/s (nothing admitted in the last 5m0s)"},
		{name: "nothing measured, held by maxAdmitted: no estimate", spec: limited, held: "maxAdmitted (3/3)", reason: "no estimate: nothing admitted in the last 5m0s and the queue is held by maxAdmitted (3/3)"},
		{name: "nothing measured, no rate", spec: &v1alpha1.QueueSpec{}, reason: "no estimate: nothing admitted in the last 5m0s"},
		{name: "no Queue", held: "no Queue", reason: "held by no Queue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := EstimateRate(tc.count, tc.span, tc.spec, tc.held)
			if got.PerSecond != tc.want || !strings.Contains(got.Basis, tc.reason) {
				t.Errorf("EstimateRate = %v %q, want %v and %q", got.PerSecond, got.Basis, tc.want, tc.reason)
			}
		})
	}
}

// TestStandings: position, holding limit and estimate of each pending pod.
func TestStandings(t *testing.T) {
	plain := func(name string, created time.Duration) *corev1.Pod {
		p := routedPod(name, "q", "switchyard-batch", "500m")
		p.CreationTimestamp.Time = t0.Add(created)
		return p
	}
	type want struct{ name, heldBy, eta string } // eta: duration after now, "" for none
	for _, tc := range []struct {
		name      string
		spec      v1alpha1.QueueSpec
		pods      []*corev1.Pod
		held      string
		estimate  Estimate
		namespace string
		limit     int
		want      []want
	}{
		{name: "the head is held by the limit, the rest by the pods ahead",
			spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](1)}, pods: []*corev1.Pod{plain("a", 0), plain("b", time.Second), plain("c", 2*time.Second)},
			held: "maxAdmitted (1/1)", estimate: Estimate{PerSecond: 0.5, Basis: "recent"},
			want: []want{{"a", "maxAdmitted (1/1)", "2s"}, {"b", "1 pod ahead in the queue, whose next pod is held by maxAdmitted (1/1)", "4s"}, {"c", "2 pods ahead", "6s"}}},
		{name: "nothing holds the queue: the head is next, no estimate without a basis",
			pods: []*corev1.Pod{plain("a", 0), plain("b", time.Second)},
			want: []want{{"a", "nothing: it is next to be admitted", ""}, {"b", "1 pod ahead in the queue, which is admitting", ""}}},
		{name: "pod priority orders the queue",
			pods: func() []*corev1.Pod {
				late := plain("late-but-urgent", time.Minute)
				late.Spec.Priority = ptr.To[int32](100)
				return []*corev1.Pod{plain("a", 0), late}
			}(), held: "quota cpu (1 used + 500m asked > 1)",
			want: []want{{"late-but-urgent", "quota cpu", ""}, {"a", "1 pod ahead", ""}}},
		{name: "an incomplete set says what it waits for",
			pods: append(members("q", "s", 4, 3, 0, 0), plain("p", time.Minute)), estimate: Estimate{PerSecond: 1},
			want: []want{{"s-0", "calculation set s waits for its other members (3 of 4 exist)", ""}, {"s-1", "waits for its other members", ""},
				{"s-2", "waits for its other members", ""}, {"p", "3 pods ahead", "4s"}}},
		{name: "a set that can never fit says why",
			spec: v1alpha1.QueueSpec{MaxAdmitted: ptr.To[int32](5)}, pods: members("q", "big", 8, 8, 0, 0)[:1],
			want: []want{{"big-0", "calculation set big can never be admitted whole: the set has 8 members and the queue's maxAdmitted is 5", ""}}},
		{name: "a namespace sees its own pods with their place in the whole queue",
			pods: func() []*corev1.Pod {
				other := plain("theirs", 0)
				other.Namespace = "other"
				return []*corev1.Pod{other, plain("mine", time.Second)}
			}(), held: "admissionRate (1/s)", estimate: Estimate{PerSecond: 1}, namespace: "ns",
			want: []want{{"mine", "1 pod ahead", "2s"}}},
		{name: "limit", pods: []*corev1.Pod{plain("a", 0), plain("b", time.Second)}, limit: 1,
			want: []want{{"a", "next to be admitted", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := batchQueueState(tc.spec, tc.pods).queues["q"]
			var keep func(*entry) bool
			if tc.namespace != "" {
				keep = func(e *entry) bool { return e.namespace == tc.namespace }
			}
			now := t0.Add(time.Hour)
			got := standings(queueStanding{Queue: "q", Spec: &q.queue.Spec, Pending: q.pending, Held: tc.held, Estimate: tc.estimate}, now, keep, tc.limit)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d standings, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Name != w.name || !strings.Contains(g.HeldBy, w.heldBy) {
					t.Errorf("standing %d = %s held by %q, want %s held by %q", i, g.Name, g.HeldBy, w.name, w.heldBy)
				}
				switch {
				case w.eta == "" && g.EstimatedAdmission != nil:
					t.Errorf("%s: estimate %s, want none (%s)", g.Name, g.EstimatedAdmission, g.EstimateBasis)
				case w.eta != "":
					d, _ := time.ParseDuration(w.eta)
					if g.EstimatedAdmission == nil || !g.EstimatedAdmission.Time.Equal(now.Add(d)) {
						t.Errorf("%s: estimate %v, want now+%s", g.Name, g.EstimatedAdmission, w.eta)
					}
				}
				if g.Queue != "q" || g.Position < 1 {
					t.Errorf("%s: queue %q position %d", g.Name, g.Queue, g.Position)
				}
			}
		})
	}
}

// TestSetPodSeedsThroughput: a pod first seen already admitted (after a
// restart, by a new leader) counts in its queue's recent throughput at the
// time its admission record gives, once; a gated pod, a pod without a
// record and a record older than the window do not.
func TestSetPodSeedsThroughput(t *testing.T) {
	now := t0.Add(time.Hour)
	pod := func(name string, gated bool, admittedAgo time.Duration) *corev1.Pod {
		p := &corev1.Pod{}
		p.Name, p.Namespace, p.UID = name, "ns", types.UID(name)
		p.Annotations = map[string]string{v1alpha1.RoutedQueueAnnotation: "batch"}
		if gated {
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: v1alpha1.AdmissionGate}}
		}
		if admittedAgo > 0 {
			record, err := json.Marshal(v1alpha1.AdmissionRecord{Queue: "batch", Time: metav1.NewTime(now.Add(-admittedAgo)), Waited: "1s"})
			if err != nil {
				t.Fatal(err)
			}
			p.Annotations[v1alpha1.AdmittedAnnotation] = string(record)
		}
		return p
	}
	for _, tc := range []struct {
		name      string
		pods      []*corev1.Pod
		wantCount int
	}{
		{name: "admitted two minutes ago", pods: []*corev1.Pod{pod("a", false, 2*time.Minute)}, wantCount: 1},
		{name: "seen twice, counted once", pods: []*corev1.Pod{pod("a", false, 2*time.Minute), pod("a", false, 2*time.Minute)}, wantCount: 1},
		{name: "admitted before the window", pods: []*corev1.Pod{pod("old", false, 10*time.Minute)}},
		{name: "still gated", pods: []*corev1.Pod{pod("g", true, 0)}},
		{name: "ungated without a record (not admitted by Switchyard)", pods: []*corev1.Pod{pod("n", false, 0)}},
		{name: "several", pods: []*corev1.Pod{pod("a", false, time.Minute), pod("b", false, 3*time.Minute), pod("g", true, 0)}, wantCount: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewState()
			for _, p := range tc.pods {
				s.SetPod(p, now)
			}
			if count, _ := s.queue("batch").recent.recent(now); count != tc.wantCount {
				t.Errorf("recent throughput %d, want %d", count, tc.wantCount)
			}
		})
	}
}
