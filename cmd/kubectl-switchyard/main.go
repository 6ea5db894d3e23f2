// Command kubectl-switchyard is a kubectl plugin (`kubectl switchyard ...`)
// that answers "what is waiting where" for Switchyard queues.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/switchyard-sched/switchyard/pkg/cli"
)

func main() {
	cmd := cli.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
