package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	"github.com/switchyard-sched/switchyard/pkg/generated/informers/externalversions"
	"github.com/switchyard-sched/switchyard/pkg/probes"
	"github.com/switchyard-sched/switchyard/pkg/secureserving"
)

// RunOptions wire one agent.
type RunOptions struct {
	// Client is nil in standalone mode.
	Client kubernetes.Interface
	// Switchyard reads Queues, so that raises stay inside queue quotas;
	// nil: no quota check.
	Switchyard versioned.Interface
	// Node is this node's name (Kubernetes mode).
	Node string
	// CgroupRoot is the hierarchy, /sys/fs/cgroup.
	CgroupRoot string
	Driver     cgroup.Driver
	// StandaloneDir, when set, manages the cgroups below it without Kubernetes.
	StandaloneDir string
	// Actuator is resize or cgroup.
	Actuator string
	Options
	// ReportInterval between node usage reports (Kubernetes mode); 10s
	// when zero.
	ReportInterval time.Duration
	// ServeAddress serves /healthz, /livez and /readyz over plain HTTP, and
	// the configurator's signed pushes; /metrics and /policy too when there
	// is no SecureServeAddress. Empty: none.
	ServeAddress string
	// SecureServeAddress serves /metrics and /policy over HTTPS to callers
	// the API server authenticates (TokenReview) and authorizes
	// (SubjectAccessReview: get on the non-resource URL), as the kubelet
	// serves its own; it needs Client. Empty: not served.
	SecureServeAddress string
	// TLSCertFile and TLSKeyFile are its certificate; both empty:
	// self-signed.
	TLSCertFile, TLSKeyFile string
	Registry                *prometheus.Registry
	// Configurator, when set, lets the policy change live: service
	// switchyard-agent, one replica per node (pod name = node name).
	Configurator *configurator.ClientOptions
}

