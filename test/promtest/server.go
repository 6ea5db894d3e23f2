package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// Target is one endpoint a test Prometheus scrapes.
type Target struct {
	// Job is the job label, named as the Prometheus Operator names a
	// PodMonitor's (namespace/name), so that the shipped rules match.
	Job string
	// URL is the full /metrics URL (http or https).
	URL string
	// CAFile verifies an https target; empty with https skips verification
	// (the scheduler's self-signed serving certificate).
	CAFile string
	// BearerTokenFile is sent as Authorization: Bearer.
	BearerTokenFile string
}

// Server is a Prometheus started by Start.
type Server struct {
	// URL is the HTTP API's base, e.g. http://127.0.0.1:9090.
	URL  string
	cmd  *exec.Cmd
	done chan error
	Log  string
}

// Start runs a real Prometheus in dir that scrapes targets every second and
// evaluates the rule files every second, and waits until it is ready.
func Start(ctx context.Context, dir string, targets []Target, ruleFiles ...string) (*Server, error) {
	bin, err := Tool("prometheus")
	if err != nil {
		return nil, err
	}
	var scrape []map[string]any
	for _, tg := range targets {
		u, err := url.Parse(tg.URL)
		if err != nil {
			return nil, err
		}
		job := map[string]any{
			"job_name": tg.Job, "scheme": u.Scheme, "metrics_path": u.Path,
			"static_configs": []any{map[string]any{"targets": []string{u.Host}}},
		}
		if u.Scheme == "https" {
			tls := map[string]any{"insecure_skip_verify": tg.CAFile == ""}
			if tg.CAFile != "" {
				tls["ca_file"] = tg.CAFile
				tls["server_name"] = u.Hostname()
			}
			job["tls_config"] = tls
		}
		if tg.BearerTokenFile != "" {
			job["authorization"] = map[string]any{"type": "Bearer", "credentials_file": tg.BearerTokenFile}
		}
		scrape = append(scrape, job)
	}
	config, err := yaml.Marshal(map[string]any{
		"global":         map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
		"rule_files":     ruleFiles,
		"scrape_configs": scrape,
	})
	if err != nil {
		return nil, err
	}
	configPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configPath, config, 0o644); err != nil {
		return nil, err
	}
	port, err := localcluster.FreePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "--config.file="+configPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	s := &Server{URL: "http://" + addr, cmd: cmd, done: make(chan error, 1), Log: logPath}
	go func() { s.done <- cmd.Wait(); logFile.Close() }()
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-s.done:
			return false, fmt.Errorf("prometheus exited: %v (log: %s)", err, logPath)
		default:
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop ends Prometheus.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
}

// api GETs one HTTP API path and decodes its data field into out.
func (s *Server) api(ctx context.Context, path string, params url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var envelope struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return fmt.Errorf("%s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	if envelope.Status != "success" {
		return fmt.Errorf("%s: %s", path, envelope.Error)
	}
	return json.Unmarshal(envelope.Data, out)
}

// Sample is one element of an instant query's result.
type Sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Query evaluates expr now; an expression Prometheus refuses is an error.
func (s *Server) Query(ctx context.Context, expr string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := s.api(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: result type %s, want a vector", expr, data.ResultType)
	}
	var out []Sample
	return out, json.Unmarshal(data.Result, &out)
}

// TargetHealth is what Prometheus says of one scrape target.
type TargetHealth struct {
	Job       string
	Health    string
	LastError string
}

// Targets are the active targets' health.
func (s *Server) Targets(ctx context.Context) ([]TargetHealth, error) {
	var data struct {
		ActiveTargets []struct {
			Labels    map[string]string `json:"labels"`
			Health    string            `json:"health"`
			LastError string            `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := s.api(ctx, "/api/v1/targets", nil, &data); err != nil {
		return nil, err
	}
	out := make([]TargetHealth, 0, len(data.ActiveTargets))
	for _, t := range data.ActiveTargets {
		out = append(out, TargetHealth{Job: t.Labels["job"], Health: t.Health, LastError: t.LastError})
	}
	return out, nil
}

// RuleHealth is what Prometheus says of one loaded rule.
type RuleHealth struct {
	Name           string
	Health         string
	LastError      string
	LastEvaluation time.Time
}

// Rules are the loaded rules' health, from their last evaluation.
func (s *Server) Rules(ctx context.Context) ([]RuleHealth, error) {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name           string    `json:"name"`
				Health         string    `json:"health"`
				LastError      string    `json:"lastError"`
				LastEvaluation time.Time `json:"lastEvaluation"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := s.api(ctx, "/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	var out []RuleHealth
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			out = append(out, RuleHealth{Name: r.Name, Health: r.Health, LastError: r.LastError, LastEvaluation: r.LastEvaluation})
		}
	}
	return out, nil
}
