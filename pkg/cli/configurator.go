package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-sched/switchyard/pkg/configurator"
)

// configuratorFlags reach switchyard-configurator: its URL (e.g. through
// `kubectl -n switchyard-system port-forward svc/switchyard-configurator
// 8090`), the CA that signs its certificate, and a bearer token for the
// audience switchyard-configurator (`kubectl create token NAME --audience
// switchyard-configurator`).
type configuratorFlags struct {
	url, token, tokenFile, caFile string
	// client is made on the first call and serves the rest, so a command
	// that polls (config set --wait) reuses one TLS connection.
	client *http.Client
}

func (f *configuratorFlags) add(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.url, "configurator-url", envOr("SWITCHYARD_CONFIGURATOR_URL", "https://127.0.0.1:8090"), "URL of switchyard-configurator (env SWITCHYARD_CONFIGURATOR_URL)")
	cmd.PersistentFlags().StringVar(&f.token, "configurator-token", "", "bearer token for the audience switchyard-configurator (env SWITCHYARD_CONFIGURATOR_TOKEN)")
	cmd.PersistentFlags().StringVar(&f.tokenFile, "configurator-token-file", envOr("SWITCHYARD_CONFIGURATOR_TOKEN_FILE", ""), "file holding that token (env SWITCHYARD_CONFIGURATOR_TOKEN_FILE)")
	cmd.PersistentFlags().StringVar(&f.caFile, "configurator-ca-file", envOr("SWITCHYARD_CONFIGURATOR_CA_FILE", ""), "PEM bundle that signs the configurator's certificate (env SWITCHYARD_CONFIGURATOR_CA_FILE)")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func (f *configuratorFlags) call(ctx context.Context, method, path string, in, out any) error {
	token := f.token
	if token == "" {
		token = os.Getenv("SWITCHYARD_CONFIGURATOR_TOKEN")
	}
	if token == "" && f.tokenFile != "" {
		var err error
		if token, err = configurator.ReadToken(f.tokenFile); err != nil {
			return fmt.Errorf("--configurator-token-file: %w", err)
		}
	}
	if token == "" {
		return errors.New("switchyard-configurator needs a token: pass --configurator-token or --configurator-token-file, e.g. with $(kubectl create token NAME --audience switchyard-configurator)")
	}
	if f.client == nil {
		client, err := configurator.HTTPClient(f.caFile, 10*time.Second)
		if err != nil {
			return err
		}
		f.client = client
	}
	err := configurator.Call(ctx, f.client, f.url, token, method, path, in, out)
	var status *configurator.StatusError
	if errors.As(err, &status) {
		return fmt.Errorf("switchyard-configurator: %w", err)
	}
	if err != nil {
		return fmt.Errorf("reaching switchyard-configurator at %s: %w", f.url, err)
	}
	return nil
}

