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
	"maps"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
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

	handlerOnce sync.Once
	handler     http.Handler
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
func (s *Server) Handler() http.Handler {
	s.handlerOnce.Do(func() { s.handler = s.newHandler() })
	return s.handler
}

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

func (s *Server) register(w http.ResponseWriter, r *http.Request, id *Identity) {
	var req configurator.RegisterRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !serviceName.MatchString(req.Service) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("service %q must be a DNS label of at most 52 characters", req.Service))
		return
	}
	u, err := url.Parse(req.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || (u.Path != "" && u.Path != "/") {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("address %q must be an http(s) URL of the pod's IP and port, e.g. http://10.0.0.7:8080", req.Address))
		return
	}
	if req.HealthPath == "" {
		req.HealthPath = configurator.DefaultHealthPath
	}
	if !isPath(req.HealthPath) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("healthPath %q must be an absolute path", req.HealthPath))
		return
	}
	if !s.authorize(w, r, id, v1alpha1.RegisterVerb, req.Service) {
		return
	}
	pod, status, err := s.replicaPod(r.Context(), id, req, u.Hostname())
	if err != nil {
		reason := "identity"
		if status == http.StatusServiceUnavailable {
			reason = "unavailable"
		}
		s.refuse(w, status, reason, err.Error())
		return
	}
	address := u.Scheme + "://" + u.Host
	s.mu.Lock()
	svc, known := s.services[req.Service]
	if !known {
		if svc = s.newService(w, req.Service); svc == nil {
			s.mu.Unlock()
			return
		}
	}
	number, ok := s.number(svc, pod, req.PreviousPodNumber)
	if !ok {
		s.mu.Unlock()
		s.refuse(w, http.StatusConflict, "limit", fmt.Sprintf("service %s has %d replicas, the most this configurator numbers (--max-replicas)", req.Service, s.opts.MaxPodNumber))
		return
	}
	pushKey, err := configurator.NewPushKey()
	if err != nil {
		s.mu.Unlock()
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	svc.replicas[number] = &replica{
		ReplicaInfo: configurator.ReplicaInfo{PodNumber: number, Namespace: pod.Namespace, Pod: pod.Name, Address: address,
			State: configurator.StateHealthy, LastSeen: time.Now(), AppliedEpoch: svc.snapshot.Epoch, AppliedVersion: svc.snapshot.Version},
		uid:        string(pod.UID),
		healthPath: req.HealthPath,
		pushKey:    pushKey,
	}
	resp := configurator.RegisterResponse{PodNumber: number, Namespace: pod.Namespace, Pod: pod.Name, Snapshot: cloneSnapshot(svc.snapshot),
		PushKey: pushKey}
	s.mu.Unlock()
	resp.AMQPExchange, resp.RoutingKeys = s.broadcaster.Describe(req.Service, number)
	s.metrics.registrations.WithLabelValues(req.Service).Inc()
	klog.FromContext(r.Context()).V(2).Info("Replica registered", "service", req.Service, "pod", klog.KObj(pod), "podNumber", number, "address", address)
	writeJSON(w, http.StatusOK, resp)
}

// newService adds an empty service, or answers 409 itself when the
// configurator keeps as many as it may. Callers hold s.mu.
func (s *Server) newService(w http.ResponseWriter, name string) *service {
	if len(s.services) >= s.opts.MaxServices {
		s.refuse(w, http.StatusConflict, "limit", fmt.Sprintf("the configurator keeps %d services, the most it may (--max-services); service %s is not one of them", s.opts.MaxServices, name))
		return nil
	}
	svc := newService(configurator.Snapshot{Service: name})
	s.services[name] = svc
	return svc
}

func isPath(p string) bool {
	u, err := url.Parse(p)
	return err == nil && u.Scheme == "" && u.Host == "" && len(p) > 0 && p[0] == '/' && len(p) < 256
}

// replicaPod is the pod a registration is for: the one the token is bound
// to, alive, and reachable at the address's host. The status to answer
// with comes with an error.
func (s *Server) replicaPod(ctx context.Context, id *Identity, req configurator.RegisterRequest, host string) (*corev1.Pod, int, error) {
	namespace, account, err := serviceaccount.SplitUsername(id.User)
	if err != nil {
		return nil, http.StatusForbidden, fmt.Errorf("%s is not a service account: a replica registers with its pod's service account token (a projected token for the audience %s)", id.User, v1alpha1.ConfiguratorAudience)
	}
	name, uid := first(id.Extra[serviceaccount.PodNameKey]), first(id.Extra[serviceaccount.PodUIDKey])
	if name == "" || uid == "" {
		return nil, http.StatusForbidden, fmt.Errorf("the token of %s is not bound to a pod: register with the pod's projected service account token (audience %s), so the configurator knows which pod you are", id.User, v1alpha1.ConfiguratorAudience)
	}
	if req.Pod != "" && req.Pod != name {
		return nil, http.StatusForbidden, fmt.Errorf("the token is bound to pod %s/%s; a replica may register only as its own pod, not as %q", namespace, name, req.Pod)
	}
	pod, err := s.security.Pods.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, http.StatusForbidden, fmt.Errorf("pod %s/%s, which the token is bound to, does not exist", namespace, name)
	}
	if err != nil {
		return nil, http.StatusServiceUnavailable, fmt.Errorf("looking up pod %s/%s: %w", namespace, name, err)
	}
	switch {
	case string(pod.UID) != uid:
		return nil, http.StatusForbidden, fmt.Errorf("the token is bound to an earlier pod named %s/%s (uid %s, now %s)", namespace, name, uid, pod.UID)
	case pod.Spec.ServiceAccountName != account:
		return nil, http.StatusForbidden, fmt.Errorf("pod %s/%s runs as service account %s, not %s", namespace, name, pod.Spec.ServiceAccountName, account)
	case pod.DeletionTimestamp != nil:
		return nil, http.StatusForbidden, fmt.Errorf("pod %s/%s is terminating", namespace, name)
	}
	ip := net.ParseIP(host)
	var ips []string
	for _, p := range pod.Status.PodIPs {
		ips = append(ips, p.IP)
		if ip != nil && net.ParseIP(p.IP).Equal(ip) {
			return pod, 0, nil
		}
	}
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = append(ips, pod.Status.PodIP)
		if ip != nil && net.ParseIP(pod.Status.PodIP).Equal(ip) {
			return pod, 0, nil
		}
	}
	return nil, http.StatusForbidden, fmt.Errorf("address host %q is not an IP of pod %s/%s (its IPs: %v): the configurator calls only the pod that registers", host, namespace, name, ips)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// number picks the replica's pod number: its own when the same pod (by
