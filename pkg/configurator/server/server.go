// Package server is switchyard-configurator: it numbers the replicas of
// each service as they register (the smallest free number, stable while the
// replica lives), checks their health, prunes and removes replicas that stop
// answering, keeps every service's configuration in a ConfigMap, and
// broadcasts each change, signed, to every healthy replica, or to one pod
// number, through a Broadcaster. Every call is authenticated (TokenReview)
// and authorized per service (SubjectAccessReview); a replica registers only
// as the pod its token is bound to.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
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
	// MaxPodNumber bounds pod numbers, and so replicas per service; 1000
	// when zero.
	MaxPodNumber int
	// MaxServices bounds the services the configurator keeps; 1000 when
	// zero.
	MaxServices int
}

// Security is who may do what, and how the configurator proves itself.
type Security struct {
	// Authenticator reviews every request's bearer token.
	Authenticator Authenticator
	// Authorizer decides each request per service.
	Authorizer Authorizer
	// Pods looks up the pod a registering replica's token is bound to.
	Pods kubernetes.Interface
}

// Server is the configurator.
type Server struct {
	opts        Options
	store       *Store
	broadcaster Broadcaster
	security    Security
	metrics     *metrics
	checker     *http.Client

	// mu guards the services map and everything in a service but its
	// write lock. It is never held across a call to the API server or a
	// replica.
	mu       sync.Mutex
	services map[string]*service

	// handler is the API, built once in New.
	handler http.Handler
}

type service struct {
	// write serialises the changes of this service's configuration; the
	// ConfigMap write happens under it, not under Server.mu, so other
	// services and every read go on meanwhile.
	write    sync.Mutex
	snapshot configurator.Snapshot
	replicas map[int]*replica
	// sent is when each recent version was broadcast, for delivery latency.
	sent map[int64]time.Time
	// lastAll is the last version of a service-wide change, lastFor the
	// last one meant for one pod number: what a replica must have applied.
	lastAll int64
	lastFor map[int]int64
}

type replica struct {
	configurator.ReplicaInfo
	uid        string
	healthPath string
	// pushKey authenticates changes to this replica, and only to it.
	pushKey []byte
}

// New loads every stored configuration and returns a configurator.
func New(ctx context.Context, store *Store, broadcaster Broadcaster, sec Security, reg prometheus.Registerer, opts Options) (*Server, error) {
	if sec.Authenticator == nil || sec.Authorizer == nil || sec.Pods == nil {
		return nil, errors.New("the configurator needs an authenticator, an authorizer and a client to look up pods")
	}
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
		opts.MaxPodNumber = 1000
	}
	if opts.MaxServices <= 0 {
		opts.MaxServices = 1000
	}
	snaps, err := store.Load(ctx)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts: opts, store: store, broadcaster: broadcaster, security: sec, metrics: newMetrics(reg),
		checker:  &http.Client{Timeout: opts.CheckTimeout},
		services: map[string]*service{},
	}
	s.handler = s.newHandler()
	for name, snap := range snaps {
		svc := newService(snap)
		svc.lastAll = snap.Version // unknown which pods the last changes were for: all
		s.services[name] = svc
	}
	klog.FromContext(ctx).Info("Configuration loaded", "services", len(snaps))
	return s, nil
}

func newService(snap configurator.Snapshot) *service {
	if snap.Values == nil {
		snap.Values = map[string]string{}
	}
	return &service{snapshot: snap, replicas: map[int]*replica{}, sent: map[int64]time.Time{}, lastFor: map[int]int64{}}
}

// serviceName is what a service name may be: it is a ConfigMap name suffix
// and an AMQP routing-key word.
var serviceName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$`)

// keyName is what a configuration key may be.
var keyName = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,250}[A-Za-z0-9])?$`)

// Handler serves the API.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+configurator.RegisterPath, s.guard("", s.register))
	mux.HandleFunc("GET "+configurator.ServicesPath, s.guard("list", s.listServices))
	mux.HandleFunc("GET "+configurator.ServicesPath+"/{service}/replicas", s.guard("get", s.listReplicas))
	mux.HandleFunc("GET "+configurator.ServicesPath+"/{service}/replicas/{number}", s.guard("get", s.getReplica))
	mux.HandleFunc("GET "+configurator.ServicesPath+"/{service}/config", s.guard("get", s.getConfig))
	mux.HandleFunc("GET "+configurator.ServicesPath+"/{service}/rollout", s.guard("get", s.rollout))
	mux.HandleFunc("PUT "+configurator.ServicesPath+"/{service}/config", s.guard("update", s.setConfig))
	mux.HandleFunc("PUT "+configurator.ServicesPath+"/{service}/schema", s.guard("update", s.setSchema))
	return mux
}

