// Package cgroup reads a container's CPU and memory usage and writes its
// CPU quota and memory limit, for cgroup v1 (cpu, cpuacct and memory
// controllers mounted separately or together) and cgroup v2 (the unified
// hierarchy). Paths are relative to the hierarchy, e.g.
// kubepods.slice/kubepods-burstable.slice/...; ContainerPath builds them the
// way the kubelet and the container runtimes name them. Missing and
// malformed files are errors, never panics; a write that would not change
// the value is skipped.
package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Version is the cgroup hierarchy version.
type Version int

// Hierarchy versions.
const (
	V1 Version = 1
	V2 Version = 2
)

// Unlimited is the value of an unlimited CPU quota or memory limit.
const Unlimited int64 = -1

// ErrNotFound: the cgroup does not exist (the container went away).
var ErrNotFound = errors.New("cgroup not found")

// FS is one cgroup hierarchy mounted at Root.
type FS struct {
	Root    string
	Version Version
}

// Detect finds the version of the hierarchy at root (/sys/fs/cgroup).
func Detect(root string) (FS, error) {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return FS{Root: root, Version: V2}, nil
	}
	if _, err := os.Stat(filepath.Join(root, "cpu")); err == nil {
		return FS{Root: root, Version: V1}, nil
	}
	return FS{}, fmt.Errorf("%s is neither a cgroup v2 hierarchy (no cgroup.controllers) nor a v1 one (no cpu controller)", root)
}

// Stats are cumulative counters and current usage.
type Stats struct {
	// CPUUsage is the CPU time used since the cgroup was created.
	CPUUsage time.Duration
	// Periods and ThrottledPeriods count CFS enforcement periods.
	Periods, ThrottledPeriods uint64
	// ThrottledTime is the time the cgroup was throttled.
	ThrottledTime time.Duration
	// MemoryUsage is the current memory usage in bytes.
	MemoryUsage int64
	// OOMKills counts the processes the kernel's OOM killer killed in
	// the cgroup (v2 memory.events oom_kill; v1 memory.oom_control
	// oom_kill, kernel 4.13 and later).
	OOMKills uint64
	// LimitHits counts the times usage reached the memory limit (v2
	// memory.events max; v1 memory.failcnt).
	LimitHits uint64
	// Pressure is the cgroup's pressure stall information, v2 only.
	Pressure Pressure
}

// Pressure is the "some" line of a cgroup's pressure stall information
// (cpu.pressure, memory.pressure: the time at least one task was stalled
// waiting for the resource). Cgroup v1 has no per-cgroup PSI: there the
// throttling counters (CPU) and memory.failcnt (memory) are the signals.
type Pressure struct {
	// Available is false when the files are absent (v1, or a kernel
	// without CONFIG_PSI).
	Available bool
	// CPU and Memory are the cumulative stall times.
	CPU, Memory time.Duration
}

// Limits are the cgroup's CPU quota and memory limit.
type Limits struct {
	// CPUQuota per CPUPeriod, in microseconds; Unlimited when none.
	CPUQuota, CPUPeriod int64
	// MemoryMax in bytes; Unlimited when none.
	MemoryMax int64
	// MemoryHigh is the v2 throttling limit (memory.high), above which the
	// kernel reclaims hard instead of OOM-killing; Unlimited when none and
	// always on v1, which has no such limit.
	MemoryHigh int64
}

// MilliCPU is the quota as millicores; Unlimited when none.
func (l Limits) MilliCPU() int64 {
	if l.CPUQuota == Unlimited || l.CPUPeriod <= 0 {
		return Unlimited
	}
	return l.CPUQuota * 1000 / l.CPUPeriod
}

// dir is the directory of a controller for the relative path.
func (f FS) dir(controller, rel string) string {
	if f.Version == V2 {
		return filepath.Join(f.Root, rel)
	}
	return filepath.Join(f.Root, controller, rel)
}

// Exists reports whether the cgroup (its cpu controller) exists.
func (f FS) Exists(rel string) bool {
	_, err := os.Stat(f.dir("cpu", rel))
	return err == nil
}

func read(path string) (string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

func readInt(path string) (int64, error) {
	s, err := read(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a number", path, s)
	}
	return v, nil
}

// readKeyed parses "key value" lines (cpu.stat, memory.stat).
func readKeyed(path string) (map[string]uint64, error) {
	s, err := read(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
		fields := strings.Fields(line)
		if len(fields) != 2 {
			continue
		}
		v, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a number in line %q", path, fields[1], line)
		}
		out[fields[0]] = v
	}
	return out, nil
}

