package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/configurator"
)

// setConfig sets keys for every replica of the service, or for one pod
// number, as one new version.
func (s *Server) setConfig(w http.ResponseWriter, r *http.Request, _ *Identity) {
	name := r.PathValue("service")
	var req configurator.SetRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(req.Values) == 0 {
		writeError(w, http.StatusBadRequest, "values must set at least one key")
		return
	}
	for k := range req.Values {
		if !keyName.MatchString(k) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("key %q must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit", k))
			return
		}
	}
	s.mu.Lock()
	svc, known := s.services[name]
	if req.Pod != nil {
		if !known {
			s.mu.Unlock()
			writeError(w, http.StatusNotFound, fmt.Sprintf("service %q is unknown", name))
			return
		}
		if _, ok := svc.replicas[*req.Pod]; !ok {
			s.mu.Unlock()
			writeError(w, http.StatusNotFound, fmt.Sprintf("service %s has no replica with pod number %d (registered: %v)", name, *req.Pod, numbers(svc)))
			return
		}
	}
	if svc = s.serviceFor(w, name); svc == nil {
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.change(w, r, svc, req.Pod, func(snap configurator.Snapshot) (configurator.Snapshot, error) { return applyRequest(snap, req) })
}

// setSchema sets (or replaces) the service's schema; the values it holds
// must fit it.
func (s *Server) setSchema(w http.ResponseWriter, r *http.Request, _ *Identity) {
	name := r.PathValue("service")
	var schema configurator.Schema
	if err := decode(r, &schema); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := schema.Check(); err != nil {
		writeError(w, http.StatusBadRequest, "schema: "+err.Error())
		return
	}
	s.mu.Lock()
	svc := s.serviceFor(w, name)
	s.mu.Unlock()
	if svc == nil {
		return
	}
	s.change(w, r, svc, nil, func(snap configurator.Snapshot) (configurator.Snapshot, error) {
		next := cloneSnapshot(snap)
		next.Version++
		next.Schema = &schema
		return next, validateSnapshot(next)
	})
}

// invalidChange is a change the service's schema refuses: 400, nothing
// stored or sent.
type invalidChange struct{ error }

// change makes one stored, signed and broadcast change of svc: mutate makes
// the next snapshot from the stored one (an invalidChange is answered 400),
// pod is who it is meant for (nil: every replica).
func (s *Server) change(w http.ResponseWriter, r *http.Request, svc *service, pod *int, mutate func(configurator.Snapshot) (configurator.Snapshot, error)) {
	name := r.PathValue("service")
	svc.write.Lock()
	next, err := s.commit(r.Context(), svc, pod, mutate)
	var invalid invalidChange
	if errors.As(err, &invalid) {
		svc.write.Unlock()
		writeError(w, http.StatusBadRequest, invalid.Error())
		return
	}
	if err != nil {
		svc.write.Unlock()
		writeError(w, http.StatusServiceUnavailable, "storing the change: "+err.Error())
		return
	}
	change := configurator.Change{Target: pod, Snapshot: next, SentAt: time.Now()}
	payload, err := json.Marshal(change)
	if err != nil {
		svc.write.Unlock()
		writeError(w, http.StatusInternalServerError, "encoding the change: "+err.Error())
		return
	}
	s.mu.Lock()
	targets := s.targets(svc, pod)
	svc.sent[next.Version] = change.SentAt
	for v := range svc.sent {
		if v < next.Version-100 {
			delete(svc.sent, v)
		}
	}
	s.mu.Unlock()
	svc.write.Unlock()
	// Deliveries of two changes may overtake each other: a replica ignores
	// an older version and pulls when it sees a gap.
	acks, err := s.broadcaster.Broadcast(r.Context(), change, payload, targets)
	scope := "service"
	if pod != nil {
		scope = "pod"
	}
	s.metrics.broadcasts.WithLabelValues(name, scope).Inc()
	s.mu.Lock()
	for _, a := range acks {
		if rep := svc.replicas[a.PodNumber]; rep != nil {
			s.observe(svc, rep, a.Health)
		}
	}
	s.mu.Unlock()
	if err != nil {
		// Stored: replicas that missed it pull it. Say so rather than fail the write.
		s.metrics.broadcastErrors.WithLabelValues(name).Inc()
		klog.FromContext(r.Context()).Error(err, "Broadcast incomplete", "service", name, "version", next.Version)
	}
	writeJSON(w, http.StatusOK, configurator.SetResponse{Epoch: next.Epoch, Version: next.Version})
}

