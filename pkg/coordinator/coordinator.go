// Package coordinator runs Switchyard's coordinator: the routing controller
// that compiles Queues into the API server's MutatingAdmissionPolicy, and
// the admission controller that releases gated pods under queue limits,
// behind leader election, with health and metrics endpoints.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/admission"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/decisions"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/dispatch"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/reconcile"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/routing"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/visibility"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	syinformers "github.com/switchyard-sched/switchyard/pkg/generated/informers/externalversions"
	"github.com/switchyard-sched/switchyard/pkg/lease"
	"github.com/switchyard-sched/switchyard/pkg/probes"
)

// Options configure the coordinator.
type Options struct {
	// Profiles are the scheduler profiles Queues may name: those of the
	// scheduler's KubeSchedulerConfiguration (see ProfilesFromSchedulerConfig).
	// Empty: every profile a Queue names is taken to exist.
	Profiles []string
	// OpenProfiles may be named by pods directly, even where a Queue routes
	// to them; pods reach any other profile of a Queue only through routing.
	OpenProfiles []string
	// MaxAdmittedTotal caps admitted-but-unbound pods over all gated queues.
	MaxAdmittedTotal int
	// Namespace holds the leader-election lease; switchyard-system when
	// empty.
	Namespace string
	// LeaderElect runs the controllers only in the replica holding the lease
	// Namespace/LeaseName.
	LeaderElect bool
	LeaseName   string
	// Identity names this replica in the lease; the host name when empty.
	Identity string
	// ServeAddress serves /healthz, /livez and /readyz over plain HTTP, for
	// the kubelet's probes (and /metrics when there is no VisibilityAddress);
	// empty: no server.
	ServeAddress string
	// Profiling serves /debug/pprof where /metrics is served.
	Profiling bool
	// Registry receives the metrics; a new one when nil.
	Registry *prometheus.Registry
	// AMQPURL connects the coordinator to RabbitMQ: external queues publish
	// their admitted pods there, and every decision goes to the decision
	// stream. Empty: no broker; Queues with spec.external are not usable.
	AMQPURL string
	// DecisionExchange is the decision stream's topic exchange (it needs a
	// broker). Empty: no decision stream; publishing every decision costs
	// about a fifth of the coordinator's CPU at full admission speed.
	DecisionExchange string
	// VisibilityAddress is the secure port: HTTPS with delegated
	// authentication and authorization, serving the visibility API
	// (pending pods, their positions and estimates) for the API server's
	// aggregation layer, and /metrics; empty: not served.
	VisibilityAddress string
	// VisibilityCertFile and VisibilityKeyFile are its serving certificate;
	// both empty: self-signed for VisibilityServerName.
	VisibilityCertFile, VisibilityKeyFile string
	// VisibilityServerName names the self-signed certificate.
	VisibilityServerName string
}

// DefaultNamespace is where the shipped manifests run the coordinator.
const DefaultNamespace = "switchyard-system"

