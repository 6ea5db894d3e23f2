package configurator

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/broker"
)

// ClientOptions configure one replica's Client.
type ClientOptions struct {
	// URL of switchyard-configurator, e.g.
	// https://switchyard-configurator.switchyard-system:8090.
	URL string
	// Service names the service this replica belongs to. Address is the
	// base URL the configurator reaches it at (where Handler is served);
	// its host must be the pod's IP.
	Service, Address string
	// Pod is the pod's name, for logs until the configurator confirms it
	// from the token; optional.
	Pod string
	// TokenFile holds the replica's token: a projected service account
	// token for the audience switchyard-configurator, bound to this pod.
	// It is read again for every call, since the kubelet rotates it.
	TokenFile string
	// Token is used when TokenFile is empty.
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
	// HTTPClient for calls to the configurator; when nil, a 5s-timeout
	// client that trusts the system roots plus CAFile.
	HTTPClient *http.Client
	// CAFile is a PEM bundle that signs the configurator's serving
	// certificate (used when HTTPClient is nil).
	CAFile string
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
	pod       string
	epoch     string
	applied   int64
	config    map[string]string
	pushKey   []byte
	// applying serialises OnChange calls.
	applying sync.Mutex
	amqp     *broker.AMQP
}

// NewClient checks the options; Run starts it.
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.URL == "" || opts.Service == "" || opts.Address == "" {
		return nil, errors.New("configurator client needs URL, Service and Address")
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 2 * time.Second
	}
	if opts.HTTPClient == nil {
		client, err := HTTPClient(opts.CAFile, 5*time.Second)
		if err != nil {
			return nil, err
		}
		opts.HTTPClient = client
	}
	return &Client{opts: opts, logger: klog.Background(), pod: opts.Pod, config: map[string]string{}}, nil
}

// HTTPClient is a client for the configurator that trusts the system roots
// and, when caFile is set, the certificates of that PEM bundle.
func HTTPClient(caFile string, timeout time.Duration) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the configurator's CA bundle: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Timeout: timeout, Transport: transport}, nil
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

// Applied is the epoch and version of the configuration last applied.
func (c *Client) Applied() (epoch string, version int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch, c.applied
}

func (c *Client) health() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Health{Service: c.opts.Service, PodNumber: c.podNumber, Epoch: c.epoch, AppliedVersion: c.applied}
}

// Handler serves the health endpoint the configurator checks and the push
// endpoint it delivers signed changes to over HTTP. Mount it at the root of
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
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.health())
	})
	mux.HandleFunc("POST "+DefaultPushPath, func(w http.ResponseWriter, r *http.Request) {
		payload, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "reading the change: "+err.Error(), http.StatusBadRequest)
			return
		}
		macs, err := base64.StdEncoding.DecodeString(r.Header.Get(MACHeader))
		if err != nil {
			http.Error(w, MACHeader+" is not base64", http.StatusBadRequest)
			return
		}
		if err := c.Receive(r.Context(), SignedChange{Change: payload, MACs: macs}); err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrBadSignature) {
				status = http.StatusForbidden
			}
			http.Error(w, err.Error(), status)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.health())
	})
	return mux
}

// Receive takes a pushed change (HTTP or RabbitMQ): it must carry this
// replica's MAC from the configurator it registered with and be for its
// service. The next
// version is applied as it came; one from another epoch, or beyond a gap
// (the replica missed something, or somebody claims a version far ahead), is
// only a reason to pull the whole configuration from the configurator, which
// is what the replica then applies.
func (c *Client) Receive(ctx context.Context, signed SignedChange) error {
	c.mu.Lock()
	key, n := c.pushKey, c.podNumber
	c.mu.Unlock()
	change, err := signed.Open(n, key)
	if err != nil {
		return err
	}
	if change.Snapshot.Service != c.opts.Service {
		return fmt.Errorf("change for service %q sent to a replica of %q", change.Snapshot.Service, c.opts.Service)
	}
	epoch, applied := c.Applied()
	switch {
	case change.Snapshot.Epoch == epoch && change.Snapshot.Version <= applied:
		return nil // old or duplicated
	case change.Snapshot.Epoch == epoch && change.Snapshot.Version == applied+1:
		c.apply(ctx, change.Snapshot, false)
		return nil
	case epoch == "" && applied == 0 && change.Snapshot.Version == 1:
		// The first version of a service that had none: nothing to miss.
		c.apply(ctx, change.Snapshot, true)
		return nil
	default:
		c.logger.V(2).Info("Change beyond what this replica knows; pulling the configuration", "epoch", change.Snapshot.Epoch, "version", change.Snapshot.Version, "appliedEpoch", epoch, "applied", applied)
		return c.pull(ctx)
	}
}

