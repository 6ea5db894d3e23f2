// Package promtest runs the real Prometheus tools for Switchyard's tests:
// promtool on the shipped rules and dashboard, and a Prometheus server that
// scrapes components started by a test and answers PromQL queries. The
// binaries come from Debian's prometheus package (apt-get install
// prometheus), which .ci/run installs.
package promtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// Shipped files, relative to the repository root.
const (
	// RuleFile is the PrometheusRule with Switchyard's alerts.
	RuleFile = "manifests/monitoring/prometheusrule.yaml"
	// DashboardFile is the Grafana dashboard.
	DashboardFile = "manifests/monitoring/dashboard.json"
	// PodMonitorFile holds a PodMonitor per component.
	PodMonitorFile = "manifests/monitoring/podmonitors.yaml"
)

// Tool finds a Prometheus binary (promtool, prometheus) on PATH, or says
// how to install it.
func Tool(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed: install Debian's prometheus package (apt-get install prometheus), as .ci/run does", name)
	}
	return path, nil
}

// Path is a shipped file's absolute path.
func Path(rel string) (string, error) {
	root, err := localcluster.RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, rel), nil
}

// ReadPrometheusRule decodes the shipped PrometheusRule strictly: a field
// the Prometheus Operator does not know is an error.
func ReadPrometheusRule() (*monitoringv1.PrometheusRule, error) {
	path, err := Path(RuleFile)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rule monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict(data, &rule); err != nil {
		return nil, fmt.Errorf("%s: %w", RuleFile, err)
	}
	return &rule, nil
}

// RulesFile is the PrometheusRule's spec as a Prometheus rule file, as the
// Prometheus Operator hands it to Prometheus.
func RulesFile(rule *monitoringv1.PrometheusRule) ([]byte, error) {
	return yaml.Marshal(rule.Spec)
}

// Panel is one query of the dashboard.
type Panel struct {
	Title string
	Expr  string
}

// DashboardPanels returns every query of the shipped dashboard, in order.
func DashboardPanels() ([]Panel, error) {
	path, err := Path(DashboardFile)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	type panel struct {
		Title   string  `json:"title"`
		Type    string  `json:"type"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	}
	var dashboard struct {
		Panels []panel `json:"panels"`
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	if err := decoder.Decode(&dashboard); err != nil {
		return nil, fmt.Errorf("%s: %w", DashboardFile, err)
	}
	var out []Panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out = append(out, Panel{Title: p.Title, Expr: t.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(dashboard.Panels)
	return out, nil
}

// DashboardRulesFile turns the dashboard's queries into recording rules,
// so that `promtool check rules` parses every one of them.
func DashboardRulesFile(panels []Panel) ([]byte, error) {
	rules := make([]map[string]string, 0, len(panels))
	for i, p := range panels {
		rules = append(rules, map[string]string{"record": fmt.Sprintf("dashboard:panel_%d", i), "expr": p.Expr})
	}
	return yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
}

var metricName = regexp.MustCompile(`\b(?:switchyard|scheduler)_[a-z0-9_]+\b|\bup\b`)

// MetricNames are the series names an expression reads (Switchyard's, the
// scheduler's and up), sorted and without duplicates.
func MetricNames(expr string) []string {
	names := metricName.FindAllString(expr, -1)
	slices.Sort(names)
	return slices.Compact(names)
}

// Promtool runs promtool with args in dir and returns its output; a
// non-zero exit is an error that carries the output.
func Promtool(dir string, args ...string) (string, error) {
	bin, err := Tool("promtool")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("promtool %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// CheckMetrics lints a /metrics exposition with `promtool check metrics`
// (naming, units, help texts), keeping only the families whose names start
// with prefix: a component's own, not the libraries' it embeds. It returns
// promtool's findings; an empty string means none.
func CheckMetrics(exposition []byte, prefix string) (string, error) {
	bin, err := Tool("promtool")
	if err != nil {
		return "", err
	}
	var kept bytes.Buffer
	for _, line := range strings.SplitAfter(string(exposition), "\n") {
		name := line
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			name = rest
		} else if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name = rest
		}
		if strings.HasPrefix(name, prefix) {
			kept.WriteString(line)
		}
	}
	if kept.Len() == 0 {
		return "", fmt.Errorf("no metric named %s* in the exposition", prefix)
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = &kept
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && len(out) > 0 {
		return string(out), nil // lint findings
	}
	return string(out), err
}
