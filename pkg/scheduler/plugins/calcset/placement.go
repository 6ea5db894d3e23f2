package calcset

import (
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	resourcehelper "k8s.io/component-helpers/resource"
	fwk "k8s.io/kube-scheduler/framework"

	"github.com/switchyard-sched/switchyard/pkg/apis/config"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// The placement math: pure functions of the cycle's nodes, where the set's
// members are placed, what its unplaced members need, and the room other
// sets waiting in Permit have been promised. The plugin gathers those
// inputs; these decide.

// demand is what some pods ask for together.
type demand struct {
	milliCPU, memory int64
	pods             int
}

func demandOf(pod *v1.Pod) demand {
	req := resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
	return demand{milliCPU: req.Cpu().MilliValue(), memory: req.Memory().Value(), pods: 1}
}

func (d *demand) add(o demand) { d.milliCPU += o.milliCPU; d.memory += o.memory; d.pods += o.pods }

func (d demand) times(n int) demand {
	return demand{milliCPU: d.milliCPU * int64(n), memory: d.memory * int64(n), pods: d.pods * n}
}

func (d demand) String() string {
	return fmt.Sprintf("cpu=%dm, memory=%dMi", d.milliCPU, d.memory>>20)
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

// waitingSet is another set with members reserved and waiting in Permit
// for the rest.
type waitingSet struct {
	set      string
	size     int
	locality config.CalcSetLocality
	// node is the alphabetically first node its members reserved, which
	// decides its domain (members of a node set share one).
	node string
	// request is what one member asks (members of a set are assumed alike).
	request demand
	// waiting is how many members are reserved.
	waiting int
}

// promises is the room that sets waiting in Permit still need for their
// unplaced members, in the domain each of them chose: counted as taken, or
// two sets interleaving in one domain would both believe they fit and one
// would have to back off.
type promises struct {
	node    map[string]demand
	zone    map[string]demand
	cluster demand
}

// promisedRoom sums what the waiting sets (other than the pod's own) still
// need. Only sets with members waiting count: a bound pod of a finished
// set, or of another namespace, promises nothing. A set's missing members
// are its size less its waiting members (members of a waiting set are not
// bound yet: Permit releases them together), each asking what one waiting
// member asks. zoneOf maps a node to its zone.
func promisedRoom(waiting []waitingSet, zoneOf func(node string) string) promises {
	p := promises{node: map[string]demand{}, zone: map[string]demand{}}
	for _, w := range waiting {
		missing := w.size - w.waiting
		if missing <= 0 {
			continue
		}
		d := w.request.times(missing)
		switch w.locality {
		case config.CalcSetLocalityNode:
			n := p.node[w.node]
			n.add(d)
			p.node[w.node] = n
		case config.CalcSetLocalityZone:
			zone := zoneOf(w.node)
			z := p.zone[zone]
			z.add(d)
			p.zone[zone] = z
		default:
			p.cluster.add(d)
		}
	}
	return p
}

// placement is where a set's members already are: the nodes (bound or
// reserved) holding at least one.
type placement struct {
	nodes sets.Set[string]
}

// chooseDomain returns the nodes the pod may go to so that the set's
// unplaced members (need) all fit in one domain of its locality, or nil and
// a description of where they do not fit. Members already placed fix the
// domain: with node locality their node, with zone locality their zone;
// members placed on several nodes (or zones) when the locality wants one
// cannot be completed.
func chooseDomain(locality config.CalcSetLocality, nodes []fwk.NodeInfo, placed placement, need demand, promised promises) (sets.Set[string], string) {
	nodeRoom := func(n fwk.NodeInfo) room { return roomOf(n).minus(promised.node[n.Node().Name]) }
	// The placed members' nodes, found in one pass only when there are any.
	placedInfo := map[string]fwk.NodeInfo{}
	if placed.nodes.Len() > 0 {
		for _, n := range nodes {
			if placed.nodes.Has(n.Node().Name) {
				placedInfo[n.Node().Name] = n
			}
		}
	}
	switch locality {
	case config.CalcSetLocalityNode:
		if placed.nodes.Len() > 1 {
			return nil, fmt.Sprintf("one node: its members are already on %d nodes (%v)", placed.nodes.Len(), sets.List(placed.nodes))
		}
		if placed.nodes.Len() == 1 {
			node := sets.List(placed.nodes)[0]
			if n, ok := placedInfo[node]; ok && nodeRoom(n).fits(need) {
				return sets.New(node), ""
			}
			return nil, "node " + node + " where the set is placed"
		}
		out := sets.New[string]()
		for _, n := range nodes {
			if nodeRoom(n).fits(need) {
				out.Insert(n.Node().Name)
			}
		}
		if out.Len() == 0 {
			return nil, "any single node"
		}
		return out, ""
	case config.CalcSetLocalityZone:
		zones := map[string][]fwk.NodeInfo{}
		for _, n := range nodes {
			zone := n.Node().Labels[v1alpha1.ZoneLabel]
			zones[zone] = append(zones[zone], n)
		}
		fitsZone := func(zone string) bool {
			var r room
			for _, n := range zones[zone] {
				r.plus(nodeRoom(n))
			}
			return zone != "" && r.minus(promised.zone[zone]).fits(need)
		}
		placedZones := sets.New[string]()
		for _, n := range placedInfo {
			placedZones.Insert(n.Node().Labels[v1alpha1.ZoneLabel])
		}
		if placedZones.Len() > 1 {
			return nil, fmt.Sprintf("one zone: its members are already in %d zones (%v)", placedZones.Len(), sets.List(placedZones))
		}
		if placedZones.Len() == 1 {
			zone := sets.List(placedZones)[0]
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
			r.plus(nodeRoom(n))
		}
		for _, z := range promised.zone {
			r = r.minus(z)
		}
		if !r.minus(promised.cluster).fits(need) {
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

// nearPredecessor narrows the nodes to the domain where a followed set
// ran (ran: the nodes its members were placed on), as the following set's
// locality reads it: the same nodes for node locality and no locality,
// every node of the same zones for zone locality.
func nearPredecessor(locality config.CalcSetLocality, nodes []fwk.NodeInfo, ran sets.Set[string]) []fwk.NodeInfo {
	if ran.Len() == 0 {
		return nil
	}
	var near []fwk.NodeInfo
	if locality == config.CalcSetLocalityZone {
		zones := sets.New[string]()
		for _, n := range nodes {
			if zone := n.Node().Labels[v1alpha1.ZoneLabel]; zone != "" && ran.Has(n.Node().Name) {
				zones.Insert(zone)
			}
		}
		for _, n := range nodes {
			if zones.Has(n.Node().Labels[v1alpha1.ZoneLabel]) {
				near = append(near, n)
			}
		}
		return near
	}
	for _, n := range nodes {
		if ran.Has(n.Node().Name) {
			near = append(near, n)
		}
	}
	return near
}

// keepWaitingNear decides for a following set that does not fit where its
// predecessor ran (since: when it first did not): a required one waits; a
// preferred one waits until its window has passed, then goes elsewhere.
// until is when a preferred set stops waiting.
func keepWaitingNear(required bool, since, now time.Time, window time.Duration) (wait bool, until time.Time) {
	until = since.Add(window)
	return required || now.Before(until), until
}
