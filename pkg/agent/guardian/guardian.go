// Package guardian decides, per container, when and by how much to change
// its CPU and memory limits from its measured usage (the Guardian of the
// Serverless Containers framework): usage is averaged over sliding time
// windows; usage above an upper boundary of the limit (or CPU throttling)
// for K consecutive windows scales up, below a lower boundary for K windows
// scales down, to usage plus a margin, clamped to the container's bounds,
// to a maximum step, to what the node can still give, never below memory
// usage plus headroom, with a cooldown and a cap on changes per minute.
package guardian

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
)

// Resource names.
const (
	CPU    = "cpu"    // millicores
	Memory = "memory" // bytes
)

// Directions of a decision.
const (
	Up   = "up"
	Down = "down"
)

// Policy is how the guardian decides. DefaultPolicy documents the values.
type Policy struct {
	// Window is the length of one usage window.
	Window time.Duration
	// Windows (K) consecutive windows must agree before a change.
	Windows int
	// Upper and Lower are fractions of the current limit.
	Upper, Lower float64
	// Margin: the new limit is the highest usage of the K windows times (1+Margin).
	Margin float64
	// MaxStep caps one change to this fraction of the current limit.
	MaxStep float64
	// Cooldown after a change of a resource before it changes again.
	Cooldown time.Duration
	// MemoryHeadroom: memory never goes below current usage plus this.
	MemoryHeadroom int64
	// MaxChangesPerMinute per container, all resources together.
	MaxChangesPerMinute int
	// MinMilliCPU and MinMemory are floors for any container.
	MinMilliCPU, MinMemory int64
}

// DefaultPolicy: 10s windows, 3 in a row, up above 80% (or throttled),
// down below 40%, 25% margin, at most a doubling or halving per change,
// 30s cooldown, 64Mi memory headroom, 4 changes a minute, floors 10m and 32Mi.
func DefaultPolicy() Policy {
	return Policy{
		Window: 10 * time.Second, Windows: 3, Upper: 0.8, Lower: 0.4, Margin: 0.25, MaxStep: 1.0,
		Cooldown: 30 * time.Second, MemoryHeadroom: 64 << 20, MaxChangesPerMinute: 4,
		MinMilliCPU: 10, MinMemory: 32 << 20,
	}
}

// MinMemoryHeadroom is the least memory headroom any policy may have: no
// flag and no live change from the configurator can squeeze a container's
// memory limit closer to its usage than this, which would OOM-kill it at
// its next allocation.
const MinMemoryHeadroom = 16 << 20

// The ranges a policy must stay in; outside them it is refused, not
// clamped, so that a typo is seen rather than obeyed.
const (
	minWindow, maxWindow     = 100 * time.Millisecond, 10 * time.Minute
	maxWindows               = 100
	maxMargin, maxMaxStep    = 10.0, 10.0
	maxCooldown              = time.Hour
	maxMemoryHeadroom        = 64 << 30
	maxChangesPerMinuteLimit = 600
)

// Validate reports a policy that cannot work or that no sane operator
// meant: NaN and infinite fractions, durations and counts outside their
// ranges, and a memory headroom below MinMemoryHeadroom.
func (p Policy) Validate() error {
	for _, f := range []struct {
		name  string
		value float64
	}{{"upper", p.Upper}, {"lower", p.Lower}, {"margin", p.Margin}, {"maxStep", p.MaxStep}} {
		if math.IsNaN(f.value) || math.IsInf(f.value, 0) {
			return fmt.Errorf("%s (%v) must be a finite number", f.name, f.value)
		}
	}
	switch {
	case p.Window < minWindow || p.Window > maxWindow:
		return fmt.Errorf("window %s must be between %s and %s", p.Window, minWindow, maxWindow)
	case p.Windows < 1 || p.Windows > maxWindows:
		return fmt.Errorf("windows %d must be between 1 and %d", p.Windows, maxWindows)
	case !(0 < p.Lower && p.Lower < p.Upper && p.Upper <= 1):
		return fmt.Errorf("boundaries must satisfy 0 < lower (%v) < upper (%v) <= 1", p.Lower, p.Upper)
	case p.Margin < 0 || p.Margin > maxMargin:
		return fmt.Errorf("margin %v must be between 0 and %v", p.Margin, maxMargin)
	case p.MaxStep <= 0 || p.MaxStep > maxMaxStep:
		return fmt.Errorf("maxStep %v must be greater than 0 and at most %v", p.MaxStep, maxMaxStep)
	case p.Cooldown < 0 || p.Cooldown > maxCooldown:
		return fmt.Errorf("cooldown %s must be between 0 and %s", p.Cooldown, maxCooldown)
	case p.MemoryHeadroom < MinMemoryHeadroom || p.MemoryHeadroom > maxMemoryHeadroom:
		return fmt.Errorf("memoryHeadroom %s must be between %s (the floor that keeps a container from being squeezed to its usage) and %s",
			resource.NewQuantity(p.MemoryHeadroom, resource.BinarySI), resource.NewQuantity(MinMemoryHeadroom, resource.BinarySI), resource.NewQuantity(maxMemoryHeadroom, resource.BinarySI))
	case p.MaxChangesPerMinute < 1 || p.MaxChangesPerMinute > maxChangesPerMinuteLimit:
		return fmt.Errorf("maxChangesPerMinute %d must be between 1 and %d", p.MaxChangesPerMinute, maxChangesPerMinuteLimit)
	case p.MinMilliCPU < 1 || p.MinMemory < MinMemoryHeadroom:
		return fmt.Errorf("the floors must be at least 1m CPU and %s memory", resource.NewQuantity(MinMemoryHeadroom, resource.BinarySI))
	}
	return nil
}

