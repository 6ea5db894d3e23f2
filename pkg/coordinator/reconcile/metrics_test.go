package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/client-go/util/workqueue"
)

// TestWorkqueueMetrics: with the provider set, a loop's adds, retries and
// syncs show in the registry under the loop's name.
func TestWorkqueueMetrics(t *testing.T) {
	reg, m := providerOnce()
	runs++
	name := fmt.Sprintf("metered-%d", runs) // -count=N: one provider per process
	failed := false
	loop := NewWithRateLimiter(name, func(context.Context, string) (time.Duration, error) {
		if !failed {
			failed = true
			return 0, errors.New("once")
		}
		return 0, nil
	}, workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Millisecond, time.Millisecond))
	loop.Add("a")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx, 1); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(m.adds.WithLabelValues(name)) < 2 || testutil.ToFloat64(m.depth.WithLabelValues(name)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("adds %v: want the add and its retry", testutil.ToFloat64(m.adds.WithLabelValues(name)))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if r := testutil.ToFloat64(m.retries.WithLabelValues(name)); r != 1 {
		t.Errorf("workqueue_retries_total{name=%s} = %v, want 1", name, r)
	}
	var work dto.Metric
	if err := m.work.WithLabelValues(name).(prometheus.Metric).Write(&work); err != nil {
		t.Fatal(err)
	}
	if n := work.GetHistogram().GetSampleCount(); n != 2 {
		t.Errorf("workqueue_work_duration_seconds{name=%s} counts %d syncs, want 2 (the failure and its retry)", name, n)
	}
	if n, err := testutil.GatherAndCount(reg, "workqueue_adds_total"); err != nil || n < 1 {
		t.Errorf("the registry gathers %d workqueue_adds_total series (%v)", n, err)
	}
}

// client-go takes one metrics provider per process.
var (
	providerOnce = sync.OnceValues(func() (*prometheus.Registry, *WorkqueueMetrics) {
		reg := prometheus.NewRegistry()
		m := NewWorkqueueMetrics(reg)
		workqueue.SetProvider(m)
		return reg, m
	})
	runs int
)
