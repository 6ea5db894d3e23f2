// Command switchyard-shortjob is a small external scheduler: it binds the
// pods an external Queue publishes to a RabbitMQ queue. Run several
// replicas on one queue for availability: with --leader-elect (the
// default) one binds at a time and the others stand by, so no node's last
// room is given twice.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/lease"
	"github.com/switchyard-sched/switchyard/pkg/secureserving"
	"github.com/switchyard-sched/switchyard/pkg/shortjob"
)

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig file; in-cluster configuration when empty")
		queue      = flag.String("queue", "", "RabbitMQ queue to consume: the Queue's spec.external.amqpQueue (required)")
		amqpURL    = flag.String("amqp-url", "", "RabbitMQ URL; empty: the SWITCHYARD_AMQP_URL environment variable (read after parsing, so that -h and flag errors never print the password)")
		prefetch   = flag.Int("prefetch", 16, "messages handled at once")
		serveAddr  = flag.String("serve-address", ":8080", "plain HTTP address of /healthz, /livez and /readyz (and /metrics when --secure-serve-address is empty)")
		secureAddr = flag.String("secure-serve-address", ":8443", "HTTPS address of /metrics, for callers the API server authenticates and authorizes (get on the non-resource URL /metrics); empty: not served")
		qps        = flag.Float64("kube-api-qps", 100, "client QPS towards the API server")
		burst      = flag.Int("kube-api-burst", 200, "client burst towards the API server")
		elect      = flag.Bool("leader-elect", true, "take turns through a Lease: one replica binds, the others stand by")
		namespace  = flag.String("leader-elect-namespace", "switchyard-system", "namespace of the Lease")
		leaseName  = flag.String("leader-elect-lease", "", "name of the Lease; switchyard-shortjob-<queue> when empty")
	)
	var servingCert secureserving.CertFlags
	servingCert.AddFlags(flag.CommandLine)
	klog.InitFlags(nil)
	flag.Parse()
	if *amqpURL == "" {
		*amqpURL = os.Getenv("SWITCHYARD_AMQP_URL")
	}
	if err := servingCert.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-shortjob:", err)
		os.Exit(2)
	}
	if *queue == "" || *amqpURL == "" || *prefetch < 1 {
		fmt.Fprintln(os.Stderr, "switchyard-shortjob: --queue and --amqp-url (or SWITCHYARD_AMQP_URL) are required and --prefetch must be at least 1")
		os.Exit(2)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-shortjob:", err)
		os.Exit(1)
	}
	config.QPS, config.Burst = float32(*qps), *burst
	config.UserAgent = "switchyard-shortjob"
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-shortjob:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = klog.NewContext(ctx, klog.Background())
	host, _ := os.Hostname()
	opts := shortjob.Options{
		Queue: *queue, AMQPURL: *amqpURL, Prefetch: *prefetch, ServeAddress: *serveAddr, Identity: "switchyard-shortjob/" + host,
		SecureServeAddress: *secureAddr, TLSCertFile: servingCert.CertFile, TLSKeyFile: servingCert.KeyFile,
	}
	if *elect {
		name := *leaseName
		if name == "" {
			name = shortjob.LeaseName(*queue)
		}
		opts.LeaderElection = &lease.Config{Namespace: *namespace, Name: name, Identity: host}
	}
	if err := shortjob.Run(ctx, client, opts); err != nil {
		klog.Background().Error(err, "Short-job scheduler failed")
		os.Exit(1)
	}
}
