package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
)

// fakeQuota is a queue q with a CPU quota of 2000m.
type fakeQuota struct {
	left    int64
	version string
}

func (f *fakeQuota) Quota(queue, res string) (int64, int64, string, bool) {
	return 2000, 2000 - f.left, f.version, queue == "q" && res == guardian.CPU
}

// TestWithinQuota: raises that grow requests are cut to what the queue has
// left (counting what this agent granted since the status it saw), refused
// and reported once when little is left; others pass untouched.
func TestWithinQuota(t *testing.T) {
	up := func(from, to int64) guardian.Decision {
		return guardian.Decision{Resource: guardian.CPU, Direction: guardian.Up, From: from, To: to, Reason: "throttled"}
	}
	guaranteed := Target{Key: "ns/p/c", Container: "c", Queue: "q", RequestsFollowLimits: true}
	for _, tc := range []struct {
		name    string
		target  Target
		d       guardian.Decision
		left    int64
		wantTo  int64
		allowed bool
	}{
		{"inside the quota", guaranteed, up(500, 1000), 800, 1000, true},
		{"cut to what is left", guaranteed, up(500, 2000), 500, 1000, true},
		{"refused when under 5% is left", guaranteed, up(500, 2000), 20, 2000, false},
		{"burstable: requests do not grow", Target{Key: "b", Queue: "q"}, up(500, 2000), 0, 2000, true},
		{"no queue", Target{Key: "n", RequestsFollowLimits: true}, up(500, 2000), 0, 2000, true},
		{"no quota for memory", guaranteed, guardian.Decision{Resource: guardian.Memory, Direction: guardian.Up, From: 1, To: 9}, 0, 9, true},
		{"down is always allowed", guaranteed, guardian.Decision{Resource: guardian.CPU, Direction: guardian.Down, From: 1000, To: 500}, 0, 500, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := New(cgroup.FS{Root: t.TempDir(), Version: cgroup.V2}, staticSource{}, CgroupActuator{}, NewMetrics(nil), Options{Policy: guardian.DefaultPolicy(), Quota: &fakeQuota{left: tc.left, version: "1"}})
			if err != nil {
				t.Fatal(err)
			}
			d, ok := a.withinQuota(context.Background(), tc.target, tc.d, map[quotaKey]int64{})
			if ok != tc.allowed || (ok && d.To != tc.wantTo) {
				t.Errorf("got %v allowed=%v, want to %d allowed=%v", d, ok, tc.wantTo, tc.allowed)
			}
		})
	}

	t.Run("a status that lags behind this node's pods", func(t *testing.T) {
		a, err := New(cgroup.FS{Root: t.TempDir(), Version: cgroup.V2}, staticSource{}, CgroupActuator{}, NewMetrics(nil), Options{Policy: guardian.DefaultPolicy(), Quota: &fakeQuota{left: 2000, version: "1"}})
		if err != nil {
			t.Fatal(err)
		}
		// The status says nothing is used, but this node's pods of q ask 1500m.
		d, ok := a.withinQuota(context.Background(), guaranteed, up(500, 2000), map[quotaKey]int64{{"q", guardian.CPU}: 1500})
		if !ok || d.To != 1000 {
			t.Errorf("got %v %v, want cut to 1000 (500m left of 2000m)", d, ok)
		}
	})
	t.Run("grants count until the status shows them; refusals are reported once", func(t *testing.T) {
		quota := &fakeQuota{left: 600, version: "1"}
		local := map[quotaKey]int64{}
		var reports []string
		a, err := New(cgroup.FS{Root: t.TempDir(), Version: cgroup.V2}, staticSource{}, CgroupActuator{}, NewMetrics(nil), Options{Policy: guardian.DefaultPolicy(), Quota: quota,
			Report: func(_ Target, _, reason, msg string) { reports = append(reports, reason+": "+msg) }})
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := a.withinQuota(context.Background(), guaranteed, up(500, 1000), local); !ok || d.To != 1000 {
			t.Fatalf("first raise: %v %v", d, ok)
		}
		// The status still says 600m left, but 500m of it was just granted.
		if _, ok := a.withinQuota(context.Background(), guaranteed, up(1000, 2000), local); !ok {
			t.Fatal("100m left of 1000m is 10%: want a cut, not a refusal")
		}
		for range 3 {
			if _, ok := a.withinQuota(context.Background(), guaranteed, up(1100, 2000), local); ok {
				t.Fatal("nothing left: want refused")
			}
		}
		if len(reports) != 1 || !strings.HasPrefix(reports[0], "QueueQuotaExceeded: not raising cpu of container c from 1100m to 2:") || !strings.Contains(reports[0], "queue q has 0 of its quota left") {
			t.Errorf("reports = %q, want one QueueQuotaExceeded", reports)
		}
		// A new status (version 2) counts the grants itself.
		quota.left, quota.version = 400, "2"
		if d, ok := a.withinQuota(context.Background(), guaranteed, up(1100, 1400), map[quotaKey]int64{}); !ok || d.To != 1400 {
			t.Errorf("after a new status with 400m left: %v %v, want up to 1400", d, ok)
		}
	})
}

type recordingActuator struct{ applied []guardian.Decision }

func (r *recordingActuator) Apply(_ context.Context, _ Target, d guardian.Decision) error {
	r.applied = append(r.applied, d)
	return nil
}
func (*recordingActuator) SoftMemory() bool { return false }

// TestUnfinishedResizes: a container with an unfinished resize is sampled
// but gets no decision; a deferred one is reported once; an infeasible one
// is reported and set back to its applied limits.
func TestUnfinishedResizes(t *testing.T) {
	root := t.TempDir()
	for name, content := range map[string]string{"cgroup.controllers": "cpu memory", "c/cpu.stat": "usage_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0", "c/memory.current": "1000"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := cgroup.Detect(root)
	if err != nil {
		t.Fatal(err)
	}
	applied := cgroup.Limits{CPUQuota: 50000, CPUPeriod: 100000, MemoryMax: 512 << 20, MemoryHigh: cgroup.Unlimited}
	asked := applied
	asked.CPUQuota = 400000
	for _, tc := range []struct {
		reason, event string
		setBack       bool
	}{
		{corev1.PodReasonDeferred, "ResizeDeferred", false},
		{corev1.PodReasonInfeasible, "ResizeInfeasible", true},
		{"InProgress", "", false},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			act := &recordingActuator{}
			var events []string
			target := Target{Key: "ns/p/c", Path: "c", Container: "c", Limits: &applied, Unfinished: &Unfinished{Reason: tc.reason, Message: "kubelet says", Asked: asked}}
			a, err := New(fs, staticSource{target}, act, NewMetrics(nil), Options{Policy: guardian.DefaultPolicy(),
				Report: func(_ Target, _, reason, _ string) { events = append(events, reason) }})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Unix(1_800_000_000, 0)
			for i := range 3 {
				a.Step(context.Background(), now.Add(time.Duration(i)*time.Second))
			}
			if tc.event == "" && len(events) != 0 || tc.event != "" && (len(events) != 1 || events[0] != tc.event) {
				t.Errorf("events = %q, want %q once", events, tc.event)
			}
			setBacks := 0
			for _, d := range act.applied {
				if d.Resource != guardian.CPU || d.From != 4000 || d.To != 500 {
					t.Errorf("applied %v on an unfinished resize", d)
				}
				setBacks++
			}
			if want := map[bool]int{true: 1}[tc.setBack]; setBacks != want {
				t.Errorf("set back %d times in 3 samples, want %d", setBacks, want)
			}
		})
	}
}
