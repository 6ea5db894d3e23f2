package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/configurator/server"
	"github.com/switchyard-sched/switchyard/pkg/shortjob"
	"github.com/switchyard-sched/switchyard/test/localcluster"
	"github.com/switchyard-sched/switchyard/test/promtest"
)

// TestPrometheusScrapesEveryComponent runs every component with some work
// (a routed queue, a calculation set, an external queue with shortjob, an
// agent resizing a throttled pod, a configurator rolling out a change),
// has a real Prometheus scrape all of them with the shipped alerts loaded,
// and checks what an operator relies on: every target is up, every alert
// rule evaluates without error, every series an alert reads exists, every
// dashboard query returns data, and `promtool check metrics` finds nothing
// to fix in any component's own metrics.
func TestPrometheusScrapesEveryComponent(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	if _, err := promtest.Tool("prometheus"); err != nil {
		t.Fatal(err)
	}
	nodes, selector := testNodes(ctx, t, 3, localcluster.NodeSpec{CPU: "8", Memory: "16Gi"})
	ns := selector["switchyard.io/test-nodes"]

	// Coordinator and scheduler: the package's own, already running, each
	// serving /metrics on its secure port.
	coordinatorMetrics := "https://" + visibilityAddress + "/metrics"
	createRoutedQueue(ctx, t, ns, "metrics-batch", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptrTo[int32](3)})
	createQueuedPods(ctx, t, ns, "metrics-batch", 4, selector, nil)
	// A calculation set, through the queue that serves its profile.
	for i := range 2 {
		member := setMember(ns, "metrics-set", i, 2, "100m", selector, map[string]string{v1alpha1.QueueLabel: "metrics-batch"})
		member.Spec.SchedulerName = "switchyard"
		if _, err := cluster.CreatePods(ctx, member); err != nil {
			t.Fatal(err)
		}
	}
	// Shortjob and an external queue.
	amqpQueue := externalQueue(ctx, t, "metrics-ext", v1alpha1.QueueSpec{})
	if err := cluster.WaitForRouting(ctx, ns, "metrics-ext", v1alpha1.ExternalSchedulerName); err != nil {
		t.Fatal(err)
	}
	shortjobAddr, agentAddr := freeAddress(t), freeAddress(t)
	startShortJobWith(ctx, t, shortjob.Options{Queue: amqpQueue, Identity: "shortjob-metrics", SecureServeAddress: shortjobAddr})
	shortjobMetrics := "https://" + shortjobAddr + "/metrics"
	for i := range 3 {
		if _, err := cluster.CreatePods(ctx, queuedPod(ns, fmt.Sprintf("ext-%d", i), "metrics-ext", selector)); err != nil {
			t.Fatal(err)
		}
	}
	// The agent, resizing a throttled pod on fake cgroups.
	pod := autoscaledPod(ns, "throttled", nodes[0], resources("500m", "512Mi"), resources("500m", "512Mi"), nil)
	if _, err := cluster.CreatePods(ctx, pod); err != nil {
		t.Fatal(err)
	}
	running := waitRunning(ctx, t, ns, "throttled")
	fake := newFakeNodeCgroups(t)
	fake.add(t, running, fakeLoad{milliCPU: 2000, throttled: true, memory: 300 << 20})
	p := guardian.DefaultPolicy()
	p.Window, p.Windows, p.Cooldown, p.MaxChangesPerMinute = 300*time.Millisecond, 2, 0, 600
	agentRegistry := prometheus.NewRegistry()
	defer runAgentWith(ctx, t, fake, nodes[0], p, agentRegistry, agentAddr)()
	agentMetrics := "https://" + agentAddr + "/metrics"
	// Both serve their secure ports once their informers have synced.
	for _, addr := range []string{shortjobAddr, agentAddr} {
		waitFor(ctx, t, addr+" listening", 20*time.Second, func() bool {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = conn.Close()
			}
			return err == nil
		})
	}
	// The configurator, with two replicas and a change rolled out.
	rc := startConfigurator(ctx, t, ns, "", false, server.Options{CheckInterval: 200 * time.Millisecond})
	for i := range 2 {
		startReplica(ctx, t, rc, "metrics-web", fmt.Sprintf("metrics-web-%d", i), false)
	}
	waitFor(ctx, t, "replicas registered", 10*time.Second, func() bool { return len(replicasOf(t, rc, "metrics-web")) == 2 })
	setConfig(t, rc, "metrics-web", nil, map[string]string{"mode": "fast"})

	if _, err := cluster.WaitForBound(ctx, ns, "test=queued", 4+3, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.WaitForBound(ctx, ns, "set=metrics-set", 2, time.Minute); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	rule, err := promtest.ReadPrometheusRule()
	if err != nil {
		t.Fatal(err)
	}
	rules, err := promtest.RulesFile(rule)
	if err != nil {
		t.Fatal(err)
	}
	rulesPath := filepath.Join(dir, "switchyard.rules.yaml")
	if err := os.WriteFile(rulesPath, rules, 0o644); err != nil {
		t.Fatal(err)
	}
	readerToken := metricsReaderToken(ctx, t, dir, coordinatorMetrics, scheduler.MetricsURL, shortjobMetrics, agentMetrics, rc.URL+"/metrics")
	// The reader's token reads /metrics and nothing else: the agent's
	// /policy (on the same secure port) refuses it, and refuses anonymous
	// callers.
	agentPolicy := "https://" + agentAddr + "/policy"
	if status, body := getMetrics(t, agentPolicy, readerToken); status != http.StatusForbidden {
		t.Errorf("the agent's /policy answered the metrics reader with HTTP %d (%.100s), want 403", status, body)
	}
	if status, body := getMetrics(t, agentPolicy, ""); status != http.StatusUnauthorized {
		t.Errorf("the agent's /policy answered an anonymous caller with HTTP %d (%.100s), want 401", status, body)
	}
	targets := []promtest.Target{
		{Job: "switchyard-system/switchyard-coordinator", URL: coordinatorMetrics, CAFile: visibilityCert.CertFile, BearerTokenFile: readerToken},
		{Job: "switchyard-system/switchyard-scheduler", URL: scheduler.MetricsURL, BearerTokenFile: readerToken},
		{Job: "switchyard-system/switchyard-configurator", URL: rc.URL + "/metrics", CAFile: servingCert(t).CertFile, BearerTokenFile: readerToken},
		{Job: "switchyard-system/switchyard-shortjob", URL: shortjobMetrics, BearerTokenFile: readerToken},
		{Job: "switchyard-system/switchyard-agent", URL: agentMetrics, BearerTokenFile: readerToken},
	}
	prom, err := promtest.Start(ctx, dir, targets, rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	defer prom.Stop()

	// Every target up, and enough scrapes for rate() over them.
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		health, err := prom.Targets(ctx)
		if err != nil {
			return false, err
		}
		for _, h := range health {
			if h.Health != "up" {
				return false, nil
			}
		}
		return len(health) == len(targets), nil
	}); err != nil {
		health, _ := prom.Targets(ctx)
		t.Fatalf("not every target is up: %+v (log: %s)", health, prom.Log)
	}
	time.Sleep(4 * time.Second)

	// Rules: Prometheus evaluated every one without error, and every series
	// each alert reads is there.
	ruleHealth, err := prom.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	evaluated := 0
	for _, r := range ruleHealth {
		if r.Health != "ok" {
			t.Errorf("rule %s: health %q: %s", r.Name, r.Health, r.LastError)
		}
		evaluated++
	}
	if evaluated == 0 {
		t.Fatal("Prometheus loaded no rules")
	}
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			expr := r.Expr.String()
			if _, err := prom.Query(ctx, expr); err != nil {
				t.Errorf("alert %s: %v", r.Alert, err)
			}
			for _, name := range promtest.MetricNames(expr) {
				if got, err := prom.Query(ctx, name); err != nil || len(got) == 0 {
					t.Errorf("alert %s reads %s, which no component exposes (%v)", r.Alert, name, err)
				}
			}
		}
	}
	// Dashboard: every query answers with data.
	panels, err := promtest.DashboardPanels()
	if err != nil {
		t.Fatal(err)
	}
	for _, panel := range panels {
		got, err := prom.Query(ctx, panel.Expr)
		switch {
		case err != nil:
			t.Errorf("panel %q: %v", panel.Title, err)
		case len(got) == 0:
			t.Errorf("panel %q shows no data: %s", panel.Title, panel.Expr)
		}
	}
	t.Logf("%d targets up, %d rules evaluated, %d dashboard queries answered", len(targets), evaluated, len(panels))

	// promtool's lint on each component's own metrics, and each of them in
	// the generated reference.
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	reference := string(data)
	for _, tg := range targets {
		body := fetchMetrics(t, tg.URL, tg.BearerTokenFile)
		for _, line := range strings.Split(string(body), "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 3 && fields[0] == "#" && fields[1] == "TYPE" && strings.HasPrefix(fields[2], "switchyard_") &&
				!strings.Contains(reference, "| `"+fields[2]+"` |") {
				t.Errorf("%s serves %s, which docs/metrics.md does not document (run hack/update-codegen.sh)", tg.Job, fields[2])
			}
		}
		findings, err := promtest.CheckMetrics(body, "switchyard_")
		if err != nil && !(tg.Job == "switchyard-system/switchyard-scheduler" && strings.Contains(err.Error(), "no metric")) {
			t.Errorf("%s: %v", tg.Job, err)
		}
		if strings.TrimSpace(findings) != "" {
			t.Errorf("promtool check metrics on %s:\n%s", tg.Job, findings)
		}
	}
}

