package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	visibility "github.com/switchyard-sched/switchyard/pkg/apis/visibility/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
)

// The Event reasons explain reports, with what each means for the pod.
var explainedReasons = map[string]bool{
	"Queued": true, "UnknownQueue": true, "Stranded": true, "CalcSetCannotFit": true, "AdmittedTimeout": true,
	"ExternalSchedulingGaveUp": true, "AdmissionFailed": true, "FailedScheduling": true, "Scheduled": true,
}

func newExplainCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "explain [NAMESPACE/]POD",
		Short: "Why a pod waits: its route, its queue, the limit that holds it, and the scheduler's last word",
		Long: "explain reads what your own credentials may read (the pod, its Events, its Queue) and says where\n" +
			"the pod stands: routed to which queue and profile, waiting for admission and held by which limit,\n" +
			"admitted (when, by which rule) and, if still unbound, the scheduler's last failure.",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completePods(flags),
		RunE: func(cmd *cobra.Command, args []string) error {
			namespace, name := "", args[0]
			if ns, pod, found := strings.Cut(args[0], "/"); found {
				namespace, name = ns, pod
			}
			if namespace == "" {
				ns, _, err := flags.ToRawKubeConfigLoader().Namespace()
				if err != nil {
					return err
				}
				namespace = ns
			}
			config, err := flags.ToRESTConfig()
			if err != nil {
				return err
			}
			client, err := kubernetes.NewForConfig(config)
			if err != nil {
				return err
			}
			sy, err := versioned.NewForConfig(config)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			pod, err := client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("pod %s not found in namespace %s: name it as NAMESPACE/POD or pass -n NAMESPACE", name, namespace)
			}
			if err != nil {
				return err
			}
			events, err := client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
				FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(pod.UID)).String()})
			var eventsErr error
			if err != nil {
				eventsErr, events = err, &corev1.EventList{}
			}
			var queue *v1alpha1.Queue
			var queueErr error
			if q := pod.Annotations[v1alpha1.RoutedQueueAnnotation]; q != "" {
				queue, queueErr = sy.SwitchyardV1alpha1().Queues().Get(ctx, q, metav1.GetOptions{})
			}
			x := Explanation{Pod: pod, Queue: queue, QueueErr: queueErr, Events: events.Items, EventsErr: eventsErr}
			if v1alpha1.HasAdmissionGate(pod) {
				x.Standing, x.StandingErr = FetchStanding(ctx, client, pod)
			}
			return Explain(streams.Out, x, time.Now())
		},
	}
}

// Explanation is what explain found; the errors say what could not be read.
type Explanation struct {
	Pod       *corev1.Pod
	Queue     *v1alpha1.Queue
	QueueErr  error
	Events    []corev1.Event
	EventsErr error
	// Standing is the pod's place in its queue, from the visibility API.
	Standing    *visibility.PendingPod
	StandingErr error
}

