// Package secureserving serves a component's endpoints the way
// kube-scheduler serves its secure port and extension API servers serve
// theirs: TLS (a certificate reloaded from files, or self-signed), every
// caller authenticated (a bearer token by TokenReview, or, when asked, the
// API server's front proxy by its client certificate, its CA and header
// names read live from kube-system/extension-apiserver-authentication) and
// every request authorized by SubjectAccessReview: resource requests as
// themselves, other paths as non-resource URLs (get /metrics). Nothing is
// served to an anonymous caller: the kubelet's probes belong on a plain
// port of their own.
package secureserving

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

	"github.com/switchyard-sched/switchyard/pkg/probes"
)

// Options of a secure server.
type Options struct {
	// Name names the server in logs and controller names, e.g. "visibility".
	Name string
	// Address to listen on, e.g. ":8443".
	Address string
	// CertFile and KeyFile are the serving certificate, reloaded when they
	// change. Both empty: a self-signed certificate for ServerName (for
	// clients that skip verification, as Prometheus does for
	// kube-scheduler's self-signed one).
	CertFile, KeyFile string
	// ServerName is the self-signed certificate's DNS name; localhost when
	// empty.
	ServerName string
	// FrontProxy trusts the API server's aggregation layer: a client
	// certificate signed by the front proxy's CA, with the caller's
	// identity in its headers. Needs read access to the ConfigMap (the
	// extension-apiserver-authentication-reader Role).
	FrontProxy bool
}

// authenticationConfigMap is where the API server publishes the front
// proxy's CA and header names for extension API servers.
const (
	authenticationConfigMapNamespace = metav1.NamespaceSystem
	authenticationConfigMapName      = "extension-apiserver-authentication"
)

// Server serves a handler over TLS to authenticated, authorized callers.
type Server struct {
	opts    Options
	handler http.Handler
	tls     *tls.Config
	runners []func(context.Context)
}

// New builds the server around handler: the serving certificate, the
// authenticators (TokenReview; the front proxy when asked) and the
// SubjectAccessReview authorizer, all through client.
func New(ctx context.Context, client kubernetes.Interface, opts Options, handler http.Handler) (*Server, error) {
	if opts.Name == "" {
		opts.Name = "secure"
	}
	s := &Server{opts: opts}

	var serving dynamiccertificates.CertKeyContentProvider
	switch {
	case opts.CertFile != "" && opts.KeyFile != "":
		files, err := dynamiccertificates.NewDynamicServingContentFromFiles(opts.Name+"-serving-cert", opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading the %s serving certificate: %w", opts.Name, err)
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
		if serving, err = dynamiccertificates.NewStaticCertKeyContent(opts.Name+"-self-signed", cert, key); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%s: set both the certificate and the key file, or neither", opts.Name)
	}

	var requestHeader *options.DynamicRequestHeaderController
	var clientCA dynamiccertificates.CAContentProvider
	if opts.FrontProxy {
		var err error
		if requestHeader, err = s.frontProxy(ctx, client); err != nil {
			return nil, err
		}
		clientCA = requestHeader
	}
	h, err := guard(client, requestHeader, handler)
	if err != nil {
		return nil, err
	}
	s.handler = h

	// A front proxy authenticates with a client certificate: ask for one
	// (the request-header authenticator verifies it against the ConfigMap's
	// CA), without refusing clients that bring a bearer token instead.
	base := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if clientCA != nil {
		base.ClientAuth = tls.RequestClientCert
	}
	certs := dynamiccertificates.NewDynamicServingCertificateController(base, clientCA, serving, nil, nil)
	if requestHeader != nil {
		requestHeader.AddListener(certs)
	}
	if files, ok := serving.(*dynamiccertificates.DynamicCertKeyPairContent); ok {
		files.AddListener(certs)
	}
	if err := certs.RunOnce(); err != nil {
		return nil, fmt.Errorf("building the %s TLS configuration: %w", opts.Name, err)
	}
	s.runners = append(s.runners, func(ctx context.Context) { certs.Run(1, ctx.Done()) })
	s.tls = &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}, GetConfigForClient: certs.GetConfigForClient}
	return s, nil
}

// Authorize wraps handler so that it serves only callers whose bearer
// token the API server accepts (TokenReview) and who may do the request
// (SubjectAccessReview: get on the non-resource URL for a path like
// /metrics); 401 and 403 otherwise, as a metav1.Status. For a component
// that runs its own TLS server.
func Authorize(client kubernetes.Interface, handler http.Handler) (http.Handler, error) {
	return guard(client, nil, handler)
}

