package guardian

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
)

// step is one second of a container's life, as the counters see it.
type step struct {
	milliCPU           int64
	throttledShare     float64       // of the 10 CFS periods of the second
	throttledTime      time.Duration // wall time throttled
	cpuStall, memStall time.Duration // PSI "some" during the second
	memory             int64
	oomKills           uint64
	noPSI              bool
}

// play feeds the steps, one per second from t0 (after a priming sample),
// and returns the time of the last one.
func play(tr *Tracker, st *cgroup.Stats, from time.Time, steps ...step) time.Time {
	at := from
	if tr.last == nil {
		st.Pressure.Available = len(steps) == 0 || !steps[0].noPSI
		tr.Observe(at, *st)
	}
	for _, s := range steps {
		at = at.Add(time.Second)
		st.CPUUsage += time.Duration(s.milliCPU) * time.Millisecond
		st.Periods += 10
		st.ThrottledPeriods += uint64(s.throttledShare*10 + 0.5)
		st.ThrottledTime += s.throttledTime
		st.Pressure.CPU += s.cpuStall
		st.Pressure.Memory += s.memStall
		st.Pressure.Available = !s.noPSI
		st.MemoryUsage = s.memory
		st.OOMKills += s.oomKills
		tr.Observe(at, *st)
	}
	return at
}

const mi = 1 << 20

// TestFastPath: what one second of pressure does, rule by rule.
func TestFastPath(t *testing.T) {
	room := Room{MilliCPU: 16000, Memory: 64 << 30}
	for _, tc := range []struct {
		name   string
		policy func(*Policy)
		limits cgroup.Limits
		bounds Bounds
		room   *Room
		steps  []step
		want   string // Decision.String() joined by "; ", "" for none
	}{
		{
			name:   "throttled half the time at the limit: demand is twice the use, plus margin",
			limits: limits(500, cgroup.Unlimited),
			steps:  []step{{milliCPU: 500, throttledShare: 0.5, throttledTime: 500 * time.Millisecond}},
			want:   "cpu up 500 -> 1250 (throttled)",
		},
		{
			name:   "four threads on a one-core limit: throttled three quarters of the time, demand four cores",
			limits: limits(1000, cgroup.Unlimited),
			steps:  []step{{milliCPU: 1000, throttledShare: 0.8, throttledTime: 750 * time.Millisecond}},
			want:   "cpu up 1000 -> 4000 (throttled, max step)",
		},
		{
			name:   "throttled throughout: the demand is unknown, so the largest fast step",
			limits: limits(500, cgroup.Unlimited),
			steps:  []step{{milliCPU: 500, throttledShare: 1, throttledTime: time.Second}},
			want:   "cpu up 500 -> 2000 (throttled, max step)",
		},
		{
			name:   "throttled in 10% of the periods: below fastThrottle, nothing yet",
			limits: limits(500, cgroup.Unlimited),
			steps:  []step{{milliCPU: 300, throttledShare: 0.1, throttledTime: 20 * time.Millisecond}},
		},
		{
			name:   "the fast step stops at the node's room and the container's maximum",
			limits: limits(500, cgroup.Unlimited), room: &Room{MilliCPU: 300},
			steps: []step{{milliCPU: 500, throttledShare: 1, throttledTime: time.Second}},
			want:  "cpu up 500 -> 800 (throttled, max step, node room)",
		},
		{
			name:   "container maximum",
			limits: limits(500, cgroup.Unlimited), bounds: Bounds{MaxMilliCPU: 700},
			steps: []step{{milliCPU: 500, throttledShare: 1, throttledTime: time.Second}},
			want:  "cpu up 500 -> 700 (throttled, max step, container maximum)",
		},
		{
			name:   "CPU stalled at the limit (PSI): up by the stall",
			limits: limits(1000, cgroup.Unlimited),
			steps:  []step{{milliCPU: 900, cpuStall: 400 * time.Millisecond}},
			want:   "cpu up 1000 -> 1575 (cpu pressure)",
		},
		{
			name:   "CPU stalled far below the limit: the node is contended, a higher limit cures nothing",
			limits: limits(1000, cgroup.Unlimited),
			steps:  []step{{milliCPU: 200, cpuStall: 600 * time.Millisecond}},
		},
		{
			name:   "fast path off: nothing within a window",
			policy: func(p *Policy) { p.FastThrottle, p.FastPressure, p.FastMemory = 0, 0, 0 },
			limits: limits(500, cgroup.Unlimited),
			steps:  []step{{milliCPU: 500, throttledShare: 1, throttledTime: time.Second}},
		},
		{
			name:   "memory at 95% of its limit on v1 (no PSI): up to usage plus margin",
			limits: limits(cgroup.Unlimited, 400*mi),
			steps:  []step{{memory: 380 * mi, noPSI: true}},
			want:   "memory up 419430400 -> 524288000 (near the limit)",
		},
		{
			name:   "memory at 95% on v2 without a stall: a full page cache, not a shortage",
			limits: limits(cgroup.Unlimited, 400*mi),
			steps:  []step{{memory: 380 * mi}},
		},
		{
			name:   "memory at 95% on v2 while reclaim stalls it",
			limits: limits(cgroup.Unlimited, 400*mi),
			steps:  []step{{memory: 380 * mi, memStall: 10 * time.Millisecond}},
			want:   "memory up 419430400 -> 524288000 (near the limit)",
		},
		{
			name:   "memory stalled 30% of the time below the limit: up by the margin",
			limits: limits(cgroup.Unlimited, 400*mi),
			steps:  []step{{memory: 200 * mi, memStall: 300 * time.Millisecond}},
			want:   "memory up 419430400 -> 524288000 (memory pressure)",
		},
		{
			name:   "an OOM kill doubles memory at once",
			limits: limits(cgroup.Unlimited, 400*mi),
			steps:  []step{{memory: 100 * mi, oomKills: 1}},
			want:   "memory up 419430400 -> 838860800 (oom kill)",
		},
		{
			name:   "an OOM kill goes past the rate limit",
			policy: func(p *Policy) { p.MaxChangesPerMinute = 1 },
			limits: limits(500, 400*mi),
			steps:  []step{{milliCPU: 500, throttledShare: 1, throttledTime: time.Second}, {milliCPU: 10, memory: 100 * mi, oomKills: 1}},
			want:   "memory up 419430400 -> 838860800 (oom kill)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultPolicy()
			if tc.policy != nil {
				tc.policy(&p)
			}
			tr := NewTracker(p)
			var st cgroup.Stats
			r := room
			if tc.room != nil {
				r = *tc.room
			}
			at := play(tr, &st, t0, tc.steps[0])
			var got []string
			for _, d := range tr.Decide(at, Input{Limits: tc.limits, Bounds: tc.bounds, Room: r}) {
				got = append(got, d.String())
				tr.Changed(d, at)
			}
			if len(tc.steps) > 1 {
				got = nil
				at = play(tr, &st, at, tc.steps[1:]...)
				for _, d := range tr.Decide(at, Input{Limits: tc.limits, Bounds: tc.bounds, Room: r}) {
					got = append(got, d.String())
				}
			}
			if g := strings.Join(got, "; "); g != tc.want {
				t.Errorf("got  %q\nwant %q", g, tc.want)
			}
		})
	}
}

