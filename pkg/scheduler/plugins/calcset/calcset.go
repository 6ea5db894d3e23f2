// Package calcset is the CalcSet scheduler plugin: all-or-nothing,
// co-located scheduling of calculation sets, groups of pods that work on
// the same data snapshot and are useful only together.
//
// A set is the pods of one namespace labelled switchyard.io/calcset=<name>
// with switchyard.io/calcset-size=<n>. PreEnqueue holds members until all n
// exist. PreFilter reads the pod's set once per cycle (carried to Reserve,
// Permit and Unreserve in the CycleState) and checks, against the cycle's
// snapshot, that every member not yet placed (bound, or reserved and
// waiting in Permit) fits in one locality domain (a node, a zone, or the
// cluster), less the room promised to other sets waiting in Permit, and
// narrows the nodes to that domain; that math is pure (placement.go).
// Permit holds reserved members until the whole set is reserved, then
// releases all of them together; on the window's timeout, or when any
// member is unreserved, every waiting member is rejected, so a partial set
// never binds and never keeps capacity. A set that does not fit rejects its
// own waiting members and backs off briefly, so that of two sets competing
// for the same room one completes.
//
// Members are found through an index of the scheduler's pod informer by
// set (members.go), and other sets' state through the framework's waiting
// pods: no extension point walks the cluster's pods.
package calcset

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/cache"
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
	// members is the pod informer's store, indexed by set (setIndex).
	members cache.Indexer

	mu sync.Mutex
	// misfit holds, per set, until when its members back off after the set
	// did not fit.
	misfit map[string]time.Time
	// reserved are the sets with members reserved and waiting in Permit,
	// kept by Reserve, Unreserve and Permit, so that PreFilter and Permit
	// read the sets in flight without walking the waiting pods.
	reserved map[string]*reservedSet
	// warned are pods that already got their InvalidCalcSet event.
	warned sets.Set[types.UID]
	// retrying are sets with a retry timer pending (retryAfter), so that
	// every member failing in a row arms one timer, not one each.
	retrying sets.Set[string]
	// ran remembers where completed sets were placed, for the sets that
	// follow them in a pipeline after their pods finished (the informer
	// no longer has finished pods). It lives in memory: a restarted
	// scheduler knows only the sets whose members still run.
	ran map[string]ranRecord
	// awayFrom is, per following set that did not fit where its
	// predecessor ran, since when, and whether it was told it moves.
	awayFrom map[string]*awayRecord
}

