package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
	"github.com/switchyard-sched/switchyard/pkg/configurator"
	"github.com/switchyard-sched/switchyard/pkg/configurator/server"
)

// errorOf is the message of a configurator error answer.
func errorOf(body []byte) string {
	var e configurator.Error
	_ = json.Unmarshal(body, &e)
	return e.Error
}

// TestConfiguratorAuthorization: every call is authenticated by the real
// API server's TokenReview (for the configurator's audience) and authorized
// per service by its SubjectAccessReview against RBAC.
func TestConfiguratorAuthorization(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "configurator-authz"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	rc := startConfigurator(ctx, t, ns, "", false, server.Options{})
	token := func(account, audience string) string {
		if err := cluster.CreateServiceAccount(ctx, ns, account); err != nil {
			t.Fatal(err)
		}
		tok, err := cluster.Token(ctx, ns, account, audience, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	// A viewer; an editor of the service "web" only (a ClusterRole with
	// resourceNames, as the RBAC comments tell operators to write).
	if err := cluster.BindClusterRole(ctx, ns+"-viewer", "switchyard-config-viewer", ns, "viewer"); err != nil {
		t.Fatal(err)
	}
	if _, err := cluster.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-web-editor"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"switchyard.io"}, Resources: []string{"configurations"}, ResourceNames: []string{"web"}, Verbs: []string{"get", "update"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cluster.BindClusterRole(ctx, ns+"-web-editor", ns+"-web-editor", ns, "web-editor"); err != nil {
		t.Fatal(err)
	}
	stranger, viewer, webEditor := token("stranger", v1alpha1.ConfiguratorAudience), token("viewer", v1alpha1.ConfiguratorAudience), token("web-editor", v1alpha1.ConfiguratorAudience)
	apiServerToken := token("writer", "") // the editor's account, but a token for the API server
	set := func(service string) string { return configurator.ServicesPath + "/" + service + "/config" }
	values := configurator.SetRequest{Values: map[string]string{"a": "b"}}
	for _, tc := range []struct {
		name, method, path, token string
		body                      any
		status                    int
		mention                   string
	}{
		{"an unbound service account may not write", http.MethodPut, set("web"), stranger, values, 403, "system:serviceaccount:" + ns + ":stranger may not update configurations/web"},
		{"an unbound service account may not read", http.MethodGet, set("web"), stranger, nil, 403, "may not get"},
		{"an unbound service account may not list", http.MethodGet, configurator.ServicesPath, stranger, nil, 403, "may not list configurations"},
		{"a token for the API server is refused", http.MethodPut, set("web"), apiServerToken, values, 401, "audience"},
		{"the editor writes", http.MethodPut, set("web"), rc.Writer, values, 200, ""},
		{"a viewer reads", http.MethodGet, set("web"), viewer, nil, 200, ""},
		{"a viewer lists", http.MethodGet, configurator.ServicesPath, viewer, nil, 200, ""},
		{"a viewer may not write", http.MethodPut, set("web"), viewer, values, 403, "may not update configurations/web"},
		{"an editor of web writes web", http.MethodPut, set("web"), webEditor, values, 200, ""},
		{"an editor of web may not write api", http.MethodPut, set("api"), webEditor, values, 403, "may not update configurations/api"},
		{"an editor of web may not write the agents' policy", http.MethodPut, set("switchyard-agent"), webEditor, values, 403, "may not update configurations/switchyard-agent"},
		{"an editor may not register", http.MethodPost, configurator.RegisterPath, rc.Writer, configurator.RegisterRequest{Service: "web", Address: "http://127.0.0.1:1"}, 403, "may not register configurations/web"},
	} {
		status, body := rc.do(t, tc.method, tc.path, tc.token, tc.body)
		if status != tc.status || !strings.Contains(errorOf(body), tc.mention) {
			t.Errorf("%s: HTTP %d %q, want %d mentioning %q", tc.name, status, errorOf(body), tc.status, tc.mention)
		}
	}
	if got := gathered(t, "switchyard_configurator_refused_total", "", "", rc.Registry); got < 8 {
		t.Errorf("switchyard_configurator_refused_total = %v, want at least the 8 refusals", got)
	}
	// Plain HTTP is not served: a token never crosses the wire in the clear.
	plain := strings.Replace(rc.URL, "https://", "http://", 1)
	if status, _ := doJSON(t, http.MethodGet, plain+configurator.ServicesPath, rc.Writer, nil); status == http.StatusOK {
		t.Errorf("the configurator answered over plain HTTP")
	}
}

// TestConfiguratorReplicaIdentity: a replica registers only as the pod its
// token is bound to, at that pod's IP; nobody but the configurator can
// push to it, and a huge version cannot pin it.
func TestConfiguratorReplicaIdentity(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "configurator-identity"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	rc := startConfigurator(ctx, t, ns, "", false, server.Options{CheckInterval: 200 * time.Millisecond})
	victim := startReplica(ctx, t, rc, "web", "web-0", false, time.Hour)
	waitFor(ctx, t, "the victim registered", 10*time.Second, func() bool { _, ok := victim.client.PodNumber(); return ok })
	v1 := setConfig(t, rc, "web", nil, map[string]string{"mode": "safe"})
	waitFor(ctx, t, "the victim configured", 10*time.Second, func() bool { return victim.client.AppliedVersion() == v1 })

	attacker := replicaToken(ctx, t, ns, "web-1") // a pod of the same service account
	unbound, err := cluster.Token(ctx, ns, replicaAccount, v1alpha1.ConfiguratorAudience, nil)
	if err != nil {
		t.Fatal(err)
	}
	deletedToken := replicaToken(ctx, t, ns, "web-gone")
	if err := cluster.Client.CoreV1().Pods(ns).Delete(ctx, "web-gone", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	register := func(token string, req configurator.RegisterRequest) (int, string) {
		status, body := rc.do(t, http.MethodPost, configurator.RegisterPath, token, req)
		return status, errorOf(body)
	}
	for _, tc := range []struct {
		name    string
		token   string
		req     configurator.RegisterRequest
		status  int
		mention string
	}{
		{"as another pod", attacker, configurator.RegisterRequest{Service: "web", Pod: "web-0", Address: victim.server.URL}, 403, "only as its own pod"},
		{"at another address", attacker, configurator.RegisterRequest{Service: "web", Address: "http://10.96.0.1:443"}, 403, "not an IP of pod " + ns + "/web-1"},
		{"with a token bound to no pod", unbound, configurator.RegisterRequest{Service: "web", Address: "http://127.0.0.1:1"}, 403, "not bound to a pod"},
		{"as a deleted pod", deletedToken, configurator.RegisterRequest{Service: "web", Address: "http://127.0.0.1:1"}, 401, "not accepted"},
	} {
		if status, msg := register(tc.token, tc.req); status != tc.status || !strings.Contains(msg, tc.mention) {
			t.Errorf("registering %s: HTTP %d %q, want %d mentioning %q", tc.name, status, msg, tc.status, tc.mention)
		}
	}
	// The victim still has its number and address.
	rs := replicasOf(t, rc, "web")
	if len(rs) != 1 || rs[0].Pod != "web-0" || rs[0].Address != victim.server.URL {
		t.Errorf("replicas after the attempts: %+v, want only web-0 at %s", rs, victim.server.URL)
	}

	// Pushes from anyone but the configurator are refused.
	forger, _ := configurator.NewPushKey()
	pinned := configurator.Change{Snapshot: configurator.Snapshot{Service: "web", Version: math.MaxInt64, Values: map[string]string{"mode": "evil"}}}
	payload, _ := json.Marshal(pinned)
	forged := base64.StdEncoding.EncodeToString(configurator.MACTable(map[int][]byte{0: configurator.MAC(forger, payload)}))
	for name, macs := range map[string]string{"unsigned (as pushed before)": "", "signed with another key": forged} {
		req, _ := http.NewRequest(http.MethodPost, victim.server.URL+configurator.DefaultPushPath, bytes.NewReader(payload))
		req.Header.Set(configurator.MACHeader, macs)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("push %s: HTTP %d, want 403", name, resp.StatusCode)
		}
	}
	if v, cfg := victim.client.AppliedVersion(), victim.client.Config(); v != v1 || cfg["mode"] != "safe" {
		t.Errorf("after forged pushes the victim is at version %d with %v, want %d with mode=safe", v, cfg, v1)
	}
	// And the configurator's next change still lands.
	v2 := setConfig(t, rc, "web", nil, map[string]string{"mode": "fast"})
	waitFor(ctx, t, "the next real change", 10*time.Second, func() bool { return victim.last().version == v2 && victim.last().config["mode"] == "fast" })
}

// dropFirstConfigMapUpdate applies the first ConfigMap update to the API
// server and then loses its answer, as a connection reset would.
type dropFirstConfigMapUpdate struct {
	next    http.RoundTripper
	dropped atomic.Bool
}

func (d *dropFirstConfigMapUpdate) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(req)
	if err == nil && req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/configmaps/switchyard-config-") && d.dropped.CompareAndSwap(false, true) {
		_ = resp.Body.Close()
		return nil, errors.New("connection reset by peer (injected after the update was applied)")
	}
	return resp, err
}

