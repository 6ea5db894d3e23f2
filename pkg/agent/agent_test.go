package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
)

// realV1 returns the machine's cgroup v1 hierarchy, or skips the test with
// the reason when this machine cannot give the test writable cgroups.
func realV1(t testing.TB) cgroup.FS {
	t.Helper()
	fs, err := cgroup.Detect("/sys/fs/cgroup")
	if err != nil || fs.Version != cgroup.V1 {
		t.Skipf("SKIP (not silently): no cgroup v1 hierarchy at /sys/fs/cgroup (%v); the real-cgroup test needs one", err)
	}
	probe := filepath.Join(fs.Root, "cpu", fmt.Sprintf("switchyard-probe-%d", os.Getpid()))
	if err := os.Mkdir(probe, 0o755); err != nil {
		t.Skipf("SKIP (not silently): cgroups are not writable here (%v); the real-cgroup test needs root with cgroup v1", err)
	}
	_ = os.Remove(probe)
	return fs
}

// makeCgroup creates rel in the cpu, cpuacct and memory controllers.
func makeCgroup(t testing.TB, fs cgroup.FS, rel string) {
	t.Helper()
	for _, c := range []string{"cpu", "cpuacct", "memory"} {
		dir := filepath.Join(fs.Root, c, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("creating %s: %v", dir, err)
		}
	}
}

func removeCgroup(fs cgroup.FS, rel string) {
	for _, c := range []string{"cpu", "cpuacct", "memory"} {
		// Children first: rmdir removes one empty cgroup at a time.
		_ = os.Remove(filepath.Join(fs.Root, c, rel))
	}
}

func readQuota(t testing.TB, fs cgroup.FS, rel string) int64 {
	t.Helper()
	l, err := fs.ReadLimits(rel)
	if err != nil {
		t.Fatal(err)
	}
	return l.CPUQuota
}

