package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/agent/cgroup"
	"github.com/switchyard-sched/switchyard/pkg/agent/guardian"
)

// quiet drops the agent's logs, which would dominate what is measured.
var quiet = klog.NewContext(context.Background(), logr.Discard())

// fakeTree is a cgroup v2 tree of n containers below dir, with counters
// the benchmark advances.
func fakeTree(b *testing.B, n int) (cgroup.FS, string) {
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu memory\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		dir := filepath.Join(root, "managed", fmt.Sprintf("c%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for name, content := range map[string]string{"cpu.max": "50000 100000", "memory.max": "536870912", "memory.current": "104857600", "cpu.stat": "usage_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content+"\n"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	fs, err := cgroup.Detect(root)
	if err != nil {
		b.Fatal(err)
	}
	return fs, "managed"
}

// BenchmarkAgentStep is the agent's cost per 1s sample for 100 and 500
// containers on a cgroup v2 tree (reads of cpu.stat, memory.current,
// cpu.max and memory.max for each): ns/op is CPU time per sample, so
// ns/op / 1e9 is the fraction of a core at 1s sampling.
func BenchmarkAgentStep(b *testing.B) {
	for _, n := range []int{100, 500} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			fs, dir := fakeTree(b, n)
			a, err := New(fs, Standalone{FS: fs, Dir: dir}, CgroupActuator{FS: fs}, NewMetrics(nil), Options{Policy: guardian.DefaultPolicy(), DryRun: true})
			if err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			a.Step(quiet, now)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				a.Step(quiet, now.Add(time.Duration(i+1)*time.Second))
			}
			b.StopTimer()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
		})
	}
}

// BenchmarkReactionTime measures, at 1s sampling, the time from a CPU
// spike to the new CPU limit being written, for the windowed policy of
// Switchyard 0.1 and for today's default (fast path up), over spikes that
// start at ten phases within a sample (simulated clock; the cgroup files
// are real files of a v2 tree). The container is idle at 10m, then wants
// two cores under a 500m limit: while throttled it uses its quota and is
// throttled for the rest of each CFS period, as the kernel accounts it.
// Reports p50 and p99 in seconds.
func BenchmarkReactionTime(b *testing.B) {
	for _, pc := range []struct {
		name   string
		policy guardian.Policy
	}{{"windowed", guardian.WindowedPolicy()}, {"default", guardian.DefaultPolicy()}} {
		b.Run("policy="+pc.name, func(b *testing.B) {
			fs, dir := fakeTree(b, 1)
			rel := dir + "/c0"
			var reactions []time.Duration
			for i := range b.N {
				if _, err := fs.WriteCPUQuota(rel, 50000); err != nil {
					b.Fatal(err)
				}
				a, err := New(fs, Standalone{FS: fs, Dir: dir}, CgroupActuator{FS: fs}, NewMetrics(nil), Options{Policy: pc.policy})
				if err != nil {
					b.Fatal(err)
				}
				start := time.Unix(1_800_000_000, 0)
				spikeAt := start.Add(40*time.Second + time.Duration(i%10)*100*time.Millisecond + time.Duration(i%7)*time.Second)
				var c counters
				var reacted time.Duration
				for t := start; t.Before(start.Add(5 * time.Minute)); t = t.Add(time.Second) {
					l, err := fs.ReadLimits(rel)
					if err != nil {
						b.Fatal(err)
					}
					// The second that ends at t: idle before the spike, then throttled.
					spiking := time.Duration(0)
					if t.After(spikeAt) {
						spiking = min(time.Second, t.Sub(spikeAt))
					}
					c.advance(time.Second-spiking, 10, l.MilliCPU())
					c.advance(spiking, 2000, l.MilliCPU())
					c.write(b, fs, rel)
					a.Step(quiet, t)
					if q, _ := fs.ReadLimits(rel); t.After(spikeAt) && q.CPUQuota > l.CPUQuota {
						reacted = t.Sub(spikeAt)
						break
					}
				}
				reactions = append(reactions, reacted)
			}
			sort.Slice(reactions, func(i, j int) bool { return reactions[i] < reactions[j] })
			b.ReportMetric(reactions[len(reactions)/2].Seconds(), "p50-s")
			b.ReportMetric(reactions[(len(reactions)*99)/100].Seconds(), "p99-s")
		})
	}
}