func addConfiguratorCommands(root *cobra.Command, streams genericiooptions.IOStreams) {
	var flags configuratorFlags
	var output string
	checkOutput := func() error { return checkOutputFormat(output) }
	services := &cobra.Command{
		Use:   "services",
		Short: "Services registered with switchyard-configurator: replicas by state and configuration version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(); err != nil {
				return err
			}
			var out []configurator.ServiceInfo
			if err := flags.call(cmd.Context(), http.MethodGet, configurator.ServicesPath, nil, &out); err != nil {
				return err
			}
			return PrintServices(streams.Out, out, output)
		},
	}
	pods := &cobra.Command{
		Use:   "pods SERVICE",
		Short: "Replicas of a service: pod number, pod, state, failures, last seen, applied version",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(); err != nil {
				return err
			}
			var out []configurator.ReplicaInfo
			if err := flags.call(cmd.Context(), http.MethodGet, configurator.ServicesPath+"/"+args[0]+"/replicas", nil, &out); err != nil {
				return err
			}
			return PrintReplicas(streams.Out, out, output, time.Now())
		},
	}
	var pod int
	config := &cobra.Command{Use: "config", Short: "Get or set a service's runtime configuration"}
	get := &cobra.Command{
		Use:   "get SERVICE [--pod N]",
		Short: "The configuration of a service, or what pod number N sees",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(); err != nil {
				return err
			}
			var snap configurator.Snapshot
			if err := flags.call(cmd.Context(), http.MethodGet, configurator.ServicesPath+"/"+args[0]+"/config", nil, &snap); err != nil {
				return err
			}
			values := snap.Values
			if cmd.Flags().Changed("pod") {
				values = snap.For(pod)
			}
			return PrintConfig(streams.Out, snap.Version, values, output)
		},
	}
	status := &cobra.Command{
		Use:   "status SERVICE",
		Short: "How many healthy replicas run the latest configuration meant for them, and which do not",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(); err != nil {
				return err
			}
			st, err := rolloutStatus(cmd.Context(), &flags, args[0])
			if err != nil {
				return err
			}
			return PrintRollout(streams.Out, st, output)
		},
	}
	schema := &cobra.Command{
		Use:   "schema SERVICE FILE",
		Short: "Set what a service's values may be (types, ranges, enums, patterns); changes that do not fit are refused",
		Long: "Set what a service's values may be, from a JSON or YAML file such as\n" +
			"  keys:\n    log-level: {type: string, enum: [debug, info, warn]}\n    pool: {type: integer, minimum: 1, maximum: 100}\n" +
			"Types: string (pattern), integer, number, boolean, duration (bounds in seconds). Keys the schema does not name\n" +
			"are refused unless allowOtherKeys is true. The service's current values must fit.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[1])
			if err != nil {
				return err
			}
			var s configurator.Schema
			if err := yaml.UnmarshalStrict(data, &s); err != nil {
				return fmt.Errorf("%s: %w", args[1], err)
			}
			var resp configurator.SetResponse
			if err := flags.call(cmd.Context(), http.MethodPut, configurator.ServicesPath+"/"+args[0]+"/schema", s, &resp); err != nil {
				return err
			}
			fmt.Fprintf(streams.Out, "%s: schema set at version %d\n", args[0], resp.Version)
			return nil
		},
	}
	var wait time.Duration
	set := &cobra.Command{
		Use:   "set SERVICE [--pod N] [--wait[=TIMEOUT]] KEY=VALUE...",
		Short: "Set keys for every replica of a service, or for pod number N only",
		Long: "Set keys for every replica of a service, or for pod number N only. With --wait, return once every\n" +
			"healthy replica applied the change, or exit non-zero after TIMEOUT (2m by default) naming those that did not.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := configurator.SetRequest{Values: map[string]string{}}
			for _, kv := range args[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return fmt.Errorf("%q is not KEY=VALUE", kv)
				}
				req.Values[k] = v
			}
			if cmd.Flags().Changed("pod") {
				req.Pod = &pod
			}
			var resp configurator.SetResponse
			if err := flags.call(cmd.Context(), http.MethodPut, configurator.ServicesPath+"/"+args[0]+"/config", req, &resp); err != nil {
				return err
			}
			target := "every replica"
			if req.Pod != nil {
				target = "pod number " + strconv.Itoa(pod)
			}
			fmt.Fprintf(streams.Out, "%s: version %d sent to %s\n", args[0], resp.Version, target)
			if wait <= 0 {
				return nil
			}
			return waitForRollout(cmd.Context(), streams.Out, &flags, args[0], resp, wait)
		},
	}
	set.Flags().DurationVar(&wait, "wait", 0, "wait until every healthy replica applied the change, at most this long")
	set.Flags().Lookup("wait").NoOptDefVal = "2m"
	for _, c := range []*cobra.Command{get, set} {
		c.Flags().IntVar(&pod, "pod", 0, "pod number")
	}
	for _, c := range []*cobra.Command{services, pods, get, status} {
		addOutputFlag(c, &output)
	}
	config.AddCommand(get, set, status, schema)
	for _, c := range []*cobra.Command{services, pods, config} {
		flags.add(c)
		root.AddCommand(c)
	}
}

func rolloutStatus(ctx context.Context, flags *configuratorFlags, service string) (configurator.RolloutStatus, error) {
	var st configurator.RolloutStatus
	err := flags.call(ctx, http.MethodGet, configurator.ServicesPath+"/"+service+"/rollout", nil, &st)
	return st, err
}

