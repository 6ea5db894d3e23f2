package admission

import "k8s.io/apimachinery/pkg/types"

// gangKey names a calculation set within a queue: sets are per namespace.
type gangKey struct{ queue, namespace, name string }

// gang is a calculation set's members in one queue: they are admitted all
// together or not at all.
type gang struct {
	key     gangKey
	size    int
	members map[types.UID]*entry
	// unfitReported is set once the set was reported as never fitting its
	// queue's limits.
	unfitReported bool
}

// standing counts the members that wait (pending) and those already past
// admission (admitted, overdue or scheduled), and sums the requests of all.
func (g *gang) standing() (pending, past int, requests Resources) {
	requests = Resources{}
	for _, e := range g.members {
		switch e.class {
		case classPending:
			pending++
		case classAdmitted, classOverdue, classScheduled:
			past++
		default:
			continue
		}
		requests.add(e.requests, 1)
	}
	return pending, past, requests
}

// join makes e a member of its queue's set name. The set's size is the
// first member's; members are counted as they were when they joined.
func (s *State) join(e *entry, name string, size int) {
	key := gangKey{queue: e.queue, namespace: e.namespace, name: name}
	g := s.gangs[key]
	if g == nil {
		g = &gang{key: key, size: size, members: map[types.UID]*entry{}}
		s.gangs[key] = g
	}
	g.members[e.uid] = e
	e.gang = g
}
