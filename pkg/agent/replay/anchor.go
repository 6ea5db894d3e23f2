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

	cpu := l.MilliCPU()
	a.cpu.expire(now)
	if upper := cpu - anchorBoundCPU; cpuAvg > upper {
		a.cpu.up = append(a.cpu.up, now)
	} else if cpuAvg < upper-anchorBoundCPU {
		a.cpu.down = append(a.cpu.down, now)
	}
	switch {
	case len(a.cpu.up) >= 2:
		cpu += min(750, max(room.MilliCPU, 0))
		a.cpu = events{}
	case len(a.cpu.down) >= 6 && len(a.cpu.up) == 0:
		cpu = max(cpuAvg+anchorBoundCPU*3/2, 10)
		a.cpu = events{}
	}
	l.CPUQuota = cpu * l.CPUPeriod / 1000

	mem := l.MemoryMax
	a.mem.expire(now)
	if upper := mem - anchorBoundMemory; memAvg > upper {
		a.mem.up = append(a.mem.up, now)
	} else if memAvg < upper-anchorBoundMemory {
		a.mem.down = append(a.mem.down, now)
	}
	switch {
	case len(a.mem.up) >= 2:
		mem += min(256*1000*1000, max(room.Memory, 0))
		a.mem = events{}
	case len(a.mem.down) >= 8 && len(a.mem.up) == 0:
		mem = memAvg + anchorBoundMemory*3/2
		a.mem = events{}
	}
	l.MemoryMax = mem
	return l
}
