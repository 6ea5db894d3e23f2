package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2/ktesting"
	psapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"

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

// TestShippedPodsMeetPodSecurity creates (server-side dry run) a pod from
// every shipped workload's pod template, in the namespace the manifests put
// it, after applying the shipped Namespaces with their Pod Security labels:
// the API server's own PodSecurity admission decides, as it would for the
// DaemonSet or Deployment controller's pods. A template its namespace's
// level refuses would never start.
func TestShippedPodsMeetPodSecurity(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	manifests, err := localcluster.LoadManifests("manifests")
	if err != nil {
		t.Fatal(err)
	}
	var namespaces, accounts []localcluster.Manifest
	for _, m := range manifests {
		switch m.Object.GetKind() {
		case "Namespace":
			namespaces = append(namespaces, m)
		case "ServiceAccount":
			accounts = append(accounts, m)
		}
	}
	if err := cluster.Apply(ctx, namespaces); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Apply(ctx, accounts); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, m := range manifests {
		switch m.Object.GetKind() {
		case "Deployment", "DaemonSet", "StatefulSet", "Job":
		default:
			continue
		}
		template, found, err := unstructured.NestedMap(m.Object.Object, "spec", "template")
		if err != nil || !found {
			t.Errorf("%s: %s %s has no pod template: %v", m.Path, m.Object.GetKind(), m.Object.GetName(), err)
			continue
		}
		pod := &corev1.Pod{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(template, pod); err != nil {
			t.Errorf("%s: %v", m.Path, err)
			continue
		}
		ns := m.Object.GetNamespace()
		if ns == "" {
			ns = metav1.NamespaceDefault
		}
		level := "(none)"
		if live, err := cluster.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
			level = live.Labels["pod-security.kubernetes.io/enforce"]
		}
		pod.Namespace, pod.Name = ns, m.Object.GetName()+"-template"
		if _, err := cluster.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("%s: a pod of %s %s is refused in namespace %s (Pod Security %s): %v", m.Path, m.Object.GetKind(), m.Object.GetName(), ns, level, err)
			continue
		}
		t.Logf("%s: %s %s passes in namespace %s (Pod Security enforce=%s)", m.Path, m.Object.GetKind(), m.Object.GetName(), ns, level)
		checked++
		if level == string(psapi.LevelPrivileged) {
			// A privileged namespace checks nothing: the template must still
			// miss restricted only by what the namespace exists for.
			assertRestrictedBut(t, m.Path, pod, "hostPath volumes", "restricted volume types")
		}
	}
	if checked == 0 && !t.Failed() {
		t.Fatal("no shipped workloads found")
	}
}

