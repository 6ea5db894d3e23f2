// Package monitoring checks the shipped monitoring (manifests/monitoring)
// with the real Prometheus tools, without a cluster: the PrometheusRule and
// PodMonitors decode strictly into the Prometheus Operator's own types,
// `promtool check rules` accepts the alerts and every dashboard query, and
// `promtool test rules` runs a firing and a quiet case of every alert.
// test/integration scrapes the running components with a real Prometheus.
package monitoring

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-sched/switchyard/test/localcluster"
	"github.com/switchyard-sched/switchyard/test/promtest"
)

// TestPodMonitorsStrict: every PodMonitor decodes into the operator's type
// with no unknown field, selects a component the manifests ship (in its own
// namespace, or in those its namespaceSelector names), and the token Secret
// each endpoint presents is shipped beside it (the operator reads it from
// the PodMonitor's namespace).
func TestPodMonitorsStrict(t *testing.T) {
	path, err := promtest.Path(promtest.PodMonitorFile)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	workloads, secrets := map[string]bool{}, map[string]bool{}
	manifests, err := localcluster.LoadManifests("manifests")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range manifests {
		if m.Object.GetLabels()["app.kubernetes.io/part-of"] != "switchyard" {
			continue // the examples
		}
		switch m.Object.GetKind() {
		case "Deployment", "DaemonSet":
			workloads[m.Object.GetNamespace()+"/"+m.Object.GetName()] = true
		case "Secret":
			secrets[m.Object.GetNamespace()+"/"+m.Object.GetName()] = true
		}
	}
	monitored := 0
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var pm monitoringv1.PodMonitor
		if err := yaml.UnmarshalStrict([]byte(doc), &pm); err != nil {
			t.Errorf("%s: %v", promtest.PodMonitorFile, err)
			continue
		}
		name := pm.Spec.Selector.MatchLabels["app.kubernetes.io/name"]
		namespaces := pm.Spec.NamespaceSelector.MatchNames
		if len(namespaces) == 0 {
			namespaces = []string{pm.Namespace}
		}
		for _, ns := range namespaces {
			if !workloads[ns+"/"+name] {
				t.Errorf("PodMonitor %s/%s selects app.kubernetes.io/name=%q, which no shipped workload in namespace %s carries", pm.Namespace, pm.Name, name, ns)
			}
		}
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			if a := ep.Authorization; a != nil && a.Credentials != nil && !secrets[pm.Namespace+"/"+a.Credentials.Name] {
				t.Errorf("PodMonitor %s/%s presents the Secret %s, which is not shipped in its namespace", pm.Namespace, pm.Name, a.Credentials.Name)
			}
		}
		if len(pm.Spec.PodMetricsEndpoints) == 0 {
			t.Errorf("PodMonitor %s/%s has no endpoint", pm.Namespace, pm.Name)
		}
		monitored++
	}
	if monitored != len(workloads) {
		t.Errorf("%d PodMonitors for %d shipped workloads %v: every component needs one", monitored, len(workloads), workloads)
	}
}

// TestRules: promtool accepts the rules, every alert says how bad it is and
// what to do, and the promtool unit tests cover every alert, firing and not.
func TestRules(t *testing.T) {
	rule, err := promtest.ReadPrometheusRule()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rules, err := promtest.RulesFile(rule)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "switchyard.rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := promtest.Promtool(dir, "check", "rules", "switchyard.rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(out))
	out, err = promtest.Promtool(dir, "test", "rules", "rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(out))

	var unit struct {
		Tests []struct {
			AlertRuleTest []struct {
				AlertName string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &unit); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range unit.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			} else {
				quiet[a.AlertName] = true
			}
		}
	}
	alerts := 0
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if !fires[r.Alert] || !quiet[r.Alert] {
				t.Errorf("alert %s: rules_test.yaml needs a case where it fires (%v) and one where it does not (%v)", r.Alert, fires[r.Alert], quiet[r.Alert])
			}
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "runbook"} {
				if r.Annotations[a] == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, a)
				}
			}
		}
	}
	if alerts == 0 {
		t.Fatal("no alerts in the PrometheusRule")
	}
}

// TestDashboard: every panel has a query, promtool parses each one, and the
// dashboard covers what an operator watches.
func TestDashboard(t *testing.T) {
	panels, err := promtest.DashboardPanels()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rules, err := promtest.DashboardRulesFile(panels)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "dashboard.rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := promtest.Promtool(dir, "check", "rules", "dashboard.rules.yaml"); err != nil {
		t.Fatalf("a dashboard query does not parse: %v", err)
	}
	all := ""
	for _, p := range panels {
		if strings.TrimSpace(p.Expr) == "" {
			t.Errorf("panel %q has an empty query", p.Title)
		}
		all += p.Expr + "\n"
	}
	for what, metric := range map[string]string{
		"queue depth":              "switchyard_queue_pending_pods",
		"wait time":                "switchyard_queue_wait_seconds_bucket",
		"admission rate":           "switchyard_queue_admissions_total",
		"scheduling throughput":    `scheduler_schedule_attempts_total{result="scheduled"}`,
		"scheduling latency":       "scheduler_scheduling_attempt_duration_seconds_bucket",
		"CalcSet waits":            "switchyard_calcset_sets_waiting",
		"agent decisions":          "switchyard_agent_decisions_total",
		"agent limits":             "switchyard_agent_cpu_limit_millicores",
		"configurator rollout":     "switchyard_configurator_replicas_behind",
		"broker connection":        "switchyard_broker_connected",
		"external queue dispatch":  "switchyard_dispatch_published_total",
		"configuration deliveries": "switchyard_configurator_delivery_seconds_bucket",
	} {
		if !strings.Contains(all, metric) {
			t.Errorf("the dashboard has no panel for %s (%s)", what, metric)
		}
	}
	// Quantiles over histograms must aggregate by le, or they are wrong.
	quantile := regexp.MustCompile(`histogram_quantile\([^,]+,\s*sum by \(([^)]*)\)`)
	for _, p := range panels {
		for _, m := range quantile.FindAllStringSubmatch(p.Expr, -1) {
			if !strings.Contains(m[1], "le") {
				t.Errorf("panel %q: histogram_quantile over a sum without le: %s", p.Title, p.Expr)
			}
		}
	}
	t.Logf("%d dashboard queries parse", len(panels))
}
