// Package scheduler lists the out-of-tree plugins that Switchyard adds to the
// upstream kube-scheduler. Every plugin joins here, once, so that the
// scheduler binary, its tests and the benchmarks build the same scheduler.
package scheduler

import (
	"github.com/spf13/cobra"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	// Typed, defaulted Args of every plugin below join the scheduler's scheme.
	_ "github.com/switchyard-sched/switchyard/pkg/apis/config/scheme"
	"github.com/switchyard-sched/switchyard/pkg/scheduler/plugins/calcset"
	"github.com/switchyard-sched/switchyard/pkg/scheduler/plugins/usageaware"
)

// Options returns the app.Option that registers every Switchyard plugin with
// the upstream scheduler command. Profiles in the KubeSchedulerConfiguration
// decide which of them run.
func Options() []app.Option {
	return []app.Option{
		app.WithPlugin(calcset.Name, calcset.New),
		app.WithPlugin(usageaware.Name, usageaware.New),
	}
}

// NewSchedulerCommand is the upstream kube-scheduler command with Switchyard's
// plugins registered: upstream flags, leader election, metrics and health
// endpoints stay exactly as upstream ships them.
func NewSchedulerCommand(extra ...app.Option) *cobra.Command {
	return app.NewSchedulerCommand(append(Options(), extra...)...)
}
