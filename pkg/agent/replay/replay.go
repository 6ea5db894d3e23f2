// Package replay evaluates scaling policies on synthetic usage traces with
// a simulated clock: each second a modelled container wants some CPU and
// memory, gets what its limits allow (throttled above the CPU limit,
// OOM-killed above the memory limit), and a policy sees the cgroup
// counters that result and changes the limits. The guardian policies run
// their real code (pkg/agent/guardian); Serverless Containers' published
// defaults run as a small model of its Guardian (see Anchor).
package replay

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
)

const (
	mi = int64(1) << 20
	gi = int64(1) << 30
)

// Trace is one synthetic workload: what the container wants each second.
type Trace struct {
	Name     string
	Seconds  int
	MilliCPU func(second int) int64
	Memory   func(second int) int64
}

// Traces are the five workloads of the evaluation (documented in the
// docs/agent.md): a CPU burst, a diurnal load, a step change, a memory leak and a
// memory spike.
func Traces() []Trace {
	flat := func(v int64) func(int) int64 { return func(int) int64 { return v } }
	return []Trace{
		{Name: "cpu-burst", Seconds: 600, Memory: flat(300 * mi), MilliCPU: func(s int) int64 {
			if s >= 120 && s < 180 {
				return 1800 // one minute at 1.8 cores, else 200m
			}
			return 200
		}},
		{Name: "diurnal", Seconds: 1800, MilliCPU: func(s int) int64 {
			return 850 + int64(650*math.Sin(2*math.Pi*float64(s)/900)) // 200m..1500m, period 15 min
		}, Memory: func(s int) int64 {
			return 500*mi + int64(200*float64(mi)*math.Sin(2*math.Pi*float64(s)/900))
		}},
		{Name: "step", Seconds: 600, Memory: flat(400 * mi), MilliCPU: func(s int) int64 {
			if s >= 200 {
				return 1200 // 300m, then 1.2 cores for good
			}
			return 300
		}},
		{Name: "memory-leak", Seconds: 900, MilliCPU: flat(200), Memory: func(s int) int64 {
			return 200*mi + int64(s)*mi*10/9 // +1Gi over 15 minutes
		}},
		{Name: "memory-spike", Seconds: 600, MilliCPU: flat(200), Memory: func(s int) int64 {
			// 300Mi; at 300s it allocates 60Mi a second up to 900Mi, holds
			// 30s and frees it. (A jump past the limit within one sample
			// is OOM-killed under any policy that reacts to usage.)
			switch {
			case s >= 300 && s < 310:
				return 300*mi + int64(s-299)*60*mi
			case s >= 310 && s < 340:
				return 900 * mi
			}
			return 300 * mi
		}},
	}
}

// Controller changes a container's limits from its cgroup counters.
type Controller interface {
	// Step sees the counters at now and returns the new limits.
	Step(now time.Time, st cgroup.Stats, limits cgroup.Limits, room guardian.Room) cgroup.Limits
}

// Guardian drives a guardian.Tracker (the agent's own policy code).
type Guardian struct {
	tracker *guardian.Tracker
}

// NewGuardian runs policy p.
func NewGuardian(p guardian.Policy) *Guardian { return &Guardian{tracker: guardian.NewTracker(p)} }

// Step observes and applies every decision, as the agent does.
func (g *Guardian) Step(now time.Time, st cgroup.Stats, l cgroup.Limits, room guardian.Room) cgroup.Limits {
	g.tracker.Observe(now, st)
	for _, d := range g.tracker.Decide(now, guardian.Input{Limits: l, Room: room}) {
		if d.Resource == guardian.CPU {
			l.CPUQuota = d.To * l.CPUPeriod / 1000
		} else {
			l.MemoryMax = d.To
		}
		g.tracker.Changed(d, now)
	}
	return l
}

// Result is what one policy did on one trace.
type Result struct {
	Trace, Policy string
	// ThrottledCoreSeconds: CPU wanted above the limit.
	ThrottledCoreSeconds float64
	// OverCoreSeconds and OverGiBSeconds: limit minus usage.
	OverCoreSeconds, OverGiBSeconds float64
	OOMKills, Changes               int
	// ReactionP50 and ReactionP99: from the first second a container wants
	// more than its limit to the limit rising (or the need passing).
	ReactionP50, ReactionP99 time.Duration
}

