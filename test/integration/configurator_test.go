package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
	"github.com/switchyard-sched/switchyard/pkg/configurator/server"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// runningConfigurator is a switchyard-configurator in this process, serving
// TLS, authenticating with the API server's TokenReview and authorizing
// with its SubjectAccessReview, as in a cluster.
type runningConfigurator struct {
	URL      string
	Registry *prometheus.Registry
	// HTTP trusts the configurator's certificate.
	HTTP *http.Client
	// Writer is a token of a service account bound to the shipped
	// switchyard-config-editor ClusterRole.
	Writer string
	ns     string
	addr   string
	stop   func()
}

var (
	configuratorCertOnce sync.Once
	configuratorCert     *localcluster.ServingCert
	configuratorCertErr  error
	shippedRolesOnce     sync.Once
	shippedRolesErr      error
)

// servingCert is the one certificate every test configurator serves (so a
// restarted one is trusted as before).
func servingCert(t testing.TB) *localcluster.ServingCert {
	t.Helper()
	configuratorCertOnce.Do(func() { configuratorCert, configuratorCertErr = localcluster.NewServingCert(cluster.WorkDir()) })
	if configuratorCertErr != nil {
		t.Fatal(configuratorCertErr)
	}
	return configuratorCert
}

// installShippedClusterRoles creates the ClusterRoles the configurator's
// and the agent's manifests ship, so tests grant exactly what users bind.
func installShippedClusterRoles(ctx context.Context, t testing.TB) {
	t.Helper()
	shippedRolesOnce.Do(func() {
		shippedRolesErr = cluster.ApplyKind(ctx, "ClusterRole", "manifests/configurator/rbac.yaml", "manifests/agent/rbac.yaml")
	})
	if shippedRolesErr != nil {
		t.Fatal(shippedRolesErr)
	}
}

// Service accounts of a configurator test's namespace and what they may do.
const (
	writerAccount  = "writer"  // bound to switchyard-config-editor
	replicaAccount = "replica" // bound to switchyard-config-replica
)

// configuratorIdentities binds the namespace's writer and replica service
// accounts and returns a writer token.
func configuratorIdentities(ctx context.Context, t testing.TB, ns string) string {
	t.Helper()
	installShippedClusterRoles(ctx, t)
	for account, role := range map[string]string{writerAccount: "switchyard-config-editor", replicaAccount: "switchyard-config-replica"} {
		if err := cluster.CreateServiceAccount(ctx, ns, account); err != nil {
			t.Fatal(err)
		}
		if err := cluster.BindClusterRole(ctx, ns+"-"+account, role, ns, account); err != nil {
			t.Fatal(err)
		}
	}
	token, err := cluster.Token(ctx, ns, writerAccount, v1alpha1.ConfiguratorAudience, nil)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// startConfigurator starts a configurator on addr ("" for a free port)
// with its ConfigMaps in ns, broadcasting through RabbitMQ when amqp;
// mutate adjusts its configuration before it starts.
func startConfigurator(ctx context.Context, t testing.TB, ns, addr string, amqp bool, opts server.Options, mutate ...func(*server.Config)) *runningConfigurator {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	writer := configuratorIdentities(ctx, t, ns)
	cert := servingCert(t)
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Client: cluster.Client, Namespace: ns, Listener: lis, TLSCertFile: cert.CertFile, TLSKeyFile: cert.KeyFile,
		Registry: prometheus.NewRegistry(), Options: opts}
	if amqp {
		cfg.AMQPURL = amqpURL()
		cfg.Exchange = runID + ".config"
	}
	for _, m := range mutate {
		m(&cfg)
	}
	httpClient, err := configurator.HTTPClient(cert.CertFile, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := server.Serve(ctx, cfg); err != nil {
			t.Errorf("configurator: %v", err)
		}
	}()
	rc := &runningConfigurator{URL: "https://" + lis.Addr().String(), Registry: cfg.Registry, HTTP: httpClient, Writer: writer, ns: ns, addr: lis.Addr().String()}
	var once sync.Once
	rc.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(rc.stop)
	if amqp {
		t.Cleanup(func() { deleteExchange(cfg.Exchange) })
	}
	// Serving once /healthz answers.
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		resp, err := httpClient.Get(rc.URL + "/healthz")
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		t.Fatalf("configurator did not start: %v", err)
	}
	return rc
}

