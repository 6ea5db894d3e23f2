// Command demo runs Switchyard end to end on a local control plane: etcd
// and kube-apiserver built from vendor/, simulated nodes in two zones, the
// scheduler with the shipped profiles, the coordinator with the example
// Queues, and a small mixed workload that picks queues by label. It prints
// where each pod landed and how long it waited, then shows the configurator
// sending one change to three replicas and one to pod number 1, then stops (or, with
// --keep, waits for Ctrl-C and prints a kubeconfig to look around with).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/cli"
	"github.com/switchyard-sched/switchyard/pkg/coordinator"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

func main() {
	keep := flag.Bool("keep", false, "leave the control plane running after the table; stop with Ctrl-C")
	nodes := flag.Int("nodes", 6, "simulated nodes (4 CPU, 16Gi each, over two zones)")
	verbose := flag.Bool("show-control-plane", false, "show etcd's and kube-apiserver's output")
	klog.InitFlags(nil)
	flag.Parse()
	_ = flag.Set("stderrthreshold", "FATAL")
	_ = flag.Set("legacy_stderr_threshold_behavior", "false")
	// Components log to a file; the demo prints its own story.
	logFile, err := os.CreateTemp("", "switchyard-demo-*.log")
	if err == nil {
		klog.LogToStderr(false)
		klog.SetOutput(logFile)
		defer logFile.Close()
	}
	if err := run(*keep, *nodes, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		if logFile != nil {
			fmt.Fprintln(os.Stderr, "component logs:", logFile.Name())
		}
		os.Exit(1)
	}
}

func run(keep bool, nodeCount int, verbose bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = klog.NewContext(ctx, klog.Background())

	step("starting etcd and kube-apiserver (built from vendor/), with the Queue CRD")
	cluster, err := localcluster.Start(ctx, localcluster.Options{ShowOutput: verbose})
	if err != nil {
		return err
	}
	defer func() {
		stop() // close every watch first, so the API server stops at once
		step("stopping the control plane")
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
		}
	}()
	if err := cluster.StartKubelets(ctx); err != nil {
		return err
	}
	step(fmt.Sprintf("registering %d simulated nodes in two zones", nodeCount))
	for zone := range 2 {
		spec := localcluster.NodeSpec{CPU: "4", Memory: "16Gi", Labels: map[string]string{corev1.LabelTopologyZone: fmt.Sprintf("zone-%c", 'a'+zone)}}
		count := nodeCount / 2
		if zone == 0 {
			count += nodeCount % 2
		}
		if _, err := cluster.CreateNodes(ctx, fmt.Sprintf("node-%c", 'a'+zone), count, spec); err != nil {
			return err
		}
	}
	step("starting switchyard-scheduler with manifests/scheduler/config.yaml")
	config, err := localcluster.ShippedSchedulerConfig()
	if err != nil {
		return err
	}
	scheduler, err := cluster.StartScheduler(ctx, localcluster.SchedulerOptions{Config: config})
	if err != nil {
		return err
	}
	defer scheduler.Stop()

	step("creating the Queues of manifests/examples/queues.yaml and starting switchyard-coordinator")
	if err := cluster.ApplyKind(ctx, "Queue", "manifests/examples/queues.yaml"); err != nil {
		return err
	}
	// With its secure port, registered with the API server's aggregation
	// layer as the shipped APIService, so that kubectl switchyard pending
	// and explain reach the visibility API with kubectl credentials.
	visPort, err := localcluster.FreePort()
	if err != nil {
		return err
	}
	cert, err := localcluster.NewServingCert(cluster.WorkDir(), localcluster.VisibilityServerName)
	if err != nil {
		return err
	}
	coord, err := cluster.StartCoordinator(ctx, coordinator.Options{VisibilityAddress: fmt.Sprintf("127.0.0.1:%d", visPort),
		VisibilityCertFile: cert.CertFile, VisibilityKeyFile: cert.KeyFile})
	if err != nil {
		return err
	}
	defer func() { _ = coord.Stop() }()
	caBundle, err := os.ReadFile(cert.CertFile)
	if err != nil {
		return err
	}
	if err := cluster.ServeVisibility(ctx, visPort, caBundle); err != nil {
		return err
	}
	const ns = "demo"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		return err
	}
	for queue, profile := range map[string]string{"batch": "switchyard-batch", "latency": "switchyard-latency", "general": "switchyard"} {
		if err := cluster.WaitForRouting(ctx, ns, queue, profile); err != nil {
			return err
		}
	}

	bound := map[types.UID]time.Time{}
	var mu sync.Mutex
	observer, err := cluster.ObservePods(ctx, ns, func(_ map[types.UID]*corev1.Pod, p *corev1.Pod) error {
		mu.Lock()
		defer mu.Unlock()
		if _, seen := bound[p.UID]; !seen && p.Spec.NodeName != "" {
			bound[p.UID] = time.Now()
		}
		return nil
	})
	if err != nil {
		return err
	}
	workload := []struct {
		prefix, queue, cpu, memory string
		count                      int
	}{
		{"batch", "batch", "1", "2Gi", 12},
		{"web", "latency", "250m", "256Mi", 4},
		{"api", "", "500m", "512Mi", 2},
		{"typo", "btach", "100m", "128Mi", 1},
	}
	created := map[string]time.Time{}
	total := 0
	for _, w := range workload {
		for i := range w.count {
			labels := map[string]string{"app.kubernetes.io/part-of": "demo"}
			if w.queue != "" {
				labels[v1alpha1.QueueLabel] = w.queue
			}
			pod := localcluster.Pod(ns, fmt.Sprintf("%s-%d", w.prefix, i), localcluster.PodSpec{
				SchedulerName: v1alpha1.RouterSchedulerName, CPU: w.cpu, Memory: w.memory, Labels: labels,
			})
			created[pod.Name] = time.Now()
			if _, err := cluster.CreatePods(ctx, pod); err != nil {
				return err
			}
			total++
		}
	}
	step(fmt.Sprintf("submitted %d pods with schedulerName: switchyard and a queue label (or none, or a typo); waiting until all are bound", total))
	pods, err := cluster.WaitForBound(ctx, ns, "app.kubernetes.io/part-of=demo", total, 2*time.Minute)
	observer.Stop()
	if err != nil {
		return err
	}
	mu.Lock()
	printPlacements(pods, created, bound)
	mu.Unlock()

	time.Sleep(1500 * time.Millisecond) // one status interval, so the counts are current
	sy, err := versioned.NewForConfig(cluster.Config)
	if err != nil {
		return err
	}
	list, err := sy.SwitchyardV1alpha1().Queues().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	fmt.Println("\n$ kubectl switchyard queues")
	if err := cli.PrintQueues(os.Stdout, list.Items, "wide", time.Now()); err != nil {
		return err
	}

	if err := demoWaiting(ctx, cluster, sy, ns); err != nil {
		return err
	}

	if err := demoConfigurator(ctx, cluster); err != nil {
		return err
	}

	if keep {
		fmt.Printf("\nThe control plane keeps running. Look around with:\n  export KUBECONFIG=%s\n  %s/kubectl get queues\n  %s/kubectl get pods -n %s -o wide\n  go run ./cmd/kubectl-switchyard queues\nPress Ctrl-C to stop.\n",
			cluster.KubeconfigPath, cluster.ToolsDir, cluster.ToolsDir, ns)
		<-ctx.Done()
	}
	return nil
}

