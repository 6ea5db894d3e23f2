package localcluster

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// ResourceFor finds the API resource of an object by asking the API
// server's discovery, as kubectl does, and scopes it to the object's
// namespace ("default" when unset) if the resource is namespaced.
func (c *Cluster) ResourceFor(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := obj.GroupVersionKind()
	mapping, err := c.mapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		// A CRD installed a moment ago: forget cached discovery once.
		c.restMapper = nil
		if mapping, err = c.mapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return nil, fmt.Errorf("%s %s: no such API: %w", gvk, obj.GetName(), err)
		}
	}
	client, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		return client.Resource(mapping.Resource), nil
	}
	ns := obj.GetNamespace()
	if ns == "" {
		ns = "default"
	}
	return client.Resource(mapping.Resource).Namespace(ns), nil
}

func (c *Cluster) mapper() meta.RESTMapper {
	if c.restMapper == nil {
		disco := discovery.NewDiscoveryClientForConfigOrDie(c.Config)
		c.restMapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	}
	return c.restMapper
}

// Apply creates each manifest's object, or updates it if it exists, as
// `kubectl apply` would for objects this process owns.
func (c *Cluster) Apply(ctx context.Context, manifests []Manifest) error {
	for _, m := range manifests {
		resource, err := c.ResourceFor(m.Object)
		if err != nil {
			return fmt.Errorf("%s: %w", m.Path, err)
		}
		obj := m.Object.DeepCopy()
		_, err = resource.Create(ctx, obj, metav1.CreateOptions{FieldValidation: "Strict"})
		if apierrors.IsAlreadyExists(err) {
			existing, getErr := resource.Get(ctx, obj.GetName(), metav1.GetOptions{})
			if getErr != nil {
				return fmt.Errorf("%s: %w", m.Path, getErr)
			}
			obj.SetResourceVersion(existing.GetResourceVersion())
			_, err = resource.Update(ctx, obj, metav1.UpdateOptions{FieldValidation: "Strict"})
		}
		if err != nil {
			return fmt.Errorf("%s: %s %s: %w", m.Path, obj.GetKind(), obj.GetName(), err)
		}
	}
	return nil
}