// counters are a container's cpu.stat as the kernel keeps it.
type counters struct {
	usage, throttledTime      time.Duration
	periods, throttledPeriods uint64
}

// advance runs the container for d wanting demand millicores under a
// limit of limit millicores (CFS periods of 100ms).
func (c *counters) advance(d time.Duration, demand, limit int64) {
	if d <= 0 {
		return
	}
	c.periods += uint64(d / (100 * time.Millisecond))
	if limit < 0 || demand <= limit {
		c.usage += d * time.Duration(demand) / 1000
		return
	}
	c.usage += d * time.Duration(limit) / 1000
	c.throttledPeriods += uint64(d / (100 * time.Millisecond))
	c.throttledTime += d - d*time.Duration(limit)/time.Duration(demand)
}

func (c counters) write(b *testing.B, fs cgroup.FS, rel string) {
	stat := fmt.Sprintf("usage_usec %d\nnr_periods %d\nnr_throttled %d\nthrottled_usec %d\n", c.usage.Microseconds(), c.periods, c.throttledPeriods, c.throttledTime.Microseconds())
	if err := os.WriteFile(filepath.Join(fs.Root, rel, "cpu.stat"), []byte(stat), 0o644); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRealV1Reaction is the reaction time on this machine's real
// cgroup v1: a shell burning one CPU starts inside a cgroup capped at
// 200m while the agent samples every second with the default policy (real
// clock, real kernel throttling counters); the time is from the burner's
// start to the raised quota in cpu.cfs_quota_us. Each iteration waits a
// different fraction of a second before starting the burner, so spikes
// fall at every phase of the sampling. Needs root and cgroup v1 (skipped,
// with the reason, otherwise).
func BenchmarkRealV1Reaction(b *testing.B) {
	fs := realV1(b)
	dir := fmt.Sprintf("switchyard-bench-%d", os.Getpid())
	rel := dir + "/burner"
	makeCgroup(b, fs, rel)
	b.Cleanup(func() { removeCgroup(fs, rel); removeCgroup(fs, dir) })
	var reactions []time.Duration
	for i := range b.N {
		if _, err := fs.WriteCPUQuota(rel, 20000); err != nil {
			b.Fatal(err)
		}
		burner := exec.Command("sh", "-c", "read _; while :; do :; done")
		stdin, err := burner.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := burner.Start(); err != nil {
			b.Fatal(err)
		}
		for _, c := range []string{"cpu", "cpuacct", "memory"} {
			if err := os.WriteFile(filepath.Join(fs.Root, c, rel, "cgroup.procs"), []byte(strconv.Itoa(burner.Process.Pid)), 0); err != nil {
				b.Fatalf("moving the burner into %s: %v", c, err)
			}
		}
		a, err := New(fs, Standalone{FS: fs, Dir: dir}, CgroupActuator{FS: fs}, NewMetrics(nil), Options{SampleInterval: time.Second, Policy: guardian.DefaultPolicy()})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(quiet)
		go a.Run(ctx)
		time.Sleep(1500*time.Millisecond + time.Duration(i%10)*100*time.Millisecond)
		started := time.Now()
		_, _ = stdin.Write([]byte("go\n"))
		for readQuota(b, fs, rel) <= 20000 && time.Since(started) < 30*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		reactions = append(reactions, time.Since(started))
		cancel()
		_ = burner.Process.Kill()
		_ = burner.Wait()
	}
	sort.Slice(reactions, func(i, j int) bool { return reactions[i] < reactions[j] })
	b.ReportMetric(reactions[len(reactions)/2].Seconds(), "p50-s")
	b.ReportMetric(reactions[(len(reactions)*99)/100].Seconds(), "p99-s")
}
