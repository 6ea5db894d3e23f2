package localcluster

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	visibility "github.com/switchyard-sched/switchyard/pkg/apis/visibility/v1alpha1"
)

// VisibilityServerName is the name the aggregation layer expects on the
// coordinator's serving certificate: its Service's DNS name.
const VisibilityServerName = "switchyard-coordinator.switchyard-system.svc"

// visibilityManifest ships the visibility API's Service, APIService and RBAC.
const visibilityManifest = "manifests/coordinator/visibility.yaml"

// ServeVisibility registers the shipped APIService of the visibility API
// for a coordinator running in this process, listening on 127.0.0.1:port
// with a certificate that caBundle trusts, and applies the shipped
// ClusterRoles. With no kube-proxy here, the Service is an ExternalName one
// for localhost (the aggregation layer dials its name and the APIService's
// port); everything else is the shipped object. It waits until the API
// server reports the APIService Available.
func (c *Cluster) ServeVisibility(ctx context.Context, port int, caBundle []byte) error {
	if err := c.CreateNamespace(ctx, "switchyard-system"); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "switchyard-system", Name: "switchyard-coordinator"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost"},
	}
	if _, err := c.Client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	manifests, err := LoadManifests(visibilityManifest)
	if err != nil {
		return err
	}
	var apply []Manifest
	for _, m := range manifests {
		switch m.Object.GetKind() {
		case "ClusterRole":
			apply = append(apply, m)
		case "APIService":
			obj := m.Object.DeepCopy()
			if err := unstructured.SetNestedField(obj.Object, int64(port), "spec", "service", "port"); err != nil {
				return err
			}
			if err := unstructured.SetNestedField(obj.Object, base64.StdEncoding.EncodeToString(caBundle), "spec", "caBundle"); err != nil {
				return err
			}
			apply = append(apply, Manifest{Path: m.Path, Object: obj})
		}
	}
	if err := c.Apply(ctx, apply); err != nil {
		return err
	}
	return c.WaitForAPIService(ctx, visibility.APIServiceName)
}

// WaitForAPIService waits until the API server reports the APIService
// name Available, and says why not when it does not become so. The API
// server re-checks an unavailable APIService only now and then (its
// availability controller resyncs every 30s); an edit makes it check at
// once, so while it is not Available this touches an annotation each
// second: a coordinator restarted by a test is reachable as soon as it
// listens.
func (c *Cluster) WaitForAPIService(ctx context.Context, name string) error {
	client, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	resource := client.Resource(schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"})
	last, lastNudge := "not found", time.Time{}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		obj, err := resource.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() == nil {
				last = err.Error()
			}
			return false, nil
		}
		conditions, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		for _, raw := range conditions {
			cond, _ := raw.(map[string]any)
			if cond["type"] == "Available" {
				last = fmt.Sprintf("Available=%v: %v", cond["status"], cond["message"])
				if cond["status"] == "True" {
					return true, nil
				}
			}
		}
		if time.Since(lastNudge) > time.Second {
			lastNudge = time.Now()
			patch := fmt.Sprintf(`{"metadata":{"annotations":{"switchyard.io/test-recheck":%q}}}`, lastNudge.Format(time.RFC3339Nano))
			_, _ = resource.Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("APIService %s is not Available (%s): %w", name, last, err)
	}
	return nil
}