// reservedSet is a set with members reserved and waiting in Permit.
type reservedSet struct {
	spec Spec
	// request is what one member asks (members of a set are assumed alike).
	request demand
	// nodes maps each reserved member to its node.
	nodes map[types.UID]string
	// since is when the set reserved its first member.
	since time.Time
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
	informer := h.SharedInformerFactory().Core().V1().Pods().Informer()
	if err := addSetIndex(informer); err != nil {
		return nil, err
	}
	registerMetrics()
	InitProfileMetrics(h.ProfileName())
	return &CalcSet{
		handle:   h,
		args:     args,
		members:  informer.GetIndexer(),
		misfit:   map[string]time.Time{},
		reserved: map[string]*reservedSet{},
		warned:   sets.New[types.UID](),
		retrying: sets.New[string](),
		ran:      map[string]ranRecord{},
		awayFrom: map[string]*awayRecord{},
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

// PreEnqueue holds members until every member of their set exists, so that
// the set's pods enter the active queue together.
func (pl *CalcSet) PreEnqueue(_ context.Context, pod *v1.Pod) *fwk.Status {
	spec, member, status := pl.spec(pod)
	if !member || status != nil {
		return status
	}
	members, err := liveMembers(pl.members, spec.Key())
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
	for _, key := range []string{v1alpha1.CalcSetLabel, v1alpha1.CalcSetSizeLabel, v1alpha1.CalcSetLocalityLabel, v1alpha1.CalcSetWindowLabel, v1alpha1.CalcSetAfterLabel, v1alpha1.CalcSetAfterModeLabel} {
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

// stateKey carries the pod's parsed set from PreFilter to Reserve, Permit
// and Unreserve of the same cycle, so the labels are read once per cycle.
const stateKey fwk.StateKey = Name + "/spec"

// cycleSpec is the pod's set as PreFilter read it.
type cycleSpec struct{ spec Spec }

// Clone: the spec is a value and never changes within a cycle.
func (c *cycleSpec) Clone() fwk.StateData { return c }

// cycleSpec returns the set PreFilter stored for this cycle, or reads the
// labels when it did not (a pod PreFilter skipped is not a member).
func (pl *CalcSet) cycleSpec(state fwk.CycleState, pod *v1.Pod) (Spec, bool, *fwk.Status) {
	if state != nil {
		if data, err := state.Read(stateKey); err == nil {
			if c, ok := data.(*cycleSpec); ok {
				return c.spec, true, nil
			}
		}
	}
	return pl.spec(pod)
}

// inFlight returns the sets waiting in Permit other than own, and own's
// reserved members with their nodes. It costs one entry per set in flight.
func (pl *CalcSet) inFlight(own string) ([]waitingSet, map[types.UID]string) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	others := make([]waitingSet, 0, len(pl.reserved))
	var mine map[types.UID]string
	for key, rs := range pl.reserved {
		if key == own {
			mine = maps.Clone(rs.nodes)
			continue
		}
		w := waitingSet{set: key, size: rs.spec.Size, locality: rs.spec.Locality, request: rs.request, waiting: len(rs.nodes)}
		for _, node := range rs.nodes {
			if w.node == "" || node < w.node {
				w.node = node
			}
		}
		others = append(others, w)
	}
	return others, mine
}

// reservedMembers returns the set's reserved members with their nodes.
func (pl *CalcSet) reservedMembers(key string) map[types.UID]string {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if rs, ok := pl.reserved[key]; ok {
		return maps.Clone(rs.nodes)
	}
	return nil
}

// PreFilter places the set against this cycle's snapshot: the members not
// yet placed must fit together in the domain the placed ones chose (or in
// some domain, if none is placed), and the pod may only go there.
func (pl *CalcSet) PreFilter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	spec, member, status := pl.spec(pod)
	if !member {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	if status != nil {
		return nil, status
	}
	state.Write(stateKey, &cycleSpec{spec: spec})
	if until, backingOff := pl.backingOff(spec, time.Now()); backingOff {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("calculation set %s did not fit a moment ago; backing off until %s", spec.Name, until.Format(time.RFC3339)))
	}
	members, err := liveMembers(pl.members, spec.Key())
	if err != nil {
		return nil, fwk.AsStatus(err)
	}
	if len(members) < spec.Size {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("calculation set %s has %d of %d members; waiting for the rest", spec.Name, len(members), spec.Size))
	}
	// Placed members: bound (the informer has their node) or reserved and
	// waiting in Permit.
	waiting, reserved := pl.inFlight(spec.Key())
	placed := placement{nodes: sets.New[string]()}
	for _, node := range reserved {
		placed.nodes.Insert(node)
	}
	var need demand
	for _, m := range members {
		_, isReserved := reserved[m.UID]
		switch {
		case m.Spec.NodeName != "":
			placed.nodes.Insert(m.Spec.NodeName)
		case !isReserved:
			need.add(demandOf(m))
		}
	}
	promised := promisedRoom(waiting, zoneLookup(nodes))
	if spec.After != "" && placed.nodes.Len() == 0 {
		// The first member of a following set: its predecessor's domain
		// first. Once a member is placed, the domain is the members'.
		result, status, done := pl.followPredecessor(ctx, spec, pod, nodes, placed, need, promised)
		if done {
			return result, status
		}
	}
	candidates, where := chooseDomain(spec.Locality, nodes, placed, need, promised)
	if candidates == nil {
		pl.misfitSet(ctx, spec, pod, fmt.Sprintf("%d unplaced members needing %s do not fit %s", need.pods, need, where))
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("calculation set %s: %d unplaced members (%s) do not fit %s", spec.Name, need.pods, need, where))
	}
	if spec.Locality == config.CalcSetLocalityNone {
		return nil, nil
	}
	return &fwk.PreFilterResult{NodeNames: candidates}, nil
}

// zoneLookup maps the cycle's node names to their zone label. The map is
// built on first use: most cycles have no zone set waiting and never ask.
func zoneLookup(nodes []fwk.NodeInfo) func(string) string {
	var zones map[string]string
	return func(node string) string {
		if zones == nil {
			zones = make(map[string]string, len(nodes))
			for _, n := range nodes {
				zones[n.Node().Name] = n.Node().Labels[v1alpha1.ZoneLabel]
			}
		}
		return zones[node]
	}
}

// backingOff says whether the set is in its backoff after a misfit, and
// until when.
func (pl *CalcSet) backingOff(spec Spec, now time.Time) (time.Time, bool) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	until, ok := pl.misfit[spec.Key()]
	return until, ok && now.Before(until)
}