// waitForRollout polls the rollout until every healthy replica runs the
// change (or a later one), or timeout passes.
func waitForRollout(ctx context.Context, out io.Writer, flags *configuratorFlags, service string, set configurator.SetResponse, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last *configurator.RolloutStatus
	var lastErr error
	for {
		st, err := rolloutStatus(ctx, flags, service)
		switch {
		case err != nil:
			lastErr = err
		case st.Epoch != set.Epoch || st.Version < set.Version:
			return fmt.Errorf("%s: the configurator is at epoch %q version %d, not at the %q %d just set: was it restarted with another store?", service, st.Epoch, st.Version, set.Epoch, set.Version)
		case st.Done():
			fmt.Fprintf(out, "%s: %d/%d healthy replicas at version %d\n", service, st.Current, st.Healthy, st.Version)
			return nil
		default:
			last = &st
		}
		if time.Now().After(deadline) {
			if last == nil {
				return lastErr
			}
			return fmt.Errorf("%s: after %s, %d/%d healthy replicas at version %d; not yet: %s", service, timeout, last.Current, last.Healthy, last.Version, stragglers(*last))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func stragglers(st configurator.RolloutStatus) string {
	var parts []string
	for _, r := range st.Stragglers {
		parts = append(parts, fmt.Sprintf("pod#%d %s/%s (%s, at %d, wants %d)", r.PodNumber, r.Namespace, r.Pod, r.State, r.AppliedVersion, r.WantVersion))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// PrintRollout writes a rollout's state and its stragglers (or JSON).
func PrintRollout(w io.Writer, st configurator.RolloutStatus, output string) error {
	if done, err := printStructured(w, output, st); done {
		return err
	}
	fmt.Fprintf(w, "%s: %d/%d healthy replicas at version %d (%d registered)\n", st.Service, st.Current, st.Healthy, st.Version, st.Replicas)
	if len(st.Stragglers) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD#\tPOD\tSTATE\tAPPLIED\tWANTS")
	for _, r := range st.Stragglers {
		fmt.Fprintf(tw, "%d\t%s/%s\t%s\t%d\t%d\n", r.PodNumber, r.Namespace, r.Pod, r.State, r.AppliedVersion, r.WantVersion)
	}
	return tw.Flush()
}

// PrintServices writes the services table (or JSON).
func PrintServices(w io.Writer, services []configurator.ServiceInfo, output string) error {
	if done, err := printStructured(w, output, services); done {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tREPLICAS\tHEALTHY\tPRUNED\tVERSION")
	for _, s := range services {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", s.Name, s.Replicas, s.Healthy, s.Pruned, s.Version)
	}
	return tw.Flush()
}

// PrintReplicas writes a service's replicas (or JSON), by pod number.
func PrintReplicas(w io.Writer, replicas []configurator.ReplicaInfo, output string, now time.Time) error {
	sort.Slice(replicas, func(i, j int) bool { return replicas[i].PodNumber < replicas[j].PodNumber })
	if done, err := printStructured(w, output, replicas); done {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "POD#\tPOD\tSTATE\tFAILURES\tLAST SEEN\tAPPLIED\tWANTS"
	if output == outputWide {
		header += "\tADDRESS\tEPOCH"
	}
	fmt.Fprintln(tw, header)
	for _, r := range replicas {
		fmt.Fprintf(tw, "%d\t%s/%s\t%s\t%d\t%s ago\t%d\t%d", r.PodNumber, r.Namespace, r.Pod, r.State, r.Failures, duration.HumanDuration(now.Sub(r.LastSeen)), r.AppliedVersion, r.WantVersion)
		if output == outputWide {
			fmt.Fprintf(tw, "\t%s\t%s", r.Address, r.AppliedEpoch)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// PrintConfig writes keys and values (or JSON) at a version.
func PrintConfig(w io.Writer, version int64, values map[string]string, output string) error {
	if done, err := printStructured(w, output, map[string]any{"version": version, "values": values}); done {
		return err
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "KEY\tVALUE\t(version %d)\n", version)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t\n", k, values[k])
	}
	return tw.Flush()
}
