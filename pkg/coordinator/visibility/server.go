// Package visibility serves Switchyard's visibility API
// (visibility.switchyard.io/v1alpha1) behind the API server's aggregation
// layer, the way kube-scheduler and metrics-server serve their endpoints:
// TLS, callers authenticated by the front proxy's client certificate (the
// request-header CA and header names read live from
// kube-system/extension-apiserver-authentication) or by TokenReview, and
// every request authorized by SubjectAccessReview. Nothing is served to an
// anonymous caller. The same secure port serves the coordinator's /metrics
// (and /debug/pprof), authorized as non-resource URLs.
package visibility

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/request/headerrequest"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	genericfilters "k8s.io/apiserver/pkg/endpoints/filters"
	"k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	serverfilters "k8s.io/apiserver/pkg/server/filters"
	"k8s.io/apiserver/pkg/server/options"
	"k8s.io/client-go/kubernetes"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/klog/v2"

	visibility "github.com/switchyard-sched/switchyard/pkg/apis/visibility/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/probes"
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
	// Metrics, when set, is served at /metrics behind the same
	// authentication and authorization (get on the non-resource URL
	// /metrics), as kube-scheduler serves its metrics on its secure port.
	Metrics http.Handler
	// Profiling serves /debug/pprof the same way (get on /debug/pprof/*).
	Profiling bool
}

// authenticationConfigMap is where the API server publishes the front
// proxy's CA and header names for extension API servers.
const (
	authenticationConfigMapNamespace = metav1.NamespaceSystem
	authenticationConfigMapName      = "extension-apiserver-authentication"
)

// Server is the visibility API server.
type Server struct {
	opts   Options
	source atomic.Pointer[sourceHolder]
	// handler is the whole chain: filters around serveAPI.
	handler http.Handler
	tls     *tls.Config
	runners []func(context.Context)
}

type sourceHolder struct{ Source }

