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
		Use:   "kubectl-switchyard",
		Short: "Inspect Switchyard queues; read and change services' runtime configuration",
		Long: "kubectl switchyard shows Switchyard's queues and why a pod waits, with your kubectl credentials,\n" +
			"and reads and changes services' runtime configuration through switchyard-configurator.\n\n" +
			"Shell completion: kubectl switchyard completion bash|zsh|fish|powershell --help. For completion\n" +
			"under kubectl itself, put an executable kubectl_complete-switchyard on your PATH that runs\n" +
			"kubectl-switchyard __complete \"$@\".",
		SilenceUsage:  true,
		SilenceErrors: false,
		// Help and usage name the command as users type it.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl switchyard"},
	}
	flags.AddFlags(cmd.PersistentFlags())
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	cmd.AddCommand(newQueuesCommand(flags, streams), newExplainCommand(flags, streams), newPendingCommand(flags, streams), newVersionCommand(flags, streams))
	addConfiguratorCommands(cmd, streams)
	return cmd
}
