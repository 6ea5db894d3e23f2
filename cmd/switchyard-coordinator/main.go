// Command switchyard-coordinator routes pods to their queue's scheduler
// profile (through a MutatingAdmissionPolicy it keeps in step with the
// Queues) and admits gated pods under each queue's limits.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/coordinator"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/decisions"
	"github.com/switchyard-sched/switchyard/pkg/secureserving"
)

func main() {
	var (
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig file; in-cluster configuration when empty")
		schedCfg   = flag.String("scheduler-config", "", "the scheduler's KubeSchedulerConfiguration file: its profiles are the ones Queues may name (the shipped Deployment mounts the scheduler's ConfigMap)")
		profiles   = flag.String("profiles", "", "comma-separated scheduler profiles that Queues may name, instead of --scheduler-config")
		open       = flag.String("open-profiles", "", "comma-separated scheduler profiles that pods may name directly even where a Queue routes to them (by default a pod reaches a queue's profile only through routing, under the queue's limits)")
		maxTotal   = flag.Int("max-admitted", 0, "cluster-wide cap of pods admitted but not yet bound over all gated queues; weights share it (0: no cap)")
		elect      = flag.Bool("leader-elect", true, "run the controllers only in the replica holding the lease")
		namespace  = flag.String("namespace", coordinator.DefaultNamespace, "namespace of the coordinator's lease and routing table")
		leaseName  = flag.String("leader-elect-name", "switchyard-coordinator", "name of the leader-election lease")
		serveAddr  = flag.String("serve-address", ":8080", "address of /healthz, /livez and /readyz (plain HTTP, for probes); /metrics too when --visibility-address is empty")
		qps        = flag.Float64("kube-api-qps", 100, "client QPS towards the API server")
		burst      = flag.Int("kube-api-burst", 200, "client burst towards the API server")
		profiling  = flag.Bool("profiling", false, "serve /debug/pprof where /metrics is served")
		amqpURL    = flag.String("amqp-url", "", "RabbitMQ URL for external queues and the decision stream; $SWITCHYARD_AMQP_URL when unset; neither: no broker")
		visAddr    = flag.String("visibility-address", ":8443", "secure port (HTTPS, callers authenticated by the API server and authorized by SubjectAccessReview): the visibility API (visibility.switchyard.io, through the API server's aggregation layer) and /metrics (get on the non-resource URL /metrics); empty: not served")
		decisionEx = flag.String("decision-exchange", "", "topic exchange of the decision stream (routing key <queue>.<decision>), e.g. "+decisions.DefaultExchange+"; empty: no decision stream")
	)
	var servingCert secureserving.CertFlags
	servingCert.AddFlags(flag.CommandLine)
	klog.InitFlags(nil)
	flag.Parse()
	if *maxTotal < 0 || *qps <= 0 || *burst <= 0 {
		fmt.Fprintln(os.Stderr, "switchyard-coordinator: --max-admitted must be >= 0, --kube-api-qps and --kube-api-burst > 0")
		os.Exit(2)
	}
	if *amqpURL == "" {
		*amqpURL = os.Getenv("SWITCHYARD_AMQP_URL")
	}
	if err := servingCert.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-coordinator:", err)
		os.Exit(2)
	}
	var profileNames []string
	switch {
	case *profiles != "":
		profileNames = strings.Split(*profiles, ",")
	case *schedCfg != "":
		data, err := os.ReadFile(*schedCfg)
		if err == nil {
			profileNames, err = coordinator.ProfilesFromSchedulerConfig(data)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "switchyard-coordinator: --scheduler-config:", err)
			os.Exit(2)
		}
	default:
		fmt.Fprintln(os.Stderr, "switchyard-coordinator: set --scheduler-config (the scheduler's KubeSchedulerConfiguration) or --profiles")
		os.Exit(2)
	}
	var openProfiles []string
	for _, name := range strings.Split(*open, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			fmt.Fprintf(os.Stderr, "switchyard-coordinator: --open-profiles: %q is not a scheduler name: %s\n", name, strings.Join(errs, "; "))
			os.Exit(2)
		}
		openProfiles = append(openProfiles, name)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-coordinator:", err)
		os.Exit(1)
	}
	config.QPS, config.Burst = float32(*qps), *burst
	config.UserAgent = "switchyard-coordinator"
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = klog.NewContext(ctx, klog.Background())
	err = coordinator.Run(ctx, config, coordinator.Options{
		Profiles:         profileNames,
		OpenProfiles:     openProfiles,
		MaxAdmittedTotal: *maxTotal,
		LeaderElect:      *elect,
		Namespace:        *namespace,
		LeaseName:        *leaseName,
		ServeAddress:     *serveAddr,
		Profiling:        *profiling,
		AMQPURL:          *amqpURL,
		DecisionExchange: *decisionEx,

		VisibilityAddress:    *visAddr,
		VisibilityCertFile:   servingCert.CertFile,
		VisibilityKeyFile:    servingCert.KeyFile,
		VisibilityServerName: "switchyard-coordinator." + *namespace + ".svc",
	})
	if err != nil {
		klog.Background().Error(err, "Coordinator failed")
		os.Exit(1)
	}
}
