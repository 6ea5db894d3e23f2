package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/serviceaccount"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
)

// register numbers a replica of a service, as the pod its token is bound
// to, and answers with its configuration and push key.
func (s *Server) register(w http.ResponseWriter, r *http.Request, id *Identity) {
	var req configurator.RegisterRequest
	if err := decode(r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
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
	if !s.authorize(w, r, id, v1alpha1.RegisterVerb, req.Service) { // checks the service name too
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
	svc := s.serviceFor(w, req.Service)
	if svc == nil {
		s.mu.Unlock()
		return
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

// serviceFor is the named service, added empty when it is new; nil, with
// 409 answered, when the configurator keeps as many as it may. Callers hold
// s.mu.
func (s *Server) serviceFor(w http.ResponseWriter, name string) *service {
	if svc, ok := s.services[name]; ok {
		return svc
	}
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
	ips := []string{}
	for _, p := range pod.Status.PodIPs {
		ips = append(ips, p.IP)
	}
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = append(ips, pod.Status.PodIP)
	}
	if ip := net.ParseIP(host); ip != nil && slices.ContainsFunc(ips, func(p string) bool { return net.ParseIP(p).Equal(ip) }) {
		return pod, 0, nil
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
	s.metrics.behind.Reset()
	for name, svc := range s.services {
		counts := map[string]int{configurator.StateHealthy: 0, configurator.StatePruned: 0}
		behind := 0
		for _, r := range svc.replicas {
			counts[r.State]++
			if r.State == configurator.StateHealthy && !svc.info(r).Current(svc.snapshot.Epoch) {
				behind++
			}
		}
		for state, n := range counts {
			s.metrics.replicas.WithLabelValues(name, state).Set(float64(n))
		}
		s.metrics.behind.WithLabelValues(name).Set(float64(behind))
	}
}
