// Package agent is the Switchyard node agent: every sample interval it reads
// the real cgroup usage of the containers it manages, feeds the guardian
// (pkg/agent/guardian), and applies its decisions through an actuator: the
// pods/resize subresource (in-place resize, so the kubelet and the
// scheduler stay consistent), or the cgroup files directly (standalone
// hosts). Targets come from a Source: the opted-in pods of this node, or
// every cgroup below a directory (standalone mode, no Kubernetes).
package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
)

// Target is one container the agent manages.
type Target struct {
	// Key names it in logs and metrics: namespace/pod/container, or the
	// cgroup path in standalone mode.
	Key string
	// Path is its cgroup, relative to the hierarchy.
	Path string
	// Bounds are its own minimum and maximum, e.g. from pod annotations.
	Bounds guardian.Bounds
	// Limits, when set, are the limits the actuator controls (the pod
	// spec's, for resize); otherwise the cgroup's are read.
	Limits *cgroup.Limits
	// Object is what the actuator acts on (the pod, for resize).
	Object any
	// Container is the container name within Object.
	Container string
	// Queue is the Queue the pod was routed to (switchyard.io/routed-queue);
	// empty when none.
	Queue string
	// RequestsFollowLimits: a raise of the limit raises the requests too
	// (a Guaranteed pod), so it counts against the queue's quota.
	RequestsFollowLimits bool
	// MilliCPURequest and MemoryRequest are the container's requests as
	// asked (spec): what it counts against its queue's quota.
	MilliCPURequest, MemoryRequest int64
	// Unfinished, when set, says why an earlier change is not applied yet
	// (a resize the kubelet deferred, found infeasible, or is carrying
	// out): the agent samples the container but decides nothing for it, so
	// that it never stacks a change on an unfinished one.
	Unfinished *Unfinished
}

// Unfinished is a change the node has not applied yet.
type Unfinished struct {
	// Reason is Deferred, Infeasible or InProgress (of the pod's
	// PodResizePending / PodResizeInProgress conditions), or NotApplied
	// when the spec and the applied resources differ without a condition.
	Reason string
	// Message is the kubelet's, when it gave one.
	Message string
	// Asked are the limits the spec asks for (Target.Limits are the
	// applied ones).
	Asked cgroup.Limits
}

// Capacity is what the node can give in total, to keep the sum of managed
// limits within it.
type Capacity struct {
	MilliCPU, Memory int64
}

// Source lists the targets and the node's capacity.
type Source interface {
	Targets(ctx context.Context) ([]Target, Capacity, error)
}

// Actuator applies one decision to one target.
type Actuator interface {
	Apply(ctx context.Context, t Target, d guardian.Decision) error
	// SoftMemory reports whether it can set memory.high (squeeze memory
	// before lowering its limit): only when it writes cgroup v2 itself.
	SoftMemory() bool
}

// EventFunc records what a user of the container should see (an Event on
// the pod in Kubernetes mode, a log line standalone).
type EventFunc func(t Target, eventType, reason, message string)

// Options tune the agent.
type Options struct {
	// SampleInterval between cgroup reads; 1s when zero.
	SampleInterval time.Duration
	Policy         guardian.Policy
	// DryRun logs and counts decisions without acting.
	DryRun bool
	// Report records exceptional decisions (an OOM kill); nil: logged only.
	Report EventFunc
	// Quota, when set, says what a queue's quota has left; raises that
	// grow a pod's requests stay inside it.
	Quota QuotaSource
}

// QuotaSource tells a queue's quota and what it uses.
type QuotaSource interface {
	// Quota is the queue's quota of resource (guardian.CPU in millicores,
	// guardian.Memory in bytes) and what its pods use of it, as of version
	// (the Queue's resourceVersion); ok is false when the queue has no
	// quota for it.
	Quota(queue, resource string) (quota, used int64, version string, ok bool)
}