// assertRestrictedBut evaluates pod with the vendored Pod Security library
// at the restricted level and fails for any violation other than allowed
// (the checks' ForbiddenReason), and when there is none (then the pod's
// namespace need not be privileged).
func assertRestrictedBut(t *testing.T, path string, pod *corev1.Pod, allowed ...string) {
	t.Helper()
	evaluator, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var violations []string
	for _, r := range evaluator.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &pod.ObjectMeta, &pod.Spec) {
		if r.Allowed {
			continue
		}
		violations = append(violations, r.ForbiddenReason)
		if !slices.Contains(allowed, r.ForbiddenReason) {
			t.Errorf("%s: the pod breaks Pod Security restricted beyond %v: %s (%s)", path, allowed, r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
	if len(violations) == 0 {
		t.Errorf("%s: the pod meets restricted: its namespace need not be privileged", path)
	}
	t.Logf("%s: at restricted, only %v", path, violations)
}

// TestKustomizationsApplyServerSide renders the base and every overlay with
// the kubectl built from vendor (which carries kustomize) and hands the
// result to `kubectl apply --server-side --dry-run=server`, as a user
// installing Switchyard with `kubectl apply -k` would. Namespaces are
// created for real first: a dry-run cannot hold the objects inside them.
func TestKustomizationsApplyServerSide(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(cluster.ToolsDir, "kubectl")
	for _, dir := range []string{"manifests/default", "manifests/overlays/external-queues", "manifests/overlays/monitoring", "manifests/overlays/full"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			rendered, err := exec.CommandContext(ctx, kubectl, "kustomize", filepath.Join(root, dir)).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v: %s", dir, err, stderrOf(err))
			}
			objs, err := localcluster.DecodeObjects(rendered)
			if err != nil {
				t.Fatal(err)
			}
			kinds := map[string]int{}
			for _, obj := range objs {
				kinds[obj.GetKind()]++
				if obj.GetKind() == "Namespace" {
					if err := cluster.CreateNamespace(ctx, obj.GetName()); err != nil {
						t.Fatal(err)
					}
				}
			}
			cmd := exec.CommandContext(ctx, kubectl, "apply", "--kubeconfig", cluster.KubeconfigPath, "--server-side", "--dry-run=server",
				"--force-conflicts", "--field-manager=switchyard-install-test", "-f", "-")
			cmd.Stdin = bytes.NewReader(rendered)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl apply --server-side --dry-run=server -k %s: %v\n%s", dir, err, out)
			}
			if applied := strings.Count(string(out), "(server dry run)"); applied != len(objs) {
				t.Errorf("kubectl applied %d of the %d objects of %s:\n%s", applied, len(objs), dir, out)
			}
			t.Logf("%s: %d objects pass a server-side dry-run apply: %v", dir, len(objs), kinds)
		})
	}
}

// stderrOf is what a failed command wrote to stderr, when exec kept it.
func stderrOf(err error) string {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(exit.Stderr)
	}
	return ""
}

