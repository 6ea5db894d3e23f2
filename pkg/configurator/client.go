package configurator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/broker"
)

// ClientOptions configure one replica's Client.
type ClientOptions struct {
	// URL of switchyard-configurator, e.g. http://switchyard-configurator:8090.
	URL string
	// Service and Pod name this replica; Address is the base URL the
	// configurator reaches it at (where Handler is served).
	Service, Pod, Address string
	// Token is the bearer token for registering (a service account token
	// in a cluster, a static token in the demo).
	Token string
	// OnChange receives the replica's whole configuration each time it
	// changes, in version order, never concurrently. Its error is logged;
	// the version counts as applied either way.
	OnChange func(ctx context.Context, config map[string]string, version int64) error
	// AMQPURL lets the replica receive changes from RabbitMQ when the
	// configurator broadcasts there; otherwise they arrive over HTTP.
	AMQPURL string
	// HeartbeatInterval is how often the replica checks that the
	// configurator still knows it (and re-registers after a restart); 2s.
	HeartbeatInterval time.Duration
	// HTTPClient for calls to the configurator; a 5s-timeout client when nil.
	HTTPClient *http.Client
	// Healthy reports the application's own health; nil: always healthy.
	Healthy func() error
}

// Client keeps one replica registered and configured.
type Client struct {
	opts   ClientOptions
	logger klog.Logger

	mu        sync.Mutex
	podNumber int
	numbered  bool
	applied   int64
	config    map[string]string
	// applying serialises OnChange calls.
	applying sync.Mutex
	amqp     *broker.AMQP
	bindings []string
}

// NewClient checks the options; Run starts it.
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.URL == "" || opts.Service == "" || opts.Pod == "" || opts.Address == "" {
		return nil, errors.New("configurator client needs URL, Service, Pod and Address")
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 2 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	return &Client{opts: opts, logger: klog.Background(), config: map[string]string{}}, nil
}

// PodNumber is the replica's number within its service, once registered.
func (c *Client) PodNumber() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.podNumber, c.numbered
}

// Config is the configuration last applied.
func (c *Client) Config() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.config)
}

// AppliedVersion is the version of the configuration last applied.
func (c *Client) AppliedVersion() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

