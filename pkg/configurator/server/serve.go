package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/probes"
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
	srv, err := New(ctx, NewStore(cfg.Client, cfg.Namespace), broadcaster, sec, reg, cfg.Options)
	if err != nil {
		return err
	}
	httpServer := probes.HTTPServer(srv.Handler(reg))
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = httpServer.Shutdown(shutdown)
	}()
	logger.Info("Configurator serving", "address", cfg.Listener.Addr().String(), "tls", cfg.TLSCertFile != "", "broker", cfg.AMQPURL != "")
	go srv.Run(ctx)
	if cfg.TLSCertFile == "" {
		logger.Info("Serving plain HTTP: bearer tokens cross the network in the clear (--insecure-http)")
		err = httpServer.Serve(cfg.Listener)
	} else {
		err = httpServer.ServeTLS(cfg.Listener, cfg.TLSCertFile, cfg.TLSKeyFile)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