// ReadStats reads usage and throttling.
func (f FS) ReadStats(rel string) (Stats, error) {
	var st Stats
	if f.Version == V2 {
		cpu, err := readKeyed(filepath.Join(f.dir("cpu", rel), "cpu.stat"))
		if err != nil {
			return st, err
		}
		usage, ok := cpu["usage_usec"]
		if !ok {
			return st, fmt.Errorf("%s: no usage_usec", filepath.Join(f.dir("cpu", rel), "cpu.stat"))
		}
		st.CPUUsage = time.Duration(usage) * time.Microsecond
		st.Periods, st.ThrottledPeriods = cpu["nr_periods"], cpu["nr_throttled"]
		st.ThrottledTime = time.Duration(cpu["throttled_usec"]) * time.Microsecond
		mem, err := readInt(filepath.Join(f.dir("memory", rel), "memory.current"))
		if err != nil {
			return st, err
		}
		st.MemoryUsage = mem
		// memory.events and the pressure files are optional: older
		// kernels lack them, and their absence must not hide the usage.
		if events, err := readKeyed(filepath.Join(f.dir("memory", rel), "memory.events")); err == nil {
			st.OOMKills, st.LimitHits = events["oom_kill"], events["max"]
		}
		cpuSome, cerr := readPressure(filepath.Join(f.dir("cpu", rel), "cpu.pressure"))
		memSome, merr := readPressure(filepath.Join(f.dir("memory", rel), "memory.pressure"))
		if cerr == nil && merr == nil {
			st.Pressure = Pressure{Available: true, CPU: cpuSome, Memory: memSome}
		}
		return st, nil
	}
	usage, err := readInt(filepath.Join(f.dir("cpuacct", rel), "cpuacct.usage"))
	if err != nil {
		return st, err
	}
	st.CPUUsage = time.Duration(usage) // nanoseconds
	cpu, err := readKeyed(filepath.Join(f.dir("cpu", rel), "cpu.stat"))
	if err != nil {
		return st, err
	}
	st.Periods, st.ThrottledPeriods = cpu["nr_periods"], cpu["nr_throttled"]
	st.ThrottledTime = time.Duration(cpu["throttled_time"])
	mem, err := readInt(filepath.Join(f.dir("memory", rel), "memory.usage_in_bytes"))
	if err != nil {
		return st, err
	}
	st.MemoryUsage = mem
	if oom, err := readKeyed(filepath.Join(f.dir("memory", rel), "memory.oom_control")); err == nil {
		st.OOMKills = oom["oom_kill"]
	}
	if hits, err := readInt(filepath.Join(f.dir("memory", rel), "memory.failcnt")); err == nil && hits >= 0 {
		st.LimitHits = uint64(hits)
	}
	return st, nil
}

// readPressure reads the "some" total (microseconds) of a PSI file:
//
//	some avg10=0.00 avg60=0.00 avg300=0.00 total=12345
//	full avg10=0.00 avg60=0.00 avg300=0.00 total=0
func readPressure(path string) (time.Duration, error) {
	s, err := read(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(s, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "some" {
			continue
		}
		for _, kv := range fields[1:] {
			if v, ok := strings.CutPrefix(kv, "total="); ok {
				total, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return 0, fmt.Errorf("%s: %q is not a number", path, v)
				}
				return time.Duration(total) * time.Microsecond, nil
			}
		}
	}
	return 0, fmt.Errorf("%s: no \"some ... total=\" line", path)
}

// v1 reports "no limit" as a huge page-aligned number.
const v1NoMemoryLimit = int64(1) << 62