// pull gets the service's whole configuration from the configurator.
func (c *Client) pull(ctx context.Context) error {
	var snap Snapshot
	if err := c.call(ctx, http.MethodGet, ServicesPath+"/"+c.opts.Service+"/config", nil, &snap); err != nil {
		return fmt.Errorf("pulling the configuration: %w", err)
	}
	c.Adopt(ctx, snap)
	return nil
}

// Adopt applies a snapshot the configurator answered with (at registration
// or when pulled): it is authoritative, so a new epoch replaces what the
// replica had even at a lower version; within an epoch the replica never
// goes back.
func (c *Client) Adopt(ctx context.Context, snap Snapshot) { c.apply(ctx, snap, true) }

// apply takes snap when it is newer than what the replica applied (or,
// when authoritative, of another epoch), and calls OnChange when this
// replica's configuration changed. Changes for other pod numbers advance the
// version and leave this replica's configuration as it is.
func (c *Client) apply(ctx context.Context, snap Snapshot, authoritative bool) {
	c.applying.Lock()
	defer c.applying.Unlock()
	c.mu.Lock()
	newEpoch := snap.Epoch != c.epoch
	// A snapshot of a service with no configuration yet (no epoch,
	// version 0) is older than anything applied: it is the registration
	// answer overtaken by the first push.
	unconfigured := snap.Epoch == "" && snap.Version == 0 && c.applied > 0
	if newEpoch && !authoritative || !newEpoch && snap.Version <= c.applied || unconfigured {
		c.mu.Unlock()
		return
	}
	next := snap.For(c.podNumber)
	changed := !maps.Equal(next, c.config)
	c.epoch, c.applied, c.config = snap.Epoch, snap.Version, next
	c.mu.Unlock()
	if changed && c.opts.OnChange != nil {
		if err := c.opts.OnChange(ctx, maps.Clone(next), snap.Version); err != nil {
			c.logger.Error(err, "Applying configuration", "service", c.opts.Service, "version", snap.Version)
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
			c.pod, c.pushKey = resp.Pod, resp.PushKey
			c.mu.Unlock()
			c.Adopt(ctx, resp.Snapshot)
			c.logger.V(2).Info("Registered", "podNumber", resp.PodNumber, "epoch", resp.Snapshot.Epoch, "version", resp.Snapshot.Version)
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

// call does one JSON request to the configurator with the replica's token.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	token, err := c.token()
	if err != nil {
		return err
	}
	return Call(ctx, c.opts.HTTPClient, c.opts.URL, token, method, path, in, out)
}

// token reads the token file anew each time: the kubelet rotates
// projected tokens.
func (c *Client) token() (string, error) {
	if c.opts.TokenFile == "" {
		return c.opts.Token, nil
	}
	return ReadToken(c.opts.TokenFile)
}

// ReadToken reads a bearer token from a file, as the kubelet writes a
// projected one.
func ReadToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the token: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
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
	queue := fmt.Sprintf("switchyard-config.%s.%s.%s", c.opts.Service, resp.Namespace, resp.Pod)
	topo := broker.Topology{Exchanges: []broker.Exchange{{Name: resp.AMQPExchange, Kind: "topic"}}, Queues: []broker.Queue{{Name: queue, Exclusive: true}}}
	for _, key := range resp.RoutingKeys {
		topo.Bindings = append(topo.Bindings, broker.Binding{Exchange: resp.AMQPExchange, Queue: queue, Key: key})
	}
	if c.amqp != nil {
		// Registered again, perhaps with another number: add its bindings.
		return c.amqp.Declare(ctx, topo)
	}
	b, err := broker.DialAMQP(ctx, broker.AMQPOptions{URL: c.opts.AMQPURL, Name: "configurator-client/" + c.opts.Service + "/" + resp.Pod, Topology: topo})
	if err != nil {
		return err
	}
	c.amqp = b
	go func() {
		_ = b.Consume(ctx, queue, broker.ConsumeOptions{Prefetch: 32, Name: resp.Pod}, func(ctx context.Context, d broker.Delivery) error {
			macs, _ := d.Headers[MACsAMQPHeader].([]byte)
			if err := c.Receive(ctx, SignedChange{Change: d.Body, MACs: macs}); err != nil {
				// Forged, for another service, or the pull failed: the
				// periodic poll catches up with anything real.
				return broker.Permanent(err)
			}
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
		c.mu.Lock()
		pod := c.pod
		c.mu.Unlock()
		var info ReplicaInfo
		err := c.call(ctx, http.MethodGet, ServicesPath+"/"+c.opts.Service+"/replicas/"+strconv.Itoa(n), nil, &info)
		var status *StatusError
		if errors.As(err, &status) && status.Code == http.StatusNotFound || err == nil && info.Pod != pod {
			return
		}
		if err == nil && beat%5 == 0 {
			if err := c.pull(ctx); err != nil {
				c.logger.V(2).Info("Polling the configuration failed", "err", err)
			}
		}
	}
}
