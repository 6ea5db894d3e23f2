package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
	"k8s.io/klog/v2/ktesting"
)

// amqpURL is the RabbitMQ the tests use (CI starts one on these machines).
func amqpURL() string {
	if u := os.Getenv("SWITCHYARD_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// testTopology names everything uniquely per test, so runs never share
// state on the broker.
func testTopology() (Topology, string, string) {
	prefix := fmt.Sprintf("switchyard-test-%d-%s", time.Now().UnixNano(), newID()[:6])
	exchange, queue := prefix+".events", prefix+".work"
	return Topology{
		Exchanges: []Exchange{{Name: exchange, Kind: "topic"}},
		Queues:    []Queue{WorkQueue(queue, 200*time.Millisecond)},
		Bindings:  []Binding{{Exchange: exchange, Queue: queue, Key: "pods.*"}},
	}, exchange, queue
}

// deleteTopology removes what a test declared on RabbitMQ.
func deleteTopology(t testing.TB, topo Topology) {
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Errorf("cleaning up RabbitMQ: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	for _, q := range topo.Queues {
		for _, name := range []string{q.Name, DeadLetterQueue(q.Name), RetryQueue(q.Name)} {
			_, _ = ch.QueueDelete(name, false, false, false)
		}
	}
	for _, e := range topo.Exchanges {
		_ = ch.ExchangeDelete(e.Name, false, false)
	}
}

type implementation struct {
	name string
	open func(t *testing.T, topo Topology) Broker
}

func implementations() []implementation {
	return []implementation{
		{"in-process", func(t *testing.T, topo Topology) Broker {
			b, err := NewInProcess(topo, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b
		}},
		{"rabbitmq", func(t *testing.T, topo Topology) Broker {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			b, err := DialAMQP(ctx, AMQPOptions{URL: amqpURL(), Name: t.Name(), Topology: topo})
			if err != nil {
				t.Fatalf("RabbitMQ at %s (set SWITCHYARD_AMQP_URL; CI starts one): %v", amqpURL(), err)
			}
			t.Cleanup(func() { _ = b.Close(); deleteTopology(t, topo) })
			return b
		}},
	}
}

// received collects deliveries for assertions.
type received struct {
	mu sync.Mutex
	ds []Delivery
}

func (r *received) add(d Delivery) {
	r.mu.Lock()
	r.ds = append(r.ds, d)
	r.mu.Unlock()
}

func (r *received) wait(t *testing.T, n int) []Delivery {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		if len(r.ds) >= n {
			out := append([]Delivery(nil), r.ds...)
			r.mu.Unlock()
			return out
		}
		r.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("received %d deliveries, want %d", len(r.ds), n)
	return nil
}

// TestBroker runs the same contract against both implementations.
func TestBroker(t *testing.T) {
	for _, impl := range implementations() {
		t.Run(impl.name, func(t *testing.T) {
			t.Run("routes by topic and refuses unroutable", func(t *testing.T) {
				_, ctx := ktesting.NewTestContext(t)
				topo, exchange, queue := testTopology()
				b := impl.open(t, topo)
				if err := b.Publish(ctx, exchange, "pods.created", Message{ID: "m1", Body: []byte("one")}); err != nil {
					t.Fatal(err)
				}
				err := b.Publish(ctx, exchange, "nodes.created", Message{ID: "m2", Body: []byte("two")})
				if !errors.Is(err, ErrUnroutable) {
					t.Fatalf("publish with no bound queue: err = %v, want ErrUnroutable", err)
				}
				var got received
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				go func() {
					_ = b.Consume(ctx, queue, ConsumeOptions{}, func(_ context.Context, d Delivery) error { got.add(d); return nil })
				}()
				ds := got.wait(t, 1)
				if string(ds[0].Body) != "one" || ds[0].ID != "m1" || ds[0].RoutingKey != "pods.created" {
					t.Errorf("delivery = %+v", ds[0])
				}
			})
			t.Run("retries after a delay and dead-letters permanent failures", func(t *testing.T) {
				_, ctx := ktesting.NewTestContext(t)
				topo, exchange, queue := testTopology()
				b := impl.open(t, topo)
				var got, dead received
				ctx, cancel := context.WithCancel(ctx)
				defer cancel()
				go func() {
					_ = b.Consume(ctx, queue, ConsumeOptions{}, func(_ context.Context, d Delivery) error {
						got.add(d)
						switch {
						case string(d.Body) == "malformed":
							return Permanent(errors.New("does not decode"))
						case d.Attempt < 2:
							return errors.New("not yet")
						}
						return nil
					})
				}()
				go func() {
					_ = b.Consume(ctx, DeadLetterQueue(queue), ConsumeOptions{}, func(_ context.Context, d Delivery) error { dead.add(d); return nil })
				}()
				start := time.Now()
				if err := b.Publish(ctx, exchange, "pods.x", Message{ID: "flaky", Body: []byte("flaky")}); err != nil {
					t.Fatal(err)
				}
				if err := b.Publish(ctx, exchange, "pods.x", Message{ID: "bad", Body: []byte("malformed")}); err != nil {
					t.Fatal(err)
				}
				ds := got.wait(t, 4) // flaky x3, malformed x1
				attempts := []int{}
				for _, d := range ds {
					if d.ID == "flaky" {
						attempts = append(attempts, d.Attempt)
					}
				}
				if fmt.Sprint(attempts) != "[0 1 2]" {
					t.Errorf("attempts of the flaky message = %v, want [0 1 2]", attempts)
				}
				if elapsed := time.Since(start); elapsed < 400*time.Millisecond {
					t.Errorf("two retries with a 200ms delay took %s", elapsed)
				}
				if d := dead.wait(t, 1); d[0].ID != "bad" {
					t.Errorf("dead-lettered %q, want the malformed message", d[0].ID)
				}
			})
		})
	}
}

// TestRabbitMQRedeliversWhatADeadConsumerHeld: a consumer whose connection
// dies after receiving, before acknowledging, loses nothing.
func TestRabbitMQRedeliversWhatADeadConsumerHeld(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	topo, exchange, queue := testTopology()
	impl := implementations()[1]
	first := impl.open(t, topo).(*AMQP)
	second := impl.open(t, topo).(*AMQP)
	if err := first.Publish(ctx, exchange, "pods.a", Message{ID: "held", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	took := make(chan struct{})
	go func() {
		_ = first.Consume(ctx, queue, ConsumeOptions{}, func(context.Context, Delivery) error {
			close(took)
			_ = first.Close() // dies before acknowledging
			return nil
		})
	}()
	<-took
	var got received
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = second.Consume(cctx, queue, ConsumeOptions{}, func(_ context.Context, d Delivery) error { got.add(d); return nil })
	}()
	d := got.wait(t, 1)[0]
	if d.ID != "held" || !d.Redelivered {
		t.Errorf("second consumer got %q redelivered=%v, want the held message redelivered", d.ID, d.Redelivered)
	}
}

// TestRabbitMQSurvivesDroppedConnections drops every connection on the
// broker mid-stream: publishes wait for the reconnect and are confirmed,
// the consumer resumes, nothing is lost.
func TestRabbitMQSurvivesDroppedConnections(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Skip("rabbitmqctl not found: cannot drop the broker's connections from here")
	}
	_, ctx := ktesting.NewTestContext(t)
	topo, exchange, queue := testTopology()
	b := implementations()[1].open(t, topo).(*AMQP)
	seen := map[string]int{}
	var mu sync.Mutex
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_ = b.Consume(cctx, queue, ConsumeOptions{}, func(_ context.Context, d Delivery) error {
			mu.Lock()
			seen[d.ID]++
			mu.Unlock()
			return nil
		})
	}()
	const total = 200
	for i := range total {
		if i == total/2 {
			if out, err := exec.CommandContext(ctx, "rabbitmqctl", "close_all_connections", "switchyard test").CombinedOutput(); err != nil {
				t.Fatalf("rabbitmqctl close_all_connections: %v: %s", err, out)
			}
		}
		// A publish may fail while the connection is down; the caller
		// retries, as every Switchyard publisher does.
		for attempt := 0; ; attempt++ {
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			err := b.Publish(pctx, exchange, "pods.n", Message{ID: fmt.Sprintf("m%d", i)})
			pcancel()
			if err == nil {
				break
			}
			if attempt > 20 {
				t.Fatalf("message %d never confirmed: %v", i, err)
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n, dups := len(seen), 0
		for _, c := range seen {
			dups += c - 1
		}
		mu.Unlock()
		if n == total {
			t.Logf("all %d messages received; %d duplicates (publishes retried after the drop)", total, dups)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d distinct messages", n, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := testutil.ToFloat64(b.metrics.Reconnects); r < 1 {
		t.Errorf("reconnects = %v, want at least 1", r)
	}
	if c := testutil.ToFloat64(b.metrics.Connected); c != 1 {
		t.Errorf("switchyard_broker_connected = %v after the reconnect, want 1", c)
	}
}

// TestTopologyDeclaredOncePerName: declaring the same names again, as the
// dispatcher does after ErrUnroutable and on Queue updates, keeps one entry
// per name in what is declared again at every reconnect; a changed queue
// replaces the old one.
func TestTopologyDeclaredOncePerName(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	topo, _, queue := testTopology()
	b := implementations()[1].open(t, Topology{}).(*AMQP)
	for range 50 {
		if err := b.Declare(ctx, topo); err != nil {
			t.Fatal(err)
		}
	}
	b.mu.Lock()
	got := b.topology
	b.mu.Unlock()
	if len(got.Exchanges) != len(topo.Exchanges) || len(got.Queues) != len(topo.Queues) || len(got.Bindings) != len(topo.Bindings) {
		t.Errorf("after 50 declarations: %d exchanges, %d queues, %d bindings; want %d, %d, %d",
			len(got.Exchanges), len(got.Queues), len(got.Bindings), len(topo.Exchanges), len(topo.Queues), len(topo.Bindings))
	}
	changed := Topology{Queues: []Queue{{Name: queue, DeadLetter: true}}}
	merged := topo.with(changed)
	if len(merged.Queues) != len(topo.Queues) || !slices.ContainsFunc(merged.Queues, func(q Queue) bool { return q.Name == queue && q.DeadLetter && q.RetryDelay == 0 }) {
		t.Errorf("declared again with other arguments, the queue must be replaced: %+v", merged.Queues)
	}
}
