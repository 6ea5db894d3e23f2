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

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/configurator/server"
)

func main() {
	var (
		kubeconfig   = flag.String("kubeconfig", "", "kubeconfig file; in-cluster configuration when empty")
		namespace    = flag.String("namespace", envOr("POD_NAMESPACE", "switchyard-system"), "namespace of the ConfigMaps that keep each service's configuration")
		listen       = flag.String("listen", ":8090", "address of the API, /healthz and /metrics")
		amqpURL      = flag.String("amqp-url", "", "RabbitMQ URL: broadcast through a topic exchange; empty: the SWITCHYARD_AMQP_URL environment variable, else push over HTTP")
		exchange     = flag.String("exchange", "switchyard.config", "topic exchange of configuration changes")
		tlsCert      = flag.String("tls-cert-file", "", "serving certificate (PEM)")
		tlsKey       = flag.String("tls-private-key-file", "", "serving certificate's private key (PEM)")
		insecureHTTP = flag.Bool("insecure-http", false, "serve plain HTTP without a certificate: tokens cross the network in the clear; for a local demo only")
		audience     = flag.String("token-audience", v1alpha1.ConfiguratorAudience, "audience the callers' service account tokens must be issued for")
		interval     = flag.Duration("check-interval", 2*time.Second, "interval between health checks of each replica")
		timeout      = flag.Duration("check-timeout", time.Second, "timeout of one health check")
		removeAfter  = flag.Int("remove-after", 5, "successive failed checks after which a replica is removed and its pod number freed")
		maxReplicas  = flag.Int("max-replicas", 1000, "most replicas (pod numbers) per service")
		maxServices  = flag.Int("max-services", 1000, "most services the configurator keeps")
		leaderElect  = flag.Bool("leader-elect", true, "run as one of several replicas: only the holder of the Lease switchyard-configurator serves, the others stand by (not ready)")
		identity     = flag.String("leader-elect-identity", envOr("POD_NAME", ""), "this replica's name in the Lease; the host name when empty (env POD_NAME)")
	)
	klog.InitFlags(nil)
	flag.Parse()
	if *interval <= 0 || *timeout <= 0 || *removeAfter < 1 || *maxReplicas < 1 || *maxServices < 1 {
		fmt.Fprintln(os.Stderr, "switchyard-configurator: --check-interval and --check-timeout must be positive, --remove-after, --max-replicas and --max-services at least 1")
		os.Exit(2)
	}
	if (*tlsCert == "") != (*tlsKey == "") || *tlsCert == "" && !*insecureHTTP {
		fmt.Fprintln(os.Stderr, "switchyard-configurator: set --tls-cert-file and --tls-private-key-file (or, for a local demo only, --insecure-http)")
		os.Exit(2)
	}
	if *amqpURL == "" {
		*amqpURL = os.Getenv("SWITCHYARD_AMQP_URL")
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
	var election *server.LeaderElection
	if *leaderElect {
		if *identity == "" {
			if *identity, err = os.Hostname(); err != nil {
				fmt.Fprintln(os.Stderr, "switchyard-configurator: --leader-elect-identity:", err)
				os.Exit(2)
			}
		}
		election = &server.LeaderElection{Identity: *identity}
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
		Client: client, Namespace: *namespace, AMQPURL: *amqpURL, Exchange: *exchange, Listener: lis,
		TLSCertFile: *tlsCert, TLSKeyFile: *tlsKey, InsecureHTTP: *insecureHTTP, LeaderElection: election,
		Security: server.Security{Authenticator: server.NewTokenReview(client, *audience)},
		Options:  server.Options{CheckInterval: *interval, CheckTimeout: *timeout, RemoveAfter: *removeAfter, MaxPodNumber: *maxReplicas, MaxServices: *maxServices},
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
