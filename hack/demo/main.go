// Command demo runs Switchyard end to end on a local control plane: etcd
// and kube-apiserver built from vendor/, simulated nodes in two zones, the
// scheduler with the shipped profiles, and a small mixed workload. It prints
// where each pod landed, then stops (or, with --keep, waits for Ctrl-C and
// prints a kubeconfig to look around with).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/test/localcluster"
)

func main() {
	keep := flag.Bool("keep", false, "leave the control plane running after the table; stop with Ctrl-C")
	nodes := flag.Int("nodes", 6, "simulated nodes (4 CPU, 16Gi each, over two zones)")
	verbose := flag.Bool("show-control-plane", false, "show etcd's and kube-apiserver's output")
	klog.InitFlags(nil)
	_ = flag.Set("v", "0")
	flag.Parse()
	if err := run(*keep, *nodes, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(keep bool, nodeCount int, verbose bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = klog.NewContext(ctx, klog.Background())

	step("starting etcd and kube-apiserver (built from vendor/)")
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
	step(fmt.Sprintf("registering %d simulated nodes", nodeCount))
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

	const ns = "demo"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		return err
	}
	workload := []struct {
		prefix, profile, cpu, memory string
		count                        int
	}{
		{"batch", "switchyard-batch", "1", "2Gi", 6},
		{"web", "switchyard-latency", "250m", "256Mi", 4},
		{"api", "switchyard", "500m", "512Mi", 3},
	}
	total := 0
	for _, w := range workload {
		for i := range w.count {
			pod := localcluster.Pod(ns, fmt.Sprintf("%s-%d", w.prefix, i), localcluster.PodSpec{
				SchedulerName: w.profile, CPU: w.cpu, Memory: w.memory,
				Labels: map[string]string{"app.kubernetes.io/part-of": "demo"},
			})
			if _, err := cluster.CreatePods(ctx, pod); err != nil {
				return err
			}
			total++
		}
	}
	step(fmt.Sprintf("submitted %d pods to three profiles; waiting until all are bound", total))
	pods, err := cluster.WaitForBound(ctx, ns, "app.kubernetes.io/part-of=demo", total, 2*time.Minute)
	if err != nil {
		return err
	}
	printPlacements(pods)

	if keep {
		fmt.Printf("\nThe control plane keeps running. Look around with:\n  export KUBECONFIG=%s\n  %s/kubectl get pods -n %s -o wide\nPress Ctrl-C to stop.\n", cluster.KubeconfigPath, cluster.ToolsDir, ns)
		<-ctx.Done()
	}
	return nil
}

func printPlacements(pods []corev1.Pod) {
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POD\tPROFILE\tNODE\tREQUESTS")
	for _, p := range pods {
		req := p.Spec.Containers[0].Resources.Requests
		fmt.Fprintf(w, "%s\t%s\t%s\tcpu=%s mem=%s\n", p.Name, p.Spec.SchedulerName, p.Spec.NodeName, req.Cpu(), req.Memory())
	}
	fmt.Println()
	_ = w.Flush()
	perNode := localcluster.PodsPerNode(pods)
	fmt.Printf("\n%d pods on %d nodes: batch packed, web spread, api on the default profile.\n", len(pods), len(perNode))
}

func step(msg string) { fmt.Printf("==> %s\n", msg) }