// Run replays trace t through c, at 1s sampling, on a node with 8 cores
// and 16Gi, from limits of 500m and 512Mi.
func Run(t Trace, policy string, c Controller) Result {
	const capacityMilli, capacityMemory = 8000, 16 * gi
	start := time.Unix(1_800_000_000, 0)
	l := cgroup.Limits{CPUQuota: 50000, CPUPeriod: 100000, MemoryMax: 512 * mi, MemoryHigh: cgroup.Unlimited}
	var st cgroup.Stats
	r := Result{Trace: t.Name, Policy: policy}
	var reactions []time.Duration
	short := -1 // the second a shortage began, -1 when none
	for s := 0; s < t.Seconds; s++ {
		cpu, mem := t.MilliCPU(s), t.Memory(s)
		limitCPU := l.MilliCPU()
		used := min(cpu, limitCPU)
		st.CPUUsage += time.Duration(used) * time.Millisecond
		st.Periods += 10
		if cpu > limitCPU {
			st.ThrottledPeriods += 10
			st.ThrottledTime += time.Second - time.Second*time.Duration(limitCPU)/time.Duration(cpu)
			r.ThrottledCoreSeconds += float64(cpu-limitCPU) / 1000
		}
		r.OverCoreSeconds += float64(limitCPU-used) / 1000
		st.MemoryUsage = mem
		if mem > l.MemoryMax {
			st.OOMKills++
			r.OOMKills++
			st.MemoryUsage = l.MemoryMax // killed at the limit
		}
		r.OverGiBSeconds += float64(max(0, l.MemoryMax-st.MemoryUsage)) / float64(gi)
		if short < 0 && (cpu > limitCPU || mem > l.MemoryMax) {
			short = s
		}
		before := l
		l = c.Step(start.Add(time.Duration(s)*time.Second), st, l, guardian.Room{MilliCPU: capacityMilli - l.MilliCPU(), Memory: capacityMemory - l.MemoryMax})
		if l.CPUQuota != before.CPUQuota {
			r.Changes++
		}
		if l.MemoryMax != before.MemoryMax {
			r.Changes++
		}
		raised := l.MilliCPU() > before.MilliCPU() || l.MemoryMax > before.MemoryMax
		if short >= 0 && (raised || (cpu <= limitCPU && mem <= before.MemoryMax)) {
			reactions = append(reactions, time.Duration(s-short+1)*time.Second)
			short = -1
		}
	}
	if len(reactions) > 0 {
		sort.Slice(reactions, func(i, j int) bool { return reactions[i] < reactions[j] })
		r.ReactionP50 = reactions[len(reactions)/2]
		r.ReactionP99 = reactions[(len(reactions)*99)/100]
	}
	return r
}

// Policies are the three compared: Serverless Containers' defaults, the
// windowed guardian of Switchyard 0.1, and today's default.
func Policies() []struct {
	Name string
	New  func() Controller
} {
	return []struct {
		Name string
		New  func() Controller
	}{
		{"serverless-containers", func() Controller { return NewAnchor() }},
		{"windowed (0.1)", func() Controller { return NewGuardian(guardian.WindowedPolicy()) }},
		{"default", func() Controller { return NewGuardian(guardian.DefaultPolicy()) }},
	}
}

// Table runs every policy on every trace.
func Table() []Result {
	var out []Result
	for _, t := range Traces() {
		for _, p := range Policies() {
			out = append(out, Run(t, p.Name, p.New()))
		}
	}
	return out
}

// Format prints results as a Markdown table.
func Format(results []Result) string {
	var b strings.Builder
	b.WriteString("| trace | policy | throttled core·s | over-provisioned core·s | over-provisioned GiB·s | OOM kills | changes | reaction p50 / p99 |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		reaction := "no shortage"
		if r.ReactionP99 > 0 {
			reaction = fmt.Sprintf("%s / %s", r.ReactionP50, r.ReactionP99)
		}
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | %.1f | %d | %d | %s |\n", r.Trace, r.Policy, r.ThrottledCoreSeconds,
			r.OverCoreSeconds, r.OverGiBSeconds, r.OOMKills, r.Changes, reaction)
	}
	return b.String()
}
