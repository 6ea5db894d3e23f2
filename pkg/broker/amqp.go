package broker

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"k8s.io/klog/v2"
)

// AMQPOptions configure a RabbitMQ connection.
type AMQPOptions struct {
	// URL, e.g. amqp://guest:guest@127.0.0.1:5672/.
	URL string
	// Name is shown as the connection name in RabbitMQ's management tools.
	Name string
	// Topology is declared at connect and after every reconnect.
	Topology Topology
	// Metrics; new, unregistered ones when nil.
	Metrics *Metrics
	// MaxBackoff caps the wait between reconnect attempts; 10s when zero.
	MaxBackoff time.Duration
}

// AMQP is a Broker on RabbitMQ. One connection serves publishing (one
// channel in confirm mode) and every consumer (a channel each). When the
// connection drops it reconnects with exponential backoff and jitter,
// declares the topology again, and consumers resume; publishes wait for the
// new connection (or their context).
type AMQP struct {
	opts    AMQPOptions
	metrics *Metrics
	logger  klog.Logger
	done    chan struct{}
	// slots bounds publishes awaiting confirmation, so the buffer of
	// returned messages can never fill up and stall the connection.
	slots chan struct{}

	mu        sync.Mutex
	topology  Topology
	conn      *amqp.Connection
	pub       *amqp.Channel
	returns   chan amqp.Return
	returned  map[string]struct{}
	connected chan struct{} // closed while a connection is up
	closed    bool
	stopped   chan struct{}
}

const maxUnconfirmed = 512

var _ Broker = &AMQP{}

// DialAMQP connects to RabbitMQ, declares the topology and keeps the
// connection up until Close. It returns once connected, or with the last
// connection error when ctx ends first.
func DialAMQP(ctx context.Context, opts AMQPOptions) (*AMQP, error) {
	b, firstErr, err := startAMQP(ctx, opts)
	if err != nil {
		return nil, err
	}
	select {
	case <-b.connectedChan():
		return b, nil
	case <-ctx.Done():
		_ = b.Close()
		select {
		case err := <-firstErr:
			return nil, fmt.Errorf("connecting to RabbitMQ: %w", err)
		default:
			return nil, fmt.Errorf("connecting to RabbitMQ: %w", ctx.Err())
		}
	}
}

// StartAMQP is DialAMQP without the wait: it returns at once and connects
// (and reconnects) in the background, so that a caller for which the
// broker is optional keeps working while RabbitMQ is down. Connected says
// whether it is up; publishes wait for it, within their context.
func StartAMQP(ctx context.Context, opts AMQPOptions) (*AMQP, error) {
	b, _, err := startAMQP(ctx, opts)
	return b, err
}

// Connected reports whether the connection is up now.
func (b *AMQP) Connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conn != nil && !b.conn.IsClosed()
}

func startAMQP(ctx context.Context, opts AMQPOptions) (*AMQP, <-chan error, error) {
	if err := opts.Topology.validate(); err != nil {
		return nil, nil, err
	}
	// A URL that cannot work fails now, not in a reconnect loop; the error
	// names neither the URL nor its password.
	if _, err := amqp.ParseURI(opts.URL); err != nil {
		return nil, nil, errors.New("the RabbitMQ URL is not a valid amqp:// or amqps:// URI")
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 10 * time.Second
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	b := &AMQP{
		opts: opts, metrics: opts.Metrics, logger: klog.FromContext(ctx).WithValues("broker", opts.Name),
		done: make(chan struct{}), slots: make(chan struct{}, maxUnconfirmed),
		topology: opts.Topology, returned: map[string]struct{}{}, connected: make(chan struct{}),
		stopped: make(chan struct{}),
	}
	firstErr := make(chan error, 1)
	go b.run(firstErr)
	return b, firstErr, nil
}

func (b *AMQP) connectedChan() chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.connected
}