// TestStandaloneScalesARealProcess puts a CPU-burning shell into a real
// cgroup v1 with a 200m quota. The agent, in standalone mode with the
// cgroup actuator, raises the quota while the process is throttled, and
// lowers it once the process goes idle. The test reads the real quota file
// and the kernel's throttling counters.
func TestStandaloneScalesARealProcess(t *testing.T) {
	fs := realV1(t)
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir := fmt.Sprintf("switchyard-test-%d", os.Getpid())
	rel := dir + "/burner"
	makeCgroup(t, fs, rel)
	t.Cleanup(func() { removeCgroup(fs, rel); removeCgroup(fs, dir) })
	if _, err := fs.WriteCPUQuota(rel, 20000); err != nil { // 200m
		t.Fatal(err)
	}

	// Burn for 5 seconds, then sleep: builtins only, so the shell itself burns.
	burner := exec.Command("sh", "-c", "read _; end=$(( $(date +%s) + 5 )); while [ $(date +%s) -lt $end ]; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; done; exec sleep 60")
	stdin, err := burner.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := burner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = burner.Process.Kill(); _ = burner.Wait() })
	for _, c := range []string{"cpu", "cpuacct", "memory"} {
		if err := os.WriteFile(filepath.Join(fs.Root, c, rel, "cgroup.procs"), []byte(strconv.Itoa(burner.Process.Pid)), 0); err != nil {
			t.Fatalf("moving the burner into %s: %v", c, err)
		}
	}
	_, _ = stdin.Write([]byte("go\n")) // start burning inside the cgroup

	p := guardian.DefaultPolicy()
	p.Window, p.Windows, p.Cooldown, p.MaxChangesPerMinute = 400*time.Millisecond, 2, 0, 600
	a, err := New(fs, Standalone{FS: fs, Dir: dir}, CgroupActuator{FS: fs}, NewMetrics(nil), Options{SampleInterval: 100 * time.Millisecond, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	go a.Run(ctx)

	// Raised while throttled.
	var peak int64
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if q := readQuota(t, fs, rel); q > peak {
			peak = q
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := fs.ReadStats(rel)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("while burning: quota rose from 20000 to %d us per 100ms; kernel counted %d throttled periods of %d", peak, st.ThrottledPeriods, st.Periods)
	if st.ThrottledPeriods == 0 {
		t.Fatal("the kernel never throttled the burner; the test proves nothing")
	}
	if peak <= 20000 {
		t.Fatalf("quota stayed at %d while the process was throttled", peak)
	}
	// Lowered once idle.
	var low int64 = peak
	deadline = time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) && low >= peak/2 {
		low = readQuota(t, fs, rel)
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("once idle: quota came down from %d to %d", peak, low)
	if low >= peak/2 {
		t.Errorf("quota %d did not come down from %d after the process went idle", low, peak)
	}
}

// TestSafetyOnFakeV2Files covers the file-level rules on a faithful cgroup
// v2 tree in a temp dir: missing and malformed files are errors (counted,
// never a crash), a vanished container is dropped, a child is never raised
// above its parent, and unchanged writes are skipped.
func TestSafetyOnFakeV2Files(t *testing.T) {
	root := t.TempDir()
	write := func(rel, file, content string) {
		t.Helper()
		dir := filepath.Join(root, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("", "cgroup.controllers", "cpu memory\n")
	parent := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podabc.slice"
	child := parent + "/cri-containerd-123.scope"
	write(parent, "cpu.max", "50000 100000\n")
	write(parent, "memory.max", "max\n")
	write(child, "cpu.max", "40000 100000\n")
	write(child, "cpu.stat", "usage_usec 100\nnr_periods 10\nnr_throttled 5\nthrottled_usec 9\n")
	write(child, "memory.max", "536870912\n")
	write(child, "memory.current", "1000\n")
	fs, err := cgroup.Detect(root)
	if err != nil || fs.Version != cgroup.V2 {
		t.Fatalf("detect: %v %v", fs, err)
	}
	act := CgroupActuator{FS: fs}
	if err := act.Apply(context.Background(), Target{Key: "c", Path: child}, guardian.Decision{Resource: guardian.CPU, From: 400, To: 600}); err == nil || !strings.Contains(err.Error(), "parent") {
		t.Errorf("raising a child to 600m under a 500m parent: err = %v, want refused", err)
	}
	if err := act.Apply(context.Background(), Target{Key: "c", Path: child}, guardian.Decision{Resource: guardian.CPU, From: 400, To: 450}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(root, child, "cpu.max")); string(data) != "45000 100000" {
		t.Errorf("cpu.max = %q, want 45000 100000 (period kept)", data)
	}
	if changed, err := fs.WriteMemoryMax(child, 536870912); err != nil || changed {
		t.Errorf("unchanged write: changed=%v err=%v, want skipped", changed, err)
	}

	// Malformed and missing files: errors, and the agent keeps going.
	write(child, "cpu.stat", "usage_usec lots\n")
	if _, err := fs.ReadStats(child); err == nil {
		t.Error("malformed cpu.stat read without error")
	}
	write(child, "cpu.max", "fast 100000\n")
	if _, err := fs.ReadLimits(child); err == nil {
		t.Error("malformed cpu.max read without error")
	}
	m := NewMetrics(nil)
	a, err := New(fs, staticSource{{Key: "gone", Path: parent + "/cri-containerd-999.scope"}, {Key: "bad", Path: child}}, act, m, Options{Policy: guardian.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	a.Step(context.Background(), time.Now())
	if v := counter(m, "vanished"); v != 1 {
		t.Errorf("vanished containers counted %v, want 1", v)
	}
	if v := counter(m, "read"); v != 1 {
		t.Errorf("malformed files counted %v, want 1", v)
	}
}

type staticSource []Target

func (s staticSource) Targets(context.Context) ([]Target, Capacity, error) {
	return s, Capacity{MilliCPU: 4000, Memory: 8 << 30}, nil
}

// TestOOMKillAndSqueezeOnFakeV2Files: on a cgroup v2 tree, an oom_kill in
// memory.events doubles memory.max at once and is reported; an idle
// container is squeezed through memory.high, and memory.max follows once
// the squeeze held for a window.
func TestOOMKillAndSqueezeOnFakeV2Files(t *testing.T) {
	root := t.TempDir()
	rel := "managed/c0"
	files := map[string]string{"cpu.max": "max 100000", "memory.max": "268435456", "memory.high": "max", "memory.current": "52428800",
		"cpu.stat": "usage_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0", "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0",
		"cpu.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0", "memory.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=0"}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(root, rel, name), []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu memory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		write(name, content)
	}
	read := func(name string) string {
		data, _ := os.ReadFile(filepath.Join(root, rel, name))
		return strings.TrimSpace(string(data))
	}
	fs, err := cgroup.Detect(root)
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	p := guardian.DefaultPolicy()
	p.Window, p.Windows, p.Cooldown = 2*time.Second, 2, 0
	a, err := New(fs, Standalone{FS: fs, Dir: "managed"}, CgroupActuator{FS: fs}, NewMetrics(nil), Options{Policy: p,
		Report: func(_ Target, eventType, reason, msg string) { events = append(events, eventType+" "+reason+": "+msg) }})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	a.Step(context.Background(), now)
	write("memory.events", "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1")
	now = now.Add(time.Second)
	a.Step(context.Background(), now)
	if got := read("memory.max"); got != "536870912" {
		t.Fatalf("memory.max after an OOM kill = %s, want 536870912 (doubled)", got)
	}
	if len(events) != 1 || !strings.Contains(events[0], "Warning OOMKilled") || !strings.Contains(events[0], "256Mi") || !strings.Contains(events[0], "512Mi") {
		t.Fatalf("events = %q, want one OOMKilled warning naming 256Mi and 512Mi", events)
	}
	// Idle at 50Mi for two windows: squeezed by memory.high, memory.max kept.
	for range 4 {
		now = now.Add(time.Second)
		a.Step(context.Background(), now)
	}
	if high, max := read("memory.high"), read("memory.max"); high == "max" || max != "536870912" {
		t.Fatalf("after two idle windows: memory.high=%s memory.max=%s, want a squeeze below 512Mi with memory.max kept", high, max)
	}
	squeezed := read("memory.high")
	for range 2 {
		now = now.Add(time.Second)
		a.Step(context.Background(), now)
	}
	if high, max := read("memory.high"), read("memory.max"); high != "max" || max != squeezed {
		t.Fatalf("after a quiet window under memory.high=%s: memory.high=%s memory.max=%s, want memory.max=%s and memory.high=max", squeezed, high, max, squeezed)
	}
}