// Bounds per resource for one container (0: none), e.g. from annotations.
type Bounds struct {
	MinMilliCPU, MaxMilliCPU int64
	MinMemory, MaxMemory     int64
}

// window is one closed window.
type window struct {
	milliCPU  int64 // average over the window
	throttled bool
	memory    int64 // highest sample
}

// Tracker follows one container's usage.
type Tracker struct {
	policy Policy

	last        *sample
	start       time.Time
	cpuUsed     time.Duration
	throttled   uint64
	memory      int64
	windows     []window
	lastChange  map[string]time.Time
	changeTimes []time.Time
}

type sample struct {
	at    time.Time
	stats cgroup.Stats
}

// NewTracker starts following a container.
func NewTracker(p Policy) *Tracker {
	return &Tracker{policy: p, lastChange: map[string]time.Time{}}
}

// SetPolicy changes the policy (live, from the configurator); windows
// collected so far are kept.
func (t *Tracker) SetPolicy(p Policy) { t.policy = p }

// Observe takes one sample and reports whether a window closed. A clock
// that goes back or jumps ahead by more than two windows, or counters that
// go back (the cgroup was recreated), start over instead of producing a
// nonsense window.
func (t *Tracker) Observe(at time.Time, st cgroup.Stats) bool {
	prev := t.last
	t.last = &sample{at: at, stats: st}
	if prev == nil || !at.After(prev.at) || at.Sub(prev.at) > 2*t.policy.Window || st.CPUUsage < prev.stats.CPUUsage || st.ThrottledPeriods < prev.stats.ThrottledPeriods {
		t.start, t.cpuUsed, t.throttled, t.memory = at, 0, 0, st.MemoryUsage
		if prev != nil && (!at.After(prev.at) || at.Sub(prev.at) > 2*t.policy.Window) {
			t.windows = nil // the history no longer describes consecutive time
		}
		return false
	}
	t.cpuUsed += st.CPUUsage - prev.stats.CPUUsage
	t.throttled += st.ThrottledPeriods - prev.stats.ThrottledPeriods
	t.memory = max(t.memory, st.MemoryUsage)
	elapsed := at.Sub(t.start)
	if elapsed < t.policy.Window {
		return false
	}
	t.windows = append(t.windows, window{
		milliCPU: int64(t.cpuUsed) * 1000 / int64(elapsed), throttled: t.throttled > 0, memory: t.memory,
	})
	if len(t.windows) > t.policy.Windows {
		t.windows = t.windows[len(t.windows)-t.policy.Windows:]
	}
	t.start, t.cpuUsed, t.throttled, t.memory = at, 0, 0, st.MemoryUsage
	return true
}

// Decision is one change to make.
type Decision struct {
	Resource  string
	Direction string
	From, To  int64
	Reason    string
}

func (d Decision) String() string {
	return fmt.Sprintf("%s %s %d -> %d (%s)", d.Resource, d.Direction, d.From, d.To, d.Reason)
}

// Room is what the node can still give on top of current limits.
type Room struct {
	MilliCPU, Memory int64
}

