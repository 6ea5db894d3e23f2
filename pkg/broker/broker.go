// Package broker is the one message transport every Switchyard component
// uses: publish with confirmation, consume with acknowledgement after the
// work is done, dead-letter what cannot be processed and retry the rest
// after a delay. Two implementations share the Broker interface: AMQP
// (RabbitMQ, through github.com/rabbitmq/amqp091-go), which survives broker
// restarts and dropped connections, and InProcess, the default path when no
// broker is configured and the fake for unit tests.
package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Broker publishes and consumes messages.
type Broker interface {
	// Publish sends msg to exchange with routing key and returns once the
	// broker has taken responsibility for it (publisher confirm). It fails
	// with ErrUnroutable when no queue would receive it and ErrNacked when
	// the broker refused it; after any error the message may or may not
	// have been delivered, so callers retry and consumers tolerate
	// duplicates.
	Publish(ctx context.Context, exchange, key string, msg Message) error
	// Consume delivers the queue's messages to handle until ctx ends,
	// resuming after reconnects. See Handler for acknowledgement.
	Consume(ctx context.Context, queue string, opts ConsumeOptions, handle Handler) error
	// Declare adds topology; it is declared now and again after every
	// reconnect.
	Declare(ctx context.Context, topology Topology) error
	// Forget stops re-declaring the queues and bindings named in topology
	// after reconnects (their owner, say a Queue, is gone). It deletes
	// nothing on the broker: consumers may still be draining.
	Forget(topology Topology)
	// Close stops the broker connection; running Consume calls return.
	Close() error
}

// Handler processes one delivery. Returning nil acknowledges it. An error
// marked Permanent sends it to the queue's dead-letter queue (when the
// queue has one; otherwise it is dropped and counted). Any other error
// retries it after the queue's retry delay (or at once, requeued, when the
// queue has none). A message is acknowledged only after its handler
// returned, so a consumer that dies mid-work gets it redelivered.
type Handler func(ctx context.Context, d Delivery) error

// Message is what is published.
type Message struct {
	// ID identifies the message (AMQP message-id); generated when empty.
	ID string
	// ContentType, e.g. application/json.
	ContentType string
	// Type names the message schema, e.g. switchyard.io/pod-dispatch/v1.
	Type string
	// Body is the payload.
	Body []byte
	// Headers are extra AMQP headers.
	Headers map[string]any
	// Timestamp is when the message was made; now when zero.
	Timestamp time.Time
}

// Delivery is a message as a consumer receives it.
type Delivery struct {
	Message
	// RoutingKey the message was published with.
	RoutingKey string
	// Redelivered is true when the broker delivered it before, to this or
	// another consumer, without an acknowledgement.
	Redelivered bool
	// Attempt counts delayed retries: 0 for the first delivery.
	Attempt int
}

// ConsumeOptions tune a consumer.
type ConsumeOptions struct {
	// Prefetch bounds the unacknowledged messages in flight to this
	// consumer; 16 when zero.
	Prefetch int
	// Name identifies the consumer to the broker (consumer tag prefix).
	Name string
}

// Topology is what a component needs to exist on the broker. Everything is
// durable except exclusive queues; declaring is idempotent.
type Topology struct {
	Exchanges []Exchange
	Queues    []Queue
	Bindings  []Binding
}

// Exchange is a durable exchange.
type Exchange struct {
	Name string
	// Kind is topic, direct or fanout.
	Kind string
}

// Queue is a queue and, optionally, its dead-letter and retry queues.
type Queue struct {
	Name string
	// Exclusive queues belong to the connection that declares them and go
	// away with it (one per configurator replica, say); others are durable.
	Exclusive bool
	// DeadLetter declares <name>.dead and routes rejected messages there.
	DeadLetter bool
	// RetryDelay, when set, declares <name>.retry: a message whose handler
	// failed waits there for the delay (per-queue TTL) and is dead-lettered
	// back to <name>.
	RetryDelay time.Duration
}

// Binding routes messages from an exchange to a queue by routing key
// pattern (topic exchanges: * is one word, # zero or more).
type Binding struct {
	Exchange, Queue, Key string
}

// WorkQueue is a durable queue with a dead-letter queue and delayed retry,
// the shape of every queue whose messages are work that must not be lost.
func WorkQueue(name string, retryDelay time.Duration) Queue {
	return Queue{Name: name, DeadLetter: true, RetryDelay: retryDelay}
}

// DeadLetterQueue names the queue's dead-letter queue.
func DeadLetterQueue(queue string) string { return queue + ".dead" }

// RetryQueue names the queue's delayed-retry queue.
func RetryQueue(queue string) string { return queue + ".retry" }

// AttemptHeader carries Delivery.Attempt across delayed retries.
const AttemptHeader = "x-switchyard-attempt"

// Errors a publish can end with.
var (
	// ErrUnroutable: the message reached no queue (mandatory publish
	// returned), e.g. a queue that was never declared.
	ErrUnroutable = errors.New("message is unroutable: no queue is bound for it")
	// ErrNacked: the broker refused the message.
	ErrNacked = errors.New("broker did not confirm the message")
	// ErrClosed: the broker was closed.
	ErrClosed = errors.New("broker is closed")
)

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks a handler error as one no retry can fix (a message that
// does not decode, say): the message goes to the dead-letter queue.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether the error was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// validate checks a topology before anything is declared.
func (t Topology) validate() error {
	for _, e := range t.Exchanges {
		switch e.Kind {
		case "topic", "direct", "fanout":
		default:
			return fmt.Errorf("exchange %q: kind %q must be topic, direct or fanout", e.Name, e.Kind)
		}
		if e.Name == "" {
			return fmt.Errorf("an exchange needs a name")
		}
	}
	for _, q := range t.Queues {
		if q.Name == "" {
			return fmt.Errorf("a queue needs a name")
		}
		if q.RetryDelay < 0 {
			return fmt.Errorf("queue %q: retry delay %s is negative", q.Name, q.RetryDelay)
		}
	}
	return nil
}

// with is t plus o, one entry per exchange and queue name and per binding:
// a name declared again replaces its earlier entry, so that re-declaring
// (after ErrUnroutable, or on every Queue update) never grows the topology
// that is declared again at each reconnect.
func (t Topology) with(o Topology) Topology {
	out := t.without(o)
	out.Exchanges = append(out.Exchanges, o.Exchanges...)
	out.Queues = append(out.Queues, o.Queues...)
	for _, bd := range o.Bindings {
		if !slices.Contains(out.Bindings, bd) {
			out.Bindings = append(out.Bindings, bd)
		}
	}
	return out
}

// without returns t minus the queues, bindings and exchanges named in o.
func (t Topology) without(o Topology) Topology {
	var out Topology
	for _, e := range t.Exchanges {
		if !slices.ContainsFunc(o.Exchanges, func(x Exchange) bool { return x.Name == e.Name }) {
			out.Exchanges = append(out.Exchanges, e)
		}
	}
	for _, q := range t.Queues {
		if !slices.ContainsFunc(o.Queues, func(x Queue) bool { return x.Name == q.Name }) {
			out.Queues = append(out.Queues, q)
		}
	}
	for _, bd := range t.Bindings {
		if !slices.Contains(o.Bindings, bd) {
			out.Bindings = append(out.Bindings, bd)
		}
	}
	return out
}