// run keeps a connection up until Close.
func (b *AMQP) run(firstErr chan<- error) {
	defer close(b.stopped)
	backoff, reconnecting := 100*time.Millisecond, false
	for {
		conn, err := b.connect()
		if err != nil {
			select {
			case firstErr <- err:
			default:
			}
			b.logger.Error(err, "Connecting to RabbitMQ; retrying", "in", backoff)
			// Full jitter: replicas that lost the broker together do not
			// come back in lockstep.
			wait := backoff/2 + rand.N(backoff/2+1)
			select {
			case <-b.done:
				return
			case <-time.After(wait):
			}
			backoff = min(2*backoff, b.opts.MaxBackoff)
			continue
		}
		if reconnecting {
			b.metrics.Reconnects.Inc()
			b.logger.Info("Reconnected to RabbitMQ; topology declared again")
		}
		backoff, reconnecting = 100*time.Millisecond, true
		b.metrics.Connected.Set(1)
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-b.done:
			_ = conn.Close()
			b.metrics.Connected.Set(0)
			return
		case cerr := <-closed:
			b.metrics.Connected.Set(0)
			b.logger.Info("RabbitMQ connection lost; reconnecting", "reason", cerr)
			b.mu.Lock()
			b.conn, b.pub, b.returns = nil, nil, nil
			b.connected = make(chan struct{})
			b.mu.Unlock()
		}
	}
}

// connect dials, declares the topology and opens the publishing channel.
func (b *AMQP) connect() (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(b.opts.URL, amqp.Config{
		Heartbeat:  10 * time.Second,
		Properties: amqp.Table{"connection_name": b.opts.Name},
	})
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	topology := b.topology
	b.mu.Unlock()
	if err := declare(conn, topology); err != nil {
		_ = conn.Close()
		return nil, err
	}
	pub, err := conn.Channel()
	if err == nil {
		err = pub.Confirm(false)
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("opening the publishing channel: %w", err)
	}
	returns := pub.NotifyReturn(make(chan amqp.Return, maxUnconfirmed))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		_ = conn.Close()
		return nil, ErrClosed
	}
	b.conn, b.pub, b.returns = conn, pub, returns
	close(b.connected)
	return conn, nil
}

// declare makes the topology exist; a queue whose arguments differ from an
// existing one of the same name is an error that names it.
func declare(conn *amqp.Connection, t Topology) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	for _, e := range t.Exchanges {
		if err := ch.ExchangeDeclare(e.Name, e.Kind, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declaring exchange %q: %w", e.Name, err)
		}
	}
	for _, q := range t.Queues {
		args := amqp.Table{}
		if q.DeadLetter {
			if _, err := ch.QueueDeclare(DeadLetterQueue(q.Name), true, false, false, false, nil); err != nil {
				return fmt.Errorf("declaring dead-letter queue of %q: %w", q.Name, err)
			}
			args["x-dead-letter-exchange"] = ""
			args["x-dead-letter-routing-key"] = DeadLetterQueue(q.Name)
		}
		if q.RetryDelay > 0 {
			if _, err := ch.QueueDeclare(RetryQueue(q.Name), true, false, false, false, amqp.Table{
				"x-message-ttl":             q.RetryDelay.Milliseconds(),
				"x-dead-letter-exchange":    "",
				"x-dead-letter-routing-key": q.Name,
			}); err != nil {
				return fmt.Errorf("declaring retry queue of %q: %w", q.Name, err)
			}
		}
		if _, err := ch.QueueDeclare(q.Name, !q.Exclusive, false, q.Exclusive, false, args); err != nil {
			return fmt.Errorf("declaring queue %q (an existing queue of that name with other arguments must be deleted first): %w", q.Name, err)
		}
	}
	for _, bd := range t.Bindings {
		if err := ch.QueueBind(bd.Queue, bd.Key, bd.Exchange, false, nil); err != nil {
			return fmt.Errorf("binding queue %q to %q with key %q: %w", bd.Queue, bd.Exchange, bd.Key, err)
		}
	}
	return nil
}

