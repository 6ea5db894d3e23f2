package localcluster

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a component running as its own OS process, so that its CPU
// time and memory can be read from /proc, as benchmarks need.
type Process struct {
	Name    string
	LogPath string
	// MetricsURL is a scheduler process's /metrics (HTTPS, self-signed).
	MetricsURL string
	cmd        *exec.Cmd
	done       chan error
}

// StartProcess runs binary with args, output to a log file in the cluster's
// work dir, and waits until healthURL (if set) answers 200.
func (c *Cluster) StartProcess(ctx context.Context, name, binary string, args []string, healthURL string) (*Process, error) {
	logPath := filepath.Join(c.workDir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan error, 1)}
	go func() {
		p.done <- cmd.Wait()
		logFile.Close()
	}()
	if healthURL != "" {
		if err := waitHealthy(ctx, healthURL); err != nil {
			p.Stop()
			return nil, fmt.Errorf("%s did not become healthy (log: %s): %w", name, logPath, err)
		}
	}
	return p, nil
}

// PID of the running process.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM, then SIGKILL after 10 seconds, and waits.
func (p *Process) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// ProcessUsage is what /proc says about a process.
type ProcessUsage struct {
	// CPUSeconds is user plus system time since the process started.
	CPUSeconds float64
	// PeakRSSBytes is the high-water mark of resident memory (VmHWM).
	PeakRSSBytes int64
	// RSSBytes is the resident memory now (VmRSS).
	RSSBytes int64
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports here.
const clockTicks = 100

// Usage reads /proc/<pid>/stat and /proc/<pid>/status.
func Usage(pid int) (ProcessUsage, error) {
	var u ProcessUsage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	u.CPUSeconds = (utime + stime) / clockTicks
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		line := scanner.Text()
		for prefix, dst := range map[string]*int64{"VmHWM:": &u.PeakRSSBytes, "VmRSS:": &u.RSSBytes} {
			if strings.HasPrefix(line, prefix) {
				kb, _ := strconv.ParseInt(strings.Fields(line[len(prefix):])[0], 10, 64)
				*dst = kb * 1024
			}
		}
	}
	return u, scanner.Err()
}

// APIServerPID finds this cluster's kube-apiserver process by its port.
func (c *Cluster) APIServerPID() (int, error) {
	port := c.env.ControlPlane.APIServer.SecureServing.Port
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "kube-apiserver" {
			continue
		}
		for _, a := range args {
			if a == "--secure-port="+port {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no kube-apiserver process with --secure-port=%s", port)
}

// StartSchedulerProcess runs a scheduler binary (switchyard-scheduler or the
// upstream kube-scheduler) against the cluster with the given configuration.
func (c *Cluster) StartSchedulerProcess(ctx context.Context, name, binary string, opts SchedulerOptions) (*Process, error) {
	configPath, port, err := c.prepareScheduler(opts)
	if err != nil {
		return nil, err
	}
	args := []string{"--config=" + configPath, "--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", port), "--v=1"}
	if opts.OpenMetrics {
		args = append(args, "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics,/debug/pprof/*")
	}
	p, err := c.StartProcess(ctx, name, binary, args, fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
	if p != nil {
		p.MetricsURL = fmt.Sprintf("https://127.0.0.1:%d/metrics", port)
	}
	return p, err
}