// commit stores the change on top of the service's snapshot and makes the
// stored snapshot the service's. When the store refuses (another writer got
// there first) or its answer is lost, the stored copy says what happened: a
// write that landed is taken as done, otherwise the stored snapshot is
// adopted (a new epoch when the ConfigMap is gone) and the change made again
// on top of it. Callers hold svc.write.
func (s *Server) commit(ctx context.Context, svc *service, pod *int, mutate func(configurator.Snapshot) (configurator.Snapshot, error)) (configurator.Snapshot, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s.mu.Lock()
		next, err := mutate(svc.snapshot)
		s.mu.Unlock()
		if err != nil {
			return next, invalidChange{err}
		}
		stored, err := s.store.Save(ctx, next)
		if err == nil {
			s.adopt(svc, stored, pod)
			return stored, nil
		}
		lastErr = err
		actual, ok, rerr := s.store.Get(ctx, next.Service)
		if rerr != nil {
			return next, fmt.Errorf("%v; re-reading the stored configuration: %w", err, rerr)
		}
		if ok && (actual.Epoch == next.Epoch || next.Epoch == "") && actual.Version == next.Version && sameValues(actual, next) {
			// It landed; only its answer was lost.
			s.adopt(svc, actual, pod)
			return actual, nil
		}
		klog.FromContext(ctx).Info("Stored configuration differs from the configurator's; adopting it and retrying", "service", next.Service,
			"err", err, "storedEpoch", actual.Epoch, "storedVersion", actual.Version, "ourEpoch", next.Epoch, "ourVersion", next.Version-1)
		s.mu.Lock()
		if ok {
			svc.snapshot = actual
		} else {
			// Gone: the next Save makes a new epoch; versions go on from ours.
			svc.snapshot.Epoch = ""
		}
		s.mu.Unlock()
	}
	return configurator.Snapshot{}, lastErr
}

// adopt makes stored the service's snapshot after a change meant for pod
// (nil: every replica). Callers hold svc.write.
func (s *Server) adopt(svc *service, stored configurator.Snapshot, pod *int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if stored.Epoch != svc.snapshot.Epoch {
		// A new epoch: every replica must resync.
		svc.lastAll, svc.lastFor = stored.Version, map[int]int64{}
	}
	svc.snapshot = stored
	if pod == nil {
		svc.lastAll = stored.Version
	} else {
		svc.lastFor[*pod] = stored.Version
	}
}

// applyRequest is snap with the request's values set, one version later;
// an error when the service's schema refuses them.
func applyRequest(snap configurator.Snapshot, req configurator.SetRequest) (configurator.Snapshot, error) {
	next := cloneSnapshot(snap)
	next.Version++
	if req.Pod == nil {
		maps.Copy(next.Values, req.Values)
	} else {
		key := strconv.Itoa(*req.Pod)
		if next.Pods[key] == nil {
			next.Pods[key] = map[string]string{}
		}
		maps.Copy(next.Pods[key], req.Values)
	}
	if snap.Schema != nil {
		if err := snap.Schema.Validate(req.Values); err != nil {
			return next, fmt.Errorf("the service's schema refuses the change: %w", err)
		}
	}
	return next, nil
}

// validateSnapshot checks every value a snapshot holds against its schema.
func validateSnapshot(snap configurator.Snapshot) error {
	if snap.Schema == nil {
		return nil
	}
	if err := snap.Schema.Validate(snap.Values); err != nil {
		return fmt.Errorf("the service's current values do not fit the schema: %w", err)
	}
	for n, values := range snap.Pods {
		if err := snap.Schema.Validate(values); err != nil {
			return fmt.Errorf("the current values of pod number %s do not fit the schema: %w", n, err)
		}
	}
	return nil
}

func cloneSnapshot(snap configurator.Snapshot) configurator.Snapshot {
	out := snap
	out.Values = maps.Clone(snap.Values)
	if out.Values == nil {
		out.Values = map[string]string{}
	}
	out.Pods = map[string]map[string]string{}
	for k, v := range snap.Pods {
		out.Pods[k] = maps.Clone(v)
	}
	if snap.Schema != nil {
		schema := *snap.Schema
		schema.Keys = maps.Clone(snap.Schema.Keys)
		out.Schema = &schema
	}
	return out
}

func sameValues(a, b configurator.Snapshot) bool {
	return maps.Equal(a.Values, b.Values) && maps.EqualFunc(a.Pods, b.Pods, func(x, y map[string]string) bool { return maps.Equal(x, y) })
}

func numbers(svc *service) []int {
	out := slices.Collect(maps.Keys(svc.replicas))
	sort.Ints(out)
	return out
}

// targets are the replicas a change is for, healthy or not. Callers hold
// s.mu.
func (s *Server) targets(svc *service, pod *int) []Target {
	var out []Target
	for n, r := range svc.replicas {
		if pod == nil || *pod == n {
			out = append(out, Target{PodNumber: n, Address: r.Address, Key: r.pushKey, Healthy: r.State == configurator.StateHealthy})
		}
	}
	return out
}
