package integration

import (
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/klog/v2/ktesting"

	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// TestManifestsAcceptedByAPIServer sends every object under manifests/ to
// the real API server as a server-side dry-run create, so that schema,
// RBAC references and defaults are checked the way `kubectl apply
// --dry-run=server` would. Namespaces are created for real first, because
// namespaced objects can only be checked inside an existing namespace.
func TestManifestsAcceptedByAPIServer(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	manifests, err := localcluster.LoadManifests("manifests")
	if err != nil {
		t.Fatal(err)
	}
	if len(manifests) == 0 {
		t.Fatal("no manifests found")
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))
	client, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range manifests {
		if m.Object.GetKind() == "Namespace" {
			if err := cluster.CreateNamespace(ctx, m.Object.GetName()); err != nil {
				t.Fatalf("%s: %v", m.Path, err)
			}
		}
	}
	for _, m := range manifests {
		obj := m.Object
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s: %s %s: no such API: %v", m.Path, gvk, obj.GetName(), err)
			continue
		}
		var resource dynamic.ResourceInterface = client.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			ns := obj.GetNamespace()
			if ns == "" {
				ns = "default"
			}
			resource = client.Resource(mapping.Resource).Namespace(ns)
		}
		_, err = resource.Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		if apierrors.IsAlreadyExists(err) && obj.GetKind() == "Namespace" {
			continue
		}
		if err != nil {
			t.Errorf("%s: %s %s rejected: %v", m.Path, gvk.Kind, obj.GetName(), err)
		}
	}
}
