// Package integration runs Switchyard against a real kube-apiserver and etcd
// built from vendor/, with simulated nodes and kubelets. One control plane
// and one in-process scheduler serve every test in the package; each test
// works on its own nodes and namespace.
package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/cli"
	coordinatorpkg "github.com/switchyard-sched/switchyard/pkg/coordinator"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

var (
	// cluster is the control plane every test in this package talks to.
	cluster *localcluster.Cluster
	// coordinator is the running switchyard-coordinator; tests that restart
	// it replace it.
	coordinator *localcluster.RunningCoordinator
	// scheduler is the switchyard-scheduler every test's pods go to.
	scheduler *localcluster.RunningScheduler
	// visibilityAddress and visibilityCert are where the suite's
	// coordinator serves the visibility API, and with what certificate.
	visibilityAddress string
	visibilityCert    *localcluster.ServingCert
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Components log a lot; keep it in a file, named on failure.
	logFile, err := os.CreateTemp("", "switchyard-integration-*.log")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer logFile.Close()
	klog.LogToStderr(false)
	klog.SetOutput(logFile)
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Background()))
	defer cancel()
	// The Prometheus Operator's CRDs (generated from its vendored types) let
	// the API server check the shipped PodMonitors and PrometheusRule.
	cluster, err = localcluster.Start(ctx, localcluster.Options{CRDDirectoryPaths: []string{"manifests/crds", "test/crds/monitoring.coreos.com"}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting the local control plane: %v (logs: %s)\n", err, logFile.Name())
		return 1
	}
	defer func() {
		cancel() // close every watch first, so the API server stops at once
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the local control plane: %v\n", err)
		}
	}()
	if err := cluster.StartKubelets(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "starting simulated kubelets: %v\n", err)
		return 1
	}
	config, err := localcluster.ShippedSchedulerConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "reading the shipped scheduler configuration: %v\n", err)
		return 1
	}
	// Upstream's default client QPS (50) would cap binds at about 50/s.
	scheduler, err = cluster.StartScheduler(ctx, localcluster.SchedulerOptions{Config: config, QPS: 300, Burst: 600})
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting switchyard-scheduler: %v (logs: %s)\n", err, logFile.Name())
		return 1
	}
	defer scheduler.Stop()
	defer deleteDecisionExchange()
	// Kept across the coordinator restarts of the tests: the APIService
	// names it.
	port, err := localcluster.KeptPort()
	if err == nil {
		visibilityCert, err = localcluster.NewServingCert(cluster.WorkDir(), localcluster.VisibilityServerName)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "preparing the visibility API: %v\n", err)
		return 1
	}
	visibilityAddress = fmt.Sprintf("127.0.0.1:%d", port)
	if coordinator, err = cluster.StartCoordinator(ctx, coordinatorOptions(coordinatorpkg.Options{})); err != nil {
		fmt.Fprintf(os.Stderr, "starting switchyard-coordinator: %v (logs: %s)\n", err, logFile.Name())
		return 1
	}
	defer func() { _ = coordinator.Stop() }()
	caBundle, err := os.ReadFile(visibilityCert.CertFile)
	if err == nil {
		err = cluster.ServeVisibility(ctx, port, caBundle)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "registering the visibility API: %v (logs: %s)\n", err, logFile.Name())
		return 1
	}
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "component logs: %s\n", logFile.Name())
	}
	return code
}

// runID makes this run's names on the shared RabbitMQ unique.
var runID = fmt.Sprintf("switchyard-it-%d", time.Now().UnixNano())

// amqpURL is the RabbitMQ the tests use; CI starts one on these machines.
func amqpURL() string {
	if u := os.Getenv("SWITCHYARD_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// decisionExchange is this run's decision stream.
var decisionExchange = runID + ".decisions"

// coordinatorOptions completes a test's coordinator options with this
// run's broker settings, as every coordinator of the run uses them.
func coordinatorOptions(opts coordinatorpkg.Options) coordinatorpkg.Options {
	opts.AMQPURL = amqpURL()
	opts.DecisionExchange = decisionExchange
	opts.VisibilityAddress = visibilityAddress
	opts.VisibilityCertFile, opts.VisibilityKeyFile = visibilityCert.CertFile, visibilityCert.KeyFile
	return opts
}

func deleteDecisionExchange() { deleteExchange(decisionExchange) }

// deleteExchange removes an exchange this run declared on RabbitMQ.
func deleteExchange(name string) {
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_ = ch.ExchangeDelete(name, false, false)
	}
}

// kubectlSwitchyard runs `kubectl switchyard args...` in this process, as
// a user would, and returns what it printed (stdout and stderr together).
func kubectlSwitchyard(ctx context.Context, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := cli.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}
