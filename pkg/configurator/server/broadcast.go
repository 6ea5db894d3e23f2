package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/switchyard-sched/switchyard/pkg/broker"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
)

// Broadcaster delivers a signed change to a service's replicas. Two exist:
// over RabbitMQ (a topic exchange, one exclusive queue per replica) and over
// HTTP (the configurator pushes to each replica with retries).
type Broadcaster interface {
	// Broadcast delivers change (payload is its JSON) to targets, the
	// replicas it is for, each authenticated with its own push key. It
	// returns what replicas answered they applied, when the transport tells
	// (HTTP push does).
	Broadcast(ctx context.Context, change configurator.Change, payload []byte, targets []Target) ([]Ack, error)
	// Describe tells a registering replica how to receive changes.
	Describe(service string, podNumber int) (exchange string, keys []string)
}

// Ack is a replica's answer to a push: the configuration it now runs.
type Ack struct {
	PodNumber int
	Health    configurator.Health
}

// Target is one replica a change goes to.
type Target struct {
	PodNumber int
	Address   string
	// Key is the replica's push key.
	Key []byte
	// Healthy replicas are pushed to; pruned ones are not (they pull), but
	// a broker message carries their MAC too, for when they read it.
	Healthy bool
}

// macTable is the MAC table of payload for targets.
func macTable(payload []byte, targets []Target) []byte {
	macs := make(map[int][]byte, len(targets))
	for _, t := range targets {
		macs[t.PodNumber] = configurator.MAC(t.Key, payload)
	}
	return configurator.MACTable(macs)
}

// AMQPBroadcaster publishes changes to a topic exchange with routing key
// <service>.<podNumber> (or <service>.all); each replica binds its own
// exclusive queue to both and decides itself what is meant for it.
type AMQPBroadcaster struct {
	Broker   broker.Broker
	Exchange string
}

// NewAMQPBroadcaster declares the exchange.
func NewAMQPBroadcaster(ctx context.Context, b broker.Broker, exchange string) (*AMQPBroadcaster, error) {
	if err := b.Declare(ctx, broker.Topology{Exchanges: []broker.Exchange{{Name: exchange, Kind: "topic"}}}); err != nil {
		return nil, err
	}
	return &AMQPBroadcaster{Broker: b, Exchange: exchange}, nil
}

// Broadcast publishes once; the broker fans out. A change no replica is
// bound for (unroutable) is not an error: nobody is listening yet.
func (a *AMQPBroadcaster) Broadcast(ctx context.Context, change configurator.Change, payload []byte, targets []Target) ([]Ack, error) {
	err := a.Broker.Publish(ctx, a.Exchange, configurator.RoutingKey(change.Snapshot.Service, change.Target), broker.Message{
		ContentType: "application/json", Type: "switchyard.io/config-change", Body: payload,
		Headers: map[string]any{configurator.MACsAMQPHeader: macTable(payload, targets)},
	})
	if err != nil && !isUnroutable(err) {
		return nil, err
	}
	return nil, nil
}

// Describe names the exchange and the keys a replica binds.
func (a *AMQPBroadcaster) Describe(service string, podNumber int) (string, []string) {
	return a.Exchange, []string{configurator.RoutingKey(service, nil), configurator.RoutingKey(service, &podNumber)}
}

// HTTPBroadcaster pushes changes to each targeted replica with retries.
type HTTPBroadcaster struct {
	Client  *http.Client
	Retries int
	Backoff time.Duration
}

// Broadcast pushes to every target in parallel and reports the replicas
// that did not take it after every retry.
func (h *HTTPBroadcaster) Broadcast(ctx context.Context, change configurator.Change, payload []byte, targets []Target) ([]Ack, error) {
	var mu sync.Mutex
	var failed []int
	acks := make([]Ack, 0, len(targets))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, t := range targets {
		if !t.Healthy {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(t Target) {
			defer func() { <-sem; wg.Done() }()
			health, err := h.push(ctx, t, payload, base64.StdEncoding.EncodeToString(macTable(payload, []Target{t})))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, t.PodNumber)
				return
			}
			acks = append(acks, Ack{PodNumber: t.PodNumber, Health: health})
		}(t)
	}
	wg.Wait()
	if len(failed) > 0 {
		sort.Ints(failed)
		return acks, fmt.Errorf("pod numbers %v did not take version %d after %d attempts; they get it from their next change, their periodic pull or when they register again", failed, change.Snapshot.Version, h.Retries+1)
	}
	return acks, nil
}

func (h *HTTPBroadcaster) push(ctx context.Context, t Target, body []byte, macs string) (configurator.Health, error) {
	var health configurator.Health
	backoff := h.Backoff
	var last error
	for attempt := 0; attempt <= h.Retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return health, ctx.Err()
			case <-time.After(backoff):
			}
			backoff *= 2
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.Address+configurator.DefaultPushPath, bytes.NewReader(body))
		if err != nil {
			return health, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(configurator.MACHeader, macs)
		resp, err := h.Client.Do(req)
		if err != nil {
			last = err
			continue
		}
		if resp.StatusCode/100 == 2 {
			// A replica of an older client answers 204 with no body.
			_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&health)
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16)) // drained: the connection is reused
			_ = resp.Body.Close()
			return health, nil
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_ = resp.Body.Close()
		last = fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		if resp.StatusCode/100 == 4 {
			break // refused (a bad signature, say): retrying the same bytes cannot help
		}
	}
	return health, last
}

// Describe: nothing to bind; changes come over HTTP.
func (h *HTTPBroadcaster) Describe(string, int) (string, []string) { return "", nil }
