// Package server is switchyard-configurator: it numbers the replicas of
// each service as they register (the smallest free number, stable while the
// replica lives), checks their health, prunes and removes replicas that stop
// answering, keeps every service's configuration in a ConfigMap, and
// broadcasts each change to every healthy replica, or to one pod number,
// through a Broadcaster.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
)

// Options tune the configurator.
type Options struct {
	// CheckInterval between health checks of each replica; 2s when zero.
	CheckInterval time.Duration
	// CheckTimeout of one health check; 1s when zero.
	CheckTimeout time.Duration
	// RemoveAfter successive failed checks remove a replica and free its
	// pod number; it is pruned after the first. 5 when zero.
	RemoveAfter int
	// MaxPodNumber bounds pod numbers (and so replicas per service); 10000
	// when zero.
	MaxPodNumber int
}

// Server is the configurator.
type Server struct {
	opts        Options
	store       *Store
	broadcaster Broadcaster
	auth        Authenticator
	metrics     *metrics
	checker     *http.Client

	mu       sync.Mutex
	services map[string]*service
}

type service struct {
	snapshot configurator.Snapshot
	replicas map[int]*replica
	// sent is when each recent version was broadcast, for delivery latency.
	sent map[int64]time.Time
}

type replica struct {
	configurator.ReplicaInfo
	healthPath string
}

// New loads every stored configuration and returns a configurator.
func New(ctx context.Context, store *Store, broadcaster Broadcaster, auth Authenticator, reg prometheus.Registerer, opts Options) (*Server, error) {
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = 2 * time.Second
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = time.Second
	}
	if opts.RemoveAfter <= 0 {
		opts.RemoveAfter = 5
	}
	if opts.MaxPodNumber <= 0 {
		opts.MaxPodNumber = 10000
	}
	snaps, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts: opts, store: store, broadcaster: broadcaster, auth: auth, metrics: newMetrics(reg),
		checker:  &http.Client{Timeout: opts.CheckTimeout},
		services: map[string]*service{},
	}
	for name, snap := range snaps {
		s.services[name] = &service{snapshot: snap, replicas: map[int]*replica{}, sent: map[int64]time.Time{}}
	}
	klog.FromContext(ctx).Info("Configuration loaded", "services", len(snaps))
	return s, nil
}

// serviceName is what a service name may be: it is a ConfigMap name suffix
// and an AMQP routing-key word.
var serviceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$`)

// keyName is what a configuration key may be.
var keyName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,250}[A-Za-z0-9])?$`)

// Handler serves the API, /healthz and /metrics.
func (s *Server) Handler(reg prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+configurator.RegisterPath, s.authenticated(s.register))
	mux.HandleFunc("GET "+configurator.ServicesPath, s.listServices)
	mux.HandleFunc("GET "+configurator.ServicesPath+"/{service}/replicas", s.listReplicas)
	mux.HandleFunc("GET "+configurator.ServicesPath+"/{service}/replicas/{number}", s.getReplica)
	mux.HandleFunc("GET "+configurator.ServicesPath+"/{service}/config", s.getConfig)
	mux.HandleFunc("PUT "+configurator.ServicesPath+"/{service}/config", s.authenticated(s.setConfig))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	if reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	return mux
}

func (s *Server) authenticated(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.auth.Authenticate(r); err != nil {
			writeError(w, http.StatusUnauthorized, err.Error())
			return
		}
		next(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, configurator.Error{Error: msg})
}

// decode reads a JSON body strictly: unknown fields are errors, not
// silently dropped settings.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON body: %v", err)
	}
	return nil
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req configurator.RegisterRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !serviceName.MatchString(req.Service) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("service %q must be a DNS label of at most 52 characters", req.Service))
		return
	}
	if req.Pod == "" {
		writeError(w, http.StatusBadRequest, "pod is required")
		return
	}
	if u, err := url.Parse(req.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("address %q must be an http(s) URL with a host, e.g. http://10.0.0.7:8080", req.Address))
		return
	}
	if req.HealthPath == "" {
		req.HealthPath = configurator.DefaultHealthPath
	}
	s.mu.Lock()
	svc := s.service(req.Service)
	number, ok := s.number(svc, req)
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusConflict, fmt.Sprintf("service %s has %d replicas, the most this configurator numbers", req.Service, s.opts.MaxPodNumber))
		return
	}
	svc.replicas[number] = &replica{
		ReplicaInfo: configurator.ReplicaInfo{PodNumber: number, Pod: req.Pod, Address: req.Address, State: configurator.StateHealthy, LastSeen: time.Now()},
		healthPath:  req.HealthPath,
	}
	resp := configurator.RegisterResponse{PodNumber: number, Snapshot: svc.snapshot}
	s.mu.Unlock()
	resp.AMQPExchange, resp.RoutingKeys = s.broadcaster.Describe(req.Service, number)
	s.metrics.registrations.WithLabelValues(req.Service).Inc()
	klog.FromContext(r.Context()).V(2).Info("Replica registered", "service", req.Service, "pod", req.Pod, "podNumber", number)
	writeJSON(w, http.StatusOK, resp)
}

