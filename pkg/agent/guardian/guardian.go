// Package guardian decides, per container, when and by how much to change
// its CPU and memory limits from its measured usage (the Guardian of the
// Serverless Containers framework), with two paths:
//
//   - A fast path up, on every sample: a container throttled in a good part
//     of its CFS periods, stalled (PSI) while at its limit, near its memory
//     limit under reclaim, or OOM-killed gets a higher limit at once, sized
//     from its estimated demand (usage corrected for the time it spent
//     throttled).
//   - A careful path, over sliding windows: usage above an upper boundary
//     for K consecutive windows scales up, below a lower boundary for K
//     windows scales down, with a cooldown. Memory on cgroup v2 is first
//     squeezed with memory.high and only lowered (memory.max) once a window
//     passed without pressure.
//
// Every change is clamped to the container's bounds, to a maximum step, to
// what the node can still give, and never below memory usage plus headroom;
// changes per minute are capped (an OOM kill is not).
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

	// FastThrottle: a sample in which at least this fraction of the CFS
	// periods were throttled raises CPU at once. 0 turns it off.
	FastThrottle float64
	// FastPressure: a sample in which tasks were stalled (PSI "some") for
	// at least this fraction of the time raises the resource at once, CPU
	// only when its usage is also above Upper (below, the stall is the
	// node's contention, which a higher limit does not cure). Cgroup v2
	// only. 0 turns it off.
	FastPressure float64
	// FastMemory: memory usage at this fraction of the limit raises memory
	// at once (on cgroup v2 with PSI, only while memory.pressure shows a
	// stall: a full page cache alone is not a shortage). 0 turns it off.
	FastMemory float64
	// FastMaxStep caps one fast raise to this fraction of the current
	// limit (3: at most four times the limit).
	FastMaxStep float64
}

// DefaultPolicy: the fast path raises at once when 20% of a sample's CFS
// periods are throttled, tasks stall 20% of the time, or memory is at 90%
// of its limit, by at most four times; the careful path has 10s windows, 3
// in a row, up above 80%, down below 40%, 25% margin, at most a doubling
// or halving per change, 30s cooldown, 64Mi memory headroom, 6 changes a
// minute, floors 10m and 32Mi.
func DefaultPolicy() Policy {
	p := WindowedPolicy()
	p.FastThrottle, p.FastPressure, p.FastMemory, p.FastMaxStep = 0.2, 0.2, 0.9, 3
	p.MaxChangesPerMinute = 6
	return p
}

