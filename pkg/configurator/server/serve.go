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
	// Auth checks write requests.
	Auth Authenticator
	// Listener serves the API.
	Listener net.Listener
	// Registry receives the metrics; a new one when nil.
	Registry *prometheus.Registry
	Options  Options
}

// Serve runs the configurator until ctx ends.
func Serve(ctx context.Context, cfg Config) error {
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
	srv, err := New(ctx, NewStore(cfg.Client, cfg.Namespace), broadcaster, cfg.Auth, reg, cfg.Options)
	if err != nil {
		return err
	}
	httpServer := &http.Server{Handler: srv.Handler(reg), ReadHeaderTimeout: 5 * time.Second}
	go srv.Run(ctx)
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = httpServer.Shutdown(shutdown)
	}()
	logger.Info("Configurator serving", "address", cfg.Listener.Addr().String(), "broker", cfg.AMQPURL != "")
	if err := httpServer.Serve(cfg.Listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