// Declare adds topology, declared now when connected and after every
// reconnect; declaring a name again replaces it (see Topology.with).
func (b *AMQP) Declare(_ context.Context, t Topology) error {
	if err := t.validate(); err != nil {
		return err
	}
	b.mu.Lock()
	b.topology = b.topology.with(t)
	conn := b.conn
	b.mu.Unlock()
	if conn == nil {
		return nil // declared at the next connect
	}
	return declare(conn, t)
}

// Forget stops re-declaring the topology's queues and bindings.
func (b *AMQP) Forget(t Topology) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.topology = b.topology.without(t)
}

// waitConnected returns the live connection and its publishing channel.
func (b *AMQP) waitConnected(ctx context.Context) (*amqp.Connection, *amqp.Channel, chan amqp.Return, error) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, nil, nil, ErrClosed
		}
		if b.conn != nil && !b.conn.IsClosed() {
			conn, pub, returns := b.conn, b.pub, b.returns
			b.mu.Unlock()
			return conn, pub, returns, nil
		}
		connected := b.connected
		b.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, nil, nil, ctx.Err()
		case <-b.done:
			return nil, nil, nil, ErrClosed
		case <-connected:
		case <-time.After(50 * time.Millisecond): // the close notice may lag IsClosed
		}
	}
}

// Publish sends a persistent, mandatory message and waits for the broker's
// confirmation.
func (b *AMQP) Publish(ctx context.Context, exchange, key string, msg Message) error {
	select {
	case b.slots <- struct{}{}:
		defer func() { <-b.slots }()
	case <-ctx.Done():
		return ctx.Err()
	}
	_, pub, returns, err := b.waitConnected(ctx)
	if err != nil {
		return err
	}
	if msg.ID == "" {
		msg.ID = newID()
	}
	if msg.Timestamp.IsZero() {
		msg.Timestamp = time.Now()
	}
	b.metrics.Published.WithLabelValues(exchange).Inc()
	confirm, err := pub.PublishWithDeferredConfirmWithContext(ctx, exchange, key, true, false, amqp.Publishing{
		MessageId: msg.ID, ContentType: msg.ContentType, Type: msg.Type, Body: msg.Body,
		Headers: amqp.Table(msg.Headers), Timestamp: msg.Timestamp, DeliveryMode: amqp.Persistent,
	})
	if err != nil {
		b.metrics.Nacked.WithLabelValues(exchange).Inc()
		return fmt.Errorf("publishing to %q with key %q: %w", exchange, key, err)
	}
	acked, err := confirm.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("waiting for the confirmation of a message to %q: %w", exchange, err)
	}
	// RabbitMQ sends basic.return before the confirmation, and the library
	// queues returns as it reads them, so any return is in the buffer now.
	if b.takeReturned(returns, msg.ID) {
		b.metrics.Returned.WithLabelValues(exchange).Inc()
		return fmt.Errorf("publishing to %q with key %q: %w", exchange, key, ErrUnroutable)
	}
	if !acked {
		b.metrics.Nacked.WithLabelValues(exchange).Inc()
		return fmt.Errorf("publishing to %q with key %q: %w", exchange, key, ErrNacked)
	}
	b.metrics.Confirmed.WithLabelValues(exchange).Inc()
	return nil
}

func (b *AMQP) takeReturned(returns chan amqp.Return, id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
drain:
	for {
		select {
		case r, ok := <-returns:
			if !ok {
				break drain
			}
			b.returned[r.MessageId] = struct{}{}
		default:
			break drain
		}
	}
	_, ok := b.returned[id]
	delete(b.returned, id)
	return ok
}

