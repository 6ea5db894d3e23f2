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

	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/configurator"
	"github.com/switchyard-sched/switchyard/pkg/probes"
)

func main() {
	var (
		url       = flag.String("configurator-url", "https://switchyard-configurator.switchyard-system:8090", "switchyard-configurator URL")
		caFile    = flag.String("configurator-ca-file", "", "PEM bundle that signs the configurator's serving certificate")
		service   = flag.String("service", "example", "service name")
		pod       = flag.String("pod", os.Getenv("POD_NAME"), "pod name (env POD_NAME)")
		address   = flag.String("address", "", "URL the configurator reaches this replica at; http://$POD_IP:<port> when empty")
		listen    = flag.String("listen", ":8080", "listen address")
		tokenFile = flag.String("token-file", "/var/run/secrets/switchyard/configurator/token", "projected service account token for the audience switchyard-configurator, bound to this pod")
		amqpURL   = flag.String("amqp-url", "", "RabbitMQ URL, when the configurator broadcasts there; empty: the SWITCHYARD_AMQP_URL environment variable")
	)
	klog.InitFlags(nil)
	flag.Parse()
	if *address == "" {
		port := (*listen)[strings.LastIndex(*listen, ":")+1:]
		*address = fmt.Sprintf("http://%s:%s", os.Getenv("POD_IP"), port)
	}
	if *amqpURL == "" {
		*amqpURL = os.Getenv("SWITCHYARD_AMQP_URL")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := klog.Background()
	client, err := configurator.NewClient(configurator.ClientOptions{
		URL: *url, Service: *service, Pod: *pod, Address: *address, TokenFile: *tokenFile, CAFile: *caFile, AMQPURL: *amqpURL,
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
	srv := probes.HTTPServer(mux)
	srv.Addr = *listen
	go func() { <-ctx.Done(); _ = srv.Close() }()
	go func() { _ = client.Run(ctx) }()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		logger.Error(err, "Serving")
		os.Exit(1)
	}
}
