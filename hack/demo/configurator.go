package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/cli"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
	"github.com/switchyard-sched/switchyard/pkg/configurator/server"
	"github.com/switchyard-sched/switchyard/pkg/probes"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// demoConfigurator starts switchyard-configurator and three replicas of a
// service that embed the client library, then sends one change to every
// replica and one to pod number 1 only, printing what each replica has.
func demoConfigurator(ctx context.Context, cluster *localcluster.Cluster) error {
	step("starting switchyard-configurator (TLS, TokenReview + SubjectAccessReview, HTTP push; values kept in ConfigMaps of switchyard-system) and 3 replicas of service \"example\" that register with tokens bound to their pods")
	// The ConfigMaps live in switchyard-system; the replicas' pods and the
	// operator's service account in default, as manifests/examples has it.
	const ns, store = "default", "switchyard-system"
	if err := cluster.CreateNamespace(ctx, store); err != nil {
		return err
	}
	cert, err := localcluster.NewServingCert(cluster.WorkDir())
	if err != nil {
		return err
	}
	// What an operator binds: the shipped ClusterRoles.
	if err := cluster.ApplyKind(ctx, "ClusterRole", "manifests/configurator/rbac.yaml"); err != nil {
		return err
	}
	for account, role := range map[string]string{"demo-operator": "switchyard-config-editor", "example": "switchyard-config-replica"} {
		if err := cluster.CreateServiceAccount(ctx, ns, account); err != nil {
			return err
		}
		if err := cluster.BindClusterRole(ctx, "demo-"+account, role, ns, account); err != nil {
			return err
		}
	}
	operatorToken, err := cluster.Token(ctx, ns, "demo-operator", v1alpha1.ConfiguratorAudience, nil)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	url := "https://" + lis.Addr().String()
	go func() {
		_ = server.Serve(ctx, server.Config{Client: cluster.Client, Namespace: store, Listener: lis, TLSCertFile: cert.CertFile, TLSKeyFile: cert.KeyFile,
			Options: server.Options{CheckInterval: time.Second}})
	}()
	var replicas []*configurator.Client
	for i := range 3 {
		rl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		name := fmt.Sprintf("example-%c", 'a'+i)
		token, err := cluster.PodToken(ctx, ns, name, "example", "127.0.0.1", v1alpha1.ConfiguratorAudience)
		if err != nil {
			return err
		}
		client, err := configurator.NewClient(configurator.ClientOptions{
			URL: url, Service: "example", Pod: name, Address: "http://" + rl.Addr().String(), Token: token, CAFile: cert.CertFile,
		})
		if err != nil {
			return err
		}
		srv := probes.HTTPServer(client.Handler())
		go func() { _ = srv.Serve(rl) }()
		go func() { <-ctx.Done(); _ = srv.Close() }()
		go func() { _ = client.Run(ctx) }()
		replicas = append(replicas, client)
	}
	byNumber := func() map[int]*configurator.Client {
		out := map[int]*configurator.Client{}
		for _, r := range replicas {
			if n, ok := r.PodNumber(); ok {
				out[n] = r
			}
		}
		return out
	}
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return len(byNumber()) == 3, nil
	}); err != nil {
		return fmt.Errorf("replicas did not register: %w", err)
	}
	cliFlags := []string{"--configurator-url", url, "--configurator-token", operatorToken, "--configurator-ca-file", cert.CertFile}
	run := func(args ...string) error {
		fmt.Printf("\n$ kubectl switchyard %s\n", strings.Join(args, " "))
		cmd := cli.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
		cmd.SetArgs(append(args, cliFlags...))
		return cmd.ExecuteContext(ctx)
	}
	show := func(version int64) error {
		if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			for _, r := range replicas {
				if r.AppliedVersion() < version {
					return false, nil
				}
			}
			return true, nil
		}); err != nil {
			return fmt.Errorf("version %d did not reach every replica: %w", version, err)
		}
		nums := byNumber()
		keys := make([]int, 0, len(nums))
		for n := range nums {
			keys = append(keys, n)
		}
		sort.Ints(keys)
		for _, n := range keys {
			fmt.Printf("    replica pod#%d now has %v\n", n, nums[n].Config())
		}
		return nil
	}
	if err := run("pods", "example"); err != nil {
		return err
	}
	if err := run("config", "set", "example", "log-level=debug", "--wait=30s"); err != nil {
		return err
	}
	if err := show(1); err != nil {
		return err
	}
	if err := run("config", "set", "example", "--pod", "1", "mode=canary"); err != nil {
		return err
	}
	if err := show(2); err != nil {
		return err
	}
	if err := run("config", "status", "example"); err != nil {
		return err
	}
	return run("services")
}
