package secureserving

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

func TestNewRefusesHalfACertificate(t *testing.T) {
	for _, opts := range []Options{{CertFile: "tls.crt"}, {KeyFile: "tls.key"}} {
		if _, err := New(context.Background(), fake.NewClientset(), opts, http.NotFoundHandler()); err == nil ||
			!strings.Contains(err.Error(), "set both the certificate and the key file, or neither") {
			t.Errorf("%+v: %v, want a refusal that says to set both", opts, err)
		}
	}
}

// TestAuthorizeRefusesTheUnauthenticated: without a token, or with one
// the API server does not accept (a fake clientset's TokenReview says
// nobody), the handler is never reached and the answer is a 401 Status.
func TestAuthorizeRefusesTheUnauthenticated(t *testing.T) {
	reached := false
	h, err := Authorize(fake.NewClientset(), http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	if err != nil {
		t.Fatal(err)
	}
	for name, header := range map[string]string{"no token": "", "a token nobody vouches for": "Bearer not-a-token"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"kind":"Status"`) {
			t.Errorf("%s: HTTP %d %s, want a 401 Status", name, rec.Code, rec.Body)
		}
	}
	if reached {
		t.Error("the handler served an unauthenticated caller")
	}
}

func TestCertFlagsValidate(t *testing.T) {
	for _, tc := range []struct {
		flags CertFlags
		ok    bool
	}{
		{CertFlags{}, true},
		{CertFlags{CertFile: "tls.crt", KeyFile: "tls.key"}, true},
		{CertFlags{CertFile: "tls.crt"}, false},
		{CertFlags{KeyFile: "tls.key"}, false},
	} {
		if err := tc.flags.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok=%v", tc.flags, err, tc.ok)
		}
	}
}
