package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
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

func setLoad(b *testing.B, fs cgroup.FS, rel string, usage time.Duration, throttled int) {
	stat := fmt.Sprintf("usage_usec %d\nnr_periods %d\nnr_throttled %d\nthrottled_usec 0\n", usage.Microseconds(), throttled, throttled)
	if err := os.WriteFile(filepath.Join(fs.Root, rel, "cpu.stat"), []byte(stat), 0o644); err != nil {
		b.Fatal(err)
	}
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

// BenchmarkReactionTime measures, at 1s sampling with the default policy,
// the time from a usage spike to the new CPU limit being written, over
// spikes starting at different phases of the windows (simulated clock; the
// cgroup files are real files). Reports p50 and p99 in seconds.
func BenchmarkReactionTime(b *testing.B) {
	fs, dir := fakeTree(b, 1)
	rel := dir + "/c0"
	var reactions []time.Duration
	for i := range b.N {
		if _, err := fs.WriteCPUQuota(rel, 50000); err != nil {
			b.Fatal(err)
		}
		a, err := New(fs, Standalone{FS: fs, Dir: dir}, CgroupActuator{FS: fs}, NewMetrics(nil), Options{Policy: guardian.DefaultPolicy()})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Unix(1_800_000_000, 0)
		usage, throttled := time.Duration(0), 0
		// Idle for a while, spike at a phase that varies per iteration.
		spikeAt := start.Add(40*time.Second + time.Duration(i%10)*time.Second)
		var reacted time.Duration
		var before int64 // the quota when the spike starts (idle may have lowered it)
		for t := start; t.Before(start.Add(5 * time.Minute)); t = t.Add(time.Second) {
			if t.Equal(spikeAt) {
				l, _ := fs.ReadLimits(rel)
				before = l.CPUQuota
			}
			if !t.Before(spikeAt) {
				usage += 500 * time.Millisecond // at the 500m limit, throttled
				throttled += 10
			} else {
				usage += 10 * time.Millisecond
			}
			setLoad(b, fs, rel, usage, throttled)
			a.Step(quiet, t)
			if q, _ := fs.ReadLimits(rel); !t.Before(spikeAt) && q.CPUQuota > before {
				reacted = t.Sub(spikeAt)
				break
			}
		}
		reactions = append(reactions, reacted)
	}
	sort.Slice(reactions, func(i, j int) bool { return reactions[i] < reactions[j] })
	b.ReportMetric(reactions[len(reactions)/2].Seconds(), "p50-s")
	b.ReportMetric(reactions[(len(reactions)*99)/100].Seconds(), "p99-s")
}
