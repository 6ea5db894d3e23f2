package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats of the -o flag, as kubectl names them.
const (
	outputTable = ""
	outputWide  = "wide"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// addOutputFlag adds -o/--output to cmd, with completion of its values.
func addOutputFlag(cmd *cobra.Command, output *string) {
	cmd.Flags().StringVarP(output, "output", "o", outputTable, "output format: json, yaml or wide (default: a table)")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{outputJSON, outputYAML, outputWide}, cobra.ShellCompDirectiveNoFileComp
	})
}

// checkOutputFormat refuses an -o value before any call is made.
func checkOutputFormat(output string) error {
	switch output {
	case outputTable, outputWide, outputJSON, outputYAML:
		return nil
	}
	return fmt.Errorf("--output %q is not a format: use json, yaml or wide, or leave it out for a table", output)
}

// printStructured writes v as JSON or YAML when output asks for one, and
// says whether it did.
func printStructured(w io.Writer, output string, v any) (bool, error) {
	switch output {
	case outputJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case outputYAML:
		data, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = w.Write(data)
		return true, err
	}
	return false, nil
}
