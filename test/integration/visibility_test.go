package integration

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	visibility "github.com/switchyard-sched/switchyard/pkg/apis/visibility/v1alpha1"
	coordinatorpkg "github.com/switchyard-sched/switchyard/pkg/coordinator"
	"github.com/switchyard-sched/switchyard/test/localcluster"
)

// TestVisibilityPending: the coordinator's visibility API lists a held
// queue's pods in order, each with what holds it, to whom RBAC allows,
// and refuses everyone else. Identities are real service-account tokens
// checked by the API server's TokenReview; every grant and refusal is the
// API server's SubjectAccessReview over the shipped ClusterRoles.
func TestVisibilityPending(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "1", Memory: "4Gi"})
	ns := selector["switchyard.io/test-nodes"]
	createRoutedQueue(ctx, t, ns, "vis-held", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](0)})
	for i := 1; i <= 3; i++ {
		if _, err := cluster.CreatePods(ctx, queuedPod(ns, fmt.Sprintf("wait-%d", i), "vis-held", selector)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // distinct creation seconds: the order's second key
	}
	waitForEvent(ctx, t, ns, "wait-1", "Queued", "maxAdmitted")

	if err := cluster.ApplyKind(ctx, "ClusterRole", "manifests/coordinator/visibility.yaml"); err != nil {
		t.Fatal(err)
	}
	// An operator of the queue may read every pod of it; a tenant only its
	// namespace's pods (the role the built-in view role aggregates).
	if err := cluster.BindClusterRole(ctx, "vis-operator-"+ns, "switchyard-queue-pending-viewer", ns, "vis-operator"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.CreateServiceAccount(ctx, ns, "vis-tenant"); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vis-tenant"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "switchyard-pending-viewer"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "vis-tenant"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.CreateServiceAccount(ctx, ns, "vis-operator"); err != nil {
		t.Fatal(err)
	}
	operator, err := cluster.Token(ctx, ns, "vis-operator", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tenant, err := cluster.Token(ctx, ns, "vis-tenant", "", nil)
	if err != nil {
		t.Fatal(err)
	}

	ca, err := os.ReadFile(visibilityCert.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	base := "https://" + visibilityAddress + "/apis/visibility.switchyard.io/v1alpha1"
	get := func(path string, header http.Header) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	bearer := func(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

	// The operator sees the queue in order, the head held by maxAdmitted.
	// A SubjectAccessReview denial is cached for a few seconds: the role
	// bindings above were written just now, so ask until they count.
	var code int
	var body []byte
	waitFor(ctx, t, "the operator may read the queue", 30*time.Second, func() bool {
		code, body = get("/queues/vis-held/pendingpods", bearer(operator))
		return code == http.StatusOK
	})
	var list visibility.PendingPodList
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	t.Logf("GET queues/vis-held/pendingpods as %s/vis-operator:\n%s", ns, body)
	if len(list.Items) != 3 {
		t.Fatalf("%d pending pods, want 3: %s", len(list.Items), body)
	}
	for i, p := range list.Items {
		if p.Name != fmt.Sprintf("wait-%d", i+1) || p.Position != int32(i+1) || p.Queue != "vis-held" {
			t.Errorf("item %d is %s at position %d in %q, want wait-%d at %d in vis-held", i, p.Name, p.Position, p.Queue, i+1, i+1)
		}
	}
	if h := list.Items[0].HeldBy; !strings.Contains(h, "maxAdmitted") {
		t.Errorf("the head is held by %q, want maxAdmitted", h)
	}
	if h := list.Items[2].HeldBy; !strings.Contains(h, "2 pods ahead") {
		t.Errorf("the third pod is held by %q, want the 2 pods ahead", h)
	}
	if b := list.Items[0].EstimateBasis; !strings.Contains(b, "no estimate") || list.Items[0].EstimatedAdmission != nil {
		t.Errorf("a queue held at maxAdmitted 0 got an estimate: %v, %q", list.Items[0].EstimatedAdmission, b)
	}

	// The tenant sees its namespace's pods, with their positions...
	waitFor(ctx, t, "the tenant may list its namespace", 30*time.Second, func() bool {
		code, body = get("/namespaces/"+ns+"/pendingpods?limit=2", bearer(tenant))
		return code == http.StatusOK
	})
	list = visibility.PendingPodList{}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Items) != 2 || list.Items[1].Position != 2 {
		t.Errorf("the tenant's list (limit 2): %s (%v)", body, err)
	}
	// ...and nothing else: no other namespace, not the whole queue.
	refusals := []struct {
		name, path string
		header     http.Header
		want       int
	}{
		{"tenant reads the whole queue", "/queues/vis-held/pendingpods", bearer(tenant), http.StatusForbidden},
		{"tenant reads another namespace", "/namespaces/kube-system/pendingpods", bearer(tenant), http.StatusForbidden},
		{"operator lists a namespace", "/namespaces/" + ns + "/pendingpods", bearer(operator), http.StatusForbidden},
		{"no credentials", "/queues/vis-held/pendingpods", nil, http.StatusUnauthorized},
		{"a token the API server did not issue", "/queues/vis-held/pendingpods", bearer("not-a-token"), http.StatusUnauthorized},
		// Front-proxy headers count only with the front proxy's client
		// certificate: sent by anyone else they are nobody.
		{"forged front-proxy headers", "/queues/vis-held/pendingpods", http.Header{"X-Remote-User": {"system:admin"}, "X-Remote-Group": {"system:masters"}}, http.StatusUnauthorized},
	}
	for _, r := range refusals {
		code, body := get(r.path, r.header)
		if code != r.want {
			t.Errorf("%s: %d, want %d: %s", r.name, code, r.want, body)
			continue
		}
		var status metav1.Status
		if err := json.Unmarshal(body, &status); err != nil || status.Kind != "Status" {
			t.Errorf("%s: the refusal is not a Status: %s", r.name, body)
		}
	}
	// Through the API server's aggregation layer, as kubectl reaches it:
	// the coordinator trusts the front proxy's certificate and the
	// caller's identity in its headers, and authorizes that identity.
	viaAPIServer := func(token, path string) (int, []byte) {
		config := rest.AnonymousClientConfig(cluster.Config)
		config.BearerToken = token
		client, err := kubernetes.NewForConfig(config)
		if err != nil {
			t.Fatal(err)
		}
		path, query, _ := strings.Cut(path, "?")
		req := client.CoreV1().RESTClient().Get().AbsPath("/apis/visibility.switchyard.io/v1alpha1" + path)
		if name, value, ok := strings.Cut(query, "="); ok {
			req = req.Param(name, value)
		}
		result := req.Do(ctx)
		var code int
		result.StatusCode(&code)
		raw, _ := result.Raw()
		return code, raw
	}
	if code, body := viaAPIServer(tenant, "/namespaces/"+ns+"/pendingpods"); code != http.StatusOK || !strings.Contains(string(body), `"name":"wait-3"`) {
		t.Errorf("the tenant through the API server: %d %s", code, body)
	}
	if code, body := viaAPIServer(tenant, "/queues/vis-held/pendingpods"); code != http.StatusForbidden {
		t.Errorf("the tenant read the whole queue through the API server: %d %s", code, body)
	}
	if code, body := viaAPIServer(operator, "/queues/vis-held/pendingpods?limit=1"); code != http.StatusOK || strings.Count(string(body), `"position"`) != 1 {
		t.Errorf("the operator through the API server, limit 1: %d %s", code, body)
	}
	// The same answers are what kubectl switchyard prints: explain for
	// the pod, pending for the queue (the operator) and for the namespace
	// (the tenant, who may not read the whole queue).
	out, err := kubectlSwitchyard(ctx, "explain", ns+"/wait-3", "--kubeconfig", cluster.KubeconfigPath)
	t.Logf("$ kubectl switchyard explain %s/wait-3\n%s", ns, out)
	if err != nil || !strings.Contains(out, "Position:  3 in queue vis-held; held by 2 pods ahead in the queue, whose next pod is held by maxAdmitted") {
		t.Errorf("explain does not show the position: %v", err)
	}
	// Shell completion names the queue and the pods, from the API server.
	if out, err := kubectlSwitchyard(ctx, "__complete", "pending", "--kubeconfig", cluster.KubeconfigPath, "vis-h"); err != nil || !strings.Contains(out, "vis-held\n") {
		t.Errorf("completing a queue name: %v\n%s", err, out)
	}
	if out, err := kubectlSwitchyard(ctx, "__complete", "explain", "-n", ns, "--kubeconfig", cluster.KubeconfigPath, "wait-"); err != nil ||
		!strings.Contains(out, "wait-1\nwait-2\nwait-3\n") {
		t.Errorf("completing a pod name: %v\n%s", err, out)
	}
	operatorConfig, tenantConfig := tokenKubeconfig(t, operator), tokenKubeconfig(t, tenant)
	out, err = kubectlSwitchyard(ctx, "pending", "vis-held", "--kubeconfig", operatorConfig)
	t.Logf("$ kubectl switchyard pending vis-held\n%s", out)
	if err != nil {
		t.Errorf("pending vis-held as the operator: %v", err)
	}
	for _, want := range []string{"POSITION  NAMESPACE", "1         " + ns, "wait-1", "maxAdmitted (0/0)", "3         " + ns} {
		if !strings.Contains(out, want) {
			t.Errorf("pending vis-held lacks %q", want)
		}
	}
	out, err = kubectlSwitchyard(ctx, "pending", "-n", ns, "-o", "wide", "--kubeconfig", tenantConfig)
	t.Logf("$ kubectl switchyard pending -n %s -o wide\n%s", ns, out)
	if err != nil || !strings.Contains(out, "POSITION  QUEUE     NAME") || !strings.Contains(out, "2         vis-held  wait-2") || !strings.Contains(out, "ESTIMATE BASIS") {
		t.Errorf("pending -n as the tenant: %v", err)
	}
	out, err = kubectlSwitchyard(ctx, "pending", "vis-held", "-o", "json", "--limit", "2", "--kubeconfig", operatorConfig)
	var limited visibility.PendingPodList
	if err != nil || json.Unmarshal([]byte(out), &limited) != nil || len(limited.Items) != 2 || limited.Items[1].Name != "wait-2" {
		t.Errorf("pending -o json --limit 2: %v\n%s", err, out)
	}
	if _, err := kubectlSwitchyard(ctx, "pending", "vis-held", "--kubeconfig", tenantConfig); err == nil ||
		!strings.Contains(err.Error(), "may not get queues/pendingpods.visibility.switchyard.io for queue vis-held (the switchyard-queue-pending-viewer ClusterRole grants it") {
		t.Errorf("pending of the whole queue as the tenant: %v, want a refusal that names the role", err)
	}
	if _, err := kubectlSwitchyard(ctx, "pending", "no-such-queue", "--kubeconfig", operatorConfig); err == nil ||
		!strings.Contains(err.Error(), `queue "no-such-queue" has no pending pods and no Queue object`) {
		t.Errorf("pending of an unknown queue: %v, want the coordinator's answer", err)
	}

	// Bad input is a 400 that says what is allowed, after authorization.
	if code, body := get("/queues/vis-held/pendingpods?limit=0", bearer(operator)); code != http.StatusBadRequest || !strings.Contains(string(body), "from 1 to") {
		t.Errorf("limit=0: %d %s", code, body)
	}
}

// tokenKubeconfig writes a kubeconfig for the test API server that
// authenticates with token alone, as a user's would.
func tokenKubeconfig(t *testing.T, token string) string {
	t.Helper()
	config := clientcmdapi.NewConfig()
	config.Clusters["test"] = &clientcmdapi.Cluster{Server: cluster.Config.Host, CertificateAuthorityData: cluster.Config.CAData}
	config.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: token}
	config.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "user", Namespace: "default"}
	config.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHigherPriorityQueueHolds: under a cluster-wide cap of 2, a
// higher-priority queue's admitted pods that cannot bind take the whole
// cap; the lower-priority queue's pods wait, and pending says which queue
// took it first.
func TestHigherPriorityQueueHolds(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	_, selector := testNodes(ctx, t, 1, localcluster.NodeSpec{CPU: "4", Memory: "8Gi"})
	ns := selector["switchyard.io/test-nodes"]
	restartCoordinator(ctx, t, &coordinatorpkg.Options{MaxAdmittedTotal: 2})
	defer restartCoordinator(ctx, t, &coordinatorpkg.Options{})
	createRoutedQueue(ctx, t, ns, "prio-urgent", v1alpha1.QueueSpec{Profile: "switchyard-batch", Priority: 10, MaxAdmitted: ptr.To[int32](100)})
	createRoutedQueue(ctx, t, ns, "prio-batch", v1alpha1.QueueSpec{Profile: "switchyard-batch", MaxAdmitted: ptr.To[int32](100)})
	// No node carries this label: admitted, they stay unbound and hold the cap.
	createQueuedPods(ctx, t, ns, "prio-urgent", 2, map[string]string{"switchyard.io/no-such-node": "x"}, nil)
	waitFor(ctx, t, "the urgent pods admitted", 30*time.Second, func() bool {
		pods, err := cluster.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.QueueLabel + "=prio-urgent"})
		if err != nil || len(pods.Items) != 2 {
			return false
		}
		for i := range pods.Items {
			if v1alpha1.HasAdmissionGate(&pods.Items[i]) {
				return false
			}
		}
		return true
	})
	createQueuedPods(ctx, t, ns, "prio-batch", 2, selector, nil)
	want := "cluster-wide cap --max-admitted (2/2), taken first by higher-priority queue prio-urgent (2)"
	var out string
	waitFor(ctx, t, "pending to name the higher-priority queue", 30*time.Second, func() bool {
		var err error
		out, err = kubectlSwitchyard(ctx, "pending", "prio-batch", "--kubeconfig", cluster.KubeconfigPath)
		return err == nil && strings.Contains(out, want)
	})
	t.Logf("$ kubectl switchyard pending prio-batch\n%s", out)
}
