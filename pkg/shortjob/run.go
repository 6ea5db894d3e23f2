package shortjob

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/probes"
)

// Options configure one short-job scheduler replica.
type Options struct {
	// Queue is the RabbitMQ queue to consume (the Queue's spec.external.amqpQueue).
	Queue string
	// AMQPURL of RabbitMQ.
	AMQPURL string
	// Prefetch bounds the messages handled at once; 16 when zero.
	Prefetch int
	// ServeAddress serves /healthz, /readyz and /metrics; empty: none.
	ServeAddress string
	// Registry receives the metrics; a new one when nil.
	Registry *prometheus.Registry
	// Identity names the replica's broker connection.
	Identity string
}

// Run connects to the API server and RabbitMQ and schedules until ctx ends.
func Run(ctx context.Context, client kubernetes.Interface, opts Options) error {
	if opts.Queue == "" || opts.AMQPURL == "" {
		return errors.New("a queue and an AMQP URL are required")
	}
	logger := klog.FromContext(ctx).WithName("shortjob").WithValues("queue", opts.Queue)
	ctx = klog.NewContext(ctx, logger)
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	var ready atomic.Bool
	if opts.ServeAddress != "" {
		srv, err := probes.Start(ctx, probes.Options{Addr: opts.ServeAddress, Registry: reg, Ready: ready.Load, NotReady: "informers not synced or broker not connected"})
		if err != nil {
			return err
		}
		defer srv.Close()
	}
	name := opts.Identity
	if name == "" {
		name = Name
	}
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	b, err := broker.DialAMQP(dialCtx, broker.AMQPOptions{URL: opts.AMQPURL, Name: name, Metrics: broker.NewMetrics(reg)})
	cancel()
	if err != nil {
		return err
	}
	defer func() { _ = b.Close() }()

	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes()
	pods := factory.Core().V1().Pods()
	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	broadcaster.StartRecordingToSink(ctx.Done())
	defer broadcaster.Shutdown()
	s, err := New(client, nodes.Lister(), pods.Informer(), broadcaster.NewRecorder(scheme.Scheme, Name), NewMetrics(reg))
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced, pods.Informer().HasSynced) {
		return errors.New("informer caches did not sync")
	}
	ready.Store(true)
	logger.Info("Short-job scheduler consuming")
	return s.Run(ctx, b, opts.Queue, opts.Prefetch)
}
