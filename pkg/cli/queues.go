package cli

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
)

func newQueuesCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "Per-queue table of pending, admitted and scheduled pods and the oldest waiting pod",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(output); err != nil {
				return err
			}
			config, err := flags.ToRESTConfig()
			if err != nil {
				return err
			}
			sy, err := versioned.NewForConfig(config)
			if err != nil {
				return err
			}
			list, err := sy.SwitchyardV1alpha1().Queues().List(cmd.Context(), metav1.ListOptions{})
			if err != nil {
				return fmt.Errorf("listing queues (is the Queue CRD installed?): %w", err)
			}
			return PrintQueues(streams.Out, list.Items, output, time.Now())
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// PrintQueues writes the queues as a table (or JSON), default queue marked.
func PrintQueues(w io.Writer, queues []v1alpha1.Queue, output string, now time.Time) error {
	sort.Slice(queues, func(i, j int) bool { return queues[i].Name < queues[j].Name })
	if done, err := printStructured(w, output, queues); done {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "QUEUE\tPROFILE\tPENDING\tADMITTED\tSCHEDULED\tOLDEST WAITING\tREADY"
	if output == "wide" {
		header += "\tPRIORITY\tWEIGHT\tLIMITS"
	}
	fmt.Fprintln(tw, header)
	for _, q := range queues {
		name := q.Name
		if q.Spec.Default {
			name += " (default)"
		}
		oldest := "-"
		if t := q.Status.OldestPendingSince; t != nil && q.Status.Pending > 0 {
			oldest = duration.HumanDuration(now.Sub(t.Time))
		}
		ready := "Unknown"
		if c := meta.FindStatusCondition(q.Status.Conditions, v1alpha1.QueueReady); c != nil {
			ready = string(c.Status)
			if c.Status != metav1.ConditionTrue {
				for _, other := range q.Status.Conditions {
					if other.Type != v1alpha1.QueueReady && other.Status == metav1.ConditionTrue {
						ready += " (" + other.Reason + ")"
					}
				}
			}
		}
		profile := q.Spec.Profile
		if q.Spec.External != nil {
			profile = "external:" + q.Spec.External.AMQPQueue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s", name, profile, q.Status.Pending, q.Status.Admitted, q.Status.Scheduled, oldest, ready)
		if output == "wide" {
			fmt.Fprintf(tw, "\t%d\t%d\t%s", q.Spec.Priority, q.Spec.Weight, limits(q.Spec))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func limits(s v1alpha1.QueueSpec) string {
	out := ""
	add := func(part string) {
		if out != "" {
			out += ","
		}
		out += part
	}
	if s.MaxAdmitted != nil {
		add(fmt.Sprintf("maxAdmitted=%d", *s.MaxAdmitted))
	}
	names := make([]string, 0, len(s.Quota))
	for name := range s.Quota {
		names = append(names, string(name))
	}
	sort.Strings(names)
	for _, name := range names {
		q := s.Quota[corev1.ResourceName(name)]
		add(fmt.Sprintf("%s=%s", name, q.String()))
	}
	if s.AdmissionRate != nil {
		add(fmt.Sprintf("rate=%s/s", s.AdmissionRate.PodsPerSecond.String()))
	}
	if out == "" {
		return "none"
	}
	return out
}
