package guardian

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// testPolicy is the windowed (careful) path alone, with 1s windows.
func testPolicy() Policy {
	p := WindowedPolicy()
	p.Window, p.Windows, p.Cooldown = time.Second, 3, 10*time.Second
	return p
}

func in(l cgroup.Limits, b Bounds, r Room) Input { return Input{Limits: l, Bounds: b, Room: r} }

// feed gives the tracker n one-second samples using milliCPU of CPU (and
// throttled when asked) and memory bytes.
func feed(tr *Tracker, from time.Time, st *cgroup.Stats, n int, milliCPU int64, throttled bool, memory int64) time.Time {
	at := from
	for range n {
		at = at.Add(time.Second)
		st.CPUUsage += time.Duration(milliCPU) * time.Millisecond
		if throttled {
			st.ThrottledPeriods += 5
		}
		st.MemoryUsage = memory
		tr.Observe(at, *st)
	}
	return at
}

func limits(milliCPU, memory int64) cgroup.Limits {
	return cgroup.Limits{CPUQuota: milliCPU * 100, CPUPeriod: 100000, MemoryMax: memory}
}

func TestScalesCPUUpWhenThrottledAndDownWhenIdle(t *testing.T) {
	tr := NewTracker(testPolicy())
	var st cgroup.Stats
	now := feed(tr, t0, &st, 4, 500, true, 100<<20) // 1 priming sample + 3 windows
	ds := tr.Decide(now, in(limits(500, cgroup.Unlimited), Bounds{}, Room{MilliCPU: 4000, Memory: 8 << 30}))
	if len(ds) != 1 || ds[0].Resource != CPU || ds[0].Direction != Up || ds[0].To != 625 {
		t.Fatalf("throttled at 500m: %v, want cpu up 500 -> 625 (usage + 25%%)", ds)
	}
	tr.Changed(ds[0], now)
	now = feed(tr, now, &st, 3, 20, false, 100<<20)
	if ds := tr.Decide(now, in(limits(625, cgroup.Unlimited), Bounds{}, Room{MilliCPU: 4000})); len(ds) != 0 {
		t.Fatalf("inside the cooldown: %v, want nothing", ds)
	}
	now = feed(tr, now.Add(10*time.Second), &st, 4, 20, false, 100<<20)
	ds = tr.Decide(now, in(limits(625, cgroup.Unlimited), Bounds{MinMilliCPU: 100}, Room{}))
	if len(ds) == 0 || ds[0].Resource != CPU || ds[0].Direction != Down || ds[0].To != 312 {
		t.Fatalf("idle at 20m of 625m: %v, want cpu down by at most half (max step) to 312", ds)
	}
}

func TestClamps(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bounds Bounds
		room   Room
		want   int64
		reason string
	}{
		{"container maximum", Bounds{MaxMilliCPU: 550}, Room{MilliCPU: 4000}, 550, "usage plus margin, container maximum"},
		{"node room", Bounds{}, Room{MilliCPU: 30}, 530, "usage plus margin, node room"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(testPolicy())
			var st cgroup.Stats
			now := feed(tr, t0, &st, 4, 500, true, 0)
			ds := tr.Decide(now, in(cgroup.Limits{CPUQuota: 50000, CPUPeriod: 100000, MemoryMax: cgroup.Unlimited}, tc.bounds, tc.room))
			if len(ds) != 1 || ds[0].To != tc.want || ds[0].Reason != tc.reason {
				t.Errorf("got %v, want cpu to %d (%s)", ds, tc.want, tc.reason)
			}
		})
	}
}

func TestMemoryNeverBelowUsagePlusHeadroom(t *testing.T) {
	p := testPolicy()
	p.Margin, p.MaxStep = 0, 10
	tr := NewTracker(p)
	var st cgroup.Stats
	// Low for a while, then 300Mi of a 1Gi limit: down, but no lower
	// than the latest usage plus headroom.
	now := feed(tr, t0, &st, 3, 0, false, 10<<20)
	now = feed(tr, now, &st, 1, 0, false, 300<<20)
	ds := tr.Decide(now, in(cgroup.Limits{CPUQuota: cgroup.Unlimited, CPUPeriod: 100000, MemoryMax: 1 << 30}, Bounds{}, Room{}))
	if len(ds) != 1 || ds[0].Resource != Memory || ds[0].To != 300<<20+p.MemoryHeadroom {
		t.Fatalf("got %v, want memory down to usage + headroom = %d", ds, 300<<20+p.MemoryHeadroom)
	}
}

