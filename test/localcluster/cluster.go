package localcluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// DisabledAdmissionPlugins are the admission plugins that only make sense
// with a controller-manager running: without one, pods are refused for a
// missing default ServiceAccount and new nodes keep a not-ready taint forever.
const DisabledAdmissionPlugins = "ServiceAccount,TaintNodesByCondition"

// Options tunes the control plane. The zero value is a sensible default.
type Options struct {
	// CRDDirectoryPaths are installed once the API server is up, relative
	// to the repository root; manifests/crds when nil.
	CRDDirectoryPaths []string
	// APIServerArgs are extra kube-apiserver flags, name to value.
	APIServerArgs map[string]string
	// ShowOutput attaches etcd's and kube-apiserver's output to this
	// process's stdout and stderr.
	ShowOutput bool
	// QPS and Burst of the admin client handed back. Defaults: 500 and 1000,
	// so that test set-up is not throttled on the client side.
	QPS   float32
	Burst int
}

// Cluster is a running local control plane.
type Cluster struct {
	env *envtest.Environment
	// Config authenticates as a cluster administrator (system:masters).
	Config *rest.Config
	// Client is a typed client built from Config.
	Client kubernetes.Interface
	// KubeconfigPath is a kubeconfig file for Config, for kubectl and for
	// components that take a --kubeconfig flag.
	KubeconfigPath string
	// ToolsDir holds the binaries built by hack/build-tools.sh.
	ToolsDir   string
	workDir    string
	restMapper meta.RESTMapper
}

// Start builds the control-plane binaries from vendor/ if they are missing,
// then starts etcd and kube-apiserver on free loopback ports.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	logger := klog.FromContext(ctx)
	tools, err := ToolsDir()
	if err != nil {
		return nil, err
	}
	workDir, err := os.MkdirTemp("", "switchyard-cluster-")
	if err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	crds := opts.CRDDirectoryPaths
	if crds == nil {
		crds = []string{filepath.Join("manifests", "crds")}
	}
	for i := range crds {
		crds[i] = filepath.Join(root, crds[i])
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    tools,
		CRDDirectoryPaths:        crds,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
		AttachControlPlaneOutput: opts.ShowOutput,
	}
	apiServer := env.ControlPlane.GetAPIServer()
	apiServer.Configure().Set("disable-admission-plugins", DisabledAdmissionPlugins)
	// The aggregation layer proxies to extension API servers (the
	// coordinator's visibility API) as in a kubeadm cluster.
	frontProxy, err := frontProxyFlags(workDir)
	if err != nil {
		_ = os.RemoveAll(workDir)
		return nil, fmt.Errorf("writing the front-proxy certificates: %w", err)
	}
	for name, value := range frontProxy {
		apiServer.Configure().Set(name, value)
	}
	for name, value := range opts.APIServerArgs {
		apiServer.Configure().Set(name, value)
	}
	start := time.Now()
	if _, err := env.Start(); err != nil {
		_ = os.RemoveAll(workDir)
		return nil, fmt.Errorf("starting etcd and kube-apiserver from %s: %w", tools, err)
	}
	c := &Cluster{env: env, ToolsDir: tools, workDir: workDir}
	base := &rest.Config{QPS: opts.QPS, Burst: opts.Burst}
	if base.QPS == 0 {
		base.QPS = 500
	}
	if base.Burst == 0 {
		base.Burst = 1000
	}
	admin, err := env.AddUser(envtest.User{Name: "switchyard-admin", Groups: []string{"system:masters"}}, base)
	if err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("creating the admin user: %w", err)
	}
	c.Config = admin.Config()
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("writing the admin kubeconfig: %w", err)
	}
	c.KubeconfigPath = filepath.Join(workDir, "kubeconfig")
	if err := os.WriteFile(c.KubeconfigPath, kubeconfig, 0o600); err != nil {
		_ = c.Stop()
		return nil, err
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		_ = c.Stop()
		return nil, err
	}
	logger.Info("Local control plane started", "server", c.Config.Host, "kubeconfig", c.KubeconfigPath, "took", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// Stop stops kube-apiserver and etcd and removes their data.
func (c *Cluster) Stop() error {
	err := c.env.Stop()
	if rmErr := os.RemoveAll(c.workDir); err == nil {
		err = rmErr
	}
	return err
}

// WorkDir is a scratch folder that lives as long as the cluster.
func (c *Cluster) WorkDir() string { return c.workDir }

// RepoRoot finds the Switchyard checkout from the working directory, so that
// tests run from any package can find manifests/ and hack/.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module github.com/switchyard-sched/switchyard\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no Switchyard go.mod above the working directory")
		}
		dir = parent
	}
}

// ToolsDir returns the folder with etcd, kube-apiserver and kubectl:
// KUBEBUILDER_ASSETS when set (as envtest users expect), otherwise the
// output of hack/build-tools.sh, which builds them from vendor/ on first use.
func ToolsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", filepath.Join(root, "hack", "build-tools.sh"))
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/build-tools.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}
