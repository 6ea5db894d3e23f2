package routing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	listers "github.com/switchyard-sched/switchyard/pkg/generated/listers/switchyard/v1alpha1"
)

// specHashAnnotation lets the controller skip updates when nothing changed:
// the API server defaults fields, so comparing specs directly never matches.
const specHashAnnotation = "switchyard.io/spec-hash"

// resyncPeriod is how often the policy is re-checked without a Queue change.
const resyncPeriod = 30 * time.Second

// Controller keeps the routing policy in step with the Queues.
type Controller struct {
	client kubernetes.Interface
	queues listers.QueueLister
	wake   chan struct{}
}

// NewController recompiles the policy whenever a Queue changes.
func NewController(client kubernetes.Interface, queues cache.SharedIndexInformer, lister listers.QueueLister) (*Controller, error) {
	c := &Controller{client: client, queues: lister, wake: make(chan struct{}, 1)}
	poke := func() {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	if _, err := queues.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() },
	}); err != nil {
		return nil, err
	}
	poke()
	return c, nil
}

// Run applies the policy on every change, retrying failures, until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	logger := klog.FromContext(ctx).WithName("routing")
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-retry.C:
		}
		if err := c.Sync(ctx); err != nil {
			logger.Error(err, "Applying the routing policy; retrying")
			retry.Reset(2 * time.Second)
			continue
		}
		// Look again now and then: someone may have edited or deleted the
		// policy, which no Queue event would reveal.
		retry.Reset(resyncPeriod)
	}
}

// Sync compiles the current Queues and writes the policy and binding.
func (c *Controller) Sync(ctx context.Context) error {
	queues, err := c.queues.List(labels.Everything())
	if err != nil {
		return err
	}
	policy, binding := Compile(queues)
	if err := c.applyPolicy(ctx, policy); err != nil {
		return fmt.Errorf("policy %s: %w", policy.Name, err)
	}
	if err := c.applyBinding(ctx, binding); err != nil {
		return fmt.Errorf("binding %s: %w", binding.Name, err)
	}
	return nil
}

func (c *Controller) applyPolicy(ctx context.Context, desired *admissionregistrationv1.MutatingAdmissionPolicy) error {
	api := c.client.AdmissionregistrationV1().MutatingAdmissionPolicies()
	return apply(ctx, desired, &desired.ObjectMeta, desired.Spec, api.Get, api.Create, api.Update)
}

func (c *Controller) applyBinding(ctx context.Context, desired *admissionregistrationv1.MutatingAdmissionPolicyBinding) error {
	api := c.client.AdmissionregistrationV1().MutatingAdmissionPolicyBindings()
	return apply(ctx, desired, &desired.ObjectMeta, desired.Spec, api.Get, api.Create, api.Update)
}

// apply creates the object, or updates it when the hash of its spec
// differs from the one stamped on the existing object.
func apply[T metav1.Object](ctx context.Context, desired T, meta *metav1.ObjectMeta, spec any,
	get func(context.Context, string, metav1.GetOptions) (T, error),
	create func(context.Context, T, metav1.CreateOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error)) error {
	hash, err := stamp(meta, spec)
	if err != nil {
		return err
	}
	existing, err := get(ctx, meta.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err = create(ctx, desired, metav1.CreateOptions{FieldManager: ManagerName}); err == nil {
			klog.FromContext(ctx).Info("Created", "object", meta.Name, "kind", fmt.Sprintf("%T", desired))
		}
		return err
	}
	if err != nil || existing.GetAnnotations()[specHashAnnotation] == hash {
		return err
	}
	meta.ResourceVersion = existing.GetResourceVersion()
	if _, err = update(ctx, desired, metav1.UpdateOptions{FieldManager: ManagerName}); err == nil {
		klog.FromContext(ctx).Info("Updated", "object", meta.Name, "kind", fmt.Sprintf("%T", desired))
	}
	return err
}

// stamp records the hash of spec in the object's annotations.
func stamp(meta *metav1.ObjectMeta, spec any) (string, error) {
	data, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:8])
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[specHashAnnotation] = hash
	return hash, nil
}
