package routing

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	admissionregistrationv1ac "k8s.io/client-go/applyconfigurations/admissionregistration/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/coordinator/reconcile"
	"github.com/switchyard-sched/switchyard/pkg/generated/clientset/versioned"
	listers "github.com/switchyard-sched/switchyard/pkg/generated/listers/switchyard/v1alpha1"
)

// resyncPeriod is how often the policy and binding are applied again
// without a change: someone may have edited them, which no event shows.
const resyncPeriod = time.Minute

// batchDelay collects a burst of Queue changes into one table write: with
// thousands of Queues the table is large, and each write goes to every
// watcher of it (the API server's policy plugins among them).
const batchDelay = 250 * time.Millisecond

// key is the one work item: the routing table and its policy.
const key = "routing"

// Metrics of the routing controller.
type Metrics struct {
	TableQueues prometheus.Gauge
	TableBytes  prometheus.Gauge
	Errors      prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		TableQueues: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_routing_table_queues", Help: "Queues in the routing table the API server routes pods by."}),
		TableBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchyard_routing_table_bytes",
			Help: fmt.Sprintf("Size of the routing table's data; the API server refuses more than %d.", MaxTableBytes)}),
		Errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_routing_errors_total", Help: "Failed writes of the routing table, policy or binding."}),
	}
	if reg != nil {
		reg.MustRegister(m.TableQueues, m.TableBytes, m.Errors)
	}
	return m
}

// Controller keeps the routing table, policy and binding in step with the
// Queues, with server-side apply.
type Controller struct {
	client  kubernetes.Interface
	sy      versioned.Interface
	queues  listers.QueueLister
	tables  listers.RoutingTableLister
	metrics *Metrics
	loop    *reconcile.Loop[string]
	// open are the profiles pods may name directly (see Table).
	open sets.Set[string]

	mu        sync.Mutex
	lastError string
	applied   time.Time
	// onTable is told which Queues' routes changed in the live table (or
	// could not be written), so that their status (the Routed condition)
	// follows it.
	onTable func(queues []string)
}

// NewController wires the controller to informers the caller starts: the
// Queues and the RoutingTables. Pods may name the open profiles directly.
func NewController(client kubernetes.Interface, sy versioned.Interface, queues cache.SharedIndexInformer, lister listers.QueueLister,
	tables cache.SharedIndexInformer, tableLister listers.RoutingTableLister, metrics *Metrics, open []string, onTable func(queues []string)) (*Controller, error) {
	c := &Controller{client: client, sy: sy, queues: lister, tables: tableLister, metrics: metrics, open: sets.New(open...), onTable: onTable}
	c.loop = reconcile.New(v1alpha1.RoutingPolicyName, c.sync)
	enqueue := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.loop.AddAfter(key, batchDelay) },
		UpdateFunc: func(old, new any) {
			// Status writes (most Queue updates) do not change routes.
			if !specUnchanged(old, new) {
				c.loop.AddAfter(key, batchDelay)
			}
		},
		DeleteFunc: func(any) { c.loop.AddAfter(key, batchDelay) },
	}
	if _, err := queues.AddEventHandler(enqueue); err != nil {
		return nil, err
	}
	tableChanged := func(old, new any) {
		c.loop.Add(key)
		if c.onTable != nil {
			c.onTable(changedRoutes(routesOf(asTable(old)), routesOf(asTable(new))))
		}
	}
	if _, err := tables.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { tableChanged(nil, obj) },
		UpdateFunc: tableChanged,
		DeleteFunc: func(obj any) { tableChanged(obj, nil) },
	}); err != nil {
		return nil, err
	}
	c.loop.Add(key)
	return c, nil
}

// Run applies changes until ctx ends.
func (c *Controller) Run(ctx context.Context) { c.loop.Run(ctx, 1) }

func (c *Controller) sync(ctx context.Context, _ string) (time.Duration, error) {
	if ctx.Err() != nil {
		return 0, nil
	}
	err := c.apply(ctx)
	c.mu.Lock()
	c.lastError = ""
	if err != nil {
		c.lastError = err.Error()
	}
	c.mu.Unlock()
	if err != nil {
		c.metrics.Errors.Inc()
		if c.onTable != nil {
			c.onTable(c.unrouted())
		}
		return 0, err
	}
	return resyncPeriod, nil
}

