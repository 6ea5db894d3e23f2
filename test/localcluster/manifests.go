package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Manifest is one object read from a file under manifests/.
type Manifest struct {
	// Path is the file, relative to the repository root.
	Path   string
	Object *unstructured.Unstructured
}

// LoadManifests reads every object of every YAML file below dir (relative
// to the repository root), in file-name order, then document order.
// Kustomize's own files (kustomization.yaml) are not objects and are left
// out.
func LoadManifests(dir string) ([]Manifest, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	var out []Manifest
	err = filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return err
		}
		if d.Name() == "kustomization.yaml" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		objs, err := DecodeObjects(data)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		for _, obj := range objs {
			out = append(out, Manifest{Path: rel, Object: obj})
		}
		return nil
	})
	return out, err
}

// DecodeObjects splits a multi-document YAML (or JSON) stream into objects,
// skipping empty documents.
func DecodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := map[string]any{}
		if err := decoder.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// ShippedSchedulerConfig returns the KubeSchedulerConfiguration that
// manifests/scheduler/config.yaml deploys, so that tests run exactly what
// users install.
func ShippedSchedulerConfig() ([]byte, error) {
	objs, err := LoadManifests(filepath.Join("manifests", "scheduler"))
	if err != nil {
		return nil, err
	}
	for _, m := range objs {
		if m.Object.GetKind() != "ConfigMap" || m.Object.GetName() != "switchyard-scheduler-config" {
			continue
		}
		var cm corev1.ConfigMap
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m.Object.Object, &cm); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Path, err)
		}
		config, ok := cm.Data["config.yaml"]
		if !ok {
			return nil, fmt.Errorf("%s: ConfigMap has no config.yaml key", m.Path)
		}
		return []byte(config), nil
	}
	return nil, fmt.Errorf("manifests/scheduler: no ConfigMap switchyard-scheduler-config")
}

// ApplyKind applies the objects of one kind from the files (relative to the
// repository root), e.g. the ClusterRoles a component's RBAC file ships, so
// tests and the demo grant exactly what users bind.
func (c *Cluster) ApplyKind(ctx context.Context, kind string, files ...string) error {
	var objs []Manifest
	for _, file := range files {
		ms, err := LoadManifests(file)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Object.GetKind() == kind {
				objs = append(objs, m)
			}
		}
	}
	return c.Apply(ctx, objs)
}