// replicaToken creates pod in the configurator's namespace, running as the
// replica service account at 127.0.0.1 (where the test's replica servers
// listen), and returns a token bound to it.
func replicaToken(ctx context.Context, t testing.TB, ns, pod string) string {
	t.Helper()
	token, err := cluster.PodToken(ctx, ns, pod, replicaAccount, "127.0.0.1", v1alpha1.ConfiguratorAudience)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// testReplica is one replica of a service: a Client with its own HTTP
// server, recording every configuration it was given.
type testReplica struct {
	client  *configurator.Client
	server  *httptest.Server
	failing atomic.Bool
	cancel  context.CancelFunc
	done    chan struct{}

	mu      sync.Mutex
	applied []appliedConfig
}

type appliedConfig struct {
	version int64
	config  map[string]string
	at      time.Time
}

func (r *testReplica) last() appliedConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.applied) == 0 {
		return appliedConfig{}
	}
	return r.applied[len(r.applied)-1]
}

// versions are every version the replica applied, in order.
func (r *testReplica) versions() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int64, len(r.applied))
	for i, a := range r.applied {
		out[i] = a.version
	}
	return out
}

func (r *testReplica) stop() {
	r.cancel()
	<-r.done
	r.server.Close()
}

// startReplica registers one replica of service with the configurator, as
// pod (created in the configurator's namespace, its token bound to it).
// Its heartbeat (which also polls the configuration every fifth beat) is
// 200ms unless heartbeat says otherwise; tests of a transport make it long,
// so that only the transport can deliver.
func startReplica(ctx context.Context, t testing.TB, rc *runningConfigurator, service, pod string, amqp bool, heartbeat ...time.Duration) *testReplica {
	t.Helper()
	r := &testReplica{done: make(chan struct{})}
	opts := configurator.ClientOptions{
		URL: rc.URL, Service: service, Pod: pod, Token: replicaToken(ctx, t, rc.ns, pod), HTTPClient: rc.HTTP, HeartbeatInterval: 200 * time.Millisecond,
		OnChange: func(_ context.Context, cfg map[string]string, version int64) error {
			r.mu.Lock()
			r.applied = append(r.applied, appliedConfig{version: version, config: cfg, at: time.Now()})
			r.mu.Unlock()
			return nil
		},
		Healthy: func() error {
			if r.failing.Load() {
				return errors.New("failing on purpose")
			}
			return nil
		},
	}
	if amqp {
		opts.AMQPURL = amqpURL()
	}
	if len(heartbeat) > 0 {
		opts.HeartbeatInterval = heartbeat[0]
	}
	// The server exists before the client, so the address is known.
	var handler atomic.Value
	r.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		handler.Load().(http.Handler).ServeHTTP(w, req)
	}))
	opts.Address = r.server.URL
	client, err := configurator.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.client = client
	handler.Store(client.Handler())
	ctx, r.cancel = context.WithCancel(ctx)
	go func() { defer close(r.done); _ = client.Run(ctx) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.stop()
		}
	})
	return r
}

