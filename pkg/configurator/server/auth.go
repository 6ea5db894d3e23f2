package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Authenticator checks the bearer token of a write request.
type Authenticator interface {
	Authenticate(r *http.Request) error
}

func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return "", errors.New("this endpoint needs an Authorization: Bearer <token> header")
	}
	return token, nil
}

// StaticTokens accepts the tokens of a file, one per line (the local demo).
type StaticTokens struct{ tokens []string }

// LoadStaticTokens reads a token file; blank lines and # comments are skipped.
func LoadStaticTokens(path string) (*StaticTokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st StaticTokens
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			st.tokens = append(st.tokens, line)
		}
	}
	if len(st.tokens) == 0 {
		return nil, fmt.Errorf("token file %s holds no token", path)
	}
	return &st, nil
}

// Authenticate compares in constant time.
func (s *StaticTokens) Authenticate(r *http.Request) error {
	token, err := bearer(r)
	if err != nil {
		return err
	}
	for _, t := range s.tokens {
		if subtle.ConstantTimeCompare([]byte(t), []byte(token)) == 1 {
			return nil
		}
	}
	return errors.New("token not accepted")
}

// TokenReview accepts tokens the API server authenticates (service
// account tokens of the replicas and of operators), as in a cluster.
type TokenReview struct {
	Client kubernetes.Interface
	// Audiences the token must be valid for; the API server's default when empty.
	Audiences []string
}

// Authenticate asks the API server.
func (t *TokenReview) Authenticate(r *http.Request) error {
	token, err := bearer(r)
	if err != nil {
		return err
	}
	review, err := t.Client.AuthenticationV1().TokenReviews().Create(context.WithoutCancel(r.Context()), &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: t.Audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("reviewing the token: %w", err)
	}
	if !review.Status.Authenticated {
		return fmt.Errorf("token not accepted: %s", review.Status.Error)
	}
	return nil
}