// Decide returns the changes the last K windows call for. limits are the
// current ones (cgroup.Unlimited resources are left alone), memoryUsage is
// the latest sample. The caller applies them and reports back with Changed.
func (t *Tracker) Decide(now time.Time, limits cgroup.Limits, memoryUsage int64, bounds Bounds, room Room) []Decision {
	p := t.policy
	if len(t.windows) < p.Windows || t.rateLimited(now) {
		return nil
	}
	var out []Decision
	if cpu := limits.MilliCPU(); cpu != cgroup.Unlimited && t.cooledDown(CPU, now) {
		high, allAbove, allBelow := int64(0), true, true
		for _, w := range t.windows {
			high = max(high, w.milliCPU)
			above := w.throttled || float64(w.milliCPU) >= p.Upper*float64(cpu)
			allAbove = allAbove && above
			allBelow = allBelow && !w.throttled && float64(w.milliCPU) <= p.Lower*float64(cpu)
		}
		target := int64(float64(high) * (1 + p.Margin))
		if d, ok := t.clamp(CPU, cpu, target, allAbove, allBelow, max(p.MinMilliCPU, bounds.MinMilliCPU), bounds.MaxMilliCPU, room.MilliCPU, 0); ok {
			out = append(out, d)
		}
	}
	if mem := limits.MemoryMax; mem != cgroup.Unlimited && t.cooledDown(Memory, now) {
		high, allAbove, allBelow := int64(0), true, true
		for _, w := range t.windows {
			high = max(high, w.memory)
			allAbove = allAbove && float64(w.memory) >= p.Upper*float64(mem)
			allBelow = allBelow && float64(w.memory) <= p.Lower*float64(mem)
		}
		target := int64(float64(high) * (1 + p.Margin))
		floor := max(p.MinMemory, bounds.MinMemory)
		if d, ok := t.clamp(Memory, mem, target, allAbove, allBelow, floor, bounds.MaxMemory, room.Memory, memoryUsage+p.MemoryHeadroom); ok {
			out = append(out, d)
		}
	}
	return out
}

// clamp turns a target into a decision within every rule, or none.
func (t *Tracker) clamp(resource string, from, target int64, up, down bool, minimum, maximum, room, hardFloor int64) (Decision, bool) {
	if !up && !down {
		return Decision{}, false
	}
	p := t.policy
	to, reason := target, "usage plus margin"
	step := int64(float64(from) * p.MaxStep)
	if up {
		to = max(to, from+1)
		if to > from+step {
			to, reason = from+step, "max step"
		}
		if to > from+max(room, 0) {
			to, reason = from+max(room, 0), "node room"
		}
		if maximum > 0 && to > maximum {
			to, reason = maximum, "container maximum"
		}
	} else {
		// Symmetric with going up: MaxStep 1 allows a doubling or a halving.
		if floor := int64(float64(from) / (1 + p.MaxStep)); to < floor {
			to, reason = floor, "max step"
		}
		if to < minimum {
			to, reason = minimum, "container minimum"
		}
	}
	if to < hardFloor {
		to, reason = hardFloor, "usage plus headroom"
	}
	// Changes under 5% are not worth a resize (and would chase noise).
	if (up && to <= from) || (down && to >= from) || abs(to-from)*20 < from {
		return Decision{}, false
	}
	dir := Up
	if down {
		dir = Down
	}
	return Decision{Resource: resource, Direction: dir, From: from, To: to, Reason: reason}, true
}

func (t *Tracker) cooledDown(resource string, now time.Time) bool {
	last, ok := t.lastChange[resource]
	return !ok || now.Sub(last) >= t.policy.Cooldown
}

func (t *Tracker) rateLimited(now time.Time) bool {
	recent := t.changeTimes[:0]
	for _, c := range t.changeTimes {
		if now.Sub(c) < time.Minute {
			recent = append(recent, c)
		}
	}
	t.changeTimes = recent
	return len(recent) >= t.policy.MaxChangesPerMinute
}

// Changed records an applied decision: the cooldown starts, and the
// windows start over (they measured the container under the old limit).
func (t *Tracker) Changed(d Decision, now time.Time) {
	t.lastChange[d.Resource] = now
	t.changeTimes = append(t.changeTimes, now)
	t.windows = nil
}

// PolicyFromConfig applies configuration keys (as the configurator sends
// them) over base: window, windows, upper, lower, margin, maxStep,
// cooldown, memoryHeadroom, maxChangesPerMinute. Unknown keys and bad
// values are errors, and the result is validated.
func PolicyFromConfig(base Policy, cfg map[string]string) (Policy, error) {
	p := base
	for k, v := range cfg {
		var err error
		switch k {
		case "window":
			p.Window, err = time.ParseDuration(v)
		case "cooldown":
			p.Cooldown, err = time.ParseDuration(v)
		case "windows":
			p.Windows, err = strconv.Atoi(v)
		case "maxChangesPerMinute":
			p.MaxChangesPerMinute, err = strconv.Atoi(v)
		case "upper":
			p.Upper, err = strconv.ParseFloat(v, 64)
		case "lower":
			p.Lower, err = strconv.ParseFloat(v, 64)
		case "margin":
			p.Margin, err = strconv.ParseFloat(v, 64)
		case "maxStep":
			p.MaxStep, err = strconv.ParseFloat(v, 64)
		case "memoryHeadroom":
			var q resource.Quantity
			if q, err = resource.ParseQuantity(v); err == nil {
				p.MemoryHeadroom = q.Value()
			}
		default:
			return base, fmt.Errorf("unknown policy key %q", k)
		}
		if err != nil {
			return base, fmt.Errorf("policy key %s=%q: %v", k, v, err)
		}
	}
	if err := p.Validate(); err != nil {
		return base, err
	}
	return p, nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
