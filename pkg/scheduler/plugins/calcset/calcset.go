// Package calcset is the CalcSet scheduler plugin: all-or-nothing,
// co-located scheduling of calculation sets, groups of pods that work on
// the same data snapshot and are useful only together.
//
// A set is the pods of one namespace labelled switchyard.io/calcset=<name>
// with switchyard.io/calcset-size=<n>. PreEnqueue holds members until all n
// exist. PreFilter checks, against the cycle's snapshot (which includes the
// set's members already reserved), that every member not yet placed fits in
// one locality domain (a node, a zone, or the cluster) and narrows the
// nodes to that domain. Permit holds reserved members until the whole set is
// reserved, then releases all of them together; on the window's timeout, or
// when any member is unreserved, every waiting member is rejected, so a
// partial set never binds and never keeps capacity. A set that does not fit
// rejects its own waiting members and backs off briefly, so that of two sets
// competing for the same room one completes.
package calcset

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// Name is the plugin's name in the scheduler configuration.
const Name = "CalcSet"

// maxWarned bounds the pods remembered as already warned about bad labels.
const maxWarned = 10000

// CalcSet schedules calculation sets all or nothing, close together.
type CalcSet struct {
	handle fwk.Handle
	args   *config.CalcSetArgs
	pods   corelisters.PodLister

	mu sync.Mutex
	// misfit holds, per set, until when its members back off after the set
	// did not fit.
	misfit map[string]time.Time
	// firstReserved is when each waiting set reserved its first member.
	firstReserved map[string]time.Time
	// warned are pods that already got their InvalidCalcSet event.
	warned sets.Set[types.UID]
}

var (
	_ fwk.PreEnqueuePlugin  = &CalcSet{}
	_ fwk.PreFilterPlugin   = &CalcSet{}
	_ fwk.ReservePlugin     = &CalcSet{}
	_ fwk.PermitPlugin      = &CalcSet{}
	_ fwk.EnqueueExtensions = &CalcSet{}
	_ fwk.SignPlugin        = &CalcSet{}
)

// New builds the plugin for one profile from its args.
func New(_ context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := argsFrom(obj)
	if err != nil {
		return nil, err
	}
	registerMetrics()
	InitProfileMetrics(h.ProfileName())
	return &CalcSet{
		handle:        h,
		args:          args,
		pods:          h.SharedInformerFactory().Core().V1().Pods().Lister(),
		misfit:        map[string]time.Time{},
		firstReserved: map[string]time.Time{},
		warned:        sets.New[types.UID](),
	}, nil
}

// Name returns the plugin's name.
func (pl *CalcSet) Name() string { return Name }

// spec reads the pod's set, recording one Warning event per pod whose labels
// are invalid. Invalid members are held, never scheduled alone: a member
// scheduled as a normal pod would defeat the set.
func (pl *CalcSet) spec(pod *v1.Pod) (Spec, bool, *fwk.Status) {
	spec, member, err := parse(pod, pl.args)
	if !member {
		return spec, false, nil
	}
	if err != nil {
		pl.mu.Lock()
		first := !pl.warned.Has(pod.UID)
		if pl.warned.Len() >= maxWarned {
			pl.warned = sets.New[types.UID]() // forget old pods rather than grow without bound
		}
		pl.warned.Insert(pod.UID)
		pl.mu.Unlock()
		if first {
			pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeWarning, "InvalidCalcSet", "Scheduling", "Held: %v", err)
		}
		return spec, true, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "invalid calculation set labels: "+err.Error())
	}
	return spec, true, nil
}

// members lists the set's live members from the informer cache.
func (pl *CalcSet) members(spec Spec) ([]*v1.Pod, error) {
	pods, err := pl.pods.Pods(spec.Namespace).List(labels.SelectorFromSet(labels.Set{v1alpha1.CalcSetLabel: spec.Name}))
	if err != nil {
		return nil, err
	}
	live := pods[:0]
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			live = append(live, p)
		}
	}
	return live, nil
}

// PreEnqueue holds members until every member of their set exists, so that
// the set's pods enter the active queue together.
func (pl *CalcSet) PreEnqueue(_ context.Context, pod *v1.Pod) *fwk.Status {
	spec, member, status := pl.spec(pod)
	if !member || status != nil {
		return status
	}
	members, err := pl.members(spec)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if len(members) < spec.Size {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("calculation set %s has %d of %d members; waiting for the rest", spec.Name, len(members), spec.Size))
	}
	if len(members) > spec.Size {
		return fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("calculation set %s has %d members but its size label says %d", spec.Name, len(members), spec.Size))
	}
	return nil
}