func TestRateLimit(t *testing.T) {
	p := testPolicy()
	p.Cooldown, p.MaxChangesPerMinute = 0, 2
	tr := NewTracker(p)
	var st cgroup.Stats
	now := t0
	changes := 0
	for range 5 {
		now = feed(tr, now, &st, 4, 1000, true, 0)
		for _, d := range tr.Decide(now, in(limits(1000, cgroup.Unlimited), Bounds{}, Room{MilliCPU: 100000})) {
			tr.Changed(d, now)
			changes++
		}
	}
	if changes != 2 {
		t.Errorf("%d changes within a minute, want at most 2", changes)
	}
}

func TestClockJumpsStartOver(t *testing.T) {
	tr := NewTracker(testPolicy())
	var st cgroup.Stats
	now := feed(tr, t0, &st, 3, 500, true, 0)
	// The clock goes back: no window may come out of it.
	st.CPUUsage += time.Second
	if tr.Observe(now.Add(-time.Hour), st) {
		t.Fatal("a window closed across a clock going back")
	}
	// And jumps ahead: the history is gone, so no decision yet.
	now = feed(tr, now.Add(time.Hour), &st, 2, 500, true, 0)
	if ds := tr.Decide(now, in(limits(500, cgroup.Unlimited), Bounds{}, Room{MilliCPU: 1000})); len(ds) != 0 {
		t.Errorf("decided %v from windows across a clock jump", ds)
	}
	// Counters going back (a recreated cgroup) also start over.
	st = cgroup.Stats{}
	if tr.Observe(now.Add(time.Second), st) {
		t.Error("a window closed across counters going back")
	}
}

func TestPolicyFromConfig(t *testing.T) {
	p, err := PolicyFromConfig(DefaultPolicy(), map[string]string{"window": "5s", "upper": "0.9", "memoryHeadroom": "128Mi"})
	if err != nil || p.Window != 5*time.Second || p.Upper != 0.9 || p.MemoryHeadroom != 128<<20 {
		t.Errorf("got %+v, %v", p, err)
	}
	for _, bad := range []map[string]string{{"window": "soon"}, {"lower": "0.95"}, {"colour": "blue"}} {
		if _, err := PolicyFromConfig(DefaultPolicy(), bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestValidateRefusesWhatNoOperatorMeant: NaN, infinities and absurd
// values are refused with the key named, and no policy can take the memory
// headroom below its floor, whether from flags or a live change.
func TestValidateRefusesWhatNoOperatorMeant(t *testing.T) {
	for _, tc := range []struct {
		key, value, want string
	}{
		{"margin", "NaN", "margin (NaN) must be a finite number"},
		{"maxStep", "+Inf", "maxStep (+Inf) must be a finite number"},
		{"upper", "NaN", "upper (NaN) must be a finite number"},
		{"lower", "-Inf", "lower (-Inf) must be a finite number"},
		{"margin", "1e9", "margin 1e+09 must be between 0 and 10"},
		{"maxStep", "0", "maxStep 0 must be greater than 0"},
		{"window", "1ns", "window 1ns must be between 100ms and 10m0s"},
		{"window", "87600h", "window 87600h0m0s must be between"},
		{"windows", "1000000", "windows 1000000 must be between 1 and 100"},
		{"cooldown", "-1s", "cooldown -1s must be between 0 and 1h0m0s"},
		{"memoryHeadroom", "0", "memoryHeadroom 0 must be between 16Mi"},
		{"memoryHeadroom", "1Ki", "the floor that keeps a container from being squeezed"},
		{"memoryHeadroom", "1Pi", "must be between 16Mi (the floor that keeps a container from being squeezed to its usage) and 64Gi"},
		{"maxChangesPerMinute", "0", "maxChangesPerMinute 0 must be between 1 and 600"},
		{"fastThrottle", "1.5", "fastThrottle 1.5 must be between 0 (off) and 1"},
		{"fastPressure", "NaN", "fastPressure (NaN) must be a finite number"},
		{"fastMemory", "-0.1", "fastMemory -0.1 must be between 0 (off) and 1"},
		{"fastMaxStep", "0", "fastMaxStep 0 must be greater than 0"},
	} {
		p, err := PolicyFromConfig(DefaultPolicy(), map[string]string{tc.key: tc.value})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: got %v, want an error with %q", tc.key, tc.value, err, tc.want)
		}
		if p != DefaultPolicy() {
			t.Errorf("%s=%s: a refused change must keep the old policy, got %+v", tc.key, tc.value, p)
		}
	}
	if err := DefaultPolicy().Validate(); err != nil {
		t.Errorf("the default policy is refused: %v", err)
	}
	floor := DefaultPolicy()
	floor.MemoryHeadroom = MinMemoryHeadroom
	if err := floor.Validate(); err != nil {
		t.Errorf("the floor itself is refused: %v", err)
	}
}