// Handler serves the health endpoint the configurator checks and the push
// endpoint it delivers changes to over HTTP. Mount it at the root of
// Address.
func (c *Client) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+DefaultHealthPath, func(w http.ResponseWriter, _ *http.Request) {
		if c.opts.Healthy != nil {
			if err := c.opts.Healthy(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		n, _ := c.PodNumber()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Health{Service: c.opts.Service, PodNumber: n, AppliedVersion: c.AppliedVersion()})
	})
	mux.HandleFunc("POST "+DefaultPushPath, func(w http.ResponseWriter, r *http.Request) {
		var change Change
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&change); err != nil {
			http.Error(w, "malformed change: "+err.Error(), http.StatusBadRequest)
			return
		}
		if change.Snapshot.Service != c.opts.Service {
			http.Error(w, fmt.Sprintf("change for service %q sent to a replica of %q", change.Snapshot.Service, c.opts.Service), http.StatusBadRequest)
			return
		}
		c.Apply(r.Context(), change)
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// Apply takes a change (or a snapshot) when it is newer than what the
// replica applied: older and duplicated deliveries are ignored, so the
// replica never goes back. Changes for other pod numbers advance the
// version and leave this replica's configuration as it is.
func (c *Client) Apply(ctx context.Context, change Change) {
	c.applying.Lock()
	defer c.applying.Unlock()
	c.mu.Lock()
	if change.Snapshot.Version <= c.applied {
		c.mu.Unlock()
		return
	}
	next := change.Snapshot.For(c.podNumber)
	changed := !maps.Equal(next, c.config)
	c.applied, c.config = change.Snapshot.Version, next
	c.mu.Unlock()
	if changed && c.opts.OnChange != nil {
		if err := c.opts.OnChange(ctx, maps.Clone(next), change.Snapshot.Version); err != nil {
			c.logger.Error(err, "Applying configuration", "service", c.opts.Service, "version", change.Snapshot.Version)
		}
	}
}

// Run registers (retrying), receives changes, and registers again
// whenever the configurator no longer knows the replica, until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	c.logger = klog.FromContext(ctx).WithValues("service", c.opts.Service, "pod", c.opts.Pod)
	defer func() {
		if c.amqp != nil {
			_ = c.amqp.Close()
		}
	}()
	for {
		resp, err := c.registerWithRetry(ctx)
		if err != nil {
			return nil // ctx ended
		}
		if err := c.listen(ctx, resp); err != nil {
			c.logger.Error(err, "Subscribing to configuration changes; falling back to polling")
		}
		c.heartbeat(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.logger.Info("The configurator no longer knows this replica; registering again")
	}
}

func (c *Client) registerWithRetry(ctx context.Context) (RegisterResponse, error) {
	backoff := 100 * time.Millisecond
	for {
		resp, err := c.register(ctx)
		if err == nil {
			c.mu.Lock()
			if c.numbered && c.podNumber != resp.PodNumber {
				c.applied = -1 // another number: recompute from the snapshot
			}
			c.podNumber, c.numbered = resp.PodNumber, true
			c.mu.Unlock()
			c.Apply(ctx, Change{Snapshot: resp.Snapshot})
			c.logger.V(2).Info("Registered", "podNumber", resp.PodNumber, "version", resp.Snapshot.Version)
			return resp, nil
		}
		c.logger.V(2).Info("Registering failed; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return resp, ctx.Err()
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (c *Client) register(ctx context.Context) (RegisterResponse, error) {
	var resp RegisterResponse
	req := RegisterRequest{Service: c.opts.Service, Pod: c.opts.Pod, Address: c.opts.Address, HealthPath: DefaultHealthPath}
	if n, ok := c.PodNumber(); ok {
		req.PreviousPodNumber = &n
	}
	err := c.call(ctx, http.MethodPost, RegisterPath, req, &resp)
	return resp, err
}

// call does one JSON request to the configurator.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	return Call(ctx, c.opts.HTTPClient, c.opts.URL, c.opts.Token, method, path, in, out)
}

// Call does one JSON request to the configurator at baseURL (with the
// bearer token when set) and decodes the answer into out (when not nil);
// a non-2xx answer is a *StatusError carrying the configurator's message.
func Call(ctx context.Context, client *http.Client, baseURL, token, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(baseURL, "/")+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e Error
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return &StatusError{Code: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// StatusError is a non-2xx answer from the configurator.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Code, e.Message) }

// listen subscribes to RabbitMQ when the configurator broadcasts there:
// one exclusive queue per replica, bound to the keys it was given.
func (c *Client) listen(ctx context.Context, resp RegisterResponse) error {
	if resp.AMQPExchange == "" || c.opts.AMQPURL == "" {
		return nil
	}
	queue := fmt.Sprintf("switchyard-config.%s.%s", c.opts.Service, c.opts.Pod)
	topo := broker.Topology{Exchanges: []broker.Exchange{{Name: resp.AMQPExchange, Kind: "topic"}}, Queues: []broker.Queue{{Name: queue, Exclusive: true}}}
	for _, key := range resp.RoutingKeys {
		topo.Bindings = append(topo.Bindings, broker.Binding{Exchange: resp.AMQPExchange, Queue: queue, Key: key})
	}
	if c.amqp != nil {
		// Registered again, perhaps with another number: add its bindings.
		return c.amqp.Declare(ctx, topo)
	}
	b, err := broker.DialAMQP(ctx, broker.AMQPOptions{URL: c.opts.AMQPURL, Name: "configurator-client/" + c.opts.Service + "/" + c.opts.Pod, Topology: topo})
	if err != nil {
		return err
	}
	c.amqp = b
	go func() {
		_ = b.Consume(ctx, queue, broker.ConsumeOptions{Prefetch: 32, Name: c.opts.Pod}, func(ctx context.Context, d broker.Delivery) error {
			var change Change
			if err := json.Unmarshal(d.Body, &change); err != nil {
				return broker.Permanent(fmt.Errorf("malformed change: %w", err))
			}
			if change.Snapshot.Service != c.opts.Service {
				return nil // not for this service: its key matched by accident
			}
			c.Apply(ctx, change)
			return nil
		})
	}()
	// Anything broadcast between registering and binding is in the
	// snapshot the next heartbeat polls.
	return nil
}

// heartbeat returns when the configurator does not know this replica (it
// restarted, or removed it) or ctx ends. Every fifth beat it also polls the
// configuration, so a change lost in transit is applied late, not never.
func (c *Client) heartbeat(ctx context.Context) {
	ticker := time.NewTicker(c.opts.HeartbeatInterval)
	defer ticker.Stop()
	for beat := 1; ; beat++ {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		n, _ := c.PodNumber()
		var info ReplicaInfo
		err := c.call(ctx, http.MethodGet, ServicesPath+"/"+c.opts.Service+"/replicas/"+strconv.Itoa(n), nil, &info)
		var status *StatusError
		if errors.As(err, &status) && status.Code == http.StatusNotFound || err == nil && info.Pod != c.opts.Pod {
			return
		}
		if err == nil && beat%5 == 0 {
			var snap Snapshot
			if c.call(ctx, http.MethodGet, ServicesPath+"/"+c.opts.Service+"/config", nil, &snap) == nil {
				c.Apply(ctx, Change{Snapshot: snap})
			}
		}
	}
}
