package shortjob

import (
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	resourcehelper "k8s.io/component-helpers/resource"
)

// assumeTTL is how long a bind this replica made counts on its node without
// the informer showing the pod there; after that the bind is taken as lost.
const assumeTTL = time.Minute

// usage keeps, per node, the summed requests and the number of the
// non-terminal pods on it: those the pod informer shows bound there and
// those this replica bound and the informer does not show yet (assumed).
// Pod events update it, so a placement reads one node's sums instead of
// adding up every bound pod in the cluster.
type usage struct {
	mu    sync.Mutex
	nodes map[string]*nodeSums
	pods  map[types.UID]charge
	// assumed are the charges of binds not yet seen in the informer.
	assumed map[types.UID]time.Time
}

// nodeSums are one node's requests (in milli-units) and pod count.
type nodeSums struct {
	milli map[corev1.ResourceName]int64
	pods  int64
}

// charge is what one pod holds on its node.
type charge struct {
	node  string
	milli map[corev1.ResourceName]int64
}

func newUsage() *usage {
	return &usage{nodes: map[string]*nodeSums{}, pods: map[types.UID]charge{}, assumed: map[types.UID]time.Time{}}
}

// chargeOf is what a pod's requests hold on node.
func chargeOf(node string, requests corev1.ResourceList) charge {
	c := charge{node: node, milli: make(map[corev1.ResourceName]int64, len(requests))}
	for name, q := range requests {
		c.milli[name] = q.MilliValue()
	}
	return c
}

// holdsRoom says whether a pod the informer shows counts on its node:
// bound, and neither succeeded nor failed.
func holdsRoom(p *corev1.Pod) bool {
	return p.Spec.NodeName != "" && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

// observe takes a pod as the informer shows it now.
func (u *usage) observe(p *corev1.Pod) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case holdsRoom(p):
		delete(u.assumed, p.UID)
		u.setLocked(p.UID, chargeOf(p.Spec.NodeName, resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})))
	case p.Spec.NodeName != "": // finished: its room is free
		delete(u.assumed, p.UID)
		u.removeLocked(p.UID)
	default:
		// Unbound in the informer: a bind of ours it does not show yet
		// keeps its assumed charge.
	}
}

// forgetPod drops a deleted pod's charge.
func (u *usage) forgetPod(uid types.UID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.assumed, uid)
	u.removeLocked(uid)
}

// assume charges a pod this replica is binding to node, before the
// informer shows it.
func (u *usage) assume(uid types.UID, node string, requests corev1.ResourceList, now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, seen := u.pods[uid]; seen {
		if _, assumed := u.assumed[uid]; !assumed {
			return // the informer already shows it bound
		}
	}
	u.assumed[uid] = now
	u.setLocked(uid, chargeOf(node, requests))
}

// unassume drops the charge of a bind that failed, unless the informer
// has shown the pod bound meanwhile.
func (u *usage) unassume(uid types.UID) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, assumed := u.assumed[uid]; assumed {
		delete(u.assumed, uid)
		u.removeLocked(uid)
	}
}

// expire drops assumed charges older than assumeTTL: binds the informer
// never showed.
func (u *usage) expire(now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for uid, at := range u.assumed {
		if now.Sub(at) > assumeTTL {
			delete(u.assumed, uid)
			u.removeLocked(uid)
		}
	}
}

// fit says whether a pod asking for want (milli-units) fits on node beside
// what its pods hold, and how much CPU (millicores) the node has free
// before it.
func (u *usage) fit(node *corev1.Node, want map[corev1.ResourceName]int64) (fits bool, freeCPU int64) {
	alloc := node.Status.Allocatable
	u.mu.Lock()
	defer u.mu.Unlock()
	held := u.nodes[node.Name]
	free := func(name corev1.ResourceName) int64 {
		q := alloc[name]
		have := q.MilliValue()
		if held != nil {
			have -= held.milli[name]
		}
		return have
	}
	var pods int64
	if held != nil {
		pods = held.pods
	}
	fits = pods+1 <= alloc.Pods().Value()
	for name, w := range want {
		if _, known := alloc[name]; !known && w != 0 {
			fits = false
		} else if free(name) < w {
			fits = false
		}
	}
	return fits, free(corev1.ResourceCPU)
}

func (u *usage) setLocked(uid types.UID, c charge) {
	u.removeLocked(uid)
	s := u.nodes[c.node]
	if s == nil {
		s = &nodeSums{milli: map[corev1.ResourceName]int64{}}
		u.nodes[c.node] = s
	}
	for name, v := range c.milli {
		s.milli[name] += v
	}
	s.pods++
	u.pods[uid] = c
}

func (u *usage) removeLocked(uid types.UID) {
	c, ok := u.pods[uid]
	if !ok {
		return
	}
	delete(u.pods, uid)
	s := u.nodes[c.node]
	for name, v := range c.milli {
		s.milli[name] -= v
	}
	if s.pods--; s.pods == 0 {
		delete(u.nodes, c.node)
	}
}
