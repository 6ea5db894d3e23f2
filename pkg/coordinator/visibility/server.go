// Package visibility serves Switchyard's visibility API
// (visibility.switchyard.io/v1alpha1) behind the API server's aggregation
// layer, on a secure port (package secureserving) that trusts the front
// proxy and bearer tokens and authorizes every request by
// SubjectAccessReview. The same port serves the coordinator's /metrics
// (and /debug/pprof), authorized as non-resource URLs.
package visibility

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	visibility "github.com/switchyard-sched/switchyard/pkg/apis/visibility/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/secureserving"
)

// Source answers the two questions the API asks: the admission
// controller of the replica that leads.
type Source interface {
	// PendingInQueue lists a queue's pending pods in order, at most limit
	// (0: all); found is false when the queue is unknown.
	PendingInQueue(queue string, limit int) (pods []visibility.PendingPod, found bool)
	// PendingInNamespace lists a namespace's pending pods in every queue.
	PendingInNamespace(namespace string, limit int) []visibility.PendingPod
}

// Options configure the server.
type Options struct {
	// Address to listen on, e.g. ":8443".
	Address string
	// CertFile and KeyFile are the serving certificate, reloaded when they
	// change. Both empty: a self-signed certificate for ServerName (good for
	// an APIService with insecureSkipTLSVerify only, as in a demo).
	CertFile, KeyFile string
	// ServerName is the self-signed certificate's DNS name.
	ServerName string
	// Registry, when set, is served at /metrics behind the same
	// authentication and authorization (get on the non-resource URL
	// /metrics), as kube-scheduler serves its metrics on its secure port.
	Registry *prometheus.Registry
	// Profiling serves /debug/pprof the same way (get on /debug/pprof/*).
	Profiling bool
}

// Server is the visibility API server.
type Server struct {
	source atomic.Pointer[sourceHolder]
	secure *secureserving.Server
}

type sourceHolder struct{ Source }

// New builds the server: its routes, /metrics and /debug/pprof when
// asked, behind secureserving's authentication and authorization through
// client.
func New(ctx context.Context, client kubernetes.Interface, opts Options) (*Server, error) {
	s := &Server{}
	mux := http.NewServeMux()
	if opts.Registry != nil {
		mux = secureserving.MetricsMux(opts.Registry, opts.Profiling)
	}
	mux.HandleFunc("/", s.serveAPI)
	secure, err := secureserving.New(ctx, client, secureserving.Options{Name: "visibility", Address: opts.Address,
		CertFile: opts.CertFile, KeyFile: opts.KeyFile, ServerName: opts.ServerName, FrontProxy: true}, mux)
	if err != nil {
		return nil, fmt.Errorf("visibility: %w", err)
	}
	s.secure = secure
	return s, nil
}

// SetSource makes source answer requests; nil (a replica that does not
// lead, or has not synced) answers 503.
func (s *Server) SetSource(source Source) {
	if source == nil {
		s.source.Store(nil)
		return
	}
	s.source.Store(&sourceHolder{source})
}

// Start serves in the background; stop ends it and waits until the port
// is closed.
func (s *Server) Start(ctx context.Context) (stop func()) {
	return s.secure.Start(ctx)
}

// groupVersion is the path prefix of every resource.
const groupVersion = "/apis/" + visibility.GroupName + "/" + visibility.Version

// serveAPI routes an authenticated, authorized request.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, "the visibility API is read-only: only GET is served")
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch path {
	case "/apis":
		writeJSON(w, http.StatusOK, groupList())
		return
	case "/apis/" + visibility.GroupName:
		writeJSON(w, http.StatusOK, apiGroup())
		return
	case groupVersion:
		writeJSON(w, http.StatusOK, resourceList())
		return
	}
	rest, ok := strings.CutPrefix(path, groupVersion+"/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 3 || parts[1] == "" || parts[2] != visibility.PendingPodsSubresource ||
		(parts[0] != visibility.QueuesResource && parts[0] != "namespaces") {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf(
			"%s is not served: ask for %s/queues/QUEUE/pendingpods or %s/namespaces/NAMESPACE/pendingpods", r.URL.Path, groupVersion, groupVersion))
		return
	}
	limit, err := parseLimit(r.URL.Query().Get("limit"))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	holder := s.source.Load()
	if holder == nil {
		writeStatus(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable,
			"this coordinator replica does not lead (or has not synced its caches): ask again in a moment")
		return
	}
	list := &visibility.PendingPodList{TypeMeta: metav1.TypeMeta{APIVersion: visibility.GroupName + "/" + visibility.Version, Kind: visibility.PendingPodListKind}}
	if parts[0] == "namespaces" {
		list.Items = holder.PendingInNamespace(parts[1], limit)
	} else {
		pods, found := holder.PendingInQueue(parts[1], limit)
		if !found {
			// Details name the queue, so that a client tells this answer
			// from the API server's own 404 (the group not registered).
			writeJSON(w, http.StatusNotFound, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
				Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound,
				Details: &metav1.StatusDetails{Group: visibility.GroupName, Kind: visibility.QueuesResource, Name: parts[1]},
				Message: fmt.Sprintf("queue %q has no pending pods and no Queue object: list the queues with kubectl get queues.switchyard.io", parts[1])})
			return
		}
		list.Items = pods
	}
	if list.Items == nil {
		list.Items = []visibility.PendingPod{}
	}
	writeJSON(w, http.StatusOK, list)
}

// parseLimit reads ?limit=: visibility.DefaultLimit when empty, 1..visibility.MaxLimit.
func parseLimit(value string) (int, error) {
	if value == "" {
		return visibility.DefaultLimit, nil
	}
	n, err := strconv.Atoi(value)
	if err != nil || n < 1 || n > visibility.MaxLimit {
		return 0, fmt.Errorf("limit=%q: want a whole number from 1 to %d", value, visibility.MaxLimit)
	}
	return n, nil
}

func groupVersionDiscovery() metav1.GroupVersionForDiscovery {
	return metav1.GroupVersionForDiscovery{GroupVersion: visibility.GroupName + "/" + visibility.Version, Version: visibility.Version}
}

func apiGroup() *metav1.APIGroup {
	gv := groupVersionDiscovery()
	return &metav1.APIGroup{TypeMeta: metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"},
		Name: visibility.GroupName, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}
}

func groupList() *metav1.APIGroupList {
	return &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{*apiGroup()}}
}

func resourceList() *metav1.APIResourceList {
	return &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: visibility.GroupName + "/" + visibility.Version,
		APIResources: []metav1.APIResource{
			{Name: visibility.PendingPodsResource, Namespaced: true, Kind: visibility.PendingPodListKind, Verbs: metav1.Verbs{"list"}},
			{Name: visibility.QueuesResource + "/" + visibility.PendingPodsSubresource, Kind: visibility.PendingPodListKind, Verbs: metav1.Verbs{"get"}},
		},
	}
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, message string) {
	writeJSON(w, code, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Code: int32(code), Reason: reason, Message: message})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
