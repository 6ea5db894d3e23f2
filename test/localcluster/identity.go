package localcluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	certutil "k8s.io/client-go/util/cert"
)

// Identities the way a kubelet would hand them out: service accounts, and
// tokens for an audience, bound to a pod when one is given. Components that
// authenticate callers (switchyard-configurator) see exactly what they see
// in a cluster: TokenReview answers with the pod-name and pod-uid claims.

// UnscheduledSchedulerName is served by no scheduler: pods that only stand
// for an identity (a configurator replica running in the test process) keep
// it and are never bound.
const UnscheduledSchedulerName = "switchyard-test-nobody"

// CreateServiceAccount creates namespace/name (an existing one is fine).
func (c *Cluster) CreateServiceAccount(ctx context.Context, namespace, name string) error {
	_, err := c.Client.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// Token requests a token of namespace/account for audience (the API
// server's own when empty), bound to pod when pod is not nil, valid for an
// hour.
func (c *Cluster) Token(ctx context.Context, namespace, account, audience string, pod *corev1.Pod) (string, error) {
	expiry := int64(3600)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}
	if audience != "" {
		req.Spec.Audiences = []string{audience}
	}
	if pod != nil {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	resp, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, account, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token of %s/%s: %w", namespace, account, err)
	}
	return resp.Status.Token, nil
}

// IdentityPod creates a pod that runs as namespace/account with ip as its
// pod IP, as a kubelet would report it, and is never scheduled: a process
// of the test that needs a pod's identity (and a token bound to it) uses it.
func (c *Cluster) IdentityPod(ctx context.Context, namespace, name, account, ip string) (*corev1.Pod, error) {
	if err := c.CreateServiceAccount(ctx, namespace, account); err != nil {
		return nil, err
	}
	pod := Pod(namespace, name, PodSpec{SchedulerName: UnscheduledSchedulerName})
	pod.Spec.ServiceAccountName = account
	created, err := c.Client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// Made by an earlier run of the same test (go test -count, or a
		// benchmark's rounds): the same identity.
		created, err = c.Client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && created.Spec.ServiceAccountName != account {
			return nil, fmt.Errorf("pod %s/%s exists and runs as %s, not %s", namespace, name, created.Spec.ServiceAccountName, account)
		}
	}
	if err != nil {
		return nil, err
	}
	created.Status.PodIP = ip
	created.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	created.Status.Phase = corev1.PodRunning
	return c.Client.CoreV1().Pods(namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{})
}

// PodToken makes an identity pod (IdentityPod) and returns a token of its
// service account for audience, bound to it: what a kubelet would project
// into that pod.
func (c *Cluster) PodToken(ctx context.Context, namespace, name, account, ip, audience string) (string, error) {
	pod, err := c.IdentityPod(ctx, namespace, name, account, ip)
	if err != nil {
		return "", err
	}
	return c.Token(ctx, namespace, account, audience, pod)
}

// BindClusterRole grants role to namespace/account everywhere, with a
// ClusterRoleBinding named name.
func (c *Cluster) BindClusterRole(ctx context.Context, name, role, namespace, account string) error {
	_, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: namespace, Name: account}},
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// ServingCert is a self-signed certificate for 127.0.0.1 and localhost,
// written as PEM files; CertFile is also the CA bundle that trusts it.
type ServingCert struct {
	CertFile, KeyFile string
}

// NewServingCert writes a fresh self-signed serving certificate into a new
// directory below dir, for localhost, 127.0.0.1 and dnsNames.
func NewServingCert(dir string, dnsNames ...string) (*ServingCert, error) {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("localhost", []net.IP{net.ParseIP("127.0.0.1")}, dnsNames)
	if err != nil {
		return nil, err
	}
	// A directory of its own: two certificates of one run never overwrite
	// each other (a server that reloads its files would pick up the other).
	own, err := os.MkdirTemp(dir, "serving-cert-")
	if err != nil {
		return nil, err
	}
	sc := &ServingCert{CertFile: filepath.Join(own, "tls.crt"), KeyFile: filepath.Join(own, "tls.key")}
	if err := os.WriteFile(sc.CertFile, certPEM, 0o600); err != nil {
		return nil, err
	}
	return sc, os.WriteFile(sc.KeyFile, keyPEM, 0o600)
}

// ClientFor is a client of the API server that authenticates as
// namespace/account (a token for the API server's audience), as a pod
// running as that account would.
func (c *Cluster) ClientFor(ctx context.Context, namespace, account string) (kubernetes.Interface, error) {
	if err := c.CreateServiceAccount(ctx, namespace, account); err != nil {
		return nil, err
	}
	token, err := c.Token(ctx, namespace, account, "", nil)
	if err != nil {
		return nil, err
	}
	config := rest.AnonymousClientConfig(c.Config)
	config.BearerToken = token
	return kubernetes.NewForConfig(config)
}
