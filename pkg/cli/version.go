package cli

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/discovery"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// VersionInfo is what `kubectl switchyard version` reports.
type VersionInfo struct {
	// Client is this plugin's build.
	Client BuildInfo `json:"client"`
	// Server is the cluster's, unless --client.
	Server *ServerInfo `json:"server,omitempty"`
}

// BuildInfo describes a binary: module version, commit and Go version,
// from the build information the Go toolchain embeds.
type BuildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
}

// ServerInfo is the API server's version and whether it serves
// Switchyard's API.
type ServerInfo struct {
	Kubernetes string `json:"kubernetes"`
	// SwitchyardAPI is the served switchyard.io version, empty when the
	// CRDs are not installed.
	SwitchyardAPI string `json:"switchyardAPI,omitempty"`
}

// version is set at release builds:
// go build -ldflags "-X github.com/switchyard-sched/switchyard/pkg/cli.version=v0.2.0".
var version string

// Build reads this binary's build information.
func Build() BuildInfo {
	b := BuildInfo{Version: "(devel)", GoVersion: "unknown"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.GoVersion = info.GoVersion
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	if version != "" {
		b.Version = version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func newVersionCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var output string
	var clientOnly bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "This plugin's version and the cluster's (Kubernetes, and whether it serves Switchyard's API)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(output); err != nil {
				return err
			}
			v := VersionInfo{Client: Build()}
			var serverErr error
			if !clientOnly {
				v.Server, serverErr = serverInfo(flags)
			}
			if err := PrintVersion(streams.Out, v, output); err != nil {
				return err
			}
			if serverErr != nil {
				return fmt.Errorf("reading the server's version (use --client for this plugin's alone): %w", serverErr)
			}
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	cmd.Flags().BoolVar(&clientOnly, "client", false, "only this plugin's version; do not contact the cluster")
	return cmd
}

func serverInfo(flags *genericclioptions.ConfigFlags) (*ServerInfo, error) {
	config, err := flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return nil, err
	}
	sv, err := dc.ServerVersion()
	if err != nil {
		return nil, err
	}
	out := &ServerInfo{Kubernetes: sv.GitVersion}
	if _, err := dc.ServerResourcesForGroupVersion(v1alpha1.SchemeGroupVersion.String()); err == nil {
		out.SwitchyardAPI = v1alpha1.SchemeGroupVersion.String()
	}
	return out, nil
}

// PrintVersion writes the versions as lines (or JSON or YAML).
func PrintVersion(w io.Writer, v VersionInfo, output string) error {
	if done, err := printStructured(w, output, v); done {
		return err
	}
	commit := v.Client.Commit
	if commit == "" {
		commit = "unknown"
	} else if v.Client.Modified {
		commit += " (modified)"
	}
	fmt.Fprintf(w, "Client: kubectl-switchyard %s, commit %s, %s\n", v.Client.Version, commit, v.Client.GoVersion)
	if v.Server == nil {
		return nil
	}
	api := v.Server.SwitchyardAPI
	if api == "" {
		api = "not served (install the CRDs: kubectl apply --server-side -k manifests/crds)"
	}
	fmt.Fprintf(w, "Server: Kubernetes %s, Switchyard API %s\n", v.Server.Kubernetes, api)
	return nil
}
