package decisions

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/broker"
)

// stalledBroker holds every publish until released, as a broker that is
// down would, and records what it was given.
type stalledBroker struct {
	broker.Broker
	release chan struct{}
	mu      sync.Mutex
	got     []Decision
}

func (b *stalledBroker) Declare(context.Context, broker.Topology) error { return nil }

func (b *stalledBroker) Publish(ctx context.Context, _, _ string, msg broker.Message) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	var d Decision
	if err := json.Unmarshal(msg.Body, &d); err != nil {
		return err
	}
	b.mu.Lock()
	b.got = append(b.got, d)
	b.mu.Unlock()
	return nil
}

// TestStreamNeverBlocksPodHandling: with the broker stalled, pod events
// keep being handled however many there are; what does not fit the buffer
// is dropped, counted, and reported as gaps in the messages that follow, so
// that published plus gaps equals every decision made.
func TestStreamNeverBlocksPodHandling(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := &stalledBroker{release: make(chan struct{})}
	pods := informers.NewSharedInformerFactory(fake.NewSimpleClientset(), 0).Core().V1().Pods().Informer()
	metrics := NewMetrics(prometheus.NewRegistry())
	s, err := New(ctx, b, "", pods, metrics)
	if err != nil {
		t.Fatal(err)
	}
	go s.Run(ctx)
	total := shards*BufferSize + 5000 // more than the buffers hold
	handled := make(chan struct{})
	go func() {
		defer close(handled)
		for i := range total {
			pod := &corev1.Pod{}
			pod.Name, pod.Namespace, pod.UID = fmt.Sprintf("p%d", i), "ns", types.UID(fmt.Sprintf("uid-%d", i))
			pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: v1alpha1.AdmissionGate}}
			s.observe(pod, "q", false) // one decision: routed
		}
	}()
	select {
	case <-handled:
	case <-time.After(time.Minute):
		t.Fatal("pod handling blocked on the stalled broker")
	}
	dropped := testutil.ToFloat64(metrics.Dropped)
	if dropped == 0 {
		t.Fatalf("%d decisions with room for %d: want some dropped", total, shards*BufferSize)
	}
	close(b.release)
	deadline := time.Now().Add(time.Minute)
	for {
		b.mu.Lock()
		published := len(b.got)
		var gaps int64
		for _, d := range b.got {
			gaps += d.Gap
		}
		b.mu.Unlock()
		if int64(published)+gaps == int64(total) {
			if float64(gaps) != dropped {
				t.Errorf("gaps sum to %d, %v dropped", gaps, dropped)
			}
			t.Logf("%d decisions: %d published, %d dropped and reported as gaps", total, published, gaps)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("published %d + gaps %d != %d decisions", published, gaps, total)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