// Run runs the agent until ctx ends.
func Run(ctx context.Context, o RunOptions) error {
	logger := klog.FromContext(ctx).WithName("agent")
	ctx = klog.NewContext(ctx, logger)
	fs, err := cgroup.Detect(o.CgroupRoot)
	if err != nil {
		return err
	}
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	var source Source
	var actuator Actuator
	switch o.Actuator {
	case "cgroup":
		actuator = CgroupActuator{FS: fs}
	case "resize":
		if o.Client == nil {
			return errors.New("the resize actuator needs Kubernetes; use --actuator=cgroup in standalone mode")
		}
		actuator = ResizeActuator{Client: o.Client}
	default:
		return fmt.Errorf("actuator %q must be resize or cgroup", o.Actuator)
	}
	if o.StandaloneDir != "" {
		source = Standalone{FS: fs, Dir: o.StandaloneDir}
	} else {
		if o.Client == nil || o.Node == "" {
			return errors.New("Kubernetes mode needs a client and --node (or --standalone-dir)")
		}
		// Only this node's pods and this node: a DaemonSet must not watch
		// the whole cluster.
		podFactory := informers.NewSharedInformerFactoryWithOptions(o.Client, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = "spec.nodeName=" + o.Node
		}))
		nodeFactory := informers.NewSharedInformerFactoryWithOptions(o.Client, 0, informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = "metadata.name=" + o.Node
		}))
		pods := podFactory.Core().V1().Pods()
		nodes := nodeFactory.Core().V1().Nodes()
		broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: o.Client.EventsV1()})
		broadcaster.StartRecordingToSink(ctx.Done())
		defer broadcaster.Shutdown()
		recorder := broadcaster.NewRecorder(scheme.Scheme, "switchyard-agent")
		source = Pods{Pods: pods.Lister(), Nodes: nodes.Lister(), Node: o.Node, Driver: o.Driver,
			Warn: func(pod *corev1.Pod, reason, msg string) {
				recorder.Eventf(pod, nil, corev1.EventTypeWarning, reason, "Autoscale", "%s", msg)
			}}
		if o.Report == nil {
			o.Report = func(t Target, eventType, reason, msg string) {
				if pod, ok := t.Object.(*corev1.Pod); ok {
					recorder.Eventf(pod, nil, eventType, reason, "Autoscale", "%s", msg)
				}
			}
		}
		if o.Switchyard != nil && o.Quota == nil {
			syFactory := externalversions.NewSharedInformerFactory(o.Switchyard, 0)
			queues := syFactory.Switchyard().V1alpha1().Queues()
			o.Quota = QueueQuota{Queues: queues.Lister()}
			queues.Informer() // registered before Start
			syFactory.Start(ctx.Done())
			defer syFactory.Shutdown()
			if !cache.WaitForCacheSync(ctx.Done(), queues.Informer().HasSynced) {
				return errors.New("queue informer cache did not sync")
			}
		}
		podFactory.Start(ctx.Done())
		nodeFactory.Start(ctx.Done())
		defer podFactory.Shutdown()
		defer nodeFactory.Shutdown()
		if !cache.WaitForCacheSync(ctx.Done(), pods.Informer().HasSynced, nodes.Informer().HasSynced) {
			return errors.New("informer caches did not sync")
		}
	}
	a, err := New(fs, source, actuator, NewMetrics(reg), o.Options)
	if err != nil {
		return err
	}
	var ready atomic.Bool
	policy := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.Policy())
	}
	if o.SecureServeAddress != "" {
		if o.Client == nil {
			return errors.New("the secure port authenticates callers through the API server: it cannot run standalone (leave --secure-serve-address empty)")
		}
		mux := secureserving.MetricsMux(reg, false)
		mux.HandleFunc("GET /policy", policy)
		stop, err := secureserving.Serve(ctx, o.Client, secureserving.Options{Name: "agent", Address: o.SecureServeAddress,
			CertFile: o.TLSCertFile, KeyFile: o.TLSKeyFile}, mux)
		if err != nil {
			return err
		}
		defer stop()
	}
	if o.ServeAddress != "" {
		probeOpts := probes.Options{Addr: o.ServeAddress, Ready: ready.Load, NotReady: "not started"}
		if o.SecureServeAddress == "" {
			probeOpts.Registry = reg
		}
		srv, err := probes.Start(ctx, probeOpts)
		if err != nil {
			return err
		}
		defer srv.Close()
		if o.SecureServeAddress == "" {
			srv.Mux.HandleFunc("GET /policy", policy)
		}
		if o.Configurator != nil {
			client, err := a.configuratorClient(*o.Configurator)
			if err != nil {
				return err
			}
			srv.Mux.Handle("/switchyard/", client.Handler())
			go func() { _ = client.Run(ctx) }()
		}
	}
	if o.StandaloneDir == "" {
		interval := o.ReportInterval
		if interval <= 0 {
			interval = 10 * time.Second
		}
		reporter := &Reporter{Client: o.Client, Node: o.Node, FS: fs, Path: KubepodsPath(o.Driver), Interval: interval}
		go reporter.Run(ctx)
	}
	ready.Store(true)
	logger.Info("Agent running", "cgroup", fs.Version, "root", fs.Root, "actuator", o.Actuator, "dryRun", o.DryRun,
		"standaloneDir", o.StandaloneDir, "node", o.Node, "policy", fmt.Sprintf("%+v", o.Policy))
	a.Run(ctx)
	return nil
}

// configuratorClient registers the agent with the configurator; each
// change of policy keys is applied to every container, and a bad one is
// refused with the old policy kept.
func (a *Agent) configuratorClient(opts configurator.ClientOptions) (*configurator.Client, error) {
	base := a.Policy()
	opts.OnChange = func(ctx context.Context, cfg map[string]string, version int64) error {
		p, err := guardian.PolicyFromConfig(base, cfg)
		if err != nil {
			return fmt.Errorf("policy version %d refused, keeping the current one: %w", version, err)
		}
		klog.FromContext(ctx).Info("Policy changed", "version", version, "keys", strings.Join(keys(cfg), ","))
		return a.SetPolicy(p)
	}
	return configurator.NewClient(opts)
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
