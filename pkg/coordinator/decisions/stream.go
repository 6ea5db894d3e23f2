// Package decisions publishes the coordinator's routing and admission
// decisions to a topic exchange (routing key <queue>.<decision>), so that
// autoscalers and audit tools follow them without polling the API server.
// Each pod's decisions are published in the order they were made; delivery
// is at least once (a restarted coordinator announces the pods it finds
// still pending again), so subscribers key on (uid, decision).
//
// The stream never holds up the coordinator: each shard buffers
// BufferSize decisions, and while the broker is down or slow a full
// shard drops new decisions, counts them (switchyard_decisions_dropped_total)
// and marks the next message it publishes with Gap, the number dropped on
// that shard since; a subscriber that sees a gap lists the pods it cares
// about to catch up.
package decisions

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/routing"
)

// DefaultExchange is the topic exchange decisions go to.
const DefaultExchange = "switchyard.decisions"

// MessageVersion is the apiVersion of Decision messages.
const MessageVersion = "switchyard.io/decision/v1"

// Decision kinds, the second word of the routing key.
const (
	// Routed: the API server's routing policy sent the pod to a queue.
	Routed = "routed"
	// Admitted: the pod left its queue (its gate was removed, or the queue
	// holds nothing back).
	Admitted = "admitted"
)

// Decision is one message of the stream.
type Decision struct {
	APIVersion    string    `json:"apiVersion"`
	Decision      string    `json:"decision"`
	UID           types.UID `json:"uid"`
	Namespace     string    `json:"namespace"`
	Name          string    `json:"name"`
	Queue         string    `json:"queue"`
	SchedulerName string    `json:"schedulerName"`
	// Seq orders one pod's decisions: 1 for routed, 2 for admitted.
	Seq int       `json:"seq"`
	At  time.Time `json:"at"`
	// Gap, when not 0, is how many decisions of this message's shard were
	// dropped (the buffer was full) since the shard's previous message.
	Gap int64 `json:"gap,omitempty"`
}

// BufferSize is how many decisions each shard holds while the broker is
// slower than the coordinator.
const BufferSize = 4096

// Metrics of the stream.
type Metrics struct {
	Published *prometheus.CounterVec
	Errors    prometheus.Counter
	Dropped   prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_decisions_published_total", Help: "Decisions published to the decision stream, by decision.",
		}, []string{"decision"}),
		Errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "switchyard_decisions_publish_errors_total", Help: "Decision publications that failed and were retried.",
		}),
	}
	m.Dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "switchyard_decisions_dropped_total", Help: "Decisions dropped because the stream's buffer was full (the broker down or slow); the next message of the shard carries the gap.",
	})
	if reg != nil {
		reg.MustRegister(m.Published, m.Errors, m.Dropped)
	}
	return m
}

// shards publish in parallel; one pod's decisions always go to the same
// shard, which publishes in order.
const shards = 4

// Stream watches routed pods and publishes their decisions.
type Stream struct {
	broker   broker.Broker
	exchange string
	metrics  *Metrics
	queues   [shards]chan Decision
	// dropped counts, per shard, the decisions dropped since the shard's
	// last message was taken for publishing.
	dropped [shards]atomic.Int64

	mu sync.Mutex
	// seen is each live pod's last published decision (0 none, 1 routed,
	// 2 admitted).
	seen map[types.UID]int
}

// New wires a stream to the pod informer; the caller starts it.
func New(ctx context.Context, b broker.Broker, exchange string, pods cache.SharedIndexInformer, metrics *Metrics) (*Stream, error) {
	if exchange == "" {
		exchange = DefaultExchange
	}
	if err := b.Declare(ctx, broker.Topology{Exchanges: []broker.Exchange{{Name: exchange, Kind: "topic"}}}); err != nil {
		return nil, err
	}
	s := &Stream{broker: b, exchange: exchange, metrics: metrics, seen: map[types.UID]int{}}
	for i := range s.queues {
		s.queues[i] = make(chan Decision, BufferSize)
	}
	if _, err := pods.AddEventHandler(routing.RoutedPodHandler(s.observe)); err != nil {
		return nil, err
	}
	return s, nil
}

// observe turns pod changes into decisions. Informer handlers run one at a
// time, so a pod's decisions are enqueued in order.
func (s *Stream) observe(pod *corev1.Pod, queue string, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if deleted {
		delete(s.seen, pod.UID)
		return
	}
	last := s.seen[pod.UID]
	if last == 0 && pod.Spec.NodeName != "" {
		// Bound before this coordinator saw it: decided long ago.
		s.seen[pod.UID] = 2
		return
	}
	if last < 1 {
		s.enqueue(pod, queue, Routed, 1)
		last = 1
	}
	if last < 2 && !v1alpha1.HasAdmissionGate(pod) {
		s.enqueue(pod, queue, Admitted, 2)
		last = 2
	}
	s.seen[pod.UID] = last
}

func (s *Stream) enqueue(pod *corev1.Pod, queue, decision string, seq int) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(pod.UID))
	shard := h.Sum32() % shards
	d := Decision{
		APIVersion: MessageVersion, Decision: decision, UID: pod.UID, Namespace: pod.Namespace, Name: pod.Name,
		Queue: queue, SchedulerName: pod.Spec.SchedulerName, Seq: seq, At: time.Now(),
	}
	// Never block the informer (and so every controller sharing it): a full
	// shard drops the decision and reports the gap.
	select {
	case s.queues[shard] <- d:
	default:
		s.dropped[shard].Add(1)
		s.metrics.Dropped.Inc()
	}
}

// Run publishes until ctx ends.
func (s *Stream) Run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("decisions")
	var wg sync.WaitGroup
	for i := range s.queues {
		wg.Add(1)
		go func(shard int) {
			defer wg.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case d := <-s.queues[shard]:
					d.Gap = s.dropped[shard].Swap(0)
					s.publish(ctx, logger, d)
				}
			}
		}(i)
	}
	wg.Wait()
}

// publish retries until the broker confirms: the next decision of the pod
// must not overtake this one. No subscriber (unroutable) is not an error.
func (s *Stream) publish(ctx context.Context, logger klog.Logger, d Decision) {
	body, _ := json.Marshal(d)
	backoff := 100 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.broker.Publish(pctx, s.exchange, d.Queue+"."+d.Decision, broker.Message{
			ContentType: "application/json", Type: MessageVersion, Body: body, Timestamp: d.At,
		})
		cancel()
		if err == nil || errors.Is(err, broker.ErrUnroutable) {
			s.metrics.Published.WithLabelValues(d.Decision).Inc()
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.metrics.Errors.Inc()
		logger.V(2).Info("Publishing a decision failed; retrying", "pod", klog.KRef(d.Namespace, d.Name), "decision", d.Decision, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