// guard is the filter chain of the generic API server around handler:
// authentication (the front proxy's, when requestHeader is set, then
// TokenReview), authorization by SubjectAccessReview, request info, no
// caching, panic recovery.
func guard(client kubernetes.Interface, requestHeader *options.DynamicRequestHeaderController, handler http.Handler) (http.Handler, error) {
	backoff := options.DefaultAuthWebhookRetryBackoff()
	authnConfig := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                &apiserver.AnonymousAuthConfig{Enabled: false},
		TokenAccessReviewClient:  client.AuthenticationV1(),
		TokenAccessReviewTimeout: 10 * time.Second,
		WebhookRetryBackoff:      backoff,
		CacheTTL:                 10 * time.Second,
	}
	if requestHeader != nil {
		authnConfig.RequestHeaderConfig = &authenticatorfactory.RequestHeaderConfig{
			CAContentProvider:   requestHeader,
			UsernameHeaders:     headerrequest.StringSliceProviderFunc(requestHeader.UsernameHeaders),
			UIDHeaders:          headerrequest.StringSliceProviderFunc(requestHeader.UIDHeaders),
			GroupHeaders:        headerrequest.StringSliceProviderFunc(requestHeader.GroupHeaders),
			ExtraHeaderPrefixes: headerrequest.StringSliceProviderFunc(requestHeader.ExtraHeaderPrefixes),
			AllowedClientNames:  headerrequest.StringSliceProviderFunc(requestHeader.AllowedClientNames),
		}
	}
	authn, _, err := authnConfig.New()
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
	h := genericfilters.WithAuthorization(handler, authz, codecs)
	h = genericfilters.WithAuthentication(h, authn, genericfilters.Unauthorized(codecs), nil, authnConfig.RequestHeaderConfig)
	h = genericfilters.WithRequestInfo(h, infoResolver)
	h = genericfilters.WithCacheControl(h)
	return serverfilters.WithPanicRecovery(h, infoResolver), nil
}

// frontProxy reads the front proxy's CA and header names from the
// ConfigMap, and keeps them up to date once Run starts.
func (s *Server) frontProxy(ctx context.Context, client kubernetes.Interface) (*options.DynamicRequestHeaderController, error) {
	ca, err := dynamiccertificates.NewDynamicCAFromConfigMapController("requestheader-client-ca",
		authenticationConfigMapNamespace, authenticationConfigMapName, "requestheader-client-ca-file", client)
	if err != nil {
		return nil, err
	}
	requestHeader := &options.DynamicRequestHeaderController{
		ConfigMapCAController: ca,
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
			"server", s.opts.Name, "configMap", authenticationConfigMapNamespace+"/"+authenticationConfigMapName, "err", err)
	}
	s.runners = append(s.runners, func(ctx context.Context) { requestHeader.Run(ctx, 1) })
	return requestHeader, nil
}

// Run serves until ctx ends, and returns once the port is closed.
func (s *Server) Run(ctx context.Context) error {
	listener, err := net.Listen("tcp", s.opts.Address)
	if err != nil {
		return fmt.Errorf("%s: %w", s.opts.Name, err)
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
	klog.FromContext(ctx).Info("Serving securely", "server", s.opts.Name, "address", listener.Addr().String(), "frontProxy", s.opts.FrontProxy)
	if err := srv.ServeTLS(listener, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// statusCodecs encode the filters' refusals as metav1.Status.
func statusCodecs() runtime.NegotiatedSerializer {
	scheme := runtime.NewScheme()
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	return serializer.NewCodecFactory(scheme).WithoutConversion()
}

// Start runs the server in the background, logging why it stopped if it
// did early; stop ends it and waits until its port is closed again.
func (s *Server) Start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "The secure port stopped", "server", s.opts.Name)
		}
	}()
	return func() { cancel(); <-done }
}

// MetricsMux serves reg at /metrics, and /debug/pprof when profiling, for
// a component's secure port.
func MetricsMux(reg *prometheus.Registry, profiling bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", probes.MetricsHandler(reg))
	if profiling {
		probes.HandleProfiling(mux)
	}
	return mux
}

// Serve builds a server around handler and starts it; stop ends it and
// waits until its port is closed.
func Serve(ctx context.Context, client kubernetes.Interface, opts Options, handler http.Handler) (stop func(), err error) {
	s, err := New(ctx, client, opts, handler)
	if err != nil {
		return nil, err
	}
	return s.Start(ctx), nil
}

// CertFlags are a binary's --tls-cert-file and --tls-private-key-file:
// the certificate of its secure port.
type CertFlags struct {
	CertFile, KeyFile string
}

// AddFlags registers the two flags on fs.
func (f *CertFlags) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.CertFile, "tls-cert-file", "", "serving certificate of the secure port, reloaded when it changes; empty (with --tls-private-key-file): self-signed")
	fs.StringVar(&f.KeyFile, "tls-private-key-file", "", "key of --tls-cert-file")
}

// Validate refuses one of the two flags without the other.
func (f CertFlags) Validate() error {
	if (f.CertFile == "") != (f.KeyFile == "") {
		return errors.New("set both --tls-cert-file and --tls-private-key-file, or neither")
	}
	return nil
}