// EventsToRegister lists what can make a held or rejected member
// schedulable, with hints that skip unrelated events.
func (pl *CalcSet) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		// A missing member arrives.
		{Event: fwk.ClusterEvent{Resource: fwk.UnscheduledPod, ActionType: fwk.Add}, QueueingHintFn: pl.isSameSet},
		// The pod's own set labels are fixed or changed.
		{Event: fwk.ClusterEvent{Resource: fwk.TargetPod, ActionType: fwk.UpdatePodLabel}, QueueingHintFn: pl.isOwnSetChanged},
		// Another member's labels are fixed or changed.
		{Event: fwk.ClusterEvent{Resource: fwk.UnscheduledPod, ActionType: fwk.UpdatePodLabel}, QueueingHintFn: pl.isSameSet},
		// A member that was bound elsewhere (pre-bound) completes the set.
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Add}, QueueingHintFn: pl.isSameSet},
		// An extra member goes away (the set had too many).
		{Event: fwk.ClusterEvent{Resource: fwk.UnscheduledPod, ActionType: fwk.Delete}, QueueingHintFn: pl.isSameSet},
		// Room appears for a set that did not fit.
		{Event: fwk.ClusterEvent{Resource: fwk.AssignedPod, ActionType: fwk.Delete}, QueueingHintFn: pl.isMember},
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAllocatable | fwk.UpdateNodeLabel}, QueueingHintFn: pl.isMember},
	}, nil
}

func (pl *CalcSet) isMember(_ klog.Logger, pod *v1.Pod, _, _ any) (fwk.QueueingHint, error) {
	if _, ok := pod.Labels[v1alpha1.CalcSetLabel]; ok {
		return fwk.Queue, nil
	}
	return fwk.QueueSkip, nil
}

