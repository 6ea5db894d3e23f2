package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-sched/switchyard/pkg/configurator"
)

// TestOutputFormats: every listing takes -o json, yaml and wide, and the
// structured forms decode back to what was printed.
func TestOutputFormats(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	replicas := []configurator.ReplicaInfo{{PodNumber: 0, Namespace: "shop", Pod: "web-0", Address: "http://10.0.0.7:8080", State: "healthy",
		LastSeen: now.Add(-2 * time.Second), AppliedEpoch: "e1", AppliedVersion: 3, WantVersion: 3}}
	services := []configurator.ServiceInfo{{Name: "web", Replicas: 1, Healthy: 1, Version: 3}}
	for _, tc := range []struct {
		name   string
		print  func(output string) (string, error)
		decode any
		wide   string
	}{
		{"replicas", func(o string) (string, error) {
			var b bytes.Buffer
			err := PrintReplicas(&b, append([]configurator.ReplicaInfo(nil), replicas...), o, now)
			return b.String(), err
		}, &[]configurator.ReplicaInfo{}, "http://10.0.0.7:8080"},
		{"services", func(o string) (string, error) {
			var b bytes.Buffer
			err := PrintServices(&b, services, o)
			return b.String(), err
		}, &[]configurator.ServiceInfo{}, "web"},
		{"config", func(o string) (string, error) {
			var b bytes.Buffer
			err := PrintConfig(&b, 3, map[string]string{"mode": "fast"}, o)
			return b.String(), err
		}, &map[string]any{}, "mode"},
		{"version", func(o string) (string, error) {
			var b bytes.Buffer
			err := PrintVersion(&b, VersionInfo{Client: BuildInfo{Version: "v0.2.0", GoVersion: "go1.26.8"}, Server: &ServerInfo{Kubernetes: "v1.37.2"}}, o)
			return b.String(), err
		}, &VersionInfo{}, "v0.2.0"},
	} {
		for _, o := range []string{outputJSON, outputYAML} {
			out, err := tc.print(o)
			if err != nil {
				t.Fatalf("%s -o %s: %v", tc.name, o, err)
			}
			if o == outputJSON {
				err = json.Unmarshal([]byte(out), tc.decode)
			} else {
				err = yaml.UnmarshalStrict([]byte(out), tc.decode)
			}
			if err != nil {
				t.Errorf("%s -o %s does not decode: %v\n%s", tc.name, o, err, out)
			}
		}
		out, err := tc.print(outputWide)
		if err != nil || !strings.Contains(out, tc.wide) {
			t.Errorf("%s -o wide: %v\n%s, want it to show %q", tc.name, err, out, tc.wide)
		}
	}
}

// TestOutputFlagRefusesUnknownFormats: a bad -o is refused before any
// call, with the formats there are; every listing command has the flag.
func TestOutputFlagRefusesUnknownFormats(t *testing.T) {
	if err := checkOutputFormat("xml"); err == nil || !strings.Contains(err.Error(), "json, yaml or wide") {
		t.Errorf("checkOutputFormat(xml) = %v, want the formats named", err)
	}
	root := NewCommand(genericiooptions.NewTestIOStreamsDiscard())
	var walk func(*cobra.Command)
	listings := 0
	walk = func(c *cobra.Command) {
		switch c.Name() {
		case "queues", "services", "pods", "get", "status", "version":
			listings++
			if c.Flags().Lookup("output") == nil {
				t.Errorf("%s has no -o/--output", c.CommandPath())
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if listings != 6 {
		t.Errorf("found %d listing commands, want 6", listings)
	}
	for _, args := range [][]string{{"queues", "-o", "xml"}, {"version", "--client", "-o", "xml"}} {
		root := NewCommand(genericiooptions.NewTestIOStreamsDiscard())
		root.SetArgs(args)
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "is not a format") {
			t.Errorf("kubectl switchyard %v: %v, want the format refused", args, err)
		}
	}
}

// TestVersionPrintsClientAndServer: the table names both sides, and says
// how to install the CRDs when the cluster does not serve Switchyard's API.
func TestVersionPrintsClientAndServer(t *testing.T) {
	var b bytes.Buffer
	if err := PrintVersion(&b, VersionInfo{Client: BuildInfo{Version: "v0.2.0", Commit: "abc", Modified: true, GoVersion: "go1.26.8"},
		Server: &ServerInfo{Kubernetes: "v1.37.2"}}, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kubectl-switchyard v0.2.0, commit abc (modified), go1.26.8", "Kubernetes v1.37.2", "kubectl apply --server-side -k manifests/crds"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, b.String())
		}
	}
	if got := Build(); got.GoVersion == "" || got.Version == "" {
		t.Errorf("Build() = %+v, want a version and a Go version", got)
	}
}
