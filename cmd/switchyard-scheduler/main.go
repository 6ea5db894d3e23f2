// Command switchyard-scheduler is the upstream kube-scheduler with
// Switchyard's plugins registered. Each Switchyard queue is served by one
// named profile of this binary.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client metrics, as upstream
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as upstream

	"github.com/switchyard-sched/switchyard/pkg/scheduler"
)

func main() {
	os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
}
