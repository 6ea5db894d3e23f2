package localcluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"sigs.k8s.io/yaml"

	"github.com/switchyard-sched/switchyard/pkg/scheduler"
)

// SchedulerOptions tunes an in-process scheduler.
type SchedulerOptions struct {
	// Config is a KubeSchedulerConfiguration (YAML). Its client connection is
	// pointed at this cluster and leader election is turned off.
	Config []byte
	// QPS and Burst of the scheduler's client. Zero keeps the config's
	// values (upstream's default is 50/100, which caps binds at about 50/s).
	QPS   float32
	Burst int32
	// Upstream runs the plain kube-scheduler, without Switchyard's plugins,
	// for side-by-side comparisons.
	Upstream bool
	// OpenMetrics lets anyone read a scheduler process's /metrics and
	// /debug/pprof (as --authorization-always-allow-paths does for
	// /healthz), for the bench on loopback; never in a deployment.
	OpenMetrics bool
}

// RunningScheduler is a scheduler started by StartScheduler.
type RunningScheduler struct {
	// HealthzURL is the scheduler's secure /healthz endpoint.
	HealthzURL string
	// MetricsURL is its secure /metrics endpoint.
	MetricsURL string
	cancel     context.CancelFunc
	done       chan struct{}
	err        atomic.Value
}

// Stop stops the scheduler and waits until it returned.
func (s *RunningScheduler) Stop() {
	s.cancel()
	<-s.done
}

// Err is what the scheduler returned, if it returned.
func (s *RunningScheduler) Err() error {
	if err, ok := s.err.Load().(error); ok {
		return err
	}
	return nil
}

// StartScheduler runs switchyard-scheduler in this process against the
// cluster, through the same app.Setup and app.Run the binary uses, and
// waits until it serves /healthz.
func (c *Cluster) StartScheduler(ctx context.Context, opts SchedulerOptions) (*RunningScheduler, error) {
	configPath, port, err := c.prepareScheduler(opts)
	if err != nil {
		return nil, err
	}
	o := options.NewOptions()
	o.ConfigFile = configPath
	o.SecureServing.BindAddress = net.ParseIP("127.0.0.1")
	o.SecureServing.BindPort = port
	// Delegated authentication and authorization against this cluster, as
	// in production: /metrics answers a bearer token the API server's
	// TokenReview accepts and whose SubjectAccessReview allows get
	// /metrics; /healthz, /livez and /readyz are always allowed.
	o.Authentication.RemoteKubeConfigFile = c.KubeconfigPath
	o.Authorization.RemoteKubeConfigFile = c.KubeconfigPath
	var plugins []app.Option
	if !opts.Upstream {
		plugins = scheduler.Options()
	}
	ctx, cancel := context.WithCancel(ctx)
	cc, sched, err := app.Setup(ctx, o, plugins...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("setting up the scheduler: %w", err)
	}
	s := &RunningScheduler{
		HealthzURL: fmt.Sprintf("https://127.0.0.1:%d/healthz", port),
		MetricsURL: fmt.Sprintf("https://127.0.0.1:%d/metrics", port),
		cancel:     cancel,
		done:       make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := app.Run(ctx, cc, sched); err != nil && ctx.Err() == nil {
			s.err.Store(err)
			klog.FromContext(ctx).Error(err, "Scheduler stopped")
		}
	}()
	if err := waitHealthy(ctx, s.HealthzURL); err != nil {
		s.Stop()
		return nil, fmt.Errorf("scheduler did not become healthy: %w", err)
	}
	return s, nil
}

// prepareScheduler writes the configuration for this cluster and picks the
// secure port, for in-process and separate-process schedulers alike.
func (c *Cluster) prepareScheduler(opts SchedulerOptions) (configPath string, port int, err error) {
	if configPath, err = WriteSchedulerConfig(c.workDir, opts.Config, c.KubeconfigPath, opts.QPS, opts.Burst); err != nil {
		return "", 0, err
	}
	port, err = FreePort()
	return configPath, port, err
}

// WriteSchedulerConfig writes a copy of a KubeSchedulerConfiguration into
// dir with its client connection pointed at kubeconfig (and, when not zero,
// the given QPS and burst) and leader election off, as a single in-process
// scheduler needs. It returns the file's path.
func WriteSchedulerConfig(dir string, config []byte, kubeconfig string, qps float32, burst int32) (string, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(config, &cfg); err != nil {
		return "", fmt.Errorf("parsing the scheduler configuration: %w", err)
	}
	if cfg == nil {
		return "", fmt.Errorf("the scheduler configuration is empty")
	}
	conn, _ := cfg["clientConnection"].(map[string]any)
	if conn == nil {
		conn = map[string]any{}
	}
	conn["kubeconfig"] = kubeconfig
	if qps > 0 {
		conn["qps"] = qps
	}
	if burst > 0 {
		conn["burst"] = burst
	}
	cfg["clientConnection"] = conn
	cfg["leaderElection"] = map[string]any{"leaderElect": false}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "scheduler-config-*.yaml")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	return filepath.Clean(f.Name()), nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Ports a process keeps for its whole run, below Linux's default ephemeral
// range (32768-60999) so that no other listener on port 0, nor an outgoing
// connection, is given them while they are briefly closed (a component
// restarted by a test).
const keptPortLow, keptPortHigh = 20000, 32000

// KeptPort is a free loopback port outside the ephemeral range, for an
// address that must survive its server's restarts, as the visibility
// APIService's does.
func KeptPort() (int, error) {
	start := keptPortLow + rand.IntN(keptPortHigh-keptPortLow)
	for i := range keptPortHigh - keptPortLow {
		port := keptPortLow + (start-keptPortLow+i)%(keptPortHigh-keptPortLow)
		// On every address, so that neither 127.0.0.1 nor ::1 (which
		// "localhost" may resolve to) has a listener there.
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		_ = l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port from %d to %d", keptPortLow, keptPortHigh)
}

func waitHealthy(ctx context.Context, url string) error {
	client := insecureHTTPClient()
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		resp, err := client.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == 200, nil
	})
}