// ReadLimits reads the CPU quota and memory limit.
func (f FS) ReadLimits(rel string) (Limits, error) {
	var l Limits
	if f.Version == V2 {
		s, err := read(filepath.Join(f.dir("cpu", rel), "cpu.max"))
		if err != nil {
			return l, err
		}
		fields := strings.Fields(s)
		if len(fields) != 2 {
			return l, fmt.Errorf("cpu.max of %s: %q is not \"<quota|max> <period>\"", rel, s)
		}
		if l.CPUPeriod, err = strconv.ParseInt(fields[1], 10, 64); err != nil || l.CPUPeriod <= 0 {
			return l, fmt.Errorf("cpu.max of %s: bad period %q", rel, fields[1])
		}
		if fields[0] == "max" {
			l.CPUQuota = Unlimited
		} else if l.CPUQuota, err = strconv.ParseInt(fields[0], 10, 64); err != nil {
			return l, fmt.Errorf("cpu.max of %s: bad quota %q", rel, fields[0])
		}
		m, err := read(filepath.Join(f.dir("memory", rel), "memory.max"))
		if err != nil {
			return l, err
		}
		if m == "max" {
			l.MemoryMax = Unlimited
		} else if l.MemoryMax, err = strconv.ParseInt(m, 10, 64); err != nil {
			return l, fmt.Errorf("memory.max of %s: %q is not a number", rel, m)
		}
		l.MemoryHigh = Unlimited
		if h, err := read(filepath.Join(f.dir("memory", rel), "memory.high")); err == nil && h != "max" {
			if l.MemoryHigh, err = strconv.ParseInt(h, 10, 64); err != nil {
				return l, fmt.Errorf("memory.high of %s: %q is not a number", rel, h)
			}
		}
		return l, nil
	}
	l.MemoryHigh = Unlimited
	var err error
	if l.CPUQuota, err = readInt(filepath.Join(f.dir("cpu", rel), "cpu.cfs_quota_us")); err != nil {
		return l, err
	}
	if l.CPUQuota < 0 {
		l.CPUQuota = Unlimited
	}
	if l.CPUPeriod, err = readInt(filepath.Join(f.dir("cpu", rel), "cpu.cfs_period_us")); err != nil {
		return l, err
	}
	if l.MemoryMax, err = readInt(filepath.Join(f.dir("memory", rel), "memory.limit_in_bytes")); err != nil {
		return l, err
	}
	if l.MemoryMax >= v1NoMemoryLimit {
		l.MemoryMax = Unlimited
	}
	return l, nil
}

// write writes value unless the file already holds it; it reports whether
// it wrote. The cgroup must exist: writing never creates one.
func write(path, value string) (bool, error) {
	current, err := read(path)
	if err != nil {
		return false, err
	}
	if current == value {
		return false, nil
	}
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		return false, fmt.Errorf("writing %q to %s: %w", value, path, err)
	}
	return true, nil
}

// WriteCPUQuota sets the quota (microseconds per period; Unlimited for
// none), keeping the period. It reports whether anything changed.
func (f FS) WriteCPUQuota(rel string, quota int64) (bool, error) {
	if f.Version == V2 {
		l, err := f.ReadLimits(rel)
		if err != nil {
			return false, err
		}
		q := "max"
		if quota != Unlimited {
			q = strconv.FormatInt(quota, 10)
		}
		return write(filepath.Join(f.dir("cpu", rel), "cpu.max"), q+" "+strconv.FormatInt(l.CPUPeriod, 10))
	}
	return write(filepath.Join(f.dir("cpu", rel), "cpu.cfs_quota_us"), strconv.FormatInt(quota, 10))
}

// WriteMemoryMax sets the memory limit in bytes (Unlimited for none).
func (f FS) WriteMemoryMax(rel string, bytes int64) (bool, error) {
	if f.Version == V2 {
		v := "max"
		if bytes != Unlimited {
			v = strconv.FormatInt(bytes, 10)
		}
		return write(filepath.Join(f.dir("memory", rel), "memory.max"), v)
	}
	return write(filepath.Join(f.dir("memory", rel), "memory.limit_in_bytes"), strconv.FormatInt(bytes, 10))
}

// ErrNoMemoryHigh: the hierarchy has no memory.high (cgroup v1).
var ErrNoMemoryHigh = errors.New("memory.high exists only on cgroup v2")

// WriteMemoryHigh sets the v2 throttling limit in bytes (Unlimited for
// none). On v1 it returns ErrNoMemoryHigh.
func (f FS) WriteMemoryHigh(rel string, bytes int64) (bool, error) {
	if f.Version != V2 {
		return false, ErrNoMemoryHigh
	}
	v := "max"
	if bytes != Unlimited {
		v = strconv.FormatInt(bytes, 10)
	}
	return write(filepath.Join(f.dir("memory", rel), "memory.high"), v)
}
