// Package coordinator runs Switchyard's coordinator: the routing controller
// that compiles Queues into the API server's MutatingAdmissionPolicy, and
// the admission controller that releases gated pods under queue limits,
// behind leader election, with health and metrics endpoints.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/admission"
	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/decisions"
	"github.com/switchyard-sched/switchyard/pkg/dispatch"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	syinformers "github.com/switchyard-sched/switchyard/pkg/generated/informers/externalversions"
	"github.com/switchyard-sched/switchyard/pkg/probes"
	"github.com/switchyard-sched/switchyard/pkg/routing"
)

// Options configure the coordinator.
type Options struct {
	// Profiles are the scheduler profiles Queues may name.
	Profiles []string
	// MaxAdmittedTotal caps admitted-but-unbound pods over all gated queues.
	MaxAdmittedTotal int
	// LeaderElect runs the controllers only in the replica holding the lease
	// LeaseNamespace/LeaseName.
	LeaderElect    bool
	LeaseNamespace string
	LeaseName      string
	// Identity names this replica in the lease; the host name when empty.
	Identity string
	// ServeAddress serves /healthz, /readyz and /metrics; empty: no server.
	ServeAddress string
	// Profiling serves /debug/pprof on ServeAddress.
	Profiling bool
	// Registry receives the metrics; a new one when nil.
	Registry *prometheus.Registry
	// AMQPURL connects the coordinator to RabbitMQ: external queues publish
	// their admitted pods there, and every decision goes to the decision
	// stream. Empty: no broker; Queues with spec.external are not usable.
	AMQPURL string
	// DecisionExchange is the decision stream's topic exchange;
	// decisions.DefaultExchange when empty.
	DecisionExchange string
}

// DefaultProfiles are the profiles manifests/scheduler ships.
var DefaultProfiles = []string{"switchyard", "switchyard-batch", "switchyard-latency"}

// Run runs the coordinator until ctx ends.
func Run(ctx context.Context, config *rest.Config, opts Options) error {
	logger := klog.FromContext(ctx).WithName("coordinator")
	ctx = klog.NewContext(ctx, logger)
	client, err := kubernetes.NewForConfig(config)
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
	}
	metrics := admission.NewMetrics(reg)
	var b broker.Broker
	if opts.AMQPURL != "" {
		dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		amqpBroker, err := broker.DialAMQP(dialCtx, broker.AMQPOptions{URL: opts.AMQPURL, Name: "switchyard-coordinator", Metrics: broker.NewMetrics(reg)})
		cancel()
		if err != nil {
			return err
		}
		defer func() { _ = amqpBroker.Close() }()
		b = amqpBroker
	}
	dispatchMetrics, decisionMetrics := dispatch.NewMetrics(reg), decisions.NewMetrics(reg)
	var ready atomic.Bool
	if opts.ServeAddress != "" {
		// Ready means: this replica leads and its caches are synced. Standby
		// replicas report not ready, so the Service reaches the leader's metrics.
		srv, err := probes.Start(ctx, probes.Options{Addr: opts.ServeAddress, Registry: reg, Ready: ready.Load,
			NotReady: "not leading or caches not synced", Profiling: opts.Profiling})
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	run := func(ctx context.Context) {
		if err := runControllers(ctx, client, sy, controllerMetrics{metrics, dispatchMetrics, decisionMetrics}, b, opts, &ready); err != nil {
			logger.Error(err, "Coordinator controllers stopped")
		}
	}
	if !opts.LeaderElect {
		run(ctx)
		return nil
	}
	identity := opts.Identity
	if identity == "" {
		host, _ := os.Hostname()
		identity = fmt.Sprintf("%s_%d", host, time.Now().UnixNano())
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, opts.LeaseNamespace, opts.LeaseName,
		client.CoreV1(), client.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: identity})
	if err != nil {
		return err
	}
	// RunOrDie starts OnStartedLeading in a goroutine and does not wait for
	// it; wait here, so that gate removals in flight finish (and are counted)
	// before Run returns.
	var controllers sync.WaitGroup
	leading := run
	run = func(ctx context.Context) {
		controllers.Add(1)
		defer controllers.Done()
		leading(ctx)
	}
	defer controllers.Wait()
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		ReleaseOnCancel: true,
		Name:            opts.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: run,
			OnStoppedLeading: func() { logger.Info("Stopped leading", "identity", identity) },
		},
	})
	return nil
}

// controllerMetrics are created once per Run, so that leading twice in one
// process does not register them twice.
type controllerMetrics struct {
	admission *admission.Metrics
	dispatch  *dispatch.Metrics
	decisions *decisions.Metrics
}

func runControllers(ctx context.Context, client kubernetes.Interface, sy versioned.Interface, metrics controllerMetrics, b broker.Broker, opts Options, ready *atomic.Bool) error {
	logger := klog.FromContext(ctx)
	factory := informers.NewSharedInformerFactory(client, 0)
	syFactory := syinformers.NewSharedInformerFactory(sy, 0)
	pods := factory.Core().V1().Pods()
	queues := syFactory.Switchyard().V1alpha1().Queues()

	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	broadcaster.StartRecordingToSink(ctx.Done())
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme(), routing.ManagerName)

	router, err := routing.NewController(client, queues.Informer(), queues.Lister())
	if err != nil {
		return err
	}
	profiles := sets.New(opts.Profiles...)
	if len(opts.Profiles) == 0 {
		profiles = sets.New(DefaultProfiles...)
	}
	admitter, err := admission.New(client, sy, pods.Informer(), queues.Informer(), queues.Lister(), recorder,
		metrics.admission, admission.Options{MaxAdmittedTotal: opts.MaxAdmittedTotal, Profiles: profiles, ExternalQueues: b != nil})
	if err != nil {
		return err
	}
	var dispatcher *dispatch.Dispatcher
	var stream *decisions.Stream
	if b != nil {
		if dispatcher, err = dispatch.New(b, pods.Informer(), queues.Informer(), queues.Lister(), metrics.dispatch); err != nil {
			return err
		}
		if stream, err = decisions.New(ctx, b, opts.DecisionExchange, pods.Informer(), metrics.decisions); err != nil {
			return err
		}
	}
	factory.Start(ctx.Done())
	syFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), pods.Informer().HasSynced, queues.Informer().HasSynced) {
		return errors.New("informer caches did not sync")
	}
	logger.Info("Caches synced; coordinating")
	ready.Store(true)
	defer ready.Store(false)
	var wg sync.WaitGroup
	for _, run := range []func(context.Context){router.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx) }()
	}
	if b != nil {
		wg.Add(2)
		go func() { defer wg.Done(); dispatcher.Run(ctx) }()
		go func() { defer wg.Done(); stream.Run(ctx) }()
	}
	admitter.Run(ctx)
	wg.Wait()
	factory.Shutdown()
	syFactory.Shutdown()
	return nil
}
