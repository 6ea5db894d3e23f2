package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/lease"
	"github.com/switchyard-sched/switchyard/pkg/probes"
	"github.com/switchyard-sched/switchyard/pkg/secureserving"
)

// Config wires a configurator for Serve.
type Config struct {
	Client kubernetes.Interface
	// Namespace holds the configuration ConfigMaps.
	Namespace string
	// AMQPURL broadcasts through RabbitMQ; empty: HTTP push.
	AMQPURL string
	// Exchange is the topic exchange of changes; switchyard.config when empty.
	Exchange string
	// Security authenticates and authorizes every request; the zero value
	// reviews tokens for the audience switchyard-configurator and asks
	// SubjectAccessReview, both through Client.
	Security Security
	// Listener serves the API.
	Listener net.Listener
	// TLSCertFile and TLSKeyFile are the serving certificate and key (PEM);
	// both empty serves plain HTTP, which only InsecureHTTP allows.
	TLSCertFile, TLSKeyFile string
	// InsecureHTTP serves without TLS: bearer tokens then cross the
	// network in the clear. For a local demo only.
	InsecureHTTP bool
	// Registry receives the metrics; a new one when nil.
	Registry *prometheus.Registry
	Options  Options
	// LeaderElection, when set, runs this configurator as one of several.
	LeaderElection *LeaderElection
}

// Serve runs the configurator until ctx ends.
func Serve(ctx context.Context, cfg Config) error {
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return errors.New("set both the TLS certificate and key files, or neither")
	}
	if cfg.TLSCertFile == "" && !cfg.InsecureHTTP {
		return errors.New("the configurator serves TLS: give it a certificate and key (or, for a local demo only, allow plain HTTP)")
	}
	logger := klog.FromContext(ctx).WithName("configurator")
	ctx = klog.NewContext(ctx, logger)
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	var broadcaster Broadcaster = &HTTPBroadcaster{Client: &http.Client{Timeout: 2 * time.Second}, Retries: 3, Backoff: 100 * time.Millisecond}
	if cfg.AMQPURL != "" {
		exchange := cfg.Exchange
		if exchange == "" {
			exchange = "switchyard.config"
		}
		dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		b, err := broker.DialAMQP(dialCtx, broker.AMQPOptions{URL: cfg.AMQPURL, Name: "switchyard-configurator", Metrics: broker.NewMetrics(reg)})
		cancel()
		if err != nil {
			return err
		}
		defer func() { _ = b.Close() }()
		if broadcaster, err = NewAMQPBroadcaster(ctx, b, exchange); err != nil {
			return err
		}
	}
	sec := cfg.Security
	if sec.Authenticator == nil {
		sec.Authenticator = NewTokenReview(cfg.Client)
	}
	if sec.Authorizer == nil {
		sec.Authorizer = NewSubjectAccessReview(cfg.Client)
	}
	if sec.Pods == nil {
		sec.Pods = cfg.Client
	}
	store := NewStore(cfg.Client, cfg.Namespace)
	// The API is served by the active configurator: this one at once, or,
	// with leader election, this one while it holds the lease. Until then
	// the API answers 503 and /readyz says not ready, so a Service sends
	// every call to the leader.
	var active atomic.Pointer[Server]
	api := probes.NewMux(probes.Options{Ready: func() bool { return active.Load() != nil }, NotReady: "not the leader"})
	// /metrics as kube-scheduler serves it: to a token the API server
	// accepts, allowed to get the non-resource URL /metrics.
	metrics, err := secureserving.Authorize(cfg.Client, probes.MetricsHandler(reg))
	if err != nil {
		return err
	}
	api.Handle("/metrics", metrics)
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		srv := active.Load()
		if srv == nil {
			writeError(w, http.StatusServiceUnavailable, "this switchyard-configurator replica is not the leader (it only stands by): call the switchyard-configurator Service, which routes to the ready leader, and retry")
			return
		}
		srv.Handler().ServeHTTP(w, r)
	})
	httpServer := probes.HTTPServer(api)
	serveErr := make(chan error, 1)
	go func() {
		if cfg.TLSCertFile == "" {
			logger.Info("Serving plain HTTP: bearer tokens cross the network in the clear (--insecure-http)")
			serveErr <- httpServer.Serve(cfg.Listener)
		} else {
			serveErr <- httpServer.ServeTLS(cfg.Listener, cfg.TLSCertFile, cfg.TLSKeyFile)
		}
	}()
	logger.Info("Configurator serving", "address", cfg.Listener.Addr().String(), "tls", cfg.TLSCertFile != "", "broker", cfg.AMQPURL != "", "leaderElection", cfg.LeaderElection != nil)
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	lead := func(ctx context.Context) {
		// Everything from the store, now: a new leader starts from the last
		// value every write stored before it answered.
		srv, err := New(ctx, store, broadcaster, sec, reg, cfg.Options)
		if err != nil {
			stop(err)
			return
		}
		active.Store(srv)
		srv.Run(ctx)
	}
	if le := cfg.LeaderElection; le != nil {
		go func() { stop(le.run(runCtx, cfg.Client, cfg.Namespace, lead, func() { active.Store(nil) })) }()
	} else {
		go func() { lead(runCtx); stop(nil) }()
	}
	var runErr error
	select {
	case <-runCtx.Done():
		if cause := context.Cause(runCtx); !errors.Is(cause, context.Canceled) {
			runErr = cause
		}
	case runErr = <-serveErr:
	}
	stop(nil)
	active.Store(nil)
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = httpServer.Shutdown(shutdown)
	if runErr != nil && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	return nil
}

// LeaderElection makes a configurator one of several replicas: only the
// holder of the Lease serves (registry, health checks, writes, reads); the
// others stand by, not ready, and take over when the lease expires. The
// registry is rebuilt as replicas register again (their heartbeat finds
// themselves unknown), keeping their pod numbers; values are in ConfigMaps.
type LeaderElection struct {
	// Identity names this configurator in the Lease (its pod name).
	Identity string
	// LeaseName is the Lease in the configurator's namespace;
	// switchyard-configurator when empty.
	LeaseName string
	// LeaseDuration, RenewDeadline and RetryPeriod as in client-go; 15s,
	// 10s and 2s when zero.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// errLostLease ends a configurator that lost its lease: it restarts as a
// standby rather than serve with a registry it no longer owns.
var errLostLease = errors.New("lost the configurator lease")

func (le *LeaderElection) run(ctx context.Context, client kubernetes.Interface, namespace string, lead func(context.Context), standBy func()) error {
	name := le.LeaseName
	if name == "" {
		name = "switchyard-configurator"
	}
	err := lease.Run(ctx, client, lease.Config{Namespace: namespace, Name: name, Identity: le.Identity,
		LeaseDuration: le.LeaseDuration, RenewDeadline: le.RenewDeadline, RetryPeriod: le.RetryPeriod, OnStoppedLeading: standBy}, lead)
	if errors.Is(err, lease.ErrLost) {
		return errLostLease
	}
	return err
}
