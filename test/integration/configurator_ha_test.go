package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/switchyard-sched/switchyard/pkg/configurator"
	"github.com/switchyard-sched/switchyard/pkg/configurator/server"
)

// serviceProxy stands for a Kubernetes Service in front of configurator
// replicas: like kube-proxy it forwards each TCP connection (TLS passes
// through) to a backend whose readiness probe (/readyz) answers 200, and
// refuses connections while none is ready.
type serviceProxy struct {
	URL      string
	backends []string
	probe    *http.Client
	lis      net.Listener
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// track remembers an open connection, so Close can end it.
func (p *serviceProxy) track(c net.Conn, open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if open {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *serviceProxy) close() {
	_ = p.lis.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func startServiceProxy(ctx context.Context, t testing.TB, probe *http.Client, backends ...string) *serviceProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &serviceProxy{URL: "https://" + lis.Addr().String(), backends: backends, probe: probe, lis: lis, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.forward(ctx, conn) }()
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *serviceProxy) ready(ctx context.Context) string {
	for _, b := range p.backends {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+b+"/readyz", nil)
		resp, err := p.probe.Do(req)
		cancel()
		if err != nil {
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return b
		}
	}
	return ""
}

func (p *serviceProxy) forward(ctx context.Context, client net.Conn) {
	p.track(client, true)
	defer p.track(client, false)
	defer client.Close()
	backend := p.ready(ctx)
	if backend == "" {
		return // no ready endpoint: the connection is refused
	}
	server, err := net.Dial("tcp", backend)
	if err != nil {
		return
	}
	p.track(server, true)
	defer p.track(server, false)
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(server, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, server); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// TestConfiguratorLeaderKilledMidRollout: two configurators behind a
// Service, 50 replicas, ten changes; the leader is stopped after the fifth.
// The standby takes the lease, replicas register with it again keeping
// their numbers, every change that was answered is kept, every replica ends
// at the last version, and none ever applied an older version after a newer.
func TestConfiguratorLeaderKilledMidRollout(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "configurator-ha"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	opts := server.Options{CheckInterval: 200 * time.Millisecond}
	elect := func(identity string) func(*server.Config) {
		return func(c *server.Config) {
			c.LeaderElection = &server.LeaderElection{Identity: identity, LeaseDuration: 2 * time.Second, RenewDeadline: time.Second, RetryPeriod: 200 * time.Millisecond}
		}
	}
	a := startConfigurator(ctx, t, ns, "", false, opts, elect("configurator-a"))
	b := startConfigurator(ctx, t, ns, "", false, opts, elect("configurator-b"))
	proxy := startServiceProxy(ctx, t, a.HTTP, a.addr, b.addr)
	svc := *a
	svc.URL = proxy.URL
	leader := func() *runningConfigurator {
		for _, rc := range []*runningConfigurator{a, b} {
			resp, err := rc.HTTP.Get(rc.URL + "/readyz")
			if err != nil {
				continue
			}
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return rc
			}
		}
		return nil
	}
	waitFor(ctx, t, "a leader", 20*time.Second, func() bool { return leader() != nil })
	first := leader()
	standby := a
	if first == a {
		standby = b
	}
	if status, body := standby.do(t, http.MethodGet, configurator.ServicesPath, standby.Writer, nil); status != http.StatusServiceUnavailable || !strings.Contains(errorOf(body), "not the leader") {
		t.Errorf("the standby answered HTTP %d %q, want 503 saying it is not the leader", status, errorOf(body))
	}

	const n = 50
	replicas := make([]*testReplica, n)
	for i := range n {
		replicas[i] = startReplica(ctx, t, &svc, "web", fmt.Sprintf("web-%d", i), false)
	}
	waitFor(ctx, t, "50 registrations", 30*time.Second, func() bool { return len(replicasOf(t, &svc, "web")) == n })
	numbers := map[string]int{}
	for _, r := range replicasOf(t, &svc, "web") {
		numbers[r.Pod] = r.PodNumber
	}

	// set retries through the Service until a configurator answers, as a
	// user (or a deploy pipeline) would.
	set := func(round int) int64 {
		var version int64
		waitFor(ctx, t, fmt.Sprintf("change %d accepted", round), 30*time.Second, func() bool {
			status, body := svc.do(t, http.MethodPut, configurator.ServicesPath+"/web/config", svc.Writer,
				configurator.SetRequest{Values: map[string]string{"round": fmt.Sprint(round)}})
			if status != http.StatusOK {
				return false
			}
			var resp configurator.SetResponse
			_ = json.Unmarshal(body, &resp)
			version = resp.Version
			return true
		})
		return version
	}
	var last int64
	for round := 1; round <= 10; round++ {
		v := set(round)
		if v <= last {
			t.Errorf("change %d got version %d after %d", round, v, last)
		}
		last = v
		if round == 5 {
			first.stop() // releases the lease, as a SIGTERM-ed pod does
		}
	}
	if leader() != standby {
		t.Fatalf("the standby did not take over")
	}
	waitFor(ctx, t, "every replica at the last version", 30*time.Second, func() bool {
		for _, r := range replicas {
			if l := r.last(); l.version != last || l.config["round"] != "10" {
				return false
			}
		}
		return true
	})
	for i, r := range replicas {
		vs := r.versions()
		for j := 1; j < len(vs); j++ {
			if vs[j] <= vs[j-1] {
				t.Errorf("replica %d applied versions %v: went back", i, vs)
				break
			}
		}
	}
	after := replicasOf(t, &svc, "web")
	if len(after) != n {
		t.Errorf("%d replicas registered with the new leader, want %d", len(after), n)
	}
	for _, r := range after {
		if want := numbers[r.Pod]; r.PodNumber != want {
			t.Errorf("%s has pod number %d with the new leader, want %d as before", r.Pod, r.PodNumber, want)
		}
	}
	cm, err := cluster.Client.CoreV1().ConfigMaps(ns).Get(ctx, "switchyard-config-web", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["snapshot.json"], `"round":"10"`) || !strings.Contains(cm.Data["snapshot.json"], fmt.Sprintf(`"version":%d`, last)) {
		t.Errorf("stored configuration %v (%v), want round 10 at version %d", cm.Data, err, last)
	}
}