// fetchMetrics GETs a /metrics URL with the token in tokenFile, if any
// (https without verification: the scheduler's self-signed certificate).
func fetchMetrics(t *testing.T, url, tokenFile string) []byte {
	status, body := getMetrics(t, url, tokenFile)
	if status != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %.200s", url, status, body)
	}
	return body
}

func getMetrics(t *testing.T, url, tokenFile string) (int, []byte) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback test servers
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tokenFile != "" {
		token, err := os.ReadFile(tokenFile)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+string(token))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// metricsReaderToken installs the shipped scrape identity
// (manifests/monitoring/scrape-access.yaml: a ServiceAccount that may get
// /metrics) and writes a token of it into dir; it checks first that each
// of the secure /metrics URLs (the scheduler's, the coordinator's) refuses
// an anonymous caller and a service account without that role, through
// the API server's TokenReview and SubjectAccessReview.
func metricsReaderToken(ctx context.Context, t *testing.T, dir string, secureURLs ...string) string {
	t.Helper()
	const file = "manifests/monitoring/scrape-access.yaml"
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} {
		if err := cluster.ApplyKind(ctx, kind, file); err != nil {
			t.Fatal(err)
		}
	}
	tokenFile := func(ns, account string) string {
		tr, err := cluster.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, account,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrTo[int64](3600)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, ns+"-"+account+".token")
		if err := os.WriteFile(path, []byte(tr.Status.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	stranger := "metrics-stranger"
	if _, err := cluster.Client.CoreV1().ServiceAccounts("switchyard-system").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: stranger}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for who, token := range map[string]string{"anonymous": "", "a service account without the role": tokenFile("switchyard-system", stranger)} {
		for _, url := range secureURLs {
			if status, body := getMetrics(t, url, token); status != http.StatusForbidden && status != http.StatusUnauthorized {
				t.Errorf("%s answered %s with HTTP %d (%.100s), want 401 or 403", url, who, status, body)
			}
		}
	}
	return tokenFile("switchyard-system", "switchyard-metrics-reader")
}

// freeAddress is a free loopback address for a component's port.
func freeAddress(t *testing.T) string {
	t.Helper()
	port, err := localcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}