// namespace and name) registers again, the previous one when free, else the
// smallest free one. Callers hold s.mu.
func (s *Server) number(svc *service, pod *corev1.Pod, previous *int) (int, bool) {
	for n, r := range svc.replicas {
		if r.Namespace == pod.Namespace && r.Pod == pod.Name {
			return n, true
		}
	}
	if p := previous; p != nil && *p >= 0 && *p < s.opts.MaxPodNumber {
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
	if !known {
		if svc = s.newService(w, name); svc == nil {
			s.mu.Unlock()
			return
		}
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
	svc, known := s.services[name]
	if !known {
		if svc = s.newService(w, name); svc == nil {
			s.mu.Unlock()
			return
		}
	}
	s.mu.Unlock()
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

// observe records what a replica says it applied, from a health check or
// a push's answer. Callers hold s.mu.
func (s *Server) observe(svc *service, r *replica, h configurator.Health) {
	if h.Epoch == r.AppliedEpoch && h.AppliedVersion <= r.AppliedVersion {
		return
	}
	if sent, ok := svc.sent[h.AppliedVersion]; ok && h.Epoch == svc.snapshot.Epoch {
		s.metrics.deliverySeconds.Observe(time.Since(sent).Seconds())
	}
	r.AppliedEpoch, r.AppliedVersion = h.Epoch, h.AppliedVersion
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
	uid     string
	url     string
}

func (s *Server) checkAll(ctx context.Context) {
	s.mu.Lock()
	var targets []checkTarget
	for name, svc := range s.services {
		for n, r := range svc.replicas {
			targets = append(targets, checkTarget{service: name, number: n, uid: r.uid, url: r.Address + r.healthPath})
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
			health, err := s.check(ctx, t)
			s.record(ctx, t, health, err)
		}(t)
	}
	wg.Wait()
	s.updateGauges()
}

func (s *Server) check(ctx context.Context, t checkTarget) (configurator.Health, error) {
	var h configurator.Health
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
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
	if h.Service != t.service || h.PodNumber != t.number {
		return h, fmt.Errorf("health endpoint answers for %s pod number %d, not %s pod number %d", h.Service, h.PodNumber, t.service, t.number)
	}
	return h, nil
}

// record applies one check's outcome: healthy, pruned, or removed. A
// service left with no replica and no configuration is forgotten.
func (s *Server) record(ctx context.Context, t checkTarget, h configurator.Health, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[t.service]
	if svc == nil {
		return
	}
	r := svc.replicas[t.number]
	if r == nil || r.uid != t.uid {
		return // removed or renumbered meanwhile
	}
	logger := klog.FromContext(ctx)
	if err != nil {
		r.Failures++
		s.metrics.checkFailures.WithLabelValues(t.service).Inc()
		if r.Failures >= s.opts.RemoveAfter {
			delete(svc.replicas, t.number)
			delete(svc.lastFor, t.number)
			logger.Info("Replica removed after failed health checks", "service", t.service, "pod", klog.KRef(r.Namespace, r.Pod), "podNumber", t.number, "failures", r.Failures, "err", err)
			if len(svc.replicas) == 0 && svc.snapshot.Version == 0 {
				delete(s.services, t.service)
				logger.V(2).Info("Service forgotten: no replica and no configuration", "service", t.service)
			}
			return
		}
		if r.State != configurator.StatePruned {
			logger.Info("Replica pruned: no longer targeted", "service", t.service, "pod", klog.KRef(r.Namespace, r.Pod), "podNumber", t.number, "err", err)
		}
		r.State = configurator.StatePruned
		return
	}
	if r.State == configurator.StatePruned {
		logger.Info("Replica healthy again", "service", t.service, "pod", klog.KRef(r.Namespace, r.Pod), "podNumber", t.number)
	}
	r.State, r.Failures, r.LastSeen = configurator.StateHealthy, 0, time.Now()
	s.observe(svc, r, h)
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