// Consume delivers messages until ctx ends or the broker is closed.
func (b *AMQP) Consume(ctx context.Context, queue string, opts ConsumeOptions, handle Handler) error {
	if opts.Prefetch <= 0 {
		opts.Prefetch = 16
	}
	logger := b.logger.WithValues("queue", queue)
	for {
		conn, _, _, err := b.waitConnected(ctx)
		if err != nil {
			if errors.Is(err, ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		err = b.consumeOnce(ctx, conn, queue, opts, handle)
		if ctx.Err() != nil {
			return nil
		}
		logger.Info("Consumer stopped; resuming on the next connection", "reason", err)
		select {
		case <-ctx.Done():
			return nil
		case <-b.done:
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (b *AMQP) consumeOnce(ctx context.Context, conn *amqp.Connection, queue string, opts ConsumeOptions, handle Handler) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }()
	if err := ch.Qos(opts.Prefetch, 0, false); err != nil {
		return err
	}
	tag := opts.Name
	if tag == "" {
		tag = "switchyard"
	}
	deliveries, err := ch.ConsumeWithContext(ctx, queue, tag+"-"+newID()[:8], false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consuming %q: %w", queue, err)
	}
	spec := b.queueSpec(queue)
	// Up to Prefetch deliveries are handled at once; each is acknowledged
	// on its own when its handler returns.
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, opts.Prefetch)
	for d := range deliveries {
		slots <- struct{}{}
		wg.Add(1)
		go func(d amqp.Delivery) {
			defer func() { <-slots; wg.Done() }()
			b.process(ctx, queue, spec, d, handle)
		}(d)
	}
	return errors.New("delivery channel closed")
}

func (b *AMQP) queueSpec(name string) Queue {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, q := range b.topology.Queues {
		if q.Name == name {
			return q
		}
	}
	return Queue{Name: name}
}

func (b *AMQP) process(ctx context.Context, queue string, spec Queue, d amqp.Delivery, handle Handler) {
	delivery := Delivery{
		Message: Message{
			ID: d.MessageId, ContentType: d.ContentType, Type: d.Type, Body: d.Body,
			Headers: map[string]any(d.Headers), Timestamp: d.Timestamp,
		},
		RoutingKey: d.RoutingKey, Redelivered: d.Redelivered, Attempt: attemptOf(d.Headers),
	}
	if d.Redelivered {
		b.metrics.Redelivered.WithLabelValues(queue).Inc()
	}
	err := handle(ctx, delivery)
	switch {
	case err == nil:
		_ = d.Ack(false)
	case IsPermanent(err):
		b.logger.Error(err, "Message cannot be processed; dead-lettering it", "queue", queue, "id", d.MessageId)
		b.metrics.DeadLettered.WithLabelValues(queue).Inc()
		_ = d.Nack(false, false)
	case spec.RetryDelay > 0:
		retry := delivery.Message
		retry.Headers = withAttempt(retry.Headers, delivery.Attempt+1)
		// Confirmed publish to the retry queue first, then ack: a crash in
		// between duplicates the message rather than losing it.
		pubCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if perr := b.Publish(pubCtx, "", RetryQueue(queue), retry); perr != nil {
			_ = d.Nack(false, true)
			return
		}
		b.metrics.Retried.WithLabelValues(queue).Inc()
		_ = d.Ack(false)
	default:
		_ = d.Nack(false, true)
	}
}

// Close stops reconnecting and closes the connection.
func (b *AMQP) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.done)
	<-b.stopped
	return nil
}

func attemptOf(h amqp.Table) int {
	switch v := h[AttemptHeader].(type) {
	case int32:
		return int(v)
	case int64:
		return int(v)
	case int:
		return v
	case string:
		n, _ := strconv.Atoi(v)
		return n
	}
	return 0
}

func withAttempt(h map[string]any, attempt int) map[string]any {
	out := make(map[string]any, len(h)+1)
	for k, v := range h {
		// x-death and friends are the broker's own bookkeeping.
		if len(k) > 2 && k[:2] == "x-" && k != AttemptHeader {
			continue
		}
		out[k] = v
	}
	out[AttemptHeader] = int32(attempt)
	return out
}

func newID() string {
	var b [16]byte
	_, _ = cryptorand.Read(b[:])
	return hex.EncodeToString(b[:])
}
