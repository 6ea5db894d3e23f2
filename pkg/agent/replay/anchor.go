package replay

import (
	"time"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
)

// Anchor models Serverless Containers' Guardian with its published
// defaults (../shared/DESIGN.md, "Node agent"): per resource a boundary B,
// upper = limit - B, lower = upper - B; usage averaged over 10s windows;
// a window above upper is an up event, below lower a down event; events
// expire after 40s; CPU goes up by 0.75 core after 2 up events and down
// after 6 down events with no up event, memory up by 256MB after 2 and
// down after 8; down fits the limit to usage + 1.5B; within the host's
// free capacity. B is not given there: the model takes 200m for CPU and
// 128Mi for memory.
type Anchor struct {
	windowStart    time.Time
	started        bool
	cpuUsedAtStart time.Duration
	memSum, n      int64
	cpu, mem       events
}

// NewAnchor starts a model.
func NewAnchor() *Anchor { return &Anchor{} }

// The model's constants.
const (
	anchorWindow      = 10 * time.Second
	anchorExpiry      = 40 * time.Second
	anchorBoundCPU    = 200
	anchorBoundMemory = 128 * mi
)

type events struct{ up, down []time.Time }

func (e *events) expire(now time.Time) {
	keep := func(ts []time.Time) []time.Time {
		out := ts[:0]
		for _, t := range ts {
			if now.Sub(t) < anchorExpiry {
				out = append(out, t)
			}
		}
		return out
	}
	e.up, e.down = keep(e.up), keep(e.down)
}

// rule is the anchor's rule for one resource: the boundary B, how many up
// (down) events scale up (down), the step up, what the host can still give
// and a floor for scaling down.
type rule struct {
	bound, upAfter, downAfter, stepUp, room, floor int64
}

// step records the event a window's average usage makes against limit
// and returns the new limit.
func (e *events) step(now time.Time, avg, limit int64, r rule) int64 {
	e.expire(now)
	if upper := limit - r.bound; avg > upper {
		e.up = append(e.up, now)
	} else if avg < upper-r.bound {
		e.down = append(e.down, now)
	}
	switch {
	case int64(len(e.up)) >= r.upAfter:
		limit += min(r.stepUp, max(r.room, 0))
		*e = events{}
	case int64(len(e.down)) >= r.downAfter && len(e.up) == 0:
		limit = max(avg+r.bound*3/2, r.floor)
		*e = events{}
	}
	return limit
}

// Step averages usage over 10s windows and acts on the events.
func (a *Anchor) Step(now time.Time, st cgroup.Stats, l cgroup.Limits, room guardian.Room) cgroup.Limits {
	if !a.started {
		a.started, a.windowStart, a.cpuUsedAtStart = true, now, st.CPUUsage
		return l
	}
	a.memSum += st.MemoryUsage
	a.n++
	if now.Sub(a.windowStart) < anchorWindow {
		return l
	}
	cpuAvg := int64(st.CPUUsage-a.cpuUsedAtStart) * 1000 / int64(now.Sub(a.windowStart))
	memAvg := a.memSum / a.n
	a.windowStart, a.cpuUsedAtStart, a.memSum, a.n = now, st.CPUUsage, 0, 0

	cpu := a.cpu.step(now, cpuAvg, l.MilliCPU(), rule{bound: anchorBoundCPU, upAfter: 2, downAfter: 6, stepUp: 750, room: room.MilliCPU, floor: 10})
	l.CPUQuota = cpu * l.CPUPeriod / 1000
	l.MemoryMax = a.mem.step(now, memAvg, l.MemoryMax, rule{bound: anchorBoundMemory, upAfter: 2, downAfter: 8, stepUp: 256 * 1000 * 1000, room: room.Memory})
	return l
}