// misfitSet gives up on the set for now: its waiting members are rejected
// (freeing what they reserved for a competing set), and the set is tried
// again as a unit after the backoff.
func (pl *CalcSet) misfitSet(ctx context.Context, spec Spec, pod *v1.Pod, why string) {
	backoff := pl.args.BackoffAfterMisfit.Duration
	now := time.Now()
	pl.mu.Lock()
	// Entries of sets whose backoff is over, completed or deleted, go: the
	// map holds only sets backing off now.
	for key, until := range pl.misfit {
		if !now.Before(until) {
			delete(pl.misfit, key)
		}
	}
	pl.misfit[spec.Key()] = now.Add(backoff)
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
	pl.mu.Lock()
	if pl.retrying.Has(spec.Key()) {
		pl.mu.Unlock()
		return
	}
	pl.retrying.Insert(spec.Key())
	pl.mu.Unlock()
	time.AfterFunc(after, func() {
		pl.mu.Lock()
		pl.retrying.Delete(spec.Key())
		pl.mu.Unlock()
		members, err := liveMembers(pl.members, spec.Key())
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
	rs, wasWaiting := pl.reserved[spec.Key()]
	if wasWaiting {
		delete(pl.reserved, spec.Key())
		setsWaiting.WithLabelValues(pl.handle.ProfileName()).Dec()
	}
	pl.mu.Unlock()
	if !wasWaiting {
		return 0, false
	}
	for uid := range rs.nodes {
		if wp := pl.handle.GetWaitingPod(uid); wp != nil {
			wp.Reject(Name, msg)
			rejected++
		}
	}
	return rejected, true
}

// PreFilterExtensions: none; the cycle state PreFilter writes does not
// depend on other pods.
func (pl *CalcSet) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Reserve records the member as reserved on its node, and when its set
// starts waiting.
func (pl *CalcSet) Reserve(_ context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	spec, member, status := pl.cycleSpec(state, pod)
	if !member || status != nil {
		return status
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	rs, waiting := pl.reserved[spec.Key()]
	if !waiting {
		rs = &reservedSet{spec: spec, request: demandOf(pod), nodes: map[types.UID]string{}, since: time.Now()}
		pl.reserved[spec.Key()] = rs
		setsWaiting.WithLabelValues(pl.handle.ProfileName()).Inc()
	}
	rs.nodes[pod.UID] = nodeName
	return nil
}

// Unreserve: one member failed after reserving (its window timed out, a
// later plugin or the bind failed, or the set was rejected), so the whole
// set goes back to the queue together, frees its reservations, and is
// retried as a unit after the backoff.
func (pl *CalcSet) Unreserve(ctx context.Context, state fwk.CycleState, pod *v1.Pod, _ string) {
	spec, member, status := pl.cycleSpec(state, pod)
	if !member || status != nil {
		return
	}
	pl.mu.Lock()
	rs, waiting := pl.reserved[spec.Key()]
	if waiting {
		// A member of an earlier attempt, rejected with its set, finds a
		// new attempt here: not its set any more.
		_, waiting = rs.nodes[pod.UID]
	}
	pl.mu.Unlock()
	if !waiting {
		return
	}
	reason := rejectedMemberLost
	if time.Since(rs.since) >= spec.Window-spec.Window/100 {
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
func (pl *CalcSet) Permit(ctx context.Context, state fwk.CycleState, pod *v1.Pod, nodeName string) (*fwk.Status, time.Duration) {
	spec, member, status := pl.cycleSpec(state, pod)
	if !member || status != nil {
		return status, 0
	}
	members, err := liveMembers(pl.members, spec.Key())
	if err != nil {
		return fwk.AsStatus(err), 0
	}
	reserved := pl.reservedMembers(spec.Key())
	ready := sets.New(pod.UID)
	for uid := range reserved {
		ready.Insert(uid)
	}
	unscheduled := map[string]*v1.Pod{}
	placedOn := sets.New(nodeName)
	for _, m := range members {
		if m.Spec.NodeName != "" {
			ready.Insert(m.UID)
			placedOn.Insert(m.Spec.NodeName)
		} else if !ready.Has(m.UID) {
			unscheduled[m.Namespace+"/"+m.Name] = m
		}
	}
	if ready.Len() < spec.Size {
		// Bring the rest of the set forward, so members leave the queue together.
		pl.handle.Activate(klog.FromContext(ctx), unscheduled)
		return fwk.NewStatus(fwk.Wait, fmt.Sprintf("calculation set %s: %d of %d members reserved", spec.Name, ready.Len(), spec.Size)), spec.Window
	}
	for uid, node := range reserved {
		placedOn.Insert(node)
		if wp := pl.handle.GetWaitingPod(uid); wp != nil {
			wp.Allow(Name)
		}
	}
	pl.rememberRan(spec.Key(), placedOn, time.Now())
	profile := pl.handle.ProfileName()
	pl.mu.Lock()
	if rs, waiting := pl.reserved[spec.Key()]; waiting {
		timeToComplete.WithLabelValues(profile).Observe(time.Since(rs.since).Seconds())
		delete(pl.reserved, spec.Key())
		setsWaiting.WithLabelValues(profile).Dec()
	}
	delete(pl.misfit, spec.Key())
	pl.mu.Unlock()
	setsScheduled.WithLabelValues(profile).Inc()
	klog.FromContext(ctx).V(2).Info("Calculation set complete; releasing all members", "set", spec.Key(), "size", spec.Size)
	return nil, 0
}