func waitFor(ctx context.Context, t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// setConfig PUTs values for the service (or one pod number) as the editor
// and returns the version the change got.
func setConfig(t testing.TB, rc *runningConfigurator, service string, pod *int, values map[string]string) int64 {
	t.Helper()
	var resp configurator.SetResponse
	status, body := rc.do(t, http.MethodPut, configurator.ServicesPath+"/"+service+"/config", rc.Writer, configurator.SetRequest{Pod: pod, Values: values})
	if status != http.StatusOK {
		t.Fatalf("setting %v on %s (pod %v): HTTP %d %s", values, service, pod, status, body)
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Version
}

// do calls the configurator at path with token.
func (rc *runningConfigurator) do(t testing.TB, method, path, token string, in any) (int, []byte) {
	t.Helper()
	return doJSONWith(t, rc.HTTP, method, rc.URL+path, token, in)
}

func doJSON(t testing.TB, method, url, token string, in any) (int, []byte) {
	t.Helper()
	return doJSONWith(t, http.DefaultClient, method, url, token, in)
}

func doJSONWith(t testing.TB, client *http.Client, method, url, token string, in any) (int, []byte) {
	t.Helper()
	var body []byte
	switch v := in.(type) {
	case nil:
	case string:
		body = []byte(v)
	case []byte:
		body = v
	default:
		body, _ = json.Marshal(v)
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

func replicasOf(t testing.TB, rc *runningConfigurator, service string) []configurator.ReplicaInfo {
	t.Helper()
	status, body := rc.do(t, http.MethodGet, configurator.ServicesPath+"/"+service+"/replicas", rc.Writer, nil)
	if status != http.StatusOK {
		return nil
	}
	var out []configurator.ReplicaInfo
	_ = json.Unmarshal(body, &out)
	return out
}

// TestConfiguratorBroadcast: 50 replicas get numbers 0..49; a service-wide
// change reaches all 50, a pod-targeted one only its target, with
// RabbitMQ and with HTTP push.
func TestConfiguratorBroadcast(t *testing.T) {
	for _, transport := range []string{"http", "rabbitmq"} {
		t.Run(transport, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ns := "configurator-broadcast-" + transport
			if err := cluster.CreateNamespace(ctx, ns); err != nil {
				t.Fatal(err)
			}
			amqp := transport == "rabbitmq"
			rc := startConfigurator(ctx, t, ns, "", amqp, server.Options{CheckInterval: 500 * time.Millisecond})
			const n = 50
			replicas := make([]*testReplica, n)
			for i := range n {
				replicas[i] = startReplica(ctx, t, rc, "web", fmt.Sprintf("web-%d", i), amqp, time.Hour)
			}
			waitFor(ctx, t, "50 registrations", 30*time.Second, func() bool {
				for _, r := range replicas {
					if _, ok := r.client.PodNumber(); !ok {
						return false
					}
				}
				return len(replicasOf(t, rc, "web")) == n
			})
			numbers := map[int]*testReplica{}
			for _, r := range replicas {
				num, ok := r.client.PodNumber()
				if !ok {
					t.Fatal("a replica has no number")
				}
				if numbers[num] != nil {
					t.Fatalf("pod number %d given twice", num)
				}
				numbers[num] = r
			}
			for i := range n {
				if numbers[i] == nil {
					t.Fatalf("pod numbers are not 0..49: %d missing", i)
				}
			}
			if amqp {
				time.Sleep(500 * time.Millisecond) // consumers bind after registering
			}

			v1 := setConfig(t, rc, "web", nil, map[string]string{"log-level": "debug"})
			waitFor(ctx, t, "the service-wide change on all 50 replicas", 30*time.Second, func() bool {
				for _, r := range replicas {
					if l := r.last(); l.version < v1 || l.config["log-level"] != "debug" {
						return false
					}
				}
				return true
			})

			seven := 7
			v2 := setConfig(t, rc, "web", &seven, map[string]string{"mode": "canary"})
			waitFor(ctx, t, "the targeted change on pod 7", 30*time.Second, func() bool {
				l := numbers[7].last()
				return l.version == v2 && l.config["mode"] == "canary" && l.config["log-level"] == "debug"
			})
			time.Sleep(300 * time.Millisecond) // give a wrong delivery time to show
			for num, r := range numbers {
				if num == 7 {
					continue
				}
				if l := r.last(); l.version != v1 || l.config["mode"] != "" {
					t.Errorf("pod %d: last change was version %d %v; a change for pod 7 must not reach it", num, l.version, l.config)
				}
			}
		})
	}
}

// TestConfiguratorPrunesAndRemoves: a failing replica is pruned (not
// targeted, still checked) and healthy again when it answers; one that
// keeps failing is removed and its number reused.
func TestConfiguratorPrunesAndRemoves(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "configurator-prune"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	rc := startConfigurator(ctx, t, ns, "", false, server.Options{CheckInterval: 100 * time.Millisecond, RemoveAfter: 5})
	var rs []*testReplica
	for i := range 3 {
		rs = append(rs, startReplica(ctx, t, rc, "api", fmt.Sprintf("api-%d", i), false))
		num := i
		waitFor(ctx, t, "registration", 10*time.Second, func() bool { n, ok := rs[num].client.PodNumber(); return ok && n == num })
	}
	state := func(num int) string {
		for _, r := range replicasOf(t, rc, "api") {
			if r.PodNumber == num {
				return r.State
			}
		}
		return "absent"
	}
	// Pruned while failing, and not targeted.
	rs[1].failing.Store(true)
	waitFor(ctx, t, "pod 1 pruned", 10*time.Second, func() bool { return state(1) == configurator.StatePruned })
	v := setConfig(t, rc, "api", nil, map[string]string{"limit": "10"})
	waitFor(ctx, t, "healthy replicas updated", 10*time.Second, func() bool { return rs[0].last().version == v && rs[2].last().version == v })
	if got := rs[1].last().version; got == v {
		t.Errorf("pruned pod 1 was targeted by version %d", v)
	}
	// Recovers: healthy again (and catches up through its heartbeat poll).
	rs[1].failing.Store(false)
	waitFor(ctx, t, "pod 1 healthy again", 10*time.Second, func() bool { return state(1) == configurator.StateHealthy })
	waitFor(ctx, t, "pod 1 catching up", 10*time.Second, func() bool { return rs[1].client.AppliedVersion() >= v })

	// Gone for good: removed after 5 failures, its number reused.
	rs[2].stop()
	waitFor(ctx, t, "pod 2 removed", 10*time.Second, func() bool { return state(2) == "absent" })
	newcomer := startReplica(ctx, t, rc, "api", "api-new", false)
	waitFor(ctx, t, "newcomer numbered", 10*time.Second, func() bool { _, ok := newcomer.client.PodNumber(); return ok })
	if n, _ := newcomer.client.PodNumber(); n != 2 {
		t.Errorf("newcomer got pod number %d, want the freed number 2", n)
	}
	if got := newcomer.last().config["limit"]; got != "10" {
		t.Errorf("newcomer started with limit=%q, want the latest value 10", got)
	}
}

// TestConfiguratorRestart: a restarted configurator keeps every value (they
// are in ConfigMaps) and every replica registers again, keeping its number.
func TestConfiguratorRestart(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "configurator-restart"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	rc := startConfigurator(ctx, t, ns, "", false, server.Options{CheckInterval: 200 * time.Millisecond})
	var rs []*testReplica
	for i := range 5 {
		rs = append(rs, startReplica(ctx, t, rc, "cache", fmt.Sprintf("cache-%d", i), false))
	}
	waitFor(ctx, t, "registrations", 10*time.Second, func() bool { return len(replicasOf(t, rc, "cache")) == 5 })
	before := map[string]int{}
	for _, r := range replicasOf(t, rc, "cache") {
		before[r.Pod] = r.PodNumber
	}
	three := 3
	setConfig(t, rc, "cache", nil, map[string]string{"ttl": "60s"})
	v := setConfig(t, rc, "cache", &three, map[string]string{"warm": "true"})

	rc.stop()
	rc = startConfigurator(ctx, t, ns, rc.addr, false, server.Options{CheckInterval: 200 * time.Millisecond})
	waitFor(ctx, t, "every replica registered again", 15*time.Second, func() bool { return len(replicasOf(t, rc, "cache")) == 5 })
	for _, r := range replicasOf(t, rc, "cache") {
		if want := before[r.Pod]; r.PodNumber != want {
			t.Errorf("%s has pod number %d after the restart, want %d as before", r.Pod, r.PodNumber, want)
		}
	}
	status, body := rc.do(t, http.MethodGet, configurator.ServicesPath+"/cache/config", rc.Writer, nil)
	var snap configurator.Snapshot
	if status != http.StatusOK || json.Unmarshal(body, &snap) != nil {
		t.Fatalf("GET config after restart: HTTP %d %s", status, body)
	}
	if snap.Version != v || snap.Values["ttl"] != "60s" || snap.For(3)["warm"] != "true" {
		t.Errorf("after restart: %+v, want version %d with ttl=60s and warm=true for pod 3", snap, v)
	}
	late := startReplica(ctx, t, rc, "cache", "cache-late", false)
	waitFor(ctx, t, "late replica configured", 10*time.Second, func() bool { return late.last().config["ttl"] == "60s" })
	cm, err := cluster.Client.CoreV1().ConfigMaps(ns).Get(ctx, "switchyard-config-cache", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["snapshot.json"], `"ttl":"60s"`) {
		t.Errorf("ConfigMap switchyard-config-cache does not hold the values: %v %v", err, cm.Data)
	}
}

// TestConfiguratorBadInput: clear errors, nothing changed.
func TestConfiguratorBadInput(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "configurator-bad-input"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	rc := startConfigurator(ctx, t, ns, "", false, server.Options{})
	r := startReplica(ctx, t, rc, "shop", "shop-0", false)
	waitFor(ctx, t, "registration", 10*time.Second, func() bool { _, ok := r.client.PodNumber(); return ok })
	config := configurator.ServicesPath + "/shop/config"
	w := rc.Writer
	for _, tc := range []struct {
		name, method, path, token string
		body                      any
		status                    int
		mention                   string
	}{
		{"malformed JSON", http.MethodPut, config, w, `{"values": {"a": `, 400, "malformed JSON"},
		{"unknown field", http.MethodPut, config, w, `{"value": {"a": "b"}}`, 400, "unknown field"},
		{"no values", http.MethodPut, config, w, `{"values": {}}`, 400, "at least one key"},
		{"bad key", http.MethodPut, config, w, `{"values": {"a b": "c"}}`, 400, "key \"a b\""},
		{"missing token", http.MethodPut, config, "", `{"values": {"a": "b"}}`, 401, "Bearer"},
		{"wrong token", http.MethodPut, config, "nope", `{"values": {"a": "b"}}`, 401, "not accepted"},
		{"unknown service", http.MethodGet, configurator.ServicesPath + "/nosuch/replicas", w, nil, 404, "unknown"},
		{"bad service name", http.MethodGet, configurator.ServicesPath + "/No_Such/replicas", w, nil, 400, "DNS label"},
		{"pod number out of range", http.MethodPut, config, w, `{"pod": 9, "values": {"a": "b"}}`, 404, "no replica with pod number 9"},
		{"pod number not a number", http.MethodGet, configurator.ServicesPath + "/shop/replicas/x", w, nil, 400, "non-negative integer"},
		{"register without address", http.MethodPost, configurator.RegisterPath, w, `{"service": "shop", "pod": "p"}`, 400, "address"},
		{"register with a path in the address", http.MethodPost, configurator.RegisterPath, w, `{"service": "shop", "address": "http://10.0.0.1:80/x"}`, 400, "address"},
		{"register bad service", http.MethodPost, configurator.RegisterPath, w, `{"service": "Shop_1", "pod": "p", "address": "http://x:1"}`, 400, "DNS label"},
	} {
		status, body := rc.do(t, tc.method, tc.path, tc.token, tc.body)
		var e configurator.Error
		_ = json.Unmarshal(body, &e)
		if status != tc.status || !strings.Contains(e.Error, tc.mention) {
			t.Errorf("%s: HTTP %d %q, want %d mentioning %q", tc.name, status, e.Error, tc.status, tc.mention)
		}
	}
	if v := r.client.AppliedVersion(); v != 0 {
		t.Errorf("rejected requests changed the configuration: version %d", v)
	}

	// A schema: values that do not fit are refused before anything is
	// stored or sent; a schema the current values do not fit is refused.
	setConfig(t, rc, "shop", nil, map[string]string{"currency": "EUR"})
	schema := configurator.Schema{Keys: map[string]configurator.KeySchema{
		"currency": {Type: configurator.TypeString, Enum: []string{"EUR", "USD"}},
		"pool":     {Type: configurator.TypeInteger, Minimum: new(1.0)},
	}}
	strict := configurator.Schema{Keys: map[string]configurator.KeySchema{"pool": {Type: configurator.TypeInteger}}}
	for _, tc := range []struct {
		name, path string
		body       any
		status     int
		mention    string
	}{
		{"a schema the current values do not fit", configurator.ServicesPath + "/shop/schema", strict, 400, `key "currency" is not in the service's schema`},
		{"a schema that cannot be met", configurator.ServicesPath + "/shop/schema", `{"keys": {"pool": {"type": "int"}}}`, 400, `type "int"`},
		{"the schema", configurator.ServicesPath + "/shop/schema", schema, 200, ""},
		{"a value out of range", config, `{"values": {"pool": "0"}}`, 400, "below the minimum 1"},
		{"a value not in the enum", config, `{"values": {"currency": "GBP"}}`, 400, "not one of EUR, USD"},
		{"an unknown key", config, `{"values": {"colour": "red"}}`, 400, `key "colour" is not in the service's schema`},
		{"a value that fits", config, `{"values": {"pool": "8"}}`, 200, ""},
	} {
		status, body := rc.do(t, http.MethodPut, tc.path, w, tc.body)
		if status != tc.status || !strings.Contains(errorOf(body), tc.mention) {
			t.Errorf("%s: HTTP %d %q, want %d mentioning %q", tc.name, status, errorOf(body), tc.status, tc.mention)
		}
	}
	waitFor(ctx, t, "only the changes that fit", 10*time.Second, func() bool { return r.last().config["pool"] == "8" })
	if got := r.last().config; got["currency"] != "EUR" || got["colour"] != "" {
		t.Errorf("the replica runs %v, want currency=EUR pool=8 and nothing refused", got)
	}
}

// BenchmarkConfiguratorBroadcast measures, for 10, 100 and 200 replicas,
// the time from the write request to the last replica's callback, over
// RabbitMQ and over HTTP push, in the same run (make bench).
func BenchmarkConfiguratorBroadcast(b *testing.B) {
	for _, n := range []int{10, 100, 200} {
		for _, transport := range []string{"http", "rabbitmq"} {
			b.Run(fmt.Sprintf("replicas=%d/%s", n, transport), func(b *testing.B) {
				_, ctx := ktesting.NewTestContext(b)
				ns := fmt.Sprintf("configurator-bench-%d-%s", n, transport)
				if err := cluster.CreateNamespace(ctx, ns); err != nil {
					b.Fatal(err)
				}
				amqp := transport == "rabbitmq"
				rc := startConfigurator(ctx, b, ns, "", amqp, server.Options{CheckInterval: 5 * time.Second})
				replicas := make([]*testReplica, n)
				for i := range n {
					replicas[i] = startReplica(ctx, b, rc, "svc", fmt.Sprintf("svc-%d", i), amqp, time.Hour)
				}
				waitFor(ctx, b, "registrations", time.Minute, func() bool {
					for _, r := range replicas {
						if _, ok := r.client.PodNumber(); !ok {
							return false
						}
					}
					return len(replicasOf(b, rc, "svc")) == n
				})
				time.Sleep(time.Second) // consumers bound
				var latencies []time.Duration
				b.ResetTimer()
				for i := range b.N {
					start := time.Now()
					v := setConfig(b, rc, "svc", nil, map[string]string{"round": fmt.Sprint(i, "-", start.UnixNano())})
					var lastAt time.Time
					waitFor(ctx, b, "every replica", time.Minute, func() bool {
						lastAt = time.Time{}
						for _, r := range replicas {
							l := r.last()
							if l.version < v {
								return false
							}
							if l.at.After(lastAt) {
								lastAt = l.at
							}
						}
						return true
					})
					latencies = append(latencies, lastAt.Sub(start))
				}
				b.StopTimer()
				sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
				b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(latencies[(len(latencies)*99)/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}
