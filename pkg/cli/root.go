// Package cli implements the kubectl-switchyard plugin's commands.
package cli

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// NewCommand builds `kubectl switchyard` with the standard kubectl flags
// (--kubeconfig, --context, ...).
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	cmd := &cobra.Command{
		Use:           "kubectl-switchyard",
		Short:         "Inspect Switchyard queues; read and change services' runtime configuration",
		SilenceUsage:  true,
		SilenceErrors: false,
	}
	flags.AddFlags(cmd.PersistentFlags())
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.AddCommand(newQueuesCommand(flags, streams), newExplainCommand(flags, streams))
	addConfiguratorCommands(cmd, streams)
	return cmd
}