// FetchStanding asks the visibility API (through the API server, with the
// caller's credentials) where a waiting pod stands in its queue.
func FetchStanding(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod) (*visibility.PendingPod, error) {
	list, err := FetchPending(ctx, client, PendingTarget{Namespace: pod.Namespace}, visibility.MaxLimit)
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		if list.Items[i].UID == pod.UID {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// position writes the pod's place in its queue and its estimate, or why
// they cannot be shown.
func position(line func(string, string, ...any), x Explanation, now time.Time) {
	switch err := x.StandingErr; {
	case err == nil && x.Standing == nil:
		line("Position", "not in the coordinator's queues yet (it is seen a moment after creation)")
	case err == nil:
		st := x.Standing
		line("Position", "%d in queue %s; held by %s", st.Position, st.Queue, st.HeldBy)
		if st.EstimatedAdmission != nil {
			line("Estimate", "in about %s (%s)", duration.HumanDuration(st.EstimatedAdmission.Sub(now)), st.EstimateBasis)
		} else {
			line("Estimate", "%s", st.EstimateBasis)
		}
	default:
		line("Position", "not available: %s", DescribeVisibilityError(err, PendingTarget{Namespace: x.Pod.Namespace}))
	}
}

// Explain writes where the pod stands, one fact per line.
func Explain(w io.Writer, x Explanation, now time.Time) error {
	pod := x.Pod
	line := func(key, format string, args ...any) {
		fmt.Fprintf(w, "%-10s %s\n", key+":", fmt.Sprintf(format, args...))
	}
	line("Pod", "%s/%s, created %s ago, schedulerName %s", pod.Namespace, pod.Name, duration.HumanDuration(now.Sub(pod.CreationTimestamp.Time)), pod.Spec.SchedulerName)
	routed, isRouted := pod.Annotations[v1alpha1.RoutedQueueAnnotation]
	requested, labelled := pod.Labels[v1alpha1.QueueLabel]
	switch {
	case !isRouted:
		line("Route", "not routed by Switchyard (created with schedulerName %s, or before routing existed)", pod.Spec.SchedulerName)
	case routed == "":
		line("Route", "no queue: no Queue matched and there is no default Queue; the profile %s schedules it", pod.Spec.SchedulerName)
	case labelled && requested != routed:
		line("Route", "label %s=%s names no Queue; routed to the default Queue %s, profile %s", v1alpha1.QueueLabel, requested, routed, pod.Spec.SchedulerName)
	default:
		line("Route", "Queue %s, profile %s", routed, pod.Spec.SchedulerName)
	}
	if q := x.Queue; q != nil {
		line("Queue", "%d pending, %d admitted, %d scheduled; limits %s%s", q.Status.Pending, q.Status.Admitted, q.Status.Scheduled, limits(q.Spec), trueConditions(q))
	} else if x.QueueErr != nil {
		if apierrors.IsForbidden(x.QueueErr) {
			line("Queue", "cannot read Queue %s with your credentials (get queues.switchyard.io)", routed)
		} else {
			line("Queue", "%v", x.QueueErr)
		}
	}
	events := relevantEvents(x.Events)
	switch {
	case pod.Spec.NodeName != "":
		line("State", "scheduled on node %s", pod.Spec.NodeName)
	case v1alpha1.HasAdmissionGate(pod):
		held := "not known yet (no Queued Event)"
		if e := lastEvent(events, "Queued"); e != nil {
			held = strings.TrimPrefix(e.Message, fmt.Sprintf("Waiting for admission in queue %q, ", routed))
			held += fmt.Sprintf(" (%s ago, when it started waiting)", duration.HumanDuration(now.Sub(eventTime(e))))
		}
		line("State", "waiting for admission; %s", held)
		position(line, x, now)
	default:
		state := "admitted, not yet bound"
		if r, ok := v1alpha1.AdmissionRecordOf(pod); ok {
			state = fmt.Sprintf("admitted %s ago by Queue %s after waiting %s (%s), not yet bound", duration.HumanDuration(now.Sub(r.Time.Time)), r.Queue, r.Waited, r.Limits)
		}
		line("State", "%s", state)
		if e := lastEvent(events, "FailedScheduling"); e != nil {
			line("Scheduler", "%s (%s ago)", e.Message, duration.HumanDuration(now.Sub(eventTime(e))))
		}
	}
	for _, e := range events {
		if e.Type == corev1.EventTypeWarning && e.Reason != "FailedScheduling" {
			line("Warning", "%s: %s", e.Reason, e.Message)
		}
	}
	if x.EventsErr != nil {
		line("Events", "cannot list the pod's Events: %v", x.EventsErr)
	}
	return nil
}

// trueConditions names the Queue's conditions that say something is wrong.
func trueConditions(q *v1alpha1.Queue) string {
	var out []string
	for _, c := range q.Status.Conditions {
		switch {
		case c.Type == v1alpha1.QueueReady && c.Status != metav1.ConditionTrue:
			out = append(out, "not Ready")
		case c.Type != v1alpha1.QueueReady && c.Type != v1alpha1.QueueRouted && c.Status == metav1.ConditionTrue:
			out = append(out, c.Type+": "+c.Message)
		}
	}
	if len(out) == 0 {
		return ""
	}
	return "; " + strings.Join(out, "; ")
}

// relevantEvents are the pod's Switchyard and scheduling Events, oldest
// first.
func relevantEvents(all []corev1.Event) []corev1.Event {
	var out []corev1.Event
	for _, e := range all {
		if explainedReasons[e.Reason] {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return eventTime(&out[i]).Before(eventTime(&out[j])) })
	return out
}

func lastEvent(events []corev1.Event, reason string) *corev1.Event {
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Reason == reason {
			return &events[i]
		}
	}
	return nil
}

// eventTime is when an Event last happened, whichever API wrote it.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// completeFirstArg completes a command's one argument with the names list
// returns (read with the kubectl flags' configuration) that start with what
// is typed so far.
func completeFirstArg(flags *genericclioptions.ConfigFlags, list func(ctx context.Context, config *rest.Config) ([]string, error)) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		config, err := flags.ToRESTConfig()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		all, err := list(cmd.Context(), config)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, name := range all {
			if strings.HasPrefix(name, toComplete) {
				names = append(names, name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeQueues completes Queue names.
func completeQueues(flags *genericclioptions.ConfigFlags) cobra.CompletionFunc {
	return completeFirstArg(flags, func(ctx context.Context, config *rest.Config) ([]string, error) {
		sy, err := versioned.NewForConfig(config)
		if err != nil {
			return nil, err
		}
		queues, err := sy.SwitchyardV1alpha1().Queues().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(queues.Items))
		for _, q := range queues.Items {
			names = append(names, q.Name)
		}
		return names, nil
	})
}

// completePods completes pod names in the namespace of -n (or the
// kubeconfig's), as kubectl does.
func completePods(flags *genericclioptions.ConfigFlags) cobra.CompletionFunc {
	return completeFirstArg(flags, func(ctx context.Context, config *rest.Config) ([]string, error) {
		namespace, _, err := flags.ToRawKubeConfigLoader().Namespace()
		if err != nil {
			return nil, err
		}
		client, err := kubernetes.NewForConfig(config)
		if err != nil {
			return nil, err
		}
		pods, err := client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(pods.Items))
		for _, p := range pods.Items {
			names = append(names, p.Name)
		}
		return names, nil
	})
}
