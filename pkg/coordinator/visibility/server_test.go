package visibility

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	visibility "github.com/switchyard-sched/switchyard/pkg/apis/visibility/v1alpha1"
)

// fakeSource knows queue "batch" with two pods, one in namespace "team-a".
type fakeSource struct{ lastLimit int }

func (f *fakeSource) PendingInQueue(queue string, limit int) ([]visibility.PendingPod, bool) {
	f.lastLimit = limit
	if queue != "batch" {
		return nil, false
	}
	return []visibility.PendingPod{{Namespace: "team-a", Name: "p1", Queue: "batch", Position: 1}, {Namespace: "team-b", Name: "p2", Queue: "batch", Position: 2}}, true
}

func (f *fakeSource) PendingInNamespace(namespace string, limit int) []visibility.PendingPod {
	f.lastLimit = limit
	if namespace != "team-a" {
		return nil
	}
	return []visibility.PendingPod{{Namespace: "team-a", Name: "p1", Queue: "batch", Position: 1}}
}

func TestRoutes(t *testing.T) {
	base := "/apis/visibility.switchyard.io/v1alpha1"
	tests := []struct {
		name      string
		method    string
		path      string
		noSource  bool
		wantCode  int
		wantPods  []string
		wantLimit int
		wantInMsg string
	}{
		{name: "queue", path: base + "/queues/batch/pendingpods", wantCode: 200, wantPods: []string{"team-a/p1", "team-b/p2"}, wantLimit: visibility.DefaultLimit},
		{name: "queue with limit", path: base + "/queues/batch/pendingpods?limit=7", wantCode: 200, wantPods: []string{"team-a/p1", "team-b/p2"}, wantLimit: 7},
		{name: "namespace", path: base + "/namespaces/team-a/pendingpods", wantCode: 200, wantPods: []string{"team-a/p1"}, wantLimit: visibility.DefaultLimit},
		{name: "namespace without pods is an empty list", path: base + "/namespaces/team-c/pendingpods", wantCode: 200, wantPods: []string{}},
		{name: "unknown queue", path: base + "/queues/nope/pendingpods", wantCode: 404, wantInMsg: `queue "nope"`},
		{name: "limit zero", path: base + "/queues/batch/pendingpods?limit=0", wantCode: 400, wantInMsg: "from 1 to 10000"},
		{name: "limit too big", path: base + "/queues/batch/pendingpods?limit=10001", wantCode: 400, wantInMsg: "from 1 to 10000"},
		{name: "limit not a number", path: base + "/queues/batch/pendingpods?limit=ten", wantCode: 400, wantInMsg: `limit="ten"`},
		{name: "unknown resource", path: base + "/queues/batch", wantCode: 404, wantInMsg: "queues/QUEUE/pendingpods"},
		{name: "other group", path: "/apis/switchyard.io/v1alpha1/queues", wantCode: 404},
		{name: "write refused", method: http.MethodPost, path: base + "/queues/batch/pendingpods", wantCode: 405, wantInMsg: "read-only"},
		{name: "not leading", path: base + "/queues/batch/pendingpods", noSource: true, wantCode: 503, wantInMsg: "does not lead"},
		{name: "discovery of the version", path: base, wantCode: 200},
		{name: "discovery of the group", path: "/apis/visibility.switchyard.io", wantCode: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{}
			source := &fakeSource{}
			if !tt.noSource {
				s.SetSource(source)
			}
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			rec := httptest.NewRecorder()
			http.HandlerFunc(s.serveAPI).ServeHTTP(rec, httptest.NewRequest(method, tt.path, nil))
			if rec.Code != tt.wantCode {
				t.Fatalf("code %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode != 200 {
				var status metav1.Status
				if err := json.Unmarshal(rec.Body.Bytes(), &status); err != nil || status.Kind != "Status" || int(status.Code) != tt.wantCode {
					t.Fatalf("not a Status of code %d: %s (%v)", tt.wantCode, rec.Body, err)
				}
				if !strings.Contains(status.Message, tt.wantInMsg) {
					t.Errorf("message %q does not say %q", status.Message, tt.wantInMsg)
				}
				return
			}
			if tt.wantPods == nil {
				return
			}
			var list visibility.PendingPodList
			if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
				t.Fatal(err)
			}
			if list.Kind != visibility.PendingPodListKind || list.APIVersion != "visibility.switchyard.io/v1alpha1" || list.Items == nil {
				t.Errorf("list %+v is not a PendingPodList with items", list.TypeMeta)
			}
			var got []string
			for _, p := range list.Items {
				got = append(got, p.Namespace+"/"+p.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.wantPods, ",") {
				t.Errorf("pods %v, want %v", got, tt.wantPods)
			}
			if tt.wantLimit != 0 && source.lastLimit != tt.wantLimit {
				t.Errorf("limit %d reached the source, want %d", source.lastLimit, tt.wantLimit)
			}
		})
	}
}