// Agent runs the loop.
type Agent struct {
	fs       cgroup.FS
	source   Source
	actuator Actuator
	opts     Options
	metrics  *Metrics

	mu       sync.Mutex
	policy   guardian.Policy
	trackers map[string]*guardian.Tracker
	// unfinished is the reason last reported for each container whose
	// resize is not done, so that each is reported once.
	unfinished map[string]string
	// granted is what this agent raised requests by in each queue and
	// resource since the Queue version it last saw: the coordinator's
	// status does not show it yet.
	granted map[quotaKey]grant
	// refused is the Queue version at which a container's raise was last
	// reported refused, so that each refusal is reported once.
	refused map[string]string
}

type quotaKey struct{ queue, resource string }

type grant struct {
	version string
	amount  int64
}

// New builds an agent; metrics may be registered anywhere.
func New(fs cgroup.FS, source Source, actuator Actuator, metrics *Metrics, opts Options) (*Agent, error) {
	if opts.SampleInterval <= 0 {
		opts.SampleInterval = time.Second
	}
	if err := opts.Policy.Validate(); err != nil {
		return nil, err
	}
	return &Agent{fs: fs, source: source, actuator: actuator, opts: opts, metrics: metrics, policy: opts.Policy, trackers: map[string]*guardian.Tracker{}, unfinished: map[string]string{},
		granted: map[quotaKey]grant{}, refused: map[string]string{}}, nil
}

// SetPolicy changes the policy of every container at once (from the
// configurator); an invalid one is refused and the old one kept.
func (a *Agent) SetPolicy(p guardian.Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.policy = p
	for _, t := range a.trackers {
		t.SetPolicy(p)
	}
	return nil
}

// Policy is the policy in force.
func (a *Agent) Policy() guardian.Policy {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.policy
}

