// Command switchyard-example-service is the smallest service that embeds
// the configurator client: it registers with switchyard-configurator,
// logs every configuration it is given, and serves its current
// configuration at / (and the configurator's health and push endpoints).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/configurator"
)

func main() {
	var (
		url       = flag.String("configurator-url", "http://switchyard-configurator.switchyard-system:8090", "switchyard-configurator URL")
		service   = flag.String("service", "example", "service name")
		pod       = flag.String("pod", os.Getenv("POD_NAME"), "pod name (env POD_NAME)")
		address   = flag.String("address", "", "URL the configurator reaches this replica at; http://$POD_IP:<port> when empty")
		listen    = flag.String("listen", ":8080", "listen address")
		tokenFile = flag.String("token-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "bearer token for registering")
		amqpURL   = flag.String("amqp-url", os.Getenv("SWITCHYARD_AMQP_URL"), "RabbitMQ URL, when the configurator broadcasts there")
	)
	klog.InitFlags(nil)
	flag.Parse()
	if *address == "" {
		port := (*listen)[strings.LastIndex(*listen, ":")+1:]
		*address = fmt.Sprintf("http://%s:%s", os.Getenv("POD_IP"), port)
	}
	token, _ := os.ReadFile(*tokenFile)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := klog.Background()
	client, err := configurator.NewClient(configurator.ClientOptions{
		URL: *url, Service: *service, Pod: *pod, Address: *address, Token: strings.TrimSpace(string(token)), AMQPURL: *amqpURL,
		OnChange: func(_ context.Context, cfg map[string]string, version int64) error {
			logger.Info("Configuration applied", "version", version, "config", cfg)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-example-service:", err)
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.Handle("/switchyard/", client.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		n, _ := client.PodNumber()
		_ = json.NewEncoder(w).Encode(map[string]any{"podNumber": n, "version": client.AppliedVersion(), "config": client.Config()})
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	go func() { _ = client.Run(ctx) }()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		logger.Error(err, "Serving")
		os.Exit(1)
	}
}
