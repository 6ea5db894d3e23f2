// Command switchyard-configurator broadcasts runtime configuration to every
// replica of a service, or to one replica by pod number. See
// docs/configurator-openapi.yaml for its API.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/configurator/server"
)

func main() {
	var (
		kubeconfig  = flag.String("kubeconfig", "", "kubeconfig file; in-cluster configuration when empty")
		namespace   = flag.String("namespace", envOr("POD_NAMESPACE", "switchyard-system"), "namespace of the ConfigMaps that keep each service's configuration")
		listen      = flag.String("listen", ":8090", "address of the API, /healthz and /metrics")
		amqpURL     = flag.String("amqp-url", os.Getenv("SWITCHYARD_AMQP_URL"), "RabbitMQ URL: broadcast through a topic exchange; empty: push over HTTP")
		exchange    = flag.String("exchange", "switchyard.config", "topic exchange of configuration changes")
		tokenFile   = flag.String("token-file", "", "file of accepted bearer tokens, one per line (local demo); empty: TokenReview against the API server")
		interval    = flag.Duration("check-interval", 2*time.Second, "interval between health checks of each replica")
		timeout     = flag.Duration("check-timeout", time.Second, "timeout of one health check")
		removeAfter = flag.Int("remove-after", 5, "successive failed checks after which a replica is removed and its pod number freed")
	)
	klog.InitFlags(nil)
	flag.Parse()
	if *interval <= 0 || *timeout <= 0 || *removeAfter < 1 {
		fmt.Fprintln(os.Stderr, "switchyard-configurator: --check-interval and --check-timeout must be positive, --remove-after at least 1")
		os.Exit(2)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-configurator:", err)
		os.Exit(1)
	}
	config.UserAgent = "switchyard-configurator"
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-configurator:", err)
		os.Exit(1)
	}
	var auth server.Authenticator = &server.TokenReview{Client: client}
	if *tokenFile != "" {
		if auth, err = server.LoadStaticTokens(*tokenFile); err != nil {
			fmt.Fprintln(os.Stderr, "switchyard-configurator:", err)
			os.Exit(2)
		}
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-configurator:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = klog.NewContext(ctx, klog.Background())
	err = server.Serve(ctx, server.Config{
		Client: client, Namespace: *namespace, AMQPURL: *amqpURL, Exchange: *exchange, Auth: auth, Listener: lis,
		Options: server.Options{CheckInterval: *interval, CheckTimeout: *timeout, RemoveAfter: *removeAfter},
	})
	if err != nil {
		klog.Background().Error(err, "Configurator failed")
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
