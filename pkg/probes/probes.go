// Package probes serves what every Switchyard component exposes to the
// kubelet and to Prometheus: /healthz and /livez (the process answers),
// /readyz (the component says it is ready), /metrics, and optionally
// /debug/pprof. Components add their own endpoints to the same mux, or
// serve /metrics and /debug/pprof behind authentication on their own.
package probes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
)

// Server is a started probe server.
type Server struct {
	// Mux takes the component's extra endpoints.
	Mux *http.ServeMux
	srv *http.Server
}

// Options of a probe server.
type Options struct {
	// Addr to listen on, e.g. ":8080".
	Addr string
	// Registry served at /metrics; nil: no /metrics here (a component that
	// serves it behind authentication elsewhere).
	Registry *prometheus.Registry
	// Ready is what /readyz reports; always ready when nil.
	Ready func() bool
	// NotReady is /readyz's message while not ready.
	NotReady string
	// Profiling serves /debug/pprof.
	Profiling bool
}

// NewMux serves /healthz, /livez, /readyz and /metrics (and /debug/pprof
// when asked), for components that run their own server (a TLS one, say);
// they add their endpoints to it.
func NewMux(o Options) *http.ServeMux {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }
	mux.HandleFunc("/healthz", ok)
	mux.HandleFunc("/livez", ok)
	notReady := o.NotReady
	if notReady == "" {
		notReady = "not ready"
	}
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if o.Ready != nil && !o.Ready() {
			http.Error(w, notReady, http.StatusServiceUnavailable)
			return
		}
		ok(w, r)
	})
	if o.Registry != nil {
		mux.Handle("/metrics", MetricsHandler(o.Registry))
	}
	if o.Profiling {
		HandleProfiling(mux)
	}
	return mux
}

// MetricsHandler serves reg in the Prometheus text format.
func MetricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// HandleProfiling serves /debug/pprof on mux.
func HandleProfiling(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// Start listens (an address in use is an error now, not later) and serves
// until Close.
func Start(ctx context.Context, o Options) (*Server, error) {
	s := &Server{Mux: NewMux(o)}
	l, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("serving health and metrics: %w", err)
	}
	s.srv = HTTPServer(s.Mux)
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.FromContext(ctx).Error(err, "Health and metrics server stopped")
		}
	}()
	return s, nil
}

// HTTPServer serves h with every timeout set, so a client that sends its
// headers or body a byte a second, or never reads the answer, cannot hold a
// connection (and a goroutine) for long.
func HTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// Close stops serving.
func (s *Server) Close() error { return s.srv.Close() }