// TestConfiguratorVersionsCannotWedge: a ConfigMap update whose answer is
// lost does not wedge later writes, and a deleted ConfigMap starts a new
// epoch that every replica resyncs to, even across a configurator restart
// (versions start again at 1 while replicas were at 3).
func TestConfiguratorVersionsCannotWedge(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "configurator-versions"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	lossy := &dropFirstConfigMapUpdate{}
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { lossy.next = rt; return lossy })
	lossyClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts := server.Options{CheckInterval: 200 * time.Millisecond}
	rc := startConfigurator(ctx, t, ns, "", false, opts, func(c *server.Config) { c.Client = lossyClient })
	var rs []*testReplica
	for i := range 3 {
		rs = append(rs, startReplica(ctx, t, rc, "db", fmt.Sprintf("db-%d", i), false))
	}
	waitFor(ctx, t, "registrations", 10*time.Second, func() bool { return len(replicasOf(t, rc, "db")) == 3 })
	all := func(what string, ok func(*testReplica) bool) {
		t.Helper()
		waitFor(ctx, t, what, 15*time.Second, func() bool {
			for _, r := range rs {
				if !ok(r) {
					return false
				}
			}
			return true
		})
	}
	setConfig(t, rc, "db", nil, map[string]string{"pool": "10"}) // creates the ConfigMap
	v2 := setConfig(t, rc, "db", nil, map[string]string{"pool": "20"})
	if !lossy.dropped.Load() {
		t.Fatal("the injected loss did not happen")
	}
	v3 := setConfig(t, rc, "db", nil, map[string]string{"pool": "30"})
	if v2 != 2 || v3 != 3 {
		t.Errorf("versions %d, %d after a lost answer; want 2, 3 (the write that landed counts once)", v2, v3)
	}
	all("every replica at version 3", func(r *testReplica) bool { return r.last().version == 3 && r.last().config["pool"] == "30" })

	// The ConfigMap is deleted and the configurator restarted: it knows
	// nothing, and versions start again at 1.
	rc.stop()
	if err := cluster.Client.CoreV1().ConfigMaps(ns).Delete(ctx, "switchyard-config-db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rc = startConfigurator(ctx, t, ns, rc.addr, false, opts)
	waitFor(ctx, t, "every replica registered again", 15*time.Second, func() bool { return len(replicasOf(t, rc, "db")) == 3 })
	v := setConfig(t, rc, "db", nil, map[string]string{"pool": "5"})
	if v != 1 {
		t.Errorf("first version after the loss is %d, want 1 (a new epoch)", v)
	}
	all("every replica on the new epoch's version 1", func(r *testReplica) bool { return r.last().config["pool"] == "5" })
	var st configurator.RolloutStatus
	status, body := rc.do(t, http.MethodGet, configurator.ServicesPath+"/db/rollout", rc.Writer, nil)
	if status != http.StatusOK || json.Unmarshal(body, &st) != nil {
		t.Fatalf("rollout: HTTP %d %s", status, body)
	}
	cm, err := cluster.Client.CoreV1().ConfigMaps(ns).Get(ctx, "switchyard-config-db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Epoch != string(cm.UID) || st.Version != 1 {
		t.Errorf("rollout at epoch %q version %d, want the new ConfigMap's UID %s and 1", st.Epoch, st.Version, cm.UID)
	}
	// Within an epoch nobody went back: each replica's versions rise, with
	// the one drop at the new epoch.
	for i, r := range rs {
		drops := 0
		vs := r.versions()
		for j := 1; j < len(vs); j++ {
			if vs[j] <= vs[j-1] {
				drops++
			}
		}
		if drops > 1 {
			t.Errorf("replica %d applied %v: went back more than once", i, vs)
		}
	}
}