// TestFastPathWaitsForOneSampleUnderTheNewLimit: a raise is judged by a
// sample taken wholly under it, not by the one that caused it; and a
// raise is not undone before K windows of low use and the cooldown.
func TestFastPathWaitsForOneSampleUnderTheNewLimit(t *testing.T) {
	p := DefaultPolicy()
	p.Window, p.Windows = 3*time.Second, 3
	tr := NewTracker(p)
	var st cgroup.Stats
	spike := step{milliCPU: 500, throttledShare: 1, throttledTime: time.Second}
	at := play(tr, &st, t0, spike)
	ds := tr.Decide(at, in(limits(500, cgroup.Unlimited), Bounds{}, Room{MilliCPU: 16000}))
	if len(ds) != 1 || ds[0].To != 2000 {
		t.Fatalf("first throttled second: %v, want cpu up to 2000", ds)
	}
	// The change lands between two samples: the next sample straddles it.
	tr.Changed(ds[0], at.Add(300*time.Millisecond))
	at = play(tr, &st, at, spike)
	if ds := tr.Decide(at, in(limits(2000, cgroup.Unlimited), Bounds{}, Room{MilliCPU: 16000})); len(ds) != 0 {
		t.Fatalf("a sample taken partly under the old limit raised again: %v", ds)
	}
	at = play(tr, &st, at, step{milliCPU: 2000, throttledShare: 1, throttledTime: time.Second})
	if ds := tr.Decide(at, in(limits(2000, cgroup.Unlimited), Bounds{}, Room{MilliCPU: 16000})); len(ds) != 1 || ds[0].To != 8000 {
		t.Fatalf("still throttled under the new limit: %v, want up again to 8000", ds)
	}
	tr.Changed(ds[0], at)
	// Idle at once: nothing comes down before 3 windows (9s) and the cooldown (30s).
	for i := range 29 {
		at = play(tr, &st, at, step{milliCPU: 50})
		if ds := tr.Decide(at, in(limits(8000, cgroup.Unlimited), Bounds{}, Room{MilliCPU: 16000})); len(ds) != 0 {
			t.Fatalf("%ds after a raise: %v, want nothing before the cooldown", i+1, ds)
		}
	}
	at = play(tr, &st, at, step{milliCPU: 50})
	if ds := tr.Decide(at, in(limits(8000, cgroup.Unlimited), Bounds{}, Room{MilliCPU: 16000})); len(ds) != 1 || ds[0].Direction != Down {
		t.Fatalf("idle for 30s: %v, want cpu down", ds)
	}
}

