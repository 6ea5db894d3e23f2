package calcset

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// Pipelines: a set that names the set it follows (label
// switchyard.io/calcset-after) is placed where that set runs or ran, so a
// step finds the data the step before it left on the node or in the zone.

// ranRecord is where a completed set was placed, and when.
type ranRecord struct {
	nodes sets.Set[string]
	at    time.Time
}

// awayRecord is a following set kept from its predecessor's domain.
type awayRecord struct {
	since time.Time
	moved bool
}

// rememberRanFor bounds how long, and maxRemembered how many, completed
// sets' placements are kept for sets that follow them.
const (
	rememberRanFor = time.Hour
	maxRemembered  = 10000
)

// followPredecessor places the first member of a set that follows
// another in the domain where that one runs or ran. done is false when
// the set is to be placed anywhere instead: its predecessor's domain has
// no room, the set is not required to stay, and its window has passed.
func (pl *CalcSet) followPredecessor(ctx context.Context, spec Spec, pod *v1.Pod, nodes []fwk.NodeInfo, placed placement, need demand, promised promises) (*fwk.PreFilterResult, *fwk.Status, bool) {
	ran, err := pl.ranNodes(spec.AfterKey())
	if err != nil {
		return nil, fwk.AsStatus(err), true
	}
	near := nearPredecessor(spec.Locality, nodes, ran)
	candidates, where := chooseDomain(spec.Locality, near, placed, need, promised)
	if candidates != nil {
		pl.mu.Lock()
		delete(pl.awayFrom, spec.Key())
		pl.mu.Unlock()
		if spec.Locality == config.CalcSetLocalityNone {
			candidates = nodeNames(near)
		}
		return &fwk.PreFilterResult{NodeNames: candidates}, nil, true
	}
	why := fmt.Sprintf("%d unplaced members (%s) do not fit %s where set %s ran (%v)", need.pods, need, where, spec.After, sets.List(ran))
	if ran.Len() == 0 {
		why = fmt.Sprintf("set %s, which it follows, has not been placed yet", spec.After)
	}
	now := time.Now()
	pl.mu.Lock()
	away, known := pl.awayFrom[spec.Key()]
	if !known {
		pl.pruneLocked(now)
		away = &awayRecord{since: now}
		pl.awayFrom[spec.Key()] = away
	}
	wait, until := keepWaitingNear(spec.AfterRequired, away.since, now, spec.Window)
	tellMoved := !wait && !away.moved
	away.moved = away.moved || !wait
	pl.mu.Unlock()
	recorder := pl.handle.EventRecorder()
	if wait {
		pl.retryAfter(ctx, spec, pl.args.BackoffAfterMisfit.Duration)
		msg := fmt.Sprintf("calculation set %s follows %s: %s; waiting until %s, then placing it elsewhere", spec.Name, spec.After, why, until.Format(time.RFC3339))
		if spec.AfterRequired {
			msg = fmt.Sprintf("calculation set %s follows %s: %s; waiting (%s=required)", spec.Name, spec.After, why, v1alpha1.CalcSetAfterModeLabel)
		}
		if !known {
			recorder.Eventf(pod, nil, v1.EventTypeNormal, "CalcSetWaitingForPredecessor", "Scheduling", "%s", msg)
		}
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, msg), true
	}
	if tellMoved {
		klog.FromContext(ctx).V(2).Info("Placing a following calculation set away from its predecessor", "set", spec.Key(), "after", spec.After, "why", why)
		recorder.Eventf(pod, nil, v1.EventTypeWarning, "CalcSetPlacedAwayFromPredecessor", "Scheduling",
			"Calculation set %s follows %s but %s for its window of %s; placing it elsewhere (label %s=required would keep it waiting)", spec.Name, spec.After, why, spec.Window, v1alpha1.CalcSetAfterModeLabel)
	}
	return nil, nil, false
}

// ranNodes is where the set runs (its live members' nodes) or ran (the
// placement remembered when it completed).
func (pl *CalcSet) ranNodes(key string) (sets.Set[string], error) {
	members, err := liveMembers(pl.members, key)
	if err != nil {
		return nil, err
	}
	nodes := sets.New[string]()
	for _, m := range members {
		if m.Spec.NodeName != "" {
			nodes.Insert(m.Spec.NodeName)
		}
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if r, ok := pl.ran[key]; ok {
		nodes = nodes.Union(r.nodes)
	}
	return nodes, nil
}

// rememberRan records where a set that just completed was placed.
func (pl *CalcSet) rememberRan(key string, nodes sets.Set[string], now time.Time) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.pruneLocked(now)
	if len(pl.ran) >= maxRemembered {
		oldest, at := "", now
		for k, r := range pl.ran {
			if r.at.Before(at) {
				oldest, at = k, r.at
			}
		}
		delete(pl.ran, oldest)
	}
	pl.ran[key] = ranRecord{nodes: nodes, at: now}
	delete(pl.awayFrom, key)
}

// pruneLocked forgets placements and waits older than rememberRanFor.
func (pl *CalcSet) pruneLocked(now time.Time) {
	for k, r := range pl.ran {
		if now.Sub(r.at) > rememberRanFor {
			delete(pl.ran, k)
		}
	}
	for k, a := range pl.awayFrom {
		if now.Sub(a.since) > rememberRanFor {
			delete(pl.awayFrom, k)
		}
	}
}
