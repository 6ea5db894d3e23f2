package localcluster

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/coordinator"
)

// RunningCoordinator is a coordinator started by StartCoordinator.
type RunningCoordinator struct {
	// Registry holds its metrics.
	Registry *prometheus.Registry
	cancel   context.CancelFunc
	done     chan struct{}
	err      error
}

// Stop stops the coordinator, releasing its lease, and waits for it.
func (r *RunningCoordinator) Stop() error {
	r.cancel()
	<-r.done
	return r.err
}

// StartCoordinator runs switchyard-coordinator in this process, with leader
// election on as in production, and waits until its routing policy exists.
func (c *Cluster) StartCoordinator(ctx context.Context, opts coordinator.Options) (*RunningCoordinator, error) {
	if err := c.CreateNamespace(ctx, "switchyard-system"); err != nil {
		return nil, err
	}
	opts.LeaderElect = true
	if len(opts.Profiles) == 0 {
		shipped, err := ShippedSchedulerConfig()
		if err != nil {
			return nil, err
		}
		if opts.Profiles, err = coordinator.ProfilesFromSchedulerConfig(shipped); err != nil {
			return nil, err
		}
	}
	if opts.LeaseName == "" {
		opts.LeaseName = "switchyard-coordinator"
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	config := rest.CopyConfig(c.Config)
	config.QPS, config.Burst = 500, 1000
	ctx, cancel := context.WithCancel(ctx)
	r := &RunningCoordinator{Registry: opts.Registry, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = coordinator.Run(ctx, config, opts)
	}()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := c.Client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Get(ctx, v1alpha1.RoutingPolicyName, metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		_ = r.Stop()
		return nil, fmt.Errorf("the coordinator did not create its routing policy: %w", err)
	}
	return r, nil
}

// WaitForRouting waits until the API server routes a pod labelled for queue
// to profile, probing with server-side dry-run creates: the policy reaches
// the API server's admission chain a moment after it is written.
func (c *Cluster) WaitForRouting(ctx context.Context, namespace, queue, profile string) error {
	probe := Pod(namespace, "routing-probe", PodSpec{SchedulerName: "switchyard"})
	if queue != "" {
		probe.Labels = map[string]string{"switchyard.io/queue": queue}
	}
	var last string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		created, err := c.Client.CoreV1().Pods(namespace).Create(ctx, probe.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			if apierrors.IsNotFound(err) {
				return false, err // namespace missing
			}
			last = err.Error()
			return false, nil
		}
		routedTo := created.Annotations[v1alpha1.RoutedQueueAnnotation]
		last = fmt.Sprintf("schedulerName %q, routed to queue %q", created.Spec.SchedulerName, routedTo)
		// The profile alone proves nothing for a queue whose profile is
		// "switchyard" itself: the annotation shows the queue's route exists.
		return created.Spec.SchedulerName == profile && (queue == "" || routedTo == queue), nil
	})
	if err != nil {
		return fmt.Errorf("pods for queue %q are not routed to %q (last: %s): %w", queue, profile, last, err)
	}
	return nil
}