// ProfilesFromSchedulerConfig returns the profile names of a
// KubeSchedulerConfiguration (the file the scheduler runs with), so that
// the coordinator and the scheduler read their profiles from one source.
func ProfilesFromSchedulerConfig(data []byte) ([]string, error) {
	var config struct {
		Kind     string `json:"kind"`
		Profiles []struct {
			SchedulerName string `json:"schedulerName"`
		} `json:"profiles"`
	}
	if err := yaml.Unmarshal(data, &config); err != nil {
		return nil, fmt.Errorf("reading the scheduler configuration: %w", err)
	}
	if config.Kind != "KubeSchedulerConfiguration" {
		return nil, fmt.Errorf("the scheduler configuration has kind %q, want KubeSchedulerConfiguration", config.Kind)
	}
	var names []string
	for _, p := range config.Profiles {
		name := p.SchedulerName
		if name == "" {
			name = "default-scheduler" // as kube-scheduler defaults it
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return nil, errors.New("the scheduler configuration names no profiles")
	}
	return names, nil
}

// Run runs the coordinator until ctx ends. With leader election, it drains
// the controllers (every gate removal sent has its answer) before it
// releases the lease, so a successor never sees a stale count.
func Run(ctx context.Context, config *rest.Config, opts Options) error {
	logger := klog.FromContext(ctx).WithName("coordinator")
	ctx = klog.NewContext(ctx, logger)
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	// Built-in types travel as protobuf: the API server encodes every pod
	// event of the coordinator's watch once more in the format it asks
	// for, and JSON costs it several times what protobuf does. (Custom
	// resources only speak JSON; the Switchyard client keeps it.)
	coreConfig := rest.CopyConfig(config)
	coreConfig.ContentType = runtime.ContentTypeProtobuf
	coreConfig.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	client, err := kubernetes.NewForConfig(coreConfig)
	if err != nil {
		return err
	}
	sy, err := versioned.NewForConfig(config)
	if err != nil {
		return err
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		// The process's own registry: client-go's workqueue metrics of every
		// loop go to it (a process takes one provider; tests that pass their
		// own registries run several coordinators and do without).
		workqueue.SetProvider(reconcile.NewWorkqueueMetrics(reg))
	}
	metrics := controllerMetrics{admission.NewMetrics(reg), routing.NewMetrics(reg), dispatch.NewMetrics(reg), decisions.NewMetrics(reg)}
	// The broker is optional at run time too: the coordinator starts (and
	// admits profile queues) while RabbitMQ is down; external queues hold
	// their pods, with the BrokerUnavailable condition, until it is up.
	var b *broker.AMQP
	if opts.AMQPURL != "" {
		amqpBroker, err := broker.StartAMQP(ctx, broker.AMQPOptions{URL: opts.AMQPURL, Name: "switchyard-coordinator", Metrics: broker.NewMetrics(reg)})
		if err != nil {
			return err
		}
		defer func() { _ = amqpBroker.Close() }()
		b = amqpBroker
	}
	// The visibility API is served by every replica (a stand-by answers
	// 503, and is not ready, so the Service sends requests to the leader).
	// A server that cannot start is an error in the log, never a reason
	// to stop admitting. It serves /metrics and /debug/pprof too, behind
	// its authentication and authorization.
	var vis *visibility.Server
	if opts.VisibilityAddress != "" {
		vis, err = visibility.New(ctx, client, visibility.Options{Address: opts.VisibilityAddress,
			CertFile: opts.VisibilityCertFile, KeyFile: opts.VisibilityKeyFile, ServerName: opts.VisibilityServerName,
			Registry: reg, Profiling: opts.Profiling})
		if err != nil {
			logger.Error(err, "Not serving the visibility API")
		} else {
			// Stop it when Run returns, and wait for the port to close, so
			// that a coordinator started after this one in the same process
			// can listen there.
			stopVis := vis.Start(ctx)
			defer stopVis()
		}
	}
	var ready atomic.Bool
	if opts.ServeAddress != "" {
		// Ready means: this replica leads and its caches are synced. Standby
		// replicas report not ready, so the Service reaches the leader's metrics.
		// /metrics and /debug/pprof only where no secure port serves them
		// (a local run without --visibility-address).
		probeOpts := probes.Options{Addr: opts.ServeAddress, Ready: ready.Load, NotReady: "not leading or caches not synced"}
		if vis == nil {
			probeOpts.Registry, probeOpts.Profiling = reg, opts.Profiling
			logger.Info("Serving /metrics without authentication: there is no secure port", "address", opts.ServeAddress)
		}
		srv, err := probes.Start(ctx, probeOpts)
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	run := func(ctx context.Context) {
		if err := runControllers(ctx, client, sy, metrics, b, vis, opts, &ready); err != nil {
			logger.Error(err, "Coordinator controllers stopped")
		}
	}
	if !opts.LeaderElect {
		run(ctx)
		return nil
	}
	// One term: a coordinator that loses its lease returns (and its
	// process restarts as a stand-by), after draining its gate removals.
	err = lease.Run(ctx, client, lease.Config{Namespace: opts.Namespace, Name: opts.LeaseName, Identity: opts.Identity}, run)
	if errors.Is(err, lease.ErrLost) {
		logger.Info("Lost the coordinator lease; stopping so that another replica leads alone")
		return nil
	}
	return err
}

// controllerMetrics are created once per Run, so that leading twice in one
// process does not register them twice.
type controllerMetrics struct {
	admission *admission.Metrics
	routing   *routing.Metrics
	dispatch  *dispatch.Metrics
	decisions *decisions.Metrics
}

func runControllers(ctx context.Context, client kubernetes.Interface, sy versioned.Interface, metrics controllerMetrics, amqpBroker *broker.AMQP, vis *visibility.Server, opts Options, ready *atomic.Bool) error {
	// b is nil without a broker (a nil *AMQP in the interface would not be).
	var b broker.Broker
	var brokerConnected func() bool
	if amqpBroker != nil {
		b, brokerConnected = amqpBroker, amqpBroker.Connected
	}
	logger := klog.FromContext(ctx)
	factory := informers.NewSharedInformerFactory(client, 0)
	syFactory := syinformers.NewSharedInformerFactory(sy, 0)
	pods := factory.Core().V1().Pods()
	queues := syFactory.Switchyard().V1alpha1().Queues()
	tables := syFactory.Switchyard().V1alpha1().RoutingTables()

	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	broadcaster.StartRecordingToSink(ctx.Done())
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme(), v1alpha1.CoordinatorName)

	var admitter *admission.Controller
	router, err := routing.NewController(client, sy, queues.Informer(), queues.Lister(), tables.Informer(), tables.Lister(),
		metrics.routing, opts.OpenProfiles, func(queues []string) {
			if admitter != nil {
				admitter.RefreshStatus(queues)
			}
		})
	if err != nil {
		return err
	}
	var profiles sets.Set[string]
	if len(opts.Profiles) > 0 {
		profiles = sets.New(opts.Profiles...)
	}
	admitter, err = admission.New(client, sy, pods.Informer(), queues.Informer(), queues.Lister(), recorder,
		metrics.admission, admission.Options{MaxAdmittedTotal: opts.MaxAdmittedTotal, Profiles: profiles, ExternalQueues: b != nil,
			BrokerConnected: brokerConnected, RouteStatus: router.RouteStatus})
	if err != nil {
		return err
	}
	var dispatcher *dispatch.Dispatcher
	var stream *decisions.Stream
	if b != nil {
		if dispatcher, err = dispatch.New(b, pods.Informer(), queues.Informer(), queues.Lister(), recorder, metrics.dispatch); err != nil {
			return err
		}
		if opts.DecisionExchange != "" {
			if stream, err = decisions.New(ctx, b, opts.DecisionExchange, pods.Informer(), metrics.decisions); err != nil {
				return err
			}
		}
	}
	factory.Start(ctx.Done())
	syFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), pods.Informer().HasSynced, queues.Informer().HasSynced, tables.Informer().HasSynced) {
		return errors.New("informer caches did not sync")
	}
	logger.Info("Caches synced; coordinating")
	ready.Store(true)
	defer ready.Store(false)
	if vis != nil {
		vis.SetSource(admitter)
		defer vis.SetSource(nil)
	}
	var wg sync.WaitGroup
	for _, run := range []func(context.Context){router.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx) }()
	}
	if dispatcher != nil {
		wg.Add(1)
		go func() { defer wg.Done(); dispatcher.Run(ctx) }()
	}
	if stream != nil {
		wg.Add(1)
		go func() { defer wg.Done(); stream.Run(ctx) }()
	}
	if brokerConnected != nil {
		wg.Add(1)
		go func() { defer wg.Done(); watchBroker(ctx, brokerConnected, admitter.BrokerChanged) }()
	}
	admitter.Run(ctx)
	wg.Wait()
	factory.Shutdown()
	syFactory.Shutdown()
	return nil
}

// brokerPollInterval is how often the coordinator looks whether RabbitMQ
// came or went, to admit external queues' pods again or hold them.
const brokerPollInterval = time.Second

// watchBroker calls changed whenever connected() changes, until ctx ends.
func watchBroker(ctx context.Context, connected func() bool, changed func()) {
	logger := klog.FromContext(ctx)
	last := connected()
	if !last {
		logger.Info("RabbitMQ is not reachable yet; external queues hold their pods until it is")
		changed()
	}
	ticker := time.NewTicker(brokerPollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if up := connected(); up != last {
			last = up
			logger.Info("RabbitMQ connectivity changed", "connected", up)
			changed()
		}
	}
}