// New builds the server: its serving certificate, the request-header and
// TokenReview authenticators and the SubjectAccessReview authorizer, all
// delegated to the API server through client.
func New(ctx context.Context, client kubernetes.Interface, opts Options) (*Server, error) {
	s := &Server{opts: opts}

	var serving dynamiccertificates.CertKeyContentProvider
	switch {
	case opts.CertFile != "" && opts.KeyFile != "":
		files, err := dynamiccertificates.NewDynamicServingContentFromFiles("visibility-serving-cert", opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the visibility serving certificate: %w", err)
		}
		serving = files
		s.runners = append(s.runners, func(ctx context.Context) { files.Run(ctx, 1) })
	case opts.CertFile == "" && opts.KeyFile == "":
		name := opts.ServerName
		if name == "" {
			name = "localhost"
		}
		cert, key, err := certutil.GenerateSelfSignedCertKey(name, []net.IP{net.ParseIP("127.0.0.1")}, nil)
		if err != nil {
			return nil, err
		}
		if serving, err = dynamiccertificates.NewStaticCertKeyContent("visibility-self-signed", cert, key); err != nil {
			return nil, err
		}
	default:
		return nil, errors.New("visibility: set both the certificate and the key file, or neither")
	}

	requestHeaderCA, err := dynamiccertificates.NewDynamicCAFromConfigMapController("requestheader-client-ca",
		authenticationConfigMapNamespace, authenticationConfigMapName, "requestheader-client-ca-file", client)
	if err != nil {
		return nil, err
	}
	requestHeader := &options.DynamicRequestHeaderController{
		ConfigMapCAController: requestHeaderCA,
		RequestHeaderAuthRequestController: headerrequest.NewRequestHeaderAuthRequestController(
			authenticationConfigMapName, authenticationConfigMapNamespace, client,
			"requestheader-username-headers", "requestheader-uid-headers", "requestheader-group-headers",
			"requestheader-extra-headers-prefix", "requestheader-allowed-names"),
	}
	// A cluster whose API server has no front proxy configured still has
	// TokenReview; the request-header part then trusts nobody until the
	// ConfigMap says whom.
	if err := requestHeader.RunOnce(ctx); err != nil {
		klog.FromContext(ctx).Info("The front proxy's CA is not readable yet; only bearer tokens are accepted until it is",
			"configMap", authenticationConfigMapNamespace+"/"+authenticationConfigMapName, "err", err)
	}
	s.runners = append(s.runners, func(ctx context.Context) { requestHeader.Run(ctx, 1) })
	headerConfig := &authenticatorfactory.RequestHeaderConfig{
		CAContentProvider:   requestHeader,
		UsernameHeaders:     headerrequest.StringSliceProviderFunc(requestHeader.UsernameHeaders),
		UIDHeaders:          headerrequest.StringSliceProviderFunc(requestHeader.UIDHeaders),
		GroupHeaders:        headerrequest.StringSliceProviderFunc(requestHeader.GroupHeaders),
		ExtraHeaderPrefixes: headerrequest.StringSliceProviderFunc(requestHeader.ExtraHeaderPrefixes),
		AllowedClientNames:  headerrequest.StringSliceProviderFunc(requestHeader.AllowedClientNames),
	}
	backoff := options.DefaultAuthWebhookRetryBackoff()
	authn, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                &apiserver.AnonymousAuthConfig{Enabled: false},
		TokenAccessReviewClient:  client.AuthenticationV1(),
		TokenAccessReviewTimeout: 10 * time.Second,
		WebhookRetryBackoff:      backoff,
		CacheTTL:                 10 * time.Second,
		RequestHeaderConfig:      headerConfig,
	}.New()
	if err != nil {
		return nil, err
	}
	authz, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: client.AuthorizationV1(),
		AllowCacheTTL:             10 * time.Second,
		DenyCacheTTL:              10 * time.Second,
		WebhookRetryBackoff:       backoff,
	}.New()
	if err != nil {
		return nil, err
	}

	codecs := statusCodecs()
	infoResolver := &request.RequestInfoFactory{APIPrefixes: sets.NewString("api", "apis"), GrouplessAPIPrefixes: sets.NewString("api")}
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.serveAPI)
	if opts.Metrics != nil {
		mux.Handle("/metrics", opts.Metrics)
	}
	if opts.Profiling {
		probes.HandleProfiling(mux)
	}
	h := genericfilters.WithAuthorization(mux, authz, codecs)
	h = genericfilters.WithAuthentication(h, authn, genericfilters.Unauthorized(codecs), nil, headerConfig)
	h = genericfilters.WithRequestInfo(h, infoResolver)
	h = genericfilters.WithCacheControl(h)
	s.handler = serverfilters.WithPanicRecovery(h, infoResolver)

	// The front proxy authenticates with a client certificate: ask for one
	// (the request-header authenticator verifies it against the ConfigMap's
	// CA), without refusing clients that bring a bearer token instead.
	certs := dynamiccertificates.NewDynamicServingCertificateController(
		&tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, ClientAuth: tls.RequestClientCert},
		requestHeader, serving, nil, nil)
	requestHeader.AddListener(certs)
	if files, ok := serving.(*dynamiccertificates.DynamicCertKeyPairContent); ok {
		files.AddListener(certs)
	}
	if err := certs.RunOnce(); err != nil {
		return nil, fmt.Errorf("building the visibility TLS configuration: %w", err)
	}
	s.runners = append(s.runners, func(ctx context.Context) { certs.Run(1, ctx.Done()) })
	s.tls = &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, GetConfigForClient: certs.GetConfigForClient}
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

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	listener, err := net.Listen("tcp", s.opts.Address)
	if err != nil {
		return fmt.Errorf("visibility: %w", err)
	}
	for _, run := range s.runners {
		go run(ctx)
	}
	srv := probes.HTTPServer(s.handler)
	srv.TLSConfig = s.tls
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	klog.FromContext(ctx).Info("Serving the visibility API", "address", listener.Addr().String(), "group", visibility.GroupName)
	if err := srv.ServeTLS(listener, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
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

// statusCodecs encode the filters' refusals as metav1.Status.
func statusCodecs() runtime.NegotiatedSerializer {
	scheme := runtime.NewScheme()
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	return serializer.NewCodecFactory(scheme).WithoutConversion()
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
