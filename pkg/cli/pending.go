package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	visibility "github.com/switchyard-sched/switchyard/pkg/apis/visibility/v1alpha1"
)

func newPendingCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var output string
	limit := visibility.DefaultLimit
	cmd := &cobra.Command{
		Use:   "pending [QUEUE]",
		Short: "Pods waiting for admission in queue order: position, the limit that holds each, and an estimate",
		Long: "pending asks the coordinator's visibility API (" + visibility.APIServiceName + "), through the API\n" +
			"server with your kubectl credentials, where waiting pods stand.\n\n" +
			"With QUEUE it lists that queue's pods from every namespace (the switchyard-queue-pending-viewer\n" +
			"ClusterRole grants it); without, the pods of the current namespace (-n) in every queue (the view\n" +
			"role grants it). HELD BY names the limit that holds the pod, or the pods ahead of it; ESTIMATE is\n" +
			"when it should go if its queue keeps admitting as it has (-o wide says what the estimate rests on).",
		Example: "  kubectl switchyard pending batch\n" +
			"  kubectl switchyard pending -n team-a -o wide\n" +
			"  kubectl switchyard pending batch --limit 20 -o json",
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeQueues(flags),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutputFormat(output); err != nil {
				return err
			}
			if limit < 1 || limit > visibility.MaxLimit {
				return fmt.Errorf("--limit %d: want a number from 1 to %d", limit, visibility.MaxLimit)
			}
			target := PendingTarget{}
			if len(args) == 1 {
				target.Queue = args[0]
			} else {
				ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
				if err != nil {
					return err
				}
				target.Namespace = ns
			}
			config, err := flags.ToRESTConfig()
			if err != nil {
				return err
			}
			client, err := kubernetes.NewForConfig(config)
			if err != nil {
				return err
			}
			list, err := FetchPending(cmd.Context(), client, target, limit)
			if err != nil {
				return errors.New(DescribeVisibilityError(err, target))
			}
			if len(list.Items) == 0 && output != outputJSON && output != outputYAML {
				fmt.Fprintf(streams.ErrOut, "No pods wait for admission in %s.\n", target)
				return nil
			}
			return PrintPending(streams.Out, list, target, output, time.Now())
		},
	}
	cmd.Flags().IntVar(&limit, "limit", limit, fmt.Sprintf("most pods to list, the first ones in queue order (1 to %d)", visibility.MaxLimit))
	addOutputFlag(cmd, &output)
	return cmd
}

// PendingTarget is what pending lists: one queue's pods (Queue), or one
// namespace's pods in every queue (Namespace).
type PendingTarget struct {
	Queue, Namespace string
}

// String names the target as a sentence does.
func (t PendingTarget) String() string {
	if t.Queue != "" {
		return "queue " + t.Queue
	}
	return "namespace " + t.Namespace
}

// path is the target's path in the visibility API.
func (t PendingTarget) path() []string {
	if t.Queue != "" {
		return []string{"/apis", visibility.GroupName, visibility.Version, visibility.QueuesResource, t.Queue, visibility.PendingPodsSubresource}
	}
	return []string{"/apis", visibility.GroupName, visibility.Version, "namespaces", t.Namespace, visibility.PendingPodsResource}
}

// FetchPending asks the visibility API, through the API server with the
// caller's credentials, for the target's first limit pending pods.
func FetchPending(ctx context.Context, client kubernetes.Interface, target PendingTarget, limit int) (*visibility.PendingPodList, error) {
	result := client.CoreV1().RESTClient().Get().AbsPath(target.path()...).Param("limit", strconv.Itoa(limit)).Do(ctx)
	if err := result.Error(); err != nil {
		return nil, err
	}
	raw, err := result.Raw()
	if err != nil {
		return nil, err
	}
	var list visibility.PendingPodList
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("reading the visibility API's answer: %w", err)
	}
	return &list, nil
}

// DescribeVisibilityError says what a failed visibility request means for
// the user and what to do about it: the coordinator's own answers (an
// unknown queue, no leader yet) pass through; the API server's 404 means
// the APIService is not registered, and a 403 names the role that grants
// the request.
func DescribeVisibilityError(err error, target PendingTarget) string {
	var status apierrors.APIStatus
	fromCoordinator := errors.As(err, &status) && status.Status().Details != nil && status.Status().Details.Group == visibility.GroupName
	switch {
	case apierrors.IsNotFound(err) && fromCoordinator:
		return err.Error()
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("the visibility API (%s) is not registered in this cluster (manifests/coordinator/visibility.yaml)", visibility.APIServiceName)
	case apierrors.IsForbidden(err) && target.Queue != "":
		return fmt.Sprintf("your credentials may not get queues/pendingpods.%s for queue %s (the switchyard-queue-pending-viewer ClusterRole grants it; "+
			"without QUEUE, pending lists your namespace's pods)", visibility.GroupName, target.Queue)
	case apierrors.IsForbidden(err):
		return fmt.Sprintf("your credentials may not list pendingpods.%s in namespace %s (the view role grants it)", visibility.GroupName, target.Namespace)
	case apierrors.IsServiceUnavailable(err):
		return fmt.Sprintf("the visibility API is unavailable: %v (is switchyard-coordinator running? kubectl get apiservice %s)", err, visibility.APIServiceName)
	}
	return err.Error()
}

// PrintPending writes the pending pods as a table, or as JSON or YAML.
// A queue's table names each pod's namespace; a namespace's names each
// pod's queue.
func PrintPending(w io.Writer, list *visibility.PendingPodList, target PendingTarget, output string, now time.Time) error {
	if done, err := printStructured(w, output, list); done {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	where := "NAMESPACE"
	if target.Queue == "" {
		where = "QUEUE"
	}
	header := "POSITION\t" + where + "\tNAME\tPRIORITY\tAGE\tHELD BY\tESTIMATE"
	if output == outputWide {
		header += "\tCALCSET\tESTIMATE BASIS"
	}
	fmt.Fprintln(tw, header)
	for _, p := range list.Items {
		place := p.Namespace
		if target.Queue == "" {
			place = p.Queue
		}
		estimate := "-"
		if p.EstimatedAdmission != nil {
			estimate = "in " + duration.HumanDuration(p.EstimatedAdmission.Sub(now))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s", p.Position, place, p.Name, p.Priority,
			duration.HumanDuration(now.Sub(p.CreationTimestamp.Time)), p.HeldBy, estimate)
		if output == outputWide {
			calcSet := p.CalcSet
			if calcSet == "" {
				calcSet = "-"
			}
			fmt.Fprintf(tw, "\t%s\t%s", calcSet, p.EstimateBasis)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