// unrouted are the Queues the live table does not route as they say.
func (c *Controller) unrouted() []string {
	queues, err := c.queues.List(labels.Everything())
	if err != nil {
		return nil
	}
	live, _ := c.tables.Get(v1alpha1.RoutingPolicyName)
	table := routesOf(live)
	var out []string
	for _, q := range queues {
		if !Routed(table, q) {
			out = append(out, q.Name)
		}
	}
	return out
}

// specUnchanged is true for a Queue update that did not change the spec
// (the API server bumps the generation only on spec changes).
func specUnchanged(old, new any) bool {
	o, ok1 := old.(*v1alpha1.Queue)
	n, ok2 := new.(*v1alpha1.Queue)
	return ok1 && ok2 && o.Generation == n.Generation && o.DeletionTimestamp.Equal(n.DeletionTimestamp)
}

// changedRoutes are the keys whose value differs between two tables.
func changedRoutes(old, new map[string]string) []string {
	var out []string
	for k, v := range new {
		if ov, ok := old[k]; !ok || ov != v {
			out = append(out, k)
		}
	}
	for k := range old {
		if _, ok := new[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

func asTable(obj any) *v1alpha1.RoutingTable {
	t, _ := reconcile.Object[*v1alpha1.RoutingTable](obj)
	return t
}

func (c *Controller) apply(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	queues, err := c.queues.List(labels.Everything())
	if err != nil {
		return err
	}
	opts := metav1.ApplyOptions{FieldManager: v1alpha1.CoordinatorName, Force: true}
	contents := Table(queues, c.open)
	live, err := c.tables.Get(v1alpha1.RoutingPolicyName)
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	size := contents.Bytes()
	if !contents.Matches(live) {
		if size > MaxTableBytes {
			return fmt.Errorf("the routing table of %d Queues needs %d bytes, more than the %d one object may hold; Queues created since it last fit are not routed", len(queues), size, MaxTableBytes)
		}
		if _, err := c.sy.SwitchyardV1alpha1().RoutingTables().Apply(ctx, contents.ApplyConfiguration(), opts); err != nil {
			return fmt.Errorf("routing table: %w", err)
		}
		logger.V(2).Info("Applied the routing table", "queues", len(queues))
	}
	c.metrics.TableQueues.Set(float64(len(contents.Routes)))
	c.metrics.TableBytes.Set(float64(size))
	c.mu.Lock()
	due := time.Since(c.applied) >= resyncPeriod
	c.mu.Unlock()
	if !due {
		return nil
	}
	// Applying an unchanged object writes nothing; it repairs edits.
	if _, err := c.client.AdmissionregistrationV1().MutatingAdmissionPolicies().Apply(ctx, Policy(), opts); err != nil {
		return fmt.Errorf("policy %s: %w", v1alpha1.RoutingPolicyName, err)
	}
	if _, err := c.client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings().Apply(ctx, Binding(), opts); err != nil {
		return fmt.Errorf("binding %s: %w", v1alpha1.RoutingPolicyName, err)
	}
	// The guards come after the table they read, so that their binding
	// never meets a missing parameter.
	for _, guard := range []*admissionregistrationv1ac.ValidatingAdmissionPolicyApplyConfiguration{RoutingGuard(), AdmissionGuard()} {
		if _, err := c.client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Apply(ctx, guard, opts); err != nil {
			return fmt.Errorf("policy %s: %w", *guard.Name, err)
		}
	}
	for _, binding := range []*admissionregistrationv1ac.ValidatingAdmissionPolicyBindingApplyConfiguration{RoutingGuardBinding(), AdmissionGuardBinding()} {
		if _, err := c.client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Apply(ctx, binding, opts); err != nil {
			return fmt.Errorf("binding %s: %w", *binding.Name, err)
		}
	}
	c.mu.Lock()
	c.applied = time.Now()
	c.mu.Unlock()
	return nil
}

// RouteStatus says whether the live routing table routes q's pods, and if
// not, why: what the Routed condition of q shows.
func (c *Controller) RouteStatus(q *v1alpha1.Queue) (routed bool, message string) {
	live, _ := c.tables.Get(v1alpha1.RoutingPolicyName)
	if Routed(routesOf(live), q) {
		return true, fmt.Sprintf("the routing table sends pods labelled %s=%s to %s", v1alpha1.QueueLabel, q.Name, q.Spec.SchedulerName())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastError != "" {
		return false, "the routing table could not be written: " + c.lastError
	}
	return false, "the routing table does not hold this Queue's route yet"
}