// Run samples until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	ticker := time.NewTicker(a.opts.SampleInterval)
	defer ticker.Stop()
	for {
		a.Step(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// Step takes one sample of every target and acts on closed windows.
func (a *Agent) Step(ctx context.Context, now time.Time) {
	logger := klog.FromContext(ctx)
	targets, capacity, err := a.source.Targets(ctx)
	if err != nil {
		a.metrics.Errors.WithLabelValues("source").Inc()
		logger.Error(err, "Listing containers to manage")
		return
	}
	type reading struct {
		target Target
		stats  cgroup.Stats
		limits cgroup.Limits
	}
	var readings []reading
	var used Capacity
	live := map[string]bool{}
	for _, t := range targets {
		st, err := a.fs.ReadStats(t.Path)
		if err != nil {
			// A vanished cgroup (the container stopped) is forgotten; a
			// malformed file is counted and skipped, never fatal.
			reason := "read"
			if errors.Is(err, cgroup.ErrNotFound) {
				reason = "vanished"
			}
			a.metrics.Errors.WithLabelValues(reason).Inc()
			logger.V(2).Info("Skipping container", "container", t.Key, "reason", reason, "err", err)
			continue
		}
		var lim cgroup.Limits
		if t.Limits != nil {
			lim = *t.Limits
		} else if lim, err = a.fs.ReadLimits(t.Path); err != nil {
			a.metrics.Errors.WithLabelValues("read").Inc()
			logger.V(2).Info("Skipping container", "container", t.Key, "err", err)
			continue
		}
		live[t.Key] = true
		readings = append(readings, reading{t, st, lim})
		if m := lim.MilliCPU(); m != cgroup.Unlimited {
			used.MilliCPU += m
		}
		if lim.MemoryMax != cgroup.Unlimited {
			used.Memory += lim.MemoryMax
		}
	}
	room := guardian.Room{MilliCPU: capacity.MilliCPU - used.MilliCPU, Memory: capacity.Memory - used.Memory}
	a.mu.Lock()
	for key := range a.trackers {
		if !live[key] {
			delete(a.trackers, key)
			delete(a.unfinished, key)
			a.metrics.forget(key)
		}
	}
	policy := a.policy
	a.mu.Unlock()
	soft := a.actuator.SoftMemory() && !a.opts.DryRun
	local := map[quotaKey]int64{} // requests of this node's containers, per queue
	for _, r := range readings {
		if q := r.target.Queue; q != "" {
			local[quotaKey{q, guardian.CPU}] += r.target.MilliCPURequest
			local[quotaKey{q, guardian.Memory}] += r.target.MemoryRequest
		}
	}
	for _, r := range readings {
		a.mu.Lock()
		tr, ok := a.trackers[r.target.Key]
		if !ok {
			tr = guardian.NewTracker(policy)
			a.trackers[r.target.Key] = tr
		}
		a.mu.Unlock()
		a.metrics.observe(r.target.Key, now, r.stats, r.limits)
		tr.Observe(now, r.stats)
		if u := r.target.Unfinished; u != nil {
			a.metrics.Unfinished.WithLabelValues(u.Reason).Inc()
			logger.V(3).Info("Waiting for an unfinished resize", "container", r.target.Key, "reason", u.Reason, "message", u.Message)
			if a.reportUnfinished(ctx, r.target, u) && u.Reason == corev1.PodReasonInfeasible && !a.opts.DryRun {
				a.setBack(ctx, r.target, u)
			}
			continue
		}
		a.mu.Lock()
		delete(a.unfinished, r.target.Key)
		a.mu.Unlock()
		for _, d := range tr.Decide(now, guardian.Input{Limits: r.limits, Bounds: r.target.Bounds, Room: room, SoftMemory: soft}) {
			if d.Path == guardian.PathOOMKill {
				a.metrics.OOMKills.Inc()
				name := r.target.Container
				if name == "" {
					name = r.target.Key
				}
				a.report(ctx, r.target, corev1.EventTypeWarning, "OOMKilled",
					fmt.Sprintf("the kernel OOM-killed a process of container %s at a memory limit of %s; raising it at once to %s",
						name, bytes(d.From), bytes(d.To)))
			}
			d, allowed := a.withinQuota(ctx, r.target, d, local)
			if !allowed {
				continue
			}
			mode := "applied"
			if a.opts.DryRun {
				mode = "dry-run"
			} else if err := a.actuator.Apply(ctx, r.target, d); err != nil {
				a.metrics.ActuationErrors.WithLabelValues(d.Resource).Inc()
				logger.Error(err, "Applying a decision", "container", r.target.Key, "decision", d.String())
				continue
			}
			tr.Changed(d, now)
			a.metrics.Decisions.WithLabelValues(d.Resource, d.Direction, mode, d.Path).Inc()
			logger.Info("Scaled container", "container", r.target.Key, "decision", d.String(), "mode", mode)
			if d.Soft {
				continue // memory.high: the limit the node gives is unchanged
			}
			if d.Resource == guardian.CPU {
				room.MilliCPU -= d.To - d.From
			} else {
				room.Memory -= d.To - d.From
			}
		}
	}
}

// report records an exceptional decision for the container's users.
func (a *Agent) report(ctx context.Context, t Target, eventType, reason, message string) {
	klog.FromContext(ctx).Info("Reporting", "container", t.Key, "reason", reason, "message", message)
	if a.opts.Report != nil {
		a.opts.Report(t, eventType, reason, message)
	}
}

// withinQuota keeps a raise that grows a pod's requests inside its queue's
// remaining quota: cut to what is left, or refused (reported once per
// Queue version, counted) when that is under 5% of the limit. local holds
// the requests of this node's containers per queue and resource.
func (a *Agent) withinQuota(ctx context.Context, t Target, d guardian.Decision, local map[quotaKey]int64) (guardian.Decision, bool) {
	if a.opts.Quota == nil || t.Queue == "" || !t.RequestsFollowLimits || d.Direction != guardian.Up || d.Soft {
		return d, true
	}
	quota, used, version, ok := a.opts.Quota.Quota(t.Queue, d.Resource)
	if !ok {
		return d, true
	}
	key := quotaKey{t.Queue, d.Resource}
	a.mu.Lock()
	g := a.granted[key]
	if g.version != version {
		g = grant{version: version} // the status now counts earlier grants
	}
	// The status may lag behind: it uses at least what this node's pods
	// of the queue ask, and what this agent granted since it was written.
	left := quota - max(used+g.amount, local[key])
	refuse := d.To-d.From > left && left*20 < d.From
	firstRefusal := refuse && a.refused[t.Key] != version
	if refuse {
		a.refused[t.Key] = version
	} else {
		if d.To-d.From > left {
			d.To, d.Reason = d.From+left, d.Reason+", queue quota"
		}
		g.amount += d.To - d.From
		a.granted[key] = g
		local[key] += d.To - d.From
	}
	a.mu.Unlock()
	if !refuse {
		return d, true
	}
	a.metrics.QuotaRefusals.WithLabelValues(t.Queue, d.Resource).Inc()
	if firstRefusal {
		a.report(ctx, t, corev1.EventTypeWarning, "QueueQuotaExceeded", fmt.Sprintf(
			"not raising %s of container %s from %s to %s: queue %s has %s of its quota left", d.Resource, t.Container,
			amount(d.Resource, d.From), amount(d.Resource, d.To), t.Queue, amount(d.Resource, max(left, 0))))
	}
	return d, false
}

func amount(res string, v int64) string {
	if res == guardian.CPU {
		return resource.NewMilliQuantity(v, resource.DecimalSI).String()
	}
	return bytes(v)
}

// setBack asks for the applied limits again after an infeasible resize,
// so that the pod is not left asking for what the node can never give;
// the next decisions start from the applied limits and the node's room.
func (a *Agent) setBack(ctx context.Context, t Target, u *Unfinished) {
	applied := *t.Limits
	for _, d := range []guardian.Decision{
		{Resource: guardian.CPU, From: u.Asked.MilliCPU(), To: applied.MilliCPU()},
		{Resource: guardian.Memory, From: u.Asked.MemoryMax, To: applied.MemoryMax},
	} {
		if d.From == d.To || d.To == cgroup.Unlimited {
			continue
		}
		d.Direction, d.Reason, d.Path = guardian.Down, "infeasible resize set back to the applied limits", guardian.PathWindowed
		if err := a.actuator.Apply(ctx, t, d); err != nil {
			a.metrics.ActuationErrors.WithLabelValues(d.Resource).Inc()
			klog.FromContext(ctx).Error(err, "Setting an infeasible resize back", "container", t.Key, "decision", d.String())
			continue
		}
		klog.FromContext(ctx).Info("Set an infeasible resize back", "container", t.Key, "decision", d.String())
	}
}

// reportUnfinished reports a deferred or infeasible resize once per reason
// (and says whether this was the first time): the kubelet retries a
// deferred one when room frees up, and the agent decides again only once
// it is applied.
func (a *Agent) reportUnfinished(ctx context.Context, t Target, u *Unfinished) (first bool) {
	a.mu.Lock()
	seen := a.unfinished[t.Key] == u.Reason
	a.unfinished[t.Key] = u.Reason
	a.mu.Unlock()
	if seen {
		return false
	}
	switch u.Reason {
	case corev1.PodReasonDeferred:
		a.report(ctx, t, corev1.EventTypeNormal, "ResizeDeferred", fmt.Sprintf(
			"the kubelet deferred the resize of container %s (%s); it retries when the node has room, and the agent changes nothing until then", t.Container, u.Message))
	case corev1.PodReasonInfeasible:
		a.report(ctx, t, corev1.EventTypeWarning, "ResizeInfeasible", fmt.Sprintf(
			"the kubelet cannot resize container %s (%s); it keeps its applied limits, and the agent asks for those again and decides anew from them", t.Container, u.Message))
	}
	return true
}

func bytes(v int64) string { return resource.NewQuantity(v, resource.BinarySI).String() }

// Metrics of the agent.
type Metrics struct {
	CPUUsage        *prometheus.GaugeVec
	CPULimit        *prometheus.GaugeVec
	MemoryUsage     *prometheus.GaugeVec
	MemoryLimit     *prometheus.GaugeVec
	Decisions       *prometheus.CounterVec
	ActuationErrors *prometheus.CounterVec
	Errors          *prometheus.CounterVec
	OOMKills        prometheus.Counter
	Unfinished      *prometheus.CounterVec
	QuotaRefusals   *prometheus.CounterVec

	mu      sync.Mutex
	lastCPU map[string]sampleAt
}

type sampleAt struct {
	at    time.Time
	usage time.Duration
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "switchyard_agent_" + name, Help: help}, []string{"container"})
	}
	m := &Metrics{
		CPUUsage:    gauge("cpu_usage_millicores", "CPU used since the previous sample, by container."),
		CPULimit:    gauge("cpu_limit_millicores", "CPU limit (-1: none), by container."),
		MemoryUsage: gauge("memory_usage_bytes", "Memory in use, by container."),
		MemoryLimit: gauge("memory_limit_bytes", "Memory limit (-1: none), by container."),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_agent_decisions_total", Help: "Scaling decisions, by resource, direction, mode (applied, dry-run) and path (fast, windowed, squeeze, oom-kill).",
		}, []string{"resource", "direction", "mode", "path"}),
		Unfinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_agent_unfinished_resize_samples_total", Help: "Samples in which a container waited for an earlier resize (no new decision), by reason (Deferred, Infeasible, InProgress, NotApplied).",
		}, []string{"reason"}),
		QuotaRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_agent_quota_refusals_total", Help: "Raises refused because they would grow a pod's requests past its queue's remaining quota, by queue and resource.",
		}, []string{"queue", "resource"}),
		OOMKills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_agent_oom_kills_total", Help: "OOM kills seen in managed containers; each raises the memory limit at once.",
		}),
		ActuationErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_agent_actuation_errors_total", Help: "Decisions the actuator could not apply, by resource.",
		}, []string{"resource"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_agent_errors_total", Help: "Containers skipped in a sample, by reason (vanished, read, source).",
		}, []string{"reason"}),
		lastCPU: map[string]sampleAt{},
	}
	// Error counters exist at zero from the start, so that alerts on rate()
	// see the first error.
	for _, r := range []string{guardian.CPU, guardian.Memory} {
		m.ActuationErrors.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.CPUUsage, m.CPULimit, m.MemoryUsage, m.MemoryLimit, m.Decisions, m.ActuationErrors, m.Errors, m.OOMKills, m.Unfinished, m.QuotaRefusals)
	}
	return m
}

// observe sets the gauges; CPU usage is over the time since the previous
// sample, by the same clock the guardian sees.
func (m *Metrics) observe(key string, now time.Time, st cgroup.Stats, lim cgroup.Limits) {
	m.mu.Lock()
	prev, ok := m.lastCPU[key]
	m.lastCPU[key] = sampleAt{now, st.CPUUsage}
	m.mu.Unlock()
	if ok && now.After(prev.at) && st.CPUUsage >= prev.usage {
		m.CPUUsage.WithLabelValues(key).Set(float64(st.CPUUsage-prev.usage) * 1000 / float64(now.Sub(prev.at)))
	}
	m.CPULimit.WithLabelValues(key).Set(float64(lim.MilliCPU()))
	m.MemoryUsage.WithLabelValues(key).Set(float64(st.MemoryUsage))
	m.MemoryLimit.WithLabelValues(key).Set(float64(lim.MemoryMax))
}

func (m *Metrics) forget(key string) {
	m.mu.Lock()
	delete(m.lastCPU, key)
	m.mu.Unlock()
	for _, g := range []*prometheus.GaugeVec{m.CPUUsage, m.CPULimit, m.MemoryUsage, m.MemoryLimit} {
		g.DeleteLabelValues(key)
	}
}
