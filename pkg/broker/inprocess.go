package broker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// InProcess is a Broker inside one process: the default path when no
// RabbitMQ is configured, and the fake for unit tests. It keeps RabbitMQ's
// semantics that callers rely on (topic routing, unroutable publishes fail,
// acknowledgement after the handler, dead-letter and delayed retry queues,
// redelivery of what a stopped consumer held), but nothing survives the
// process.
type InProcess struct {
	metrics *Metrics

	mu        sync.Mutex
	exchanges map[string]string
	queues    map[string]*memQueue
	bindings  []Binding
	closed    bool
	done      chan struct{}
}

type memQueue struct {
	spec  Queue
	items []Delivery
	ready chan struct{} // signalled when items are added
}

var _ Broker = &InProcess{}

// NewInProcess returns an empty in-process broker with the topology
// declared; metrics may be nil.
func NewInProcess(topology Topology, metrics *Metrics) (*InProcess, error) {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	b := &InProcess{metrics: metrics, exchanges: map[string]string{}, queues: map[string]*memQueue{}, done: make(chan struct{})}
	return b, b.Declare(context.Background(), topology)
}

// Declare adds exchanges, queues and bindings.
func (b *InProcess) Declare(_ context.Context, t Topology) error {
	if err := t.validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range t.Exchanges {
		if kind, ok := b.exchanges[e.Name]; ok && kind != e.Kind {
			return fmt.Errorf("exchange %q exists with kind %q, not %q", e.Name, kind, e.Kind)
		}
		b.exchanges[e.Name] = e.Kind
	}
	for _, q := range t.Queues {
		b.declareQueue(q)
		if q.DeadLetter {
			b.declareQueue(Queue{Name: DeadLetterQueue(q.Name)})
		}
	}
	for _, bd := range t.Bindings {
		if _, ok := b.exchanges[bd.Exchange]; !ok {
			return fmt.Errorf("binding queue %q: exchange %q is not declared", bd.Queue, bd.Exchange)
		}
		if _, ok := b.queues[bd.Queue]; !ok {
			return fmt.Errorf("binding queue %q: queue is not declared", bd.Queue)
		}
		b.bindings = append(b.bindings, bd)
	}
	return nil
}

func (b *InProcess) declareQueue(q Queue) {
	if existing, ok := b.queues[q.Name]; ok {
		existing.spec = q
		return
	}
	b.queues[q.Name] = &memQueue{spec: q, ready: make(chan struct{}, 1)}
}

// Forget is a no-op: nothing is re-declared in process.
func (b *InProcess) Forget(Topology) {}

// Publish routes the message to every bound queue at once.
func (b *InProcess) Publish(_ context.Context, exchange, key string, msg Message) error {
	if msg.ID == "" {
		msg.ID = newID()
	}
	if msg.Timestamp.IsZero() {
		msg.Timestamp = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.metrics.Published.WithLabelValues(exchange).Inc()
	var targets []*memQueue
	if exchange == "" {
		if q, ok := b.queues[key]; ok {
			targets = append(targets, q)
		}
	} else {
		kind, ok := b.exchanges[exchange]
		if !ok {
			b.metrics.Nacked.WithLabelValues(exchange).Inc()
			return fmt.Errorf("publishing to %q: exchange does not exist: %w", exchange, ErrNacked)
		}
		seen := map[string]bool{}
		for _, bd := range b.bindings {
			if bd.Exchange == exchange && !seen[bd.Queue] && routes(kind, bd.Key, key) {
				seen[bd.Queue] = true
				targets = append(targets, b.queues[bd.Queue])
			}
		}
	}
	if len(targets) == 0 {
		b.metrics.Returned.WithLabelValues(exchange).Inc()
		return fmt.Errorf("publishing to %q with key %q: %w", exchange, key, ErrUnroutable)
	}
	for _, q := range targets {
		q.push(Delivery{Message: msg, RoutingKey: key, Attempt: attemptOf(msg.Headers)})
	}
	b.metrics.Confirmed.WithLabelValues(exchange).Inc()
	return nil
}

func (q *memQueue) push(d Delivery) {
	q.items = append(q.items, d)
	q.signal()
}

// routes matches a routing key against a binding key as RabbitMQ does.
func routes(kind, pattern, key string) bool {
	switch kind {
	case "fanout":
		return true
	case "direct":
		return pattern == key
	}
	return topicMatch(strings.Split(pattern, "."), strings.Split(key, "."))
}

func topicMatch(pattern, key []string) bool {
	if len(pattern) == 0 {
		return len(key) == 0
	}
	switch pattern[0] {
	case "#":
		for i := 0; i <= len(key); i++ {
			if topicMatch(pattern[1:], key[i:]) {
				return true
			}
		}
		return false
	case "*":
		return len(key) > 0 && topicMatch(pattern[1:], key[1:])
	}
	return len(key) > 0 && pattern[0] == key[0] && topicMatch(pattern[1:], key[1:])
}

// Consume hands the queue's messages to handle, one at a time per
// consumer, until ctx ends or the broker is closed.
func (b *InProcess) Consume(ctx context.Context, queue string, _ ConsumeOptions, handle Handler) error {
	b.mu.Lock()
	q, ok := b.queues[queue]
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("consuming %q: queue is not declared", queue)
	}
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil
		}
		if len(q.items) == 0 {
			b.mu.Unlock()
			select {
			case <-ctx.Done():
				return nil
			case <-b.done:
				return nil
			case <-q.ready:
			}
			continue
		}
		d := q.items[0]
		q.items = q.items[1:]
		if len(q.items) > 0 {
			q.signal() // keep other consumers of the queue awake
		}
		b.mu.Unlock()
		if d.Redelivered {
			b.metrics.Redelivered.WithLabelValues(queue).Inc()
		}
		b.settle(queue, q, d, handle(ctx, d), ctx.Err() != nil)
	}
}

// settle does with a handled delivery what RabbitMQ would.
func (b *InProcess) settle(queue string, q *memQueue, d Delivery, err error, stopping bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case err == nil:
	case stopping:
		// The consumer went away without acknowledging: redeliver.
		d.Redelivered = true
		q.items = append([]Delivery{d}, q.items...)
		q.signal()
	case IsPermanent(err):
		b.metrics.DeadLettered.WithLabelValues(queue).Inc()
		if q.spec.DeadLetter {
			b.queues[DeadLetterQueue(queue)].push(d)
		}
	case q.spec.RetryDelay > 0:
		b.metrics.Retried.WithLabelValues(queue).Inc()
		d.Attempt++
		d.Headers = withAttempt(d.Headers, d.Attempt)
		time.AfterFunc(q.spec.RetryDelay, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			q.push(d)
		})
	default:
		d.Redelivered = true
		q.push(d)
	}
}

func (q *memQueue) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Depth is the number of messages waiting in a queue, for tests and status.
func (b *InProcess) Depth(queue string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q, ok := b.queues[queue]; ok {
		return len(q.items)
	}
	return 0
}

// Close stops every consumer; messages still queued are dropped.
func (b *InProcess) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	return nil
}
