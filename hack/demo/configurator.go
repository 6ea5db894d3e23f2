package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/switchyard-sched/switchyard/pkg/cli"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
	"github.com/switchyard-sched/switchyard/pkg/configurator/server"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// demoConfigurator starts switchyard-configurator and three replicas of a
// service that embed the client library, then sends one change to every
// replica and one to pod number 1 only, printing what each replica has.
func demoConfigurator(ctx context.Context, cluster *localcluster.Cluster) error {
	step("starting switchyard-configurator (HTTP push; values kept in ConfigMaps of switchyard-system) and 3 replicas of service \"example\" that embed pkg/configurator")
	const token = "demo-token"
	tokenFile := filepath.Join(cluster.WorkDir(), "configurator-tokens")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		return err
	}
	auth, err := server.LoadStaticTokens(tokenFile)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	url := "http://" + lis.Addr().String()
	go func() {
		_ = server.Serve(ctx, server.Config{Client: cluster.Client, Namespace: "switchyard-system", Auth: auth, Listener: lis,
			Options: server.Options{CheckInterval: time.Second}})
	}()
	var replicas []*configurator.Client
	for i := range 3 {
		rl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		client, err := configurator.NewClient(configurator.ClientOptions{
			URL: url, Service: "example", Pod: fmt.Sprintf("example-%c", 'a'+i), Address: "http://" + rl.Addr().String(), Token: token,
		})
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: client.Handler(), ReadHeaderTimeout: 5 * time.Second}
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
	cliFlags := []string{"--configurator-url", url, "--configurator-token", token}
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
	if err := run("config", "set", "example", "log-level=debug"); err != nil {
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
	return run("services")
}