// TestSqueezeThenLower: on cgroup v2 memory comes down through memory.high
// first; memory.max follows only after a window without pressure, and a
// squeeze that hurts is released at once.
func TestSqueezeThenLower(t *testing.T) {
	p := DefaultPolicy()
	p.Window, p.Windows, p.Cooldown = time.Second, 3, 0
	idle := step{memory: 100 * mi}
	lim := limits(cgroup.Unlimited, 1024*mi)
	lim.MemoryHigh = cgroup.Unlimited

	t.Run("held", func(t *testing.T) {
		tr := NewTracker(p)
		var st cgroup.Stats
		at := play(tr, &st, t0, idle, idle, idle)
		ds := tr.Decide(at, Input{Limits: lim, Room: Room{Memory: 1 << 40}, SoftMemory: true})
		if len(ds) != 1 || !ds[0].Soft || ds[0].Direction != Down || ds[0].To != 512*mi {
			t.Fatalf("low for 3 windows: %v, want a memory.high squeeze to 512Mi", ds)
		}
		tr.Changed(ds[0], at)
		squeezed := lim
		squeezed.MemoryHigh = 512 * mi
		at = play(tr, &st, at, idle)
		ds = tr.Decide(at, Input{Limits: squeezed, Room: Room{Memory: 1 << 40}, SoftMemory: true})
		if len(ds) != 1 || ds[0].Soft || ds[0].Reason != ReasonSqueezeHeld || ds[0].To != 512*mi {
			t.Fatalf("a quiet window under memory.high: %v, want memory.max down to 512Mi", ds)
		}
	})
	t.Run("released", func(t *testing.T) {
		tr := NewTracker(p)
		var st cgroup.Stats
		at := play(tr, &st, t0, idle, idle, idle)
		ds := tr.Decide(at, Input{Limits: lim, Room: Room{Memory: 1 << 40}, SoftMemory: true})
		tr.Changed(ds[0], at)
		squeezed := lim
		squeezed.MemoryHigh = 512 * mi
		at = play(tr, &st, at, step{memory: 500 * mi, memStall: 300 * time.Millisecond})
		ds = tr.Decide(at, Input{Limits: squeezed, Room: Room{Memory: 1 << 40}, SoftMemory: true})
		if len(ds) != 1 || !ds[0].Soft || ds[0].Direction != Up || ds[0].To != cgroup.Unlimited {
			t.Fatalf("stalled under memory.high: %v, want memory.high back to max", ds)
		}
	})
	t.Run("carried over from an earlier run", func(t *testing.T) {
		tr := NewTracker(p)
		var st cgroup.Stats
		squeezed := lim
		squeezed.MemoryHigh = 512 * mi
		at := play(tr, &st, t0, idle)
		if ds := tr.Decide(at, Input{Limits: squeezed, Room: Room{Memory: 1 << 40}, SoftMemory: true}); len(ds) != 0 {
			t.Fatalf("an inherited squeeze was acted on at once: %v", ds)
		}
		at = play(tr, &st, at, idle)
		if ds := tr.Decide(at, Input{Limits: squeezed, Room: Room{Memory: 1 << 40}, SoftMemory: true}); len(ds) != 1 || ds[0].Reason != ReasonSqueezeHeld {
			t.Fatalf("an inherited squeeze after a quiet window: %v, want it held", ds)
		}
	})
	t.Run("no memory.high: lowered directly", func(t *testing.T) {
		tr := NewTracker(p)
		var st cgroup.Stats
		at := play(tr, &st, t0, idle, idle, idle)
		ds := tr.Decide(at, Input{Limits: lim, Room: Room{Memory: 1 << 40}})
		if len(ds) != 1 || ds[0].Soft || ds[0].To != 512*mi {
			t.Fatalf("without memory.high: %v, want memory.max down to 512Mi", ds)
		}
	})
	t.Run("not lowered while windows saw memory stalls", func(t *testing.T) {
		tr := NewTracker(p)
		var st cgroup.Stats
		at := play(tr, &st, t0, idle, step{memory: 100 * mi, memStall: 300 * time.Millisecond}, idle)
		for _, d := range tr.Decide(at, Input{Limits: lim, Room: Room{}, SoftMemory: true}) {
			if d.Direction == Down {
				t.Fatalf("lowered memory right after a stall: %v", d)
			}
		}
	})
}