// TestQueueCRDUpgrade rolls the Queue CRD forward as an upgrade does (CRD
// first, then components): Queues written by the previous version, spec
// and status, are stored under its CRD; then this version's CRD replaces
// it, and every stored Queue must still take an update of its spec and of
// its status, and the previous version's manifests must still create. The
// CRDs are installed under a group of their own (upgrade.switchyard.io),
// so the Queue CRD the other tests use is not touched. (The API server
// applies a CRD update a moment after accepting it; an update that raced
// it would be checked against the previous schema, which can only make
// this test pass wrongly, never fail.)
func TestQueueCRDUpgrade(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	const group = "upgrade.switchyard.io"
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds := dyn.Resource(apiextensionsv1.SchemeGroupVersion.WithResource("customresourcedefinitions"))
	queues := dyn.Resource(schema.GroupVersionResource{Group: group, Version: "v1alpha1", Resource: "queues"})
	readCRD := func(path string) *unstructured.Unstructured {
		t.Helper()
		root, err := localcluster.RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := localcluster.DecodeObjects(data)
		if err != nil || len(objs) != 1 {
			t.Fatalf("%s: %d objects, %v", path, len(objs), err)
		}
		crd := objs[0]
		crd.SetName("queues." + group)
		if err := unstructured.SetNestedField(crd.Object, group, "spec", "group"); err != nil {
			t.Fatal(err)
		}
		// Short names and categories would clash with the real Queue CRD's.
		unstructured.RemoveNestedField(crd.Object, "spec", "names", "shortNames")
		unstructured.RemoveNestedField(crd.Object, "spec", "names", "categories")
		return crd
	}
	established := func() {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			live, err := crds.Get(ctx, "queues."+group, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conditions, _, _ := unstructured.NestedSlice(live.Object, "status", "conditions")
			for _, c := range conditions {
				if c, ok := c.(map[string]any); ok && c["type"] == "Established" && c["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			t.Fatalf("CRD queues.%s not established: %v", group, err)
		}
	}

	previous := readCRD("test/integration/testdata/upgrade/previous-queues-crd.yaml")
	if _, err := crds.Create(ctx, previous, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = crds.Delete(context.Background(), "queues."+group, metav1.DeleteOptions{}) })
	established()
	written, err := localcluster.LoadManifests("test/integration/testdata/upgrade/previous-queues.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var objects []*unstructured.Unstructured
	for _, m := range written {
		obj := m.Object
		obj.SetAPIVersion(group + "/v1alpha1")
		objects = append(objects, obj.DeepCopy())
		created, err := queues.Create(ctx, obj, metav1.CreateOptions{FieldValidation: "Strict"})
		if err != nil {
			t.Fatalf("the previous CRD refuses Queue %s as the previous version wrote it: %v", obj.GetName(), err)
		}
		if status, ok := obj.Object["status"]; ok {
			created.Object["status"] = status
			if _, err := queues.UpdateStatus(ctx, created, metav1.UpdateOptions{FieldValidation: "Strict"}); err != nil {
				t.Fatalf("the previous CRD refuses the status of Queue %s: %v", obj.GetName(), err)
			}
		}
	}

	current := readCRD("manifests/crds/switchyard.io_queues.yaml")
	live, err := crds.Get(ctx, "queues."+group, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	current.SetResourceVersion(live.GetResourceVersion())
	if _, err := crds.Update(ctx, current, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("this version's Queue CRD cannot replace the previous one: %v", err)
	}
	established()
	for _, obj := range objects {
		name := obj.GetName()
		stored, err := queues.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		labels := stored.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels["switchyard.io/upgraded"] = "true"
		stored.SetLabels(labels)
		updated, err := queues.Update(ctx, stored, metav1.UpdateOptions{FieldValidation: "Strict"})
		if err != nil {
			t.Errorf("after the upgrade, Queue %s as the previous version stored it takes no update: %v", name, err)
			continue
		}
		if _, ok := obj.Object["status"]; ok {
			if _, err := queues.UpdateStatus(ctx, updated, metav1.UpdateOptions{FieldValidation: "Strict"}); err != nil {
				t.Errorf("after the upgrade, the status of Queue %s takes no update: %v", name, err)
			}
		}
		again := obj.DeepCopy()
		again.SetName(name + "-again")
		if _, err := queues.Create(ctx, again, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}); err != nil {
			t.Errorf("this version's CRD refuses Queue %s as the previous version wrote it: %v", name, err)
		}
	}
	if !t.Failed() {
		t.Logf("%d Queues written by the previous version survive the CRD upgrade", len(objects))
	}
}

// TestLeaderOnlyReadyDeploymentsRecreate: the coordinator and the
// configurator report ready only while they lead, so a rolling update
// would wait forever for a new pod to become ready beside the old leader;
// their Deployments must recreate instead.
func TestLeaderOnlyReadyDeploymentsRecreate(t *testing.T) {
	manifests, err := localcluster.LoadManifests("manifests")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, m := range manifests {
		switch m.Object.GetName() {
		case "switchyard-coordinator", "switchyard-configurator":
		default:
			continue
		}
		if m.Object.GetKind() != "Deployment" {
			continue
		}
		found++
		strategy, _, _ := unstructured.NestedString(m.Object.Object, "spec", "strategy", "type")
		if strategy != "Recreate" {
			t.Errorf("%s: Deployment %s has strategy %q; its stand-by is never ready, so only Recreate can roll it out", m.Path, m.Object.GetName(), strategy)
		}
	}
	if found != 2 {
		t.Errorf("found %d of the 2 leader-elected Deployments", found)
	}
}

// TestExamplesApplyServerSide: every example the docs point to is valid
// for this version's API server and CRDs (a server-side dry-run apply).
func TestExamplesApplyServerSide(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "manifests/examples/*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	kubectl := filepath.Join(cluster.ToolsDir, "kubectl")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, err := exec.CommandContext(ctx, kubectl, "apply", "--kubeconfig", cluster.KubeconfigPath, "--server-side", "--dry-run=server",
				"--force-conflicts", "--field-manager=switchyard-examples-test", "-f", file).CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl apply --server-side --dry-run=server -f %s: %v\n%s", file, err, out)
			}
		})
	}
}