// TestConfiguratorRolloutWait: `config set --wait` returns once every
// healthy replica applied the change and fails naming the ones that did
// not; `config status` says N/M.
func TestConfiguratorRolloutWait(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ns := "configurator-rollout"
	if err := cluster.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	rc := startConfigurator(ctx, t, ns, "", false, server.Options{CheckInterval: 200 * time.Millisecond})
	for i := range 3 {
		startReplica(ctx, t, rc, "shop", fmt.Sprintf("shop-%d", i), false, time.Hour)
	}
	waitFor(ctx, t, "registrations", 10*time.Second, func() bool { return len(replicasOf(t, rc, "shop")) == 3 })
	kubectl := func(args ...string) (string, error) {
		return kubectlSwitchyard(ctx, append(args, "--configurator-url", rc.URL, "--configurator-token", rc.Writer, "--configurator-ca-file", servingCert(t).CertFile)...)
	}
	out, err := kubectl("config", "set", "shop", "--wait=20s", "currency=EUR")
	if err != nil || !strings.Contains(out, "shop: 3/3 healthy replicas at version 1") {
		t.Errorf("config set --wait: %v\n%s", err, out)
	}
	t.Logf("$ kubectl switchyard config set shop --wait=20s currency=EUR\n%s", out)

	// A replica that answers its health checks but never applies anything
	// (its push endpoint fails) holds the rollout.
	stuck := startReplica(ctx, t, rc, "shop", "shop-stuck", false, time.Hour)
	waitFor(ctx, t, "the stuck replica registered", 10*time.Second, func() bool { _, ok := stuck.client.PodNumber(); return ok })
	stuckHandler := stuck.server.Config.Handler
	stuck.server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == configurator.DefaultPushPath {
			http.Error(w, "busy", http.StatusInternalServerError)
			return
		}
		stuckHandler.ServeHTTP(w, r)
	})
	out, err = kubectl("config", "set", "shop", "--wait=3s", "currency=USD")
	if err == nil || !strings.Contains(err.Error(), "3/4 healthy replicas at version 2") || !strings.Contains(err.Error(), ns+"/shop-stuck") {
		t.Errorf("config set --wait with a stuck replica: %v\n%s, want an error naming %s/shop-stuck", err, out, ns)
	}
	t.Logf("$ kubectl switchyard config set shop --wait=3s currency=USD\n%s%v", out, err)
	out, err = kubectl("config", "status", "shop")
	if err != nil || !strings.Contains(out, "shop: 3/4 healthy replicas at version 2") || !strings.Contains(out, "shop-stuck") {
		t.Errorf("config status: %v\n%s", err, out)
	}
	t.Logf("$ kubectl switchyard config status shop\n%s", out)
	// Operators see the same straggler in the metric the alert watches.
	waitFor(ctx, t, "switchyard_configurator_replicas_behind{service=shop} = 1", 10*time.Second, func() bool {
		return gathered(t, "switchyard_configurator_replicas_behind", "service", "shop", rc.Registry) == 1
	})
}
