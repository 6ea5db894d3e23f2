package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"

	"github.com/switchyard-sched/switchyard/pkg/apis/switchyard/v1alpha1"
)

// Identity is who a request comes from, as the API server authenticated
// its token.
type Identity struct {
	User   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// Authenticator turns a bearer token into an Identity.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (*Identity, error)
}

// Authorizer says whether an identity may do verb on the configuration of
// service ("" for every service, as list does).
type Authorizer interface {
	Authorize(ctx context.Context, id *Identity, verb, service string) (Decision, error)
}

// Decision is an Authorizer's answer.
type Decision struct {
	Allowed bool
	// Reason is the API server's, when it gave one.
	Reason string
}

// errNoToken is answered with 401.
var errNoToken = errors.New("this endpoint needs an Authorization: Bearer <token> header with a service account token for the audience " + v1alpha1.ConfiguratorAudience)

func bearer(r *http.Request) (string, error) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || strings.TrimSpace(token) == "" {
		return "", errNoToken
	}
	return strings.TrimSpace(token), nil
}

// Cache lifetimes, as the API server's own webhook authenticator and
// authorizer keep theirs: a revoked token or role binding stops working
// within these, and the API server sees one review per token and decision
// per lifetime instead of one per request.
const (
	tokenTTL        = time.Minute
	allowedTTL      = time.Minute
	deniedTTL       = 10 * time.Second
	authCacheSize   = 4096
	failedTokenTTL  = 5 * time.Second
	reviewTimeout   = 10 * time.Second
	maxTokenLength  = 16 << 10
	maxReasonLength = 512
)

// TokenReview authenticates tokens with the API server's TokenReview for
// the configurator's audience, so a token requested for the API server
// itself (or for another audience) is refused.
type TokenReview struct {
	Client    kubernetes.Interface
	Audiences []string
	cache     *cache.LRUExpireCache
}

// NewTokenReview reviews tokens for audiences (ConfiguratorAudience when
// empty), caching each answer for a minute.
func NewTokenReview(client kubernetes.Interface, audiences ...string) *TokenReview {
	if len(audiences) == 0 {
		audiences = []string{v1alpha1.ConfiguratorAudience}
	}
	return &TokenReview{Client: client, Audiences: audiences, cache: cache.NewLRUExpireCache(authCacheSize)}
}

type tokenResult struct {
	id  *Identity
	err error
}

// Authenticate asks the API server, or the cache.
func (t *TokenReview) Authenticate(ctx context.Context, token string) (*Identity, error) {
	if len(token) > maxTokenLength {
		return nil, errors.New("token too long")
	}
	sum := sha256.Sum256([]byte(token))
	key := hex.EncodeToString(sum[:])
	if v, ok := t.cache.Get(key); ok {
		r := v.(tokenResult)
		return r.id, r.err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
	defer cancel()
	review, err := t.Client.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: t.Audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("reviewing the token: %w", err) // not cached: the API server may be back soon
	}
	if !review.Status.Authenticated {
		msg := review.Status.Error
		if msg == "" {
			msg = "not authenticated"
		}
		err := fmt.Errorf("token not accepted (%s); request one for the audience %s, e.g. kubectl create token NAME --audience %s", truncate(msg), v1alpha1.ConfiguratorAudience, v1alpha1.ConfiguratorAudience)
		t.cache.Add(key, tokenResult{err: err}, failedTokenTTL)
		return nil, err
	}
	if !slices.ContainsFunc(review.Status.Audiences, func(a string) bool { return slices.Contains(t.Audiences, a) }) {
		err := fmt.Errorf("token is for the audiences %v, not %v", review.Status.Audiences, t.Audiences)
		t.cache.Add(key, tokenResult{err: err}, failedTokenTTL)
		return nil, err
	}
	u := review.Status.User
	id := &Identity{User: u.Username, UID: u.UID, Groups: u.Groups, Extra: map[string][]string{}}
	for k, v := range u.Extra {
		id.Extra[k] = v
	}
	t.cache.Add(key, tokenResult{id: id}, tokenTTL)
	return id, nil
}

// SubjectAccessReview authorizes with the API server's RBAC (or whatever
// authorizers it runs): verb on configurations.switchyard.io named by the
// service, as a cluster-scoped resource.
type SubjectAccessReview struct {
	Client kubernetes.Interface
	cache  *cache.LRUExpireCache
}

// NewSubjectAccessReview caches allowed answers for a minute and denials
// for ten seconds, so a new RoleBinding takes effect quickly.
func NewSubjectAccessReview(client kubernetes.Interface) *SubjectAccessReview {
	return &SubjectAccessReview{Client: client, cache: cache.NewLRUExpireCache(authCacheSize)}
}

// Authorize asks the API server, or the cache.
func (s *SubjectAccessReview) Authorize(ctx context.Context, id *Identity, verb, service string) (Decision, error) {
	key := decisionKey(id, verb, service)
	if v, ok := s.cache.Get(key); ok {
		return v.(Decision), nil
	}
	extra := map[string]authorizationv1.ExtraValue{}
	for k, v := range id.Extra {
		extra[k] = v
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
	defer cancel()
	review, err := s.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User: id.User, UID: id.UID, Groups: id.Groups, Extra: extra,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Group: v1alpha1.ConfigurationsGroup, Resource: v1alpha1.ConfigurationsResource, Name: service, Verb: verb,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return Decision{}, fmt.Errorf("asking the API server whether %s may %s: %w", id.User, verb, err)
	}
	d := Decision{Allowed: review.Status.Allowed && !review.Status.Denied, Reason: truncate(review.Status.Reason)}
	ttl := allowedTTL
	if !d.Allowed {
		ttl = deniedTTL
	}
	s.cache.Add(key, d, ttl)
	return d, nil
}

// decisionKey identifies one question: who (every attribute the API
// server's authorizers may look at), which verb, which service.
func decisionKey(id *Identity, verb, service string) string {
	h := sha256.New()
	write := func(s string) { h.Write([]byte(s)); h.Write([]byte{0}) }
	write(id.User)
	write(id.UID)
	groups := slices.Clone(id.Groups)
	sort.Strings(groups)
	for _, g := range groups {
		write("g:" + g)
	}
	keys := make([]string, 0, len(id.Extra))
	for k := range id.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		write("x:" + k)
		for _, v := range id.Extra[k] {
			write(v)
		}
	}
	write(verb)
	write(service)
	return hex.EncodeToString(h.Sum(nil))
}

func truncate(s string) string {
	if len(s) > maxReasonLength {
		return s[:maxReasonLength] + "..."
	}
	return s
}