// service returns the named service, created empty. Callers hold s.mu.
func (s *Server) service(name string) *service {
	svc, ok := s.services[name]
	if !ok {
		svc = &service{snapshot: configurator.Snapshot{Service: name, Values: map[string]string{}}, replicas: map[int]*replica{}, sent: map[int64]time.Time{}}
		s.services[name] = svc
	}
	return svc
}

// number picks the replica's pod number: its own when it registers again,
// the previous one when free, else the smallest free one.
func (s *Server) number(svc *service, req configurator.RegisterRequest) (int, bool) {
	for n, r := range svc.replicas {
		if r.Pod == req.Pod {
			return n, true
		}
	}
	if p := req.PreviousPodNumber; p != nil && *p >= 0 && *p < s.opts.MaxPodNumber {
		if _, taken := svc.replicas[*p]; !taken {
			return *p, true
		}
	}
	for n := range s.opts.MaxPodNumber {
		if _, taken := svc.replicas[n]; !taken {
			return n, true
		}
	}
	return 0, false
}

func (s *Server) listServices(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := make([]configurator.ServiceInfo, 0, len(s.services))
	for name, svc := range s.services {
		info := configurator.ServiceInfo{Name: name, Replicas: len(svc.replicas), Version: svc.snapshot.Version}
		for _, r := range svc.replicas {
			if r.State == configurator.StateHealthy {
				info.Healthy++
			} else {
				info.Pruned++
			}
		}
		out = append(out, info)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

// lookup finds the service of the request, answering 404 itself.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) *service {
	name := r.PathValue("service")
	svc, ok := s.services[name]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("service %q is unknown: no replica registered and no configuration set", name))
		return nil
	}
	return svc
}

func (s *Server) listReplicas(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	svc := s.lookup(w, r)
	if svc == nil {
		s.mu.Unlock()
		return
	}
	out := make([]configurator.ReplicaInfo, 0, len(svc.replicas))
	for _, rep := range svc.replicas {
		out = append(out, rep.ReplicaInfo)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].PodNumber < out[j].PodNumber })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getReplica(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.lookup(w, r)
	if svc == nil {
		return
	}
	n, err := strconv.Atoi(r.PathValue("number"))
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("pod number %q must be a non-negative integer", r.PathValue("number")))
		return
	}
	rep, ok := svc.replicas[n]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("service %s has no replica with pod number %d", r.PathValue("service"), n))
		return
	}
	writeJSON(w, http.StatusOK, rep.ReplicaInfo)
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.lookup(w, r)
	if svc == nil {
		return
	}
	writeJSON(w, http.StatusOK, svc.snapshot)
}

func (s *Server) setConfig(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("service")
	var req configurator.SetRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !serviceName.MatchString(name) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("service %q must be a DNS label of at most 52 characters", name))
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
	if !known {
		svc = s.service(name)
	}
	next := svc.snapshot
	next.Version++
	next.Values = maps.Clone(svc.snapshot.Values)
	if next.Values == nil {
		next.Values = map[string]string{}
	}
	next.Pods = map[string]map[string]string{}
	for k, v := range svc.snapshot.Pods {
		next.Pods[k] = maps.Clone(v)
	}
	if req.Pod == nil {
		maps.Copy(next.Values, req.Values)
	} else {
		key := strconv.Itoa(*req.Pod)
		if next.Pods[key] == nil {
			next.Pods[key] = map[string]string{}
		}
		maps.Copy(next.Pods[key], req.Values)
	}
	// Durable first: a change the store refused is not broadcast.
	if err := s.store.Save(r.Context(), next); err != nil {
		s.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "storing the change: "+err.Error())
		return
	}
	svc.snapshot = next
	targets := s.targets(svc, req.Pod)
	now := time.Now()
	svc.sent[next.Version] = now
	for v := range svc.sent {
		if v < next.Version-100 {
			delete(svc.sent, v)
		}
	}
	s.mu.Unlock()

	change := configurator.Change{Target: req.Pod, Snapshot: next, SentAt: now}
	scope := "service"
	if req.Pod != nil {
		scope = "pod"
	}
	s.metrics.broadcasts.WithLabelValues(name, scope).Inc()
	if err := s.broadcaster.Broadcast(r.Context(), change, targets); err != nil {
		// Stored: replicas that missed it get it with the next change or
		// when they register again. Say so rather than fail the write.
		s.metrics.broadcastErrors.WithLabelValues(name).Inc()
		klog.FromContext(r.Context()).Error(err, "Broadcast incomplete", "service", name, "version", next.Version)
	}
	writeJSON(w, http.StatusOK, configurator.SetResponse{Version: next.Version})
}