func printPlacements(pods []corev1.Pod, created map[string]time.Time, bound map[types.UID]time.Time) {
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POD\tLABEL\tQUEUE\tPROFILE\tNODE\tCREATE->BOUND")
	for _, p := range pods {
		label := p.Labels[v1alpha1.QueueLabel]
		if label == "" {
			label = "-"
		}
		wait := "?"
		if t, ok := bound[p.UID]; ok {
			wait = t.Sub(created[p.Name]).Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, label, p.Annotations[v1alpha1.RoutedQueueAnnotation], p.Spec.SchedulerName, p.Spec.NodeName, wait)
	}
	fmt.Println()
	_ = w.Flush()
	fmt.Printf("\n%d pods on %d nodes. batch is rate-limited (5/s after a burst of 5) and packed; latency is spread;\n"+
		"no label and the typo 'btach' went to the default queue 'general' (the typo got an UnknownQueue Warning Event).\n",
		len(pods), len(localcluster.PodsPerNode(pods)))
}

func step(msg string) { fmt.Printf("==> %s\n", msg) }

// demoWaiting fills a Queue held at maxAdmitted 0 and shows, through the
// visibility API, where each of its pods stands and why it waits.
func demoWaiting(ctx context.Context, cluster *localcluster.Cluster, sy versioned.Interface, ns string) error {
	step("a Queue \"held\" with maxAdmitted: 0 and 3 pods in it: where each stands, and why")
	queue := &v1alpha1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "held"},
		Spec: v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](0)}}
	if _, err := sy.SwitchyardV1alpha1().Queues().Create(ctx, queue, metav1.CreateOptions{}); err != nil {
		return err
	}
	if err := cluster.WaitForRouting(ctx, ns, "held", "switchyard-batch"); err != nil {
		return err
	}
	for i := 1; i <= 3; i++ {
		pod := localcluster.Pod(ns, fmt.Sprintf("held-%d", i), localcluster.PodSpec{SchedulerName: v1alpha1.RouterSchedulerName,
			CPU: "100m", Memory: "128Mi", Labels: map[string]string{v1alpha1.QueueLabel: "held"}})
		if _, err := cluster.CreatePods(ctx, pod); err != nil {
			return err
		}
	}
	client, err := kubernetes.NewForConfig(cluster.Config)
	if err != nil {
		return err
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := cli.FetchPending(ctx, client, cli.PendingTarget{Queue: "held"}, 10)
		return err == nil && len(list.Items) == 3, nil
	}); err != nil {
		return fmt.Errorf("the held pods did not show in the visibility API: %w", err)
	}
	for _, args := range [][]string{{"pending", "held"}, {"explain", ns + "/held-3"}} {
		fmt.Printf("\n$ kubectl switchyard %s\n", strings.Join(args, " "))
		cmd := cli.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
		cmd.SetArgs(append(args, "--kubeconfig", cluster.KubeconfigPath))
		if err := cmd.ExecuteContext(ctx); err != nil {
			return err
		}
	}
	fmt.Println()
	return nil
}
