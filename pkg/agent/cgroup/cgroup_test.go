package cgroup

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// tree writes files (path relative to root -> content) into a temp dir.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, content := range files {
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// The files as a v2 kernel (6.x) writes them, and as v1 does.
func TestReadsOOMKillsLimitHitsAndPressure(t *testing.T) {
	v2 := map[string]string{
		"cgroup.controllers": "cpu memory\n",
		"c/cpu.stat":         "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\nnr_periods 20\nnr_throttled 4\nthrottled_usec 300000\nnr_bursts 0\nburst_usec 0\n",
		"c/memory.current":   "104857600\n",
		"c/memory.events":    "low 0\nhigh 7\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
		"c/cpu.pressure":     "some avg10=1.50 avg60=0.40 avg300=0.10 total=250000\nfull avg10=1.00 avg60=0.20 avg300=0.05 total=120000\n",
		"c/memory.pressure":  "some avg10=0.00 avg60=0.00 avg300=0.00 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=40\n",
		"c/cpu.max":          "50000 100000\n",
		"c/memory.max":       "536870912\n",
		"c/memory.high":      "268435456\n",
	}
	for _, tc := range []struct {
		name   string
		files  map[string]string
		drop   []string
		want   Stats
		limits Limits
	}{
		{
			name:  "v2",
			files: v2,
			want: Stats{CPUUsage: 2 * time.Second, Periods: 20, ThrottledPeriods: 4, ThrottledTime: 300 * time.Millisecond, MemoryUsage: 100 << 20,
				OOMKills: 1, LimitHits: 3, Pressure: Pressure{Available: true, CPU: 250 * time.Millisecond, Memory: 42 * time.Microsecond}},
			limits: Limits{CPUQuota: 50000, CPUPeriod: 100000, MemoryMax: 512 << 20, MemoryHigh: 256 << 20},
		},
		{
			name:  "v2 on a kernel without PSI, memory.events or memory.high",
			files: v2, drop: []string{"c/cpu.pressure", "c/memory.pressure", "c/memory.events", "c/memory.high"},
			want:   Stats{CPUUsage: 2 * time.Second, Periods: 20, ThrottledPeriods: 4, ThrottledTime: 300 * time.Millisecond, MemoryUsage: 100 << 20},
			limits: Limits{CPUQuota: 50000, CPUPeriod: 100000, MemoryMax: 512 << 20, MemoryHigh: Unlimited},
		},
		{
			name: "v1",
			files: map[string]string{
				"cpu/c/cpu.stat":                 "nr_periods 20\nnr_throttled 4\nthrottled_time 300000000\nnr_bursts 0\nburst_time 0\n",
				"cpu/c/cpu.cfs_quota_us":         "50000\n",
				"cpu/c/cpu.cfs_period_us":        "100000\n",
				"cpuacct/c/cpuacct.usage":        "2000000000\n",
				"memory/c/memory.usage_in_bytes": "104857600\n",
				"memory/c/memory.limit_in_bytes": "9223372036854771712\n",
				"memory/c/memory.oom_control":    "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
				"memory/c/memory.failcnt":        "9\n",
			},
			want:   Stats{CPUUsage: 2 * time.Second, Periods: 20, ThrottledPeriods: 4, ThrottledTime: 300 * time.Millisecond, MemoryUsage: 100 << 20, OOMKills: 2, LimitHits: 9},
			limits: Limits{CPUQuota: 50000, CPUPeriod: 100000, MemoryMax: Unlimited, MemoryHigh: Unlimited},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range tc.files {
				files[k] = v
			}
			for _, d := range tc.drop {
				delete(files, d)
			}
			root := tree(t, files)
			if tc.name == "v1" {
				if err := os.MkdirAll(filepath.Join(root, "cpu"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			fs, err := Detect(root)
			if err != nil {
				t.Fatal(err)
			}
			st, err := fs.ReadStats("c")
			if err != nil {
				t.Fatal(err)
			}
			if st != tc.want {
				t.Errorf("stats = %+v\nwant    %+v", st, tc.want)
			}
			l, err := fs.ReadLimits("c")
			if err != nil {
				t.Fatal(err)
			}
			if l != tc.limits {
				t.Errorf("limits = %+v, want %+v", l, tc.limits)
			}
		})
	}
}

func TestMalformedPressureIsAnErrorNotAPanic(t *testing.T) {
	root := tree(t, map[string]string{"cpu.pressure": "some avg10=0.00 total=lots\n", "memory.pressure": "full total=1\n"})
	if _, err := readPressure(filepath.Join(root, "cpu.pressure")); err == nil {
		t.Error("total=lots read without error")
	}
	if _, err := readPressure(filepath.Join(root, "memory.pressure")); err == nil {
		t.Error("a file without a some line read without error")
	}
}

func TestWriteMemoryHigh(t *testing.T) {
	root := tree(t, map[string]string{"cgroup.controllers": "memory\n", "c/memory.high": "max\n"})
	fs, _ := Detect(root)
	if changed, err := fs.WriteMemoryHigh("c", 64<<20); err != nil || !changed {
		t.Fatalf("WriteMemoryHigh: changed=%v err=%v", changed, err)
	}
	if data, _ := os.ReadFile(filepath.Join(root, "c/memory.high")); string(data) != "67108864" {
		t.Errorf("memory.high = %q", data)
	}
	if _, err := (FS{Root: root, Version: V1}).WriteMemoryHigh("c", 1); err != ErrNoMemoryHigh {
		t.Errorf("v1: err = %v, want ErrNoMemoryHigh", err)
	}
}