func numbers(svc *service) []int {
	out := make([]int, 0, len(svc.replicas))
	for n := range svc.replicas {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// targets are the healthy replicas a change is for. Callers hold s.mu.
func (s *Server) targets(svc *service, pod *int) []Target {
	var out []Target
	for n, r := range svc.replicas {
		if r.State == configurator.StateHealthy && (pod == nil || *pod == n) {
			out = append(out, Target{PodNumber: n, Address: r.Address})
		}
	}
	return out
}

// Run checks every replica's health until ctx ends.
func (s *Server) Run(ctx context.Context) {
	ticker := time.NewTicker(s.opts.CheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			s.checkAll(ctx)
		}
	}
}

type checkTarget struct {
	service string
	number  int
	pod     string
	url     string
}

func (s *Server) checkAll(ctx context.Context) {
	s.mu.Lock()
	var targets []checkTarget
	for name, svc := range s.services {
		for n, r := range svc.replicas {
			targets = append(targets, checkTarget{service: name, number: n, pod: r.Pod, url: r.Address + r.healthPath})
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func(t checkTarget) {
			defer func() { <-sem; wg.Done() }()
			health, err := s.check(ctx, t.url)
			s.record(ctx, t, health, err)
		}(t)
	}
	wg.Wait()
	s.updateGauges()
}

func (s *Server) check(ctx context.Context, url string) (configurator.Health, error) {
	var h configurator.Health
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return h, err
	}
	resp, err := s.checker.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("health endpoint answered HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&h); err != nil {
		return h, fmt.Errorf("health endpoint answered something other than JSON health: %w", err)
	}
	return h, nil
}

// record applies one check's outcome: healthy, pruned, or removed.
func (s *Server) record(ctx context.Context, t checkTarget, h configurator.Health, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[t.service]
	if svc == nil {
		return
	}
	r := svc.replicas[t.number]
	if r == nil || r.Pod != t.pod {
		return // removed or renumbered meanwhile
	}
	if err != nil {
		r.Failures++
		s.metrics.checkFailures.WithLabelValues(t.service).Inc()
		if r.Failures >= s.opts.RemoveAfter {
			delete(svc.replicas, t.number)
			klog.FromContext(ctx).Info("Replica removed after failed health checks", "service", t.service, "pod", t.pod, "podNumber", t.number, "failures", r.Failures, "err", err)
			return
		}
		if r.State != configurator.StatePruned {
			klog.FromContext(ctx).Info("Replica pruned: no longer targeted", "service", t.service, "pod", t.pod, "podNumber", t.number, "err", err)
		}
		r.State = configurator.StatePruned
		return
	}
	if r.State == configurator.StatePruned {
		klog.FromContext(ctx).Info("Replica healthy again", "service", t.service, "pod", t.pod, "podNumber", t.number)
	}
	r.State, r.Failures, r.LastSeen = configurator.StateHealthy, 0, time.Now()
	if h.AppliedVersion > r.AppliedVersion {
		if sent, ok := svc.sent[h.AppliedVersion]; ok {
			s.metrics.deliverySeconds.Observe(time.Since(sent).Seconds())
		}
		r.AppliedVersion = h.AppliedVersion
	}
}

func (s *Server) updateGauges() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics.replicas.Reset()
	for name, svc := range s.services {
		counts := map[string]int{configurator.StateHealthy: 0, configurator.StatePruned: 0}
		for _, r := range svc.replicas {
			counts[r.State]++
		}
		for state, n := range counts {
			s.metrics.replicas.WithLabelValues(name, state).Set(float64(n))
		}
	}
}

func isUnroutable(err error) bool { return errors.Is(err, broker.ErrUnroutable) }