// authorizedHandler serves a request whose caller is known.
type authorizedHandler func(w http.ResponseWriter, r *http.Request, id *Identity)

// guard authenticates every request and, when verb is set, authorizes it
// for the service in the path ("" for the list of services).
func (s *Server) guard(verb string, next authorizedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, err := bearer(r)
		if err != nil {
			s.refuse(w, http.StatusUnauthorized, "unauthenticated", err.Error())
			return
		}
		id, err := s.security.Authenticator.Authenticate(r.Context(), token)
		if err != nil {
			s.refuse(w, http.StatusUnauthorized, "unauthenticated", err.Error())
			return
		}
		if verb != "" && !s.authorize(w, r, id, verb, r.PathValue("service")) {
			return
		}
		next(w, r, id)
	}
}

// authorize answers 403 (or 503) itself when id may not do verb.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, id *Identity, verb, service string) bool {
	if service != "" && !serviceName.MatchString(service) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("service %q must be a DNS label of at most 52 characters", service))
		return false
	}
	d, err := s.security.Authorizer.Authorize(r.Context(), id, verb, service)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return false
	}
	if d.Allowed {
		return true
	}
	what := fmt.Sprintf("configurations/%s", service)
	if service == "" {
		what = "configurations"
	}
	msg := fmt.Sprintf("%s may not %s %s.%s: bind a ClusterRole that grants it (switchyard-config-viewer reads, switchyard-config-editor writes, a replica needs register and get)", id.User, verb, what, v1alpha1.ConfigurationsGroup)
	if d.Reason != "" {
		msg += "; the API server said: " + d.Reason
	}
	s.refuse(w, http.StatusForbidden, "forbidden", msg)
	return false
}

func (s *Server) refuse(w http.ResponseWriter, status int, reason, msg string) {
	s.metrics.refused.WithLabelValues(reason).Inc()
	writeError(w, status, msg)
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

func (s *Server) listServices(w http.ResponseWriter, _ *http.Request, _ *Identity) {
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

// lookup finds the service of the request, answering 404 itself. Callers
// hold s.mu.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) *service {
	name := r.PathValue("service")
	svc, ok := s.services[name]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("service %q is unknown: no replica registered and no configuration set", name))
		return nil
	}
	return svc
}

// info is a replica's row with what it must have applied. Callers hold s.mu.
func (svc *service) info(r *replica) configurator.ReplicaInfo {
	out := r.ReplicaInfo
	out.WantVersion = max(svc.lastAll, svc.lastFor[r.PodNumber])
	return out
}

func (s *Server) listReplicas(w http.ResponseWriter, r *http.Request, _ *Identity) {
	s.mu.Lock()
	svc := s.lookup(w, r)
	if svc == nil {
		s.mu.Unlock()
		return
	}
	out := make([]configurator.ReplicaInfo, 0, len(svc.replicas))
	for _, rep := range svc.replicas {
		out = append(out, svc.info(rep))
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].PodNumber < out[j].PodNumber })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getReplica(w http.ResponseWriter, r *http.Request, _ *Identity) {
	n, err := strconv.Atoi(r.PathValue("number"))
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("pod number %q must be a non-negative integer", r.PathValue("number")))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.lookup(w, r)
	if svc == nil {
		return
	}
	rep, ok := svc.replicas[n]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("service %s has no replica with pod number %d", r.PathValue("service"), n))
		return
	}
	writeJSON(w, http.StatusOK, svc.info(rep))
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request, _ *Identity) {
	s.mu.Lock()
	svc := s.lookup(w, r)
	if svc == nil {
		s.mu.Unlock()
		return
	}
	snap := cloneSnapshot(svc.snapshot)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, snap)
}

// rollout answers whether every healthy replica applied what is meant for it.
func (s *Server) rollout(w http.ResponseWriter, r *http.Request, _ *Identity) {
	s.mu.Lock()
	svc := s.lookup(w, r)
	if svc == nil {
		s.mu.Unlock()
		return
	}
	st := configurator.RolloutStatus{Service: svc.snapshot.Service, Epoch: svc.snapshot.Epoch, Version: svc.snapshot.Version, Replicas: len(svc.replicas), Stragglers: []configurator.ReplicaInfo{}}
	for _, rep := range svc.replicas {
		info := svc.info(rep)
		healthy := info.State == configurator.StateHealthy
		if healthy {
			st.Healthy++
		}
		if healthy && info.Current(st.Epoch) {
			st.Current++
		} else {
			st.Stragglers = append(st.Stragglers, info)
		}
	}
	s.mu.Unlock()
	sort.Slice(st.Stragglers, func(i, j int) bool { return st.Stragglers[i].PodNumber < st.Stragglers[j].PodNumber })
	writeJSON(w, http.StatusOK, st)
}

func isUnroutable(err error) bool { return errors.Is(err, broker.ErrUnroutable) }
