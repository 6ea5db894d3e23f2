package integration

import (
	"encoding/json"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"

	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// TestManifestsAcceptedByAPIServer sends every object under manifests/ to
// the real API server as a server-side dry-run create, so that schema,
// RBAC references and defaults are checked the way `kubectl apply
// --dry-run=server` would. Namespaces are created for real first, because
// namespaced objects can only be checked inside an existing namespace; the
// CRDs are already installed by the test cluster from the same files.
func TestManifestsAcceptedByAPIServer(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	manifests, err := localcluster.LoadManifests("manifests")
	if err != nil {
		t.Fatal(err)
	}
	if len(manifests) == 0 {
		t.Fatal("no manifests found")
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
		resource, err := cluster.ResourceFor(obj)
		if err != nil {
			t.Errorf("%s: %v", m.Path, err)
			continue
		}
		_, err = resource.Create(ctx, obj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
		if apierrors.IsAlreadyExists(err) && (obj.GetKind() == "Namespace" || obj.GetKind() == "CustomResourceDefinition") {
			continue
		}
		if apierrors.IsAlreadyExists(err) {
			// Installed by another test (the shipped ClusterRoles): check it
			// as kubectl apply --server-side --dry-run=server would.
			data, merr := json.Marshal(obj)
			if merr != nil {
				t.Fatal(merr)
			}
			force := true
			_, err = resource.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
				DryRun: []string{metav1.DryRunAll}, FieldManager: "switchyard-manifests-test", Force: &force, FieldValidation: "Strict"})
		}
		if err != nil {
			t.Errorf("%s: %s %s rejected: %v", m.Path, obj.GetKind(), obj.GetName(), err)
		}
	}
}