func (pl *CalcSet) isOwnSetChanged(_ klog.Logger, _ *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldPod, okOld := oldObj.(*v1.Pod)
	newPod, okNew := newObj.(*v1.Pod)
	if !okOld || !okNew {
		return fwk.Queue, nil
	}
	for _, key := range []string{v1alpha1.CalcSetLabel, v1alpha1.CalcSetSizeLabel, v1alpha1.CalcSetLocalityLabel, v1alpha1.CalcSetWindowLabel} {
		if oldPod.Labels[key] != newPod.Labels[key] {
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

func (pl *CalcSet) isSameSet(_ klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	name, ok := pod.Labels[v1alpha1.CalcSetLabel]
	if !ok {
		return fwk.QueueSkip, nil
	}
	for _, obj := range []any{newObj, oldObj} {
		if other, isPod := obj.(*v1.Pod); isPod && other.Namespace == pod.Namespace && other.Labels[v1alpha1.CalcSetLabel] == name {
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

// SignPod refuses set members: whether a member fits depends on where the
// rest of its set is reserved, which changes with every member, so reusing
// another pod's result would be wrong. Other pods are signed with nothing.
func (pl *CalcSet) SignPod(_ context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	if _, ok := pod.Labels[v1alpha1.CalcSetLabel]; ok {
		return nil, fwk.NewStatus(fwk.Unschedulable, "calculation set members are placed one by one")
	}
	return nil, nil
}

// demand is what the set's unplaced members ask for together.
type demand struct {
	milliCPU, memory int64
	pods             int
}

func (d *demand) add(pod *v1.Pod) {
	req := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	d.milliCPU += req.Cpu().MilliValue()
	d.memory += req.Memory().Value()
	d.pods++
}

// room is what a node (or a sum of nodes) can still take.
type room struct {
	milliCPU, memory int64
	pods             int
}

func roomOf(n fwk.NodeInfo) room {
	alloc, used := n.GetAllocatable(), n.GetRequested()
	return room{
		milliCPU: alloc.GetMilliCPU() - used.GetMilliCPU(),
		memory:   alloc.GetMemory() - used.GetMemory(),
		pods:     alloc.GetAllowedPodNumber() - len(n.GetPods()),
	}
}

func (r room) fits(d demand) bool {
	return r.milliCPU >= d.milliCPU && r.memory >= d.memory && r.pods >= d.pods
}

func (r *room) plus(o room) { r.milliCPU += o.milliCPU; r.memory += o.memory; r.pods += o.pods }

func (r room) minus(d demand) room {
	return room{milliCPU: r.milliCPU - d.milliCPU, memory: r.memory - d.memory, pods: r.pods - d.pods}
}

// partialSet is another set seen in the snapshot: where its first member
// is, how many are placed, and what one member asks for (members of a set
// are assumed alike).
type partialSet struct {
	node         string
	placed, size int
	member       demand
}

// PreFilter places the set against this cycle's snapshot: the members not
// yet placed must fit together in the domain the placed ones chose (or in
// some domain, if none is placed), and the pod may only go there.
func (pl *CalcSet) PreFilter(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	spec, member, status := pl.spec(pod)
	if !member {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	if status != nil {
		return nil, status
	}
	pl.mu.Lock()
	until, backingOff := pl.misfit[spec.Key()]
	pl.mu.Unlock()
	if backingOff && time.Now().Before(until) {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("calculation set %s did not fit a moment ago; backing off until %s", spec.Name, until.Format(time.RFC3339)))
	}
	members, err := pl.members(spec)
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	if len(members) < spec.Size {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("calculation set %s has %d of %d members; waiting for the rest", spec.Name, len(members), spec.Size))
	}
	// Placed members: bound, or reserved in this snapshot. Other sets that
	// are placed but not complete have room promised on their node: count
	// it as taken, or two sets interleaving on one node would both believe
	// they fit and one would have to back off.
	placedOn := map[types.UID]string{}
	others := map[string]*partialSet{}
	for _, n := range nodes {
		for _, pi := range n.GetPods() {
			p := pi.GetPod()
			name, isMember := p.Labels[v1alpha1.CalcSetLabel]
			switch {
			case !isMember:
			case p.Namespace == spec.Namespace && name == spec.Name:
				placedOn[p.UID] = n.Node().Name
			default:
				key := p.Namespace + "/" + name
				o := others[key]
				if o == nil {
					size, err := strconv.Atoi(p.Labels[v1alpha1.CalcSetSizeLabel])
					if err != nil {
						continue
					}
					o = &partialSet{node: n.Node().Name, size: size}
					o.member.add(p)
					others[key] = o
				}
				o.placed++
			}
		}
	}
	promised := map[string]demand{}
	for _, o := range others {
		if missing := o.size - o.placed; missing > 0 {
			d := promised[o.node]
			d.milliCPU += o.member.milliCPU * int64(missing)
			d.memory += o.member.memory * int64(missing)
			d.pods += missing
			promised[o.node] = d
		}
	}
	var need demand
	for _, m := range members {
		if _, placed := placedOn[m.UID]; !placed {
			need.add(m)
		}
	}
	candidates, where := pl.domain(spec, nodes, placedOn, need, promised)
	if candidates == nil {
		pl.misfitSet(ctx, spec, pod, fmt.Sprintf("%d unplaced members needing cpu=%dm memory=%dMi do not fit %s", need.pods, need.milliCPU, need.memory>>20, where))
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("calculation set %s: %d unplaced members (cpu=%dm, memory=%dMi) do not fit %s", spec.Name, need.pods, need.milliCPU, need.memory>>20, where))
	}
	if spec.Locality == config.CalcSetLocalityNone {
		return nil, nil
	}
	return &fwk.PreFilterResult{NodeNames: candidates}, nil
}

// domain returns the nodes the pod may go to so that the whole set fits,
// or nil and a description of where it does not fit.
func (pl *CalcSet) domain(spec Spec, nodes []fwk.NodeInfo, placedOn map[types.UID]string, need demand, promised map[string]demand) (sets.Set[string], string) {
	roomOf := func(n fwk.NodeInfo) room { return roomOf(n).minus(promised[n.Node().Name]) }
	byName := make(map[string]fwk.NodeInfo, len(nodes))
	zones := map[string][]fwk.NodeInfo{}
	for _, n := range nodes {
		byName[n.Node().Name] = n
		zone := n.Node().Labels[v1alpha1.ZoneLabel]
		zones[zone] = append(zones[zone], n)
	}
	placedNodes := sets.New[string]()
	for _, node := range placedOn {
		placedNodes.Insert(node)
	}
	switch spec.Locality {
	case config.CalcSetLocalityNode:
		if placedNodes.Len() > 0 {
			// Members already share a node (the first placed one decides).
			node := sets.List(placedNodes)[0]
			if n, ok := byName[node]; ok && roomOf(n).fits(need) {
				return sets.New(node), ""
			}
			return nil, "node " + node + " where the set is placed"
		}
		out := sets.New[string]()
		for _, n := range nodes {
			if roomOf(n).fits(need) {
				out.Insert(n.Node().Name)
			}
		}
		if out.Len() == 0 {
			return nil, "any single node"
		}
		return out, ""
	case config.CalcSetLocalityZone:
		fitsZone := func(zone string) bool {
			var r room
			for _, n := range zones[zone] {
				r.plus(roomOf(n))
			}
			return zone != "" && r.fits(need)
		}
		if placedNodes.Len() > 0 {
			zone := byName[sets.List(placedNodes)[0]].Node().Labels[v1alpha1.ZoneLabel]
			if !fitsZone(zone) {
				return nil, fmt.Sprintf("zone %q where the set is placed", zone)
			}
			return nodeNames(zones[zone]), ""
		}
		out := sets.New[string]()
		for zone, zoneNodes := range zones {
			if fitsZone(zone) {
				out = out.Union(nodeNames(zoneNodes))
			}
		}
		if out.Len() == 0 {
			return nil, "any single zone (nodes labelled " + v1alpha1.ZoneLabel + ")"
		}
		return out, ""
	default:
		var r room
		for _, n := range nodes {
			r.plus(roomOf(n))
		}
		if !r.fits(need) {
			return nil, "the cluster"
		}
		return sets.New[string](), ""
	}
}

func nodeNames(nodes []fwk.NodeInfo) sets.Set[string] {
	out := sets.New[string]()
	for _, n := range nodes {
		out.Insert(n.Node().Name)
	}
	return out
}

// misfitSet gives up on the set for now: its waiting members are rejected
// (freeing what they reserved for a competing set), and the set is tried
// again as a unit after the backoff.
func (pl *CalcSet) misfitSet(ctx context.Context, spec Spec, pod *v1.Pod, why string) {
	backoff := pl.args.BackoffAfterMisfit.Duration
	pl.mu.Lock()
	pl.misfit[spec.Key()] = time.Now().Add(backoff)
	pl.mu.Unlock()
	if _, wasWaiting := pl.rejectWaiting(spec, "calculation set does not fit: "+why); wasWaiting {
		setsRejected.WithLabelValues(pl.handle.ProfileName(), rejectedMisfit).Inc()
	}
	pl.retryAfter(ctx, spec, backoff)
	klog.FromContext(ctx).V(2).Info("Calculation set does not fit", "set", spec.Key(), "pod", klog.KObj(pod), "why", why)
	pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeNormal, "CalcSetDoesNotFit", "Scheduling",
		"Calculation set %s: %s; retrying the set after %s or when room appears", spec.Name, why, backoff)
}

// retryAfter moves the set's unscheduled members back to the active queue
// together once the backoff has passed: no cluster event may come to
// release them (the capacity they lost to may free without one).
func (pl *CalcSet) retryAfter(ctx context.Context, spec Spec, after time.Duration) {
	logger := klog.FromContext(ctx)
	time.AfterFunc(after, func() {
		members, err := pl.members(spec)
		if err != nil {
			return
		}
		unscheduled := map[string]*v1.Pod{}
		for _, m := range members {
			if m.Spec.NodeName == "" {
				unscheduled[m.Namespace+"/"+m.Name] = m
			}
		}
		if len(unscheduled) > 0 {
			pl.handle.Activate(logger, unscheduled)
		}
	})
}

// rejectWaiting rejects every member of the set waiting in Permit. It
// reports how many it rejected and whether the set was waiting, so that a
// rejection cascading through the members' Unreserve counts once.
func (pl *CalcSet) rejectWaiting(spec Spec, msg string) (rejected int, wasWaiting bool) {
	// Forget the set first: the rejected members' Unreserve then finds it
	// no longer waiting and does not count or report the rejection again.
	pl.mu.Lock()
	_, wasWaiting = pl.firstReserved[spec.Key()]
	if wasWaiting {
		delete(pl.firstReserved, spec.Key())
		setsWaiting.WithLabelValues(pl.handle.ProfileName()).Dec()
	}
	pl.mu.Unlock()
	var waiting []fwk.WaitingPod
	pl.handle.IterateOverWaitingPods(func(wp fwk.WaitingPod) {
		if p := wp.GetPod(); p.Namespace == spec.Namespace && p.Labels[v1alpha1.CalcSetLabel] == spec.Name {
			waiting = append(waiting, wp)
		}
	})
	for _, wp := range waiting {
		wp.Reject(Name, msg)
	}
	return len(waiting), wasWaiting
}

// PreFilterExtensions: none; PreFilter keeps no per-cycle state to update.
func (pl *CalcSet) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Reserve notes when a set starts waiting.
func (pl *CalcSet) Reserve(_ context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) *fwk.Status {
	spec, member, status := pl.spec(pod)
	if !member || status != nil {
		return status
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if _, waiting := pl.firstReserved[spec.Key()]; !waiting {
		pl.firstReserved[spec.Key()] = time.Now()
		setsWaiting.WithLabelValues(pl.handle.ProfileName()).Inc()
	}
	return nil
}

// Unreserve: one member failed after reserving (its window timed out, a
// later plugin or the bind failed, or the set was rejected), so the whole
// set goes back to the queue together, frees its reservations, and is
// retried as a unit after the backoff.
func (pl *CalcSet) Unreserve(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) {
	spec, member, status := pl.spec(pod)
	if !member || status != nil {
		return
	}
	pl.mu.Lock()
	started, waiting := pl.firstReserved[spec.Key()]
	pl.mu.Unlock()
	reason := rejectedMemberLost
	if waiting && time.Since(started) >= spec.Window-spec.Window/100 {
		reason = rejectedTimeout
	}
	n, wasWaiting := pl.rejectWaiting(spec, fmt.Sprintf("member %s of calculation set %s was unreserved (%s)", pod.Name, spec.Name, reason))
	if !wasWaiting {
		return
	}
	setsRejected.WithLabelValues(pl.handle.ProfileName(), reason).Inc()
	pl.retryAfter(ctx, spec, pl.args.BackoffAfterMisfit.Duration)
	klog.FromContext(ctx).V(2).Info("Calculation set rejected as a whole", "set", spec.Key(), "unreserved", klog.KObj(pod), "reason", reason, "rejected", n)
	msg := fmt.Sprintf("Calculation set %s lost member %s before completing; all %d other waiting members were released and the set will be retried", spec.Name, pod.Name, n)
	if reason == rejectedTimeout {
		msg = fmt.Sprintf("Calculation set %s did not complete within its window of %s; all %d other waiting members were released and the set will be retried", spec.Name, spec.Window, n)
	}
	pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeWarning, "CalcSetRejected", "Scheduling", msg)
}

// Permit holds a reserved member until the whole set is reserved or bound,
// then releases every waiting member at once.
func (pl *CalcSet) Permit(ctx context.Context, _ fwk.CycleState, pod *v1.Pod, _ string) (*fwk.Status, time.Duration) {
	spec, member, status := pl.spec(pod)
	if !member || status != nil {
		return status, 0
	}
	members, err := pl.members(spec)
	if err != nil {
		return fwk.AsStatus(err), 0
	}
	ready := sets.New(pod.UID)
	pl.handle.IterateOverWaitingPods(func(wp fwk.WaitingPod) {
		if p := wp.GetPod(); p.Namespace == spec.Namespace && p.Labels[v1alpha1.CalcSetLabel] == spec.Name {
			ready.Insert(p.UID)
		}
	})
	unscheduled := map[string]*v1.Pod{}
	for _, m := range members {
		if m.Spec.NodeName != "" {
			ready.Insert(m.UID)
		} else if !ready.Has(m.UID) {
			unscheduled[m.Namespace+"/"+m.Name] = m
		}
	}
	if ready.Len() < spec.Size {
		// Bring the rest of the set forward, so members leave the queue together.
		pl.handle.Activate(klog.FromContext(ctx), unscheduled)
		return fwk.NewStatus(fwk.Wait, fmt.Sprintf("calculation set %s: %d of %d members reserved", spec.Name, ready.Len(), spec.Size)), spec.Window
	}
	pl.handle.IterateOverWaitingPods(func(wp fwk.WaitingPod) {
		if p := wp.GetPod(); p.Namespace == spec.Namespace && p.Labels[v1alpha1.CalcSetLabel] == spec.Name {
			wp.Allow(Name)
		}
	})
	profile := pl.handle.ProfileName()
	pl.mu.Lock()
	if started, waiting := pl.firstReserved[spec.Key()]; waiting {
		timeToComplete.WithLabelValues(profile).Observe(time.Since(started).Seconds())
		delete(pl.firstReserved, spec.Key())
		setsWaiting.WithLabelValues(profile).Dec()
	}
	delete(pl.misfit, spec.Key())
	pl.mu.Unlock()
	setsScheduled.WithLabelValues(profile).Inc()
	klog.FromContext(ctx).V(2).Info("Calculation set complete; releasing all members", "set", spec.Key(), "size", spec.Size)
	return nil, 0
}
