package shortjob

import (
	"context"
	"errors"
	"strings"
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
	"github.com/switchyard-sched/switchyard/pkg/lease"
	"github.com/switchyard-sched/switchyard/pkg/probes"
	"github.com/switchyard-sched/switchyard/pkg/secureserving"
)

// Options configure one short-job scheduler replica.
type Options struct {
	// Queue is the RabbitMQ queue to consume (the Queue's spec.external.amqpQueue).
	Queue string
	// AMQPURL of RabbitMQ.
	AMQPURL string
	// Prefetch bounds the messages handled at once; 16 when zero.
	Prefetch int
	// ServeAddress serves /healthz, /livez and /readyz over plain HTTP (and
	// /metrics when there is no SecureServeAddress); empty: none.
	ServeAddress string
	// SecureServeAddress serves /metrics over HTTPS to callers the API
	// server authenticates (TokenReview) and authorizes (SubjectAccessReview:
	// get on the non-resource URL /metrics); empty: not served.
	SecureServeAddress string
	// TLSCertFile and TLSKeyFile are its certificate; both empty:
	// self-signed.
	TLSCertFile, TLSKeyFile string
	// Registry receives the metrics; a new one when nil.
	Registry *prometheus.Registry
	// Identity names the replica's broker connection (and its Lease holder).
	Identity string
	// LeaderElection, when set, makes replicas take turns as kube-scheduler
	// replicas do: only the holder of the Lease consumes and binds, so two
	// replicas never give a node's last room twice; the others stand by
	// (ready, informers synced) and take over when its lease expires. A
	// holder stops consuming and finishes its binds before it releases
	// the lease. Without it every replica consumes.
	LeaderElection *lease.Config
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
	if opts.SecureServeAddress != "" {
		stop, err := secureserving.Serve(ctx, client, secureserving.Options{Name: "shortjob", Address: opts.SecureServeAddress,
			CertFile: opts.TLSCertFile, KeyFile: opts.TLSKeyFile}, secureserving.MetricsMux(reg, false))
		if err != nil {
			return err
		}
		defer stop()
	}
	if opts.ServeAddress != "" {
		probeOpts := probes.Options{Addr: opts.ServeAddress, Ready: ready.Load, NotReady: "informers not synced or broker not connected"}
		if opts.SecureServeAddress == "" {
			probeOpts.Registry = reg
		}
		srv, err := probes.Start(ctx, probeOpts)
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
	if opts.LeaderElection == nil {
		logger.Info("Short-job scheduler consuming")
		return s.Run(ctx, b, opts.Queue, opts.Prefetch)
	}
	le := *opts.LeaderElection
	if le.Identity == "" {
		le.Identity = opts.Identity
	}
	var runErr error
	err = lease.Run(ctx, client, le, func(ctx context.Context) {
		logger.Info("Short-job scheduler consuming (leading)")
		if err := s.Run(ctx, b, opts.Queue, opts.Prefetch); err != nil && ctx.Err() == nil {
			runErr = err
		}
	})
	return errors.Join(runErr, err)
}

// LeaseName is the default Lease of the replicas consuming queue: one per
// RabbitMQ queue, so schedulers of different queues bind side by side.
func LeaseName(queue string) string {
	name := "switchyard-shortjob-" + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		case r >= 'A' && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, queue)
	if len(name) > 253 {
		name = name[:253]
	}
	return strings.TrimRight(name, "-.")
}