// WindowedPolicy is the policy before the fast path (Switchyard 0.1's
// defaults): only K windows that agree change a limit. Kept to compare
// against, and for operators who want no reaction within a window.
func WindowedPolicy() Policy {
	return Policy{
		Window: 10 * time.Second, Windows: 3, Upper: 0.8, Lower: 0.4, Margin: 0.25, MaxStep: 1.0,
		Cooldown: 30 * time.Second, MemoryHeadroom: 64 << 20, MaxChangesPerMinute: 4,
		MinMilliCPU: 10, MinMemory: 32 << 20, FastMaxStep: 1,
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
	}{{"upper", p.Upper}, {"lower", p.Lower}, {"margin", p.Margin}, {"maxStep", p.MaxStep},
		{"fastThrottle", p.FastThrottle}, {"fastPressure", p.FastPressure}, {"fastMemory", p.FastMemory}, {"fastMaxStep", p.FastMaxStep}} {
		if math.IsNaN(f.value) || math.IsInf(f.value, 0) {
			return fmt.Errorf("%s (%v) must be a finite number", f.name, f.value)
		}
	}
	for _, f := range []struct {
		name  string
		value float64
	}{{"fastThrottle", p.FastThrottle}, {"fastPressure", p.FastPressure}, {"fastMemory", p.FastMemory}} {
		if f.value < 0 || f.value > 1 {
			return fmt.Errorf("%s %v must be between 0 (off) and 1", f.name, f.value)
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
	case p.FastMaxStep <= 0 || p.FastMaxStep > maxMaxStep:
		return fmt.Errorf("fastMaxStep %v must be greater than 0 and at most %v", p.FastMaxStep, maxMaxStep)
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
	// memoryPressure: a sample of the window stalled on memory (PSI).
	memoryPressure bool
}

// signal is what one sample says about the time since the previous one.
type signal struct {
	valid   bool
	start   time.Time // the previous sample's time
	elapsed time.Duration
	// milliCPU is the average CPU use over the sample.
	milliCPU int64
	// throttledShare is the fraction of CFS periods throttled.
	throttledShare float64
	// throttledTime is how long the cgroup was throttled (wall time).
	throttledTime time.Duration
	// cpuStall and memoryStall are PSI "some" fractions of elapsed; 0
	// without PSI.
	cpuStall, memoryStall float64
	hasPressure           bool
	memory                int64
	oomKills              uint64
}

// squeeze is a memory reduction in progress on cgroup v2: memory.high is
// at to since since, and memory.max is lowered only if it holds.
type squeeze struct {
	to    int64
	since time.Time
}

// Tracker follows one container's usage.
type Tracker struct {
	policy Policy

	last        *sample
	sig         signal
	start       time.Time
	cpuUsed     time.Duration
	throttled   uint64
	memory      int64
	memStalled  bool
	windows     []window
	lastChange  map[string]time.Time
	changeTimes []time.Time
	squeeze     *squeeze
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

// Observe takes one sample and reports whether a window closed (Decide may
// act on every sample: the fast path does not wait for windows). A clock
// that goes back or jumps ahead by more than two windows, or counters that
// go back (the cgroup was recreated), start over instead of producing a
// nonsense window.
func (t *Tracker) Observe(at time.Time, st cgroup.Stats) bool {
	prev := t.last
	t.last = &sample{at: at, stats: st}
	t.sig = signal{}
	if prev == nil || !at.After(prev.at) || at.Sub(prev.at) > 2*t.policy.Window || st.CPUUsage < prev.stats.CPUUsage || st.ThrottledPeriods < prev.stats.ThrottledPeriods {
		t.start, t.cpuUsed, t.throttled, t.memory, t.memStalled = at, 0, 0, st.MemoryUsage, false
		if prev != nil && (!at.After(prev.at) || at.Sub(prev.at) > 2*t.policy.Window) {
			t.windows = nil // the history no longer describes consecutive time
		}
		return false
	}
	t.sig = signalOf(prev, at, st)
	t.cpuUsed += st.CPUUsage - prev.stats.CPUUsage
	t.throttled += st.ThrottledPeriods - prev.stats.ThrottledPeriods
	t.memory = max(t.memory, st.MemoryUsage)
	t.memStalled = t.memStalled || (t.policy.FastPressure > 0 && t.sig.memoryStall >= t.policy.FastPressure)
	elapsed := at.Sub(t.start)
	if elapsed < t.policy.Window {
		return false
	}
	t.windows = append(t.windows, window{
		milliCPU: int64(t.cpuUsed) * 1000 / int64(elapsed), throttled: t.throttled > 0, memory: t.memory, memoryPressure: t.memStalled,
	})
	if len(t.windows) > t.policy.Windows {
		t.windows = t.windows[len(t.windows)-t.policy.Windows:]
	}
	t.start, t.cpuUsed, t.throttled, t.memory, t.memStalled = at, 0, 0, st.MemoryUsage, false
	return true
}

// signalOf is the sample from prev to (at, st); counters checked monotonic
// by the caller, except the optional ones, which count 0 when they go back.
func signalOf(prev *sample, at time.Time, st cgroup.Stats) signal {
	elapsed := at.Sub(prev.at)
	p := prev.stats
	s := signal{valid: true, start: prev.at, elapsed: elapsed, memory: st.MemoryUsage,
		milliCPU: int64(st.CPUUsage-p.CPUUsage) * 1000 / int64(elapsed)}
	if periods := st.Periods - p.Periods; st.Periods > p.Periods {
		s.throttledShare = float64(st.ThrottledPeriods-p.ThrottledPeriods) / float64(periods)
	}
	if st.ThrottledTime > p.ThrottledTime {
		s.throttledTime = st.ThrottledTime - p.ThrottledTime
	}
	if st.OOMKills > p.OOMKills {
		s.oomKills = st.OOMKills - p.OOMKills
	}
	if st.Pressure.Available && p.Pressure.Available {
		s.hasPressure = true
		if st.Pressure.CPU > p.Pressure.CPU {
			s.cpuStall = float64(st.Pressure.CPU-p.Pressure.CPU) / float64(elapsed)
		}
		if st.Pressure.Memory > p.Pressure.Memory {
			s.memoryStall = float64(st.Pressure.Memory-p.Pressure.Memory) / float64(elapsed)
		}
	}
	return s
}

// Decision is one change to make.
type Decision struct {
	Resource  string
	Direction string
	From, To  int64
	Reason    string
	// Soft: the change is to memory.high only (cgroup v2): a squeeze
	// (Down) or its release (Up, To Unlimited); memory.max stays.
	Soft bool
	// Path is the rule that made it: PathFast, PathWindowed, PathSqueeze
	// or PathOOMKill.
	Path string
}

// The paths a decision comes from.
const (
	PathFast     = "fast"
	PathWindowed = "windowed"
	PathSqueeze  = "squeeze"
	PathOOMKill  = "oom-kill"
)

// Reasons a decision gives that callers act on.
const (
	// ReasonOOMKill: the kernel OOM-killed a process of the container.
	ReasonOOMKill = "oom kill"
	// ReasonSqueezeHeld: memory.high held for a window without pressure;
	// memory.max comes down to it (and memory.high is lifted).
	ReasonSqueezeHeld = "squeeze held"
)

func (d Decision) String() string {
	to := strconv.FormatInt(d.To, 10)
	if d.To == cgroup.Unlimited {
		to = "max"
	}
	soft := ""
	if d.Soft {
		soft = " memory.high"
	}
	return fmt.Sprintf("%s%s %s %d -> %s (%s)", d.Resource, soft, d.Direction, d.From, to, d.Reason)
}

// Room is what the node can still give on top of current limits.
type Room struct {
	MilliCPU, Memory int64
}

// Input is what Decide needs besides the samples.
type Input struct {
	// Limits are the current ones (cgroup.Unlimited resources are left
	// alone).
	Limits cgroup.Limits
	Bounds Bounds
	Room   Room
	// SoftMemory: the actuator can set memory.high (cgroup v2 written
	// directly), so memory comes down by a squeeze first.
	SoftMemory bool
}

// Decide returns the changes the latest sample and the last K windows call
// for. The caller applies them and reports each applied one with Changed.
func (t *Tracker) Decide(now time.Time, in Input) []Decision {
	if t.last == nil {
		return nil
	}
	limited := t.rateLimited(now)
	var out []Decision
	if cpu := in.Limits.MilliCPU(); cpu != cgroup.Unlimited {
		if d, ok := t.fastCPU(cpu, in); ok && !limited {
			out = append(out, d)
		} else if d, ok := t.slowCPU(now, cpu, in); ok && !limited {
			out = append(out, d)
		}
	}
	if mem := in.Limits.MemoryMax; mem != cgroup.Unlimited {
		if d, ok := t.decideMemory(now, mem, in, limited); ok {
			out = append(out, d)
		}
	}
	return out
}

// demandMilliCPU estimates what the container would use unthrottled: it
// used milliCPU while it could run, which was elapsed minus the time the
// cgroup was throttled. Without the throttled time (or when throttled
// nearly throughout) it is unknown, and -1 says so.
func (s signal) demandMilliCPU() int64 {
	if s.throttledTime <= 0 || s.throttledTime*20 >= s.elapsed*19 {
		return -1
	}
	return int64(float64(s.milliCPU) * float64(s.elapsed) / float64(s.elapsed-s.throttledTime))
}

// fastCPU raises a container throttled (or stalled at its limit) in the
// latest sample, once a whole sample was taken under the current limit.
func (t *Tracker) fastCPU(cpu int64, in Input) (Decision, bool) {
	p, s := t.policy, t.sig
	if !s.valid || t.lastChange[CPU].After(s.start) {
		return Decision{}, false
	}
	throttled := p.FastThrottle > 0 && s.throttledShare >= p.FastThrottle
	stalled := p.FastPressure > 0 && s.cpuStall >= p.FastPressure && float64(s.milliCPU) >= p.Upper*float64(cpu)
	if !throttled && !stalled {
		return Decision{}, false
	}
	target := int64(float64(cpu) * (1 + p.FastMaxStep))
	reason := "throttled"
	if !throttled {
		reason = "cpu pressure"
		target = int64(float64(s.milliCPU) * (1 + s.cpuStall))
	} else if demand := s.demandMilliCPU(); demand >= 0 {
		target = demand
	}
	target = max(int64(float64(target)*(1+p.Margin)), int64(float64(cpu)*(1+p.Margin)))
	return clamp(change{path: PathFast, resource: CPU, from: cpu, target: target, up: true, step: p.FastMaxStep, why: reason}, fence{maximum: in.Bounds.MaxMilliCPU, room: in.Room.MilliCPU})
}

// slowCPU is the windowed path for CPU.
func (t *Tracker) slowCPU(now time.Time, cpu int64, in Input) (Decision, bool) {
	p := t.policy
	if len(t.windows) < p.Windows || !t.cooledDown(CPU, now) {
		return Decision{}, false
	}
	high, allAbove, allBelow := int64(0), true, true
	for _, w := range t.windows {
		high = max(high, w.milliCPU)
		above := w.throttled || float64(w.milliCPU) >= p.Upper*float64(cpu)
		allAbove = allAbove && above
		allBelow = allBelow && !w.throttled && float64(w.milliCPU) <= p.Lower*float64(cpu)
	}
	target := int64(float64(high) * (1 + p.Margin))
	return clamp(change{path: PathWindowed, resource: CPU, from: cpu, target: target, up: allAbove, down: allBelow, step: p.MaxStep},
		fence{minimum: max(p.MinMilliCPU, in.Bounds.MinMilliCPU), maximum: in.Bounds.MaxMilliCPU, room: in.Room.MilliCPU})
}

// decideMemory decides for memory: an OOM kill first (whatever the rate limit),
// then a squeeze in progress, then the fast path up, then the windows.
func (t *Tracker) decideMemory(now time.Time, mem int64, in Input, limited bool) (Decision, bool) {
	p, s := t.policy, t.sig
	hardFloor := t.last.stats.MemoryUsage + p.MemoryHeadroom
	memFence := fence{maximum: in.Bounds.MaxMemory, room: in.Room.Memory, hardFloor: hardFloor}
	if s.valid && s.oomKills > 0 {
		t.squeeze = nil
		target := max(int64(float64(mem)*(1+p.MaxStep)), int64(float64(s.memory)*(1+p.Margin)))
		return clamp(change{path: PathOOMKill, resource: Memory, from: mem, target: target, up: true, step: p.FastMaxStep, why: ReasonOOMKill}, memFence)
	}
	if in.SoftMemory && t.squeeze == nil && in.Limits.MemoryHigh != cgroup.Unlimited && in.Limits.MemoryHigh < mem {
		// A squeeze left by an earlier run of the agent: carry it on.
		t.squeeze = &squeeze{to: in.Limits.MemoryHigh, since: now}
	}
	if sq := t.squeeze; sq != nil {
		if !in.SoftMemory {
			t.squeeze = nil
		} else if s.valid && ((p.FastPressure > 0 && s.memoryStall >= p.FastPressure) || (p.FastMemory > 0 && float64(s.memory) >= p.FastMemory*float64(sq.to))) {
			return Decision{Resource: Memory, Direction: Up, From: sq.to, To: cgroup.Unlimited, Reason: "squeeze released: memory pressure", Soft: true, Path: PathSqueeze}, true
		} else if now.Sub(sq.since) >= p.Window {
			return Decision{Resource: Memory, Direction: Down, From: mem, To: max(sq.to, hardFloor), Reason: ReasonSqueezeHeld, Path: PathSqueeze}, true
		} else {
			return Decision{}, false
		}
	}
	if limited {
		return Decision{}, false
	}
	if s.valid && !t.lastChange[Memory].After(s.start) && p.FastMemory > 0 && float64(s.memory) >= p.FastMemory*float64(mem) &&
		(!s.hasPressure || s.memoryStall > 0) {
		target := max(int64(float64(s.memory)*(1+p.Margin)), int64(float64(mem)*(1+p.Margin)))
		return clamp(change{path: PathFast, resource: Memory, from: mem, target: target, up: true, step: p.FastMaxStep, why: "near the limit"}, memFence)
	}
	if s.valid && !t.lastChange[Memory].After(s.start) && p.FastPressure > 0 && s.memoryStall >= p.FastPressure {
		return clamp(change{path: PathFast, resource: Memory, from: mem, target: int64(float64(mem) * (1 + p.Margin)), up: true, step: p.FastMaxStep, why: "memory pressure"}, memFence)
	}
	if len(t.windows) < p.Windows || !t.cooledDown(Memory, now) {
		return Decision{}, false
	}
	high, allAbove, allBelow := int64(0), true, true
	for _, w := range t.windows {
		high = max(high, w.memory)
		allAbove = allAbove && float64(w.memory) >= p.Upper*float64(mem)
		allBelow = allBelow && !w.memoryPressure && float64(w.memory) <= p.Lower*float64(mem)
	}
	target := int64(float64(high) * (1 + p.Margin))
	memFence.minimum = max(p.MinMemory, in.Bounds.MinMemory)
	d, ok := clamp(change{path: PathWindowed, resource: Memory, from: mem, target: target, up: allAbove, down: allBelow, step: p.MaxStep}, memFence)
	if ok && d.Direction == Down && in.SoftMemory {
		d.Soft, d.Reason, d.Path = true, "squeeze: "+d.Reason, PathSqueeze
	}
	return d, ok
}

// change is a limit a rule asks for: from the current limit to target,
// up or down (neither: no change), by at most step (a fraction of from);
// why names the rule when it is not "usage plus margin".
type change struct {
	path, resource, why string
	from, target        int64
	up, down            bool
	step                float64
}

// fence is what a change must stay within: the container's minimum and
// maximum (0: none), what the node can still give, and a floor no change
// goes below (memory usage plus headroom).
type fence struct {
	minimum, maximum, room, hardFloor int64
}

// clamp turns a change into a decision within its fence, or none.
func clamp(c change, f fence) (Decision, bool) {
	if !c.up && !c.down {
		return Decision{}, false
	}
	from := c.from
	to, reason := c.target, "usage plus margin"
	if c.why != "" {
		reason = c.why
	}
	if c.up {
		to = max(to, from+1)
		if limit := from + int64(float64(from)*c.step); to > limit {
			to, reason = limit, reason+", max step"
		}
		if to > from+max(f.room, 0) {
			to, reason = from+max(f.room, 0), reason+", node room"
		}
		if f.maximum > 0 && to > f.maximum {
			to, reason = f.maximum, reason+", container maximum"
		}
	} else {
		// Symmetric with going up: a step of 1 allows a doubling or a halving.
		if floor := int64(float64(from) / (1 + c.step)); to < floor {
			to, reason = floor, reason+", max step"
		}
		if to < f.minimum {
			to, reason = f.minimum, reason+", container minimum"
		}
	}
	if to < f.hardFloor {
		to, reason = f.hardFloor, reason+", usage plus headroom"
	}
	// Changes under 5% are not worth a resize (and would chase noise).
	if (c.up && to <= from) || (c.down && to >= from) || abs(to-from)*20 < from {
		return Decision{}, false
	}
	dir := Up
	if c.down {
		dir = Down
	}
	return Decision{Resource: c.resource, Direction: dir, From: from, To: to, Reason: reason, Path: c.path}, true
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
// windows start over (they measured the container under the old limit). A
// squeeze starts, or ends when released or held.
func (t *Tracker) Changed(d Decision, now time.Time) {
	t.lastChange[d.Resource] = now
	t.changeTimes = append(t.changeTimes, now)
	t.windows = nil
	if d.Resource == Memory {
		t.squeeze = nil
		if d.Soft && d.Direction == Down {
			t.squeeze = &squeeze{to: d.To, since: now}
		}
	}
}

// PolicyFromConfig applies configuration keys (as the configurator sends
// them) over base: window, windows, upper, lower, margin, maxStep,
// cooldown, memoryHeadroom, maxChangesPerMinute, fastThrottle, fastPressure,
// fastMemory, fastMaxStep. Unknown keys and bad
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
		case "fastThrottle":
			p.FastThrottle, err = strconv.ParseFloat(v, 64)
		case "fastPressure":
			p.FastPressure, err = strconv.ParseFloat(v, 64)
		case "fastMemory":
			p.FastMemory, err = strconv.ParseFloat(v, 64)
		case "fastMaxStep":
			p.FastMaxStep, err = strconv.ParseFloat(v, 64)
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
