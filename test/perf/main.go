// Command perf measures Switchyard against the upstream kube-scheduler of
// the same vendored Kubernetes, side by side, in one run: a real
// kube-apiserver and etcd, simulated nodes, the same workloads, variants
// alternating round by round. It prints a markdown table with ratios and
// writes the same results as JSON, so commits can be compared.
//
//	go run ./test/perf -nodes 100,1000 -pods 1000 -rounds 2
//
// Variants:
//   - upstream: kube-scheduler built from vendor/, default configuration,
//     pods name default-scheduler;
//   - direct: switchyard-scheduler with the shipped profiles, pods name a
//     profile directly;
//   - routed: the same, plus switchyard-coordinator and Queues; pods name
//     schedulerName switchyard and a queue label, and the API server's
//     MutatingAdmissionPolicy routes them at creation.
//
// Scheduling workloads run in two modes: e2e creates the pods while the
// scheduler runs (first create to last bind); drain creates every pod
// first, with no scheduler running, then starts it (first bind to last).
//
// The admission workload measures the coordinator removing gates against
// the same PATCHes sent raw by this driver with as many workers. The
// calcset workload schedules the same pods in switchyard-batch without
// (plain) and with calculation-set labels, sets of 8 (calcset). The
// external workload routes the same pods through the coordinator either to
// the switchyard-batch profile (profile) or to an external queue on
// RabbitMQ bound by one switchyard-shortjob process (external).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/broker"

	"github.com/switchyard-sched/switchyard/test/localcluster"
)

type config struct {
	nodes       []int
	pods        int
	rounds      int
	workloads   []string
	switchyard  string
	coordinator string
	shortjob    string
	amqpURL     string
	modes       []string
	outDir      string
	// profile, in drain mode, saves a CPU profile of each scheduler run.
	profile      bool
	schedulerQPS float32
}

func main() {
	var cfg config
	nodes := flag.String("nodes", "100,1000", "comma-separated node counts (add 5000 on a big machine)")
	workloads := flag.String("workloads", "basic,anti-affinity,topology-spread,queues-mix,admission,admission-scale,calcset,external", "comma-separated workloads")
	flag.IntVar(&cfg.pods, "pods", 1000, "pods per run")
	flag.IntVar(&cfg.rounds, "rounds", 2, "rounds per workload; variants alternate within each round")
	flag.StringVar(&cfg.switchyard, "switchyard-scheduler", "_output/bin/switchyard-scheduler", "switchyard-scheduler binary")
	flag.StringVar(&cfg.coordinator, "switchyard-coordinator", "_output/bin/switchyard-coordinator", "switchyard-coordinator binary")
	flag.StringVar(&cfg.shortjob, "switchyard-shortjob", "_output/bin/switchyard-shortjob", "switchyard-shortjob binary (external workload)")
	flag.StringVar(&cfg.amqpURL, "amqp-url", envOr("SWITCHYARD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), "RabbitMQ for the external workload")
	modes := flag.String("modes", "e2e,drain", "comma-separated modes of the scheduling workloads: e2e (create while scheduling), drain (create first, then start the scheduler)")
	flag.BoolVar(&cfg.profile, "pprof", false, "drain mode: save a CPU profile of each scheduler run (first 5s of the drain) under -out")
	flag.StringVar(&cfg.outDir, "out", "_output/bench", "folder for results.json and results.md")
	qps := flag.Float64("scheduler-qps", 1000, "client QPS (and half the burst) of every scheduler; upstream's default of 50 would cap binds at 50/s")
	klog.InitFlags(nil)
	flag.Parse()
	cfg.schedulerQPS = float32(*qps)
	for _, n := range strings.Split(*nodes, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "perf: bad node count %q\n", n)
			os.Exit(2)
		}
		cfg.nodes = append(cfg.nodes, v)
	}
	cfg.workloads = strings.Split(*workloads, ",")
	for _, m := range strings.Split(*modes, ",") {
		switch m = strings.TrimSpace(m); m {
		case modeE2E, modeDrain:
			cfg.modes = append(cfg.modes, m)
		default:
			fmt.Fprintf(os.Stderr, "perf: unknown mode %q (want e2e or drain)\n", m)
			os.Exit(2)
		}
	}
	logFile, err := os.CreateTemp("", "switchyard-perf-*.log")
	if err == nil {
		klog.LogToStderr(false)
		klog.SetOutput(logFile)
		_ = flag.Set("stderrthreshold", "FATAL")
		_ = flag.Set("legacy_stderr_threshold_behavior", "false")
	}
	report, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "perf:", err)
		if logFile != nil {
			fmt.Fprintln(os.Stderr, "logs:", logFile.Name())
		}
		os.Exit(1)
	}
	if err := write(cfg.outDir, report); err != nil {
		fmt.Fprintln(os.Stderr, "perf:", err)
		os.Exit(1)
	}
}

func run(cfg config) (*Report, error) {
	defer deleteBrokerObjects(cfg.amqpURL)
	ctx := klog.NewContext(context.Background(), klog.Background())
	cluster, err := localcluster.Start(ctx, localcluster.Options{QPS: 5000, Burst: 5000,
		APIServerArgs: map[string]string{"max-requests-inflight": "2000", "max-mutating-requests-inflight": "1000"}})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		_ = cluster.Stop()
	}()
	host, _ := os.Hostname()
	report := &Report{
		Started: time.Now().UTC(), Host: host, Cores: runtime.NumCPU(), GoVersion: runtime.Version(),
		Pods: cfg.pods, Rounds: cfg.rounds,
	}
	b := &bench{cfg: cfg, cluster: cluster}
	for _, nodes := range cfg.nodes {
		progress("%d nodes", nodes)
		if err := b.setNodes(ctx, nodes); err != nil {
			return nil, err
		}
		for _, w := range cfg.workloads {
			results, err := b.workload(ctx, strings.TrimSpace(w), nodes)
			if err != nil {
				return nil, fmt.Errorf("workload %s on %d nodes: %w", w, nodes, err)
			}
			report.Results = append(report.Results, results...)
		}
	}
	return report, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func write(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), data, 0o644); err != nil {
		return err
	}
	md := r.Markdown()
	fmt.Print(md)
	fmt.Printf("\nwrote %s and %s\n", filepath.Join(dir, "results.json"), filepath.Join(dir, "results.md"))
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(md), 0o644)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// deleteBrokerObjects removes what the external workload declared on
// RabbitMQ, so runs leave nothing behind.
func deleteBrokerObjects(url string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for _, q := range []string{externalAMQPQueue, broker.DeadLetterQueue(externalAMQPQueue), broker.RetryQueue(externalAMQPQueue)} {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
	_ = ch.ExchangeDelete(externalAMQPQueue+".decisions", false, false)
}
