// Command switchyard-agent is the Switchyard node agent (a DaemonSet): it
// scales the opted-in containers of its node from their real cgroup usage,
// or, with --standalone-dir, the cgroups below a directory of a plain host.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/agent"
	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	"github.com/switchyard-sched/switchyard/pkg/secureserving"
)

func main() {
	p := guardian.DefaultPolicy()
	var (
		kubeconfig    = flag.String("kubeconfig", "", "kubeconfig file; in-cluster configuration when empty")
		node          = flag.String("node", os.Getenv("NODE_NAME"), "this node's name (env NODE_NAME)")
		root          = flag.String("cgroup-root", "/sys/fs/cgroup", "cgroup hierarchy (v1 or v2, detected)")
		driver        = flag.String("cgroup-driver", "systemd", "the kubelet's cgroup driver: systemd or cgroupfs")
		standalone    = flag.String("standalone-dir", "", "manage the cgroups below this directory (relative to --cgroup-root) without Kubernetes")
		actuator      = flag.String("actuator", "resize", "resize (pods/resize subresource) or cgroup (write cgroup files)")
		dryRun        = flag.Bool("dry-run", false, "log and count decisions without acting")
		interval      = flag.Duration("sample-interval", time.Second, "interval between cgroup reads")
		serveAddr     = flag.String("serve-address", ":8081", "plain HTTP address of /healthz, /livez, /readyz and the configurator's signed pushes (and of /metrics and /policy with --standalone-dir)")
		secureAddr    = flag.String("secure-serve-address", ":8444", "HTTPS address of /metrics and /policy, for callers the API server authenticates and authorizes (get on the non-resource URL); off with --standalone-dir")
		configurator_ = flag.String("configurator-url", "", "switchyard-configurator URL for live policy changes (service switchyard-agent); empty: none")
		configCA      = flag.String("configurator-ca-file", "", "PEM bundle that signs the configurator's serving certificate")
		advertise     = flag.String("advertise-address", "", "URL the configurator reaches this agent at, e.g. http://$(POD_IP):8081")
		tokenFile     = flag.String("configurator-token-file", "/var/run/secrets/switchyard/configurator/token", "projected service account token for the audience switchyard-configurator, bound to this pod")
	)
	flag.DurationVar(&p.Window, "window", p.Window, "usage window")
	flag.IntVar(&p.Windows, "windows", p.Windows, "consecutive windows that must agree (K)")
	flag.Float64Var(&p.Upper, "upper", p.Upper, "scale up above this fraction of the limit (or when throttled)")
	flag.Float64Var(&p.Lower, "lower", p.Lower, "scale down below this fraction of the limit")
	flag.Float64Var(&p.Margin, "margin", p.Margin, "new limit = highest usage x (1 + margin)")
	flag.Float64Var(&p.MaxStep, "max-step", p.MaxStep, "largest change as a fraction of the limit (1: double or halve)")
	flag.DurationVar(&p.Cooldown, "cooldown", p.Cooldown, "wait after a change before the next one of the same resource")
	flag.Int64Var(&p.MemoryHeadroom, "memory-headroom", p.MemoryHeadroom, "memory never below usage plus this many bytes")
	flag.IntVar(&p.MaxChangesPerMinute, "max-changes-per-minute", p.MaxChangesPerMinute, "changes per container per minute (an OOM kill is not counted)")
	flag.Float64Var(&p.FastThrottle, "fast-throttle", p.FastThrottle, "raise CPU at once when this fraction of a sample's CFS periods is throttled (0: off)")
	flag.Float64Var(&p.FastPressure, "fast-pressure", p.FastPressure, "raise at once when tasks stall (PSI, cgroup v2) this fraction of a sample (0: off)")
	flag.Float64Var(&p.FastMemory, "fast-memory", p.FastMemory, "raise memory at once at this fraction of its limit (0: off)")
	flag.Float64Var(&p.FastMaxStep, "fast-max-step", p.FastMaxStep, "largest fast raise as a fraction of the limit (3: four times)")
	var servingCert secureserving.CertFlags
	servingCert.AddFlags(flag.CommandLine)
	klog.InitFlags(nil)
	flag.Parse()
	if err := p.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-agent: policy:", err)
		os.Exit(2)
	}
	opts := agent.RunOptions{
		Node: *node, CgroupRoot: *root, Driver: cgroup.Driver(*driver), StandaloneDir: *standalone, Actuator: *actuator,
		Options: agent.Options{SampleInterval: *interval, Policy: p, DryRun: *dryRun}, ServeAddress: *serveAddr,
	}
	if err := servingCert.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "switchyard-agent:", err)
		os.Exit(2)
	}
	if *standalone == "" {
		opts.SecureServeAddress, opts.TLSCertFile, opts.TLSKeyFile = *secureAddr, servingCert.CertFile, servingCert.KeyFile
	}
	if opts.Driver != cgroup.Systemd && opts.Driver != cgroup.Cgroupfs {
		fmt.Fprintln(os.Stderr, "switchyard-agent: --cgroup-driver must be systemd or cgroupfs")
		os.Exit(2)
	}
	if *standalone == "" {
		config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
		if err != nil {
			fmt.Fprintln(os.Stderr, "switchyard-agent:", err)
			os.Exit(1)
		}
		config.UserAgent = "switchyard-agent"
		if opts.Client, err = kubernetes.NewForConfig(config); err != nil {
			fmt.Fprintln(os.Stderr, "switchyard-agent:", err)
			os.Exit(1)
		}
		if opts.Switchyard, err = versioned.NewForConfig(config); err != nil {
			fmt.Fprintln(os.Stderr, "switchyard-agent:", err)
			os.Exit(1)
		}
	}
	if *configurator_ != "" {
		opts.Configurator = &configurator.ClientOptions{URL: *configurator_, Service: "switchyard-agent", Pod: os.Getenv("POD_NAME"),
			Address: *advertise, TokenFile: *tokenFile, CAFile: *configCA}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := agent.Run(klog.NewContext(ctx, klog.Background()), opts); err != nil {
		klog.Background().Error(err, "Agent failed")
		os.Exit(1)
	}
}
