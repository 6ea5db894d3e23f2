package admission

import (
	"fmt"
	"time"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// The recent admissions of a queue are counted in buckets of
// throughputBucket over throughputWindow: a fixed 120 bytes per queue,
// whatever its rate.
const (
	throughputBucket  = 10 * time.Second
	throughputBuckets = 30
	throughputWindow  = throughputBucket * throughputBuckets
)

// throughput counts a queue's admissions over the last throughputWindow.
type throughput struct {
	counts [throughputBuckets]uint32
	// newest is the number of the newest bucket counted (time since the
	// epoch in throughputBuckets); valid once any is set.
	newest int64
	any    bool
}

func bucketOf(t time.Time) int64 { return t.UnixNano() / int64(throughputBucket) }

// add counts one admission made at "at"; admissions older than the window
// are not counted, and ones dated after now count as now.
func (t *throughput) add(at, now time.Time) {
	cur, n := bucketOf(now), bucketOf(at)
	t.advance(cur)
	if n > cur {
		n = cur
	}
	if n <= cur-throughputBuckets {
		return
	}
	t.counts[n%throughputBuckets]++
}

// advance moves the window so that cur is its newest bucket.
func (t *throughput) advance(cur int64) {
	if !t.any {
		t.newest, t.any = cur, true
		return
	}
	if cur <= t.newest {
		return
	}
	if cur-t.newest >= throughputBuckets {
		t.counts = [throughputBuckets]uint32{}
	} else {
		for b := t.newest + 1; b <= cur; b++ {
			t.counts[b%throughputBuckets] = 0
		}
	}
	t.newest = cur
}

// recent is how many admissions the window holds at now, and the span they
// were counted over: from the start of the oldest bucket with a count to
// now, at least one bucket. It changes nothing.
func (t *throughput) recent(now time.Time) (count int, span time.Duration) {
	if !t.any {
		return 0, 0
	}
	cur := bucketOf(now)
	oldest := int64(-1)
	for b := cur - throughputBuckets + 1; b <= cur && b <= t.newest; b++ {
		if b <= t.newest-throughputBuckets {
			continue
		}
		if c := t.counts[b%throughputBuckets]; c > 0 {
			if oldest < 0 {
				oldest = b
			}
			count += int(c)
		}
	}
	if count == 0 {
		return 0, 0
	}
	span = now.Sub(time.Unix(0, oldest*int64(throughputBucket)))
	return count, max(span, throughputBucket)
}

// Estimate is how fast a queue is expected to admit, and what says so.
type Estimate struct {
	// PerSecond is the expected admissions per second; 0: no estimate.
	PerSecond float64
	// Basis says what PerSecond rests on, or why there is none.
	Basis string
}

// EstimateRate is a queue's expected admission speed: its recent
// throughput (count admissions over span), capped by its admissionRate;
// the admissionRate alone when nothing was admitted recently and only the
// rate holds it; otherwise no estimate. held is what holds the queue's
// next pod now ("" when nothing does).
func EstimateRate(count int, span time.Duration, spec *v1alpha1.QueueSpec, held string) Estimate {
	var limit float64
	if spec != nil && spec.AdmissionRate != nil {
		limit = spec.AdmissionRate.PodsPerSecond.AsApproximateFloat64()
	}
	if count > 0 && span > 0 {
		measured := float64(count) / span.Seconds()
		basis := fmt.Sprintf("recent throughput: %d admitted in the last %s (%.3g/s)", count, span.Round(time.Second), measured)
		if limit > 0 && measured > limit {
			return Estimate{PerSecond: limit, Basis: basis + fmt.Sprintf(", capped by admissionRate %s/s", spec.AdmissionRate.PodsPerSecond.String())}
		}
		return Estimate{PerSecond: measured, Basis: basis}
	}
	window := throughputWindow.String()
	switch {
	case limit > 0 && (held == "" || held == holdRateMessage(spec)):
		return Estimate{PerSecond: limit, Basis: fmt.Sprintf("admissionRate %s/s (nothing admitted in the last %s)", spec.AdmissionRate.PodsPerSecond.String(), window)}
	case held != "":
		return Estimate{Basis: fmt.Sprintf("no estimate: nothing admitted in the last %s and the queue is held by %s", window, held)}
	}
	return Estimate{Basis: fmt.Sprintf("no estimate: nothing admitted in the last %s", window)}
}
